"""One job at a time in a background thread: the worker loads batch N while it consumes and processes N + 1.

The warehouse insert (chDB or a ClickHouse server) spends most of its time outside the GIL (Arrow IPC
serialisation, ClickHouse parsing and writing parts, materialized views), so it overlaps the next
batch's Kafka fetch and kernel work. At most one job is in flight; :meth:`OneInFlight.wait` returns its
result or raises its exception in the caller's thread, so errors surface where the worker handles them.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["OneInFlight"]

R = TypeVar("R")


class OneInFlight:
    """A single background thread running one submitted job at a time."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._future: Future[Any] | None = None

    @property
    def busy(self) -> bool:
        """A job was submitted and not waited for yet."""
        return self._future is not None

    def submit(self, job: Callable[..., R], *args: Any) -> None:
        """Start ``job(*args)``; the previous job must have been waited for."""
        if self._future is not None:
            raise RuntimeError("a job is still in flight: wait() for it first")
        self._future = self._executor.submit(job, *args)

    def wait(self) -> Any:
        """Block until the job is done; its result, or its exception raised here."""
        future, self._future = self._future, None
        if future is None:
            raise RuntimeError("no job in flight")
        return future.result()

    def close(self) -> None:
        """Wait for a job still running (its outcome is dropped: the caller is already failing) and stop."""
        self._executor.shutdown(wait=True)
        self._future = None
