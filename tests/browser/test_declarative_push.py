"""Declarative Web Push in Chromium: a server sending every subscription the declarative form
(CLARION_WEB_PUSH_FORM=declarative); Clarion's service worker still shows it and counts its events."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.browser.harness import Visit, require_browser, wait_until
from tests.e2e.conftest import engine_env
from tests.e2e.processes import Processes, Server
from tests.test_declarative import documented, problems


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Processes, Server]]:
    require_browser()
    root = tmp_path_factory.mktemp("declarative")
    env = engine_env(f"sqlite:///{root / 'clarion.db'}") | {"CLARION_WEB_PUSH_FORM": "declarative"}
    procs = Processes(root, env)
    try:
        yield procs, procs.server()
    finally:
        procs.close()


def test_the_declarative_form_is_shown_by_the_service_worker_and_counted(visit: Visit) -> None:
    server = visit.server
    visit.open_demo()
    reg_id = visit.subscribe()
    landing = f"{server.url}/sdk/v1/demo?appKey={server.app_key}&from=declarative"
    campaign_id = server.push(
        {
            "payload": {
                "title": "Declared",
                "message": "No worker needed in Safari",
                "redirect_url": landing,
                "icon": f"{server.url}/no-such/icon.png",
                "buttons": [{"title": "Docs", "url": "https://example.com/docs"}],
            },
            "audience": {"tokens": [reg_id]},
            "display_time": 0,
            "push_tag": "declared",
        }
    )
    [plaintext] = visit.received(1)
    message = json.loads(plaintext)
    assert (message["web_push"], message["notification"]["data"]["campaign_id"]) == (8030, campaign_id)
    assert problems(message, documented()) == []
    visit.deliver(plaintext)

    [shown] = wait_until(visit.notifications, "the notification")
    assert {key: shown[key] for key in ("title", "body", "tag", "icon", "requireInteraction", "actions")} == {
        "title": "Declared",
        "body": "No worker needed in Safari",
        "tag": "declared",
        "icon": f"{server.url}/no-such/icon.png",
        "requireInteraction": True,
        "actions": [{"action": "button-0", "title": "Docs"}],
    }
    server.wait_for_stats(
        campaign_id, {"status": "SENT", "send": 1, "received": 1, "clicked": 0, "closed": 0}
    )

    worker = visit.worker()
    worker.evaluate("""async () => {
        self.__opened = [];
        self.clients.openWindow = async (url) => { self.__opened.push(url); return null; };
        const [notification] = await self.registration.getNotifications();
        self.dispatchEvent(new NotificationEvent('notificationclick', {notification, action: 'button-0'}));
    }""")
    server.wait_for_stats(
        campaign_id, {"status": "SENT", "send": 1, "received": 1, "clicked": 1, "closed": 0}
    )
    wait_until(lambda: worker.evaluate("self.__opened.length") == 1, "the action to open its URL")
    assert worker.evaluate("self.__opened") == ["https://example.com/docs"]
