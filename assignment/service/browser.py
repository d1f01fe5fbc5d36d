"""What a web page may make a browser do to the service (decision 0040): the outermost ASGI layer."""

from __future__ import annotations

import msgspec
from starlette.applications import Starlette
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BrowserGuard", "is_client_route", "is_json"]

_encode = msgspec.json.Encoder().encode

_CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"GET, POST"),
    (b"access-control-allow-headers", b"Authorization, Content-Type, X-XP-Key, X-API-Key, If-None-Match"),
    (b"access-control-max-age", b"600"),
]
_EXPOSED = (b"access-control-expose-headers", b"ETag, x-sse-support")
_CLIENT_PATHS = frozenset({"/v1/assign", "/v1/assign/batch", "/v1/events", "/ofrep/v1/evaluate/flags"})
_SDK_PREFIXES = ("/api/features/", "/api/eval/", "/sub/", "/ofrep/v1/evaluate/flags/")
_ADMIN_PREFIX = "/v1/overrides"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def is_client_route(path: str) -> bool:
    """The routes browsers (SDKs) may call cross-origin: assign, the SDK payload, remote evaluation,
    the event stream, OFREP and the collector."""
    return path in _CLIENT_PATHS or path.startswith(_SDK_PREFIXES)


def is_json(content_type: bytes | None) -> bool:
    """``application/json``, with or without parameters (``; charset=utf-8``)."""
    if content_type is None:
        return False
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"


async def _refuse(send: Send, status: int, message: str) -> None:
    body = _encode({"error": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BrowserGuard:
    """What a web page may make a browser do here (decision 0040):

    - a request with a body (POST) is read only as ``Content-Type: application/json`` (415 otherwise),
      so a cross-site form or ``text/plain`` POST — sent by browsers without a preflight — is never
      parsed; a cross-site JSON request needs a preflight;
    - CORS (any origin; keys, not cookies, authenticate) only on the client routes
      (:func:`is_client_route`); admin routes refuse any request carrying an ``Origin`` (403) and
      answer no preflight; other routes get no CORS headers;
    - requests without an ``Origin`` header pay no CORS cost; those to ``POST /v1/assign`` go to
      ``fast_assign`` (:mod:`assignment.service.fast_assign`) when given."""

    def __init__(self, app: Starlette, fast_assign: ASGIApp | None = None) -> None:
        self.app = app
        self.state = app.state
        self.router = app.router
        self.fast_assign = fast_assign

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = False
        content_type: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = True
            elif name == b"content-type" and content_type is None:
                content_type = value
        method = scope["method"]
        path: str = scope["path"]
        if method in _BODY_METHODS and not is_json(content_type):
            await _refuse(send, 415, "request bodies must be Content-Type: application/json")
            return
        if not origin:
            if (
                self.fast_assign is not None
                and path == "/v1/assign"
                and method == "POST"
                and not scope.get("root_path")
            ):
                await self.fast_assign(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if path.startswith(_ADMIN_PREFIX):
            await _refuse(send, 403, "admin routes do not answer browsers (a request with an Origin header)")
            return
        if not is_client_route(path):
            await self.app(scope, receive, send)
            return
        if method == "OPTIONS":
            headers = [*_CORS_HEADERS, (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), _CORS_HEADERS[0], _EXPOSED]}
            await send(message)

        await self.app(scope, receive, send_with_cors)
