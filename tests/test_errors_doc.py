"""docs/api-errors.md lists exactly the error catalogue of clarion.errors."""

from __future__ import annotations

import re
from pathlib import Path

from clarion import errors

DOC = Path(__file__).resolve().parent.parent / "docs" / "api-errors.md"
ROW = re.compile(r"^\| `([a-z_]+)` \| (\d{3}) \| (.+) \|$")


def test_every_catalogued_error_is_documented_and_nothing_else() -> None:
    documented = {
        m.group(1): (int(m.group(2)), m.group(3)) for m in map(ROW.match, DOC.read_text().splitlines()) if m
    }
    catalogue = {e.code: (e.status, e.message) for e in errors.CATALOGUE}
    assert documented == catalogue


def test_every_error_class_is_in_the_catalogue() -> None:
    def subclasses(cls: type[errors.ClarionError]) -> set[type[errors.ClarionError]]:
        found = set(cls.__subclasses__())
        for sub in list(found):
            found |= subclasses(sub)
        return found

    assert subclasses(errors.ClarionError) == set(errors.CATALOGUE)
    assert len({e.code for e in errors.CATALOGUE}) == len(errors.CATALOGUE)
