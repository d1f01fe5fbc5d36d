"""Entry point of `xp assign serve`: settings → keys, payload source, sink, app → uvicorn."""

from __future__ import annotations

import errno
import functools
import gc
import logging
import signal
import socket
from typing import Any

from assignment.service.admin_key import LOCAL_ADMIN_NAME, ensure_local_admin_key
from assignment.service.app import Service, build_app
from assignment.service.auth import KeyRing, check_bind
from assignment.service.exposures import KafkaSink
from assignment.service.rate_limit import ClientRateLimit
from assignment.service.sources import PayloadSource, RegistryPayloadSource, StaticPayloadSource
from xpcore.config import ServiceSettings
from xpcore.errors import ConfigError
from xpcore.http_server import HttpLimits

__all__ = ["build_service", "run_service"]

logger = logging.getLogger(__name__)


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            reason = "is in use" if error.errno == errno.EADDRINUSE else f"cannot be bound ({error.strerror})"
            raise ConfigError(f"{host}:{port} {reason}; pick another with --port") from None


def build_service(settings: ServiceSettings) -> Service:
    """The service object for these settings (nothing started yet)."""
    configured = KeyRing.from_secrets(settings.service_client_keys, settings.service_admin_keys, named=True)
    check_bind(settings.service_host, configured)
    keys = configured
    if not configured.admin_keys:  # admin routes always need a key: the generated local one
        secret, path, created = ensure_local_admin_key(settings.home)
        keys = configured.with_admin(secret, LOCAL_ADMIN_NAME)
        logger.info(
            "admin key (XP_SERVICE_ADMIN_KEYS is empty): %s %s (send it as X-XP-Key for /v1/overrides)",
            "generated" if created else "read from",
            path,
        )
    source: PayloadSource
    publisher: Any = None
    if settings.service_features_file is not None:
        source = StaticPayloadSource.from_file(settings.service_features_file)
    else:
        from assignment.registry_topic import publish_changes

        source = RegistryPayloadSource(settings, start_timeout=settings.service_registry_timeout)
        publisher = functools.partial(publish_changes, settings)
    from xpcore import __version__

    return Service(
        source=source,
        sink=KafkaSink(settings),
        keys=keys,
        open_clients=configured.open,
        max_record_bytes=settings.max_record_bytes,
        max_abs_metric_value=settings.max_abs_metric_value,
        dedup_seconds=settings.exposure_dedup_seconds,
        dedup_max_entries=settings.exposure_dedup_max_entries,
        exposure_attributes=tuple(a.strip() for a in settings.exposure_attributes.split(",") if a.strip()),
        exposures_enabled=settings.exposures_enabled,
        max_batch_units=settings.service_max_batch_units,
        max_events=settings.service_max_events,
        publisher=publisher,
        version=__version__,
        max_body_bytes=settings.service_max_body_bytes,
        max_streams=settings.service_max_streams,
        stream_heartbeat_seconds=settings.service_stream_heartbeat,
        rate_limit=ClientRateLimit(
            settings.service_client_rate_limit,
            settings.service_client_rate_burst or settings.service_client_rate_limit,
        )
        if settings.service_client_rate_limit > 0
        else None,
    )


def run_service(settings: ServiceSettings) -> None:
    """Start the source and sink, serve until interrupted, then flush/spool and stop."""
    import uvicorn

    from xpcore.logs import configure_logging

    configure_logging(level="INFO" if settings.log_level.upper() == "WARNING" else settings.log_level)
    service = build_service(settings)
    _check_port(settings.service_host, settings.service_port)
    service.sink.start()
    try:
        service.source.start()
        state = service.source.current()
        logger.info(
            "serving host=%s port=%d source=%s payload_version=%d features=%d keys=%r",
            settings.service_host,
            settings.service_port,
            service.source.name,
            state.version,
            len(state.compiled.features),
            service.keys,
        )
        app = build_app(service, manage_lifecycle=False)
        # Everything built so far (compiled payload, modules, app) lives as long as the process:
        # move it out of the cyclic collector's generations, so that the collections requests
        # trigger do not walk it (a full collection otherwise costs milliseconds: p99 latency).
        gc.collect()
        gc.freeze()
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the handlers
        # that were installed before it: make those record it, so the sink still flushes and spools
        # below instead of the process dying with records in librdkafka's queue.
        received: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda number, _frame: received.append(number))
        uvicorn.run(
            app,
            host=settings.service_host,
            port=settings.service_port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            server_header=False,
            # the service never reads the client's address (keys authenticate), so it skips
            # uvicorn's X-Forwarded-For middleware: one ASGI layer less per request
            proxy_headers=False,
            **HttpLimits.from_settings(settings).uvicorn_options(),
        )
    finally:
        service.sink.stop()
        service.source.stop()
        logger.info("stopped: %s", service.sink.stats())
