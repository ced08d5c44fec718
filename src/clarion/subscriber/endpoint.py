"""Validation of push addresses: Web Push endpoints, WNS channel URIs and P-256 keys."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

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


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listed(host: str, port: int | None, allowed_hosts: frozenset[str]) -> bool:
    """The host, or host:port, is listed; an entry "*.example.com" stands for its subdomains.

    WNS (and Edge's Web Push) hand out channel URIs on many hosts under notify.windows.com.
    """
    if host in allowed_hosts or f"{host}:{port}" in allowed_hosts:
        return True
    labels = host.split(".")
    return any(f"*.{'.'.join(labels[i:])}" in allowed_hosts for i in range(1, len(labels) - 1))


def check_push_url(url: str, allowed_hosts: frozenset[str], field: str) -> None:
    """Only known push services: the host (or host:port) must be listed in CLARION_PUSH_HOSTS."""
    try:
        parts = urlsplit(url)
        host, port = (parts.hostname or "").lower(), parts.port
    except ValueError:
        raise errors.InvalidField(f"{field} is not a URL", field=field) from None
    if parts.scheme not in ("https", "http") or not host:
        raise errors.InvalidField(f"{field} must be an https:// URL", field=field)
    if parts.username or parts.password:
        raise errors.InvalidField(f"{field} must not carry credentials", field=field)
    if not _listed(host, port, allowed_hosts):
        raise errors.InvalidField(f"{field} host {host} is not a known push service", field=field)
    if parts.scheme == "http" and not _is_loopback(host):
        raise errors.InvalidField(f"{field} must be an https:// URL", field=field)
