"""Campaign ids: time-ordered 64-bit numbers of the Gravitec shape (its documentation shows ids like
1590394828308348928, a Snowflake: milliseconds since Twitter's epoch, shifted left by 22 bits).

The 22 low bits are 10 bits drawn at random once per process and a 12-bit sequence that starts at a
random value (below 2,048) in each millisecond, so that processes need no coordination to pick ids and an id
says nothing about how many campaigns anyone else created (a counter would). Two processes collide
only if they drew the same 10 bits and then, within the same millisecond, the same sequence value.
"""

from __future__ import annotations

import os
import secrets
import threading
import time

# Twitter's Snowflake epoch (2010-11-04T01:42:54.657Z): the vendor's ids decode to sensible dates
# with it, and 41 bits of milliseconds from it last until 2079.
EPOCH_MS = 1_288_834_974_657
NODE_BITS = 10
SEQUENCE_BITS = 12
SEQUENCE_MASK = (1 << SEQUENCE_BITS) - 1


class SnowflakeIds:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = -1
        self._node = 0
        self._ms = -1
        self._sequence = 0

    @staticmethod
    def _now_ms() -> int:
        return time.time_ns() // 1_000_000 - EPOCH_MS

    def _start_millisecond(self, now: int) -> None:
        # In the lower half, so that at least 2,048 ids fit in the millisecond, in increasing order.
        self._ms, self._sequence = now, secrets.randbits(SEQUENCE_BITS - 1)

    def next_id(self) -> int:
        with self._lock:
            if self._pid != os.getpid():  # a forked process draws its own node bits
                self._pid, self._node, self._ms = os.getpid(), secrets.randbits(NODE_BITS), -1
            now = max(self._now_ms(), self._ms)  # a clock stepping back does not reuse a millisecond
            if now != self._ms:
                self._start_millisecond(now)
            elif self._sequence < SEQUENCE_MASK:
                self._sequence += 1
            else:  # this millisecond is used up: wait for the next one
                while self._now_ms() <= self._ms:
                    time.sleep(0.0001)
                self._start_millisecond(self._now_ms())
            return (self._ms << (NODE_BITS + SEQUENCE_BITS)) | (self._node << SEQUENCE_BITS) | self._sequence


_IDS = SnowflakeIds()


def new_campaign_id() -> int:
    return _IDS.next_id()
