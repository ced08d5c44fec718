"""Batch parameters: reading, merging (campaign < common < personalized) and the spec's checks.

Every reason text here is the spec's own wording (its "Possible failure or warning reasons" tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from clarion import content
from clarion.content import Button, Notification, RichMedia
from clarion.swrve.parser import UnreadableNumber
from clarion.validation import clickable_url_problem, storable

MAX_TTL_S = 2_419_200  # 4 weeks, the spec's maximum time_to_live
DEFAULT_TTL_S = 2_419_200
MAX_MESSAGE_CHARS = 4096
MAX_BUTTONS = 3
MAX_ID_CHARS = 255  # the user id columns' width (subscribers.user_id, external_user_id)
ACTION_TYPES = ("open_app", "open_url", "dismiss")
# Rich media each platform can show (spec: audio and gif only on iOS; video links from a thumbnail).
MEDIA_TYPES = {
    "ios": ("image", "gif", "audio", "video"),
    "android": ("image", "video"),
    "adm": ("image",),
    "wns": ("image",),
    "web": ("image",),
}
# Spec: "Only GCM, ADM and iOS support silent notifications."
SILENT_PLATFORMS = ("android", "adm", "ios")
PLATFORM_NAMES = {"ios": "ios", "android": "android", "adm": "adm", "wns": "wns", "web": "web"}
# Alternative spellings the spec allows for the same parameter.
ALIASES = {
    "title": "notification_title",
    "ios_notification_title": "notification_title",
    "badge": "badge_number",
}

_STRING_PARAMS = (
    "message",
    "sound",
    "notification_category",
    "notification_title",
    "deeplink",
    "subtitle",
    "rich_media_url",
    "rich_media_type",
    "rich_media_title",
    "rich_media_subtitle",
    "rich_media_message",
    "rich_media_thumbnail_url",
)
_INT_PARAMS = ("badge_number", "time_to_live")
_MEDIA_URLS = ("rich_media_url", "rich_media_thumbnail_url")
_KNOWN_PARAMS = frozenset((*_STRING_PARAMS, *_INT_PARAMS, "collapse_key", "silent", "payload", "buttons"))


class ParamError(ValueError):
    """A parameter of the wrong type: 'Failure to parse request. {detail}' for that user."""


@dataclass(frozen=True)
class PushWarning:
    """Why one user's push (or one of their devices') is not sent: a row of the batch's report."""

    reason: str
    safe_to_resend: bool = True


def normalise(raw: dict[str, Any]) -> dict[str, Any]:
    """Spellings folded, types checked; unknown keys are ignored as the vendor's API does."""
    params: dict[str, Any] = {}
    for key, value in raw.items():
        name = ALIASES.get(key, key)
        if value is None or name not in _KNOWN_PARAMS:  # ids, users and unknown keys included
            continue
        _check_numbers(key, value)
        if name in _STRING_PARAMS:
            if not isinstance(value, str):
                raise ParamError(f"'{key}' must be a string")
            _check_storable(key, value)
            if name == "deeplink" and value:  # "" is no deeplink at all
                _check_clickable(key, value)
            elif name in _MEDIA_URLS and value:
                _check_media_url(key, value)
        elif name in _INT_PARAMS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ParamError(f"'{key}' must be an integer")
        elif name == "collapse_key":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ParamError("'collapse_key' must be an integer")
            value = str(value)
            _check_storable(key, value)
        elif name == "silent":
            if not isinstance(value, bool):
                raise ParamError("'silent' must be true or false")
        elif name == "payload":
            if not isinstance(value, dict):
                raise ParamError("'payload' must be a JSON object")
            _check_storable(key, value)
        elif name == "buttons":
            value = _buttons(value)
        params[name] = value
    return params


def _check_numbers(key: str, value: Any) -> None:
    """A number the parser could not read (parser.UnreadableNumber) fails its user, wherever it is."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, UnreadableNumber):
            raise ParamError(f"'{key}' holds {item.describe()}, which is not a number this server can use")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _check_clickable(key: str, value: str) -> None:
    """Where a tap leads (deeplink, a button's action): the one clickable-URL rule of validation.py."""
    problem = clickable_url_problem(value)
    if problem is not None:
        raise ParamError(f"'{key}' {problem}")


def _check_media_url(key: str, value: str) -> None:
    """Spec, rich_media_url and rich_media_thumbnail_url: "Has to be valid and HTTPS URL, and include
    an extension" (the device picks how to show the media by it)."""
    problem = clickable_url_problem(value)
    parts = urlsplit(value) if problem is None else None
    if parts is None or parts.scheme.lower() != "https" or not PurePosixPath(parts.path).suffix:
        raise ParamError(f"'{key}' must be a valid HTTPS URL that includes an extension")


def _check_storable(key: str, value: Any) -> None:
    """Text neither database can keep (NUL, unpaired surrogates) would stop the whole batch."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str) and not storable(item):
            raise ParamError(f"'{key}' must not contain NUL characters or unpaired surrogates")
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _buttons(value: Any) -> list[dict[str, str | None]]:
    if not isinstance(value, list):
        raise ParamError("'buttons' must be an array")
    buttons: list[dict[str, str | None]] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("title"), str):
            raise ParamError(f"'buttons[{index}]' must be an object with a title")
        action_type = item.get("action_type", "open_app")
        if action_type not in ACTION_TYPES:
            raise ParamError(f"'buttons[{index}].action_type' must be one of {', '.join(ACTION_TYPES)}")
        action = item.get("action")
        if action is not None and not isinstance(action, str):
            raise ParamError(f"'buttons[{index}].action' must be a string")
        _check_storable(f"buttons[{index}]", [item["title"], action])
        if action:  # a web push opens it on a click, whatever the action type
            _check_clickable(f"buttons[{index}].action", action)
        buttons.append({"title": item["title"], "action_type": action_type, "action": action})
    return buttons


def user_warnings(params: dict[str, Any]) -> list[PushWarning]:
    """The checks that stop a user's push whatever the platform."""
    found: list[PushWarning] = []
    if len(params.get("buttons", [])) > MAX_BUTTONS:
        found.append(PushWarning("Invalid buttons, no more than 3 buttons are supported"))
    ttl = params.get("time_to_live", DEFAULT_TTL_S)
    if not 0 <= ttl <= MAX_TTL_S:
        found.append(PushWarning("Invalid time_to_live value, must be positive number less than 4 weeks"))
    message = params.get("message", "")
    if params.get("silent") is not True and (not message or len(message) > MAX_MESSAGE_CHARS):
        found.append(
            PushWarning(f"Push Message should be not empty and less than {MAX_MESSAGE_CHARS} characters")
        )
    return found


def platform_warning(params: dict[str, Any], platform: str) -> PushWarning | None:
    """The checks that stop a push to one of the user's devices."""
    media_type = params.get("rich_media_type")
    allowed = MEDIA_TYPES[platform]
    if media_type is not None and media_type not in allowed:
        return PushWarning(f"Invalid media type, must be one of {list(allowed)}")
    if platform == "wns" and not params.get("notification_title") and params.get("silent") is not True:
        return PushWarning("For wns platform, title is required")
    if params.get("silent") is True and platform not in SILENT_PLATFORMS:
        return PushWarning(f"Silent push not supported for platform {platform}")
    return None


def message_fields(campaign_id: int, params: dict[str, Any]) -> dict[str, Any]:
    """The Notification a batch user's devices receive, as JSON for the ledger (Delivery.params)."""
    media = None
    if params.get("rich_media_url"):
        media = RichMedia(
            url=params["rich_media_url"],
            type=params.get("rich_media_type", "image"),
            title=params.get("rich_media_title"),
            subtitle=params.get("rich_media_subtitle"),
            message=params.get("rich_media_message"),
            thumbnail_url=params.get("rich_media_thumbnail_url"),
        )
    buttons = tuple(Button(b["title"], b["action_type"], b["action"]) for b in params.get("buttons", []))
    message = Notification(
        campaign_id=str(campaign_id),
        message=params.get("message", ""),
        title=params.get("notification_title"),
        subtitle=params.get("subtitle"),
        image=params.get("rich_media_url") if media is not None and media.type == "image" else None,
        url=params.get("deeplink"),
        buttons=buttons,
        sound=params.get("sound"),
        badge=params.get("badge_number"),
        category=params.get("notification_category"),
        rich_media=media,
        data=params.get("payload", {}),
        ttl_s=params.get("time_to_live", DEFAULT_TTL_S),
        collapse_key=params.get("collapse_key"),
        silent=params.get("silent") is True,
    )
    return content.encode(message)
