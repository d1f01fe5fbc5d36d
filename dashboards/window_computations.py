"""Results for a custom view (a window or a segment) computed in the background, never inside a request.

A request for such a view calls :meth:`WindowComputations.request` with the view's key (experiment,
registry revision, method, since, until, segment, top) and the computation to run. It gets back a
:class:`Computation` at once:

- ``done``: a finished result younger than ``max_age`` seconds (bounded LRU of ``entries`` results);
- ``queued`` / ``computing``: one computation per key runs (single-flight: a second request joins the
  first), at most ``workers`` at a time; the request answers 202 and the page polls;
- ``failed``: the computation raised; its error is kept ``retry_after_failure`` seconds (every request in
  that time gets the same error, no recomputation: no hot loop), then the next request tries again.

Pure threading and bookkeeping: the clocks and the way a computation is started are injectable, so the
tests drive it without sleeping. Decision: docs/decisions/0027-custom-result-views-compute-in-background.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

__all__ = ["Computation", "TooManyComputations", "WindowComputations"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
State = Literal["queued", "computing", "done", "failed"]


class TooManyComputations(Exception):
    """More views are being computed than the cache can hold: the caller answers 503 with Retry-After."""


@dataclass(frozen=True)
class Computation(Generic[T]):
    """What a request learns about one view's computation (a copy: never changes under the caller)."""

    state: State
    requested_at: datetime  # when the computation was asked for (wall clock, UTC)
    elapsed_seconds: float  # since requested_at (queued + computing), or how long it took when finished
    result: T | None = None
    error: BaseException | None = None
    finished_at: datetime | None = None
    age_seconds: float = 0.0  # of a finished result or failure
    retry_in_seconds: float = 0.0  # failed: when the next request will try again
    started_here: bool = False  # this request started the computation (False: joined one or reused)

    @property
    def pending(self) -> bool:
        return self.state in ("queued", "computing")

    def poll_after_seconds(self) -> int:
        """Retry-After for a pending computation: 1 s at first, up to 5 s for a long one."""
        return min(5, 1 + int(self.elapsed_seconds // 10))


@dataclass
class _Entry(Generic[T]):
    requested_at: datetime
    requested_clock: float
    state: State = "queued"
    result: T | None = None
    error: BaseException | None = None
    finished_at: datetime | None = None
    finished_clock: float = 0.0
    done_event: threading.Event | None = None


def _daemon_thread(target: Callable[[], None], name: str) -> None:
    threading.Thread(target=target, name=name, daemon=True).start()


class WindowComputations(Generic[T]):
    """Single-flight background computations by key, finished ones kept in a bounded, aging LRU."""

    def __init__(
        self,
        *,
        entries: int = 32,
        max_age: float = 300.0,
        retry_after_failure: float = 30.0,
        workers: int = 2,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        spawn: Callable[[Callable[[], None], str], None] = _daemon_thread,
    ) -> None:
        if entries < 1 or workers < 1:
            raise ValueError("entries and workers must be at least 1")
        self.entries, self.max_age, self.retry_after_failure = entries, max_age, retry_after_failure
        self._clock, self._wall_clock, self._spawn = clock, wall_clock, spawn
        self._lock = threading.Lock()
        self._finished: OrderedDict[Hashable, _Entry[T]] = OrderedDict()  # LRU: oldest use first
        self._pending: dict[Hashable, _Entry[T]] = {}
        self._slots = threading.BoundedSemaphore(workers)

    def request(self, key: Hashable, compute: Callable[[], T]) -> Computation[T]:
        """The view ``key``: its fresh result, its failure (within the back-off), or the computation in
        flight, which this call starts when there is none (then ``started_here``)."""
        with self._lock:
            found = self._lookup(key)
            if found is not None:
                return found
            if len(self._pending) >= self.entries:
                raise TooManyComputations(
                    f"{len(self._pending)} result views are being computed already; try again shortly"
                )
            entry: _Entry[T] = _Entry(self._wall_clock(), self._clock(), done_event=threading.Event())
            self._pending[key] = entry
        try:
            self._spawn(lambda: self._run(key, entry, compute), f"results-view-{_label(key)}")
        except BaseException:  # no thread: nothing is in flight for this key
            with self._lock:
                self._pending.pop(key, None)
            raise
        with self._lock:
            return replace(self._snapshot(entry), started_here=True)

    def peek(self, key: Hashable) -> Computation[T] | None:
        """The view ``key`` as :meth:`request` would see it, without starting anything."""
        with self._lock:
            return self._lookup(key)

    def wait(self, key: Hashable, timeout: float | None = None) -> Computation[T] | None:
        """Wait for the computation of ``key`` in flight, if any; then what :meth:`peek` sees."""
        with self._lock:
            entry = self._pending.get(key)
        if entry is None:
            return self.peek(key)
        if entry.done_event is not None:
            entry.done_event.wait(timeout)
        with self._lock:  # this computation's outcome, even if the LRU dropped it meanwhile
            return self._snapshot(entry)

    def wait_all(self, timeout: float | None = None) -> None:
        """Wait for every computation in flight (tests, benchmarks, shutdown)."""
        with self._lock:
            events = [e.done_event for e in self._pending.values() if e.done_event is not None]
        for event in events:
            event.wait(timeout)

    def clear(self) -> None:
        """Forget finished results and failures (the admin cache clear); computations in flight land."""
        with self._lock:
            self._finished.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._finished)

    # ---- internals (callers hold self._lock unless noted) ---------------------------------------------

    def _lookup(self, key: Hashable) -> Computation[T] | None:
        pending = self._pending.get(key)
        if pending is not None:
            return self._snapshot(pending)
        finished = self._finished.get(key)
        if finished is None:
            return None
        age = self._clock() - finished.finished_clock
        limit = self.max_age if finished.state == "done" else self.retry_after_failure
        if age >= limit:
            del self._finished[key]
            return None
        self._finished.move_to_end(key)
        return self._snapshot(finished)

    def _snapshot(self, entry: _Entry[T]) -> Computation[T]:
        now = self._clock()
        if entry.state in ("done", "failed"):
            age = now - entry.finished_clock
            return Computation(
                state=entry.state,
                requested_at=entry.requested_at,
                elapsed_seconds=entry.finished_clock - entry.requested_clock,
                result=entry.result,
                error=entry.error,
                finished_at=entry.finished_at,
                age_seconds=age,
                retry_in_seconds=max(self.retry_after_failure - age, 0.0) if entry.state == "failed" else 0.0,
            )
        return Computation(
            state=entry.state, requested_at=entry.requested_at, elapsed_seconds=now - entry.requested_clock
        )

    def _run(self, key: Hashable, entry: _Entry[T], compute: Callable[[], T]) -> None:
        """The computation's thread (takes the lock itself)."""
        try:
            with self._slots:
                with self._lock:
                    entry.state = "computing"
                try:
                    result = compute()
                except BaseException as error:  # kept and shown; the thread ends quietly
                    logger.warning("results view %s failed: %s", _label(key), error, exc_info=True)
                    self._finish(key, entry, "failed", None, error)
                else:
                    self._finish(key, entry, "done", result, None)
        finally:
            with self._lock:  # whatever happened, the key is no longer in flight
                if self._pending.get(key) is entry:
                    del self._pending[key]
            if entry.done_event is not None:
                entry.done_event.set()

    def _finish(
        self, key: Hashable, entry: _Entry[T], state: State, result: T | None, error: BaseException | None
    ) -> None:
        with self._lock:
            entry.state, entry.result, entry.error = state, result, error
            entry.finished_at, entry.finished_clock = self._wall_clock(), self._clock()
            self._pending.pop(key, None)
            self._finished[key] = entry
            self._finished.move_to_end(key)
            while len(self._finished) > self.entries:
                self._finished.popitem(last=False)


def _label(key: Any) -> str:
    return str(key[0]) if isinstance(key, tuple) and key else str(key)
