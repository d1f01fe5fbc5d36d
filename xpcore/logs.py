"""Logging set-up, done once by each entry point. Modules use ``logging.getLogger(__name__)``."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


QUIET_LOGGERS = ("urllib3.connectionpool", "clickhouse_connect.driver")
"""Libraries whose warnings repeat an error xpstream reports itself."""


def configure_logging(*, debug: bool = False, level: str | None = None) -> None:
    """Send logs to stderr as ``time level logger message key=value…``."""
    chosen = logging.DEBUG if debug else getattr(logging, (level or "WARNING").upper(), logging.WARNING)
    root = logging.getLogger()
    if not any(getattr(h, "_xp", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler._xp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(chosen)
    # HTTP client chatter about a retry or a refused connection: the error that follows says it in one
    # line (xpcore.warehouse.clickhouse); --debug shows it all.
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.ERROR)
