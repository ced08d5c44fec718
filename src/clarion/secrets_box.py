"""Secrets at rest: the one place that encrypts and decrypts stored secrets (docs/security.md,
"Secrets at rest").

A sealed value is text: `clarion:v1:<key id>:<base64url(nonce || AES-256-GCM ciphertext and tag)>`.
The key id names the key that sealed it, so that several keys can be held during a rotation; the
associated data names where the value lives, so that a value copied onto another row is refused.
A value without the `clarion:v1:` marker is a legacy plaintext one: it is read as it is.

The keys come from CLARION_SECRET_KEY (one or more, comma-separated, newest first) or, when that is
unset, from a key file (one key a line, newest first), generated on first use with mode 0600.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession

from clarion.config import Settings

MARKER = "clarion:v1:"
_KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # 96-bit random nonces (NIST SP 800-38D §8.2.2): far below 2**32 seals per key
# The key file's name in the data directory, beside the SQLite database.
KEY_FILE_NAME = "secret.keys"
# Where a session finds the box (Database(session_info=...)): no module-level singleton.
_SESSION_KEY = "clarion.secret_box"


class SecretsUnavailable(Exception):
    """Stored secrets cannot be read with the configured key: missing, wrong, or a value was altered.

    Its message is one line meant for the operator (the CLI prints it and exits with status 2).
    """


def new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(_KEY_BYTES)).decode().rstrip("=")


def _decode_key(text: str, source: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != _KEY_BYTES:
        raise SecretsUnavailable(
            f"{source}: each key must be 32 bytes in URL-safe base64 (see `clarion secrets new-key`)"
        )
    return key


def parse_keys(text: str, source: str) -> list[bytes]:
    """Keys separated by commas or new lines, newest first; blank entries are ignored."""
    entries = [entry.strip() for entry in text.replace(",", "\n").splitlines()]
    return [_decode_key(entry, source) for entry in entries if entry]


def key_id(key: bytes) -> str:
    """A short public name for a key, derived from it: a wrong key shows as an unknown id."""
    return hashlib.sha256(b"clarion secret key id\0" + key).hexdigest()[:12]


def key_file_path(settings: Settings) -> Path:
    """CLARION_SECRET_KEY_FILE, else beside the SQLite database, or in the data directory."""
    if settings.secret_key_file:
        return Path(settings.secret_key_file)
    return settings.files_dir() / KEY_FILE_NAME


def write_key_file(path: Path, keys: list[bytes]) -> None:
    write_private_file(
        path, "".join(base64.urlsafe_b64encode(key).decode().rstrip("=") + "\n" for key in keys)
    )


def write_private_file(path: Path, text: str) -> None:
    """Replace the file atomically, readable by its owner only (0600 from creation, no window)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _create_key_file(path: Path) -> None:
    """First start: a new key, unless another process created the file first. The key is written to
    a temporary file that is then hard-linked into place (which fails if the file exists), so that a
    process starting at the same moment never reads the file empty, before its key is written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.new")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(new_key() + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink()


class SecretBox:
    """Seals and opens stored secrets with the newest key; opens with any key it holds."""

    def __init__(self, keys: list[bytes], key_file: Path | None = None) -> None:
        self._key_file = key_file
        self._keys: dict[str, AESGCM] = {}
        self._primary = ""
        self._set_keys(keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        configured = settings.secret_key.get_secret_value().strip() if settings.secret_key else ""
        if configured:  # an empty CLARION_SECRET_KEY= counts as unset
            return cls(parse_keys(configured, "CLARION_SECRET_KEY"))
        box = cls([], key_file_path(settings))
        box.reload()
        return box

    @property
    def key_file(self) -> Path | None:
        """The key file this box reads, or None when the keys come from CLARION_SECRET_KEY."""
        return self._key_file

    @property
    def source(self) -> str:
        return "CLARION_SECRET_KEY" if self._key_file is None else f"the key file {self._key_file}"

    @property
    def primary_id(self) -> str:
        return self._primary

    def has_keys(self) -> bool:
        return bool(self._keys)

    def key_ids(self) -> list[str]:
        return list(self._keys)

    def _set_keys(self, keys: list[bytes]) -> None:
        self._keys = {key_id(key): AESGCM(key) for key in keys}
        self._primary = key_id(keys[0]) if keys else ""

    def reload(self) -> None:
        """Read the key file again (another process may have rotated it); no-op for CLARION_SECRET_KEY."""
        if self._key_file is None:
            return
        try:
            text = self._key_file.read_text()
        except FileNotFoundError:
            return
        self._set_keys(parse_keys(text, str(self._key_file)))

    def ensure_key(self) -> None:
        """A key to seal with: the key file is generated on first use when there is none."""
        if self._keys:
            return
        if self._key_file is None:
            raise SecretsUnavailable("CLARION_SECRET_KEY holds no key")
        _create_key_file(self._key_file)
        self.reload()

    def seal(self, plaintext: str, where: str) -> str:
        self.ensure_key()
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = self._keys[self._primary].encrypt(nonce, plaintext.encode(), _aad(self._primary, where))
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{MARKER}{self._primary}:{body}"

    def open(self, value: str, where: str) -> str:
        """The plaintext of a sealed value; a value without the marker is legacy plaintext."""
        if not is_sealed(value):
            return value
        kid, _, body = value[len(MARKER) :].partition(":")
        if kid not in self._keys:
            self.reload()
        cipher = self._keys.get(kid)
        if cipher is None:
            raise SecretsUnavailable(
                f"a stored secret ({where}) is encrypted with key {kid}, which {self.source} does not "
                "hold: the secret key is missing or wrong"
            )
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return cipher.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _aad(kid, where)).decode()
        except (InvalidTag, ValueError, binascii.Error):
            raise SecretsUnavailable(
                f"a stored secret ({where}) fails authentication: it was altered or copied from elsewhere"
            ) from None

    def is_current(self, value: str) -> bool:
        """Sealed under the newest key (nothing for a rotation or the start-up pass to do)."""
        return bool(self._primary) and value.startswith(f"{MARKER}{self._primary}:")


def _aad(kid: str, where: str) -> bytes:
    return f"{MARKER}{kid}:{where}".encode()


def is_sealed(value: str) -> bool:
    return value.startswith(MARKER)


def sealed_key_id(value: str) -> str | None:
    return value[len(MARKER) :].partition(":")[0] if is_sealed(value) else None


def session_info(box: SecretBox) -> dict[str, Any]:
    """What `Database(session_info=...)` gives every session so that repositories find the box."""
    return {_SESSION_KEY: box}


def box_of(session: AsyncSession) -> SecretBox:
    box = session.info.get(_SESSION_KEY)
    if not isinstance(box, SecretBox):
        raise RuntimeError("this database has no secret box: build it with composition.open_database")
    return box
