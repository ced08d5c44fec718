"""The two yardsticks Clarion is held against: the crypto-only limit and a plain pywebpush loop."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.storage import SentCampaign, WebSubscription
from clarion.provider import webpush


@dataclass(frozen=True, slots=True)
class Rate:
    messages: int
    seconds: float
    # Rates of the equal slices the sample was timed in (one slice where it was timed at once).
    slices: tuple[float, ...] = ()

    @property
    def per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("nan")


# 5,000 messages: long enough (about a second) to be timed well, short enough to show noise.
CRYPTO_SLICE = 5000


def crypto_only(subs: Sequence[WebSubscription], campaign: SentCampaign, subject: str) -> Rate:
    """RFC 8291 encryption plus the cached VAPID header, one thread, no HTTP and no database.

    Timed by the thread's CPU clock, so the figure is per core even on a busy machine; the sample is
    timed in slices so that the spread shows how steady the machine was.
    """
    signer = webpush.VapidSigner(campaign.vapid_private_pem, campaign.vapid_public_key, subject)
    signer.authorization(subs[0].endpoint)  # the one signature; every later message reuses it
    slices = []
    total_s = 0.0
    for start in range(0, len(subs), CRYPTO_SLICE):
        part = subs[start : start + CRYPTO_SLICE]
        started = time.thread_time()
        for sub in part:
            webpush.encrypt(campaign.payload, sub.p256dh, sub.auth)
            signer.authorization(sub.endpoint)
        elapsed = time.thread_time() - started
        total_s += elapsed
        slices.append(len(part) / elapsed)
    return Rate(len(subs), total_s, tuple(slices))


def pywebpush_loop(
    subs: Sequence[WebSubscription],
    campaign: SentCampaign,
    subject: str,
    key_path: Path,
    *,
    reuse_connections: bool = False,
) -> Rate:
    """`pywebpush.webpush()` in a sequential loop, as its README shows; timed by the wall clock.

    As documented, each call reads the VAPID key file, signs a new JWT and (without a session) opens
    a new connection. With `reuse_connections`, one requests.Session is passed to every call.
    """
    import requests
    from pywebpush import webpush as pywebpush_send

    data = campaign.payload.decode()
    session = requests.Session() if reuse_connections else None
    try:
        started = time.perf_counter()
        for sub in subs:
            pywebpush_send(
                subscription_info=sub.to_json(),
                data=data,
                vapid_private_key=str(key_path),
                vapid_claims={"sub": subject},
                ttl=campaign.ttl_s,
                requests_session=session,
            )
        return Rate(len(subs), time.perf_counter() - started)
    finally:
        if session is not None:
            session.close()
