"""The compose form's platform boxes read by /v1's rule (campaign.service.chosen_platforms)."""

from __future__ import annotations

import pytest

from clarion import errors
from clarion.campaign.schemas import PLATFORMS
from clarion.campaign.service import chosen_platforms
from clarion.console import compose


def test_every_platform_has_a_box() -> None:
    assert tuple(platform for platform, _ in compose.PLATFORM_LABELS) == PLATFORMS


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ({}, None),  # a form without the boxes: every platform
        ({"platforms_shown": "1", **{f"platform.{p}": "1" for p in PLATFORMS}}, None),
        ({"platforms_shown": "1", "platform.ios": "1", "platform.web": "1"}, ("web", "ios")),
    ],
)
def test_the_boxes_ticked_are_the_platforms(form: dict[str, str], expected: tuple[str, ...] | None) -> None:
    assert compose.platforms(form) == expected


def test_none_ticked_and_unknown_platforms_are_refused_with_the_apis_messages() -> None:
    with pytest.raises(errors.InvalidField) as none:
        compose.platforms({"platforms_shown": "1"})
    with pytest.raises(errors.InvalidField) as unknown:
        chosen_platforms(["web", "symbian"])
    assert (none.value.field, none.value.message) == ("platforms", "platforms: choose at least one platform")
    assert unknown.value.message == "platforms: 'symbian' is not one of web, android, ios, adm, wns"
    assert chosen_platforms(["ios", "web", "ios"]) == ("ios", "web")
