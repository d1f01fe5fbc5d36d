"""The cyclic garbage collector paced while the worker is behind: off during batches, collected between.

Python collects when allocations outnumber deallocations by 700 (young generation), every 10 young
collections (middle) and, while the heap of long-lived objects grows by a quarter, fully. A batch of
20,000 records allocates hundreds of thousands of tracked objects (Kafka messages, records, rows) and a
growing worker state adds long-lived ones, so the collector ran ~250 young, ~25 middle and ~3 full
collections per 100,000 records, in the middle of ``consume`` and of the inserts: 0.5–0.65 s of a
2.2–2.9 s run (measured with ``gc.callbacks``), for garbage that reference counting frees anyway (the
worker makes almost no reference cycles).

:class:`PacedCollector` paces the collector **while the worker is behind** (the last batch was full:
more records are waiting, throughput is what counts). Automatic collection is then off, and it collects
at batch boundaries, once the batch's own objects are released (reference counting frees them; only
what survives a batch — new worker state, held events — is left to scan): the young and middle
generations once ``young_after`` tracked objects have accumulated since the last collection (default
100,000: every 2–3 batches of 20,000 records while the state fills, a pause of ~50 ms; a pass costs
~0.5 µs per object, so the cost per record is what it was, in a few passes instead of hundreds), and
everything every ``full_every`` seconds (default 600; a pass over 200,000 units' first exposures and
1 M held events, ~810,000 tracked objects, took 0.22–0.25 s). **While the worker keeps up** (a batch that
is not full, an idle poll) automatic collection is back on: its pauses are short and spread out, which is
what freshness at a steady rate wants, and throughput does not matter then. No reference cycle (garbage
only the collector can free) was found after any batch of the benches; the timer bounds how long one
could live while the worker stays behind. The collector is restored on exit, and nothing is done when it
was already off (someone else owns it). The worker paces only when it owns the process (``xp stream
run``, the benches); inside ``xp up`` other components share the process, and the collector keeps its
defaults (docs/decisions/0029-stream-gc-pacing.md).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from types import TracebackType

__all__ = ["FULL_COLLECTION_EVERY_SECONDS", "YOUNG_COLLECTION_AFTER_OBJECTS", "PacedCollector"]

FULL_COLLECTION_EVERY_SECONDS = 600.0
YOUNG_COLLECTION_AFTER_OBJECTS = 100_000


class PacedCollector:
    """While the worker is behind, automatic collection is off and :meth:`after_batch` collects between
    batches; while it keeps up (a batch that is not full, an idle poll), automatic collection runs."""

    def __init__(
        self,
        full_every: float = FULL_COLLECTION_EVERY_SECONDS,
        young_after: int = YOUNG_COLLECTION_AFTER_OBJECTS,
        clock: Callable[[], float] = time.monotonic,
        *,
        enabled: bool = True,
    ) -> None:
        self.full_every = full_every
        self.young_after = young_after
        self._clock = clock
        self._wanted = enabled
        self._owned = False
        self._paced = False
        self._last_full = 0.0
        self.young_collections = 0
        self.full_collections = 0

    @property
    def active(self) -> bool:
        """True while this object has turned automatic collection off (and owes it back)."""
        return self._owned and self._paced

    def start(self) -> None:
        """Take the collector (when wanted and on) and pace it; :meth:`stop` gives it back."""
        if self._wanted and not self._owned and gc.isenabled():
            self._owned = True
            self._pace()

    def stop(self) -> None:
        """Give automatic collection back (if :meth:`start` took it)."""
        if self._owned:
            self._owned = False
            self._automatic()

    def __enter__(self) -> PacedCollector:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _pace(self) -> None:
        if not self._paced:
            gc.disable()
            self._paced = True
            self._last_full = self._clock()

    def _automatic(self) -> None:
        if self._paced:
            self._paced = False
            gc.enable()

    def after_batch(self, *, backlogged: bool = True) -> bool:
        """At a batch boundary. ``backlogged`` (the batch was full: more records are waiting): automatic
        collection off; everything collected when the last full pass is ``full_every`` old, else the young
        and middle generations once ``young_after`` tracked objects accumulated in them. Not backlogged:
        automatic collection back on (pauses of a few ms, spread out: what freshness wants).

        Call it where the batch's own objects are already released (they are freed by reference counting,
        not scanned). Returns whether it collected."""
        if not self._owned:
            return False
        if not backlogged:
            self._automatic()
            return False
        self._pace()
        now = self._clock()
        if now - self._last_full >= self.full_every:
            gc.collect()
            self._last_full = now
            self.full_collections += 1
            return True
        if gc.get_count()[0] >= self.young_after:
            gc.collect(1)
            self.young_collections += 1
            return True
        return False

    def when_idle(self) -> None:
        """No records arrived: the worker keeps up, automatic collection back on."""
        if self._owned:
            self._automatic()
