"""HTTP details every provider shares: bounded body reads and one-line failure reasons."""

from __future__ import annotations

import aiohttp

MAX_READ_BYTES = 64 * 1024  # a hostile or broken server could answer with an endless body
REASON_CHARS = 200  # a reason ends up in the ledger's last_error (255) and in Swrve reports


async def read_body(response: aiohttp.ClientResponse) -> bytes:
    """Read the body to its end so the connection goes back to the pool; past the cap it is dropped."""
    body = bytearray()
    while len(body) < MAX_READ_BYTES:
        chunk = await response.content.read(MAX_READ_BYTES - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def http_reason(status: int, detail: str) -> str:
    """`HTTP 400: detail`, with the detail on one line and cut short: it ends up in the ledger."""
    text = " ".join(detail[: REASON_CHARS * 4].split())[:REASON_CHARS]
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"
