"""A job's wire form (the Redis backend's): kind, key and ids survive the round trip."""

from __future__ import annotations

from clarion.queue import Job


def test_a_job_survives_encoding() -> None:
    for job in (Job("deliver", "42", (1, 2, 3)), Job("swrve.process_batch", "a-b-c", (0,)), Job("x", "")):
        assert Job.decode(job.encode()) == job
        assert Job.decode(job.encode().encode()) == job
