"""Who may read the dashboards: tokens (read-only vs admin) and the loopback rule (pure + one middleware).

Reuses the service's key ring (:mod:`assignment.service.auth`): with no token configured, every caller is
an admin, which is allowed on a loopback bind only (:func:`check_dashboard_bind`). Tokens arrive as
``Authorization: Bearer TOKEN``, ``X-XP-Key: TOKEN`` or, from a browser, the HttpOnly SameSite=Strict
cookie that signing in at ``/login`` sets (:mod:`dashboards.login`); never in a URL (a ``?token=`` is
ignored: URLs end up in history, logs and Referer headers). A page request without a valid token gets
401 with the sign-in form. A state-changing request (not GET/HEAD/OPTIONS) whose ``Origin`` is another
site is refused (403), with or without tokens. Compared in constant time, never logged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from assignment.service.auth import AccessLevel, KeyRing, is_loopback, key_from_headers
from dashboards.login import cookie_token, login_page
from dashboards.settings import DashboardSettings
from xpcore.errors import ConfigError

__all__ = [
    "AccessLevel",
    "TokenMiddleware",
    "check_dashboard_bind",
    "dashboard_keys",
    "foreign_origin",
    "request_token",
    "required_level",
]


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
    if path in ("/healthz", "/login", "/logout") or path.startswith("/static/"):
        return AccessLevel.NONE
    if path.startswith("/api/admin/"):
        return AccessLevel.ADMIN
    return AccessLevel.CLIENT


def request_token(request: Request) -> str | None:
    """The token a request presents (headers first, then the sign-in cookie; never the URL)."""
    key = key_from_headers(request.headers.get("authorization"), request.headers.get("x-xp-key"))
    return key or cookie_token(request)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def foreign_origin(request: Request) -> bool:
    """A state-changing request sent by another site's page.

    ``Sec-Fetch-Site`` (sent by current browsers, set by the browser, not by the page) decides when present:
    only ``same-origin`` and ``none`` (typed by the user) pass. Otherwise an ``Origin`` naming another host
    is foreign. ``Origin: null`` alone is not: with ``Referrer-Policy: no-referrer`` browsers send it on
    their own same-origin form posts (a sandboxed page's request also says ``Sec-Fetch-Site: cross-site``).
    No header at all: not a browser page (curl, the CLI)."""
    if request.method in SAFE_METHODS:
        return False
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site.lower() not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() != request.headers.get("host", "").lower()


class TokenMiddleware:
    """Rejects requests whose token does not grant what the path needs (401 without one, 403 too low)."""

    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if foreign_origin(request):
            refused = JSONResponse({"error": "cross-site request refused (foreign Origin)"}, status_code=403)
            await refused(scope, receive, send)
            return
        if self.keys.open:
            await self.app(scope, receive, send)
            return
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
    message = "a token is required (Authorization: Bearer TOKEN or X-XP-Key: TOKEN; in a browser: /login)"
    if status == 403:
        message = "this token is read-only; an admin token is required"
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    if status == 401 and request.method == "GET":
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return login_page(path, status_code=401)
    return PlainTextResponse(message, status_code=status)


Handler = Callable[[Request], Awaitable[Response]]
