"""`xp stream run --workers N`: N worker processes in one consumer group, supervised.

Each worker is ``xp stream run --runner R`` in its own process (a Python process per worker: the kernel
is CPU-bound, threads would share one core). The supervisor restarts a worker that died (``kill -9``, an
OOM, a crash) with a back-off doubling from 1 s to ``restart_max_seconds``; the group rebalances its
partitions meanwhile, and the restarted worker rebuilds its state from the warehouse. A worker that
exits with a configuration error (exit 2 or 3) stops them all: restarting cannot fix it. SIGTERM/SIGINT
are passed on (each worker finishes its batch and commits). With ``until_idle`` the run ends when every
worker has exited 0 (each one drained and idle). The report sums the workers' reports.

With the embedded chDB store the workers load through a running `xp up` (the store's owner serves it),
with a ClickHouse server (``XP_CLICKHOUSE_URL``) directly: docs/pipeline.md (worker sizing).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from xpcore.errors import ConfigError, XpError

__all__ = ["WorkerPool", "merge_reports"]

logger = logging.getLogger(__name__)

_FATAL_EXITS = frozenset({2, 3})
"""A worker's exit codes that no restart can fix (configuration, not available)."""
_SUMMED = (
    "consumed",
    "exposures",
    "events",
    "attributed",
    "dead_letters",
    "dead_letter_topic_records",
    "duplicates",
    "batches",
    "insert_retries",
)


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """The workers' run reports as one: counts and reasons summed, the longest run's seconds."""
    merged: dict[str, Any] = {name: sum(int(r.get(name, 0)) for r in reports) for name in _SUMMED}
    reasons: Counter[str] = Counter()
    for report in reports:
        reasons.update(report.get("reasons", {}))
    merged["reasons"] = dict(reasons)
    merged["seconds"] = max((float(r.get("seconds", 0.0)) for r in reports), default=0.0)
    return merged


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    output: IO[bytes]


@dataclass
class WorkerPool:
    """N supervised ``xp stream run`` processes; :meth:`run` returns the merged report."""

    count: int
    runner: str
    until_idle: float | None = None
    restart_max_seconds: float = 30.0
    stop: threading.Event = field(default_factory=threading.Event)
    restarts: int = 0
    pids: dict[int, int] = field(default_factory=dict)
    """Worker index → pid of its current process."""

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "xpstream.cli", "stream", "run", "--runner", self.runner]
        if self.until_idle is not None:
            command += ["--until-idle", str(self.until_idle)]
        return [*command, "--format", "json"]

    def _start(self, index: int, directory: Path) -> _Worker:
        output = (directory / f"worker-{index}-{self.restarts}.json").open("w+b")
        process = subprocess.Popen(self.command(), stdout=output)  # stderr: the supervisor's (the logs)
        self.pids[index] = process.pid
        logger.info("stream worker %d started (pid %d, runner %s)", index, process.pid, self.runner)
        return _Worker(index, process, output)

    def _signal(self, signum: int, frame: object) -> None:
        logger.info("signal %s: stopping the workers after their current batch", signum)
        self.stop.set()

    def run(self) -> dict[str, Any]:
        if self.count < 1:
            raise ConfigError("--workers must be at least 1")
        previous = {sig: signal.signal(sig, self._signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            with tempfile.TemporaryDirectory(prefix="xp-stream-workers-") as directory:
                return self._supervise(Path(directory))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _supervise(self, directory: Path) -> dict[str, Any]:
        running = {i: self._start(i, directory) for i in range(self.count)}
        reports: list[dict[str, Any]] = []
        delays = dict.fromkeys(running, 1.0)
        fatal: int | None = None
        try:
            while running:
                if self.stop.wait(0.2) and fatal is None:
                    for worker in running.values():
                        if worker.process.poll() is None:
                            worker.process.send_signal(signal.SIGTERM)
                for index, worker in list(running.items()):
                    code = worker.process.poll()
                    if code is None:
                        continue
                    del running[index]
                    worker.output.seek(0)
                    printed = worker.output.read()
                    worker.output.close()
                    if code == 0:
                        reports.append(json.loads(printed or b"{}"))
                    elif code in _FATAL_EXITS:
                        fatal = code
                        self.stop.set()
                    elif not self.stop.is_set():
                        logger.warning(
                            "stream worker %d (pid %d) died (exit %d): restarting in %.0fs",
                            index,
                            worker.process.pid,
                            code,
                            delays[index],
                        )
                        if self.stop.wait(delays[index]):
                            continue
                        delays[index] = min(delays[index] * 2, self.restart_max_seconds)
                        self.restarts += 1
                        running[index] = self._start(index, directory)
        finally:
            for worker in running.values():  # an error in the supervisor: no orphan workers
                worker.process.kill()
                worker.process.wait()
        if fatal is not None:
            raise _WorkerExit(fatal)
        merged = merge_reports(reports)
        merged["workers"] = self.count
        merged["restarts"] = self.restarts
        return merged


class _WorkerExit(XpError):
    """A worker exited with a configuration error; the pool exits with the same code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"a stream worker exited with code {code} (its error is logged above)")
        self.exit_code = code
