"""The warehouse sink: load a batch idempotently, each table with the batch's dedup token.

:meth:`WarehouseSink.load` inserts ``xp.exposures``, ``xp.events``, ``xp.attributed_events`` and
``xp.dead_letters`` (dead letters included), each with the deterministic token of the batch's offset
ranges, so a batch loaded again after a crash (same records, same token) is kept once. A transient
warehouse error is retried with the same token, back-off 0.5 s doubling to the setting's maximum,
forever (backpressure: the runner consumes nothing meanwhile) unless the run is stopping; a terminal
one is raised. With ``overlap`` the load of a batch runs in a background thread while the runner
consumes and processes the next (:class:`~pipelines.overlap.OneInFlight`). Every runner reuses it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipelines.overlap import OneInFlight
from xpcore.errors import TransientError

if TYPE_CHECKING:
    from pipelines.metrics import StreamMetrics
    from pipelines.processor import BatchOutput
    from pipelines.stream_report import StreamReport
    from xpcore.warehouse.base import Warehouse

__all__ = ["WarehouseSink"]

logger = logging.getLogger(__name__)


class WarehouseSink:
    """Loads batches into the warehouse, one in flight at a time."""

    def __init__(
        self,
        warehouse: Warehouse,
        *,
        report: StreamReport,
        stopping: Callable[[], bool],
        retry_max_seconds: float,
        overlap: bool = False,
        metrics: StreamMetrics | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.warehouse = warehouse
        self.report = report
        self.overlap = overlap
        self._stopping = stopping
        self._retry_max_seconds = retry_max_seconds
        self._metrics = metrics
        self._sleep = sleep
        self._loads = OneInFlight("xp-stream-load")
        self._in_flight: BatchOutput | None = None

    def load(self, output: BatchOutput) -> None:
        """Insert every table of the batch; transient errors are retried with the same token, forever."""
        from schemas import DeadLetter
        from schemas.arrow import to_arrow

        work = [
            ("xp.exposures", output.exposures),
            ("xp.events", output.events),
            ("xp.attributed_events", output.attributed),
            ("xp.dead_letters", to_arrow(output.dead_letters, DeadLetter)),
        ]
        metrics = self._metrics
        for table, data in work:
            if data.num_rows == 0:
                continue
            delay = 0.5
            while True:
                try:
                    began = time.monotonic()
                    self.warehouse.insert_arrow(table, data, dedup_token=output.tokens[table])
                    if metrics is not None:
                        metrics.insert_seconds.labels(table).observe(time.monotonic() - began)
                    break
                except TransientError as error:
                    self.report.insert_retries += 1
                    if metrics is not None:
                        metrics.insert_retries.inc()
                    logger.warning("insert into %s failed (%s); retrying in %.1fs", table, error, delay)
                    self._sleep(delay)
                    delay = min(delay * 2, self._retry_max_seconds)
                    if self._stopping():
                        raise TransientError(f"stopped while the warehouse was failing: {error}") from error

    def _timed_load(self, output: BatchOutput) -> float:
        """:meth:`load`, returning the seconds it took (run in the loader thread)."""
        began = time.monotonic()
        self.load(output)
        return time.monotonic() - began

    def submit(self, output: BatchOutput) -> None:
        """Start loading ``output`` (the previous batch must have been finished with :meth:`finish`)."""
        self._in_flight = output
        self._loads.submit(self._timed_load, output)

    def finish(self) -> BatchOutput | None:
        """Wait for the batch being loaded; returns it once it is in the warehouse (None if none was in
        flight). Adds the stages ``load`` (the inserts) and ``load_wait`` (the part waited for)."""
        if self._in_flight is None:
            return None
        output, self._in_flight = self._in_flight, None
        waited = time.monotonic()
        self.report.stage_seconds["load"] += self._loads.wait()
        self.report.stage_seconds["load_wait"] += time.monotonic() - waited
        return output

    def close(self) -> None:
        """Wait for an insert still running (after an error elsewhere) before the store is closed."""
        self._loads.close()
