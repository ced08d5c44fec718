"""Reading a batch body user by user, so that a syntax error part-way loses only what follows it.

Three shapes (docs/swrve-batch.md): an array of user objects; an object of common parameters with
"users": ["id", {"swrve_user_id": …, personalized params}, …]; or one object naming its users
itself ({"swrve_user_id": [ids], params}: its parameters are every named user's). The body is walked
one array element at a time with json.JSONDecoder.raw_decode; at the first syntax error the rest is
reported as "Parsing impossible. {detail}" from the identified user onwards.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class UnreadableNumber:
    """A number that parses but cannot be used: an integer longer than Python converts (its int max
    str digits, 4300 by default), a float that overflows to infinity, or NaN/Infinity (which JSON
    does not even allow). It stays in the parsed value, so that only the user it belongs to fails
    (swrve/params.py says why), instead of an exception that would stop the whole batch."""

    text: str

    def describe(self) -> str:
        digits = self.text.lstrip("-")
        if digits.isdigit():
            return f"an integer of {len(digits)} digits"
        return f"the number {self.text[:20]}"


def _int(text: str) -> int | UnreadableNumber:
    try:
        return int(text)
    except ValueError:  # longer than sys.get_int_max_str_digits()
        return UnreadableNumber(text)


def _float(text: str) -> float | UnreadableNumber:
    value = float(text)
    return value if math.isfinite(value) else UnreadableNumber(text)


_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=UnreadableNumber)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# To name the user a broken element was about, when its id is still legible (no escapes, and no
# control characters, which JSON forbids in a string and PostgreSQL in text).
# For an array of ids, the first one names the element.
_USER_ID = re.compile(r'"(?:swrve_user_id|external_user_id)"\s*:\s*(?:\[\s*)?"([^"\\\x00-\x1f]{1,255})"')


# The keys that name a batch's users, in a user object or in the batch object itself.
ID_KEYS = ("swrve_user_id", "external_user_id")


@dataclass(frozen=True)
class UserEntry:
    """One element of the users list: an id, or an object with id(s) and personalized params.

    `index` is its place in the users array; None for the ids the batch object names itself.
    """

    index: int | None
    value: Any

    @property
    def where(self) -> str:
        return "the batch object" if self.index is None else f"user #{self.index}"


@dataclass(frozen=True)
class Broken:
    """Parsing stopped at this element: it and everything after it are reported."""

    index: int
    user: str | None
    detail: str


@dataclass
class Parsed:
    common: dict[str, Any] = field(default_factory=dict)
    entries: list[UserEntry] = field(default_factory=list)
    broken: Broken | None = None


class _Syntax(Exception):
    def __init__(self, position: int, detail: str) -> None:
        super().__init__(detail)
        self.position = position
        self.detail = detail


def _skip(text: str, position: int) -> int:
    match = _WHITESPACE.match(text, position)
    return match.end() if match else position


def _expect(text: str, position: int, char: str) -> int:
    position = _skip(text, position)
    if position >= len(text) or text[position] != char:
        found = text[position : position + 10] if position < len(text) else "end of input"
        raise _Syntax(position, f"expected '{char}' at char {position}, found {found!r}")
    return position + 1


def _value(text: str, position: int) -> tuple[Any, int]:
    position = _skip(text, position)
    try:
        return _DECODER.raw_decode(text, position)
    except json.JSONDecodeError as exc:
        raise _Syntax(exc.pos, str(exc)) from None  # "{what}: line L column C (char N)"
    except RecursionError:
        raise _Syntax(position, f"nested too deeply at char {position}") from None


def _users(text: str, position: int, parsed: Parsed) -> int:
    """Parse an array of users from text[position] == '['; returns the position after it."""
    position = _expect(text, position, "[")
    index = 0
    if text[_skip(text, position) : _skip(text, position) + 1] == "]":
        return _skip(text, position) + 1
    while True:
        start = position
        try:
            value, position = _value(text, position)
            parsed.entries.append(UserEntry(index, value))
            position = _skip(text, position)
            if position < len(text) and text[position] == "]":
                return position + 1
            position = _expect(text, position, ",")
        except _Syntax as exc:
            parsed.broken = Broken(index, _named_user(text, start, exc.position), exc.detail)
            return len(text)
        index += 1


def _named_user(text: str, start: int, error_at: int, end: int | None = None) -> str | None:
    """The id in the broken element, read up to the end of the object the error is in (so that a
    later user's id is not taken for it), or up to `end`."""
    if end is None:
        end = text.find("}", error_at)
    named = _USER_ID.search(text, start, len(text) if end == -1 else end)
    return named.group(1) if named else None


def parse(body: bytes) -> Parsed:
    parsed = Parsed()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        parsed.broken = Broken(0, None, f"the body is not UTF-8: {exc.reason} at byte {exc.start}")
        return parsed
    position = _skip(text, 0)
    try:
        if text[position : position + 1] == "[":
            position = _users(text, position, parsed)
        elif text[position : position + 1] == "{":
            position = _object(text, position, parsed)
        else:
            raise _Syntax(position, "the batch must be a JSON array of users or a JSON object")
        if parsed.broken is None and _skip(text, position) != len(text):
            raise _Syntax(position, f"extra data after the batch at char {position}")
    except _Syntax as exc:
        # Broken outside a users array: before any user was read, a legible id before the error
        # can only be one the batch object names itself.
        user = None if parsed.entries else _named_user(text, 0, exc.position, exc.position)
        parsed.broken = Broken(len(parsed.entries), user, exc.detail)
    return parsed


_NO_USERS = "the batch object names no users: it needs 'users', 'swrve_user_id' or 'external_user_id'"


def _object(text: str, position: int, parsed: Parsed) -> int:
    """A batch object: its keys but `users` are common parameters; ids among them are users too."""
    position = _expect(text, position, "{")
    seen_users = False
    if text[_skip(text, position) : _skip(text, position) + 1] == "}":
        raise _Syntax(position, _NO_USERS)
    while True:
        key, position = _value(text, position)
        if not isinstance(key, str):
            raise _Syntax(position, f"an object key must be a string at char {position}")
        position = _expect(text, position, ":")
        if key == "users":
            seen_users = True
            if text[_skip(text, position) : _skip(text, position) + 1] != "[":
                raise _Syntax(position, "'users' must be an array")
            position = _users(text, position, parsed)
            if parsed.broken is not None:
                _object_users(parsed)  # the ids it named before the break are still read
                return len(text)
        else:
            parsed.common[key], position = _value(text, position)
        position = _skip(text, position)
        if position < len(text) and text[position] == "}":
            if not _object_users(parsed) and not seen_users:
                raise _Syntax(position, _NO_USERS)
            return position + 1
        position = _expect(text, position, ",")


def _object_users(parsed: Parsed) -> bool:
    """The ids the batch object names itself, as the first entry: its own parameters (the common
    ones) apply to them. False when it names none."""
    named = {key: parsed.common[key] for key in ID_KEYS if key in parsed.common}
    if named:
        parsed.entries.insert(0, UserEntry(None, named))
    return bool(named)
