"""A /v1 campaign's attribute conditions as the core takes them (docs/personalization.md); its content
per language is checked by campaign/personal.py (`personalization`), which the console shares."""

from __future__ import annotations

from typing import Any

from clarion import errors
from clarion.attributes import check_key
from clarion.campaign.schemas import AttributeCondition


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
