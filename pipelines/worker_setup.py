"""Setting a worker up: settings → registry view (and follower), processor, metrics, warehouse, state.

Every runner starts the same way (:func:`set_up_worker`, then :func:`restore_from_warehouse`) and gets
:class:`WorkerParts`: the processor with its state rebuilt from the warehouse (dedup ids, first
exposures, held events: ``pipelines.state``), the registry followed on ``xp.registry`` (or read from
``XP_STREAM_REGISTRY_FILE``), the open warehouse and, with ``XP_STREAM_METRICS_PORT``, the metrics.
The state stays in the warehouse, not in the runner: docs/decisions/0050-the-runner-seam.md.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pipelines.attribution import AttributionState
from pipelines.kernel import ValidationRules
from pipelines.metrics import StreamMetrics
from pipelines.processor import RegistryView, StreamProcessor, attributions_table
from pipelines.state import known_event_names, registry_view_from_file, repair_horizon, restore_state
from xpcore.errors import TransientError, XpError

if TYPE_CHECKING:
    from assignment.registry_topic import RegistryFollower
    from pipelines.stream_report import StreamReport
    from xpcore.config import StreamSettings
    from xpcore.warehouse.base import Warehouse

__all__ = [
    "StopFlag",
    "StreamTopics",
    "WorkerParts",
    "build_processor",
    "open_registry",
    "restore_from_warehouse",
    "set_up_worker",
    "store_registry_history",
]

logger = logging.getLogger(__name__)


class StopFlag:
    """Set by SIGTERM/SIGINT (when the worker owns the process) or by an event (`xp up`'s thread)."""

    def __init__(self, event: threading.Event | None = None) -> None:
        self._requested = False
        self._event = event

    @property
    def requested(self) -> bool:
        return self._requested or (self._event is not None and self._event.is_set())

    def __call__(self, signum: int, frame: object) -> None:
        logger.info("signal %s: stopping after the current batch", signum)
        self._requested = True

    def install(self) -> dict[int, Any]:
        """Handle SIGTERM/SIGINT, unless stopped by an event; returns the previous handlers."""
        signals = (signal.SIGTERM, signal.SIGINT) if self._event is None else ()
        return {sig: signal.signal(sig, self) for sig in signals}


@dataclass(frozen=True)
class StreamTopics:
    """The worker's topics (with the deployment's prefix)."""

    exposures: str
    events: str
    dead_letters: str
    """Read too: the collector's dead letters reach ``xp.dead_letters`` through the worker."""

    @classmethod
    def of(cls, settings: StreamSettings) -> StreamTopics:
        from xpcore.kafka import DEAD_LETTERS, EVENTS, EXPOSURES

        return cls(settings.topic(EXPOSURES), settings.topic(EVENTS), settings.topic(DEAD_LETTERS))

    @property
    def inputs(self) -> tuple[str, str]:
        """The topics whose bad records the stream dead-letters itself."""
        return (self.exposures, self.events)

    @property
    def subscribed(self) -> list[str]:
        return [self.exposures, self.events, self.dead_letters]


def open_registry(settings: StreamSettings) -> tuple[RegistryView, RegistryFollower | None]:
    """The registry view and, when following ``xp.registry``, the follower (to refresh and stop).

    TransientError when the topic is not read within ``XP_STREAM_REGISTRY_TIMEOUT``: an empty registry
    would dead-letter every exposure as ``unknown_experiment``, so the worker refuses to start."""
    if settings.stream_registry_file is not None:
        return registry_view_from_file(settings.stream_registry_file), None
    from assignment.registry_topic import RegistryFollower

    follower = RegistryFollower(settings, start_timeout=settings.stream_registry_timeout)
    if not follower.start():
        error = follower.last_error or "no error reported"
        follower.stop()
        raise TransientError(
            f"registry topic {settings.topic('xp.registry')} not read within "
            f"{settings.stream_registry_timeout:g}s ({error})"
        )
    return RegistryView.from_snapshot(follower.snapshot), follower


def build_processor(
    settings: StreamSettings, topics: StreamTopics, registry: RegistryView
) -> StreamProcessor:
    """The kernel with empty state, its rules and limits from the settings."""
    processor = StreamProcessor(
        exposures_topic=topics.exposures,
        events_topic=topics.events,
        rules=ValidationRules(
            max_future_skew=timedelta(seconds=settings.stream_max_future_skew_seconds),
            max_lateness=timedelta(seconds=settings.stream_max_lateness_seconds),
            known_event_names=known_event_names(settings),
            known_variations=registry.known_variations,
        ),
        registry=registry,
        attribution=AttributionState(
            default_window=timedelta(seconds=settings.stream_attribution_window_seconds),
            hold=timedelta(seconds=settings.stream_hold_seconds),
            max_held=settings.stream_max_held_events,
        ),
        dedup_retention=timedelta(seconds=settings.stream_dedup_retention_seconds),
        dedup_max_ids=settings.stream_dedup_max_ids,
        max_record_bytes=settings.max_record_bytes,
        max_abs_metric_value=settings.max_abs_metric_value,
        dead_letters_topic=topics.dead_letters,
    )
    processor.set_registry(registry)
    return processor


def store_registry_history(warehouse: Warehouse, settings: StreamSettings) -> None:
    """Copy registry changes into ``xp.registry`` (the audit history that survives compaction).

    Best effort: the registry table is history, not input, so a failure is logged and retried at the
    next registry change instead of stopping the stream.
    """
    from assignment.registry_topic import read_registry_records
    from pipelines.registry_history import store_registry_history as store

    try:
        records = read_registry_records(settings, timeout=settings.stream_registry_timeout)
        store(warehouse, records)
    except XpError as error:
        logger.warning("registry history not stored this time: %s", error)


@dataclass
class WorkerParts:
    """What a runner composes: everything but the Kafka (or other) client loop."""

    settings: StreamSettings
    topics: StreamTopics
    processor: StreamProcessor
    follower: RegistryFollower | None
    snapshot: Any
    """The registry snapshot the processor uses (when following ``xp.registry``)."""
    warehouse: Warehouse
    metrics: StreamMetrics | None

    def registry_changed(self) -> bool:
        """The follower holds a newer snapshot than the processor uses."""
        return self.follower is not None and self.follower.snapshot is not self.snapshot

    def apply_registry(self) -> None:
        """Use the follower's newer snapshot from the next batch on and store the registry history (call
        with no batch load in flight: the history insert never runs beside a batch insert)."""
        assert self.follower is not None
        self.snapshot = self.follower.snapshot
        self.processor.set_registry(RegistryView.from_snapshot(self.snapshot))
        store_registry_history(self.warehouse, self.settings)

    def close(self) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.warehouse.close()


def set_up_worker(settings: StreamSettings) -> WorkerParts:
    """Registry (read or followed), processor, metrics served, warehouse open; state not restored yet."""
    from xpcore.warehouse import open_warehouse

    registry, follower = open_registry(settings)
    topics = StreamTopics.of(settings)
    processor = build_processor(settings, topics, registry)
    snapshot = follower.snapshot if follower is not None else None
    metrics: StreamMetrics | None = None
    if settings.stream_metrics_port is not None:
        metrics = StreamMetrics()
        metrics.serve(settings.stream_metrics_port)
    warehouse = open_warehouse(settings)
    return WorkerParts(settings, topics, processor, follower, snapshot, warehouse, metrics)


def restore_from_warehouse(parts: WorkerParts, report: StreamReport, *, hold_events: bool = True) -> None:
    """Store the registry history, rebuild the processor's state from the warehouse, and attribute the
    events restored after a crash between the events insert and the attribution insert.

    ``hold_events`` False: no event is held or attributed here; the runner does it for the units of the
    partitions its group gives it (pipelines.rebalance_refresh, decision 0094)."""
    if parts.follower is not None:
        store_registry_history(parts.warehouse, parts.settings)
    from xpcore.warehouse.chdb import ChdbWarehouse

    horizon = repair_horizon(
        parts.warehouse,
        exclusive=isinstance(parts.warehouse, ChdbWarehouse),  # opened directly: the store's only writer
        settle_seconds=parts.settings.stream_repair_settle_seconds,
    )
    report.restored = restore_state(
        parts.processor,
        parts.warehouse,
        parts.settings,
        datetime.now(UTC),
        repair_until=horizon,
        hold_events=hold_events,
    )
    pending = parts.processor.attribution.attribute_held()
    if pending:
        parts.warehouse.insert_arrow("xp.attributed_events", attributions_table(pending))
        report.attributed += len(pending)
