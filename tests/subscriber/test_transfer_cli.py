"""`clarion subscribers import|export`, run as a real process."""

from __future__ import annotations

import json
from pathlib import Path

from tests.subscriber.transfer_data import NDJSON_FILE, NDJSON_REPORT, ONESIGNAL_CSV, ONESIGNAL_REPORT
from tests.test_cli import clarion

HOSTS = {"CLARION_PUSH_HOSTS": "push.example.net"}


def test_import_and_export_from_the_terminal(database_url: str, tmp_path: Path) -> None:
    app_key = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)["app_key"]
    (tmp_path / "subs.ndjson").write_bytes(NDJSON_FILE)
    (tmp_path / "onesignal.csv").write_bytes(ONESIGNAL_CSV)

    done = clarion(
        database_url, "subscribers", "import", app_key, str(tmp_path / "subs.ndjson"), "--json", env=HOSTS
    )
    assert json.loads(done.stdout) == NDJSON_REPORT
    text = clarion(database_url, "subscribers", "import", app_key, str(tmp_path / "onesignal.csv"), env=HOSTS)
    assert text.stdout.splitlines() == [
        "lines: 7",
        "created: 2",
        "existing: 0",
        "refused: 5",
        *(f"line {refusal['line']}: {refusal['reason']}" for refusal in ONESIGNAL_REPORT["refusals"]),
    ]

    csv_out = clarion(database_url, "subscribers", "export", app_key, "--format", "csv", "--platform", "ios")
    header, row = csv_out.stdout.splitlines()
    assert header == (
        "platform,endpoint,p256dh,auth,token,tags,alias,user_id,external_user_id,language,attributes,"
        "active,created_at"
    )
    assert row.startswith("ios,,,,apns-device-token,,,,,fr,,true,")
    ndjson_out = clarion(database_url, "subscribers", "export", app_key, "--tag", "news")
    assert [json.loads(line)["tags"] for line in ndjson_out.stdout.splitlines()] == [
        ["news", "Sport"],
        ["cars", "news"],
        ["news"],
    ]


def test_what_cannot_be_imported_at_all(database_url: str, tmp_path: Path) -> None:
    app_key = json.loads(clarion(database_url, "apps", "create", "Shop", "--json").stdout)["app_key"]
    (tmp_path / "subs.txt").write_bytes(NDJSON_FILE)
    (tmp_path / "names.csv").write_bytes(b"name\nbob\n")

    unnamed = clarion(database_url, "subscribers", "import", app_key, str(tmp_path / "subs.txt"), check=False)
    assert unnamed.returncode == 2
    name = tmp_path / "subs.txt"
    expected = f"clarion: cannot tell the format of {name} from its name: give --format csv or ndjson"
    assert unnamed.stderr.splitlines()[-1] == expected
    missing = clarion(database_url, "subscribers", "import", app_key, str(tmp_path / "none.csv"), check=False)
    assert missing.returncode == 2
    assert (
        missing.stderr.splitlines()[-1]
        == f"clarion: cannot read {tmp_path / 'none.csv'}: No such file or directory"
    )
    header = clarion(database_url, "subscribers", "import", app_key, str(tmp_path / "names.csv"), check=False)
    assert header.returncode == 2
    assert json.loads(header.stderr.splitlines()[-1]) == {
        "error": "invalid_field",
        "message": "the CSV header must name an endpoint, token or identifier column",
        "field": "header",
    }
    unknown = clarion(database_url, "subscribers", "import", "nope", str(tmp_path / "names.csv"), check=False)
    assert unknown.returncode == 2
    assert json.loads(unknown.stderr.splitlines()[-1]) == {
        "error": "not_found",
        "message": "There is no app with app_key: nope",
        "field": "app_key",
    }
    explicit = clarion(
        database_url,
        "subscribers",
        "import",
        app_key,
        str(tmp_path / "subs.txt"),
        "--format",
        "ndjson",
        "--json",
    )
    assert json.loads(explicit.stdout)["lines"] == 12
