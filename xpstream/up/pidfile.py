"""Where a running `xp up` says who it is: ``$XP_HOME/run/xp-up.json`` (pid, start time, health URL).

Written once the up API answers, removed on a clean stop. `xp up status` and `xp up stop` read it; a file
whose pid is gone (a kill -9, a reboot) is stale and treated as "not running". The file holds no secret
(the owner token stays in the store's lock file), but it is written 0600 in a 0700 directory all the same.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "UpRecord",
    "looks_like_xp_up",
    "pid_alive",
    "read_record",
    "record_path",
    "remove_record",
    "stop_process",
    "write_record",
]


@dataclass(frozen=True)
class UpRecord:
    pid: int
    started_at: str
    health_url: str


def record_path(home: Path) -> Path:
    return home / "run" / "xp-up.json"


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def looks_like_xp_up(pid: int) -> bool:
    """Whether ``pid``'s command line is an `xp up` (``…xp… up``): a pid file can outlive its process and
    the pid be reused by another one, which must never get our SIGTERM. False where /proc is missing."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"up" in words and any(b"xp" in word for word in words)


def write_record(home: Path, record: UpRecord) -> Path:
    path = record_path(home)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(record), out)
    os.replace(tmp, path)
    return path


def read_record(home: Path) -> UpRecord | None:
    """The running `xp up` of this home, or None (no file, an unreadable one, or its process is gone)."""
    try:
        data = json.loads(record_path(home).read_text())
        record = UpRecord(
            pid=int(data["pid"]), started_at=str(data["started_at"]), health_url=str(data["health_url"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if record.pid > 0 and pid_alive(record.pid) else None


def remove_record(home: Path, pid: int) -> None:
    """Remove the file if it is still this process's (a newer `xp up` may have replaced it)."""
    path = record_path(home)
    try:
        if int(json.loads(path.read_text())["pid"]) == pid:
            path.unlink()
    except (OSError, ValueError, KeyError, TypeError):
        pass


def stop_process(
    pid: int,
    timeout: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    alive: Callable[[int], bool] = pid_alive,
) -> bool:
    """SIGTERM ``pid`` and wait up to ``timeout`` seconds for it to exit; True when it did."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = clock() + timeout
    while alive(pid):
        if clock() >= deadline:
            return False
        sleep(0.1)
    return True
