"""README.md is self-contained: its Configuration table lists every variable Settings reads, each with
the default Settings has."""

from __future__ import annotations

import re
from pathlib import Path

from clarion.config import Settings

README = Path(__file__).resolve().parent.parent / "README.md"
ROW = re.compile(r"^\| `(CLARION_[A-Z0-9_]+)` \| (.+?) \| (.+) \|$")


def _shown(default: object) -> str:
    """A default as the README writes it: `value`, numbers without a trailing .0, unset, or empty."""
    if default is None:
        return "unset"
    if default == "":
        return "empty"
    if isinstance(default, float):
        return f"`{default:g}`"
    return f"`{default}`"


def test_every_setting_is_listed_with_its_default() -> None:
    section = README.read_text().split("## Configuration\n", 1)[1].split("\n## ", 1)[0]
    listed = {m.group(1): m.group(2) for m in map(ROW.match, section.splitlines()) if m}
    expected = {
        f"CLARION_{name.upper()}": _shown(field.default) for name, field in Settings.model_fields.items()
    }
    assert listed == expected
