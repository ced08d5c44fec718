"""Which push addresses are accepted: CLARION_PUSH_HOSTS entries, exact or "*.domain"."""

from __future__ import annotations

import pytest

from clarion import errors
from clarion.subscriber.endpoint import check_push_url

HOSTS = frozenset({"fcm.googleapis.com", "*.notify.windows.com", "127.0.0.1:8443", "localhost"})


@pytest.mark.parametrize(
    "url",
    [
        "https://fcm.googleapis.com/fcm/send/abc",
        "https://FCM.googleapis.com/fcm/send/abc",
        "https://wns2-par02p.notify.windows.com/w/?token=AgYAAA",
        "https://db5.notify.windows.com/?token=AwYAAAD",
        "https://a.b.notify.windows.com/?token=1",
        "http://127.0.0.1:8443/push/1",
        "http://localhost/push/1",
    ],
)
def test_listed_hosts_are_accepted(url: str) -> None:
    check_push_url(url, HOSTS, "token")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://notify.windows.com/?token=1", "token host notify.windows.com is not a known push service"),
        ("https://evilnotify.windows.com/", "token host evilnotify.windows.com is not a known push service"),
        (
            "https://notify.windows.com.evil.net/",
            "token host notify.windows.com.evil.net is not a known push service",
        ),
        ("https://googleapis.com/", "token host googleapis.com is not a known push service"),
        ("https://x.fcm.googleapis.com/", "token host x.fcm.googleapis.com is not a known push service"),
        ("http://127.0.0.1:8444/push/1", "token host 127.0.0.1 is not a known push service"),
        ("http://fcm.googleapis.com/fcm/send/abc", "token must be an https:// URL"),
        ("https://127.0.0.1:99999/", "token is not a URL"),
    ],
)
def test_other_hosts_are_refused(url: str, message: str) -> None:
    with pytest.raises(errors.InvalidField) as caught:
        check_push_url(url, HOSTS, "token")
    assert (caught.value.field, caught.value.message) == ("token", message)
