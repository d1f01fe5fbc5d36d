"""The loader's check of the Flink job's attribution rows against the kernel's (decision 0102).

The job attributes on the JVM (``io.xpstream.flink.AttributeEvents``) and hands its rows off on
``xp.flink.attributions``; the kernel attributes the same records in the loader and stays the authority
(it writes ``xp.attributed_events``). A row is identified by (event id, experiment); the two sides see a
row at different moments (the job's rows come in their own topic, the kernel's with its batches), so
each side's unmatched rows wait for the other's. Counted: ``agree`` (equal in every column),
``disagree`` (logged: the kernel's row stands), and, from :meth:`AttributionCheck.finish`, ``job_only``
and ``kernel_only``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter, OrderedDict
from typing import Any

__all__ = ["AttributionCheck", "RowKey", "RowValue", "job_rows", "kernel_rows"]

logger = logging.getLogger(__name__)

RowKey = tuple[str, str]
"""(event_id, experiment_key)."""
RowValue = tuple[str, int, str, float | None, int, int]
"""(unit_id, variation_id, event_name, value, occurred_us, first_us)."""

MAX_PENDING = 1_000_000
"""Unmatched rows kept per side. A row whose match never comes (the kernel's rows of records the job left
`undecided`, the job's of events the kernel released at its cap) would otherwise stay for the life of
the loader: past this many, the oldest is counted as unmatched (``job_only`` / ``kernel_only``) and
dropped."""


def job_rows(values: list[bytes | None]) -> list[tuple[RowKey, RowValue]]:
    """The job's rows from their JSON (``attribution_sql.attribution_insert``); a malformed one raises
    ValueError (only the job writes the topic)."""
    rows: list[tuple[RowKey, RowValue]] = []
    for raw in values:
        row: dict[str, Any] = json.loads(raw or b"")
        value = row["value"]
        rows.append(
            (
                (str(row["event_id"]), str(row["experiment_key"])),
                (
                    str(row["unit_id"]),
                    int(row["variation_id"]),
                    str(row["event_name"]),
                    None if value is None else float(value),
                    int(row["occurred_us"]),
                    int(row["first_us"]),
                ),
            )
        )
    return rows


def _micros_column(column: Any) -> list[int]:
    """A timestamp column as epoch microseconds (ints; no datetime per row)."""
    import pyarrow as pa

    unit = column.type.unit
    scale = {"s": 1_000_000, "ms": 1000, "us": 1, "ns": None}[unit]
    values: list[int] = column.cast(pa.int64()).to_pylist()
    if scale is None:
        return [value // 1000 for value in values]
    return values if scale == 1 else [value * scale for value in values]


def kernel_rows(table: Any) -> list[tuple[RowKey, RowValue]]:
    """The kernel's rows of one batch (``BatchOutput.attributed``, an Arrow table)."""
    if table.num_rows == 0:
        return []
    names = ("event_id", "unit_id", "experiment_key", "variation_id", "event_name", "value")
    event_id, unit, key, variation, name, value = (table.column(n).to_pylist() for n in names)
    occurred = _micros_column(table.column("occurred_at"))
    first = _micros_column(table.column("first_exposed_at"))
    return [
        ((e, k), (u, v, n, x, o, f))
        for e, u, k, v, n, x, o, f in zip(
            event_id, unit, key, variation, name, value, occurred, first, strict=True
        )
    ]


class AttributionCheck:
    """Matches the job's rows with the kernel's as either side sees them; counts into ``counts``."""

    def __init__(self, counts: Counter[str], max_pending: int = MAX_PENDING) -> None:
        self.counts = counts
        self.max_pending = max_pending
        self.job: OrderedDict[RowKey, RowValue] = OrderedDict()
        self.kernel: OrderedDict[RowKey, RowValue] = OrderedDict()
        self.logged = 0

    def _match(
        self,
        rows: list[tuple[RowKey, RowValue]],
        mine: OrderedDict[RowKey, RowValue],
        other: OrderedDict[RowKey, RowValue],
    ) -> None:
        for key, value in rows:
            found = other.pop(key, None)
            if found is None:
                mine[key] = value
                continue
            if found == value:
                self.counts["agree"] += 1
                continue
            self.counts["disagree"] += 1
            if self.logged < 20:
                self.logged += 1
                job, kernel = (value, found) if mine is self.job else (found, value)
                logger.warning(
                    "the job's attribution is not the kernel's (the kernel's stands): %s job %s kernel %s",
                    key,
                    job,
                    kernel,
                )
        if len(mine) > self.max_pending:
            unmatched = "job_only" if mine is self.job else "kernel_only"
            while len(mine) > self.max_pending:
                mine.popitem(last=False)
                self.counts[unmatched] += 1

    def add_job(self, rows: list[tuple[RowKey, RowValue]]) -> None:
        self._match(rows, self.job, self.kernel)

    def add_kernel(self, rows: list[tuple[RowKey, RowValue]]) -> None:
        self._match(rows, self.kernel, self.job)

    def finish(self) -> None:
        """Count what is still unmatched (the other side may come after a restart: not an error here)."""
        if self.job:
            self.counts["job_only"] += len(self.job)
        if self.kernel:
            self.counts["kernel_only"] += len(self.kernel)
        self.job.clear()
        self.kernel.clear()
