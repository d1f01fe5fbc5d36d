"""Logging set-up, done once by each entry point. Modules use ``logging.getLogger(__name__)``."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


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
