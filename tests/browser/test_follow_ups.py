"""An update and a retraction of a sent campaign in Chromium: Clarion's service worker replaces the
shown notification with the new content, then closes it."""

from __future__ import annotations

import json

import httpx

from tests.browser.harness import Visit, wait_until


def test_the_service_worker_replaces_then_closes_the_shown_notification(visit: Visit) -> None:
    server = visit.server
    visit.open_demo()
    reg_id = visit.subscribe()
    landing = f"{server.url}/sdk/v1/demo?appKey={server.app_key}&from=push"
    campaign_id = server.push(
        {
            "payload": {"title": "Frist draft", "message": "Tpyos", "redirect_url": landing},
            "audience": {"tokens": [reg_id]},
            "display_time": 0,
        }
    )
    visit.deliver(visit.received(1)[0])
    [shown] = wait_until(visit.notifications, "the notification")
    assert (shown["title"], shown["body"], shown["tag"]) == ("Frist draft", "Tpyos", f"clarion-{campaign_id}")

    base = f"{server.url}/v1/apps/{server.app_key}/campaigns/{campaign_id}"
    new = {"title": "First draft", "message": "Typos fixed", "redirect_url": landing}
    answer = httpx.post(f"{base}/update", json={"payload": new}, auth=server.auth, timeout=10)
    assert answer.status_code == 202, answer.text
    update = visit.received(2)[1]
    assert json.loads(update)["title"] == "First draft"
    visit.deliver(update)

    def replaced() -> list[dict[str, object]]:
        now = visit.notifications()
        return now if [n["title"] for n in now] == ["First draft"] else []

    [shown] = wait_until(replaced, "the notification to be replaced")
    assert (shown["body"], shown["tag"], shown["data"]["campaign_id"]) == (
        "Typos fixed",
        f"clarion-{campaign_id}",
        campaign_id,
    )

    answer = httpx.post(f"{base}/retract", auth=server.auth, timeout=10)
    assert answer.status_code == 202, answer.text
    retraction = visit.received(3)[2]
    assert json.loads(retraction) == {
        "campaign_id": campaign_id,
        "retract": True,
        "tag": f"clarion-{campaign_id}",
    }
    visit.deliver(retraction)
    wait_until(lambda: visit.notifications() == [], "the notification to be closed")
    # Counted once for the campaign; a retraction is not a notification received, nor closed by the user.
    server.wait_for_stats(
        campaign_id, {"status": "SENT", "send": 1, "received": 1, "clicked": 0, "closed": 0}
    )
