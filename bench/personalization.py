"""Templates' cost per message: the engine's per-recipient work with and without a template.

    python -m bench.personalization [--n 5000] [--rounds 3]

For N recipients of one campaign it runs what the Deliverer does per Web Push recipient short of
the network, as the Deliverer does it (delivery/service.py, `_prepare_window`): a window of 64
recipients' content first (`CampaignContext.render_for`: the recipient's language and templates),
then their `webpush.prepare` back to back (RFC 8291 encryption and the VAPID header). Three campaigns:

- plain: texts without templates (render_for hands back the campaign's own encoded payload);
- personal: a templated title, message, URL and button over each recipient's first name, alias,
  plan and tags; first name and alias differ for every recipient, so every one is rendered;
- segment: templates over the plan and tags only (six distinct values here), as "Your {{ plan }}
  plan…": recipients alike in what the templates read share one render (campaign/personal.py).

Each round compiles each campaign anew (a campaign renders each recipient once: no render of an
earlier round is reused) and the three alternate `--rounds` times in one process, so a busy machine
slows them alike. It prints the CPU time (process_time: every thread of the process) per message of
each, and the differences.
"""

from __future__ import annotations

import argparse
import base64
import secrets
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

if __package__ in (None, ""):  # `python bench/personalization.py`: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clarion import content
from clarion.campaign.personal import Personal, Profile
from clarion.content import Button, Notification
from clarion.delivery.context import CampaignContext
from clarion.delivery.repository import Claimed
from clarion.delivery.service import PREPARE_WINDOW
from clarion.provider import webpush
from clarion.provider.outcome import Outcome

PLAIN = Notification(
    campaign_id="7312345678901234567",
    title="Hello there",
    message="Your pro plan is waiting, VIP: see what is new",
    url="https://example.com/news?from=push",
    buttons=(Button("Open", "open_url", "https://example.com/open"),),
    display_time_s=60,
)
TEMPLATED = replace(
    PLAIN,
    title='Hello {{ first_name | default("there") }}',
    message="Your {{ plan }} plan is waiting{% if 'vip' in tags %}, VIP{% endif %}: see what is new",
    url='https://example.com/news?from=push&u={{ alias | default("") | urlencode }}',
    buttons=(Button("Open {{ plan | title }}", "open_url", "https://example.com/open"),),
)

SEGMENT = replace(
    PLAIN,
    message="Your {{ plan }} plan is waiting{% if 'vip' in tags %}, VIP{% endif %}: see what is new",
    buttons=(Button("Open {{ plan | title }}", "open_url", "https://example.com/open"),),
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _recipients(n: int) -> list[Claimed]:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    p256dh = _b64(key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
    now = datetime.now(UTC)
    return [
        Claimed(
            delivery_id=i,
            attempts=1,
            subscriber_id=i,
            platform="web",
            address=f"https://push.example.com/push/{i}",
            p256dh=p256dh,
            auth=_b64(secrets.token_bytes(16)),
            registered_at=now,
            params=None,
            active=True,
            profile=Profile(
                alias=f"user-{i}",
                language="en",
                tags=("news", "vip") if i % 2 else ("news",),
                attributes={"first_name": f"Name{i}", "plan": ("free", "pro", "team")[i % 3]},
            ),
        )
        for i in range(n)
    ]


def _context(shown: Notification, stored: dict[str, object] | None) -> CampaignContext:
    private_pem, public_key = webpush.generate_vapid_keys()
    started = datetime.now(UTC)
    return CampaignContext(
        campaign_id=1,
        app_id=1,
        notification=shown,
        payload=content.web_payload(shown),
        ttl_s=3600,
        started_at=started,
        urgency="normal",
        topic=None,
        vapid_private_pem=private_pem,
        vapid_public_key=public_key,
        vapid_subject=None,
        credentials={},
        expires_at=started + timedelta(hours=1),
        personal=Personal.build(shown, stored),
    )


def _cpu_per_message(context: CampaignContext, recipients: list[Claimed]) -> float:
    signer = webpush.VapidSigner(
        context.vapid_private_pem, context.vapid_public_key, "mailto:bench@localhost"
    )
    started = time.process_time()
    for start in range(0, len(recipients), PREPARE_WINDOW):
        window = recipients[start : start + PREPARE_WINDOW]
        owns = [context.render_for(recipient) for recipient in window]
        for recipient, own in zip(window, owns, strict=True):
            if isinstance(own, Outcome):
                raise RuntimeError(f"a recipient failed: {own}")
            assert recipient.p256dh is not None
            assert recipient.auth is not None
            request = webpush.WebPushRequest(
                recipient.address, recipient.p256dh, recipient.auth, own.payload, 3600
            )
            webpush.prepare(signer, request)
    return (time.process_time() - started) / len(recipients)


TEMPLATES: dict[str, object] = {"templates": True, "default_language": None, "languages": {}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    recipients = _recipients(args.n)
    campaigns: dict[str, tuple[Notification, dict[str, object] | None]] = {
        "plain": (PLAIN, None),
        "personal": (TEMPLATED, TEMPLATES),
        "segment": (SEGMENT, TEMPLATES),
    }
    for shown, stored in campaigns.values():  # warm every path on recipients not measured
        _cpu_per_message(_context(shown, stored), _recipients(200))
    figures: dict[str, list[float]] = {name: [] for name in campaigns}
    for _ in range(args.rounds):
        for name, (shown, stored) in campaigns.items():
            context = _context(shown, stored)  # compiled anew: nothing rendered before is reused
            assert (context.personal is None) == (stored is None)
            figures[name].append(_cpu_per_message(context, recipients))
    best = {name: min(values) * 1e6 for name, values in figures.items()}
    for name, values in figures.items():
        runs = ", ".join(f"{v * 1e6:.1f}" for v in values)
        print(f"{name:>10}: {best[name]:.1f} µs CPU per message (best of {args.rounds}: {runs})")
    for name in ("personal", "segment"):
        extra = best[name] - best["plain"]
        print(f"{name:>10}: {extra:+.1f} µs per message ({extra / best['plain']:+.0%}) against plain")


if __name__ == "__main__":
    main()
