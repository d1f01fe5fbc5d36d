"""Per-client rate limits on the client routes: 429 with ``Retry-After`` once a client's bucket is empty.

Off by default (``XP_SERVICE_CLIENT_RATE_LIMIT`` = 0). When set, every client route (assign, batch, the SDK
payload, OFREP, remote evaluation, the event stream, the collector) takes one token per request from the
bucket of the credential the request presents (``Authorization: Bearer``, ``X-API-Key``, ``X-XP-Key``, or
the client key in the URL), else of the client's address; buckets refill at ``rate`` per second up to
``burst``. The buckets are bounded (least recently used ones dropped), so a flood of made-up keys cannot
grow memory. OFREP clients get OFREP's error shape; others the service's ``{"error": …}``.
Admin and operations routes are never limited (they are not client routes).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

import msgspec
from starlette.types import ASGIApp, Receive, Scope, Send

from assignment.service.browser import is_client_route

__all__ = ["ClientRateLimit", "RateLimitGuard", "credential_of"]

_PATH_KEY_PREFIXES = ("/api/features/", "/api/eval/", "/sub/")


class ClientRateLimit:
    """Token buckets by credential; :meth:`check` is non-blocking (pure; the clock is injectable)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def check(self, credential: str) -> float | None:
        """Take a token for ``credential``: None when allowed, else the seconds until one is available."""
        now = self._clock()
        tokens, at = self._buckets.pop(credential, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[credential] = (tokens, now)
        if len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return None if allowed else (1.0 - tokens) / self.rate


def credential_of(scope: Scope) -> str:
    """Whose bucket a request takes from: the key it presents, else its client address."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return "key:" + value[7:].strip().decode("latin-1")
        if name in (b"x-api-key", b"x-xp-key"):
            return "key:" + value.strip().decode("latin-1")
    path: str = scope.get("path", "")
    for prefix in _PATH_KEY_PREFIXES:
        if path.startswith(prefix):
            return "key:" + path[len(prefix) :].split("/", 1)[0]
    client = scope.get("client")
    return "addr:" + (client[0] if client else "unknown")


class RateLimitGuard:
    """ASGI middleware: client routes pay a token; an empty bucket answers 429 with ``Retry-After``."""

    def __init__(self, app: ASGIApp, limit: ClientRateLimit) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] == "OPTIONS" or not is_client_route(scope["path"]):
            await self.app(scope, receive, send)
            return
        wait = self.limit.check(credential_of(scope))
        if wait is None:
            await self.app(scope, receive, send)
            return
        detail = f"rate limit of {self.limit.rate:g} requests/s per client reached; retry later"
        body = {"errorDetails": detail} if scope["path"].startswith("/ofrep/") else {"error": detail}
        headers = [
            (b"content-type", b"application/json"),
            (b"retry-after", str(max(1, math.ceil(wait))).encode()),
        ]
        if any(name == b"origin" for name, _ in scope.get("headers") or ()):
            # a client route answers any origin (BrowserGuard): let the page read the 429 and its delay
            headers += [
                (b"access-control-allow-origin", b"*"),
                (b"access-control-expose-headers", b"Retry-After"),
            ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": msgspec.json.encode(body)})
