"""The delivery jobs: a chunk of one campaign's ledger rows by id (`deliver`), and a step of one
slice of its fan-out (`fanout`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from clarion.queue import Job

DELIVER = "deliver"
FANOUT = "fanout"


def deliver_job(campaign_id: int, delivery_ids: Sequence[int]) -> Job:
    return Job(DELIVER, str(campaign_id), tuple(delivery_ids))


def deliver_jobs(campaign_id: int, delivery_ids: Sequence[int], chunk_size: int) -> Iterator[Job]:
    """The rows in jobs of at most `chunk_size`, in the order given."""
    for start in range(0, len(delivery_ids), chunk_size):
        yield deliver_job(campaign_id, delivery_ids[start : start + chunk_size])


def fanout_job(campaign_id: int, slice_id: int) -> Job:
    return Job(FANOUT, str(campaign_id), (slice_id,))
