"""Generated SASL/SCRAM credentials of the local secured broker (``$XP_HOME/secrets/kafka``).

`xp stack up` writes ``credentials.json`` (mode 0600, directory 0700) the first time: the SCRAM
mechanism, the broker's bootstrap and one random password per principal of
:mod:`xpcore.kafka.principals`. Local commands read it through :func:`local_client_config` when no
SASL username is configured and they talk to that broker, so nobody handles keys by hand.

No confluent-kafka here: plain files and JSON.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from xpcore.errors import ConfigError
from xpcore.kafka.principals import ADMIN, ROLES

__all__ = [
    "CREDENTIALS_FILE",
    "MECHANISM",
    "LocalCredentials",
    "load_local_credentials",
    "local_client_config",
    "write_private",
]

CREDENTIALS_FILE = "credentials.json"
MECHANISM = "SCRAM-SHA-512"
"""The SASL mechanism of the local broker's client listener."""


@dataclass(frozen=True)
class LocalCredentials:
    """What ``credentials.json`` holds."""

    bootstrap: str
    mechanism: str
    passwords: Mapping[str, str]
    """Principal (= role) name → password."""

    def serves(self, bootstrap: str) -> bool:
        """Whether a client pointed at ``bootstrap`` talks to this broker."""
        wanted = {part.strip() for part in bootstrap.split(",") if part.strip()}
        aliases = {self.bootstrap, self.bootstrap.replace("127.0.0.1:", "localhost:")}
        return bool(wanted) and wanted <= aliases

    def client_config(self, role: str | None) -> dict[str, str]:
        """librdkafka settings of the principal of ``role`` (None: admin)."""
        name = role or ADMIN
        password = self.passwords.get(name)
        if password is None:
            raise ConfigError(
                f"no local Kafka credentials for role {name!r} (known: {', '.join(sorted(self.passwords))});"
                " run `xp stack up` again to create them"
            )
        return {
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": self.mechanism,
            "sasl.username": name,
            "sasl.password": password,
        }

    @classmethod
    def generate(cls, bootstrap: str) -> LocalCredentials:
        """Fresh random passwords for every role."""
        return cls(bootstrap, MECHANISM, {role: secrets.token_urlsafe(32) for role in ROLES})

    def with_bootstrap(self, bootstrap: str) -> LocalCredentials:
        return LocalCredentials(bootstrap, self.mechanism, dict(self.passwords))

    def with_missing_roles(self) -> LocalCredentials:
        """Passwords for roles added since the file was written (existing ones kept)."""
        passwords = dict(self.passwords)
        for role in ROLES:
            passwords.setdefault(role, secrets.token_urlsafe(32))
        return LocalCredentials(self.bootstrap, self.mechanism, passwords)

    def to_json(self) -> str:
        data = {"bootstrap": self.bootstrap, "mechanism": self.mechanism, "passwords": dict(self.passwords)}
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def save(self, directory: Path) -> Path:
        """Write ``credentials.json`` under ``directory`` (0700) with mode 0600."""
        return write_private(directory / CREDENTIALS_FILE, self.to_json())


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by the owner only (0600; parent directory 0700).

    The file is created 0600 before any secret is written (no window where it is world-readable).
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def load_local_credentials(directory: Path) -> LocalCredentials | None:
    """The credentials under ``directory``; None when there are none (or they are unreadable)."""
    path = directory / CREDENTIALS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read local Kafka credentials {path}: {error}") from error
    try:
        return LocalCredentials(
            str(data["bootstrap"]),
            str(data["mechanism"]),
            {str(k): str(v) for k, v in data["passwords"].items()},
        )
    except (KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"local Kafka credentials {path} are malformed: missing {error}") from error


def local_client_config(directories: Iterable[Path], bootstrap: str, role: str | None) -> dict[str, str]:
    """SASL settings for ``role`` from the first directory whose broker serves ``bootstrap``; {} if none."""
    for directory in directories:
        credentials = load_local_credentials(directory)
        if credentials is not None and credentials.serves(bootstrap):
            return credentials.client_config(role)
    return {}
