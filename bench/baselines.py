"""The yardsticks Clarion is held against: the crypto-only limit, a plain pywebpush loop, and what a
skilled user writes without Clarion (pywebpush's encoder on aiohttp, Node's web-push, 64 in flight)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bench.storage import SentCampaign, WebSubscription
from clarion.provider import webpush


@dataclass(frozen=True, slots=True)
class Rate:
    messages: int
    seconds: float
    # Rates of the equal slices the sample was timed in (one slice where it was timed at once).
    slices: tuple[float, ...] = ()
    # CPU time of the sending process over the sample, where it was measured (0: not measured).
    cpu_s: float = 0.0
    # Why it was not measured (a missing tool), for the printed table.
    skipped: str = ""

    @property
    def per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("nan")

    @property
    def per_cpu_s(self) -> float:
        return self.messages / self.cpu_s if self.cpu_s > 0 else float("nan")


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


# Requests in flight for the concurrent baselines: Clarion's default CLARION_WORKER_CONCURRENCY.
IN_FLIGHT = 64
NODE_DIR = Path(__file__).resolve().parent / "node"
SENDER_TIMEOUT_S = 600


def _job(
    path: Path, subs: Sequence[WebSubscription], campaign: SentCampaign, subject: str
) -> dict[str, object]:
    """What a concurrent baseline sends, as JSON for its own process."""
    private = serialization.load_pem_private_key(campaign.vapid_private_pem.encode(), password=None)
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    job: dict[str, object] = {
        "subscriptions": [sub.to_json() for sub in subs],
        "payload": campaign.payload.decode(),
        "ttl_s": campaign.ttl_s,
        "subject": subject,
        "vapid_private_pem": campaign.vapid_private_pem,
        "vapid_public_key": campaign.vapid_public_key,
        # web-push takes the raw 32-byte private scalar, base64url.
        "vapid_private_key": webpush.b64url_encode(
            private.private_numbers().private_value.to_bytes(32, "big")
        ),
        "in_flight": IN_FLIGHT,
    }
    path.write_text(json.dumps(job))
    return job


def _run_sender(command: list[str], cwd: Path | None = None) -> Rate:
    done = subprocess.run(command, capture_output=True, check=False, timeout=SENDER_TIMEOUT_S, cwd=cwd)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr.decode(errors='replace')}")
    figures = json.loads(done.stdout.decode().strip().splitlines()[-1])
    if figures["failed"]:
        raise RuntimeError(f"{command[0]}: {figures['failed']} messages refused:\n{done.stderr.decode()}")
    return Rate(int(figures["messages"]), float(figures["wall_s"]), cpu_s=float(figures["cpu_s"]))


def pywebpush_aiohttp(
    subs: Sequence[WebSubscription], campaign: SentCampaign, subject: str, work: Path
) -> Rate:
    """pywebpush's encoder (`WebPusher.send_async`) on one keep-alive aiohttp session, 64 in flight.

    In its own process (bench/baseline_aiohttp.py), timed by the wall clock and by that process's CPU.
    """
    job_path = work / "baseline-job.json"
    _job(job_path, subs, campaign, subject)
    sender = Path(__file__).resolve().parent / "baseline_aiohttp.py"
    return _run_sender([sys.executable, str(sender), str(job_path)])


def node_web_push(subs: Sequence[WebSubscription], campaign: SentCampaign, subject: str, work: Path) -> Rate:
    """Node's `web-push` (`sendNotification`), 64 sends in flight over one keep-alive agent.

    In its own process (bench/node/send.mjs). The package is installed from the npm registry into
    bench/node/node_modules by `npm ci` (package-lock.json pins it) the first time; without node or
    npm on PATH the baseline is skipped, saying so.
    """
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return Rate(0, 0.0, skipped="node or npm not on PATH")
    if not (NODE_DIR / "node_modules" / "web-push").is_dir():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            check=False,
            timeout=300,
        )
        if installed.returncode != 0:
            return Rate(0, 0.0, skipped=f"npm ci failed: {installed.stderr.decode(errors='replace')[-300:]}")
    job_path = work / "baseline-job.json"
    _job(job_path, subs, campaign, subject)
    return _run_sender([node, str(NODE_DIR / "send.mjs"), str(job_path)], cwd=NODE_DIR)
