"""Units so far per experiment and variation, served from a copy at most a few seconds old.

Units so far (experiments list, health page: counts, SRM, sample-size progress) are an exact distinct count
of every unit ever exposed: ``experiments_units.sql`` merges the per-minute ``uniqExact`` states of
``xp.exposure_counts_minute``, which costs in proportion to the units (≈ 0.2–0.4 s at 1 M units on this
machine), however few minutes the page shows. So the pages read a copy: :class:`UnitsSoFar` counts once,
then, when the copy is older than ``dashboard_units_max_age_seconds`` (default 5 s, the health page's
refresh), serves it and recounts in a background thread (one at a time). ``max_age = 0`` counts on every
request. The copy's time is shown (``units_counted_at``). Decision: docs/decisions/0021-units-so-far-copy.md.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

__all__ = ["UnitsSoFar"]

logger = logging.getLogger(__name__)

Rows = list[dict[str, Any]]


class UnitsSoFar:
    """Rows of ``experiments_units`` (experiment, variation, units, first/last exposed minute), recounted in
    the background when the copy is older than ``max_age`` seconds."""

    def __init__(
        self, count: Callable[[], Rows], max_age: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._count = count
        self.max_age = max_age
        self.clock = clock
        """Monotonic seconds, for the copy's age (tests pass or set a fake one)."""
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()  # one count at a time (first request or background)
        self._rows: Rows | None = None
        self._counted = 0.0  # monotonic time the copy's count started
        self._counted_at: datetime | None = None
        self._thread: threading.Thread | None = None

    def _recount(self, *, only_if_missing: bool = False) -> None:
        with self._count_lock:
            if only_if_missing and self._rows is not None:
                return  # another request counted meanwhile
            started, started_at = self.clock(), datetime.now(UTC)
            rows = self._count()
            with self._lock:
                if started >= self._counted:
                    self._rows, self._counted, self._counted_at = rows, started, started_at

    def _background(self) -> None:
        try:
            self._recount()
        except Exception:  # the copy stays; the next request retries
            logger.warning("counting units so far failed", exc_info=True)

    def rows(self) -> tuple[Rows, datetime]:
        """(the rows, when they were counted). Counts now when there is no copy or ``max_age`` is 0."""
        with self._lock:
            rows, counted, counted_at = self._rows, self._counted, self._counted_at
            running = self._thread is not None and self._thread.is_alive()
        if rows is None or self.max_age <= 0:
            self._recount(only_if_missing=self.max_age > 0)
            with self._lock:
                assert self._rows is not None and self._counted_at is not None
                return self._rows, self._counted_at
        assert counted_at is not None
        if self.clock() - counted > self.max_age and not running:
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._background, name="units-so-far", daemon=True)
                    self._thread.start()
        return rows, counted_at

    def by_experiment(self, key: str) -> tuple[dict[int, int], datetime]:
        """Variation id → units so far of one experiment, and when they were counted."""
        rows, counted_at = self.rows()
        return {r["variation_id"]: r["units"] for r in rows if r["experiment_key"] == key}, counted_at

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background count in flight (tests)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
