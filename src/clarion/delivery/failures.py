"""What the delivery engine logs about failed attempts: enough to act on, never a flood.

A storm (a whole audience answering 410, a certificate refused for every recipient of a campaign)
must not write one line per message. So a campaign logs the first failure of each kind (its status,
its push service's origin and the start of its reason), a TLS refusal once per origin as a warning
(retried until the TTL, it would otherwise show nowhere), and each job one line that counts its
outcomes. Endpoint URLs are capabilities: a line names their origin, never the URL.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict

from clarion.models import DeliveryStatus
from clarion.provider.httpio import is_tls_refusal
from clarion.provider.webpush import endpoint_origin

log = logging.getLogger("clarion.delivery")

# Campaigns whose failures seen so far are remembered (least recently used first out), and the kinds
# of failure logged per campaign before the rest are only counted in the job summaries.
MAX_CAMPAIGNS = 256
MAX_KINDS_PER_CAMPAIGN = 20
# The start of a reason that tells kinds apart: HTTP reasons end with text from the push service's
# answer, which may differ per recipient.
KIND_CHARS = 60


def origin_of(platform: str, address: str) -> str:
    """What a log line may name of a recipient's push service: a URL's origin, else its platform."""
    if address.startswith(("https://", "http://")):
        try:
            return endpoint_origin(address)
        except ValueError:
            pass
    return platform


class FailureLog:
    def __init__(self) -> None:
        self._seen: OrderedDict[int, set[str]] = OrderedDict()

    def note(self, campaign_id: int, platform: str, address: str, status: str, reason: str | None) -> None:
        """One recipient's failed attempt (`retry` or a final status other than `sent`)."""
        origin = origin_of(platform, address)
        tls = reason is not None and is_tls_refusal(reason)
        key = f"tls {origin}" if tls else f"{status} {origin} {(reason or '')[:KIND_CHARS]}"
        seen = self._campaign(campaign_id)
        if key in seen or len(seen) > MAX_KINDS_PER_CAMPAIGN:
            return
        seen.add(key)
        if len(seen) > MAX_KINDS_PER_CAMPAIGN:
            log.warning(
                "campaign %s: more than %s kinds of delivery failure; the job summaries count the rest",
                campaign_id,
                MAX_KINDS_PER_CAMPAIGN,
                extra={"campaign_id": campaign_id},
            )
        elif tls:
            log.warning(
                "campaign %s: the TLS connection to %s was refused (%s); retried until the TTL. A push "
                "service whose certificate no system CA signs needs its CA in CLARION_CA_FILE (README)",
                campaign_id,
                origin,
                reason,
                extra={"campaign_id": campaign_id, "origin": origin, "status": status},
            )
        else:
            # A 410 is an unsubscribed browser, routine; anything else may need someone's attention.
            level = logging.INFO if status == DeliveryStatus.GONE else logging.WARNING
            fields = {"campaign_id": campaign_id, "origin": origin, "status": status}
            log.log(
                level,
                "campaign %s: first `%s` from %s: %s",
                campaign_id,
                status,
                origin,
                reason,
                extra=fields,
            )

    def summary(self, campaign_id: int, counts: Counter[str]) -> None:
        """One line per job: how many recipients ended in which status (`retry`: to be tried again)."""
        text = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
        level = logging.DEBUG if set(counts) <= {DeliveryStatus.SENT} else logging.INFO
        fields = {"campaign_id": campaign_id, "counts": dict(counts)}
        log.log(
            level,
            "campaign %s: job of %s recipients recorded: %s",
            campaign_id,
            counts.total(),
            text,
            extra=fields,
        )

    def _campaign(self, campaign_id: int) -> set[str]:
        seen = self._seen.get(campaign_id)
        if seen is None:
            seen = self._seen[campaign_id] = set()
            if len(self._seen) > MAX_CAMPAIGNS:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(campaign_id)
        return seen
