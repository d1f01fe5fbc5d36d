"""Entry point of `xp dashboard serve`: settings → bind check → warehouse → app → uvicorn."""

from __future__ import annotations

import errno
import logging
import socket

from dashboards.auth import check_dashboard_bind, dashboard_keys
from dashboards.settings import DashboardSettings
from xpcore.errors import ConfigError

__all__ = ["check_port", "dashboard_url", "run_dashboard"]

logger = logging.getLogger(__name__)


def check_port(host: str, port: int) -> None:
    """ConfigError (one line) when ``host:port`` cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            reason = "is in use" if error.errno == errno.EADDRINUSE else f"cannot be bound ({error.strerror})"
            raise ConfigError(f"{host}:{port} {reason}; pick another with --port") from None


def dashboard_url(settings: DashboardSettings) -> str:
    """The URL to open (loopback name for a wildcard bind)."""
    host = settings.dashboard_host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # nosec B104
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{settings.dashboard_port}/"


def run_dashboard(settings: DashboardSettings) -> None:
    """Serve the dashboards until interrupted; the warehouse is opened first (clear errors), closed last."""
    import uvicorn

    from dashboards.app import create_app
    from xpcore.http_server import HttpLimits
    from xpcore.logs import configure_logging
    from xpcore.warehouse import open_warehouse

    configure_logging(level="INFO" if settings.log_level.upper() == "WARNING" else settings.log_level)
    check_dashboard_bind(settings.dashboard_host, dashboard_keys(settings))
    check_port(settings.dashboard_host, settings.dashboard_port)
    warehouse = open_warehouse(settings)
    try:
        app = create_app(settings, warehouse)
        logger.info("dashboard on %s (warehouse %s)", dashboard_url(settings), warehouse.location)
        uvicorn.run(
            app,
            host=settings.dashboard_host,
            port=settings.dashboard_port,
            log_level="warning",
            access_log=False,
            lifespan="on",
            **HttpLimits.from_settings(settings).uvicorn_options(),
        )
    finally:
        warehouse.close()
