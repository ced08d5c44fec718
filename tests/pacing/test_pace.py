"""A job's send times (delivery.pace) over the database's limiter: a campaign's rate, a provider's own
limit (FCM's per-project quota), the horizon past which rows go back to the ledger, rows whose turn
was given already, and a push service's hold."""

from __future__ import annotations

from datetime import UTC, datetime

from clarion import content
from clarion.db import Database
from clarion.delivery.context import CampaignContext
from clarion.delivery.pace import Pacer, Schedule
from clarion.delivery.repository import Claimed
from clarion.pacing.limiter import DatabaseLimiter

NOW = 1_800_000_000.0
START = datetime.fromtimestamp(NOW, UTC)


class StillClock:
    def time(self) -> float:
        return NOW

    async def sleep(self, seconds: float) -> None:
        raise AssertionError("scheduling never sleeps")


def _context(campaign_id: int, rate_per_minute: int | None = None) -> CampaignContext:
    notification = content.Notification(campaign_id=str(campaign_id), message="Hello")
    return CampaignContext(
        campaign_id=campaign_id,
        app_id=7,
        notification=notification,
        payload=b"{}",
        ttl_s=3600,
        started_at=START,
        urgency="normal",
        topic=None,
        vapid_private_pem="",
        vapid_public_key="",
        vapid_subject=None,
        credentials={},
        expires_at=START,
        rate_per_minute=rate_per_minute,
    )


def _row(n: int, platform: str, address: str = "token", *, paced: bool = False) -> Claimed:
    return Claimed(n, 1, n, platform, address, None, None, None, None, True, paced=paced)


def _relative(schedule: Schedule | None) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    assert schedule is not None
    return (
        [(index, at - NOW) for index, at in schedule.send],
        [(index, at - NOW) for index, at in schedule.later],
    )


async def test_fcms_quota_spaces_an_apps_android_sends_and_leaves_the_others_alone(db: Database) -> None:
    pacer = Pacer(DatabaseLimiter(db), StillClock(), {"android": 60})  # one a second
    rows = [_row(1, "android"), _row(2, "web", "https://push.example.net/a"), _row(3, "android")]
    rows += [_row(4, "android"), _row(5, "android")]
    assert _relative(await pacer.schedule(_context(1), rows)) == (
        [(0, 0.0), (1, 0.0), (2, 1.0), (3, 2.0)],
        [(4, 3.0)],  # past the 2 s horizon: back to the ledger until then
    )
    # The quota is the app's, whichever campaign sends: the next job's android rows come after.
    assert _relative(await pacer.schedule(_context(2), [_row(6, "android")])) == ([], [(0, 4.0)])
    # A deployment without the limit of Clarion's: nothing to schedule.
    free = Pacer(DatabaseLimiter(db), StillClock(), {"android": 0})
    assert await free.schedule(_context(3), rows) is None


async def test_a_campaigns_rate_and_a_providers_limit_the_later_turn_wins(db: Database) -> None:
    pacer = Pacer(DatabaseLimiter(db), StillClock(), {"android": 30})  # one every 2 s
    rows = [_row(1, "web", "https://push.example.net/a"), _row(2, "android"), _row(3, "web", "https://b/x")]
    schedule = await pacer.schedule(_context(1, rate_per_minute=120), rows)  # one every 0.5 s
    assert _relative(schedule) == ([(0, 0.0), (1, 0.5), (2, 1.0)], [])
    second = await pacer.schedule(_context(1, rate_per_minute=120), [_row(4, "android"), _row(5, "web", "x")])
    # android: the campaign's turn 1.5, the provider's 2.0; web: the campaign's next, 2.0.
    assert _relative(second) == ([(0, 2.0), (1, 2.0)], [])


async def test_rows_whose_turn_was_given_go_again_spread_from_now_without_a_new_turn(db: Database) -> None:
    pacer = Pacer(DatabaseLimiter(db), StillClock(), {})
    handed_back = [_row(n, "web", "https://push.example.net/a", paced=True) for n in range(3)]
    schedule = await pacer.schedule(_context(1, rate_per_minute=60), [*handed_back, _row(9, "web", "x")])
    assert _relative(schedule) == ([(0, 0.0), (3, 0.0), (1, 1.0), (2, 2.0)], [])


async def test_a_hold_on_one_push_service_delays_only_the_apps_rows_there(db: Database) -> None:
    pacer = Pacer(DatabaseLimiter(db), StillClock(), {})
    await DatabaseLimiter(db).hold(7, "https://push.example.net", NOW + 30)
    rows = [_row(1, "web", "https://push.example.net/a/b"), _row(2, "web", "https://other.example.org/c")]
    assert _relative(await pacer.schedule(_context(1), rows)) == ([(1, 0.0)], [(0, 30.0)])
    assert pacer.held_until(7, rows[0]) == NOW + 30
    assert pacer.held_until(7, rows[1]) is None
