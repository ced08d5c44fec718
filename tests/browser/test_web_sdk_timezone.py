"""The Web SDK records the browser's IANA time zone at registration, and registers again when it
changed (docs/sdk.md, "Time zone"), in Chromium with its zone set through the DevTools protocol."""

from __future__ import annotations

import contextlib
import sqlite3

from tests.browser.harness import Visit


def _zone(visit: Visit, reg_id: str) -> str | None:
    with contextlib.closing(sqlite3.connect(visit.server.database)) as connection:
        row = connection.execute("SELECT timezone FROM subscribers WHERE reg_id = ?", (reg_id,)).fetchone()
    assert row is not None, reg_id
    return None if row[0] is None else str(row[0])


def test_the_browsers_zone_is_recorded_and_followed_when_it_changes(visit: Visit) -> None:
    visit.cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "Asia/Tokyo"})
    visit.open_demo()
    visit.page.click("#subscribe")
    visit.wait_for("document.body.dataset.state === 'subscribed'")
    reg_id = visit.page.inner_text("#reg-id")
    assert _zone(visit, reg_id) == "Asia/Tokyo"

    # The visitor travelled: the next page load's init registers again with the new zone.
    visit.cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "Europe/Lisbon"})
    visit.open_demo()
    visit.wait_for("document.body.dataset.state === 'subscribed'")
    for _ in range(100):
        if _zone(visit, reg_id) == "Europe/Lisbon":
            break
        visit.page.wait_for_timeout(100)
    assert _zone(visit, reg_id) == "Europe/Lisbon"
    assert visit.page.inner_text("#reg-id") == reg_id  # the same subscriber
