"""The endpoints SDKs call in their own protocols: OpenFeature OFREP, GrowthBook remote evaluation
and server-sent events (docs/clients.md). One method per route of :class:`SdkHandlers`.

Every assignment goes through the same path as ``POST /v1/assign``
(:func:`~assignment.service.evaluation.assign_unit`: registry overrides applied and marked) and every
exposure through :meth:`~assignment.service.context.Service.record_exposures` (dedup window,
write-ahead spool). Only hash-based and registry-overridden assignments are exposures: a variation an
SDK forces itself (GrowthBook's QA ``forcedVariations`` / ``?experiment-key=N``) is not, as in the SDKs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from assignment.results import FeatureResult
from assignment.service.auth import AccessLevel, key_from_headers
from assignment.service.context import Service
from assignment.service.evaluation import assign_unit
from assignment.service.ofrep import (
    FLAG_NOT_FOUND,
    TARGETING_KEY_MISSING,
    OfrepError,
    bulk_etag,
    flag_failure,
    flag_success,
    hash_attributes_of,
    parse_context,
    unit_attributes,
)
from assignment.service.remote_eval import RemoteEvalError, evaluated_payload, parse_remote_eval
from assignment.service.responses import encode_json, error_response, json_response
from assignment.service.streams import event_stream, parse_last_event_id

__all__ = ["SdkHandlers"]

_decode = msgspec.json.Decoder().decode
_SSE_HEADERS = {"x-sse-support": "enabled"}


def _ofrep_error(status: int, key: str | None, code: str, details: str) -> Response:
    return json_response(flag_failure(key, code, details), status)


class SdkHandlers:
    """OFREP (single and bulk), GrowthBook remote evaluation and the event stream."""

    def __init__(self, service: Service) -> None:
        self.service = service

    # auth ----------------------------------------------------------------------------------------

    def _ofrep_denied(self, request: Request) -> Response | None:
        """401 without a valid client key (``Authorization: Bearer``, ``X-API-Key`` or ``X-XP-Key``)."""
        if self.service.access(request, path_key=request.headers.get("x-api-key")) < AccessLevel.CLIENT:
            return json_response(
                {"errorDetails": "a valid client key is required (Authorization: Bearer KEY or X-API-Key)"},
                401,
            )
        return None

    def _path_key_denied(self, request: Request) -> Response | None:
        """403 for an admin key in the URL (logged by proxies), 401 for an unknown key."""
        client_key = request.path_params["client_key"]
        service = self.service
        if service.keys.identify(client_key)[0] is AccessLevel.ADMIN:
            return error_response(403, "an admin key is not accepted in a URL: use a client key")
        if service.access(request, path_key=client_key) < AccessLevel.CLIENT:
            return error_response(401, "unknown client key")
        return None

    def _record(
        self,
        assignments: dict[str, tuple[FeatureResult, bool]],
        attributes: Any,
        at: datetime,
        request: Request,
    ) -> None:
        """The exposures of these assignments, exactly as ``POST /v1/assign`` records them."""
        service = self.service
        if not service.exposures_enabled:
            return
        exposed = {
            key: (result, overridden)
            for key, (result, overridden) in assignments.items()
            if result.hash_used or overridden
        }
        if exposed:
            service.record_exposures(
                exposed, attributes, at, request.headers.get("user-agent"), client=request.state.xp_client
            )

    # OFREP ---------------------------------------------------------------------------------------

    async def ofrep_flag(self, request: Request) -> Response:
        """``POST /ofrep/v1/evaluate/flags/{key}``: one flag for one context."""
        denied = self._ofrep_denied(request)
        if denied is not None:
            return denied
        key = request.path_params["key"]
        try:
            targeting_key, attributes = parse_context(_decode(await request.body()))
        except (msgspec.DecodeError, RecursionError):  # RecursionError: nested too deeply
            return _ofrep_error(400, key, "PARSE_ERROR", "the body is not valid JSON")
        except OfrepError as error:
            return _ofrep_error(400, key, error.code, error.details)
        state = self.service.source.current()
        feature = (state.payload.get("features") or {}).get(key)
        if not isinstance(feature, dict):
            return _ofrep_error(404, key, FLAG_NOT_FOUND, f"flag {key!r} is not served")
        hashed_by = hash_attributes_of(feature)
        if hashed_by and targeting_key is None and not any(name in attributes for name in hashed_by):
            details = f"flag {key!r} buckets units by {sorted(hashed_by)}: send a targetingKey"
            return _ofrep_error(400, key, TARGETING_KEY_MISSING, details)
        unit = unit_attributes(targeting_key, attributes, hashed_by)
        at = self.service.clock()
        assignments = assign_unit(state, unit, [key], at)
        self._record(assignments, unit, at, request)
        result, overridden = assignments[key]
        return json_response(
            flag_success(
                key,
                result,
                overridden=overridden,
                has_rules=bool(feature.get("rules")),
                payload_version=state.version,
            )
        )

    async def ofrep_bulk(self, request: Request) -> Response:
        """``POST /ofrep/v1/evaluate/flags``: every flag for one context (ETag, 304 when unchanged)."""
        denied = self._ofrep_denied(request)
        if denied is not None:
            return denied
        try:
            targeting_key, attributes = parse_context(_decode(await request.body()))
        except (msgspec.DecodeError, RecursionError):  # RecursionError: nested too deeply
            return _ofrep_error(400, None, "PARSE_ERROR", "the body is not valid JSON")
        except OfrepError as error:
            return _ofrep_error(400, None, error.code, error.details)
        state = self.service.source.current()
        features: dict[str, Any] = state.payload.get("features") or {}
        hashed_by = {key: hash_attributes_of(f) for key, f in features.items() if isinstance(f, dict)}
        unit = unit_attributes(targeting_key, attributes, set().union(*hashed_by.values()))
        missing = {
            key
            for key, names in hashed_by.items()
            if names and targeting_key is None and not any(name in attributes for name in names)
        }
        evaluable = [key for key in hashed_by if key not in missing]
        at = self.service.clock()
        assignments = assign_unit(state, unit, evaluable, at)
        self._record(assignments, unit, at, request)
        flags: list[dict[str, Any]] = []
        for key in hashed_by:
            if key in missing:
                flags.append(flag_failure(key, TARGETING_KEY_MISSING, "send a targetingKey"))
                continue
            result, overridden = assignments[key]
            flags.append(
                flag_success(
                    key,
                    result,
                    overridden=overridden,
                    has_rules=bool(features[key].get("rules")),
                    payload_version=state.version,
                )
            )
        answer: dict[str, Any] = {"flags": flags, "metadata": {"payload_version": state.version}}
        stream_url = self._stream_url(request)
        if stream_url is not None:
            answer["eventStreams"] = [{"type": "sse", "url": stream_url}]
        body = encode_json(answer)
        etag = bulk_etag(body)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    def _stream_url(self, request: Request) -> str | None:
        """Where this client's event stream is: ``/sub/{its client key}`` (never an admin key)."""
        headers = request.headers
        key = key_from_headers(headers.get("authorization"), headers.get("x-xp-key")) or headers.get(
            "x-api-key"
        )
        if key and self.service.keys.identify(key)[0] is AccessLevel.ADMIN:
            return None
        if not key:
            key = "-"  # open client routes (loopback, no keys): any path key is accepted
        base = str(request.base_url).rstrip("/")
        return f"{base}/sub/{key}"

    # GrowthBook ----------------------------------------------------------------------------------

    async def sdk_eval(self, request: Request) -> Response:
        """``POST /api/eval/{client_key}``: GrowthBook remote evaluation (the unit's values only)."""
        denied = self._path_key_denied(request)
        if denied is not None:
            return denied
        try:
            body = parse_remote_eval(_decode(await request.body()))
        except (msgspec.DecodeError, RecursionError):  # RecursionError: nested too deeply
            return error_response(422, "the body is not valid JSON")
        except RemoteEvalError as error:
            return error_response(422, str(error))
        state = self.service.source.current()
        at = self.service.clock()
        assignments = assign_unit(
            state, body.attributes, None, at, client_forced=body.forced_variations, url=body.url
        )
        self._record(assignments, body.attributes, at, request)
        date_updated = state.sdk_payload()["dateUpdated"]
        results = {key: result for key, (result, _) in assignments.items()}
        return json_response(
            evaluated_payload(
                results, body.forced_features, date_updated, state.payload.get("features") or {}
            ),
            headers={**_SSE_HEADERS, "Cache-Control": "no-store"},
        )

    async def sdk_stream(self, request: Request) -> Response:
        """``GET /sub/{client_key}``: server-sent events on every registry change."""
        denied = self._path_key_denied(request)
        if denied is not None:
            return denied
        service = self.service
        if service.feed.full:
            return error_response(
                503, f"at most {service.max_streams} event streams (XP_SERVICE_MAX_STREAMS); poll instead"
            )
        stream = event_stream(
            service.feed,
            service.source.current,
            inline_payload=request.query_params.get("payload") == "inline",
            heartbeat=service.stream_heartbeat_seconds,
            last_version=parse_last_event_id(request.headers.get("last-event-id")),
        )
        return StreamingResponse(
            stream,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
