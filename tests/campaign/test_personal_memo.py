"""A templated campaign renders once per distinct value of what its templates read, and shares that
render between recipients alike in it (campaign/personal.py: `_Compiled.render`'s memo); its texts
are rendered as one joined template, with the same result as one by one."""

from __future__ import annotations

import pytest

from clarion.campaign import personal
from clarion.campaign.personal import Personal, Profile, RenderFailure
from clarion.content import Button, Notification

SHOWN = Notification(
    campaign_id="1",
    title='Hi {{ first_name | default("there") }}',
    message="Your {{ plan }} plan{% if 'vip' in tags %}, VIP{% endif %}",
    url="https://example.com/p",
    buttons=(Button("Open {{ plan | title }}", "open_url", "https://example.com/open"),),
)
TEMPLATES: dict[str, object] = {"templates": True, "default_language": None, "languages": {}}


def _built() -> Personal:
    built = Personal.build(SHOWN, TEMPLATES)
    assert built is not None
    return built


def _profile(**attributes: str) -> Profile:
    return Profile(alias=None, language=None, tags=("vip",), attributes=attributes)


def test_recipients_alike_in_what_the_templates_read_share_one_render() -> None:
    built = _built()
    first = built.content_for(_profile(first_name="Ada", plan="pro", city="Oslo"))
    # Another city: no template reads it, so the same render (the very same object) is shared.
    second = built.content_for(_profile(first_name="Ada", plan="pro", city="Rome"))
    assert second is first
    assert (first.title, first.message, first.buttons[0].title) == (
        "Hi Ada",
        "Your pro plan, VIP",
        "Open Pro",
    )


def test_a_difference_in_any_name_read_renders_anew() -> None:
    built = _built()
    ada = built.content_for(_profile(first_name="Ada", plan="pro"))
    bob = built.content_for(_profile(first_name="Bob", plan="pro"))
    free = built.content_for(_profile(first_name="Ada", plan="free"))
    no_tags = built.content_for(Profile(tags=(), attributes={"first_name": "Ada", "plan": "pro"}))
    nameless = built.content_for(_profile(plan="pro"))
    assert [n.title for n in (ada, bob, free, no_tags, nameless)] == [
        "Hi Ada",
        "Hi Bob",
        "Hi Ada",
        "Hi Ada",
        "Hi there",
    ]
    assert [n.message for n in (ada, bob, free, no_tags, nameless)] == [
        "Your pro plan, VIP",
        "Your pro plan, VIP",
        "Your free plan, VIP",
        "Your pro plan",
        "Your pro plan, VIP",
    ]


def test_a_failing_recipient_fails_each_time_and_is_not_remembered() -> None:
    built = _built()
    for _ in range(2):  # `plan` has no default: the recipient without one fails, every time
        with pytest.raises(RenderFailure, match="message"):
            built.content_for(_profile(first_name="Ada"))
    assert built.content_for(_profile(first_name="Ada", plan="team")).message == "Your team plan, VIP"


def test_past_the_memo_bound_recipients_are_rendered_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(personal, "MEMO_ENTRIES", 2)
    built = _built()
    titles = [built.content_for(_profile(first_name=f"N{i}", plan="pro")).title for i in range(5)]
    assert titles == ["Hi N0", "Hi N1", "Hi N2", "Hi N3", "Hi N4"]
    assert len(built.default.memo) == 2


def test_the_joined_render_gives_what_each_text_alone_gives() -> None:
    shown = Notification(
        campaign_id="1",
        title="Hi {{ first_name }}  ",  # trailing spaces: the next text's `{%-` must not strip them
        message="{%- if plan %}Your {{ plan }} plan{% endif %}",
        url="https://example.com/p",
    )
    built = Personal.build(shown, TEMPLATES)
    assert built is not None
    assert built.default.joined is not None
    got = built.content_for(_profile(first_name="Ada", plan="pro"))
    assert (got.title, got.message) == ("Hi Ada  ", "Your pro plan")


def test_a_value_holding_the_joined_separator_is_rendered_text_by_text() -> None:
    built = _built()
    odd = built.content_for(_profile(first_name="A\x00B", plan="pro"))
    assert (odd.title, odd.message, odd.buttons[0].title) == ("Hi A\x00B", "Your pro plan, VIP", "Open Pro")
