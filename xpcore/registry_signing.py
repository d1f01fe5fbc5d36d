"""Signed registry records: HMAC-SHA256 with a key id, verified by every registry reader.

A record on ``xp.registry`` carries the Kafka header ``xp-signature: v1:<key id>:<base64url HMAC>``
over the canonical bytes ``b"xp.registry.v1\\0" + len(key) (4 bytes, big endian) + key + value``: the
exact bytes that were produced, key included (a signed override cannot be replayed under another
key). Readers refuse a record that is unsigned, signed with an unknown key or whose signature does not
match, whatever principal wrote it (a misconfigured ACL, a super user), and report it
(:class:`RefusalLog`). Keys (docs/decisions/0044-signed-registry-records.md):

- ``XP_REGISTRY_SIGNING_KEY`` = ``KEY_ID:SECRET`` signs and verifies; ``XP_REGISTRY_VERIFY_KEYS`` adds
  verify-only keys (the previous ones during a rotation);
- else the key file (``XP_REGISTRY_SIGNING_KEY_FILE``, default ``$XP_HOME/secrets/registry-signing.keys``,
  mode 0600): one ``KEY_ID:SECRET`` per line, the first signs, all verify; generated on first publish.

The HMAC part is pure; :func:`load_keyring` reads (and on request creates) the key file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
import struct
import threading
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from xpcore.errors import ConfigError

if TYPE_CHECKING:
    from xpcore.config import KafkaSettings

__all__ = [
    "SIGNATURE_HEADER",
    "KeyRing",
    "RefusalLog",
    "RefusedRecord",
    "SigningKey",
    "load_keyring",
    "parse_keys",
    "refusals",
]

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "xp-signature"
_VERSION = "v1"
_DOMAIN = b"xp.registry.v1\0"
_MIN_SECRET_BYTES = 32


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: bytes = field(repr=False)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_keys(text: str, source: str) -> list[SigningKey]:
    """``KEY_ID:SECRET`` entries separated by commas or new lines (``#`` comments allowed)."""
    keys: list[SigningKey] = []
    entries = [part.strip() for line in text.splitlines() for part in line.split("#", 1)[0].split(",")]
    for entry in entries:
        if not entry:
            continue
        key_id, sep, secret = entry.partition(":")
        if not sep or not key_id or not secret or not key_id.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                f"{source}: a registry key must be KEY_ID:SECRET (letters, digits, - and _ in KEY_ID)"
            )
        try:
            decoded = _unb64(secret)
        except (binascii.Error, ValueError) as error:
            raise ConfigError(f"{source}: the secret of registry key {key_id!r} is not base64url") from error
        if len(decoded) < _MIN_SECRET_BYTES:
            raise ConfigError(
                f"{source}: the secret of registry key {key_id!r} has {len(decoded)} bytes; use at least"
                f" {_MIN_SECRET_BYTES} random bytes"
            )
        keys.append(SigningKey(key_id, decoded))
    return keys


def new_key() -> SigningKey:
    """A fresh random key, its id from the date and a random suffix."""
    return SigningKey(f"k{secrets.token_hex(4)}", secrets.token_bytes(_MIN_SECRET_BYTES))


def _canonical(key: bytes, value: bytes) -> bytes:
    return _DOMAIN + struct.pack(">I", len(key)) + key + value


@dataclass(frozen=True)
class KeyRing:
    """The signing key (None: this process can only verify) and every key accepted when verifying."""

    signing: SigningKey | None
    verifying: dict[str, bytes] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, keys: Sequence[SigningKey], extra: Iterable[SigningKey] = ()) -> KeyRing:
        verifying = {k.key_id: k.secret for k in (*keys, *extra)}
        return cls(keys[0] if keys else None, verifying)

    def sign(self, key: bytes, value: bytes) -> bytes:
        """The ``xp-signature`` header value of a record."""
        if self.signing is None:
            raise ConfigError(
                "no registry signing key: set XP_REGISTRY_SIGNING_KEY (KEY_ID:SECRET) or run from the"
                " XP_HOME whose `xp stack up` generated one"
            )
        mac = hmac.new(self.signing.secret, _canonical(key, value), hashlib.sha256).digest()
        return f"{_VERSION}:{self.signing.key_id}:{_b64(mac)}".encode("ascii")

    def verify(self, key: bytes | None, value: bytes | None, signature: bytes | None) -> str | None:
        """None when the record is authentic; else the reason it is refused."""
        if signature is None:
            return "unsigned"
        if not self.verifying:
            return "no_verification_key"
        try:
            version, key_id, mac_text = signature.decode("ascii").split(":")
            mac = _unb64(mac_text)
        except (UnicodeDecodeError, ValueError, binascii.Error):
            return "malformed_signature"
        if version != _VERSION:
            return "malformed_signature"
        secret = self.verifying.get(key_id)
        if secret is None:
            return "unknown_signing_key"
        expected = hmac.new(secret, _canonical(key or b"", value or b""), hashlib.sha256).digest()
        return None if hmac.compare_digest(mac, expected) else "bad_signature"


def signature_of(headers: Sequence[tuple[str, bytes | None]] | None) -> bytes | None:
    """The ``xp-signature`` header of a message's headers (the last one if repeated)."""
    found = None
    for name, value in headers or ():
        if name == SIGNATURE_HEADER:
            found = value
    return found


def load_keyring(settings: KafkaSettings, *, create: bool = False) -> KeyRing:
    """The registry keys of ``settings``: XP_REGISTRY_SIGNING_KEY(+VERIFY_KEYS), else the first key
    file that exists; with ``create`` and none anywhere, a new key in the first key file (0600)."""
    from xpcore.kafka.credentials import write_private

    extra = (
        parse_keys(settings.registry_verify_keys.get_secret_value(), "XP_REGISTRY_VERIFY_KEYS")
        if settings.registry_verify_keys is not None
        else []
    )
    if settings.registry_signing_key is not None:
        keys = parse_keys(settings.registry_signing_key.get_secret_value(), "XP_REGISTRY_SIGNING_KEY")
        return KeyRing.of(keys[:1], [*keys[1:], *extra])
    files = settings.registry_key_files()
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except OSError as error:
            raise ConfigError(f"cannot read registry signing keys {path}: {error}") from error
        return KeyRing.of(parse_keys(text, str(path)), extra)
    if create and files:
        key = new_key()
        header = "# registry signing keys: KEY_ID:SECRET, the first signs, all verify"
        text = f"{header}\n{key.key_id}:{_b64(key.secret)}\n"
        write_private(files[0], text)
        logger.info("generated a registry signing key", extra={"key_id": key.key_id, "path": str(files[0])})
        return KeyRing.of([key], extra)
    return KeyRing.of([], extra)


@dataclass(frozen=True)
class RefusedRecord:
    topic: str
    partition: int
    offset: int
    key: str
    reason: str


class RefusalLog:
    """Registry records refused in this process: each logged once (by topic, partition, offset), counted
    by reason, the latest kept for status pages and `xp experiments list`."""

    def __init__(self, keep: int = 100) -> None:
        self._lock = threading.Lock()
        self._seen: set[tuple[str, int, int]] = set()
        self.counts: Counter[str] = Counter()
        self.latest: deque[RefusedRecord] = deque(maxlen=keep)

    def report(self, record: RefusedRecord) -> bool:
        """Count and log ``record`` unless already reported; True when it was new."""
        where = (record.topic, record.partition, record.offset)
        with self._lock:
            if where in self._seen:
                return False
            if len(self._seen) > 100_000:
                self._seen.clear()
            self._seen.add(where)
            self.counts[record.reason] += 1
            self.latest.append(record)
        logger.error(
            "refused a registry record (%s): key %r at %s[%d]@%d is not signed by a registry key; it is not"
            " applied",
            record.reason,
            record.key,
            record.topic,
            record.partition,
            record.offset,
            extra={"topic": record.topic, "partition": record.partition, "offset": record.offset},
        )
        return True

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def summary(self) -> dict[str, object]:
        with self._lock:
            return {
                "refused": sum(self.counts.values()),
                "by_reason": dict(self.counts),
                "latest": [r.__dict__ for r in self.latest],
            }


_REFUSALS = RefusalLog()


def refusals() -> RefusalLog:
    """The process's log of refused registry records."""
    return _REFUSALS
