"""Shared wording for contract commands whose issue has not landed yet."""

from __future__ import annotations

from xpcore.errors import NotYetAvailableError

__all__ = ["pending"]


def pending(command: str, issue: int) -> NotYetAvailableError:
    """The error a not-yet-implemented contract command raises (exit code 3)."""
    return NotYetAvailableError(f"`xp {command}` is not available yet: it lands with issue #{issue}")
