"""What the endpoints of `xp assign serve` share: the :class:`Service` (payload source, record sink,
keys, limits, metrics), its auth checks and the exposure recording both ``POST /v1/assign`` paths use
(the Starlette handler in :mod:`assignment.service.handlers` and :mod:`assignment.service.fast_assign`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from assignment.hashing import hash_string
from assignment.service.auth import AccessLevel, KeyRing, key_from_headers
from assignment.service.exposures import DedupWindow, RecordSink, build_exposure
from assignment.service.metrics import ServiceMetrics
from assignment.service.rate_limit import ClientRateLimit
from assignment.service.sources import PayloadSource
from assignment.service.streams import ChangeFeed
from schemas import (
    DEFAULT_MAX_ABS_METRIC_VALUE,
    Exposure,
    MetricEvent,
    RecordCodec,
    RecordError,
    RegistryRecord,
)
from schemas.records import DeadLetter
from xpcore.kafka.topics import EXPOSURES
from xpcore.usage import NO_KEY, KeyIds, UsageCounts

__all__ = ["Publisher", "Service"]

logger = logging.getLogger(__name__)

Publisher = Callable[[list[RegistryRecord]], Any]
"""Publishes registry records (``assignment.registry_topic.publish_changes`` bound to the settings)."""


@dataclass
class Service:
    """Everything the endpoints share; built once per app."""

    source: PayloadSource
    sink: RecordSink
    keys: KeyRing
    open_clients: bool | None = None
    """Client routes without a key (loopback only; default: the ring has no key). Admin routes
    always need an admin key (decision 0040)."""
    max_record_bytes: int = 1_000_000
    max_abs_metric_value: float = DEFAULT_MAX_ABS_METRIC_VALUE
    dedup_seconds: float = 1800.0
    dedup_max_entries: int = 200_000
    exposure_attributes: tuple[str, ...] = ("country", "device", "platform", "browser")
    exposures_enabled: bool = True
    max_batch_units: int = 1000
    max_events: int = 1000
    publisher: Publisher | None = None
    version: str = "0"
    max_body_bytes: int = 4_000_000
    max_streams: int = 500
    """most open server-sent event streams (``GET /sub/{client_key}``)"""
    stream_heartbeat_seconds: float = 15.0
    rate_limit: ClientRateLimit | None = None
    """Per-client limits on the client routes (429 + Retry-After), or None (the default: none)."""
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics.create)
    usage: UsageCounts = field(default_factory=UsageCounts)
    """Requests and exposures per client key id and UTC day (``xp up`` flushes them to xp.usage_daily)."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.open_clients is None:
            self.open_clients = self.keys.open
        self.dedup = DedupWindow(self.dedup_seconds, self.dedup_max_entries)
        self.exposure_codec = RecordCodec(Exposure, max_record_bytes=self.max_record_bytes)
        self.event_codec = RecordCodec(
            MetricEvent,
            max_record_bytes=self.max_record_bytes,
            max_abs_metric_value=self.max_abs_metric_value,
        )
        self.dead_letter_codec = RecordCodec(DeadLetter, max_record_bytes=self.max_record_bytes * 2 + 10_000)
        self.key_ids = KeyIds((*self.keys.client_keys, *self.keys.admin_keys))
        self._client_requests: dict[tuple[str, str], Any] = {}
        self.feed = ChangeFeed(self.max_streams)
        self.source.add_listener(self.feed.notify)
        self._exposure_sent = self.metrics.exposures.labels("sent")
        self._exposure_dedup = self.metrics.exposures.labels("deduplicated")
        if hasattr(self.sink, "on_count"):
            sink_counter = self.metrics.sink
            children: dict[str, Any] = {}  # label value → its counter (labels() takes a lock)

            def on_count(name: str, amount: int) -> None:
                child = children.get(name)
                if child is None:
                    child = children[name] = sink_counter.labels(name)
                child.inc(amount)

            self.sink.on_count = on_count

    # auth ----------------------------------------------------------------------------------------

    def access(self, request: Request, path_key: str | None = None) -> AccessLevel:
        return self.identify(request, path_key)[0]

    def identify(self, request: Request, path_key: str | None = None) -> tuple[AccessLevel, str | None]:
        """The caller's access and, for an admin key, its actor name (constant-time compares)."""
        headers = request.headers
        key = key_from_headers(headers.get("authorization"), headers.get("x-xp-key"))
        level, actor = self.keys.identify(key)
        if path_key is not None and level is AccessLevel.NONE:
            level, actor = self.keys.identify(path_key)
        if level is AccessLevel.NONE and self.open_clients:
            level = AccessLevel.CLIENT
        return level, actor

    def count_request(self, presented: str | None, endpoint: str) -> str:
        """Count one API request for the key it presented (by key id) and return that id."""
        client = self.key_ids(presented)
        counter = self._client_requests.get((client, endpoint))
        if counter is None:
            counter = self._client_requests[(client, endpoint)] = self.metrics.client_requests.labels(
                client, endpoint
            )
        counter.inc()
        self.usage.add("service_requests", f"{client} {endpoint}")
        return client

    def client_allowed(self, key: str | None) -> bool:
        """Whether a presented key (or none, when client routes are open) may use client routes."""
        return bool(self.open_clients) or self.keys.identify(key)[0] >= AccessLevel.CLIENT

    # exposures -----------------------------------------------------------------------------------

    def record_exposures(
        self,
        assignments: dict[str, tuple[Any, bool]],
        attributes: dict[str, Any],
        at: datetime,
        user_agent: str | None,
        client: str = NO_KEY,
    ) -> int:
        """Send one exposure per in-experiment assignment not already sent in the dedup window: all
        of one request's exposures are written ahead to the spool at once (one ``write()``), so they
        are durable against a process crash when this returns (before the answer is sent)."""
        sent = deduplicated = 0
        batch: list[tuple[str, str | None, bytes]] = []
        for feature_key, (result, overridden) in assignments.items():
            if not result.in_experiment or result.variation_id is None or not result.experiment_key:
                continue
            unit_id = hash_string(result.hash_value)
            if not self.dedup.first_seen((unit_id, result.experiment_key, result.variation_id)):
                deduplicated += 1
                continue
            exposure = build_exposure(
                result,
                feature_key,
                attributes=attributes,
                copied_attributes=self.exposure_attributes,
                overridden=overridden,
                now=at,
                window_seconds=self.dedup_seconds,
                user_agent=user_agent,
            )
            if exposure is None:
                continue
            try:
                value = self.exposure_codec.encode(exposure)
            except RecordError:
                logger.warning("exposure too large, not sent experiment=%s", exposure.experiment_key)
                continue
            batch.append((EXPOSURES, exposure.unit_id, value))
            sent += 1
        if batch:
            self.sink.submit_many(batch)
        if sent:  # one counter update per request (each takes a lock)
            self._exposure_sent.inc(sent)
            self.metrics.client_exposures.labels(client).inc(sent)
            self.usage.add("service_exposures", client, sent)
        if deduplicated:
            self._exposure_dedup.inc(deduplicated)
        return sent
