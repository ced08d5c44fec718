"""Which addresses outbound connections may reach (docs/security.md, "Outbound addresses").

Every address Clarion connects to on a customer's behalf (push endpoints, WNS channels, pictures,
webhooks) is judged here after DNS resolution, so that a name which resolves, or later rebinds, to
loopback, private, link-local or cloud-metadata space is refused. Pure and dependency-free: the
callers (provider/guard.py and future fetchers) resolve, then ask.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IANA's special-purpose registries (RFC 6890 and successors), listed rather than taken from
# `ipaddress.is_global`, whose answers changed between Python releases (3.11 still calls 192.0.0.0/24
# and multicast global). Each range carries the name a refusal reports (the ledger's last_error).
_FORBIDDEN_V4 = (
    ("0.0.0.0/8", "this network"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),  # Alibaba's metadata service is 100.100.100.200
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),  # AWS, GCP, Azure and OpenStack metadata at 169.254.169.254
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),  # Oracle Cloud's metadata at 192.0.0.192
    ("192.0.2.0/24", "documentation"),
    ("192.31.196.0/24", "AS112"),
    ("192.52.193.0/24", "AMT"),
    ("192.88.99.0/24", "6to4 relay anycast"),  # deprecated
    ("192.168.0.0/16", "private"),
    ("192.175.48.0/24", "AS112 direct delegation"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # and 255.255.255.255, broadcast
)
_FORBIDDEN_V6 = (
    ("::1/128", "loopback"),  # inside ::/8, named on its own for the refusal's reason
    ("::/8", "reserved IPv6"),  # unspecified, loopback, IPv4-compatible (deprecated) and others
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments"),  # Teredo, benchmarking, ORCHID
    ("2001:db8::/32", "documentation"),
    ("2002::/16", "6to4"),  # would tunnel to any IPv4 address, private ones included
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing"),
    ("fc00::/7", "unique-local"),  # AWS's IPv6 metadata service is fd00:ec2::254
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),  # deprecated
    ("ff00::/8", "multicast"),
)
# Cloud metadata and wire-server addresses. All but Azure's lie in ranges refused above already;
# they are named so that an allowed host name (an intranet host) still cannot resolve to one.
_METADATA = (
    ("168.63.129.16/32", "Azure wire server"),  # a public address (also Azure's DNS), refused by name
    ("169.254.169.254/32", "cloud metadata"),  # AWS, GCP, Azure, OpenStack
    ("fd00:ec2::254/128", "cloud metadata"),  # AWS over IPv6
    ("100.100.100.200/32", "cloud metadata"),  # Alibaba Cloud
    ("192.0.0.192/32", "cloud metadata"),  # Oracle Cloud
)
# IPv6 prefixes that carry an IPv4 address in their last 32 bits: judged by that address.
_EMBEDS_V4 = ("::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48")


def _networks(entries: tuple[tuple[str, str], ...]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), name) for cidr, name in entries)


# Metadata first: a refusal names the most specific rule.
_RULES = _networks((*_METADATA, *_FORBIDDEN_V4, *_FORBIDDEN_V6))
_FORBIDDEN = tuple(net for net, _ in _RULES)
_METADATA_NETS = tuple(net for net, _ in _networks(_METADATA))
_EMBEDDING = tuple(ipaddress.ip_network(n) for n in _EMBEDS_V4)
_LOOPBACK_NAMES = frozenset({"localhost"})


def embedded_v4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, SIIT or NAT64 IPv6 address stands for, if any."""
    if isinstance(address, ipaddress.IPv6Address) and any(address in net for net in _EMBEDDING):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """Whether a connection to this address leaves for the public internet (and is no metadata service)."""
    inner = embedded_v4(address)
    if inner is not None:
        return is_public(inner)
    return not any(address in net for net in _FORBIDDEN) and not address.is_multicast


def forbidding_rule(address: IPAddress | str) -> str:
    """The rule that refuses `address`, for a refusal's reason: `169.254.169.254/32 (cloud metadata)`.

    An address that no range refuses (a public one an operator's rule could not open, as it never
    needs to) is reported as "not allowed"."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    inner = embedded_v4(ip)
    for candidate in (ip,) if inner is None else (inner, ip):
        for net, name in _RULES:
            if candidate.version == net.version and candidate in net:
                return f"{net} ({name})"
    return "not allowed"


def is_metadata(address: IPAddress) -> bool:
    inner = embedded_v4(address)
    return any((inner or address) in net for net in _METADATA_NETS)


def parse_entries(text: str) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """CLARION_OUTBOUND_ALLOW: comma-separated host names, IP addresses or CIDR ranges.

    Raises ValueError on an entry that is none of these, so a typo fails at start-up.
    """
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for raw in text.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=True))
        except ValueError:
            if "/" in entry or not _looks_like_name(entry):
                raise ValueError(
                    f"CLARION_OUTBOUND_ALLOW: {raw.strip()!r} is not a host, address or CIDR range"
                ) from None
            names.add(entry.rstrip("."))
    return frozenset(names), tuple(networks)


def _looks_like_name(entry: str) -> bool:
    labels = entry.rstrip(".").split(".")
    return all(
        0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii() for label in labels
    )


def _host_of(push_host: str) -> str:
    """ "127.0.0.1:8443" -> "127.0.0.1"; "[::1]:8443" -> "::1"; names and bare addresses unchanged."""
    if push_host.startswith("["):
        return push_host[1:].split("]", 1)[0]
    return push_host.rsplit(":", 1)[0] if push_host.count(":") == 1 else push_host


def _loopback_push_hosts(push_hosts: Iterable[str]) -> frozenset[str]:
    """The loopback entries of CLARION_PUSH_HOSTS (tests' fake push services), as URL hosts."""
    hosts: set[str] = set()
    for entry in push_hosts:
        host = _host_of(entry.strip().lower())
        if host in _LOOPBACK_NAMES:
            hosts.add(host)
            continue
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            continue
        if address.is_loopback:
            hosts.add(str(address))
    return frozenset(hosts)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Public addresses, plus what the operator allowed by name or range.

    A name allowed by the operator may resolve to private space (an intranet host) but not to a
    metadata service: only an address or range that contains it can open that. A loopback push
    host (a test's `127.0.0.1` or `localhost`) opens loopback for URLs naming that host only, so
    that no other name can be made to resolve there.
    """

    allowed_names: frozenset[str] = frozenset()
    allowed_networks: tuple[IPNetwork, ...] = ()
    loopback_hosts: frozenset[str] = frozenset()

    @classmethod
    def from_settings(cls, outbound_allow: str, push_hosts: Iterable[str] = ()) -> AddressPolicy:
        names, networks = parse_entries(outbound_allow)
        return cls(names, networks, _loopback_push_hosts(push_hosts))

    def allows(self, host: str, address: IPAddress | str) -> bool:
        """May a connection for `host` (the URL's host, a name or a literal) go to `address`?"""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        inner = embedded_v4(ip)
        candidates = [ip] if inner is None else [ip, inner]
        if any(c in net for c in candidates for net in self.allowed_networks if c.version == net.version):
            return True
        if is_public(ip):
            return True
        name = host.strip("[]").lower().rstrip(".")
        if name in self.allowed_names and not is_metadata(ip):
            return True
        if name not in self.loopback_hosts:
            return False
        if name in _LOOPBACK_NAMES:
            return (inner or ip).is_loopback
        return (inner or ip) == ipaddress.ip_address(name)  # a literal is its own address
