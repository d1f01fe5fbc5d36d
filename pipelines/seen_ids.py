"""The deduplication state: record ids seen recently, as 64-bit hashes in time slices (compact, bounded).

Each id is kept as ``hash(id)`` (CPython's 64-bit SipHash of the string; randomised per process, which
is fine: the state is rebuilt from the warehouse on every start, in the process that uses it). Ids
arrive in an *open* slice (one sorted ``int64`` array, each commit's sorted hashes merged into it: a
linear merge of two runs); a slice is *sealed* once it spans ``retention / SLICES`` of time or holds
``max_ids / SLICES`` ids, and is then stored as a sorted ``int64`` run in a ring reserved (and touched)
up front: ``8 × (max_ids + 2 × max_ids / SLICES)`` bytes. Sealed slices are dropped
**whole**, oldest first, once their newest id is older than ``retention`` or when the ids kept exceed
``max_ids``. So:

- an id is remembered for at least ``retention`` after it was committed (unless the cap pushes it
  out first), at most ``retention + retention / SLICES``;
- at most ``max_ids`` ids are kept; when the cap binds, between ``max_ids − max_ids / SLICES`` and
  ``max_ids`` of the newest are (the oldest slice goes first, not one id at a time);
- memory is the ring (fixed from the start, 8 B per id) plus the open slice (an array of up to
  ``max_ids / SLICES`` hashes, 8 B each, emptied at every seal): it does not grow with the retention;
- a different id with the same 64-bit hash as one kept is taken for a duplicate: probability
  ``ids kept / 2**64`` per lookup, ≤ 2.7e-13 at 5 M ids (docs/decisions/0022-compact-dedup-state.md).
"""

from __future__ import annotations

import mmap
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from operator import itemgetter
from typing import TypeVar

import numpy as np

__all__ = ["SeenIds"]

T = TypeVar("T")
R = TypeVar("R")

_first = itemgetter(0)

SLICES = 16
"""Time slices per retention (and per cap): the granularity at which ids are forgotten."""

_SORTED_LOOKUP_FROM = 2048
"""Hashes looked up at once from which they are sorted first (see ``SeenIds._lookup``)."""


class _Slice:
    """A sealed slice: ring positions [start, end) hold its sorted hashes; ``newest``: last commit time."""

    __slots__ = ("end", "newest", "start")

    def __init__(self, start: int, end: int, newest: datetime) -> None:
        self.start, self.end, self.newest = start, end, newest


class SeenIds:
    """Record ids seen recently: the deduplication state, bounded by age and by count (see module doc)."""

    def __init__(self, retention: timedelta, max_ids: int) -> None:
        self.retention = retention
        self.max_ids = max_ids
        self._slice_ids = max(1, max_ids // SLICES)
        self._slice_span = retention / SLICES
        # Every page taken now: the state's memory is reserved at start, not over hours.
        self._ring = _resident_zeros(max_ids + 2 * self._slice_ids)
        self._sealed: deque[_Slice] = deque()
        self._sealed_count = 0
        self._open = np.empty(0, np.int64)
        """The open slice's hashes, sorted (an id committed twice while it is open is kept twice)."""
        self._open_since: datetime | None = None
        self._open_newest: datetime | None = None
        self._fresh: tuple[Sequence[str], np.ndarray] | None = None
        """The ids of the last :meth:`fresh_positions` that found every id fresh, with their hashes sorted
        (its look-up sorted them): :meth:`remember` of the same list takes them instead of sorting again."""

    def __len__(self) -> int:
        return self._sealed_count + len(self._open)

    def __contains__(self, record_id: object) -> bool:
        return self.contains_many([record_id])[0]

    @property
    def reserved_bytes(self) -> int:
        """Bytes of the ring reserved up front (the open slice comes on top)."""
        return int(self._ring.nbytes)

    def contains_many(self, record_ids: Sequence[object]) -> list[bool]:
        """Whether each id was seen (committed) before."""
        found, _, _ = self._lookup(list(map(hash, record_ids)))
        result: list[bool] = found.tolist()
        return result

    def _lookup(self, hashes: list[int]) -> tuple[np.ndarray, bool, np.ndarray | None]:
        """Whether each hash is in a slice (sealed or open), in order, whether a hash occurs twice in
        ``hashes``, and the hashes sorted when they were (else None). A large batch is looked up sorted
        (then put back in its order): numpy's binary search narrows each search by the previous key when
        the keys ascend, so a slice is walked in order instead of at random (50,000 hashes in 7 slices of
        312,500: ~15 ms against ~64)."""
        query = np.fromiter(hashes, np.int64, len(hashes))
        order = np.argsort(query) if len(query) >= _SORTED_LOOKUP_FROM else None
        if order is not None:
            query = query[order]
            twice = bool(len(query)) and bool((query[1:] == query[:-1]).any())
        else:
            twice = len(set(hashes)) != len(hashes)
        found = np.zeros(len(hashes), np.bool_)
        ring = self._ring
        runs = [ring[piece.start : piece.end] for piece in self._sealed]
        if len(self._open):
            runs.append(self._open)
        for run in runs:
            at = np.searchsorted(run, query)
            np.minimum(at, len(run) - 1, out=at)
            found |= run[at] == query
        if order is None:
            return found, twice, None
        in_order = np.empty_like(found)
        in_order[order] = found
        return in_order, twice, query

    def remember(self, ids: Iterable[str], at: datetime) -> None:
        """Mark ids as seen at ``at``; then forget what is older than the retention or beyond the cap."""
        if self._open_since is not None and at - self._open_since >= self._slice_span:
            self._seal()
        fresh, self._fresh = self._fresh, None
        if fresh is not None and fresh[0] is ids and len(fresh[1]) <= self._slice_ids - len(self._open):
            self._merge_open(fresh[1], at)  # the same ids, already hashed and sorted by their look-up
            self.expire(at)
            return
        hashes = list(map(hash, ids))
        start = 0
        while start < len(hashes):
            room = self._slice_ids - len(self._open)
            chunk = np.fromiter(hashes[start : start + room], np.int64)
            start += room
            chunk.sort()
            self._merge_open(chunk, at)
        self.expire(at)

    def _merge_open(self, chunk: np.ndarray, at: datetime) -> None:
        """Sorted hashes (at most the open slice's room) into the open slice; sealed once full."""
        if self._open_since is None:
            self._open_since = at
        merged = np.concatenate((self._open, chunk))
        merged.sort(kind="stable")  # two sorted runs: merged in one linear pass
        self._open = merged
        self._open_newest = at if self._open_newest is None else max(self._open_newest, at)
        if len(self._open) >= self._slice_ids:
            self._seal()

    def expire(self, now: datetime) -> int:
        """Forget slices older than the retention or beyond the cap; returns how many ids were forgotten."""
        horizon = now - self.retention
        dropped = 0
        sealed = self._sealed
        while sealed and (sealed[0].newest < horizon or len(self) > self.max_ids):
            dropped += self._drop_oldest()
        if self._open_newest is not None and self._open_newest < horizon:
            dropped += len(self._open)
            self._open = np.empty(0, np.int64)
            self._open_since = self._open_newest = None
        return dropped

    def deduplicate(
        self, records: Sequence[tuple[T, R]], id_of: Callable[[T], str], now: datetime
    ) -> tuple[list[tuple[T, R]], int]:
        """Drop pairs whose record (``pair[0]``) id was seen before or earlier in this batch.

        Returns (fresh pairs, number of duplicates); the state changes only on :meth:`commit`.
        """
        kept = self.fresh_positions(list(map(id_of, map(_first, records))))
        if kept is None:
            return list(records), 0
        return [records[position] for position in kept], len(records) - len(kept)

    def fresh_positions(self, ids: Sequence[str]) -> list[int] | None:
        """Positions of the ids not seen before nor earlier in ``ids``; None when every id is fresh (the
        common case, decided column-wise). The state changes only on :meth:`commit`."""
        hashes = list(map(hash, ids))
        found, twice, ordered = self._lookup(hashes)
        self._fresh = None
        if not twice and not found.any():
            if ordered is not None:
                self._fresh = (ids, ordered)
            return None
        batch: set[int] = set()
        add = batch.add
        kept: list[int] = []
        for position, (h, known) in enumerate(zip(hashes, found.tolist(), strict=True)):
            if known or h in batch:
                continue
            add(h)
            kept.append(position)
        return kept

    def commit(self, ids: Iterable[str], now: datetime) -> None:
        """Remember ids once their batch is loaded (call after the insert succeeded)."""
        self.remember(ids, now)

    # -- slices ------------------------------------------------------------------------------------

    def _seal(self) -> None:
        if not len(self._open):
            self._open_since = self._open_newest = None
            return
        run = self._open  # sorted; an id committed twice while open is kept once
        if len(run) > 1:
            first = np.empty(len(run), np.bool_)
            first[0] = True
            np.not_equal(run[1:], run[:-1], out=first[1:])
            if not first.all():
                run = run[first]
        newest = self._open_newest
        assert newest is not None
        self._open = np.empty(0, np.int64)
        self._open_since = self._open_newest = None
        # Make room: the cap counts sealed ids; the ring has 2 slices of slack for wrapping.
        while self._sealed and self._sealed_count + len(run) > self.max_ids:
            self._drop_oldest()
        start = self._place(len(run))
        self._ring[start : start + len(run)] = run
        self._sealed.append(_Slice(start, start + len(run), newest))
        self._sealed_count += len(run)

    def _place(self, size: int) -> int:
        """Ring position for a run of ``size`` (dropping oldest slices until it fits)."""
        capacity = len(self._ring)
        while self._sealed:
            head, tail = self._sealed[0].start, self._sealed[-1].end
            if tail > head:  # not wrapped: free space after the tail and before the head
                if tail + size <= capacity:
                    return tail
                if size <= head:
                    return 0
            elif tail + size <= head:  # wrapped: free space between the tail and the head
                return tail
            self._drop_oldest()
        return 0

    def _drop_oldest(self) -> int:
        piece = self._sealed.popleft()
        size = piece.end - piece.start
        self._sealed_count -= size
        return size


def _resident_zeros(count: int) -> np.ndarray:
    """``count`` int64 zeros whose pages are resident from the start: an anonymous map populated by the
    kernel in the one ``mmap`` call (``MAP_POPULATE``, Linux), which is cheaper than touching every page
    from Python (``fill``: 0.3–0.6 s for the three rings of the defaults at a load of 8 on this 2-core
    machine, against ~0.05 s); elsewhere zeros touched by ``fill``."""
    populate = getattr(mmap, "MAP_POPULATE", None)
    size = max(count, 1) * 8
    if populate is not None:
        try:
            mapped = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | populate)
        except OSError:  # no memory for a populated map right now: the portable way below
            pass
        else:
            return np.frombuffer(mapped, np.int64, count)  # the array keeps the map alive
    ring = np.zeros(count, np.int64)
    ring.fill(0)
    return ring
