"""The registry as the dashboards see it: folded from the ``xp.registry`` table (the audit history).

The stream worker copies every registry change into ``xp.registry`` (pipelines/registry_history.py), so
the dashboards need no Kafka connection to know the experiments: the same records `xp results` folds from
the topic, folded the same way (:meth:`assignment.registry.RegistrySnapshot.from_records`), give the
same :class:`~assignment.registry.ExperimentSpec` (docs/decisions/0012-dashboard-data-sources.md).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from assignment.registry import RegistrySnapshot
from schemas import RegistryRecord

__all__ = ["CachedRegistry", "records_from_rows"]


def records_from_rows(rows: list[dict[str, Any]]) -> list[RegistryRecord]:
    """``xp.registry`` rows (``registry_records.sql``) as records; rows that no longer decode are skipped."""
    records = []
    for row in rows:
        document = dict(row)
        payload = document.get("payload")
        document["payload"] = json.loads(payload) if payload else None
        try:
            records.append(msgspec.convert(document, RegistryRecord, strict=False))
        except (msgspec.ValidationError, ValueError, TypeError):
            continue
    return records


class CachedRegistry:
    """The folded registry, re-read at most every ``ttl`` seconds (it changes rarely)."""

    def __init__(self, load_rows: Callable[[], list[dict[str, Any]]], ttl: float = 2.0) -> None:
        self._load_rows = load_rows
        self._ttl = ttl
        self._lock = threading.Lock()
        self._snapshot: RegistrySnapshot | None = None
        self._loaded_at = 0.0

    def snapshot(self) -> RegistrySnapshot:
        """The registry now (cached for ``ttl`` seconds)."""
        with self._lock:
            now = time.monotonic()
            if self._snapshot is None or now - self._loaded_at >= self._ttl:
                self._snapshot = RegistrySnapshot.from_records(records_from_rows(self._load_rows()))
                self._loaded_at = now
            return self._snapshot

    def invalidate(self) -> None:
        """Re-read the registry on the next call."""
        with self._lock:
            self._snapshot = None
