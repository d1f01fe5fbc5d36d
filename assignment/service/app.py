"""The Starlette application of `xp assign serve`: routes, request metrics, lifespan.

Endpoints (docs/service.md): ``POST /v1/assign``, ``POST /v1/assign/batch``,
``GET /api/features/{client_key}`` (GrowthBook SDK payload), ``POST /api/eval/{client_key}`` and
``GET /sub/{client_key}`` (GrowthBook remote evaluation and server-sent events),
``POST /ofrep/v1/evaluate/flags[/{key}]`` (OpenFeature OFREP), ``POST /v1/events`` (collector),
``POST /v1/overrides`` and ``DELETE /v1/overrides/{experiment_key}/{unit_id}`` (admin),
``/healthz``, ``/metrics``, ``/openapi.json``.

The handlers are the methods of :class:`~assignment.service.handlers.Handlers` and, for the SDK
protocols, :class:`~assignment.service.sdk_handlers.SdkHandlers`; what they share is the
:class:`~assignment.service.context.Service`. Handlers are ``async`` and evaluate on the event loop (an
evaluation takes tens of microseconds); Kafka is reached only through the
:class:`~assignment.service.exposures.RecordSink`, which never blocks. Registry publishes (admin) run in
the thread pool. In front of the router, :class:`~assignment.service.browser.BrowserGuard` (CORS,
JSON-only bodies) and :class:`~assignment.service.fast_assign.FastAssign` (the hot ``POST /v1/assign``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from assignment.service.auth import key_from_headers
from assignment.service.browser import BrowserGuard, is_client_route, is_json
from assignment.service.context import Publisher, Service
from assignment.service.fast_assign import FastAssign
from assignment.service.handlers import Handlers
from assignment.service.rate_limit import RateLimitGuard
from assignment.service.sdk_handlers import SdkHandlers

__all__ = ["BrowserGuard", "Publisher", "Service", "build_app", "is_client_route", "is_json", "routes"]

Handler = Callable[[Request], Awaitable[Response]]


def _timed(service: Service, name: str, handler: Handler) -> Handler:
    """``handler`` counting its requests by status and observing its latency (route ``name``)."""
    latency = service.metrics.latency.labels(name)
    requests = service.metrics.requests
    by_status: dict[int, Any] = {}

    async def endpoint(request: Request) -> Response:
        began = time.perf_counter()
        headers = request.headers
        presented = key_from_headers(headers.get("authorization"), headers.get("x-xp-key"))
        request.state.xp_client = service.count_request(
            presented or request.path_params.get("client_key"), name
        )
        response = await handler(request)
        latency.observe(time.perf_counter() - began)
        counter = by_status.get(response.status_code)
        if counter is None:
            counter = by_status[response.status_code] = requests.labels(name, str(response.status_code))
        counter.inc()
        return response

    return endpoint


def routes(service: Service) -> list[Route]:
    """The routes of the API; the API routes are timed, the operations routes are not."""
    handlers = Handlers(service)
    sdk = SdkHandlers(service)

    def timed(path: str, name: str, handler: Handler, methods: list[str]) -> Route:
        return Route(path, _timed(service, name, handler), methods=methods, name=name)

    return [
        timed("/v1/assign", "assign", handlers.assign, ["POST"]),
        timed("/v1/assign/batch", "assign_batch", handlers.assign_batch, ["POST"]),
        timed("/api/features/{client_key}", "sdk_features", handlers.sdk_features, ["GET"]),
        timed("/v1/events", "events", handlers.events, ["POST"]),
        timed("/v1/overrides", "put_override", handlers.put_override, ["POST"]),
        timed(
            "/v1/overrides/{experiment_key}/{unit_id}",
            "delete_override",
            handlers.delete_override,
            ["DELETE"],
        ),
        timed("/api/eval/{client_key}", "sdk_eval", sdk.sdk_eval, ["POST"]),
        Route("/sub/{client_key}", sdk.sdk_stream, methods=["GET"], name="sdk_stream"),
        timed("/ofrep/v1/evaluate/flags/{key}", "ofrep_flag", sdk.ofrep_flag, ["POST"]),
        timed("/ofrep/v1/evaluate/flags", "ofrep_bulk", sdk.ofrep_bulk, ["POST"]),
        Route("/healthz", handlers.healthz, methods=["GET"]),
        Route("/metrics", handlers.metrics, methods=["GET"]),
        Route("/openapi.json", handlers.openapi, methods=["GET"]),
    ]


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

    app = Starlette(routes=routes(service), lifespan=lifespan, max_body_size=service.max_body_bytes)
    app.state.service = service
    guarded = BrowserGuard(app, fast_assign=FastAssign(service, app))
    return guarded if service.rate_limit is None else RateLimitGuard(guarded, service.rate_limit)
