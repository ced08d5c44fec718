"""A real `clarion serve`: set up through the CLI, SIGKILLed right after a 202, restarted, and the
accepted batch still delivered; an oversized body is refused from its Content-Length alone; a batch
of one object meets the time limit the environment sets."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app_tenant.factory import id_hash
from tests.e2e.conftest import engine_env
from tests.e2e.processes import Processes
from tests.fakes.fcm import FakeFcm, fcm_error
from tests.fakes.native_service import Hang

pytestmark = pytest.mark.e2e


@pytest.fixture
def fcm() -> Iterator[FakeFcm]:
    with FakeFcm() as fake:
        yield fake


def _report(base: str, batch_id: str, timeout_s: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{base}/push_batch", params={"batch_id": batch_id}, timeout=5)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        if body["status"] != "in_progress":
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def _head_only(port: int, request: bytes) -> bytes:
    """Send a request's head and no body; the answer must come without the body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def _fcm_app(procs: Processes, tmp_path: Path, fcm: FakeFcm, project: str) -> dict[str, Any]:
    """An app made through the CLI, with credentials the FCM fake accepts for `project`."""
    app: dict[str, Any] = json.loads(procs.cli("apps", "create", project, "--plan", "unlimited", "--json"))
    account = tmp_path / "service-account.json"
    account.write_text(json.dumps(fcm.new_service_account(project)))
    procs.cli("apps", "credentials", app["app_key"], "--fcm", str(account), "--json")
    return app


def _processes(tmp_path: Path, fcm: FakeFcm, **env: str) -> Processes:
    base = {**engine_env(f"sqlite:///{tmp_path / 'clarion.db'}"), "CLARION_FCM_URL": fcm.origin}
    return Processes(tmp_path, {**base, **env})


def test_a_batch_accepted_before_a_crash_is_delivered_after_the_restart(tmp_path: Path, fcm: FakeFcm) -> None:
    procs = _processes(tmp_path, fcm, CLARION_REQUEST_TIMEOUT_S="2")
    try:
        app = _fcm_app(procs, tmp_path, fcm, "crash-project")
        created = procs.cli(
            "push-campaigns",
            "create",
            app["app_key"],
            "--name",
            "launch",
            "--message",
            "Hello from the CLI",
            "--title",
            "Launch",
            "--platform",
            "android",
            "--json",
        )
        push = json.loads(created)
        assert sorted(push) == ["campaign_id", "push_key"]

        server = procs.server()
        token = fcm.new_token("crash-project")
        u1_hash = id_hash(app["identity_secret_key"], "u1")
        registration = {
            "app_key": app["app_key"],
            "platform": "android",
            "token": token,
            "user_id": "u1",
            "user_id_hash": u1_hash,
        }
        assert (
            httpx.post(f"{server.url}/sdk/v1/subscribers", json=registration, timeout=10).status_code == 201
        )

        head = (
            f"POST /push_batch?push_key={push['push_key']} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {10 * 1024 * 1024}\r\n\r\n"
        )
        answer = _head_only(server.port, head.encode())
        assert answer.startswith(b"HTTP/1.1 413 "), answer
        assert answer.split(b"\r\n\r\n", 1)[1] == (
            b'{"code":413,"message":"Request Entity Too Large","error":"Request Entity Too Large"}'
        )

        fcm.script(token, [Hang()])  # whatever the crash interrupts, the first attempt never ends
        accepted = httpx.post(
            f"{server.url}/push_batch", params={"push_key": push["push_key"]}, json=["u1"], timeout=10
        )
        server.kill()
        assert accepted.status_code == 202, accepted.text
        batch_id = accepted.json()["batch_id"]

        restarted = procs.server()
        assert _report(restarted.url, batch_id) == {
            "batch_id": batch_id,
            "status": "done",
            "retry_possible": False,
            "counts": {"total": 1, "sent": 1, "warnings": 0, "failures": 0},
            "warnings": [],
            "failures": [],
        }
        assert fcm.accepted == 1
        delivered = fcm.received_for(token)[-1].message
        assert delivered["notification"] == {"title": "Launch", "body": "Hello from the CLI"}

        counters = httpx.get(
            f"{restarted.url}/admin/v1/push-campaigns/{push['campaign_id']}",
            headers={"Authorization": "Bearer e2e-admin-token"},
            timeout=10,
        ).json()
        assert (counters["batches"], counters["delivery"]["sent"]) == (1, 1)
    finally:
        procs.close()


def test_a_served_batch_of_one_object_and_its_time_limit_from_the_environment(
    tmp_path: Path, fcm: FakeFcm
) -> None:
    procs = _processes(tmp_path, fcm, CLARION_BATCH_TIME_LIMIT_S="5")
    try:
        app = _fcm_app(procs, tmp_path, fcm, "limit-project")
        push = json.loads(procs.cli("push-campaigns", "create", app["app_key"], "--name", "n", "--json"))
        server = procs.server()
        tokens = {user: fcm.new_token("limit-project") for user in ("user-1", "user-2")}
        for user, token in tokens.items():
            registration = {
                "app_key": app["app_key"],
                "platform": "android",
                "token": token,
                "user_id": user,
                "user_id_hash": id_hash(app["identity_secret_key"], user),
            }
            answer = httpx.post(f"{server.url}/sdk/v1/subscribers", json=registration, timeout=10)
            assert answer.status_code == 201, answer.text
        # user-2's push service is busy for 60 s: past the batch's 5 s.
        fcm.script(tokens["user-2"], [fcm_error("UNAVAILABLE", retry_after="60")])

        body = {"swrve_user_id": ["user-1", "user-2"], "message": "Hello there!"}
        accepted = httpx.post(
            f"{server.url}/push_batch", params={"push_key": push["push_key"]}, json=body, timeout=10
        )
        assert accepted.status_code == 202, accepted.text
        batch_id = accepted.json()["batch_id"]
        status = _report(server.url, batch_id)
        reason = status["warnings"][0]["reason"] if status["warnings"] else ""
        late = re.fullmatch(r"Exceeded time limit by (\d+) ms", reason)
        assert late is not None, status
        assert 55_000 <= int(late.group(1)) <= 60_000  # 60 s from the first attempt, less the 5 s limit
        assert status == {
            "batch_id": batch_id,
            "status": "done_with_warnings",
            "retry_possible": True,
            "counts": {"total": 2, "sent": 1, "warnings": 1, "failures": 0},
            "warnings": [{"user": "user-2", "reason": reason, "safe_to_resend": True}],
            "failures": [],
        }
        [delivered] = fcm.received_for(tokens["user-1"])
        assert delivered.message["notification"]["body"] == "Hello there!"
    finally:
        procs.close()
