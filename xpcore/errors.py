"""The one exception tree of xpstream.

::

    XpError                      root: every error we raise on purpose
    ├── TransientError           worth retrying: broker or warehouse unreachable, timeouts
    ├── TerminalError            never retry: bad input, invalid config; records go to dead letters
    │   ├── ConfigError          a setting is missing or invalid
    │   ├── ValidationError      a record or file does not meet its contract
    │   └── ReadOnlyError        a write was attempted through a read-only path
    ├── StackError               the local stack cannot start/stop (port in use, no Java, stale pid)
    ├── StoreBusyError           the embedded chDB store is owned by another running process
    └── NotYetAvailableError     a contract command whose issue has not landed yet

The CLI prints ``str(error)`` as one line on stderr and exits with ``error.exit_code``.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "NotYetAvailableError",
    "ReadOnlyError",
    "StackError",
    "StoreBusyError",
    "TerminalError",
    "TransientError",
    "ValidationError",
    "XpError",
]


class XpError(Exception):
    """Root of every error xpstream raises on purpose."""

    exit_code = 1


class TransientError(XpError):
    """A failure that may succeed on retry (network, timeouts, a busy server)."""


class TerminalError(XpError):
    """A failure that will fail again the same way; never retried."""


class ConfigError(TerminalError):
    """A setting is missing or invalid."""

    exit_code = 2


class ValidationError(TerminalError):
    """A record, file or argument does not meet its contract."""

    exit_code = 2


class ReadOnlyError(TerminalError):
    """A statement that writes was sent through a read-only path."""

    exit_code = 2


class StackError(XpError):
    """The local stack cannot be started, stopped or inspected."""


class StoreBusyError(XpError):
    """The embedded chDB store is owned by another running xp process."""


class NotYetAvailableError(XpError):
    """A command of the contract whose implementation has not landed yet."""

    exit_code = 3
