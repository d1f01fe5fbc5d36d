"""Prometheus metrics of the stream worker (served on ``XP_STREAM_METRICS_PORT`` when set).

Names: ``xp_stream_records_total{topic,outcome}`` (outcome: loaded, duplicate, dead_letter),
``xp_stream_dead_letters_total{reason}``, ``xp_stream_attributions_total``,
``xp_stream_insert_seconds{table}``, ``xp_stream_insert_retries_total``, ``xp_stream_batches_total``,
``xp_stream_freshness_seconds`` (event time → loaded, per loaded record, capped at one hour buckets),
``xp_stream_held_events``, ``xp_stream_consumer_lag`` (assigned partitions, sampled when idle).
"""

from __future__ import annotations

from typing import Any

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
        self.lag = Gauge(
            "xp_stream_consumer_lag", "Records not yet consumed (assigned).", registry=self.registry
        )

    def serve(self, port: int) -> Any:
        """Serve ``/metrics`` over HTTP on ``port`` (a daemon thread); returns the server."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, registry=self.registry)
        return server
