"""The delivery job: a chunk of one campaign's ledger rows, by id."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from clarion.queue import Job

DELIVER = "deliver"


def deliver_job(campaign_id: int, delivery_ids: Sequence[int]) -> Job:
    return Job(DELIVER, str(campaign_id), tuple(delivery_ids))


def deliver_jobs(campaign_id: int, delivery_ids: Sequence[int], chunk_size: int) -> Iterator[Job]:
    """The rows in jobs of at most `chunk_size`, in the order given."""
    for start in range(0, len(delivery_ids), chunk_size):
        yield deliver_job(campaign_id, delivery_ids[start : start + chunk_size])
