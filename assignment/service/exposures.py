"""Exposures: built from assignments, deduplicated in a window, produced to Kafka without blocking.

- :func:`build_exposure` / :func:`exposure_id`: pure. The id is a hash of unit × experiment ×
  variation × dedup-window index, so the same exposure re-sent (spool replay, a restart or another
  replica in the same window) carries the same id and the stream's deduplication absorbs it.
- :class:`DedupWindow`: a bounded TTL set (LRU eviction) of unit × experiment × variation.
- :class:`RecordSink`: where records go (``submit(topic, key, value)``, never blocks).
- :class:`KafkaSink` (:mod:`assignment.service.sink`, re-exported here): the write-ahead spool in
  front of a non-blocking Kafka producer.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from assignment.hashing import hash_string
from assignment.results import FeatureResult
from assignment.service.sink import EXPOSURE_LINGER_MS, KafkaSink
from schemas import Exposure, ExposureSource

__all__ = [
    "EXPOSURE_LINGER_MS",
    "DedupWindow",
    "KafkaSink",
    "MemorySink",
    "RecordSink",
    "build_exposure",
    "exposure_id",
]

logger = logging.getLogger(__name__)


def exposure_id(experiment_key: str, unit_id: str, variation_id: int, window_index: int) -> str:
    """Stable id of an exposure: same unit × experiment × variation in the same window → same id."""
    text = f"{experiment_key}\x1f{unit_id}\x1f{variation_id}\x1f{window_index}"
    return "svc-" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def build_exposure(
    result: FeatureResult,
    feature_key: str,
    *,
    attributes: Mapping[str, Any],
    copied_attributes: tuple[str, ...],
    overridden: bool,
    now: datetime,
    window_seconds: float,
    user_agent: str | None = None,
) -> Exposure | None:
    """The exposure of one in-experiment assignment (None when the unit is not in an experiment)."""
    if not result.in_experiment or result.variation_id is None or not result.experiment_key:
        return None
    unit_id = hash_string(result.hash_value)
    if not unit_id:
        return None
    window = int(now.timestamp() // window_seconds) if window_seconds > 0 else int(now.timestamp() * 1000)
    copied = {}
    for name in copied_attributes:
        value = attributes.get(name)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            copied[name] = str(value)[:256]
    return Exposure(
        exposure_id=exposure_id(result.experiment_key, unit_id, result.variation_id, window),
        unit_id=unit_id[:256],
        hash_attribute=result.hash_attribute or "id",
        experiment_key=result.experiment_key,
        variation_id=result.variation_id,
        variation_key=result.variation_key or str(result.variation_id),
        feature_key=feature_key,
        bucket=result.bucket,
        overridden=overridden,
        source=ExposureSource.SERVICE,
        attributes=copied,
        user_agent=user_agent[:512] if user_agent else None,
        exposed_at=now,
        sent_at=now,
    )


class DedupWindow:
    """Remembers unit × experiment × variation for ``seconds``, at most ``max_entries`` keys.

    ``first_seen(key)`` is True the first time a key is seen in its window. Two generations of
    sharded dicts: a key lives in the current generation; when a window has passed (or the current
    one holds half of ``max_entries``) the current becomes the previous and the old previous is
    dropped (its keys have expired, or are the oldest when memory is the limit). Sharding keeps every
    dict small, so no insert ever pays for rehashing a huge table (one big dict stalls a request
    for tens of milliseconds when it grows past ~100k keys); retired shards are cleared one per call.
    Not thread-safe: the service calls it from the event loop thread only."""

    SHARDS = 64

    def __init__(self, seconds: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._clock = clock
        self._generation_size = max(1, max_entries // 2)
        self._current: list[dict[tuple[str, str, int], float]] = [{} for _ in range(self.SHARDS)]
        self._previous: list[dict[tuple[str, str, int], float]] = [{} for _ in range(self.SHARDS)]
        self._current_count = 0
        self._previous_count = 0
        self._started = clock()
        self._retired: list[dict[tuple[str, str, int], float]] = []

    def __len__(self) -> int:
        return self._current_count + self._previous_count

    def first_seen(self, key: tuple[str, str, int]) -> bool:
        if self.seconds <= 0:
            return True
        now = self._clock()
        if self._retired:
            self._retired.pop().clear()
        if now - self._started >= self.seconds or self._current_count >= self._generation_size:
            self._rotate(now)
        shard = hash(key) % self.SHARDS
        expiry = self._current[shard].get(key)
        if expiry is None:
            expiry = self._previous[shard].get(key)
        if expiry is not None and expiry > now:
            return False
        self._current[shard][key] = now + self.seconds
        self._current_count += 1
        return True

    def _rotate(self, now: float) -> None:
        if now - self._started >= 2 * self.seconds:
            # idle for two windows: everything has expired
            self._retired.extend(self._current)
            self._current = [{} for _ in range(self.SHARDS)]
            self._current_count = 0
        self._retired.extend(self._previous)
        self._previous, self._previous_count = self._current, self._current_count
        self._current, self._current_count = [{} for _ in range(self.SHARDS)], 0
        self._started = now


class RecordSink(Protocol):
    """Where the service sends records; ``submit`` never blocks on the network."""

    def submit(self, topic: str, key: str | None, value: bytes) -> None: ...

    def submit_many(self, records: list[tuple[str, str | None, bytes]]) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class MemorySink:
    """Keeps submitted records in a list (tests, `--no-kafka` runs)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str | None, bytes]] = []

    def submit(self, topic: str, key: str | None, value: bytes) -> None:
        self.records.append((topic, key, value))

    def submit_many(self, records: list[tuple[str, str | None, bytes]]) -> None:
        self.records.extend(records)

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {"kind": "memory", "records": len(self.records)}
