"""What is loaded and may be committed: the offsets of loaded batches until a commit takes them.

Offsets are committed only after the batch they cover is in the warehouse. A commit can fail (the
broker restarting, the group coordinator moving): the offsets stay pending and go out with the next
commit, or while idle; offsets of revoked partitions are dropped (their records are loaded, so a
re-delivery to the next owner is deduplicated). When commits keep failing for ``rejoin_after``
seconds, :meth:`OffsetTracker.commit_failed` tells the runner to re-create its consumer (it rejoins
the group and resumes from the last commit). Pure: no Kafka client here; offsets are
``(topic, partition) → next offset to consume``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

__all__ = ["OffsetTracker"]


class OffsetTracker:
    """The offsets of loaded batches whose commit has not gone through yet."""

    def __init__(self, *, rejoin_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rejoin_after = rejoin_after
        self._clock = clock
        self._pending: dict[tuple[str, int], int] = {}
        self._failing_since: float | None = None

    @property
    def pending(self) -> Mapping[tuple[str, int], int]:
        """``(topic, partition) → next offset`` loaded and not committed yet."""
        return self._pending

    def __bool__(self) -> bool:
        return bool(self._pending)

    def loaded(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """A batch is in the warehouse: its offsets may be committed (never moving one backwards)."""
        pending = self._pending
        for key, offset in offsets.items():
            pending[key] = max(offset, pending.get(key, offset))

    def revoked(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Partitions taken away by a rebalance: their pending offsets are not ours to commit any more."""
        for key in partitions:
            self._pending.pop(key, None)

    def committed(self) -> None:
        """The pending offsets are committed (or moot after a rebalance)."""
        self._pending.clear()
        self._failing_since = None

    def commit_failed(self) -> bool:
        """A commit did not go through; True when commits have failed for longer than ``rejoin_after``:
        the runner then re-creates its consumer, and the pending offsets are dropped (what it re-reads of
        the loaded batches is deduplicated)."""
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
            return False
        if now - self._failing_since <= self.rejoin_after:
            return False
        self._failing_since = None
        self._pending.clear()
        return True
