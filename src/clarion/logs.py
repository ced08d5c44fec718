"""The one logging setup of every Clarion process: the CLI, `serve` (uvicorn's loggers too) and `worker`.

`CLARION_LOG_FORMAT`: `text` (a line a person reads) or `json` (one JSON object a line, for a log
pipeline); unset, text on a terminal and JSON otherwise (under systemd, in a container).
`CLARION_LOG_LEVEL`: debug, info (the default), warning or error.

A JSON line carries `time` (UTC, ISO 8601), `level`, `logger` and `message`, then the structured
fields a call passed in `extra` (e.g. `campaign_id`), and `exc_info` for a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# What a LogRecord holds of its own: everything else on a record came from `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class _AlembicChatter(logging.Filter):
    """Alembic says which plugins it set up, which dialect it uses and how it runs DDL on every upgrade,
    even one with nothing to do, i.e. on every start and CLI call; only a migration it runs is news."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("alembic") or record.levelno >= logging.WARNING:
            return True
        return record.getMessage().startswith("Running upgrade")


def chosen_format(format: str | None, stream: TextIO) -> str:
    if format:
        return format
    return "text" if stream.isatty() else "json"


def setup(format: str | None, level: str, stream: TextIO | None = None) -> None:
    """Route every logger (Clarion's, uvicorn's, alembic's) to one handler on stderr, in one format."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    if chosen_format(format, stream) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # On the handler: a logger's own filter would not see its children's records.
    handler.addFilter(_AlembicChatter())
    # uvicorn's own loggers keep no handler of their own, so they reach the one above.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
