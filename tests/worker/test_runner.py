"""The generic runner: jobs dispatched by kind, periodic work, the in-process reset, a graceful stop."""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest
from sqlalchemy.exc import OperationalError

from clarion import outage
from clarion.queue import Job, MemoryQueue
from clarion.worker.runner import Runner


class DurableQueue(MemoryQueue):
    durable = True


def runner(queue: MemoryQueue | None = None) -> Runner:
    return Runner(queue or MemoryQueue(), consumers=2, tick_s=0.01, wakeup=asyncio.Event())


async def test_each_job_goes_to_the_handler_of_its_kind() -> None:
    seen: list[tuple[str, Job]] = []
    both = asyncio.Event()
    queue = MemoryQueue()
    run = runner(queue)

    async def first(job: Job) -> None:
        seen.append(("first", job))
        if len(seen) == 2:
            both.set()

    async def second(job: Job) -> None:
        seen.append(("second", job))
        if len(seen) == 2:
            both.set()

    run.handle("a", first)
    run.handle("b", second)
    await run.start()
    try:
        await queue.put(Job("b", "7", (1, 2)))
        await queue.put(Job("a", "8"))
        await asyncio.wait_for(both.wait(), 2)
    finally:
        await run.stop()
    assert sorted(seen, key=lambda s: s[0]) == [("first", Job("a", "8")), ("second", Job("b", "7", (1, 2)))]


async def test_a_job_of_an_unknown_kind_is_dropped_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done = asyncio.Event()
    queue = MemoryQueue()
    run = runner(queue)

    async def known(job: Job) -> None:
        done.set()

    run.handle("known", known)
    await run.start()
    try:
        await queue.put(Job("unknown", "1"))
        await queue.put(Job("known", "2"))
        await asyncio.wait_for(done.wait(), 2)
    finally:
        await run.stop()
    assert "no handler for jobs of kind 'unknown'" in caplog.text


def test_two_handlers_for_one_kind_are_refused() -> None:
    run = runner()

    async def handler(job: Job) -> None:
        return None

    run.handle("a", handler)
    with pytest.raises(ValueError, match="two handlers"):
        run.handle("a", handler)


async def test_periodic_work_runs_on_its_interval_and_a_failure_does_not_stop_the_others() -> None:
    counts = {"every tick": 0, "slow": 0, "broken": 0}
    five_ticks = asyncio.Event()
    run = runner()

    async def every_tick() -> None:
        counts["every tick"] += 1
        if counts["every tick"] == 5:
            five_ticks.set()

    async def slow() -> None:
        counts["slow"] += 1

    async def broken() -> None:
        counts["broken"] += 1
        raise RuntimeError("broken")

    run.every("broken", broken)
    run.every("every tick", every_tick)
    run.every("slow", slow, every_s=60)
    await run.start()
    try:
        await asyncio.wait_for(five_ticks.wait(), 2)
    finally:
        await run.stop()
    assert counts["slow"] == 1
    assert counts["broken"] >= 4


@pytest.mark.parametrize(("queue", "resets"), [(MemoryQueue(), 1), (DurableQueue(), 0)])
async def test_the_reset_hooks_run_only_when_the_queue_died_with_the_last_process(
    queue: MemoryQueue, resets: int
) -> None:
    calls: list[str] = []
    run = runner(queue)

    async def reset() -> None:
        calls.append("reset")

    async def start() -> None:
        calls.append("start")

    async def stop() -> None:
        calls.append("stop")

    run.on_reset(reset)
    run.on_start(start)
    run.on_stop(stop)
    await run.start()
    await run.stop()
    assert calls == ["start", *["reset"] * resets, "stop"]


async def test_stop_waits_for_a_job_in_hand_and_cancels_spawned_work() -> None:
    queue = MemoryQueue()
    run = runner(queue)
    started, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []
    spawned_cancelled = asyncio.Event()

    async def slow_job(job: Job) -> None:
        started.set()
        await release.wait()
        finished.append(job.key)

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            spawned_cancelled.set()
            raise

    run.handle("slow", slow_job)
    await run.start()
    run.spawn(forever(), name="forever")
    await queue.put(Job("slow", "k"))
    await asyncio.wait_for(started.wait(), 2)
    stopping = asyncio.create_task(run.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done(), "stop returned while a job was in hand"
    release.set()
    await asyncio.wait_for(stopping, 2)
    assert finished == ["k"]
    assert spawned_cancelled.is_set()


def unreachable_database() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "Connection refused"))


def outage_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "clarion.outage"]


async def test_a_job_that_cannot_reach_the_database_is_retried_in_place_and_acknowledged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    queue = MemoryQueue()
    run = runner(queue)
    attempts: list[float] = []
    done = asyncio.Event()

    async def deliver(job: Job) -> None:
        attempts.append(asyncio.get_running_loop().time())
        if len(attempts) <= 3:
            raise unreachable_database()
        done.set()

    run.handle("deliver", deliver)
    await run.start()
    try:
        await queue.put(Job("deliver", "1", (1, 2)))
        await asyncio.wait_for(done.wait(), 5)
        await asyncio.wait_for(queue._jobs.join(), 1)  # acknowledged (task_done) once done
    finally:
        await run.stop()
    assert len(attempts) == 4, "retried until the database answered, not dropped"
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert gaps == sorted(gaps), "with a growing back-off"
    assert gaps[0] >= outage.RETRY_FIRST_S * 0.9
    assert attempts[-1] - attempts[0] < 3, "within seconds"
    messages = outage_messages(caplog)
    assert len(messages) == 2, messages
    assert messages[0].startswith("database unreachable (ConnectionRefusedError")
    assert messages[1] == "database back"
    assert not [r for r in caplog.records if r.exc_info], "an outage is logged without a traceback"


async def test_a_job_that_fails_otherwise_is_not_retried_in_place(caplog: pytest.LogCaptureFixture) -> None:
    queue = MemoryQueue()
    run = runner(queue)
    calls: list[str] = []
    second = asyncio.Event()

    async def broken(job: Job) -> None:
        calls.append(job.key)
        if job.key == "2":
            second.set()
        raise ValueError("a bug")

    run.handle("broken", broken)
    await run.start()
    try:
        await queue.put(Job("broken", "1"))
        await queue.put(Job("broken", "2"))
        await asyncio.wait_for(second.wait(), 5)
    finally:
        await run.stop()
    assert calls == ["1", "2"]
    assert "a job failed" in caplog.text
    assert "ValueError: a bug" in caplog.text


async def test_periodic_work_survives_a_database_outage_logging_it_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    run = runner()
    ticks: list[int] = []
    back = asyncio.Event()

    async def sweep() -> None:
        ticks.append(1)
        if len(ticks) <= 10:
            raise unreachable_database()
        if len(ticks) == 12:
            back.set()

    run.every("sweep", sweep)
    await run.start()
    try:
        await asyncio.wait_for(back.wait(), 5)
    finally:
        await run.stop()
    assert outage_messages(caplog) == [
        "database unreachable (ConnectionRefusedError: [Errno 111] Connection refused); "
        "retrying until it is back",
        "database back",
    ]
    assert not [r for r in caplog.records if r.exc_info]


class LosingQueue(DurableQueue):
    """A durable queue that can be told it lost its jobs, as a Redis restarted empty is."""

    losses = 0


async def test_after_the_queue_lost_its_jobs_the_hooks_run_then_the_periodic_work_at_once() -> None:
    queue = LosingQueue()
    run = Runner(queue, consumers=1, tick_s=0.01, wakeup=asyncio.Event())
    calls: list[str] = []
    swept_after_loss = asyncio.Event()

    async def release_queued() -> None:
        calls.append("release")

    async def sweep() -> None:
        calls.append("sweep")
        if "release" in calls:
            swept_after_loss.set()

    run.on_queue_lost(release_queued)
    run.every("sweep", sweep, every_s=3600)
    await run.start()
    try:
        await asyncio.sleep(0.1)
        assert calls == ["sweep"], "no loss, no release; the hourly sweep ran once"
        queue.losses = 1
        await asyncio.wait_for(swept_after_loss.wait(), 2)
        await asyncio.sleep(0.1)
    finally:
        await run.stop()
    assert calls == ["sweep", "release", "sweep"], "released once, then swept at once, not in an hour"


async def test_a_loss_whose_hooks_cannot_reach_the_database_is_handled_when_it_is_back() -> None:
    queue = LosingQueue()
    run = Runner(queue, consumers=1, tick_s=0.01, wakeup=asyncio.Event())
    attempts: list[str] = []
    released = asyncio.Event()

    async def release_queued() -> None:
        attempts.append("try")
        if len(attempts) < 3:
            raise unreachable_database()
        released.set()

    run.on_queue_lost(release_queued)
    queue.losses = 1
    await run.start()
    try:
        await asyncio.wait_for(released.wait(), 2)
        await asyncio.sleep(0.1)
    finally:
        await run.stop()
    assert attempts == ["try", "try", "try"], "retried until done, then not again"
