"""The Starlette application of `xp assign serve`.

Endpoints (docs/service.md): ``POST /v1/assign``, ``POST /v1/assign/batch``,
``GET /api/features/{client_key}`` (GrowthBook SDK payload), ``POST /v1/events`` (collector),
``POST /v1/overrides`` and ``DELETE /v1/overrides/{experiment_key}/{unit_id}`` (admin),
``/healthz``, ``/metrics``, ``/openapi.json``.

Handlers are ``async`` and evaluate on the event loop (an evaluation takes tens of microseconds);
Kafka is reached only through the :class:`~assignment.service.exposures.RecordSink`, which never
blocks. Registry publishes (admin) run in the thread pool.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import pydantic
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from assignment.hashing import hash_string
from assignment.service.auth import AccessLevel, KeyRing, key_from_headers
from assignment.service.browser import BrowserGuard, is_client_route, is_json
from assignment.service.evaluation import assign_many, assign_unit, assignment_dict
from assignment.service.exposures import DedupWindow, RecordSink, build_exposure
from assignment.service.fast_assign import FastAssign
from assignment.service.metrics import ServiceMetrics
from assignment.service.models import (
    AssignBatchRequest,
    AssignRequest,
    EventsRequest,
    OverrideRequest,
)
from assignment.service.openapi import openapi_document
from assignment.service.sources import PayloadSource, ServingState
from assignment.sticky import StickyBuckets
from schemas import (
    DEFAULT_MAX_ABS_METRIC_VALUE,
    DeadLetterReason,
    Exposure,
    MetricEvent,
    Override,
    RecordCodec,
    RecordError,
    RecordKind,
    RegistryChange,
    RegistryKind,
    RegistryRecord,
    make_dead_letter,
)
from schemas.records import COLLECTOR_SOURCE, DeadLetter
from xpcore.kafka.topics import DEAD_LETTERS, EVENTS, EXPOSURES

__all__ = ["BrowserGuard", "Service", "build_app", "is_client_route", "is_json"]

logger = logging.getLogger(__name__)

Publisher = Callable[[list[RegistryRecord]], Any]
"""Publishes registry records (``assignment.registry_topic.publish_changes`` bound to the settings)."""

_JSON = "application/json"
_encode = msgspec.json.Encoder().encode


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encode(data), status_code=status, media_type=_JSON, headers=headers)


def _error(status: int, message: str, detail: Any = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return _json(body, status)


def _validation_detail(error: pydantic.ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_context=False, include_input=False)
    ]


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
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics.create)
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
        if deduplicated:
            self._exposure_dedup.inc(deduplicated)
        return sent


def _timed(
    service: Service, name: str, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    latency = service.metrics.latency.labels(name)
    requests = service.metrics.requests
    by_status: dict[int, Any] = {}

    async def endpoint(request: Request) -> Response:
        began = time.perf_counter()
        response = await handler(request)
        latency.observe(time.perf_counter() - began)
        counter = by_status.get(response.status_code)
        if counter is None:
            counter = by_status[response.status_code] = requests.labels(name, str(response.status_code))
        counter.inc()
        return response

    return endpoint


def _routes(service: Service) -> list[Route]:
    unauthorized = _error(401, "a valid client key is required (Authorization: Bearer KEY or X-XP-Key)")

    async def assign(request: Request) -> Response:
        if service.access(request) < AccessLevel.CLIENT:
            return unauthorized
        try:
            body = AssignRequest.model_validate_json(await request.body())
        except pydantic.ValidationError as error:
            return _error(422, "invalid request body", _validation_detail(error))
        state = service.source.current()
        at = service.clock()
        sticky = (
            StickyBuckets.from_list(body.sticky_bucket_docs) if body.sticky_bucket_docs is not None else None
        )
        assignments = assign_unit(state, body.attributes, body.features, at, sticky)
        if body.expose and service.exposures_enabled:
            service.record_exposures(assignments, body.attributes, at, request.headers.get("user-agent"))
        features = {
            key: assignment_dict(result, overridden) for key, (result, overridden) in assignments.items()
        }
        answer: dict[str, Any] = {"payload_version": state.version, "features": features}
        if sticky is not None:
            answer["sticky_bucket_docs"] = list(sticky.docs.values())
        return _json(answer)

    async def assign_batch(request: Request) -> Response:
        if service.access(request) < AccessLevel.CLIENT:
            return unauthorized
        try:
            body = AssignBatchRequest.model_validate_json(await request.body())
        except pydantic.ValidationError as error:
            return _error(422, "invalid request body", _validation_detail(error))
        if len(body.units) > service.max_batch_units:
            return _error(
                413, f"at most {service.max_batch_units} units per batch (XP_SERVICE_MAX_BATCH_UNITS)"
            )
        state = service.source.current()
        at = service.clock()
        per_unit = assign_many(state, body.units, body.features, at)
        user_agent = request.headers.get("user-agent")
        results = []
        for attributes, assignments in zip(body.units, per_unit, strict=True):
            if body.expose and service.exposures_enabled:
                service.record_exposures(assignments, attributes, at, user_agent)
            results.append({key: assignment_dict(r, o) for key, (r, o) in assignments.items()})
        return _json({"payload_version": state.version, "results": results})

    async def sdk_features(request: Request) -> Response:
        client_key = request.path_params["client_key"]
        if service.keys.identify(client_key)[0] is AccessLevel.ADMIN:
            # a URL ends up in proxy and browser logs: an admin key there would leak
            return _error(403, "an admin key is not accepted in a URL: use a client key")
        if service.access(request, path_key=client_key) < AccessLevel.CLIENT:
            return _error(401, "unknown client key")
        state: ServingState = service.source.current()
        etag = f'"xp-{state.version}-{int(state.loaded_at.timestamp() * 1000)}"'
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return _json(state.sdk_payload(), headers=headers)

    async def events(request: Request) -> Response:
        if service.access(request) < AccessLevel.CLIENT:
            return unauthorized
        try:
            body = EventsRequest.model_validate_json(await request.body())
        except pydantic.ValidationError as error:
            return _error(422, "invalid request body", _validation_detail(error))
        if len(body.exposures) + len(body.events) > service.max_events:
            return _error(413, f"at most {service.max_events} records per request (XP_SERVICE_MAX_EVENTS)")
        errors: list[dict[str, Any]] = []
        accepted = 0
        batches: tuple[tuple[str, str, list[Any], RecordCodec[Any], RecordKind], ...] = (
            ("exposure", EXPOSURES, body.exposures, service.exposure_codec, RecordKind.EXPOSURE),
            ("metric_event", EVENTS, body.events, service.event_codec, RecordKind.METRIC_EVENT),
        )
        collected = service.metrics.collected
        for kind, topic, records, codec, record_kind in batches:
            for index, record in enumerate(records):
                raw = _record_bytes(record)
                try:
                    decoded = codec.decode(raw)
                    value = codec.encode(decoded)  # normalised: UTC, milliseconds, every field
                except RecordError as error:
                    errors.append(
                        {"kind": kind, "index": index, "reason": str(error.reason), "detail": error.detail}
                    )
                    collected.labels(kind, "rejected").inc()
                    _dead_letter(service, error, raw, record_kind)
                    continue
                service.sink.submit(topic, decoded.unit_id, value)
                collected.labels(kind, "accepted").inc()
                accepted += 1
        return _json({"accepted": accepted, "rejected": len(errors), "errors": errors}, 202)

    admin_required = _error(401, "an admin key is required (X-XP-Key or Authorization: Bearer KEY)")

    async def put_override(request: Request) -> Response:
        level, actor = service.identify(request)
        if level < AccessLevel.ADMIN or actor is None:
            return admin_required if level is AccessLevel.NONE else _error(403, "an admin key is required")
        try:
            body = OverrideRequest.model_validate_json(await request.body())
        except pydantic.ValidationError as error:
            return _error(422, "invalid request body", _validation_detail(error))
        if body.changed_by is not None and body.changed_by != actor:
            return _error(
                422, "changed_by comes from the admin key's name (XP_SERVICE_ADMIN_KEYS name:secret); omit it"
            )
        if service.publisher is None or not service.source.follows_registry:
            return _error(409, "overrides need the registry: this service serves a static features file")
        state = service.source.current()
        count = state.variation_counts.get(body.experiment_key)
        if count is not None and body.variation_id >= count:
            return _error(
                422, f"experiment {body.experiment_key!r} has {count} variations (ids 0..{count - 1})"
            )
        try:
            override = Override(
                experiment_key=body.experiment_key,
                unit_id=body.unit_id,
                variation_id=body.variation_id,
                variation_key=body.variation_key,
                expires_at=body.expires_at,
                reason=body.reason,
            )
        except (ValueError, msgspec.ValidationError) as error:
            return _error(422, str(error))
        exists = (
            state.snapshot is not None and (body.experiment_key, body.unit_id) in state.snapshot.overrides
        )
        change = RegistryChange.UPDATED if exists else RegistryChange.CREATED
        return await _publish(
            service, override, change, actor, f"override:{body.experiment_key}:{body.unit_id}"
        )

    async def delete_override(request: Request) -> Response:
        level, actor = service.identify(request)
        if level < AccessLevel.ADMIN or actor is None:
            return admin_required if level is AccessLevel.NONE else _error(403, "an admin key is required")
        if service.publisher is None or not service.source.follows_registry:
            return _error(409, "overrides need the registry: this service serves a static features file")
        key = f"override:{request.path_params['experiment_key']}:{request.path_params['unit_id']}"
        return await _publish(service, None, RegistryChange.DELETED, actor, key)

    async def healthz(request: Request) -> Response:
        state = service.source.current()
        return _json(
            {
                "status": "ok",
                "source": service.source.name,
                "payload_version": state.version,
                "loaded_at": state.loaded_at.isoformat(),
                "features": len(state.compiled.features),
                "dedup_entries": len(service.dedup),
                "sink": service.sink.stats(),
            }
        )

    async def metrics(request: Request) -> Response:
        stats = service.sink.stats()
        service.metrics.spool_pending.set(stats.get("spool_pending_bytes", 0))
        service.metrics.spool_full.set(1 if stats.get("spool_full") else 0)
        service.metrics.payload_version.set(service.source.current().version)
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    document = openapi_document(service.version)
    document_bytes = _encode(document)

    async def openapi(request: Request) -> Response:
        return Response(document_bytes, media_type=_JSON)

    def route(
        path: str, name: str, handler: Callable[[Request], Awaitable[Response]], methods: list[str]
    ) -> Route:
        return Route(path, _timed(service, name, handler), methods=methods, name=name)

    return [
        route("/v1/assign", "assign", assign, ["POST"]),
        route("/v1/assign/batch", "assign_batch", assign_batch, ["POST"]),
        route("/api/features/{client_key}", "sdk_features", sdk_features, ["GET"]),
        route("/v1/events", "events", events, ["POST"]),
        route("/v1/overrides", "put_override", put_override, ["POST"]),
        route("/v1/overrides/{experiment_key}/{unit_id}", "delete_override", delete_override, ["DELETE"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]


def _record_bytes(record: Any) -> bytes:
    """One collected record as JSON bytes for the codec, the same bytes a Kafka producer would send.

    msgspec writes NaN/±Infinity (the body parser accepts ``NaN``, ``Infinity`` and ``1e999``) as
    ``null``, which would turn a poison value into a missing one; then the record is written with the
    standard library instead, whose ``NaN``/``Infinity`` literals the codec refuses as
    ``value_not_finite``, exactly as on the Kafka path."""
    raw = _encode(record)
    if b"null" in raw:  # possibly a non-finite float: re-encode keeping it visible
        raw = json.dumps(record, separators=(",", ":"), allow_nan=True).encode()
    return raw


def _dead_letter(service: Service, error: RecordError, raw: bytes, record_kind: RecordKind) -> None:
    """Every rejected record goes to the dead-letter topic with its reason (source topic ``http``).

    The stream worker loads these into ``xp.dead_letters`` (exactly once, docs/decisions/0036)."""
    try:
        dead = make_dead_letter(
            error,
            raw,
            record_kind=record_kind,
            source_topic=COLLECTOR_SOURCE,
            max_original_bytes=service.max_record_bytes,
        )
        service.sink.submit(DEAD_LETTERS, None, service.dead_letter_codec.encode(dead))
    except (RecordError, ValueError):  # pragma: no cover - a record too large even for a dead letter
        logger.warning(
            "could not dead-letter a rejected %s record (%s)", record_kind, DeadLetterReason.TOO_LARGE
        )


async def _publish(
    service: Service, override: Override | None, change: RegistryChange, changed_by: str, key: str
) -> Response:
    record = RegistryRecord(
        record_id=str(uuid.uuid4()),
        kind=RegistryKind.OVERRIDE,
        key=key,
        change=change,
        changed_by=changed_by,
        changed_at=datetime.now(UTC),
        payload=override,
    )
    assert service.publisher is not None
    try:
        await run_in_threadpool(service.publisher, [record])
    except Exception as error:  # reported to the caller as one line
        logger.warning("publishing an override failed key=%s: %s", key, type(error).__name__)
        return _error(503, f"publishing to the registry failed: {error}")
    logger.info("override published key=%s change=%s by=%s", key, change, changed_by)
    return _json({"record_id": record.record_id, "key": key, "change": str(change)}, 202)


def build_app(service: Service, *, manage_lifecycle: bool = True) -> ASGIApp:
    """The ASGI app. With ``manage_lifecycle``, the lifespan starts/stops the source and the sink."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if manage_lifecycle:
            await run_in_threadpool(service.source.start)
            service.sink.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await run_in_threadpool(service.sink.stop)
                await run_in_threadpool(service.source.stop)

    app = Starlette(routes=_routes(service), lifespan=lifespan, max_body_size=service.max_body_bytes)
    app.state.service = service
    return BrowserGuard(app, fast_assign=FastAssign(service, app))
