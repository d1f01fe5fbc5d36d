"""Prometheus metrics of the stream worker (served on ``XP_STREAM_METRICS_PORT`` when set).

Names: ``xp_stream_records_total{topic,outcome}`` (outcome: loaded, duplicate, dead_letter),
``xp_stream_dead_letters_total{reason}``, ``xp_stream_attributions_total``,
``xp_stream_insert_seconds{table}``, ``xp_stream_insert_retries_total``, ``xp_stream_batches_total``,
``xp_stream_freshness_seconds`` (event time → loaded, per loaded record, capped at one hour buckets),
``xp_stream_held_events``, ``xp_stream_held_released_early_total`` (held events released unattributed by
``XP_STREAM_MAX_HELD_EVENTS`` before their hold ended: a late exposure can no longer attribute them),
``xp_stream_consumer_lag`` (assigned partitions, sampled when idle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.processor import BatchOutput, StreamProcessor

__all__ = ["StreamMetrics"]


class StreamMetrics:
    """The worker's metrics on a private registry (several workers in one process do not collide)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.records = Counter(
            "xp_stream_records",
            "Records read, by topic and outcome.",
            ["topic", "outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "xp_stream_dead_letters", "Dead letters by reason.", ["reason"], registry=self.registry
        )
        self.attributions = Counter(
            "xp_stream_attributions", "(event, experiment) rows.", registry=self.registry
        )
        self.batches = Counter("xp_stream_batches", "Batches loaded and committed.", registry=self.registry)
        self.insert_retries = Counter("xp_stream_insert_retries", "Retried inserts.", registry=self.registry)
        self.insert_seconds = Histogram(
            "xp_stream_insert_seconds", "Insert latency by table.", ["table"], registry=self.registry
        )
        self.freshness = Histogram(
            "xp_stream_freshness_seconds",
            "Event time to loaded, per loaded record.",
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
            registry=self.registry,
        )
        self.held_events = Gauge(
            "xp_stream_held_events", "Events held for late exposures.", registry=self.registry
        )
        self.held_released_early = Counter(
            "xp_stream_held_released_early",
            "Held events the cap released unattributed before their hold ended (no late exposure can).",
            registry=self.registry,
        )
        self._released_early_seen = 0
        self.lag = Gauge(
            "xp_stream_consumer_lag", "Records not yet consumed (assigned).", registry=self.registry
        )

    def serve(self, port: int) -> Any:
        """Serve ``/metrics`` over HTTP on ``port`` (a daemon thread); returns the server."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, registry=self.registry)
        return server

    def record_batch(self, output: BatchOutput, processor: StreamProcessor) -> None:
        """Count a loaded and committed batch: records by outcome, dead letters by reason, freshness."""
        import time

        import numpy as np

        self.batches.inc()
        self.records.labels(processor.exposures_topic, "loaded").inc(output.exposures.num_rows)
        self.records.labels(processor.events_topic, "loaded").inc(output.events.num_rows)
        for topic, count in output.duplicates_by_topic.items():
            self.records.labels(topic, "duplicate").inc(count)
        for dead in output.dead_letters:
            self.records.labels(dead.source_topic, "dead_letter").inc()
            self.dead_letters.labels(dead.reason.value).inc()
        self.attributions.inc(output.attributed.num_rows)
        self.held_events.set(processor.attribution.held_count)
        released_early = processor.attribution.released_early
        if released_early > self._released_early_seen:
            self.held_released_early.inc(released_early - self._released_early_seen)
            self._released_early_seen = released_early
        now_ms = time.time() * 1000
        for table, column in ((output.exposures, "exposed_at"), (output.events, "occurred_at")):
            if table.num_rows:
                millis = table.column(column).cast("int64").to_numpy()
                step = max(1, len(millis) // 1000)  # a sample of at most ~1000 per batch
                for age in (now_ms - millis[::step]) / 1000.0:
                    self.freshness.observe(float(np.maximum(age, 0.0)))
