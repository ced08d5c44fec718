"""Notification pictures through a real `clarion serve`: fetched from a local picture host, normalised,
served by Clarion, and carried in the decrypted Web Push payload; failures go out as they came."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.e2e.conftest import create_app_cli, engine_env
from tests.e2e.processes import Processes, Server
from tests.fakes.picture_server import BLUE, GREEN, ORANGE, RED, PictureServer
from tests.fakes.push_service import FakePushService
from tests.support import free_port

pytestmark = [pytest.mark.e2e]

WHITE = (255, 255, 255)
ADMIN = {"Authorization": "Bearer e2e-admin-token"}
CACHE_FOREVER = "public, max-age=31536000, immutable"


@pytest.fixture
def pictures() -> Iterator[PictureServer]:
    with PictureServer() as server:
        yield server


class Site:
    """A server, one app and two Web Push subscribers of it."""

    def __init__(self, procs: Processes, server: Server, fake: FakePushService) -> None:
        self.procs, self.server, self.fake = procs, server, fake
        self.app = create_app_cli(procs)
        self.auth = (self.app["app_key"], self.app["app_secret"])
        for _ in range(2):
            sub = fake.new_subscription(application_server_key=self.app["vapid_public_key"])
            body = {"app_key": self.app["app_key"], "platform": "web", "subscription": sub.to_json()}
            answer = httpx.post(f"{server.url}/sdk/v1/subscribers", json=body, timeout=10)
            assert answer.status_code == 201, answer.text

    def push(self, **pictures: str) -> tuple[str, dict[str, Any]]:
        """Send a campaign with these pictures; its id and the payload both subscribers received."""
        payload = {"message": "Hi", "title": "T", "redirect_url": "https://example.com/", **pictures}
        answer = httpx.post(
            f"{self.server.url}/api/v3/push", json={"payload": payload}, auth=self.auth, timeout=10
        )
        assert answer.status_code == 200, answer.text
        campaign_id = answer.json()["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stats = httpx.get(f"{self.server.url}/api/v3/messages/{campaign_id}", auth=self.auth, timeout=10)
            if stats.json()["status"] == "SENT":
                break
            time.sleep(0.1)
        assert stats.json() == {"status": "SENT", "send": 2, "received": 0, "clicked": 0, "closed": 0}
        shown = [json.loads(m.payload) for m in self.fake.received]
        mine = [p for p in shown if p["campaign_id"] == campaign_id]
        assert len(mine) == 2, mine
        assert mine[0] == mine[1]
        return campaign_id, mine[0]

    def warnings(self, campaign_id: str) -> list[dict[str, str]]:
        shown = httpx.get(f"{self.server.url}/admin/v1/campaigns/{campaign_id}", headers=ADMIN, timeout=10)
        assert shown.status_code == 200, shown.text
        view = shown.json()
        assert view["campaign_id"] == int(campaign_id)
        assert (view["status"], view["sent"]) == ("sent", 2)
        warnings: list[dict[str, str]] = view["picture_warnings"]
        return warnings


def start(tmp_path: Path, fake: FakePushService, processes: list[Processes], **extra: str) -> Site:
    port = free_port()
    env = {
        **engine_env(f"sqlite:///{tmp_path / 'clarion.db'}"),
        "CLARION_DATA_DIR": str(tmp_path),
        "CLARION_PICTURE_TIMEOUT_S": "2",
        **{f"CLARION_{name.upper()}": value.format(port=port) for name, value in extra.items()},
    }
    procs = Processes(tmp_path, env)
    processes.append(procs)
    return Site(procs, procs.server(port=port), fake)


def sent_as_they_came(site: Site, icon: str, image: str) -> tuple[str, list[dict[str, str]]]:
    """A campaign whose pictures went out with their original URLs: its id and its warnings."""
    campaign_id, shown = site.push(icon=icon, image=image)
    assert (shown["icon"], shown["image"]) == (icon, image)
    return campaign_id, site.warnings(campaign_id)


def fetched(site: Site, url: str, kind: str, size: tuple[int, int]) -> Image.Image:
    """The picture Clarion serves at `url`: its headers, its format and its exact size."""
    assert url.startswith(f"{site.server.url}/pictures/"), url
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200
    content_type = "image/png" if kind == "PNG" else "image/jpeg"
    assert (answer.headers["content-type"], answer.headers["cache-control"]) == (content_type, CACHE_FOREVER)
    picture = Image.open(io.BytesIO(answer.content))
    assert (picture.format, picture.size) == (kind, size)
    return picture.convert("RGB")


def near(pixel: Any, colour: tuple[int, int, int], slack: int = 12) -> bool:
    return all(abs(a - b) <= slack for a, b in zip(pixel, colour, strict=True))


def corners(size: tuple[int, int]) -> list[tuple[int, int]]:
    return [(0, 0), (size[0] - 1, 0), (0, size[1] - 1), (size[0] - 1, size[1] - 1)]


def test_pictures_are_normalised_served_by_clarion_and_failures_go_out_as_they_came(
    tmp_path: Path, fake: FakePushService, pictures: PictureServer, processes: list[Processes]
) -> None:
    site = start(tmp_path, fake, processes, public_url="http://127.0.0.1:{port}", outbound_allow="127.0.0.1")

    # A tiny icon and a tall PNG: an 80x80 square and the 360x240 canvas, padded with white.
    first, shown = site.push(icon=pictures.url("tiny.png"), image=pictures.url("tall.png"))
    first_icon = shown["icon"]
    icon = fetched(site, first_icon, "PNG", (80, 80))
    assert all(icon.getpixel(c) == WHITE for c in [*corners((80, 80)), (40, 19), (40, 60)])
    assert icon.getpixel((40, 40)) == GREEN
    image = fetched(site, shown["image"], "JPEG", (360, 240))
    assert all(near(image.getpixel(c), WHITE) for c in [*corners((360, 240)), (110, 120), (250, 120)])
    assert near(image.getpixel((180, 120)), RED)
    assert site.warnings(first) == []

    # An EXIF-rotated JPEG icon (shown tall) and a wide JPEG image.
    second, shown = site.push(icon=pictures.url("rotated.jpg"), image=pictures.url("wide.jpg"))
    icon = fetched(site, shown["icon"], "PNG", (200, 200))
    assert all(icon.getpixel(c) == WHITE for c in [*corners((200, 200)), (10, 100), (190, 100)])
    assert near(icon.getpixel((100, 5)), ORANGE)
    assert near(icon.getpixel((100, 195)), ORANGE)
    image = fetched(site, shown["image"], "JPEG", (360, 240))
    assert all(near(image.getpixel(c), WHITE) for c in [*corners((360, 240)), (180, 50), (180, 190)])
    assert near(image.getpixel((180, 120)), BLUE)
    assert site.warnings(second) == []

    # Each picture was fetched once per campaign, not once per recipient.
    once = ["/tiny.png", "/tall.png", "/rotated.jpg", "/wide.jpg"]
    assert Counter(pictures.requests) == Counter(once)

    # A liar (a GIF named and served as a PNG) and an oversized picture: sent as they came, with warnings.
    liar, huge = pictures.url("liar.png"), pictures.url("huge.jpg")
    _, warnings = sent_as_they_came(site, liar, huge)
    assert warnings == [
        {"field": "icon", "url": liar, "reason": "not a JPEG or PNG picture"},
        {"field": "image", "url": huge, "reason": "larger than 5242880 bytes"},
    ]
    # A picture host that never answers, and one that redirects (never followed).
    slow, moved = pictures.url("slow.png"), pictures.url("moved.png")
    fourth, warnings = sent_as_they_came(site, slow, moved)
    assert warnings == [
        {"field": "icon", "url": slow, "reason": "no complete answer within 2 s"},
        {"field": "image", "url": moved, "reason": "HTTP 302: redirects are not followed"},
    ]
    assert Counter(pictures.requests) == Counter([*once, "/liar.png", "/huge.jpg", "/slow.png", "/moved.png"])
    log = site.server.log()
    assert (
        f"campaign {fourth}: its icon goes out unprocessed, as {slow}: no complete answer within 2 s" in log
    )

    _default_icon(site, pictures, first_icon)
    _picture_urls_are_exact(site, first_icon)


def _default_icon(site: Site, pictures: PictureServer, first_icon: str) -> None:
    """A push without an icon shows the site's default icon, processed like any (and stored once: the
    same picture as the first campaign's icon has the same URL); a private address is refused."""
    icon = pictures.url("tiny.png")
    updated = site.procs.cli(
        "apps", "update", site.app["app_key"], "--default-icon", icon,
        "--site-url", "https://shop.example/", "--name", "Shop", "--json",
    )  # fmt: skip
    assert json.loads(updated) == {
        "app_id": site.app["app_id"],
        "app_key": site.app["app_key"],
        "plan": "unlimited",
        "batch_push": True,
        "name": "Shop",
        "site_url": "https://shop.example/",
        "default_icon": icon,
    }
    shown_app = json.loads(site.procs.cli("apps", "show", site.app["app_key"], "--json"))
    assert (shown_app["name"], shown_app["site_url"], shown_app["default_icon"]) == (
        "Shop",
        "https://shop.example/",
        icon,
    )
    private = "http://10.1.2.3/banner.jpg"
    campaign_id, shown = site.push(image=private)
    assert (shown["icon"], shown["image"]) == (first_icon, private)
    reason = "refused by the outbound address policy: 10.1.2.3 resolves to 10.1.2.3, 10.0.0.0/8 (private)"
    assert site.warnings(campaign_id) == [{"field": "image", "url": private, "reason": reason}]


def _picture_urls_are_exact(site: Site, shown_icon: str) -> None:
    """Stable URLs: the digest names the bytes; any other name is a 404; a cached copy revalidates."""
    digest = shown_icon.rsplit("/", 1)[1].removesuffix(".png")
    answer = httpx.get(shown_icon, headers={"If-None-Match": f'"{digest}"'}, timeout=10)
    assert (answer.status_code, answer.content) == (304, b"")
    for name in (f"{digest}.jpg", f"{'0' * 64}.png", "tiny.png", f"{digest.upper()}.png"):
        missing = httpx.get(f"{site.server.url}/pictures/{name}", timeout=10)
        assert (missing.status_code, missing.json()) == (
            404,
            {"error": "not_found", "message": "There is no such picture", "field": "name"},
        ), name


def test_loopback_picture_hosts_are_refused_unless_allowed(
    tmp_path: Path, fake: FakePushService, pictures: PictureServer, processes: list[Processes]
) -> None:
    site = start(tmp_path, fake, processes, public_url="http://127.0.0.1:{port}")
    by_name = f"http://localhost:{pictures.port}/tiny.png"
    literal = pictures.url("tall.png")
    _, (icon_warning, image_warning) = sent_as_they_came(site, by_name, literal)
    assert icon_warning["reason"].startswith("refused by the outbound address policy: localhost resolves to ")
    assert icon_warning["reason"].endswith(("127.0.0.0/8 (loopback)", "::1/128 (loopback)"))
    assert image_warning == {
        "field": "image",
        "url": literal,
        "reason": (
            "refused by the outbound address policy: 127.0.0.1 resolves to 127.0.0.1, 127.0.0.0/8 (loopback)"
        ),
    }
    assert pictures.requests == []


def test_without_a_public_url_pictures_go_out_unprocessed_and_the_log_says_why(
    tmp_path: Path, fake: FakePushService, pictures: PictureServer, processes: list[Processes]
) -> None:
    site = start(tmp_path, fake, processes, outbound_allow="127.0.0.1")
    icon, image = pictures.url("tiny.png"), pictures.url("tall.png")
    assert sent_as_they_came(site, icon, image)[1] == []
    assert pictures.requests == []
    assert (
        "CLARION_PUBLIC_URL is unset: notification pictures go out as their original URLs"
        in site.server.log()
    )
