"""Client and admin keys, and the rule that a non-loopback bind needs keys (pure; no HTTP here).

Keys arrive as ``Authorization: Bearer KEY`` or ``X-XP-Key: KEY`` (and, for the GrowthBook SDK
endpoint, as the path's client key). Keys are compared in constant time and never logged.

Admin keys of the service may be named, ``name:secret`` (``named=True``): the name is the actor the
audit trail records (``changed_by``); an unnamed admin key is ``admin-N`` (its position, from 1).
"""

from __future__ import annotations

import enum
import hmac
import ipaddress
import re
from dataclasses import dataclass

from pydantic import SecretStr

from xpcore.errors import ConfigError

__all__ = ["AccessLevel", "KeyRing", "check_bind", "is_loopback"]


class AccessLevel(enum.IntEnum):
    """What a caller may do; higher levels include the lower ones."""

    NONE = 0
    CLIENT = 1
    ADMIN = 2


def _split(keys: SecretStr | str | None) -> tuple[str, ...]:
    if keys is None:
        return ()
    text = keys.get_secret_value() if isinstance(keys, SecretStr) else keys
    return tuple(k.strip() for k in text.split(",") if k.strip())


_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def _named(entries: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Secrets and names of ``name:secret`` entries (an entry without a valid name is all secret)."""
    secrets: list[str] = []
    names: list[str] = []
    for index, entry in enumerate(entries, start=1):
        name, colon, secret = entry.partition(":")
        if colon and secret and _NAME.fullmatch(name):
            secrets.append(secret)
            names.append(name)
        else:
            secrets.append(entry)
            names.append(f"admin-{index}")
    return tuple(secrets), tuple(names)


@dataclass(frozen=True, repr=False)
class KeyRing:
    """The configured keys. With no key at all, every caller is an admin (the dashboards' loopback
    development mode); the assignment service never grants admin without a key (:meth:`identify`)."""

    client_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()
    admin_names: tuple[str, ...] = ()
    """Actor name of each admin key (same order); missing names are ``admin-N``."""

    @classmethod
    def from_secrets(
        cls,
        client_keys: SecretStr | str | None,
        admin_keys: SecretStr | str | None,
        *,
        named: bool = False,
    ) -> KeyRing:
        if not named:
            return cls(_split(client_keys), _split(admin_keys))
        secrets, names = _named(_split(admin_keys))
        return cls(_split(client_keys), secrets, names)

    def with_admin(self, secret: str, name: str) -> KeyRing:
        """This ring plus one admin key (e.g. the generated local one)."""
        names = tuple(self.admin_name(i) for i in range(len(self.admin_keys)))
        return KeyRing(self.client_keys, (*self.admin_keys, secret), (*names, name))

    def admin_name(self, index: int) -> str:
        return self.admin_names[index] if index < len(self.admin_names) else f"admin-{index + 1}"

    def __repr__(self) -> str:  # never show keys
        return f"KeyRing(client_keys={len(self.client_keys)}, admin_keys={len(self.admin_keys)})"

    @property
    def open(self) -> bool:
        """No keys configured: no authentication (allowed on loopback binds only)."""
        return not self.client_keys and not self.admin_keys

    def level(self, key: str | None) -> AccessLevel:
        """The access a presented key grants (constant-time comparison against every key)."""
        if self.open:
            return AccessLevel.ADMIN
        if not key:
            return AccessLevel.NONE
        presented = key.encode()
        is_admin = False
        is_client = False
        for candidate in self.admin_keys:
            is_admin |= hmac.compare_digest(presented, candidate.encode())
        for candidate in self.client_keys:
            is_client |= hmac.compare_digest(presented, candidate.encode())
        if is_admin:
            return AccessLevel.ADMIN
        return AccessLevel.CLIENT if is_client else AccessLevel.NONE

    def identify(self, key: str | None) -> tuple[AccessLevel, str | None]:
        """The access a presented key grants and, for an admin key, its actor name. Unlike
        :meth:`level`, an open ring grants nothing here: admin always needs a matching key."""
        if not key:
            return AccessLevel.NONE, None
        presented = key.encode()
        actor: str | None = None
        for index, candidate in enumerate(self.admin_keys):
            if hmac.compare_digest(presented, candidate.encode()) and actor is None:
                actor = self.admin_name(index)
        is_client = False
        for candidate in self.client_keys:
            is_client |= hmac.compare_digest(presented, candidate.encode())
        if actor is not None:
            return AccessLevel.ADMIN, actor
        return (AccessLevel.CLIENT if is_client else AccessLevel.NONE), None


def key_from_headers(authorization: str | None, x_key: str | None) -> str | None:
    """The key a request presents: ``Authorization: Bearer KEY`` first, then ``X-XP-Key``."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return x_key.strip() if x_key else None


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, keys: KeyRing) -> None:
    """Refuse (ConfigError, one line) to serve a non-loopback interface without client keys."""
    if is_loopback(host):
        return
    if not keys.client_keys and not keys.admin_keys:
        raise ConfigError(
            f"refusing to bind {host} without keys: set XP_SERVICE_CLIENT_KEYS (and XP_SERVICE_ADMIN_KEYS "
            "for overrides), or bind 127.0.0.1"
        )
