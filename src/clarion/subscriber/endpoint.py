"""Validation of push addresses: Web Push endpoints, WNS channel URIs and P-256 keys."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re

from cryptography.hazmat.primitives.asymmetric import ec
from pyreqwest.http import Url

from clarion import errors

# RFC 8291 §3.2: the user agent's auth secret is 16 bytes.
AUTH_SECRET_BYTES = 16
# SEC 1 uncompressed P-256 point: 0x04 || X (32) || Y (32).
P256_POINT_BYTES = 65
# RFC 4648 §5 base64url, padding optional (browsers send none). Other characters are refused rather
# than skipped, as a lenient decoder would: what is stored is then exactly what was checked.
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


def b64url_bytes(value: str, field: str) -> bytes:
    bare = value.rstrip("=")
    if not _B64URL.fullmatch(value) or len(bare) % 4 == 1:
        raise errors.InvalidField(f"{field} is not base64url", field=field)
    try:
        return base64.urlsafe_b64decode(bare + "=" * (-len(bare) % 4))
    except (ValueError, binascii.Error):
        raise errors.InvalidField(f"{field} is not base64url", field=field) from None


def check_p256dh(value: str, field: str = "subscription.keys.p256dh") -> None:
    raw = b64url_bytes(value, field)
    if len(raw) != P256_POINT_BYTES or raw[0] != 4:
        raise errors.InvalidField(f"{field} must be an uncompressed P-256 point", field=field)
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise errors.InvalidField(f"{field} is not a point on P-256", field=field) from None


def check_auth(value: str, field: str = "subscription.keys.auth") -> None:
    if len(b64url_bytes(value, field)) != AUTH_SECRET_BYTES:
        raise errors.InvalidField(f"{field} must be 16 bytes", field=field)


# What a push address may contain: RFC 3986's unreserved and reserved characters and "%" (for the
# path and query only). Whitespace, controls, backslashes, quotes, "<>^`{|}" and every non-ASCII
# character are refused outright: those are where URL parsers disagree (WHATWG drops tabs and
# newlines, turns a backslash into "/" and IDNA-maps fullwidth letters and U+3002 to ASCII; urllib does not).
_PLAIN = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
# A DNS name as the client serialises it: lowercase LDH labels of 1-63 characters (punycode "xn--"
# labels included), no empty label (so no trailing dot). Numeric hosts never get here: the parser reads
# them as IPv4 and the round trip has refused any form but the dotted-decimal one.
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# 253 characters: the longest DNS name in its dotted text form (RFC 1035 §2.3.4, 255 octets on the wire).
MAX_HOST_CHARS = 253
# Ports of well-known local services (SSH, SMTP, DNS, rpcbind, Docker, etcd, MySQL, PostgreSQL, AMQP,
# Redis, Consul, Elasticsearch, kubelet, memcached, MongoDB): refused on a loopback host named without
# a port, which tests list to reach their fake push services on ports the OS picks.
_SERVICE_PORTS = frozenset(
    {22, 23, 25, 53, 111, 2375, 2376, 2379, 3306, 5432, 5672, 6379, 8500, 9200, 10250, 11211, 27017}
)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _listed_name(host: str, allowed_hosts: frozenset[str]) -> bool:
    """The host is listed as such; an entry "*.example.com" stands for its subdomains.

    WNS (and Edge's Web Push) hand out channel URIs on many hosts under notify.windows.com.
    """
    if host in allowed_hosts:
        return True
    labels = host.split(".")
    return any(f"*.{'.'.join(labels[i:])}" in allowed_hosts for i in range(1, len(labels) - 1))


def _invalid(field: str, why: str) -> errors.InvalidField:
    return errors.InvalidField(f"{field} {why}", field=field)


def _parse(url: str, field: str) -> Url:
    """Parse with the parser the HTTP client uses (Rust's `url` crate, WHATWG rules), and only a URL
    that it serialises back to the very same text: what was checked is then what is fetched."""
    if not url.startswith(("https://", "http://")):
        raise _invalid(field, "must be an https:// URL")
    if not _PLAIN.fullmatch(url):
        raise _invalid(field, "contains characters a push address cannot have")
    authority = url.split("/", 3)[2]
    if "@" in authority:
        raise _invalid(field, "must not carry credentials")
    if "%" in authority:
        raise _invalid(field, "host must not be percent-encoded")
    try:
        parsed = Url(url)
    except ValueError:
        raise _invalid(field, "is not a URL") from None
    # The host is compared case-insensitively: "https://FCM.googleapis.com/..." is the same address.
    head = len("https://") if url.startswith("https://") else len("http://")
    lowered = url[:head] + authority.lower() + url[head + len(authority) :]
    if parsed.fragment is not None:
        raise _invalid(field, "must not have a fragment")
    if str(parsed) != lowered:
        raise _invalid(field, "is not in canonical form (as an HTTP client would rewrite it)")
    return parsed


def _check_host(parsed: Url, allowed_hosts: frozenset[str], field: str) -> str:
    host = parsed.host_str or ""
    port = parsed.port
    if parsed.domain is None:
        # An IP literal: only one named in CLARION_PUSH_HOSTS (a test's loopback push service).
        listed = host in allowed_hosts or f"{host}:{port}" in allowed_hosts
    else:
        if len(host) > MAX_HOST_CHARS or not all(_LABEL.fullmatch(label) for label in host.split(".")):
            raise _invalid(field, f"host {host} is not a DNS name")
        listed = _listed_name(host, allowed_hosts) or f"{host}:{port}" in allowed_hosts
    if not listed:
        raise _invalid(field, f"host {host} is not a known push service")
    if port is not None and f"{host}:{port}" not in allowed_hosts and not _any_port(host, port):
        raise _invalid(
            field, f"port {port} is not allowed for {host} (list {host}:{port} in CLARION_PUSH_HOSTS)"
        )
    return host


def _any_port(host: str, port: int) -> bool:
    """A loopback host listed without a port (tests) takes the ports their fake services are given."""
    return _is_loopback(host) and port not in _SERVICE_PORTS


def check_push_url(url: str, allowed_hosts: frozenset[str], field: str) -> None:
    """Only plain addresses of known push services (docs/security.md, "Outbound addresses").

    https:// on the default port of a host listed in CLARION_PUSH_HOSTS (exactly or as "*.domain"),
    another port only where "host:port" is listed; plain http:// only on a listed loopback host.
    """
    parsed = _parse(url, field)
    host = _check_host(parsed, allowed_hosts, field)
    if parsed.scheme == "http" and not _is_loopback(host):
        raise _invalid(field, "must be an https:// URL")
