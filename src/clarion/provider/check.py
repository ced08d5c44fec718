"""A native provider's credentials put to the test without sending anything: an access token obtained
from FCM's, WNS's or ADM's token endpoint, or an APNs provider token signed."""

from __future__ import annotations

from typing import Any

from clarion.config import Settings
from clarion.netpolicy import AddressPolicy
from clarion.provider import adm, apns, fcm, wns
from clarion.provider.guard import GuardedClients
from clarion.provider.httpio import reqwest_builder
from clarion.provider.oauth import TokenUnavailable


async def check(settings: Settings, provider: str, data: dict[str, Any]) -> str | None:
    """None when the credentials work, else the provider's (or the key's) reason."""
    if provider == "apns":
        try:
            apns.ProviderToken(data["key_pem"], key_id=data["key_id"], team_id=data["team_id"]).current()
        except ValueError as exc:
            return str(exc)
        return None

    def builder() -> Any:
        return reqwest_builder(
            ca_file=settings.ca_file,
            timeout_s=settings.request_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        )

    http = builder().build()
    try:
        client: fcm.FcmClient | wns.WnsClient | adm.AdmClient
        if provider == "fcm":
            client = fcm.FcmClient(http, data, base_url=settings.fcm_url)
        elif provider == "wns":
            policy = AddressPolicy.from_settings(settings.outbound_allow, settings.push_host_set())
            channels = GuardedClients(policy, builder)  # unused: a check sends to no channel
            client = wns.WnsClient(
                http, data["client_id"], data["client_secret"], auth_url=settings.wns_url, channels=channels
            )
        else:
            client = adm.AdmClient(http, data["client_id"], data["client_secret"], base_url=settings.adm_url)
        await client.check()
    except TokenUnavailable as exc:
        return exc.outcome.reason
    except ValueError as exc:
        return str(exc)
    finally:
        await http.close()
    return None
