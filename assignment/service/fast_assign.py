"""``POST /v1/assign`` without Starlette's router, request and response objects: the hot endpoint.

The usual request — a JSON body of a few hundred bytes with ``attributes`` (and optionally
``features`` and ``expose``), no sticky bucket documents, no ``Origin`` header — is answered here,
directly on the ASGI interface: the body is decoded with msgspec into a strict struct, the unit is
assigned as the Starlette endpoint does (the same :class:`~assignment.service.context.Service` methods),
its exposures are recorded (deduplicated, encoded, written ahead to the spool and handed to the sink
exactly as the Starlette endpoint does) and the same JSON answer is sent.
This costs well under half of the CPU per request of the full stack (router, middleware,
pydantic), and CPU per request is what the p99 budget is made of on a 2-core machine
(docs/service.md).

Anything else — a body msgspec's strict types do not take (pydantic's lax coercions, unknown fields,
invalid JSON: the Starlette endpoint answers 422 with its usual detail), sticky bucket documents,
no or a large ``Content-Length``, a missing key — is handed, with the body already read, to the
Starlette app, so every answer other than the common one is the Starlette endpoint's own.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from assignment.service.auth import key_from_headers
from assignment.service.evaluation import assign_unit
from schemas.records import utc_ms

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from assignment.service.context import Service

__all__ = ["FAST_BODY_LIMIT", "FastAssign"]

logger = logging.getLogger(__name__)

FAST_BODY_LIMIT = 64 * 1024
"""Largest body (by ``Content-Length``) the fast path reads; larger ones go to Starlette."""

_encode = msgspec.json.Encoder().encode
_HEADERS_TAIL = (b"content-type", b"application/json")


class _AssignBody(msgspec.Struct, forbid_unknown_fields=True):
    """The common body of ``POST /v1/assign`` (strict types; anything else goes to pydantic)."""

    attributes: dict[str, Any]
    features: list[str] | None = None
    expose: bool = True


_decode = msgspec.json.Decoder(_AssignBody).decode


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out ``body`` first, then whatever the connection sends next."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class FastAssign:
    """The ASGI handler of ``POST /v1/assign`` for the common request; ``fallback`` (the Starlette
    app) answers everything else."""

    def __init__(self, service: Service, fallback: ASGIApp) -> None:
        self.service = service
        self.fallback = fallback
        self._latency = service.metrics.latency.labels("assign")
        self._ok = service.metrics.requests.labels("assign", "200")
        self._body_limit = min(FAST_BODY_LIMIT, service.max_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.service
        length = -1
        authorization = x_key = user_agent = None
        for name, value in scope["headers"]:  # the first of repeated headers, as Starlette reads them
            if name == b"content-length":
                if length == -1:
                    length = int(value) if value.isdigit() else -2
            elif name == b"authorization":
                if authorization is None:
                    authorization = value.decode("latin-1")
            elif name == b"x-xp-key":
                if x_key is None:
                    x_key = value.decode("latin-1")
            elif name == b"user-agent" and user_agent is None:
                user_agent = value.decode("latin-1")
        if not 0 < length <= self._body_limit:
            await self.fallback(scope, receive, send)
            return
        began = time.perf_counter()
        message = await receive()
        body: bytes = message.get("body", b"")
        while message.get("more_body", False):
            message = await receive()
            body += message.get("body", b"")
        if not service.open_clients and not service.client_allowed(key_from_headers(authorization, x_key)):
            await self.fallback(scope, _replaying(body, receive), send)  # the 401, as Starlette says it
            return
        try:
            request = _decode(body)
        except (msgspec.ValidationError, msgspec.DecodeError):
            await self.fallback(scope, _replaying(body, receive), send)  # pydantic decides (or 422)
            return
        client = service.count_request(key_from_headers(authorization, x_key), "assign")
        state = service.source.current()
        at = service.clock()
        assignments = assign_unit(state, request.attributes, request.features, at)
        features = {}
        for key, (result, overridden) in assignments.items():
            data = result.to_dict()
            data["overridden"] = overridden
            features[key] = data
        # Exposures before the answer: the answer acknowledges them, so they are written ahead to
        # the spool first (one write(), no fsync: decision 0041) and survive a kill -9 from then on.
        # Truncated to milliseconds once, as exposures keep them.
        if request.expose and service.exposures_enabled:
            service.record_exposures(assignments, request.attributes, utc_ms(at), user_agent, client)
        answer = _encode({"payload_version": state.version, "features": features})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(answer)).encode()), _HEADERS_TAIL],
            }
        )
        await send({"type": "http.response.body", "body": answer})
        self._latency.observe(time.perf_counter() - began)
        self._ok.inc()
