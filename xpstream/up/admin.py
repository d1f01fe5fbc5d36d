"""The up process's own HTTP app: ``GET /healthz`` and, in embedded mode, the warehouse API.

Auth: requests from loopback clients (the commands of this machine) need nothing; with ``XP_UP_TOKENS``
set, a warehouse API request from any other address needs ``Authorization: Bearer <token>``
(``/healthz`` stays open: it tells nothing secret). A non-loopback bind without tokens is refused at
start (:func:`check_admin_bind`), so the store is never open to the network without a token.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from xpstream.errors import ConfigError
from xpstream.up.health import Health
from xpstream.up.warehouse_api import warehouse_routes

if TYPE_CHECKING:
    from xpstream.warehouse.base import Warehouse

__all__ = ["build_admin_app", "check_admin_bind", "is_loopback"]


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_admin_bind(host: str, tokens: Sequence[str]) -> None:
    """Refuse to serve the store off loopback without tokens."""
    if not is_loopback(host) and not tokens:
        raise ConfigError(
            f"XP_UP_HOST={host} is not loopback: set XP_UP_TOKENS (comma-separated bearer tokens) "
            "so that the warehouse API is not open to the network"
        )


class _RequireToken:
    """Bearer-token check for paths under ``/v1/`` from non-loopback clients (pure ASGI)."""

    def __init__(self, app: ASGIApp, tokens: Sequence[str]) -> None:
        self.app = app
        self.tokens = [t.encode() for t in tokens]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client") or ("", 0)
        if (
            scope["type"] == "http"
            and self.tokens
            and scope["path"].startswith("/v1/")
            and not is_loopback(str(client[0]))
        ):
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            given = header[7:] if header[:7].lower() == b"bearer " else b""
            if not any(hmac.compare_digest(given, token) for token in self.tokens):
                body = {"error": {"type": "ConfigError", "message": "the warehouse API needs a valid token"}}
                await JSONResponse(body, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_admin_app(health: Health, warehouse: Warehouse | None, tokens: Sequence[str]) -> ASGIApp:
    """The app: /healthz always, the warehouse API when ``warehouse`` (the embedded store) is given."""

    async def healthz(request: Request) -> Response:
        status, body = health.report()
        return JSONResponse(body, status_code=status)

    routes = [Route("/healthz", healthz, methods=["GET"])]
    if warehouse is not None:
        routes.extend(warehouse_routes(warehouse))
    return _RequireToken(Starlette(routes=routes), tokens)
