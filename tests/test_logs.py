"""The one logging setup (clarion.logs): JSON lines with their fields, text, and no alembic chatter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from clarion import logs


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_the_fields_passed() -> None:
    stream = io.StringIO()
    logs.setup("json", "info", stream)
    logging.getLogger("clarion.delivery").info(
        "campaign %s finished: %s", 7, "4 sent", extra={"campaign_id": 7, "counts": {"sent": 4}}
    )
    line = json.loads(stream.getvalue())
    assert line.pop("time").endswith("+00:00")
    assert line == {
        "level": "info",
        "logger": "clarion.delivery",
        "message": "campaign 7 finished: 4 sent",
        "campaign_id": 7,
        "counts": {"sent": 4},
    }


def test_a_traceback_stays_inside_its_json_line() -> None:
    stream = io.StringIO()
    logs.setup("json", "info", stream)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("clarion").exception("failed")
    (line,) = stream.getvalue().splitlines()
    parsed = json.loads(line)
    assert parsed["message"] == "failed"
    assert parsed["exc_info"].endswith("ValueError: boom")


def test_the_default_format_is_text_on_a_terminal_and_json_otherwise() -> None:
    assert logs.chosen_format(None, Terminal()) == "text"
    assert logs.chosen_format(None, io.StringIO()) == "json"
    assert logs.chosen_format("json", Terminal()) == "json"
    terminal = Terminal()
    logs.setup(None, "warning", terminal)
    logging.getLogger("clarion").warning("queue unreachable")
    logging.getLogger("clarion").info("not shown below the level")
    assert terminal.getvalue().endswith(" WARNING clarion: queue unreachable\n")


def test_alembic_says_only_which_migrations_it_ran() -> None:
    stream = io.StringIO()
    logs.setup("json", "info", stream)
    migration = logging.getLogger("alembic.runtime.migration")
    migration.setLevel(logging.INFO)  # tests/conftest.py quiets alembic for the whole suite
    logging.getLogger("alembic.runtime.plugins").info("setup plugin alembic.autogenerate.schemas")
    migration.info("Context impl SQLiteImpl.")
    migration.info("Will assume non-transactional DDL.")
    migration.info("Running upgrade 0007 -> 0008, audience indexes")
    migration.warning("something odd")
    messages = [json.loads(line)["message"] for line in stream.getvalue().splitlines()]
    migration.setLevel(logging.NOTSET)
    assert messages == ["Running upgrade 0007 -> 0008, audience indexes", "something odd"]
