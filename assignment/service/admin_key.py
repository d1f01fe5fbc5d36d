"""The generated local admin key of the service (decision 0040).

When ``XP_SERVICE_ADMIN_KEYS`` is empty, `xp assign serve` (and `xp up`) use one generated key, kept
in ``$XP_HOME/secrets/service-admin-key`` (directory 0700, file 0600, created once, reused after).
Local commands and tests read it with :func:`read_local_admin_key`; nobody else on the machine can.
Its actor name in the audit trail is :data:`LOCAL_ADMIN_NAME`. Rotate it by deleting the file and
restarting the service.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from xpcore.errors import ConfigError

__all__ = ["LOCAL_ADMIN_NAME", "ensure_local_admin_key", "local_admin_key_path", "read_local_admin_key"]

logger = logging.getLogger(__name__)

LOCAL_ADMIN_NAME = "local-admin"
"""The actor recorded for changes made with the generated key."""


def local_admin_key_path(home: Path) -> Path:
    """Where the generated admin key lives under ``$XP_HOME``."""
    return home / "secrets" / "service-admin-key"


def read_local_admin_key(home: Path) -> str | None:
    """The generated admin key, or None when the service has not generated one yet."""
    try:
        return local_admin_key_path(home).read_text().strip() or None
    except FileNotFoundError:
        return None


def ensure_local_admin_key(home: Path) -> tuple[str, Path, bool]:
    """The generated admin key (created 0600 in a 0700 directory if missing), its path, and whether
    it was created now. Two processes racing create one key (``O_EXCL``)."""
    path = local_admin_key_path(home)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(
                f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}"
            ) from None
        existing = read_local_admin_key(home)
        if existing is None:
            raise ConfigError(f"{path} is empty; delete it to generate a new admin key") from None
        return existing, path, False
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")
    return secret, path, True
