"""Settings: the data directory, push hosts extended or replaced, unknown variables named."""

from __future__ import annotations

from pathlib import Path

import platformdirs
import pytest

from clarion.config import DEFAULT_PUSH_HOSTS, Settings, unknown_variables


def test_the_default_database_is_absolute_in_the_per_user_data_directory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CLARION_DATA_DIR")  # set for every test by conftest; here, the real default
    monkeypatch.delenv("CLARION_DATABASE_URL", raising=False)
    settings = Settings()
    home = Path(platformdirs.user_data_dir("clarion", appauthor=False))
    assert home.is_absolute()
    assert settings.database_url == f"sqlite:///{home}/clarion.db"
    assert settings.files_dir() == home  # nothing is written: Settings only names the places


def test_a_data_directory_and_files_beside_the_database(tmp_path: Path) -> None:
    assert Settings(data_dir=str(tmp_path)).database_url == f"sqlite:///{tmp_path}/clarion.db"
    elsewhere = Settings(data_dir=str(tmp_path), database_url=f"sqlite:///{tmp_path}/db/x.db")
    assert elsewhere.files_dir() == tmp_path / "db"
    postgres = Settings(data_dir=str(tmp_path), database_url="postgresql://db/clarion")
    assert postgres.files_dir() == tmp_path


def test_push_hosts_are_replaced_or_extended() -> None:
    defaults = set(DEFAULT_PUSH_HOSTS.split(","))
    assert Settings().push_host_set() == defaults
    assert Settings(push_hosts="push.example.net").push_host_set() == {"push.example.net"}
    extended = Settings(push_hosts_extra=" Push.Example.net , 127.0.0.1:8443").push_host_set()
    assert extended == defaults | {"push.example.net", "127.0.0.1:8443"}


def test_unknown_variables_are_named_with_the_closest_setting() -> None:
    environ = {
        "CLARION_DATABSE_URL": "x",
        "CLARION_PUSH_HOST": "x",
        "CLARION_WHATEVER": "x",
        "CLARION_QUEUE_URL": "memory://",
        "CLARION_TEST_REDIS_URL": "redis://",  # the test suite's own
        "HOME": "/root",
    }
    assert unknown_variables(environ) == [
        "unknown setting CLARION_DATABSE_URL is ignored (did you mean CLARION_DATABASE_URL?)",
        "unknown setting CLARION_PUSH_HOST is ignored (did you mean CLARION_PUSH_HOSTS?)",
        "unknown setting CLARION_WHATEVER is ignored",
    ]
