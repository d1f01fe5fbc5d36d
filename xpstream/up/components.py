"""The parts `xp up` runs: uvicorn servers in one event loop, the stream worker in a supervised thread.

Every component reports to :class:`~xpstream.up.component_health.Health` and logs one line when it starts
(with its URL) and one when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import uvicorn

from xpcore.errors import ConfigError
from xpcore.http_server import HttpLimits
from xpstream.up.component_health import Health

if TYPE_CHECKING:
    from xpcore.config import StreamSettings

__all__ = ["QuietServer", "StreamSupervisor", "check_port", "serve_app", "url_of"]

logger = logging.getLogger(__name__)


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone: `xp up` handles them once for every component."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def url_of(host: str, port: int) -> str:
    """The URL to reach ``host:port`` (a wildcard bind is reached on loopback)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)  # nosec B104
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def check_port(host: str, port: int, setting: str) -> None:
    """Fail before anything starts when ``host:port`` cannot be bound (one line naming the setting)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            reason = "is in use" if error.errno == errno.EADDRINUSE else f"cannot be bound ({error.strerror})"
            raise ConfigError(
                f"{host}:{port} ({setting}) {reason}: stop what uses it or pick another"
            ) from None


async def serve_app(
    name: str,
    app: Any,
    host: str,
    port: int,
    health: Health,
    stop: asyncio.Event,
    *,
    before_stop: Callable[[], Awaitable[None]] | None = None,
    limits: HttpLimits | None = None,
) -> None:
    """Serve ``app`` until ``stop`` is set (then, after ``before_stop``, stop accepting and drain).
    ``limits``: header timeout, keep-alive and connection cap (:mod:`xpcore.http_server`)."""
    url = url_of(host, port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="auto",
        timeout_graceful_shutdown=5,
        server_header=False,
        **(limits or HttpLimits()).uvicorn_options(),
    )
    server = QuietServer(config)
    task = asyncio.create_task(server.serve(), name=f"xp-{name}")
    while not server.started and not task.done():
        await asyncio.sleep(0.05)
    if task.done():
        error = task.exception() if not task.cancelled() else None
        detail = f"failed to start: {error!r}" if error else "failed to start (see the log above)"
        health.set(name, "failing", detail, url=url)
        logger.error("%s: %s", name, detail)
        return
    health.set(name, "ok", url=url)
    logger.info("%s: serving at %s", name, url)
    stop_waiter = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
    stop_waiter.cancel()
    if not task.done():
        if before_stop is not None:
            await before_stop()
        health.set(name, "stopping")
        server.should_exit = True
    try:
        await task
    except BaseException as error:  # SystemExit from uvicorn, or a crash of the server
        health.set(name, "failing", f"stopped: {error!r}")
        logger.warning("%s: server stopped with %r", name, error)
        return
    if not stop.is_set():
        health.set(name, "failing", "the server stopped on its own")
        logger.warning("%s: the server stopped on its own", name)
        return
    logger.info("%s: stopped", name)


class StreamSupervisor:
    """Runs ``run_worker`` in a thread; restarts it with back-off when it fails; stops it on request."""

    name = "stream"

    def __init__(self, settings: StreamSettings, health: Health, *, restart_max_seconds: float) -> None:
        self.settings = settings
        self.health = health
        self.restart_max_seconds = restart_max_seconds
        self.stop_event = threading.Event()
        self.restarts = 0
        self._thread = threading.Thread(target=self._loop, name="xp-stream-worker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> bool:
        """Ask the worker to stop after its current batch; True when it stopped within ``timeout``."""
        self.stop_event.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("stream: the worker did not stop within %.0fs: left behind", timeout)
            return False
        return True

    def _loop(self) -> None:
        from pipelines.worker import run_worker

        delay = 1.0
        detail = f"group {self.settings.stream_group_id} on {self.settings.kafka_bootstrap}"
        while not self.stop_event.is_set():
            self.health.set(self.name, "starting", f"restoring state; {detail}", restarts=self.restarts)
            logger.info("stream: worker starting (%s)", detail)

            def ready(detail: str = detail) -> None:
                self.health.set(self.name, "ok", detail, restarts=self.restarts)
                logger.info("stream: worker ready (state restored, consuming)")

            try:
                report = run_worker(self.settings, stop_event=self.stop_event, on_ready=ready)
            except Exception as error:
                self.restarts += 1
                self.health.set(self.name, "failing", f"{error}", restarts=self.restarts)
                logger.warning("stream: worker failed: %s; restarting in %.0fs", error, delay)
                if self.stop_event.wait(delay):
                    break
                delay = min(delay * 2, self.restart_max_seconds)
                continue
            logger.info(
                "stream: worker stopped after %d records (%d exposures, %d events, %d dead letters)",
                report.consumed,
                report.exposures,
                report.events,
                report.dead_letters,
            )
            break
        self.health.set(self.name, "stopping", "stopped")
