"""Small HTTP helpers for talking to the processes under test on 127.0.0.1 (standard library only)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from base64 import b64encode
from typing import Any

TIMEOUT_S = 30.0


def request(
    method: str, url: str, body: object = None, auth: tuple[str, str] | None = None
) -> tuple[int, Any]:
    """(status, decoded JSON body); an error status comes back with the body as text."""
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    data = None if body is None else json.dumps(body).encode()
    prepared = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 - loopback
    try:
        with urllib.request.urlopen(prepared, timeout=TIMEOUT_S) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
