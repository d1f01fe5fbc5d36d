"""The loader's side of ``XP_FLINK_ATTRIBUTION=trust`` (decision 0105): the Flink job's attribution rows,
read from ``xp.flink.attributions``, checked and loaded into ``xp.attributed_events`` as they come.

A row is refused (:class:`~pipelines.flink.runner.HandoffError`: the loader stops with one line, nothing
of its batch is loaded, its offset is not committed) when it is not the job's JSON object of exactly the
eight fields, a field has the wrong type or is out of range (ids, a variation id beyond UInt16, a value
not finite, times not whole milliseconds or outside 1970–2262, an event before its first exposure), its
Kafka key is not its unit (the job keys its rows by unit), or it names an experiment or variation the
loader's registry does not know. Only the job writes the topic (ACLs): such a row is a bug or a foreign
writer.

After a restart, rows below the high watermark the topic had at the start may have been loaded before
the kill (loaded, not yet committed): those are looked up in the warehouse and skipped when there
(``replayed``); the rows after it were never read, and are loaded without a look-up.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from pipelines.attributed_tables import ATTRIBUTED_EVENTS_SCHEMA
from schemas.arrow import TIMESTAMP

__all__ = ["FIELDS", "JobRowError", "ReplayGuard", "TrustedRows", "job_rows_table"]

FIELDS = frozenset(
    {"event_id", "unit_id", "experiment_key", "variation_id", "event_name", "value", "occurred_us"}
    | {"first_us"}
)
_MAX_US = 9_223_372_036_854_775  # 2262-04-11: epoch ms of the table's DateTime64(3) as int64 nanoseconds
_MAX_ID = 1024
_LOOKUP_CHUNK = 2000


class JobRowError(ValueError):
    """A record of the attribution topic that is not a valid row of the job."""


def _text(row: Mapping[str, Any], name: str) -> str:
    value = row[name]
    if not isinstance(value, str) or not value or len(value) > _MAX_ID:
        raise JobRowError(f"{name} is not a non-empty string of at most {_MAX_ID} characters")
    return value


def _micros(row: Mapping[str, Any], name: str) -> int:
    value = row[name]
    if type(value) is not int or not 0 <= value <= _MAX_US or value % 1000:
        raise JobRowError(f"{name} is not whole milliseconds (µs) between 1970 and 2262")
    return value


def _row(
    key: bytes | None,
    raw: bytes | None,
    known: Mapping[str, frozenset[int]] | None,
) -> tuple[str, str, str, int, str, float | None, int, int]:
    try:
        row = json.loads(raw or b"")
    except (ValueError, UnicodeDecodeError) as error:
        raise JobRowError(f"not JSON ({error})") from None
    if not isinstance(row, dict) or set(row) != FIELDS:
        raise JobRowError(f"not an object of exactly the fields {sorted(FIELDS)}")
    event_id, unit_id = _text(row, "event_id"), _text(row, "unit_id")
    experiment, event_name = _text(row, "experiment_key"), _text(row, "event_name")
    variation = row["variation_id"]
    if type(variation) is not int or not 0 <= variation <= 65535:
        raise JobRowError("variation_id is not an integer in 0..65535")
    value = row["value"]
    if value is not None:
        if type(value) not in (int, float) or not math.isfinite(value):
            raise JobRowError("value is not a finite number or null")
        value = float(value)
    occurred, first = _micros(row, "occurred_us"), _micros(row, "first_us")
    if occurred < first:
        raise JobRowError("occurred_us is before first_us")
    if key != unit_id.encode("utf-8"):
        raise JobRowError("its Kafka key is not its unit_id")
    if known is not None and variation not in known.get(experiment, frozenset()):
        raise JobRowError(f"experiment {experiment!r} variation {variation} is not in the registry")
    return event_id, unit_id, experiment, variation, event_name, value, occurred, first


def job_rows_table(
    records: list[tuple[bytes | None, bytes | None, str]],
    known: Mapping[str, frozenset[int]] | None,
) -> pa.Table:
    """Rows of ``xp.attributed_events`` from the job's records (key, value, where: for the error);
    raises :class:`JobRowError` naming the first invalid one.

    Columnar first (Arrow's JSON reader and vector checks: no Python object per field); when that
    refuses anything, the record-by-record path decides and names the record."""
    if records:
        table = _columnar(records, known)
        if table is not None:
            return table
    return _walked(records, known)


_JSON_SCHEMA = pa.schema(
    [
        ("event_id", pa.string()),
        ("unit_id", pa.string()),
        ("experiment_key", pa.string()),
        ("variation_id", pa.int64()),
        ("event_name", pa.string()),
        ("value", pa.float64()),
        ("occurred_us", pa.int64()),
        ("first_us", pa.int64()),
    ]
)


def _columnar(
    records: list[tuple[bytes | None, bytes | None, str]], known: Mapping[str, frozenset[int]] | None
) -> pa.Table | None:
    """:func:`job_rows_table`'s rows when every record passes every check, decided over columns; None
    otherwise (nothing is refused here)."""
    import io

    import pyarrow.compute as pc
    import pyarrow.json as pj

    values = [raw or b"" for _, raw, _ in records]
    joined = b"\n".join(values)
    # One object per line (no newline inside one), each with its "value" key: the reader would take an
    # absent field as null, and refuses a key given twice, so n keys in n objects is one in each.
    if joined.count(b"\n") != len(values) - 1 or joined.count(b'"value":') != len(values):
        return None
    options = pj.ParseOptions(explicit_schema=_JSON_SCHEMA, unexpected_field_behavior="error")
    try:
        data = pj.read_json(io.BytesIO(joined), parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if data.num_rows != len(values):
        return None
    column = data.column
    for name in ("event_id", "unit_id", "experiment_key", "event_name"):
        lengths = pc.utf8_length(column(name))
        if column(name).null_count or pc.min(lengths).as_py() < 1 or pc.max(lengths).as_py() > _MAX_ID:
            return None
    bounds = {"variation_id": (0, 65535), "occurred_us": (0, _MAX_US), "first_us": (0, _MAX_US)}
    for name, (low, high) in bounds.items():
        numbers = column(name)
        if numbers.null_count or pc.min(numbers).as_py() < low or pc.max(numbers).as_py() > high:
            return None
    value = column("value")
    occurred, first = column("occurred_us"), column("first_us")
    checks = [
        pc.or_(pc.is_null(value), pc.is_finite(value.fill_null(0.0))),
        pc.equal(pc.subtract(occurred, pc.multiply(pc.divide(occurred, 1000), 1000)), 0),
        pc.equal(pc.subtract(first, pc.multiply(pc.divide(first, 1000), 1000)), 0),
        pc.greater_equal(occurred, first),
        pc.equal(pa.array([key for key, _, _ in records], pa.binary()), column("unit_id").cast(pa.binary())),
    ]
    if known is not None:
        allowed = pa.array([f"{key}\x01{v}" for key, ids in known.items() for v in ids], pa.string())
        variations = column("variation_id").cast(pa.string())
        pairs = pc.binary_join_element_wise(column("experiment_key"), variations, "\x01")
        checks.append(pc.is_in(pairs, value_set=allowed))
    if not all(pc.all(check.fill_null(False)).as_py() for check in checks):
        return None
    arrays = [column(name) for name in ("event_id", "unit_id", "experiment_key")]
    arrays += [column("variation_id").cast(pa.uint16()), column("event_name"), value]
    arrays += [pc.divide(column(name), 1000).cast(TIMESTAMP) for name in ("occurred_us", "first_us")]
    return pa.Table.from_arrays(arrays, schema=ATTRIBUTED_EVENTS_SCHEMA)


def _walked(
    records: list[tuple[bytes | None, bytes | None, Any]], known: Mapping[str, frozenset[int]] | None
) -> pa.Table:
    """:func:`job_rows_table` record by record (the reference; names the first invalid record)."""
    columns: list[list[Any]] = [[] for _ in range(8)]
    for key, raw, where in records:
        try:
            values = _row(key, raw, known)
        except JobRowError as error:
            place = (
                where if isinstance(where, str) else f"{where.topic()}/{where.partition()}@{where.offset()}"
            )
            raise JobRowError(f"{place}: {error}") from None
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    types = (pa.string(), pa.string(), pa.string(), pa.uint16(), pa.string(), pa.float64())
    arrays = [pa.array(column, kind) for column, kind in zip(columns, types, strict=False)]
    arrays += [pa.array([us // 1000 for us in column], pa.int64()).cast(TIMESTAMP) for column in columns[6:]]
    return pa.Table.from_arrays(arrays, schema=ATTRIBUTED_EVENTS_SCHEMA)


class ReplayGuard:
    """Skips the job's rows loaded before a restart: rows below the start's high watermarks are looked up
    in ``xp.attributed_events`` by (event id, experiment)."""

    def __init__(self, warehouse: Any, until: Mapping[int, int]) -> None:
        self.warehouse = warehouse
        self.until = dict(until)
        """Partition → the topic's high watermark when the loader started."""

    def replaying(self, partition: int, offset: int) -> bool:
        return offset < self.until.get(partition, 0)

    def loaded(self, table: pa.Table) -> list[bool]:
        """For each row of ``table``, whether (event_id, experiment_key) is in the warehouse already."""
        ids = table.column("event_id").to_pylist()
        keys = table.column("experiment_key").to_pylist()
        found: set[tuple[str, str]] = set()
        unique = sorted(set(ids))
        for start in range(0, len(unique), _LOOKUP_CHUNK):
            there = self.warehouse.query_arrow(
                "SELECT event_id, experiment_key FROM xp.attributed_events "
                "WHERE event_id IN {ids:Array(String)}",
                {"ids": unique[start : start + _LOOKUP_CHUNK]},
            )
            there_ids, there_keys = there.column("event_id"), there.column("experiment_key")
            found.update(zip(there_ids.to_pylist(), there_keys.to_pylist(), strict=True))
        return [(e, k) in found for e, k in zip(ids, keys, strict=True)]


class TrustedRows:
    """The job's rows of each batch (:attr:`table`), checked and less those loaded before a restart."""

    def __init__(self, topic: str, parts: Any, report: Any) -> None:
        self.topic, self.parts, self.report = topic, parts, report
        self.table: pa.Table | None = None
        self.spans = ""
        self.replay: ReplayGuard | None = None

    def rows(self) -> int:
        return 0 if self.table is None else self.table.num_rows

    def read(self, messages: list[Any], consumer: Any) -> None:
        """The batch's records of the attribution topic → :attr:`table`; their offset ranges make
        :attr:`spans` (part of the attribution insert's token). An invalid row raises ``HandoffError``."""
        from pipelines.flink.runner import HandoffError
        from xpcore.kafka.group_consumer import high_watermarks

        if self.replay is None:
            self.replay = ReplayGuard(self.parts.warehouse, high_watermarks(consumer, self.topic))
        records = [(message.key(), message.value(), message) for message in messages]  # where: on error
        try:
            table = job_rows_table(records, self.parts.processor.registry.known_variations)
        except JobRowError as error:
            raise HandoffError(f"a record of {self.topic} is not the job's row: {error}") from None
        partitions = [message.partition() for message in messages]
        offsets = [message.offset() for message in messages]
        ranges: dict[int, tuple[int, int]] = {}
        for partition in set(partitions):
            mine = [o for p, o in zip(partitions, offsets, strict=True) if p == partition]
            ranges[partition] = (min(mine), max(mine))
        guard = self.replay
        if guard.until:  # rows read before a restart may be in the warehouse already
            replaying = [guard.replaying(p, o) for p, o in zip(partitions, offsets, strict=True)]
            if any(replaying):
                loaded = guard.loaded(table)
                skip = [again and there for again, there in zip(replaying, loaded, strict=True)]
                if any(skip):
                    self.report.attributions["replayed"] += sum(skip)
                    table = table.filter(pa.array([not s for s in skip], pa.bool_()))
            for partition, (_, last) in ranges.items():  # past the start's watermark: no more look-ups
                if last + 1 >= guard.until.get(partition, 0):
                    guard.until.pop(partition, None)
        spans = sorted(ranges.items())
        self.spans = ",".join(f"{self.topic}/{p}/{first}-{last}" for p, (first, last) in spans)
        self.table = table

    def add_to(self, output: Any) -> Any:
        """The batch's attribution rows: the kernel's (events the job did not judge ok) and the job's,
        under a token that also names the job rows' offsets."""
        counts = self.report.attributions
        counts["kernel"] += output.attributed.num_rows
        if self.table is not None and self.table.num_rows:
            counts["job"] += self.table.num_rows
            output.attributed = pa.concat_tables([output.attributed, self.table])
            output.tokens["xp.attributed_events"] += "|" + self.spans
        return output
