"""Server-sent events: the registry changes pushed to connected SDKs (``GET /sub/{client_key}``).

- :class:`ChangeFeed`: wakes every open stream when the payload source compiles a new version. The
  source calls :meth:`ChangeFeed.notify` from whatever thread compiled it (the registry follower's);
  the feed hands the wake-up to the event loop, where the streams wait.
- :func:`sse_event`: one event in the ``text/event-stream`` format (pure).
- :func:`change_events`: what one change sends to a stream (pure): GrowthBook's ``features-updated``
  (or ``features`` with the payload, for a stream opened with ``?payload=inline``) and OFREP's
  ``refetchEvaluation`` message. Docs: docs/clients.md; decision 0059.
- :func:`event_stream`: the body of one stream: a ``retry`` hint, then the change events, and a
  comment line every ``heartbeat`` seconds (keeps proxies from closing an idle stream, finds
  clients that went away, and notices a start/stop schedule boundary within one heartbeat).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from assignment.service.sources import ServingState

__all__ = ["ChangeFeed", "change_events", "event_stream", "parse_last_event_id", "sse_event"]

_encode = msgspec.json.Encoder().encode


def sse_event(data: bytes | str, event: str | None = None, event_id: str | None = None) -> bytes:
    """One server-sent event; ``data`` must not hold a newline (JSON from msgspec never does)."""
    text = data.decode() if isinstance(data, bytes) else data
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in text.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def change_events(state: ServingState, *, inline_payload: bool) -> bytes:
    """The events one new payload version sends to a stream.

    GrowthBook SDKs listen for ``features`` (the payload itself, as ``GET /api/features`` serves it)
    and ``features-updated`` (a signal: re-fetch, ``GET /api/features`` or ``POST /api/eval``);
    OpenFeature OFREP providers for an unnamed event with ``{"type": "refetchEvaluation"}``. Each
    client ignores the events of the other."""
    event_id = str(state.version)
    last_modified = int(state.loaded_at.timestamp())
    if inline_payload:
        growthbook = sse_event(_encode(state.sdk_payload()), "features", event_id)
    else:
        growthbook = sse_event(b"{}", "features-updated", event_id)
    ofrep = sse_event(
        _encode(
            {"type": "refetchEvaluation", "etag": f'"xp-{state.version}"', "lastModified": last_modified}
        ),
        None,
        event_id,
    )
    return growthbook + ofrep


class ChangeFeed:
    """Wakes the streams waiting on the event loop when a new payload version is compiled.

    :meth:`notify` is thread-safe (the registry follower's thread calls it); :meth:`changed` is the
    awaitable the streams wait on. ``open_streams`` counts the streams being served (event loop
    thread only); the handler refuses a new one when :attr:`full`."""

    def __init__(self, max_streams: int) -> None:
        self.max_streams = max_streams
        self.open_streams = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    @property
    def full(self) -> bool:
        return self.open_streams >= self.max_streams

    def _current_event(self) -> asyncio.Event:
        """The event of the running loop (created on first use, where the loop is known; anew if the
        app now runs on another loop, as test clients do)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._event is None or self._loop is not loop:
                self._loop = loop
                self._event = asyncio.Event()
            return self._event

    def notify(self, state: ServingState | None = None) -> None:
        """A new version exists: wake every waiting stream (callable from any thread)."""
        with self._lock:
            loop = self._loop
        if loop is None or loop.is_closed():
            return  # nobody has ever waited: nothing to wake
        try:
            loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # pragma: no cover - the loop closed between the check and the call
            return

    def _wake(self) -> None:
        with self._lock:
            event, self._event = self._event, asyncio.Event()
        if event is not None:
            event.set()

    async def changed(self, timeout: float) -> bool:
        """Wait until the next :meth:`notify` or ``timeout`` seconds; True when notified."""
        event = self._current_event()
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            return False
        return True


async def event_stream(
    feed: ChangeFeed,
    current: Callable[[], ServingState],
    *,
    inline_payload: bool,
    heartbeat: float,
    last_version: int | None = None,
) -> AsyncIterator[bytes]:
    """The body of one ``/sub`` stream; ends only when the client goes away (or the server stops).

    ``last_version``: the version the client already has (``Last-Event-ID`` on a reconnect); when
    the served version differs, the stream starts with that change so nothing is missed."""
    feed.open_streams += 1
    try:
        yield f"retry: {int(heartbeat * 1000)}\n\n".encode()
        version = current().version if last_version is None else last_version
        while True:
            state = current()  # also recompiles at a schedule boundary
            if state.version != version:
                version = state.version
                yield change_events(state, inline_payload=inline_payload)
                continue
            if not await feed.changed(heartbeat):
                yield b": keep-alive\n\n"
    finally:
        feed.open_streams -= 1


def parse_last_event_id(value: Any) -> int | None:
    """The version a reconnecting client last saw (``Last-Event-ID``), or None when absent/garbled."""
    if not isinstance(value, str) or not value.isdigit() or len(value) > 18:
        return None
    return int(value)
