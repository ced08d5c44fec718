"""Campaign ids: the vendor's Snowflake shape, time-ordered, unique across processes."""

from __future__ import annotations

import subprocess
import sys
import time

from clarion.db import Database
from clarion.ids import EPOCH_MS, NODE_BITS, SEQUENCE_BITS, SnowflakeIds
from tests.app_tenant.factory import new_app, push
from tests.conftest import Api

LOW_BITS = NODE_BITS + SEQUENCE_BITS


def test_the_vendors_example_decodes_to_its_time() -> None:
    # The Gravitec documentation's id: 2022-11-09T17:24:09.832Z with Twitter's epoch.
    assert (1590394828308348928 >> LOW_BITS) + EPOCH_MS == 1668014649832


def test_ids_are_time_ordered_64_bit_and_carry_no_count() -> None:
    ids = SnowflakeIds()
    before = time.time_ns() // 1_000_000
    made = [ids.next_id() for _ in range(10_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(made)) == len(made)
    assert made == sorted(made)
    assert all(len(str(i)) == 19 and i < 2**63 for i in made)
    assert before <= (made[0] >> LOW_BITS) + EPOCH_MS <= (made[-1] >> LOW_BITS) + EPOCH_MS <= after
    assert len({(i >> SEQUENCE_BITS) & ((1 << NODE_BITS) - 1) for i in made}) == 1  # one process, one node
    # Each millisecond's sequence starts at a random value, not at 0.
    firsts = {}
    for i in made:
        firsts.setdefault(i >> LOW_BITS, i & ((1 << SEQUENCE_BITS) - 1))
    assert len(set(firsts.values())) > 1


def test_processes_pick_distinct_ids_without_coordination() -> None:
    code = "from clarion.ids import new_campaign_id as n; print(*[n() for _ in range(20000)])"
    runs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)
    ]
    made = [int(x) for run in runs for x in run.communicate(timeout=60)[0].split()]
    assert len(made) == len(set(made)) == 80_000


async def test_a_pushed_campaign_has_an_id_of_the_vendors_shape(api: Api, db: Database) -> None:
    tenant = await new_app(db, plan="unlimited")
    before = time.time_ns() // 1_000_000
    answer = await push(api.client, tenant, payload={"message": "Hi", "redirect_url": "https://example.com/"})
    after = time.time_ns() // 1_000_000
    campaign_id = answer.json()["id"]
    assert isinstance(campaign_id, str)  # as the vendor: a string, safe from JavaScript's 53-bit numbers
    assert before <= (int(campaign_id) >> LOW_BITS) + EPOCH_MS <= after
    stats = await api.client.get(f"/api/v3/messages/{campaign_id}", auth=tenant.auth)
    assert stats.status_code == 200
