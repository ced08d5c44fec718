"""An accepted batch survives the process that accepted it, and a batch processed too late says so."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest

from clarion.queue import MemoryQueue
from clarion.swrve import process as swrve_process
from clarion.swrve.tasks import SwrveTasks, process_job
from tests.app_tenant.factory import proof
from tests.fakes.fcm import fcm_error
from tests.swrve.conftest import SwrveEnv, report


async def test_a_batch_accepted_without_an_engine_is_completed_by_the_next_start(
    swrve_env: SwrveEnv,
) -> None:
    async with swrve_env.running(run_engine=False) as api:
        push = await api.push_campaign()
        device = await api.device("android", "u1")
        batch_id = await api.submit(push.push_key, [{"swrve_user_id": "u1", "message": "Later"}])
        await asyncio.sleep(0.3)
        # Accepted and stored, not yet processed: nothing is known about its users yet.
        assert await api.status(batch_id) == report(batch_id, "in_progress", total=0, sent=0)
    assert api.received(device) == []

    async with swrve_env.running() as api:
        assert await api.report(batch_id) == report(batch_id, "done", total=1, sent=1)
    [received] = api.received(device)
    assert received.message["notification"]["body"] == "Later"


async def test_tokens_replaced_between_acceptance_and_processing_are_the_ones_sent(
    swrve_env: SwrveEnv,
) -> None:
    async with swrve_env.running(run_engine=False) as api:
        push = await api.push_campaign()
        old_phone, browser = await api.device("android", "u1"), await api.device("web", "u2")
        batch_id = await api.submit(push.push_key, {"swrve_user_id": ["u1", "u2"], "message": "Parcel"})
        # Before the batch runs, u1's app registers a new token (the old one is dead at FCM) and u2's
        # browser moves its subscription to a new endpoint (pushsubscriptionchange).
        new_phone = await api.device("android", "u1")
        api.fakes.fcm.unregister(old_phone.token)
        renewed = api.fakes.web.new_subscription(application_server_key=api.app.vapid_public_key)
        moved = await api.client.post(
            f"/sdk/v1/subscribers/{browser.reg_id}/resubscribe",
            params={"app_key": api.app_key},
            headers=proof(browser.proof),
            json={"subscription": renewed.to_json()},
        )
        assert moved.status_code == 200, moved.text

    async with swrve_env.running() as api:
        assert await api.report(batch_id) == report(batch_id, "done", total=2, sent=2)
    bodies = [r.message["notification"]["body"] for r in api.received(new_phone)]
    assert bodies == ["Parcel"]
    assert [json.loads(r.payload)["message"] for r in api.fakes.web.received_for(renewed.sub_id)] == [
        "Parcel"
    ]
    assert api.fakes.web.received_for(browser.token) == []


async def test_a_batch_processed_past_its_time_limit_reports_by_how_much(swrve_env: SwrveEnv) -> None:
    async with swrve_env.running(run_engine=False, batch_time_limit_s=0.05) as api:
        push = await api.push_campaign()
        device = await api.device("android", "u1")
        batch_id = await api.submit(push.push_key, ["u1", "u2"])
        await asyncio.sleep(0.3)

    async with swrve_env.running() as api:
        status = await api.report(batch_id)
    late = [re.fullmatch(r"Exceeded time limit by (\d+) ms", entry["reason"]) for entry in status["warnings"]]
    assert all(late), status
    assert all(int(match.group(1)) >= 250 for match in late if match)
    reasons = [entry["reason"] for entry in status["warnings"]]
    assert status == report(
        batch_id,
        "failed",
        total=2,
        sent=0,
        warnings=[("u1", reasons[0], True), ("u2", reasons[1], True)],
        retry_possible=True,
    )
    assert api.received(device) == []


async def test_a_recipient_whose_retry_would_pass_the_time_limit_is_reported_safe_to_resend(
    swrve_env: SwrveEnv,
) -> None:
    # The push service asks for 60 s before the next attempt; the batch may take 5 s (ample to
    # process it and make the first attempts, even on a loaded machine).
    async with swrve_env.running(batch_time_limit_s=5.0) as api:
        push = await api.push_campaign()
        slow, fine = await api.device("android", "slow"), await api.device("android", "fine")
        api.fakes.fcm.script(slow.token, [fcm_error("UNAVAILABLE", retry_after="60")])
        started = time.monotonic()
        batch_id = await api.submit(push.push_key, {"swrve_user_id": ["slow", "fine"], "message": "Hi"})
        status = await api.report(batch_id)
        # Given up at once, not after the 60 s: no later attempt could be within the limit.
        assert time.monotonic() - started < 30
    [warning] = status["warnings"]
    late = re.fullmatch(r"Exceeded time limit by (\d+) ms", warning["reason"])
    assert late is not None, status
    assert 55_000 <= int(late.group(1)) <= 60_000  # 60 s from the first attempt, less the 5 s limit
    assert status == report(
        batch_id,
        "done_with_warnings",
        total=2,
        sent=1,
        warnings=[("slow", warning["reason"], True)],
        retry_possible=True,
    )
    # The one attempt the push service refused, never another; the other user's one delivery.
    assert (len(api.received(slow)), len(api.received(fine))) == (1, 1)


async def test_a_batch_whose_processing_keeps_failing_is_given_up_and_reported(
    swrve_env: SwrveEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("processing is broken")

    monkeypatch.setattr(swrve_process, "process", broken)
    async with swrve_env.running(lease_s=0.1) as api:
        push = await api.push_campaign()
        await api.device("android", "u1")
        batch_id = await api.submit(push.push_key, ["u1"])
        status = await api.report(batch_id)
    failure = [(None, "Internal failure to send a Push message", True)]
    assert status == report(batch_id, "failed", total=0, sent=0, failures=failure, retry_possible=True)


async def test_a_batch_job_run_twice_processes_the_batch_once(swrve_env: SwrveEnv) -> None:
    async with swrve_env.running(run_engine=False) as api:
        push = await api.push_campaign()
        await api.device("android", "u1")
        batch_id = await api.submit(push.push_key, ["u1"])
        queue = MemoryQueue()
        tasks = SwrveTasks(api.settings, api.db, queue)
        await tasks.process_batch(process_job(batch_id))
        await tasks.process_batch(process_job(batch_id))  # the sweep's copy, or a redelivery
        first = await queue.take(timeout_s=0.1)
        assert first is not None
        assert (first.job.kind, len(first.job.ids)) == ("deliver", 1)
        assert await queue.take(timeout_s=0.1) is None


async def test_the_sweep_queues_an_accepted_batch_once_its_job_is_overdue(swrve_env: SwrveEnv) -> None:
    # lease_s 0.02: a queued batch is left to its job for 10 x 0.02 s.
    async with swrve_env.running(run_engine=False, lease_s=0.02) as api:
        push = await api.push_campaign()
        batch_id = await api.submit(push.push_key, ["u1"])
        queue = MemoryQueue()
        tasks = SwrveTasks(api.settings, api.db, queue)
        await tasks.sweep()
        assert await queue.take(timeout_s=0.05) is None, "queued too early: its own job may be waiting"
        await asyncio.sleep(0.3)
        await tasks.sweep()
        await tasks.sweep()  # the second finds it queued again, so leaves it
        taken = await queue.take(timeout_s=0.1)
        assert taken is not None
        assert taken.job == process_job(batch_id, 0)
        assert await queue.take(timeout_s=0.1) is None
