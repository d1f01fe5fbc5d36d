"""librdkafka's log lines through Python logging, with repeats rate-limited.

During a broker outage librdkafka reports every failed reconnect (224 identical "Connect to … failed"
lines in 10 s were seen in a service log). :class:`RateLimitedLog` passes the first line of each
distinct message, then stays quiet about the same message for ``window`` seconds and, at the next
repeat after that, logs it once more with the number suppressed meanwhile. Messages are told apart
after numbers are blanked (``after 0ms``, ``rdkafka#producer-3``), so a retry loop is one message.

Pure apart from the clock, which tests hand in.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "LIBRDKAFKA_LOGGER",
    "RateLimitedLog",
    "authentication_failure",
    "error_callback",
    "explain_failure",
    "rate_limited",
]

LIBRDKAFKA_LOGGER = logging.getLogger("xpcore.kafka.librdkafka")
"""Where librdkafka's log lines go unless a client names another logger."""

_NUMBERS = re.compile(r"\d+")
_MAX_KEYS = 1000


class RateLimitedLog:
    """A ``logger``-like object for confluent-kafka (it calls ``.log(level, fmt, *args)``)."""

    def __init__(
        self, logger: logging.Logger, window: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.logger = logger
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[float, int]] = {}
        """Message key → (when it was last logged, repeats suppressed since)."""

    def log(self, level: int, msg: str, *args: Any) -> None:
        if not self.logger.isEnabledFor(level):
            return
        text = msg % args if args else msg
        key = f"{level}:{_NUMBERS.sub('#', text)}"
        now = self._clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last[0] < self.window:
                self._seen[key] = (last[0], last[1] + 1)
                return
            suppressed = last[1] if last is not None else 0
            if len(self._seen) >= _MAX_KEYS:
                self._seen.clear()
            self._seen[key] = (now, 0)
        if suppressed:
            text = f"{text} (repeated {suppressed} more times in the last {self.window:g}s)"
        self.logger.log(level, "%s", text)

    # confluent-kafka only calls ``log``; these keep the object usable where a Logger is expected
    def isEnabledFor(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)

    @property
    def name(self) -> str:
        return self.logger.name


def rate_limited(logger: Any = None, window: float = 30.0) -> Any:
    """``logger`` (default :data:`LIBRDKAFKA_LOGGER`) wrapped in the process's :class:`RateLimitedLog`."""
    if isinstance(logger, RateLimitedLog):
        return logger
    if logger is None:
        logger = LIBRDKAFKA_LOGGER
    if not isinstance(logger, logging.Logger):
        return logger  # something custom: leave it alone
    with _SHARED_LOCK:  # one limiter per logger: every client of the process shares its counts
        shared = _SHARED.get(logger.name)
        if shared is None or shared.logger is not logger:
            shared = _SHARED[logger.name] = RateLimitedLog(logger, window)
        return shared


_SHARED: dict[str, RateLimitedLog] = {}
_SHARED_LOCK = threading.Lock()


_AUTH_FAILURES: dict[str, str] = {}
"""sasl.username (or "") → the last SASL authentication error a client of this process saw."""


def error_callback(
    username: str | None, chained: Callable[[Any], None] | None = None
) -> Callable[[Any], None]:
    """A librdkafka ``error_cb`` that remembers SASL authentication failures, so a command can say
    "wrong credentials" instead of "cannot reach Kafka" (served by poll/consume/flush/close)."""

    def on_error(error: Any) -> None:
        from confluent_kafka import KafkaError

        if error.code() == KafkaError._AUTHENTICATION:
            _AUTH_FAILURES[username or ""] = error.str()  # librdkafka's own log line says it too
        if chained is not None:
            chained(error)

    return on_error


def authentication_failure(username: str | None) -> str | None:
    """The last SASL authentication error seen for ``username`` in this process, if any."""
    return _AUTH_FAILURES.get(username or "")


def explain_failure(config: dict[str, Any], detail: object) -> str | None:
    """One line for a failure to talk to Kafka when the cause is the client's credentials; else None."""
    username = config.get("sasl.username")
    failure = authentication_failure(username)
    if failure is None:
        return None
    return (
        f"Kafka at {config.get('bootstrap.servers')} refused the credentials of {username!r} ({failure}):"
        " check XP_KAFKA_SASL_USERNAME, XP_KAFKA_SASL_PASSWORD and XP_KAFKA_SASL_MECHANISM"
    )
