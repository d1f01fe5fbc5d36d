"""The stream worker's entry point: :func:`run_worker` composes the parts along the runner seam.

``xp stream run`` and ``xp up`` call it. The parts, each reusable by another runner:

- :mod:`pipelines.worker_setup`: settings → registry view and follower, processor, metrics, warehouse;
  the state rebuilt from the warehouse;
- :mod:`pipelines.processor` (over the pure kernel): one batch of raw records → Arrow tables, dead
  letters, dedup tokens and the offsets to commit;
- :mod:`pipelines.warehouse_sink`: load a batch idempotently with its dedup tokens, dead letters included;
- :mod:`pipelines.offset_tracker`: what is loaded and may be committed;
- :mod:`pipelines.stream_report`: what the run did.

The runner itself, :mod:`pipelines.kafka_runner` (confluent-kafka) or :mod:`pipelines.faust_runner`
(a Faust agent), is the only part that reads the broker. Why this split and why the state stays in the
warehouse: docs/decisions/0050-the-runner-seam.md; the Faust runner: docs/decisions/0073-the-faust-runner.md.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING

from pipelines.kafka_runner import KafkaRunner
from pipelines.pandas_probe import probe_without_pandas
from pipelines.stream_report import StreamReport
from pipelines.worker_setup import StopFlag, restore_from_warehouse, set_up_worker

if TYPE_CHECKING:
    from collections.abc import Callable

    from pipelines.faust_runner import FaustRunner
    from xpcore.config import StreamSettings

__all__ = ["StreamReport", "run_worker"]

logger = logging.getLogger(__name__)

OWN_PROCESS_SWITCH_INTERVAL = 0.001
"""The interpreter's GIL switch interval (Python's default: 0.005 s) while the Kafka runner owns its process:
a thread that waits for the GIL (the loader back from a chDB call, the main thread back from ``consume``)
gets it within 1 ms instead of 5, so the kernel and the overlapped inserts wait less on each other
(decision 0101)."""


def run_worker(
    settings: StreamSettings,
    *,
    until_idle: float | None = None,
    stop_event: threading.Event | None = None,
    on_ready: Callable[[], None] | None = None,
    runner: str = "kafka",
) -> StreamReport:
    """Run the worker until SIGTERM/SIGINT or, with ``until_idle``, until drained and idle that long.

    ``stop_event``: run in any thread and stop (after the current batch) when it is set; no signal
    handlers are installed then (`xp up` runs the worker in a thread and handles signals itself).
    ``on_ready``: called once the state is restored from the warehouse and the consumer exists (`xp up`
    reports the stream healthy only from then on).
    ``runner``: ``kafka`` (:mod:`pipelines.kafka_runner`) or ``faust`` (:mod:`pipelines.faust_runner`).
    """
    started = time.monotonic()
    report = StreamReport()
    stop = StopFlag(stop_event)
    previous = stop.install()
    switch_interval = sys.getswitchinterval()
    try:
        if stop_event is None and runner == "kafka":  # the worker owns the process (decision 0101)
            probe_without_pandas()
            sys.setswitchinterval(OWN_PROCESS_SWITCH_INTERVAL)
        parts = set_up_worker(settings)
        try:
            # Both runners hold events per assigned partition, from their first assignment (0094).
            restore_from_warehouse(parts, report, hold_events=False)
            loop: KafkaRunner | FaustRunner
            if runner == "faust":
                from pipelines.faust_runner import FaustRunner  # asyncio and Faust: only for this runner

                loop = FaustRunner(parts, stop, report, until_idle=until_idle, on_ready=on_ready)
            else:
                loop = KafkaRunner(
                    parts,
                    stop,
                    report,
                    until_idle=until_idle,
                    on_ready=on_ready,
                    owns_process=stop_event is None,
                )
            loop.run()
        finally:
            parts.close()
    finally:
        sys.setswitchinterval(switch_interval)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        report.seconds = round(time.monotonic() - started, 3)
    logger.info("stream worker finished %s", report.as_dict())
    return report
