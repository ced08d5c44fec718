"""The rules for a subscriber's attributes and language, shared by every way they are set (/v1, the
Web SDK, registration, import) and by the features that read them (audiences, templates, per-language
content). docs/personalization.md documents each limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from clarion import errors
from clarion.validation import storable

# 64 per subscriber: enough for a profile (name, plan, city, …), small enough that loading a job's
# 500 recipients' attributes for its templates stays one short query.
MAX_ATTRIBUTES = 64
# A key is a template name as it is (`{{ first_name }}`): a letter or '_', then letters, digits, '_'.
MAX_KEY_CHARS = 64
KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# 255 characters: the indexed column (subscriber_attributes.value) that audiences look values up in.
MAX_VALUE_CHARS = 255
# Names a template gives the subscriber's own fields; an attribute may not shadow them.
RESERVED_KEYS = frozenset({"alias", "tags", "language", "attributes"})

# BCP 47, loosely: a 2-3 letter primary language, then subtags of 1-8 letters or digits ("en",
# "pt-BR", "zh-Hant-TW"); 16 characters, the subscribers.language column (migration 0017).
MAX_LANGUAGE_CHARS = 16
LANGUAGE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*")


def check_key(key: Any, field: str) -> str:
    if not isinstance(key, str) or KEY.fullmatch(key) is None:
        raise errors.InvalidField(
            f"{field}: a key is 1-{MAX_KEY_CHARS} letters, digits or '_', not starting with a digit",
            field=field,
        )
    if key in RESERVED_KEYS:
        raise errors.InvalidField(f"{field}: {key!r} is reserved for the subscriber's own field", field=field)
    return key


def check_value(value: Any, field: str) -> str:
    if not isinstance(value, str) or not storable(value) or len(value) > MAX_VALUE_CHARS:
        raise errors.InvalidField(
            f"{field}: a value is a string of at most {MAX_VALUE_CHARS} characters (null removes the key)",
            field=field,
        )
    return value


def check_changes(changes: Any, field: str = "attributes") -> dict[str, str | None]:
    """A request's attributes: an object of key -> string (set) or null (remove)."""
    if not isinstance(changes, Mapping):
        raise errors.InvalidField(f"{field} must be an object of keys to strings", field=field)
    if len(changes) > MAX_ATTRIBUTES:
        raise errors.InvalidField(f"{field}: at most {MAX_ATTRIBUTES} attributes", field=field)
    checked: dict[str, str | None] = {}
    for key, value in changes.items():
        named = check_key(key, f"{field}.{key}" if isinstance(key, str) else field)
        checked[named] = None if value is None else check_value(value, f"{field}.{named}")
    return checked


def too_many(count: int, field: str = "attributes") -> errors.InvalidField:
    return errors.InvalidField(
        f"{field}: a subscriber holds at most {MAX_ATTRIBUTES} attributes", field=field
    )


def check_language(value: Any, field: str = "language") -> str:
    """A language tag as given (case kept); compared case-insensitively wherever it is read."""
    if not isinstance(value, str) or len(value) > MAX_LANGUAGE_CHARS or LANGUAGE.fullmatch(value) is None:
        raise errors.InvalidField(
            f"{field} must be a BCP 47 language tag such as 'en' or 'pt-BR' "
            f"(at most {MAX_LANGUAGE_CHARS} characters)",
            field=field,
        )
    return value


def language_candidates(tag: str | None) -> tuple[str, ...]:
    """The content languages that may serve a subscriber's tag, best first: the whole tag, then
    shorter prefixes ("zh-hant-tw", "zh-hant", "zh"), lower-cased."""
    if not tag:
        return ()
    parts = tag.lower().split("-")
    return tuple("-".join(parts[:n]) for n in range(len(parts), 0, -1))
