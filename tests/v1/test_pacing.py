"""/v1 pacing over real HTTP against `clarion serve`: a campaign's rate, an app's frequency cap (its
ledger state `capped`, in the funnel), pause and resume of a sending campaign (and the CLI's), and
cancel from paused."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.fakes.push_service import FakePushService
from tests.v1.conftest import V1, basic, subscribe, wait_for

PAYLOAD = {"title": "Breaking", "message": "Hello", "redirect_url": "https://example.com/news"}


def _funnel(**counts: int) -> dict[str, Any]:
    numbers = {"audience": 0, "pending": 0, "sent": 0, "failed": 0, "failed_by_reason": {}, "gone": 0}
    numbers |= {"expired": 0, "cancelled": 0, "capped": 0, "received": 0, "clicked": 0, "closed": 0}
    numbers |= counts
    delivered = round(numbers["sent"] / numbers["audience"], 4) if numbers["audience"] else 0.0
    numbers["rates"] = {"delivered": delivered, "received": 0.0, "clicked": 0.0, "closed": 0.0}
    return numbers


def test_the_frequency_cap_ends_capped_recipients_as_capped_and_spares_transactional_ones(
    v1: V1, fake: FakePushService
) -> None:
    app = v1.new_app()
    regs = [subscribe(v1, fake, app) for _ in range(3)]
    base = f"/apps/{app['app_key']}"
    with v1.client(basic(app)) as own:
        refused = [
            own.patch(base, json={"frequency_cap": 1001, "frequency_cap_period_s": 3600}),
            own.patch(base, json={"frequency_cap": 2, "frequency_cap_period_s": 10}),
            own.patch(base, json={"frequency_cap": -1}),
        ]
        changed = own.patch(base, json={"frequency_cap": 2, "frequency_cap_period_s": 3600})

        def send(**extra: Any) -> dict[str, Any]:
            created = own.post(f"{base}/campaigns", json={"payload": PAYLOAD, **extra})
            assert created.status_code == 201, created.text
            return wait_for(own, f"{base}/campaigns/{created.json()['campaign_id']}", "sent")

        first, second, third = send(), send(), send()
        transactional = send(is_transactional=True)
        capped_rows = own.get(
            f"{base}/campaigns/{third['campaign_id']}/outcomes", params={"status": "capped"}
        ).json()
        cleared = own.patch(base, json={"frequency_cap": 0})
        fourth = send()
    assert [(r.status_code, r.json()["field"]) for r in refused] == [
        (422, "frequency_cap"),
        (422, "frequency_cap_period_s"),
        (422, "frequency_cap"),
    ]
    assert (
        changed.status_code,
        changed.json()["frequency_cap"],
        changed.json()["frequency_cap_period_s"],
    ) == (
        200,
        2,
        3600,
    )
    assert first["funnel"] == second["funnel"] == _funnel(audience=3, sent=3)
    # Capped is no failure: not sent, counted apart, and the campaign is sent.
    assert third["funnel"] == _funnel(audience=3, capped=3)
    assert sorted(
        (row["reg_id"], row["status"], row["attempts"], row["reason"]) for row in capped_rows["items"]
    ) == [(reg, "capped", 0, "frequency cap") for reg in sorted(regs)]
    assert transactional["funnel"] == _funnel(audience=3, sent=3)
    assert (cleared.json()["frequency_cap"], cleared.json()["frequency_cap_period_s"]) == (None, None)
    assert fourth["funnel"] == _funnel(audience=3, sent=3)
    assert sorted(len(fake.received_for(s)) for s in {r.sub_id for r in fake.received}) == [4, 4, 4]


def _arrivals(fake: FakePushService, campaign_id: str) -> list[float]:
    return sorted(r.at for r in fake.received if json.loads(r.payload)["campaign_id"] == campaign_id)


def _wait_for_arrivals(fake: FakePushService, campaign_id: str, count: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(_arrivals(fake, campaign_id)) < count:
        assert time.monotonic() < deadline, f"{len(_arrivals(fake, campaign_id))} of {count} arrived"
        time.sleep(0.05)


def test_a_sending_campaign_pauses_within_two_seconds_and_resumes_where_it_stopped(
    v1: V1, fake: FakePushService
) -> None:
    app = v1.new_app()
    for _ in range(30):
        subscribe(v1, fake, app)
    base = f"/apps/{app['app_key']}/campaigns"
    with v1.client(basic(app)) as own:
        created = own.post(base, json={"payload": PAYLOAD, "rate_per_minute": 300})  # 5 a second
        assert created.status_code == 201, created.text
        assert created.json()["rate_per_minute"] == 300
        campaign_id = created.json()["campaign_id"]
        _wait_for_arrivals(fake, campaign_id, 5)
        paused = own.post(f"{base}/{campaign_id}/pause")
        paused_at = time.time()
        time.sleep(3.0)
        while_paused = own.get(f"{base}/{campaign_id}").json()
        again = own.post(f"{base}/{campaign_id}/pause")
        sent_before = len(_arrivals(fake, campaign_id))
        resumed = v1.processes.cli("campaigns", "resume", app["app_key"], campaign_id, "--json")
        done = wait_for(own, f"{base}/{campaign_id}", "sent")
        after = own.post(f"{base}/{campaign_id}/resume")
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    # Nothing went out more than two seconds after the pause answered...
    late = [
        round(t - paused_at, 2) for t in _arrivals(fake, campaign_id) if paused_at + 2.0 < t < paused_at + 3.0
    ]
    assert late == []
    # ...and what went out stays counted, the rest waiting.
    assert while_paused["status"] == "paused"
    assert while_paused["funnel"]["sent"] == sent_before
    assert while_paused["funnel"]["pending"] == 30 - sent_before
    assert 5 <= sent_before < 30
    assert (again.status_code, again.json()["error"]) == (409, "campaign_not_sending")
    assert json.loads(resumed)["status"] == "sending"
    assert done["funnel"] == _funnel(audience=30, sent=30)
    # Each subscriber got it once, at the campaign's pace after the resume as before the pause.
    assert sorted(r.sub_id for r in fake.received) == sorted({r.sub_id for r in fake.received})
    assert len(fake.received) == 30
    assert (after.status_code, after.json()["error"]) == (409, "campaign_not_paused")


def test_a_paused_campaign_can_be_cancelled_and_what_was_sent_stays_counted(
    v1: V1, fake: FakePushService
) -> None:
    app = v1.new_app()
    for _ in range(20):
        subscribe(v1, fake, app)
    base = f"/apps/{app['app_key']}/campaigns"
    with v1.client(basic(app)) as own:
        created = own.post(base, json={"payload": PAYLOAD, "rate_per_minute": 60})  # one a second
        campaign_id = created.json()["campaign_id"]
        _wait_for_arrivals(fake, campaign_id, 2)
        paused = json.loads(v1.processes.cli("campaigns", "pause", app["app_key"], campaign_id, "--json"))
        time.sleep(2.5)
        cancelled = own.post(f"{base}/{campaign_id}/cancel")
        time.sleep(1.0)
        shown = own.get(f"{base}/{campaign_id}").json()
        bad_rate = own.post(base, json={"payload": PAYLOAD, "rate_per_minute": 0})
    sent = len(_arrivals(fake, campaign_id))
    assert paused["status"] == "paused"
    assert cancelled.status_code == 200, cancelled.text
    assert shown["status"] == "cancelled"
    assert shown["funnel"] == _funnel(audience=20, sent=sent, cancelled=20 - sent)
    assert (bad_rate.status_code, bad_rate.json()["field"]) == (422, "rate_per_minute")
