"""Processes, pid files, ports and log files of the local stack. Pure decisions, small OS probes."""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PidState",
    "PidStatus",
    "classify_pid",
    "last_error_line",
    "port_accepts",
    "port_is_free",
    "process_argv",
    "read_new_lines",
    "terminate",
]


class PidStatus(enum.Enum):
    ABSENT = "absent"
    """No pid file: nothing was started (or it was stopped cleanly)."""
    RUNNING = "running"
    """The pid file names a live process that is our broker."""
    STALE = "stale"
    """Left over: unreadable, the process is gone, or the pid now belongs to another program."""


@dataclass(frozen=True)
class PidState:
    status: PidStatus
    pid: int | None = None
    reason: str = ""


def classify_pid(
    pid_text: str | None,
    argv_of: Callable[[int], Sequence[str] | None],
    is_ours: Callable[[Sequence[str]], bool],
) -> PidState:
    """Decide what a pid file means. ``argv_of(pid)`` is None for a process that does not run."""
    if pid_text is None:
        return PidState(PidStatus.ABSENT)
    try:
        pid = int(pid_text.strip())
    except ValueError:
        return PidState(PidStatus.STALE, None, "the pid file is unreadable")
    if pid <= 0:
        return PidState(PidStatus.STALE, None, "the pid file is unreadable")
    argv = argv_of(pid)
    if argv is None:
        return PidState(PidStatus.STALE, pid, f"process {pid} is gone")
    if not is_ours(argv):
        return PidState(PidStatus.STALE, pid, f"process {pid} is not this stack's Kafka broker")
    return PidState(PidStatus.RUNNING, pid)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is an exited child of ours, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def process_argv(pid: int) -> list[str] | None:
    """The argv of a live process, or None when it does not exist (or is a zombie)."""
    _reap(pid)
    proc = Path(f"/proc/{pid}")
    if Path("/proc/self").exists():
        try:
            stat = (proc / "stat").read_text()
            raw = (proc / "cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return None
        if stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]:
            return None
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    try:  # no /proc (macOS): ask ps
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    ps = shutil.which("ps")
    if ps is None:
        return None
    result = subprocess.run([ps, "-o", "command=", "-p", str(pid)], capture_output=True, text=True)
    return result.stdout.split() if result.returncode == 0 and result.stdout.strip() else None


def terminate(pid: int, timeout: float, *, poll: float = 0.1) -> bool:
    """SIGTERM ``pid``, wait up to ``timeout`` s, then SIGKILL. True when SIGKILL was needed."""

    def gone() -> bool:
        return process_argv(pid) is None

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone():
            return False
        time.sleep(poll)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 10.0
    while not gone() and time.monotonic() < deadline:
        time.sleep(poll)
    return True


def port_is_free(host: str, port: int) -> bool:
    """Whether ``port`` can be bound on ``host`` (SO_REUSEADDR, as the JVM binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def read_new_lines(path: Path, offset: int, limit: int = 2000) -> list[str]:
    """The last ``limit`` lines written to ``path`` after byte ``offset`` (none if it does not exist)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = offset if offset <= size else 0  # the file was rotated: read it whole
            handle.seek(max(start, size - 1_000_000))
            data = handle.read()
    except FileNotFoundError:
        return []
    return data.decode("utf-8", errors="replace").splitlines()[-limit:]


_LOG_ERROR = re.compile(r"\b(ERROR|FATAL)\b")
_EXCEPTION = re.compile(r"^(Caused by: )?[\w$.]*(Exception|Error)\b:?\s*\S")
_KAFKA_GENERIC = ("Exiting Kafka due to fatal exception",)
_JVM_GENERIC = ("Could not create the Java Virtual Machine", "A fatal exception has occurred")


def last_error_line(lines: Iterable[str]) -> str | None:
    """The most telling error line of a broker's output: the last exception message or ERROR line.

    Generic lines ("Exiting Kafka due to fatal exception", the JVM's "Could not create the Java
    Virtual Machine") give way to a specific one; for the JVM's, that is the line just before them.
    """
    best: str | None = None
    fallback: str | None = None
    previous: str | None = None
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("at ") or line.startswith("..."):
            continue
        if any(text in line for text in _JVM_GENERIC):
            if fallback is None:
                generic_before = previous is not None and any(text in previous for text in _JVM_GENERIC)
                fallback = previous if previous and not generic_before else line
        elif any(text in line for text in _KAFKA_GENERIC):
            fallback = fallback or line
        elif _EXCEPTION.match(line) or _LOG_ERROR.search(line):
            best = line
        previous = line
    return best or fallback
