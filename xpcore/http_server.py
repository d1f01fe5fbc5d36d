"""Connection limits of every HTTP server xpstream runs (service, dashboards, `xp up`), in one place.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``), concurrent connections
(``limit_concurrency``: beyond it a request is answered 503) and the size of an incomplete request
head (``h11_max_incomplete_event_size``), but has no timeout for reading a request head: a client
that sends a partial header and waits (slowloris) holds its connection for ever. The protocol classes
here add one: a connection whose request head is not complete ``header_timeout`` seconds after it
was opened (or after the previous response) is closed. See decision 0042.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xpcore.config import CoreSettings

__all__ = ["HttpLimits", "guarded_protocol"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpLimits:
    """The limits (defaults match the ``XP_HTTP_*`` settings)."""

    header_timeout: float = 10.0
    keep_alive_timeout: int = 5
    max_connections: int = 1000
    max_header_bytes: int = 16384

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> HttpLimits:
        return cls(
            header_timeout=settings.http_header_timeout,
            keep_alive_timeout=settings.http_keep_alive_timeout,
            max_connections=settings.http_max_connections,
            max_header_bytes=settings.http_max_header_bytes,
        )

    def uvicorn_options(self, http: str = "auto") -> dict[str, Any]:
        """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config``."""
        return {
            "http": guarded_protocol(self.header_timeout, http),
            "timeout_keep_alive": self.keep_alive_timeout,
            "limit_concurrency": self.max_connections,
            "h11_max_incomplete_event_size": self.max_header_bytes,
        }


class _HeaderDeadline:
    """A timer that closes the connection unless the request head completes in time."""

    header_timeout: float = 10.0
    _header_timer: asyncio.TimerHandle | None = None
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._header_timed_out)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]  # the uvicorn protocol after this mixin
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)  # type: ignore[misc]

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            logger.info("closing a connection whose request head took over %.0fs", self.header_timeout)
            self.transport.close()


def _httptools_protocol(timeout: float) -> type[asyncio.Protocol]:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class GuardedHttpToolsProtocol(_HeaderDeadline, HttpToolsProtocol):
        header_timeout = timeout

        def on_headers_complete(self) -> None:
            self._disarm_header_timer()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.timeout_keep_alive_task is not None and not self.transport.is_closing():
                self._arm_header_timer()  # idle, waiting for the next request head

    return GuardedHttpToolsProtocol


def _h11_protocol(timeout: float) -> type[asyncio.Protocol]:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(_HeaderDeadline, H11Protocol):
        header_timeout = timeout

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is h11.IDLE:  # no complete request head yet
                if not self.transport.is_closing():
                    self._arm_header_timer()
            else:
                self._disarm_header_timer()

    return GuardedH11Protocol


@functools.cache
def guarded_protocol(header_timeout: float, http: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class with a header timeout: h11 when asked for, else httptools (a
    pinned dependency: a missing one is an install bug and fails here, loudly)."""
    if http == "h11":
        return _h11_protocol(header_timeout)
    return _httptools_protocol(header_timeout)
