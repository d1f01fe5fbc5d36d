"""A batch's decoded records read field by field once: each field's values as a list, shared by the stages.

Validation (record times, rule checks), deduplication (ids), attribution (units, names, what is held) and
the Arrow tables each read some fields of every record. One ``list(map(attrgetter(name), records))`` is
~30 ns per record on this machine, and issue #22's kernel read the same fields of 2 M events up to four
times. :class:`FieldLists` reads a field the first time a stage asks and hands the same list to the next
(docs/decisions/0109). The lists are shared: no stage may change them.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

__all__ = ["FieldLists"]


class FieldLists:
    """The fields of ``records`` as lists (aligned with ``records``), each read when first asked."""

    __slots__ = ("_lists", "records")

    def __init__(self, records: Sequence[Any]) -> None:
        self.records = records
        self._lists: dict[str, list[Any]] = {}

    def __getitem__(self, name: str) -> list[Any]:
        found = self._lists.get(name)
        if found is None:
            found = self._lists[name] = list(map(attrgetter(name), self.records))
        return found

    def taken(self, positions: Sequence[int], records: Sequence[Any]) -> FieldLists:
        """The lists of ``records`` = the records at ``positions``: the fields read so far, taken."""
        kept = FieldLists(records)
        kept._lists = {name: [values[p] for p in positions] for name, values in self._lists.items()}
        return kept
