"""The endpoints of `xp assign serve`, one method per route of :class:`Handlers`.

Every handler takes a Starlette request and returns a response; what they share (payload source, sink,
keys, limits, metrics) is the :class:`~assignment.service.context.Service` the handlers are built with.
:mod:`assignment.service.app` wires them to routes. The registry publish of the admin routes runs in
the thread pool; everything else runs on the event loop (an evaluation takes tens of microseconds).
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pydantic
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from assignment.service.auth import AccessLevel
from assignment.service.context import Service
from assignment.service.evaluation import assign_many, assign_unit, assignment_dict
from assignment.service.models import (
    AssignBatchRequest,
    AssignRequest,
    EventsRequest,
    OverrideRequest,
)
from assignment.service.openapi import openapi_document
from assignment.service.responses import (
    JSON_MEDIA_TYPE,
    encode_json,
    error_response,
    json_response,
    validation_detail,
)
from assignment.service.sources import ServingState
from assignment.sticky import StickyBuckets
from schemas import (
    DeadLetterReason,
    Override,
    RecordCodec,
    RecordError,
    RecordKind,
    RegistryChange,
    RegistryKind,
    RegistryRecord,
    make_dead_letter,
)
from schemas.records import COLLECTOR_SOURCE
from xpcore.kafka.topics import DEAD_LETTERS, EVENTS, EXPOSURES

__all__ = ["Handlers"]

logger = logging.getLogger(__name__)

_STATIC_SOURCE = "overrides need the registry: this service serves a static features file"


class Handlers:
    """The nine endpoints, sharing one :class:`Service` (docs/service.md)."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self._unauthorized = error_response(
            401, "a valid client key is required (Authorization: Bearer KEY or X-XP-Key)"
        )
        self._admin_required = error_response(
            401, "an admin key is required (X-XP-Key or Authorization: Bearer KEY)"
        )
        self._openapi = encode_json(openapi_document(service.version))

    # client routes -------------------------------------------------------------------------------

    async def assign(self, request: Request) -> Response:
        """``POST /v1/assign``: one unit's assignments (and its exposures)."""
        service = self.service
        if service.access(request) < AccessLevel.CLIENT:
            return self._unauthorized
        try:
            body = AssignRequest.model_validate_json(await request.body())
        except pydantic.ValidationError as error:
            return error_response(422, "invalid request body", validation_detail(error))
        state = service.source.current()
        at = service.clock()
        sticky = (
            StickyBuckets.from_list(body.sticky_bucket_docs) if body.sticky_bucket_docs is not None else None
        )
        assignments = assign_unit(state, body.attributes, body.features, at, sticky)
        if body.expose and service.exposures_enabled:
            service.record_exposures(
                assignments,
                body.attributes,
                at,
                request.headers.get("user-agent"),
                client=request.state.xp_client,
            )
        features = {
            key: assignment_dict(result, overridden) for key, (result, overridden) in assignments.items()
        }
        answer: dict[str, Any] = {"payload_version": state.version, "features": features}
        if sticky is not None:
            answer["sticky_bucket_docs"] = list(sticky.docs.values())
        return json_response(answer)

    async def assign_batch(self, request: Request) -> Response:
        """``POST /v1/assign/batch``: many units' assignments (and their exposures)."""
        service = self.service
        if service.access(request) < AccessLevel.CLIENT:
            return self._unauthorized
        try:
            body = AssignBatchRequest.model_validate_json(await request.body())
        except pydantic.ValidationError as error:
            return error_response(422, "invalid request body", validation_detail(error))
        if len(body.units) > service.max_batch_units:
            return error_response(
                413, f"at most {service.max_batch_units} units per batch (XP_SERVICE_MAX_BATCH_UNITS)"
            )
        state = service.source.current()
        at = service.clock()
        per_unit = assign_many(state, body.units, body.features, at)
        user_agent = request.headers.get("user-agent")
        results = []
        for attributes, assignments in zip(body.units, per_unit, strict=True):
            if body.expose and service.exposures_enabled:
                service.record_exposures(
                    assignments, attributes, at, user_agent, client=request.state.xp_client
                )
            results.append({key: assignment_dict(r, o) for key, (r, o) in assignments.items()})
        return json_response({"payload_version": state.version, "results": results})

    async def sdk_features(self, request: Request) -> Response:
        """``GET /api/features/{client_key}``: the GrowthBook SDK payload (ETag, 304 when unchanged)."""
        service = self.service
        client_key = request.path_params["client_key"]
        if service.keys.identify(client_key)[0] is AccessLevel.ADMIN:
            # a URL ends up in proxy and browser logs: an admin key there would leak
            return error_response(403, "an admin key is not accepted in a URL: use a client key")
        if service.access(request, path_key=client_key) < AccessLevel.CLIENT:
            return error_response(401, "unknown client key")
        state: ServingState = service.source.current()
        etag = f'"xp-{state.version}-{int(state.loaded_at.timestamp() * 1000)}"'
        # x-sse-support: GrowthBook SDKs open GET /sub/{client_key} (server-sent events) only when told
        headers = {"ETag": etag, "Cache-Control": "no-cache", "x-sse-support": "enabled"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return json_response(state.sdk_payload(), headers=headers)

    async def events(self, request: Request) -> Response:
        """``POST /v1/events``: the collector; every record is checked, rejected ones are dead-lettered."""
        service = self.service
        if service.access(request) < AccessLevel.CLIENT:
            return self._unauthorized
        try:
            body = EventsRequest.model_validate_json(await request.body())
        except pydantic.ValidationError as error:
            return error_response(422, "invalid request body", validation_detail(error))
        if len(body.exposures) + len(body.events) > service.max_events:
            return error_response(
                413, f"at most {service.max_events} records per request (XP_SERVICE_MAX_EVENTS)"
            )
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
                    self._dead_letter(error, raw, record_kind)
                    continue
                service.sink.submit(topic, decoded.unit_id, value)
                collected.labels(kind, "accepted").inc()
                accepted += 1
        return json_response({"accepted": accepted, "rejected": len(errors), "errors": errors}, 202)

    # admin routes --------------------------------------------------------------------------------

    async def put_override(self, request: Request) -> Response:
        """``POST /v1/overrides``: publish an override to the registry (admin key)."""
        service = self.service
        level, actor = service.identify(request)
        if level < AccessLevel.ADMIN or actor is None:
            return self._admin_denied(level)
        try:
            body = OverrideRequest.model_validate_json(await request.body())
        except pydantic.ValidationError as error:
            return error_response(422, "invalid request body", validation_detail(error))
        if body.changed_by is not None and body.changed_by != actor:
            return error_response(
                422, "changed_by comes from the admin key's name (XP_SERVICE_ADMIN_KEYS name:secret); omit it"
            )
        if service.publisher is None or not service.source.follows_registry:
            return error_response(409, _STATIC_SOURCE)
        state = service.source.current()
        count = state.variation_counts.get(body.experiment_key)
        if count is not None and body.variation_id >= count:
            return error_response(
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
            return error_response(422, str(error))
        exists = (
            state.snapshot is not None and (body.experiment_key, body.unit_id) in state.snapshot.overrides
        )
        change = RegistryChange.UPDATED if exists else RegistryChange.CREATED
        return await self._publish(override, change, actor, f"override:{body.experiment_key}:{body.unit_id}")

    async def delete_override(self, request: Request) -> Response:
        """``DELETE /v1/overrides/{experiment_key}/{unit_id}``: publish the override's removal (admin key)."""
        service = self.service
        level, actor = service.identify(request)
        if level < AccessLevel.ADMIN or actor is None:
            return self._admin_denied(level)
        if service.publisher is None or not service.source.follows_registry:
            return error_response(409, _STATIC_SOURCE)
        key = f"override:{request.path_params['experiment_key']}:{request.path_params['unit_id']}"
        return await self._publish(None, RegistryChange.DELETED, actor, key)

    # operations routes ---------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        """``GET /healthz``: the payload served, the dedup window and the sink's counters."""
        service = self.service
        state = service.source.current()
        return json_response(
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

    async def metrics(self, request: Request) -> Response:
        """``GET /metrics``: Prometheus text (spool gauges refreshed from the sink first)."""
        service = self.service
        stats = service.sink.stats()
        service.metrics.spool_pending.set(stats.get("spool_pending_bytes", 0))
        service.metrics.spool_full.set(1 if stats.get("spool_full") else 0)
        service.metrics.payload_version.set(service.source.current().version)
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def openapi(self, request: Request) -> Response:
        """``GET /openapi.json``: the OpenAPI document (built once)."""
        return Response(self._openapi, media_type=JSON_MEDIA_TYPE)

    # helpers -------------------------------------------------------------------------------------

    def _admin_denied(self, level: AccessLevel) -> Response:
        """401 without a key, 403 with a key that is not an admin one."""
        return (
            self._admin_required
            if level is AccessLevel.NONE
            else error_response(403, "an admin key is required")
        )

    def _dead_letter(self, error: RecordError, raw: bytes, record_kind: RecordKind) -> None:
        """Every rejected record goes to the dead-letter topic with its reason (source topic ``http``).

        The stream worker loads these into ``xp.dead_letters`` (exactly once, docs/decisions/0036)."""
        service = self.service
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
        self, override: Override | None, change: RegistryChange, changed_by: str, key: str
    ) -> Response:
        """One override record to the registry (in the thread pool); 503 with one line if that fails."""
        publisher = self.service.publisher
        record = RegistryRecord(
            record_id=str(uuid.uuid4()),
            kind=RegistryKind.OVERRIDE,
            key=key,
            change=change,
            changed_by=changed_by,
            changed_at=datetime.now(UTC),
            payload=override,
        )
        assert publisher is not None
        try:
            await run_in_threadpool(publisher, [record])
        except Exception as error:  # reported to the caller as one line
            logger.warning("publishing an override failed key=%s: %s", key, type(error).__name__)
            return error_response(503, f"publishing to the registry failed: {error}")
        logger.info("override published key=%s change=%s by=%s", key, change, changed_by)
        return json_response({"record_id": record.record_id, "key": key, "change": str(change)}, 202)


def _record_bytes(record: Any) -> bytes:
    """One collected record as JSON bytes for the codec, the same bytes a Kafka producer would send.

    msgspec writes NaN/±Infinity (the body parser accepts ``NaN``, ``Infinity`` and ``1e999``) as
    ``null``, which would turn a poison value into a missing one; then the record is written with the
    standard library instead, whose ``NaN``/``Infinity`` literals the codec refuses as
    ``value_not_finite``, exactly as on the Kafka path."""
    raw = encode_json(record)
    if b"null" in raw:  # possibly a non-finite float: re-encode keeping it visible
        raw = json.dumps(record, separators=(",", ":"), allow_nan=True).encode()
    return raw
