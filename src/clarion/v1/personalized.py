"""A /v1 campaign's personal content (docs/personalization.md): its texts are templates, and it may
carry content per language. The push body's own rules (gravitec/push_body.py) check the payload; the
templates are compiled by campaign/personal.py when the campaign is created."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from clarion import errors
from clarion.attributes import check_key, check_language
from clarion.campaign.personal import stand_in
from clarion.campaign.schemas import AttributeCondition, Button, Content, Personalization
from clarion.validation import clickable_url_problem, http_url_problem


def _url(value: str, field: str, *, clickable: bool) -> str:
    problem = (clickable_url_problem if clickable else http_url_problem)(stand_in(value))
    if problem is not None:
        raise errors.InvalidField(f"{field} {problem}", field=field)
    return value


def _language(default: Content, tag: str, texts: Mapping[str, Any]) -> Content:
    field = f"languages.{tag}"
    redirect = texts.get("redirect_url")
    buttons = texts.get("buttons")
    return replace(
        default,
        title=texts.get("title") or default.title,
        message=str(texts["message"]),
        redirect_url=default.redirect_url
        if redirect is None
        else _url(redirect, f"{field}.redirect_url", clickable=False),
        buttons=default.buttons
        if buttons is None
        else tuple(
            Button(b["title"], _url(b["url"], f"{field}.buttons[{i}].url", clickable=True))
            for i, b in enumerate(buttons)
        ),
    )


def personalization(
    content: Content, default_language: str | None, languages: Mapping[str, Mapping[str, Any]]
) -> Personalization:
    """Templates always (a /v1 text with no template tag is sent as it is); the languages checked."""
    default = None if default_language is None else check_language(default_language, "default_language")
    chosen: dict[str, Content] = {}
    for tag, texts in languages.items():
        check_language(tag, f"languages.{tag}")
        if tag.lower() in {known.lower() for known in chosen} or (default and tag.lower() == default.lower()):
            raise errors.InvalidField(
                f"languages.{tag}: this language is given twice", field=f"languages.{tag}"
            )
        chosen[tag] = _language(content, tag, texts)
    return Personalization(templates=True, default_language=default, languages=tuple(chosen.items()))


def conditions(given: list[dict[str, Any]]) -> tuple[AttributeCondition, ...]:
    """An audience's `attributes` (each {key, op, value | values}) as conditions, or a 422 naming one."""
    chosen: list[AttributeCondition] = []
    for index, condition in enumerate(given):
        field = f"attributes[{index}]"
        key = check_key(condition["key"], f"{field}.key")
        op, value, values = condition["op"], condition.get("value"), condition.get("values")
        if op == "equals" and (value is None or values is not None):
            raise errors.InvalidField(
                f"{field}: equals takes `value` (a string) and no `values`", field=field
            )
        if op == "in" and (values is None or value is not None):
            raise errors.InvalidField(f"{field}: in takes `values` (a list) and no `value`", field=field)
        if op == "exists" and (value is not None or values is not None):
            raise errors.InvalidField(f"{field}: exists takes neither `value` nor `values`", field=field)
        chosen.append(AttributeCondition(key, op, (value,) if value is not None else tuple(values or ())))
    return tuple(chosen)
