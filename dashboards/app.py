"""The dashboard web app: ``create_app(settings, warehouse=None)`` → a Starlette application.

Pages are server-rendered shells (jinja2) filled by small vanilla JS from the JSON API (``/api/...``);
Chart.js is vendored under ``static/vendor`` and served by the app. Mounted by `xp dashboard serve` and
by `xp up`. With ``warehouse=None`` the app opens its own (``open_warehouse``) on startup and closes it
on shutdown; a given warehouse is borrowed, never closed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dashboards.api import api_routes
from dashboards.auth import TokenMiddleware, dashboard_keys, request_token
from dashboards.context import DashboardContext
from dashboards.export_api import export_routes
from dashboards.lag import LagMonitor
from dashboards.login import login_routes
from dashboards.pages import page_routes
from dashboards.security import PAGE_CSP, SECURITY_HEADERS, ReportFiles, SecurityHeadersMiddleware
from dashboards.settings import DashboardSettings
from xpcore.usage import KeyIds, flush_periodically

if TYPE_CHECKING:
    from starlette.requests import Request

    from xpcore.warehouse import Warehouse

__all__ = ["create_app"]

logger = logging.getLogger(__name__)
PACKAGE_DIR = Path(__file__).resolve().parent
DOCS_DIR = PACKAGE_DIR.parent / "docs"


USAGE_FLUSH_SECONDS = 60.0
"""How often page views per token are added to xp.usage_daily (and once more on shutdown)."""


def _healthz(request: Request) -> Response:
    context: DashboardContext | None = getattr(request.app.state, "dashboard", None)
    return JSONResponse({"status": "ok" if context is not None else "starting"})


def _statistics_doc(request: Request) -> Response:
    path = DOCS_DIR / "statistics.md"
    if not path.is_file():
        return PlainTextResponse("docs/statistics.md is not installed with this copy", status_code=404)
    return PlainTextResponse(path.read_text(encoding="utf-8"), media_type="text/markdown; charset=utf-8")


def _internal_error(request: Request, error: Exception) -> Response:
    """A bare 500 (no traceback) that still carries the security headers."""
    logger.error("dashboard request %s failed", request.url.path, exc_info=error)
    headers = {**SECURITY_HEADERS, "content-security-policy": PAGE_CSP}
    return PlainTextResponse("Internal Server Error", status_code=500, headers=headers)


def create_app(
    settings: DashboardSettings, warehouse: Warehouse | None = None, *, lag_monitor: bool = True
) -> Starlette:
    """The dashboard app. ``lag_monitor=False`` skips the background Kafka lag reader (tests, benches)."""

    owned = warehouse is None
    lock = threading.Lock()

    def build_context() -> DashboardContext:
        """The app's state, built once: on startup, or on the first request when the app is mounted
        inside another app (Starlette does not run a mounted app's lifespan)."""
        with lock:
            existing: DashboardContext | None = getattr(app.state, "dashboard", None)
            if existing is not None:
                return existing
            if warehouse is None:
                from xpcore.warehouse import open_warehouse

                store = open_warehouse(settings)
            else:
                store = warehouse
            lag = None
            if lag_monitor:
                lag = LagMonitor(
                    settings,
                    settings.dashboard_stream_group_id,
                    interval=settings.dashboard_refresh_seconds,
                    timeout=settings.dashboard_kafka_timeout,
                )
                lag.start()
            context = DashboardContext.build(settings, store, lag)
            app.state.dashboard = context
            logger.info("dashboard ready (warehouse %s)", store.location)
            return context

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        built = build_context()
        stop_flushing = threading.Event()
        flusher = threading.Thread(
            target=flush_periodically,
            args=(built.warehouse, built.usage, stop_flushing, USAGE_FLUSH_SECONDS),
            name="dashboard-usage",
            daemon=True,
        )
        flusher.start()
        try:
            yield
        finally:
            stop_flushing.set()
            flusher.join(10)
            context: DashboardContext | None = getattr(app.state, "dashboard", None)
            if context is not None:
                if context.lag is not None:
                    context.lag.stop()
                if owned:
                    context.warehouse.close()
                app.state.dashboard = None

    report_dir = settings.home / "reports" / "quality" / "latest"
    routes = [
        Route("/healthz", _healthz),
        Route("/docs/statistics.md", _statistics_doc),
        *api_routes(),
        *export_routes(),
        *page_routes(),
        *login_routes(),
        Mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static"),
        Mount("/quality/report", ReportFiles(report_dir), name="report"),
    ]
    keys = dashboard_keys(settings)
    middleware = [Middleware(SecurityHeadersMiddleware), Middleware(TokenMiddleware, keys=keys)]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={Exception: _internal_error},
    )
    app.state.dashboard = None
    app.state.dashboard_keys = keys
    key_ids = KeyIds((*keys.client_keys, *keys.admin_keys))
    app.state.dashboard_viewer = lambda request: key_ids(request_token(request))  # page views per token id
    app.state.build_dashboard = build_context
    return app
