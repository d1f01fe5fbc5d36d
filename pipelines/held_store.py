"""The events held for late exposures, kept as one chunk of columns per batch (docs/decisions/0108).

:class:`~pipelines.attribution.AttributionState` holds every new event for ``hold`` of processing time, so
that an exposure arriving meanwhile can still attribute it. It used to keep one tuple per event in a list
per unit, with a per-event step to hold it and another to release it (issue #22's profile: ~0.9 µs per
event, the largest single part of the kernel after decoding). Here held events are kept in chunks of
columns (:class:`_Chunk`): a batch's columns as the kernel built them (unit ids, event ids, names, values,
times, the experiments each event is attributed to), or, for small batches, appended to the newest chunk
up to :data:`MERGE_UP_TO` events (one segment per hold time). So:

- holding a batch costs a few list references (or one copy into the newest chunk), not a tuple and a dict
  look-up per event;
- releasing (oldest first, by time or by the cap) moves a chunk's start or drops the chunk whole;
- the held events of some units (needed only when exposures give units holding events a new or earlier
  first exposure) are found by binary search over each chunk's unit hashes, sorted the first time the
  chunk is asked and extended as batches join it, then compared by unit id.

Events come out in holding order (chunk by chunk, position by position), the order the per-unit lists
had; a unit's events are its entries in that order. Restored events (:meth:`HeldStore.hold_one`, from the
warehouse on start or after a rebalance) go into chunks of their own, one per ``held_at`` run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from pipelines.held_columns import HeldEntry

__all__ = ["HeldStore", "HeldView"]

MERGE_UP_TO = 50_000
"""Events per chunk up to which a batch joins the newest chunk: a steady flow of small batches makes few
chunks, so a look-up searches ~``XP_STREAM_MAX_HELD_EVENTS / MERGE_UP_TO`` chunks, not one per batch."""

HeldView = dict[str, list[HeldEntry]]
"""Held events of some units, per unit in holding order, as tuples (see :meth:`HeldStore.view`)."""


class _Chunk:
    """Events held by one call (a batch), as aligned columns; positions before ``next`` are released."""

    __slots__ = (
        "attributed",
        "event_ids",
        "index",
        "names",
        "next",
        "occurred",
        "order",
        "owned",
        "segment",
        "segments",
        "sorted_hashes",
        "units",
        "values",
    )

    def __init__(
        self,
        held_at: datetime,
        units: list[str],
        event_ids: list[str],
        names: list[str],
        values: list[float | None],
        occurred: list[datetime],
        attributed: list[tuple[str, ...]],
        *,
        own: bool,
    ) -> None:
        self.segments: list[tuple[datetime, int]] = [(held_at, len(units))]
        """(held at, end position) per run of events held at one time, in order (merged batches)."""
        self.segment = 0
        """The first segment with events still held."""
        self.owned = own
        """The lists are the chunk's own (not the caller's): events may be appended to them."""
        self.units = units
        self.event_ids = event_ids
        self.names = names
        self.values = values
        self.occurred = occurred
        self.attributed = attributed
        self.next = 0
        index: dict[str, list[int]] | None = None
        if own:
            index = {}
            for position, unit in enumerate(units):
                index.setdefault(unit, []).append(position)
        self.index = index
        """Unit → its positions, for a chunk of its own (:meth:`HeldStore.hold_one` appends to it); None for
        a batch's chunk, searched by its units' hashes instead (``sorted_hashes``, built when first asked)."""
        self.sorted_hashes: np.ndarray | None = None
        self.order: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.units) - self.next

    @property
    def held_at(self) -> datetime:
        """When the last segment was held (where :meth:`HeldStore.hold_one` appends)."""
        return self.segments[-1][0]

    def expired_end(self, horizon: datetime) -> int:
        """The end of the run of held events, from the first one, held before ``horizon``."""
        end = self.next
        segments = self.segments
        while self.segment < len(segments) and segments[self.segment][1] <= self.next:
            self.segment += 1
        for held_at, segment_end in segments[self.segment :]:
            if held_at >= horizon:
                break
            end = segment_end
        return end

    def extend(self, held_at: datetime, columns: tuple[list[Any], ...]) -> None:
        """Append a batch's events (its ``units``, ``event_ids``, … lists) as a new segment."""
        if not self.owned:  # the first lists were the caller's: copied before they grow
            self.units, self.event_ids, self.names = self.units[:], self.event_ids[:], self.names[:]
            self.values, self.occurred, self.attributed = self.values[:], self.occurred[:], self.attributed[:]
            self.owned = True
        start = len(self.units)
        mine: tuple[list[Any], ...] = (
            self.units,
            self.event_ids,
            self.names,
            self.values,
            self.occurred,
            self.attributed,
        )
        for column, more in zip(mine, columns, strict=True):
            column.extend(more)
        self.segments.append((held_at, len(self.units)))
        if self.sorted_hashes is not None:  # merge the new events' sorted hashes into the index
            assert self.order is not None
            added = np.fromiter(map(hash, columns[0]), np.int64, len(columns[0]))
            ranked = np.argsort(added, kind="stable")
            hashes = np.concatenate((self.sorted_hashes, added[ranked]))
            order = np.concatenate((self.order, ranked + start))
            merged = np.argsort(hashes, kind="stable")  # two sorted runs; a unit's positions stay ascending
            self.sorted_hashes, self.order = hashes[merged], order[merged]

    def find(self, units: Sequence[str], query: _Query) -> list[tuple[int, list[int]]]:
        """(index into ``units``, its held positions here in order) for each of ``units`` held here."""
        start, mine = self.next, self.units
        found: list[tuple[int, list[int]]] = []
        if self.index is not None:
            index = self.index
            for which, unit in enumerate(units):
                places = index.get(unit)
                if places is not None:
                    held = [position for position in places if position >= start] if start else places[:]
                    if held:
                        found.append((which, held))
            return found
        if self.sorted_hashes is None:
            every = np.fromiter(map(hash, mine), np.int64, len(mine))
            self.order = np.argsort(every, kind="stable")  # a unit's positions stay ascending
            self.sorted_hashes = every[self.order]
        assert self.order is not None
        ours = self.sorted_hashes
        low = np.searchsorted(ours, query.hashes)  # the query ascends: each search starts near the last
        hit = ours[np.minimum(low, len(ours) - 1)] == query.hashes
        if not hit.any():
            return found
        hits = np.flatnonzero(hit)
        high = np.searchsorted(ours, query.hashes[hits], "right")
        order, asked = self.order, query.order[hits].tolist()
        for which, first, last in zip(asked, low[hits].tolist(), high.tolist(), strict=True):
            unit = units[which]  # equal hashes of different units are told apart here
            held = [p for p in order[first:last].tolist() if p >= start and mine[p] == unit]
            if held:
                found.append((which, held))
        found.sort()
        return found

    def entry(self, position: int) -> HeldEntry:
        return (
            self.event_ids[position],
            self.names[position],
            self.values[position],
            self.occurred[position],
            self.attributed[position],
        )

    def append(self, held_at: datetime, unit: str, entry: HeldEntry) -> None:
        """One more event, in a chunk of its own."""
        assert self.index is not None
        self.index.setdefault(unit, []).append(len(self.units))
        if self.segments[-1][0] == held_at:
            self.segments[-1] = (held_at, len(self.units) + 1)
        else:
            self.segments.append((held_at, len(self.units) + 1))
        self.units.append(unit)
        self.event_ids.append(entry[0])
        self.names.append(entry[1])
        self.values.append(entry[2])
        self.occurred.append(entry[3])
        self.attributed.append(entry[4])


class _Query:
    """Units looked up in every chunk: their ``hash()`` values ascending, and where each is in the query."""

    __slots__ = ("hashes", "order")

    def __init__(self, units: Sequence[str]) -> None:
        hashes = np.fromiter(map(hash, units), np.int64, len(units))
        self.order = np.argsort(hashes, kind="stable")
        self.hashes = hashes[self.order]


class HeldStore:
    """Held events in holding order, as chunks of columns: hold a batch, release the oldest, find a unit's."""

    def __init__(self, merge_up_to: int = MERGE_UP_TO) -> None:
        self._chunks: deque[_Chunk] = deque()
        self._count = 0
        self.merge_up_to = merge_up_to
        """A batch is appended to the newest chunk while both hold at most this many events together."""

    def __len__(self) -> int:
        return self._count

    def hold_many(
        self,
        held_at: datetime,
        units: list[str],
        event_ids: list[str],
        names: list[str],
        values: list[float | None],
        occurred: list[datetime],
        attributed: list[tuple[str, ...]],
    ) -> None:
        """Hold a batch's events (aligned lists, kept as they are: the caller must not change them)."""
        if not units:
            return
        last = self._chunks[-1] if self._chunks else None
        if last is not None and last.index is None and len(last.units) + len(units) <= self.merge_up_to:
            last.extend(held_at, (units, event_ids, names, values, occurred, attributed))
        else:
            self._chunks.append(
                _Chunk(held_at, units, event_ids, names, values, occurred, attributed, own=False)
            )
        self._count += len(units)

    def hold_restored(
        self,
        runs: Sequence[tuple[datetime, int, int]],
        units: list[str],
        event_ids: list[str],
        names: list[str],
        values: list[float | None],
        occurred: list[datetime],
        attributed: list[tuple[str, ...]],
    ) -> int:
        """Hold events read back from the warehouse, each unless its unit holds its id already (as
        :meth:`hold_one` one by one, in order); ``runs``: ``(held_at, start, end)`` of the consecutive
        positions held at one time. Returns how many were held.

        The check is one look-up of the units in every chunk, then a set; each run goes into a chunk of its
        own, as :meth:`hold_one` starts one per hold time, so the events are released alike.
        One :meth:`hold_one` per event searched every chunk for its unit: ~13 µs per event, 26 s for the
        2 M events of a restart after issue #22's workload."""
        asked = list(dict.fromkeys(units))
        query = _Query(asked)
        known: set[tuple[str, str]] = set()
        for chunk in self._chunks:
            for which, positions in chunk.find(asked, query):
                unit = asked[which]
                known.update((unit, chunk.event_ids[position]) for position in positions)
        held = 0
        for held_at, start, end in runs:
            kept: list[int] = []
            for position in range(start, end):
                key = (units[position], event_ids[position])
                if key not in known:
                    known.add(key)
                    kept.append(position)
            if not kept:
                continue
            held += len(kept)
            self._count += len(kept)
            self._chunks.append(
                _Chunk(
                    held_at,
                    [units[p] for p in kept],
                    [event_ids[p] for p in kept],
                    [names[p] for p in kept],
                    [values[p] for p in kept],
                    [occurred[p] for p in kept],
                    [attributed[p] for p in kept],
                    own=True,
                )
            )
        return held

    def hold_one(self, held_at: datetime, unit: str, entry: HeldEntry) -> bool:
        """Hold one event unless its unit holds its id already; whether it was held."""
        event_id, units, query = entry[0], [unit], _Query([unit])
        for chunk in self._chunks:
            for _, positions in chunk.find(units, query):
                if event_id in [chunk.event_ids[position] for position in positions]:
                    return False
        last = self._chunks[-1] if self._chunks else None
        if last is None or last.index is None or last.held_at != held_at:
            last = _Chunk(held_at, [], [], [], [], [], [], own=True)
            self._chunks.append(last)
        last.append(held_at, unit, entry)
        self._count += 1
        return True

    def holding(self, units: Iterable[str]) -> list[str]:
        """The given units that hold events, in the order given."""
        asked = list(units)
        query = _Query(asked)
        found: set[int] = set()
        for chunk in self._chunks:
            found.update(which for which, _ in chunk.find(asked, query))
        return [asked[which] for which in sorted(found)]

    def entries(self) -> list[tuple[str, HeldEntry]]:
        """Every held event with its unit, in holding order (the order they are released in)."""
        return [
            (chunk.units[position], chunk.entry(position))
            for chunk in self._chunks
            for position in range(chunk.next, len(chunk.units))
        ]

    def units(self) -> list[str]:
        """Every unit holding events, sorted."""
        every: set[str] = set()
        for chunk in self._chunks:
            every.update(chunk.units[chunk.next :])
        return sorted(every)

    def view(self, units: Sequence[str]) -> tuple[HeldView, list[tuple[_Chunk, int]]]:
        """The held events of ``units`` (each holding some), per unit in holding order, and where each is
        (in the view's order: unit by unit, event by event) for :meth:`write_back`."""
        places: list[list[tuple[_Chunk, int]]] = [[] for _ in units]
        query = _Query(units)
        for chunk in self._chunks:
            for which, positions in chunk.find(units, query):
                places[which].extend((chunk, position) for position in positions)
        view: HeldView = {}
        where: list[tuple[_Chunk, int]] = []
        for unit, found in zip(units, places, strict=True):
            view[unit] = [chunk.entry(position) for chunk, position in found]
            where.extend(found)
        return view, where

    def write_back(self, view: HeldView, units: Sequence[str], where: Sequence[tuple[_Chunk, int]]) -> None:
        """Store the experiments the entries of a :meth:`view` gained (updated there in place)."""
        entries = (entry for unit in units for entry in view[unit])
        for (chunk, position), entry in zip(where, entries, strict=True):
            chunk.attributed[position] = entry[4]

    def release(self, horizon: datetime, max_held: int) -> tuple[int, int]:
        """Release events held before ``horizon`` and, past ``max_held``, the oldest; returns (released,
        released by the cap while attributed to nothing)."""
        released = early_unattributed = 0
        chunks = self._chunks
        while chunks:
            chunk = chunks[0]
            start = chunk.next
            count = chunk.expired_end(horizon) - start
            early = count <= 0
            if early:  # the oldest held event is within its hold: only the cap releases
                count = min(len(chunk), self._count - max_held)
                if count <= 0:
                    break
                early_unattributed += chunk.attributed[start : start + count].count(())
            chunk.next = start + count
            self._count -= count
            released += count
            if not len(chunk):
                chunks.popleft()
        return released, early_unattributed

    def drop(self, keep: Callable[[str], bool]) -> int:
        """Drop the held events of the units ``keep`` rejects (the rest keep their order); how many."""
        dropped = 0
        kept_chunks: deque[_Chunk] = deque()
        for chunk in self._chunks:
            start = chunk.next
            verdicts = {unit: keep(unit) for unit in set(chunk.units[start:])}
            if all(verdicts.values()):
                kept_chunks.append(chunk)
                continue
            units = chunk.units
            stays = [position for position in range(start, len(units)) if verdicts[units[position]]]
            dropped += len(chunk) - len(stays)
            if stays:
                kept = _Chunk(
                    chunk.held_at,
                    [chunk.units[p] for p in stays],
                    [chunk.event_ids[p] for p in stays],
                    [chunk.names[p] for p in stays],
                    [chunk.values[p] for p in stays],
                    [chunk.occurred[p] for p in stays],
                    [chunk.attributed[p] for p in stays],
                    own=False,
                )
                kept.owned = True
                ends = [end for _, end in chunk.segments]
                counts = np.searchsorted(np.array(stays, np.int64), ends, "left").tolist()
                kept.segments = [
                    (held_at, count)
                    for (held_at, _), count, before in zip(chunk.segments, counts, [0, *counts], strict=False)
                    if count > before
                ]
                kept_chunks.append(kept)
        self._chunks = kept_chunks
        self._count -= dropped
        return dropped
