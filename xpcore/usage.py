"""Platform usage counts (issue #20): requests and exposures per client key, page views per dashboard
token, per UTC day — kept in memory by the process that serves them and flushed to ``xp.usage_daily``.

No personal data and no secret: a key or token is named by its **key id**, ``key-`` + the first 8 hex
digits of its SHA-256 (enough to tell a team's keys apart; a key cannot be recovered from it). Requests
without a key are ``none``; with a key that is not configured, ``unknown`` — so the labels are bounded by
the configured keys, whatever callers send. Decision 0092.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from xpcore.warehouse import Warehouse

__all__ = ["NO_KEY", "UNKNOWN_KEY", "KeyIds", "UsageCounts", "flush_periodically", "flush_usage", "key_id"]

logger = logging.getLogger(__name__)

NO_KEY: Final = "none"
UNKNOWN_KEY: Final = "unknown"


def key_id(secret: str) -> str:
    """The name usage gives a key or token: ``key-`` + the first 8 hex digits of its SHA-256."""
    return "key-" + hashlib.sha256(secret.encode()).hexdigest()[:8]


class KeyIds:
    """Presented key → its key id when it is one of ``secrets``, else ``unknown`` (``none`` without one).
    Looked up by the SHA-256 of the presented key, never by the key itself."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._ids = {hashlib.sha256(s.encode()).hexdigest(): key_id(s) for s in secrets if s}

    def __call__(self, presented: str | None) -> str:
        if not presented:
            return NO_KEY
        return self._ids.get(hashlib.sha256(presented.encode()).hexdigest(), UNKNOWN_KEY)


class UsageCounts:
    """(UTC day, kind, subject) → count, thread-safe; :meth:`drain` hands them over and starts afresh."""

    def __init__(self, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[tuple[date, str, str]] = Counter()

    def add(self, kind: str, subject: str, amount: int = 1) -> None:
        if amount:
            day = self._clock().astimezone(UTC).date()
            with self._lock:
                self._counts[(day, kind, subject)] += amount

    def drain(self) -> Counter[tuple[date, str, str]]:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return counts

    def restore(self, counts: Counter[tuple[date, str, str]]) -> None:
        """Put drained counts back (their flush failed: the next one retries them)."""
        with self._lock:
            self._counts.update(counts)


def flush_usage(warehouse: Warehouse, counts: UsageCounts) -> int:
    """Insert the counts gathered so far into ``xp.usage_daily`` (summed per day, kind and subject when
    read); on failure they are kept for the next flush. Returns the rows written."""
    import pyarrow as pa

    drained = counts.drain()
    if not drained:
        return 0
    keys = list(drained)
    table = pa.table(
        {
            "day": pa.array([k[0] for k in keys], pa.date32()),
            "kind": pa.array([k[1] for k in keys], pa.string()),
            "subject": pa.array([k[2] for k in keys], pa.string()),
            "count": pa.array([drained[k] for k in keys], pa.uint64()),
        }
    )
    try:
        warehouse.insert_arrow("xp.usage_daily", table)
    except Exception:
        counts.restore(drained)
        raise
    return len(keys)


def flush_periodically(
    warehouse: Warehouse, counts: UsageCounts, stop: threading.Event, every_seconds: float = 60.0
) -> None:
    """Flush every ``every_seconds`` until ``stop`` is set, then once more (a thread's target)."""
    while not stop.wait(every_seconds):
        _flush_logged(warehouse, counts)
    _flush_logged(warehouse, counts)


def _flush_logged(warehouse: Warehouse, counts: UsageCounts) -> None:
    try:
        flush_usage(warehouse, counts)
    except Exception as error:  # kept for the next flush; usage never takes a page or a request down
        logger.warning("usage counts not flushed (kept for the next try): %s", error)
