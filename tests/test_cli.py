"""The command line, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import httpx
import pytest

from tests.support import free_port


def clarion(
    database_url: str, *args: str, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CLARION_DATABASE_URL": database_url, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "clarion.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def test_db_upgrade_is_idempotent(database_url: str) -> None:
    assert clarion(database_url, "db", "upgrade").stdout.strip() == "database is up to date"
    assert clarion(database_url, "db", "upgrade").returncode == 0


def test_apps_create_prints_the_keys(database_url: str) -> None:
    created = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)
    assert sorted(created) == ["app_id", "app_key", "app_secret", "identity_secret_key", "vapid_public_key"]
    assert isinstance(created["app_id"], int)
    assert len(created["app_key"]) == 32
    assert len(created["app_secret"]) == 32
    # The application server key: base64url of a 65-byte uncompressed P-256 point (87 chars, no padding).
    assert len(created["vapid_public_key"]) == 87
    assert created["vapid_public_key"].startswith("B")
    again = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)
    assert again["app_key"] != created["app_key"]
    assert again["app_secret"] != created["app_secret"]


def test_apps_update_changes_plan_and_batch_push(database_url: str) -> None:
    created = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)
    out = clarion(
        database_url,
        "apps",
        "update",
        created["app_key"],
        "--plan",
        "unlimited",
        "--batch-push",
        "off",
        "--json",
    )
    assert json.loads(out.stdout) == {
        "app_id": created["app_id"],
        "app_key": created["app_key"],
        "plan": "unlimited",
        "batch_push": False,
    }
    missing = clarion(database_url, "apps", "update", "nope", "--plan", "free", check=False)
    assert missing.returncode == 2
    assert json.loads(missing.stderr.strip().splitlines()[-1])["error"] == "not_found"


def test_segments_create_validates_and_prints(database_url: str) -> None:
    created = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)
    terms = '[{"association": "AND", "name": "news"}]'
    unknown = clarion(
        database_url,
        "segments",
        "create",
        created["app_key"],
        "Readers",
        "--tags-segment",
        terms,
        check=False,
    )
    assert unknown.returncode == 2
    assert json.loads(unknown.stderr.strip().splitlines()[-1])["field"] == "tags_segment[0].name"
    bad = clarion(
        database_url, "segments", "create", created["app_key"], "R", "--tags-segment", "[{", check=False
    )
    assert bad.returncode == 2
    assert json.loads(bad.stderr.strip().splitlines()[-1])["field"] == "tags_segment"


@pytest.mark.e2e
def test_serve_answers_health_and_stops_on_sigterm(tmp_path: object, database_url: str) -> None:
    port = free_port()
    env = {**os.environ, "CLARION_DATABASE_URL": database_url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "clarion.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None
            import time

            time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).json() == {"status": "ok"}
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
        assert "Application shutdown complete." in output
        assert "generated admin token" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_apps_credentials_print_identifiers_only(database_url: str) -> None:
    created = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)
    secret = "-starts-with-a-dash"  # the = form keeps argparse from reading it as an option
    out = clarion(
        database_url,
        "apps",
        "credentials",
        created["app_key"],
        "--adm-client-id=amzn1.client",
        f"--adm-client-secret={secret}",
        "--json",
    )
    assert json.loads(out.stdout) == {"provider": "adm", "client_id": "amzn1.client"}
    both = clarion(
        database_url,
        "apps",
        "credentials",
        created["app_key"],
        "--fcm",
        "x.json",
        "--adm-client-id=a",
        check=False,
    )
    assert both.returncode == 2
    assert json.loads(both.stderr.strip().splitlines()[-1])["field"] == "provider"
