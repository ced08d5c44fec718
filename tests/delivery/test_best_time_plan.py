"""The pure part of a best-time plan (`campaign.timing`): a zone's offsets over the click window, found
across a DST change, and each local hour's release slot, with quiet hours holding it."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from clarion.campaign.timing import QuietHours, hour_slots, offset_segments


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_a_zones_offsets_change_at_its_dst_change_to_the_minute() -> None:
    new_york = ZoneInfo("America/New_York")
    segments = offset_segments(new_york, _utc("2026-02-07T12:00:00"), _utc("2026-03-09T12:00:00"))
    assert segments == ((_utc("2026-02-07T12:00:00"), -5 * 3600), (_utc("2026-03-08T07:00:00"), -4 * 3600))
    # Kathmandu never changes: one segment, +05:45.
    kathmandu = offset_segments(
        ZoneInfo("Asia/Kathmandu"), _utc("2026-02-07T12:00:00"), _utc("2026-03-09T12:00:00")
    )
    assert kathmandu == ((_utc("2026-02-07T12:00:00"), 5 * 3600 + 45 * 60),)


def test_each_hour_has_its_next_slot_within_24_hours_and_quiet_hours_hold_it() -> None:
    start = _utc("2026-03-09T12:00:00")  # 21:00 in Tokyo
    tokyo = ZoneInfo("Asia/Tokyo")
    slots = hour_slots(start, tokyo, None)
    assert slots[21] == start  # the start's own hour: at once
    assert slots[22] == _utc("2026-03-09T13:00:00")
    assert slots[20] == _utc("2026-03-10T11:00:00")  # passed today: tomorrow
    assert all(start <= slot < _utc("2026-03-10T12:00:00") for slot in slots)
    quiet = QuietHours(time(22, 0), time(7, 0), "drop")
    held = hour_slots(start, tokyo, quiet)
    assert held[23] == held[3] == _utc("2026-03-09T22:00:00")  # 07:00 JST, even in drop mode
    assert held[20] == slots[20]
