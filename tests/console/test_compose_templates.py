"""The compose form's texts are templates, as /v1's are: a templated URL is checked by the push
body's URL rule with each template tag as a plain word, and kept as written."""

from __future__ import annotations

import pytest

from clarion import errors
from clarion.campaign.schemas import Personalization
from clarion.console import compose

FORM = {
    "payload.title": 'Hi {{ first_name | default("there") }}',
    "payload.message": "News",
    "payload.redirect_url": "https://example.com/u/{{ alias | urlencode }}",
    "payload.buttons[0].title": "{{ plan }}",
    "payload.buttons[0].url": "https://example.com/plans/{{ plan }}",
}


def test_templated_texts_and_urls_are_kept_as_written() -> None:
    spec = compose.parse(FORM)
    assert spec.personalization == Personalization(templates=True)
    assert (spec.content.title, spec.content.redirect_url) == (
        FORM["payload.title"],
        FORM["payload.redirect_url"],
    )
    assert [(b.title, b.url) for b in spec.content.buttons] == [
        ("{{ plan }}", "https://example.com/plans/{{ plan }}")
    ]


def test_a_templated_url_still_follows_the_url_rule() -> None:
    with pytest.raises(errors.InvalidField) as refused:
        compose.parse({**FORM, "payload.redirect_url": "javascript:{{ alias }}"})
    assert (refused.value.field, refused.value.message) == (
        "payload.redirect_url",
        "payload.redirect_url: must be a valid http(s) URL",
    )
