"""The connect-time address policy (clarion.netpolicy): which resolved addresses may be reached."""

from __future__ import annotations

import ipaddress

import pytest

from clarion.config import Settings
from clarion.netpolicy import AddressPolicy, embedded_v4, is_metadata, is_public, parse_entries

FORBIDDEN = (
    # IPv4: unspecified, private, CGNAT, loopback, link-local, metadata, special-purpose, multicast.
    "0.0.0.0",
    "0.1.2.3",
    "10.0.0.1",
    "10.255.255.255",
    "100.64.0.1",
    "100.100.100.200",
    "127.0.0.1",
    "127.255.255.254",
    "169.254.0.1",
    "169.254.169.254",
    "168.63.129.16",
    "172.16.0.1",
    "172.31.255.255",
    "192.0.0.1",
    "192.0.0.192",
    "192.0.2.1",
    "192.88.99.1",
    "192.168.0.1",
    "198.18.0.1",
    "198.51.100.1",
    "203.0.113.1",
    "224.0.0.1",
    "233.252.0.1",
    "239.255.255.250",
    "240.0.0.1",
    "255.255.255.255",
    # IPv6: unspecified, loopback, IPv4-compatible, unique-local, link-local, site-local, multicast.
    "::",
    "::1",
    "::127.0.0.1",
    "fc00::1",
    "fd00:ec2::254",
    "fe80::1",
    "febf::1",
    "fec0::1",
    "ff02::1",
    "ff0e::1",
    "100::1",
    "2001:db8::1",
    "2001::1",  # Teredo
    "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
    "2002:0808:0808::1",  # 6to4 of a public address: a tunnel is refused whatever its end
    "3fff::1",
    # IPv6 forms of forbidden IPv4 addresses.
    "::ffff:127.0.0.1",
    "::ffff:169.254.169.254",
    "::ffff:10.0.0.1",
    "::ffff:0:127.0.0.1",
    "64:ff9b::127.0.0.1",
    "64:ff9b::169.254.169.254",
    "64:ff9b:1::10.0.0.1",
)
PUBLIC = (
    "8.8.8.8",
    "1.1.1.1",
    "142.250.185.74",  # an fcm.googleapis.com answer
    "34.107.221.82",
    "2a00:1450:4001:82b::200a",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "64:ff9b::8.8.8.8",
)


@pytest.mark.parametrize("address", FORBIDDEN)
def test_non_public_addresses_are_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert not is_public(ip)
    assert not AddressPolicy().allows("push.example.net", ip)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))
    assert AddressPolicy().allows("fcm.googleapis.com", address)


def test_embedded_ipv4_is_read_from_mapped_and_nat64_addresses() -> None:
    assert embedded_v4(ipaddress.ip_address("::ffff:169.254.169.254")) == ipaddress.ip_address(
        "169.254.169.254"
    )
    assert embedded_v4(ipaddress.ip_address("64:ff9b::a00:1")) == ipaddress.ip_address("10.0.0.1")
    assert embedded_v4(ipaddress.ip_address("2a00:1450::1")) is None
    assert embedded_v4(ipaddress.ip_address("10.0.0.1")) is None


def test_metadata_addresses_are_known() -> None:
    for address in (
        "169.254.169.254",
        "fd00:ec2::254",
        "100.100.100.200",
        "168.63.129.16",
        "::ffff:a9fe:a9fe",
    ):
        assert is_metadata(ipaddress.ip_address(address)), address
    assert not is_metadata(ipaddress.ip_address("169.254.1.1"))


def test_the_operator_may_allow_names_addresses_and_ranges() -> None:
    policy = AddressPolicy.from_settings("10.0.0.0/8, 192.168.1.7 ,pictures.intranet,[fd00::1]")
    assert policy.allows("anything", "10.20.30.40")
    assert policy.allows("anything", "::ffff:10.20.30.40")
    assert policy.allows("anything", "192.168.1.7")
    assert not policy.allows("anything", "192.168.1.8")
    assert policy.allows("anything", "fd00::1")
    # An allowed name reaches private space, but never a metadata service.
    assert policy.allows("pictures.intranet", "172.16.0.9")
    assert policy.allows("PICTURES.intranet.", "172.16.0.9")
    assert not policy.allows("pictures.intranet", "169.254.169.254")
    assert not policy.allows("other.intranet", "172.16.0.9")
    # A range that contains a metadata address opens it: that is explicit.
    assert AddressPolicy.from_settings("169.254.169.254/32").allows("x", "169.254.169.254")


def test_loopback_push_hosts_are_reachable_and_nothing_else_of_them() -> None:
    push_hosts = ["127.0.0.1", "[::1]:8443", "localhost", "push.example.net", "10.1.2.3", "127.0.0.2:9000"]
    policy = AddressPolicy.from_settings("", push_hosts)
    assert policy.allows("127.0.0.1", "127.0.0.1")
    assert policy.allows("127.0.0.2", "127.0.0.2")
    assert policy.allows("[::1]", "::1")
    assert policy.allows("localhost", "127.0.0.1")
    assert not policy.allows("push.example.net", "127.0.0.1"), "a listed name does not open loopback"
    assert not policy.allows("127.0.0.3", "127.0.0.3")
    assert not policy.allows("127.0.0.1", "127.0.0.2"), "a literal opens itself only"
    assert not policy.allows("10.1.2.3", "10.1.2.3"), "only loopback entries of the push hosts are opened"
    assert not policy.allows("localhost", "169.254.169.254")


@pytest.mark.parametrize(
    "entry", ["10.0.0.1/8", "not a host", "300.1.1.1/32", "a..b", "pictures.intranet/24", "é.example"]
)
def test_a_bad_entry_fails_at_start_up(entry: str) -> None:
    with pytest.raises(ValueError, match="CLARION_OUTBOUND_ALLOW"):
        parse_entries(entry)
    with pytest.raises(ValueError, match="CLARION_OUTBOUND_ALLOW"):
        Settings(outbound_allow=entry)


def test_the_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLARION_OUTBOUND_ALLOW", "10.0.0.0/8,pictures.intranet")
    settings = Settings()
    assert settings.outbound_allow == "10.0.0.0/8,pictures.intranet"
    assert Settings(_env_file=None).outbound_allow == "10.0.0.0/8,pictures.intranet"  # type: ignore[call-arg]
    monkeypatch.delenv("CLARION_OUTBOUND_ALLOW")
    assert Settings().outbound_allow == ""
