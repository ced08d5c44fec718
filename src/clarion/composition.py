"""What runs in the background, wired in one place for `clarion serve` and `clarion worker`, and the
database every composition root opens (with the secret box its repositories seal secrets with).

The runner knows no feature; each feature registers its periodic work and job handlers here.
"""

from __future__ import annotations

import asyncio

from clarion.config import Settings
from clarion.db import ENGINE_TIMEOUTS, Database, Timeouts
from clarion.delivery import tasks as delivery_tasks
from clarion.event import tasks as event_tasks
from clarion.queue import Queue
from clarion.schedule import tasks as schedule_tasks
from clarion.secrets_box import SecretBox, session_info
from clarion.subscriber import tasks as subscriber_tasks
from clarion.swrve import tasks as swrve_tasks
from clarion.worker.runner import Runner


def background(settings: Settings, db: Database, queue: Queue, wakeup: asyncio.Event) -> Runner:
    runner = Runner(
        queue, consumers=settings.worker_jobs, tick_s=settings.scheduler_interval_s, wakeup=wakeup
    )
    delivery_tasks.register(runner, settings, db, queue)
    swrve_tasks.register(runner, settings, db, queue)
    schedule_tasks.register(runner, db)
    event_tasks.register(runner, settings, db)
    subscriber_tasks.register(runner, settings, db)
    return runner


def open_database(
    settings: Settings, *, pool_size: int = 10, timeouts: Timeouts = ENGINE_TIMEOUTS
) -> Database:
    """The database, its sessions carrying the secret box built from the settings' keys."""
    box = SecretBox.from_settings(settings)
    return Database(
        settings.database_url, pool_size=pool_size, timeouts=timeouts, session_info=session_info(box)
    )
