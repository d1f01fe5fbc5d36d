"""Prometheus metrics of the service, in a registry of its own (one per app, so tests can build many)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["ServiceMetrics"]

_LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass
class ServiceMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    assignments: Counter
    exposures: Counter
    collected: Counter
    sink: Counter
    payload_version: Gauge
    client_requests: Counter
    client_exposures: Counter
    spool_pending: Gauge
    spool_full: Gauge

    @classmethod
    def create(cls) -> ServiceMetrics:
        registry = CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "xp_service_requests",
                "HTTP requests by endpoint and status.",
                ["endpoint", "status"],
                registry=registry,
            ),
            latency=Histogram(
                "xp_service_request_seconds",
                "Handler time by endpoint.",
                ["endpoint"],
                buckets=_LATENCY_BUCKETS,
                registry=registry,
            ),
            assignments=Counter(
                "xp_service_assignments", "Feature evaluations by source.", ["source"], registry=registry
            ),
            exposures=Counter(
                "xp_service_exposures",
                "Service exposures: sent (to the sink) or deduplicated (within the window).",
                ["outcome"],
                registry=registry,
            ),
            collected=Counter(
                "xp_service_collected_records",
                "Records received on /v1/events by kind and outcome (accepted, rejected).",
                ["kind", "outcome"],
                registry=registry,
            ),
            sink=Counter(
                "xp_service_sink_records",
                "Records by sink outcome: produced, delivered, spooled, replayed, delivery_errors, dropped.",
                ["outcome"],
                registry=registry,
            ),
            client_requests=Counter(
                "xp_service_client_requests",
                "API requests by client key id (key- + 8 hex of its SHA-256; none, unknown) and endpoint.",
                ["client", "endpoint"],
                registry=registry,
            ),
            client_exposures=Counter(
                "xp_service_client_exposures",
                "Exposures sent by client key id of the request that caused them.",
                ["client"],
                registry=registry,
            ),
            payload_version=Gauge(
                "xp_service_payload_version",
                "Version of the compiled payload being served.",
                registry=registry,
            ),
            spool_pending=Gauge(
                "xp_service_spool_pending_bytes", "Bytes in the spool not yet replayed.", registry=registry
            ),
            spool_full=Gauge(
                "xp_service_spool_full",
                "1 while the spool is full (XP_SPOOL_MAX_BYTES): new records are dropped and counted.",
                registry=registry,
            ),
        )
