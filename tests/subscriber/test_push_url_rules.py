"""The finer rules of push addresses: ports, schemes and IP literals (docs/security.md)."""

from __future__ import annotations

import pytest

from clarion import errors
from clarion.subscriber.endpoint import check_push_url

HOSTS = frozenset(
    {"fcm.googleapis.com", "push.example.net:8443", "127.0.0.1", "[::1]", "10.1.2.3", "localhost"}
)


def refusal(url: str, hosts: frozenset[str] = HOSTS) -> str:
    with pytest.raises(errors.InvalidField) as caught:
        check_push_url(url, hosts, "token")
    assert caught.value.field == "token"
    return caught.value.message


def test_a_public_service_is_reached_on_443_only_unless_its_port_is_listed() -> None:
    check_push_url("https://fcm.googleapis.com/fcm/send/a", HOSTS, "token")
    assert refusal("https://fcm.googleapis.com:8443/fcm/send/a") == (
        "token port 8443 is not allowed for fcm.googleapis.com"
        " (list fcm.googleapis.com:8443 in CLARION_PUSH_HOSTS)"
    )
    check_push_url("https://push.example.net:8443/push/1", HOSTS, "token")
    assert (
        refusal("https://push.example.net/push/1")
        == "token host push.example.net is not a known push service"
    )
    assert refusal("https://push.example.net:8444/push/1") == (
        "token host push.example.net is not a known push service"
    )


def test_a_listed_loopback_host_takes_any_port_but_those_of_local_services() -> None:
    for url in ("http://127.0.0.1:9/wns/channel", "http://127.0.0.1:41873/push/1", "http://[::1]:8080/p"):
        check_push_url(url, HOSTS, "token")
    check_push_url("http://localhost/push/1", HOSTS, "token")
    assert refusal("http://127.0.0.1:6379/") == (
        "token port 6379 is not allowed for 127.0.0.1 (list 127.0.0.1:6379 in CLARION_PUSH_HOSTS)"
    )
    assert refusal("http://[::1]:5432/").startswith("token port 5432 is not allowed for [::1]")
    # Listing the port explicitly is the operator's own decision.
    check_push_url("http://127.0.0.1:6379/", HOSTS | {"127.0.0.1:6379"}, "token")


def test_plain_http_only_on_a_loopback_host() -> None:
    assert refusal("http://10.1.2.3/push") == "token must be an https:// URL"
    check_push_url("https://10.1.2.3/push", HOSTS, "token")
    assert refusal("https://10.1.2.3:8443/push").startswith("token port 8443 is not allowed for 10.1.2.3")


def test_an_ip_literal_must_be_listed_as_it_is_serialised() -> None:
    assert refusal("https://127.0.0.2/push") == "token host 127.0.0.2 is not a known push service"
    assert refusal("http://[0:0:0:0:0:0:0:1]/push") == (
        "token is not in canonical form (as an HTTP client would rewrite it)"
    )
    assert refusal("http://[::1]/push", frozenset({"::1"})) == "token host [::1] is not a known push service"


def test_a_wildcard_covers_subdomains_only() -> None:
    hosts = frozenset({"*.notify.windows.com"})
    check_push_url("https://db5.notify.windows.com/?token=1", hosts, "token")
    check_push_url("https://xn--mnchen-3ya.notify.windows.com/?token=1", hosts, "token")
    assert refusal("https://notify.windows.com/?token=1", hosts) == (
        "token host notify.windows.com is not a known push service"
    )
    # The Unicode form is what the client would rewrite to punycode: only the punycode form is stored.
    assert refusal("https://münchen.notify.windows.com/?token=1", hosts) == (
        "token contains characters a push address cannot have"
    )
