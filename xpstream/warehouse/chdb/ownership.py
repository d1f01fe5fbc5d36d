"""Who owns an embedded chDB store: one process at a time (docs/decisions/0003-store-ownership.md).

The owner holds an exclusive ``flock`` on ``<store>/xp-owner.json`` for as long as it has the store open;
the file says who it is (pid, command, since when, and the HTTP API it serves the store on, if any).
The kernel drops the lock when the process dies, so a crashed owner never leaves a stale lock behind.
Inside one process, opening the same store again shares the lock (chDB runs one engine per process).

No chDB import here: this module is plain files and ``fcntl``.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xpstream.errors import StoreBusyError

__all__ = ["LOCK_FILE", "StoreLock", "StoreOwnedError", "StoreOwner", "acquire_store", "read_owner"]

LOCK_FILE = "xp-owner.json"
"""Name of the ownership lock file inside the store directory."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreOwner:
    """What the owning process wrote into the lock file."""

    pid: int | None
    command: str = ""
    since: str = ""
    api_url: str | None = None
    """HTTP API on which the owner serves the store to other processes (``xp up``), if any."""

    def describe(self) -> str:
        who = f"pid {self.pid}" if self.pid is not None else "another process"
        return f"{who} ({self.command})" if self.command else who


class StoreOwnedError(StoreBusyError):
    """The store is owned by another process; ``owner`` says which, and where it serves the store."""

    def __init__(self, path: Path, owner: StoreOwner) -> None:
        self.path = path
        self.owner = owner
        if owner.api_url:
            hint = f"it serves the store at {owner.api_url}, where other xp commands reach it"
        else:
            hint = (
                "chDB allows one process per store: wait for it to finish or stop it; while `xp up` "
                "runs, other commands reach the store through its API"
            )
        super().__init__(f"warehouse store {path} is in use by {owner.describe()}: {hint}")


def read_owner(path: Path) -> StoreOwner | None:
    """The advertised owner of the store at ``path`` (``None`` when no lock file or it is unreadable)."""
    try:
        raw = json.loads((path / LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or not raw:
        return None
    pid = raw.get("pid")
    return StoreOwner(
        pid=pid if isinstance(pid, int) else None,
        command=str(raw.get("command") or ""),
        since=str(raw.get("since") or ""),
        api_url=raw.get("api_url") or None,
    )


class StoreLock:
    """This process's hold on a store; release with :meth:`release` (reference-counted per process)."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle = handle
        self._references = 1
        self._owner = StoreOwner(
            pid=os.getpid(),
            command=_command_line(),
            since=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        self._write()

    @property
    def owner(self) -> StoreOwner:
        return self._owner

    def advertise(self, api_url: str | None) -> None:
        """Publish (or withdraw) the HTTP API on which this process serves the store."""
        self._owner = StoreOwner(self._owner.pid, self._owner.command, self._owner.since, api_url)
        self._write()

    def release(self) -> None:
        """Drop one reference; the last one truncates the file and releases the lock."""
        with _registry_lock:
            self._references -= 1
            if self._references > 0:
                return
            _held.pop(self.path, None)
            try:
                self._handle.truncate(0)
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            finally:
                self._handle.close()

    def _write(self) -> None:
        owner = self._owner
        record = {"pid": owner.pid, "command": owner.command, "since": owner.since, "api_url": owner.api_url}
        self._handle.seek(0)
        self._handle.truncate(0)
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()


_held: dict[Path, StoreLock] = {}
_registry_lock = threading.Lock()


def _command_line() -> str:
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    words = [name if name not in ("__main__.py", "-c") else "python", *sys.argv[1:3]]
    return " ".join(words)[:80]


def acquire_store(path: Path, *, wait_seconds: float = 0.0) -> StoreLock:
    """Take ownership of the store at ``path`` (created if missing) or raise :class:`StoreOwnedError`.

    ``wait_seconds``: how long to wait for a short-lived owner (one that serves no API) to finish.
    """
    path = path.resolve()
    with _registry_lock:
        held = _held.get(path)
        if held is not None:
            held._references += 1
            return held
        path.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        handle = open(path / LOCK_FILE, "a+", encoding="utf-8")  # noqa: SIM115 - kept open while owned
        try:
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    owner = read_owner(path) or StoreOwner(pid=None)
                    if owner.api_url or time.monotonic() >= deadline:
                        raise StoreOwnedError(path, owner) from None
                    logger.debug("waiting for the store to be released owner=%s", owner.describe())
                    time.sleep(0.1)
            lock = StoreLock(path, handle)
        except BaseException:
            handle.close()
            raise
        _held[path] = lock
        return lock
