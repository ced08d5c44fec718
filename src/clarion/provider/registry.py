"""Which provider serves each subscriber platform, built from the settings by the worker's entry."""

from __future__ import annotations

import functools

from pyreqwest.client import Client

from clarion.config import Settings
from clarion.netpolicy import AddressPolicy
from clarion.provider import adm, apns, fcm, webpush, wns
from clarion.provider.base import Provider
from clarion.provider.guard import GuardedClients
from clarion.provider.httpio import reqwest_builder
from clarion.provider.sink import sink_all


def build_providers(settings: Settings) -> dict[str, Provider]:
    """Subscriber platform -> its provider; each owns its HTTP clients (closed by `Provider.close`).

    FCM, WNS and ADM each get one pooled client shared by every app's credentials; APNs opens an
    HTTP/2 connection per app key (apns.ApnsProvider). Addresses customers choose (Web Push endpoints,
    WNS channel URIs) are reached only through `GuardedClients` under one address policy
    (docs/security.md, "Outbound addresses"); the configured origins of FCM, APNs, ADM and WNS's
    token service need no guard.
    """
    policy = AddressPolicy.from_settings(settings.outbound_allow, settings.push_host_set())
    builder = functools.partial(
        reqwest_builder,
        ca_file=settings.ca_file,
        timeout_s=settings.request_timeout_s,
        connect_timeout_s=settings.connect_timeout_s,
    )

    def http() -> Client:
        return builder().build()

    def guarded() -> GuardedClients:
        return GuardedClients(policy, builder)

    providers: dict[str, Provider] = {
        "web": webpush.WebPushProvider(guarded(), settings.vapid_subject, settings.web_push_form),
        "android": fcm.FcmProvider(http(), base_url=settings.fcm_url),
        "ios": apns.ApnsProvider(
            base_url=settings.apns_url,
            ca_file=settings.ca_file,
            timeout_s=settings.request_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        ),
        "wns": wns.WnsProvider(http(), auth_url=settings.wns_url, channels=guarded()),
        "adm": adm.AdmProvider(http(), base_url=settings.adm_url),
    }
    return sink_all(providers) if settings.delivery == "sink" else providers
