"""`clarion apps update`: an app's default time zone and quiet hours (docs/scheduling.md)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.test_cli import run


def test_apps_update_sets_checks_and_clears_the_zone_and_quiet_hours(tmp_path: Path) -> None:
    env = {"CLARION_DATABASE_URL": f"sqlite:///{tmp_path / 'clarion.db'}", "CLARION_DATA_DIR": str(tmp_path)}
    app_key = json.loads(run("apps", "create", "News", "--json", env=env).stdout)["app_key"]
    options = ["--default-timezone", "Asia/Tokyo", "--quiet-start", "22:00", "--quiet-end", "07:00"]
    updated = json.loads(
        run("apps", "update", app_key, *options, "--quiet-mode", "drop", "--json", env=env).stdout
    )
    assert {k: updated[k] for k in ("default_timezone", "quiet_start", "quiet_end", "quiet_mode")} == {
        "default_timezone": "Asia/Tokyo",
        "quiet_start": "22:00",
        "quiet_end": "07:00",
        "quiet_mode": "drop",
    }
    refused = run("apps", "update", app_key, "--default-timezone", "Asia/Atlantis", env=env)
    assert (refused.returncode, json.loads(refused.stderr.splitlines()[-1])) == (
        2,
        {
            "error": "invalid_field",
            "message": "default_timezone: unknown time zone 'Asia/Atlantis'"
            " (an IANA name such as Europe/Paris)",
            "field": "default_timezone",
        },
    )
    cleared = run("apps", "update", app_key, "--quiet-start", "", "--quiet-end", "", "--json", env=env)
    assert (json.loads(cleared.stdout)["quiet_start"], json.loads(cleared.stdout)["quiet_end"]) == (
        None,
        None,
    )
    shown = json.loads(run("apps", "show", app_key, "--json", env=env).stdout)
    assert (shown["default_timezone"], shown["quiet_start"], shown["quiet_mode"]) == (
        "Asia/Tokyo",
        None,
        "drop",
    )


def test_apps_update_sets_checks_and_clears_the_frequency_cap(tmp_path: Path) -> None:
    env = {"CLARION_DATABASE_URL": f"sqlite:///{tmp_path / 'clarion.db'}", "CLARION_DATA_DIR": str(tmp_path)}
    app_key = json.loads(run("apps", "create", "News", "--json", env=env).stdout)["app_key"]
    options = ["--frequency-cap", "3", "--frequency-cap-period-s", "86400", "--json"]
    updated = json.loads(run("apps", "update", app_key, *options, env=env).stdout)
    assert (updated["frequency_cap"], updated["frequency_cap_period_s"]) == (3, 86400)
    refused = run("apps", "update", app_key, "--frequency-cap-period-s", "30", env=env)
    assert (refused.returncode, json.loads(refused.stderr.splitlines()[-1])) == (
        2,
        {
            "error": "invalid_field",
            "message": "frequency_cap_period_s must be 0 (none) or 60-2592000 seconds",
            "field": "frequency_cap_period_s",
        },
    )
    # One number alone keeps the other; 0 clears both.
    changed = json.loads(run("apps", "update", app_key, "--frequency-cap", "5", "--json", env=env).stdout)
    assert (changed["frequency_cap"], changed["frequency_cap_period_s"]) == (5, 86400)
    cleared = json.loads(run("apps", "update", app_key, "--frequency-cap", "0", "--json", env=env).stdout)
    assert (cleared["frequency_cap"], cleared["frequency_cap_period_s"]) == (None, None)
