"""Which provider serves each subscriber platform, built from the settings by the worker's entry."""

from __future__ import annotations

from pyreqwest.client import Client

from clarion.config import Settings
from clarion.provider import adm, apns, fcm, webpush, wns
from clarion.provider.base import Provider
from clarion.provider.httpio import reqwest_client


def build_providers(settings: Settings) -> dict[str, Provider]:
    """Subscriber platform -> its provider; each owns its HTTP client (closed by `Provider.close`).

    FCM, WNS and ADM each get one pooled client shared by every app's credentials; APNs opens an
    HTTP/2 connection per app key (apns.ApnsProvider); Web Push one client for every push service.
    """

    def http() -> Client:
        return reqwest_client(
            ca_file=settings.ca_file,
            timeout_s=settings.request_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        )

    return {
        "web": webpush.WebPushProvider(
            webpush.http_client(
                ca_file=settings.ca_file,
                timeout_s=settings.request_timeout_s,
                connect_timeout_s=settings.connect_timeout_s,
            ),
            settings.vapid_subject,
        ),
        "android": fcm.FcmProvider(http(), base_url=settings.fcm_url),
        "ios": apns.ApnsProvider(
            base_url=settings.apns_url,
            ca_file=settings.ca_file,
            timeout_s=settings.request_timeout_s,
            connect_timeout_s=settings.connect_timeout_s,
        ),
        "wns": wns.WnsProvider(http(), auth_url=settings.wns_url),
        "adm": adm.AdmProvider(http(), base_url=settings.adm_url),
    }
