"""Who may read the dashboards: tokens (read-only vs admin) and the loopback rule (pure + one middleware).

Reuses the service's key ring (:mod:`assignment.service.auth`): with no token configured, every caller is
an admin, which is allowed on a loopback bind only (:func:`check_dashboard_bind`). Tokens arrive as
``Authorization: Bearer TOKEN``, ``X-XP-Key: TOKEN`` or, for links a browser follows (pages, exports),
``?token=TOKEN`` (the pages carry it on to their API calls). Compared in constant time, never logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from assignment.service.auth import AccessLevel, KeyRing, is_loopback, key_from_headers
from dashboards.settings import DashboardSettings
from xpstream.errors import ConfigError

__all__ = ["AccessLevel", "TokenMiddleware", "check_dashboard_bind", "dashboard_keys", "required_level"]


def dashboard_keys(settings: DashboardSettings) -> KeyRing:
    """The configured read-only (client) and admin tokens."""
    return KeyRing.from_secrets(settings.dashboard_read_tokens, settings.dashboard_admin_tokens)


def check_dashboard_bind(host: str, keys: KeyRing) -> None:
    """Refuse (ConfigError, one line) to serve a non-loopback interface without tokens."""
    if is_loopback(host) or not keys.open:
        return
    raise ConfigError(
        f"refusing to serve the dashboard on {host} without tokens: set XP_DASHBOARD_READ_TOKENS "
        "(and XP_DASHBOARD_ADMIN_TOKENS), or bind 127.0.0.1"
    )


def required_level(path: str) -> AccessLevel:
    """What a path needs: nothing for health and static files, admin for /api/admin, else read."""
    if path == "/healthz" or path.startswith("/static/"):
        return AccessLevel.NONE
    if path.startswith("/api/admin/"):
        return AccessLevel.ADMIN
    return AccessLevel.CLIENT


def request_token(request: Request) -> str | None:
    """The token a request presents (headers first, then the ``token`` query parameter)."""
    key = key_from_headers(request.headers.get("authorization"), request.headers.get("x-xp-key"))
    return key or request.query_params.get("token") or None


class TokenMiddleware:
    """Rejects requests whose token does not grant what the path needs (401 without one, 403 too low)."""

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.keys.open:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        needed = required_level(request.url.path)
        level = self.keys.level(request_token(request))
        if level >= needed:
            scope.setdefault("state", {})["access"] = level
            await self.app(scope, receive, send)
            return
        response = _denied(request, level)
        await response(scope, receive, send)


def _denied(request: Request, level: AccessLevel) -> Response:
    status = 401 if level is AccessLevel.NONE else 403
    message = "a token is required (Authorization: Bearer TOKEN or ?token=TOKEN)"
    if status == 403:
        message = "this token is read-only; an admin token is required"
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return PlainTextResponse(message, status_code=status)


Handler = Callable[[Request], Awaitable[Response]]
