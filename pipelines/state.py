"""Building the worker's inputs: registry view, metric names, and state rebuilt from the warehouse.

Worker state is **rebuilt from the warehouse on start** (not kept in Kafka changelog topics): the
warehouse is the durable record of what was loaded, and the worker commits offsets only after loading,
so "what the warehouse holds" is exactly the state to resume from. See docs/pipeline.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from pipelines.processor import RegistryView
from xpcore.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from pipelines.processor import StreamProcessor
    from xpcore.config import StreamSettings
    from xpcore.warehouse.base import Warehouse

__all__ = [
    "experiment_sets",
    "id_runs",
    "known_event_names",
    "refresh_recent_ids",
    "refresh_state",
    "registry_view_from_file",
    "restore_state",
    "utc_datetimes",
]

logger = logging.getLogger(__name__)


def registry_view_from_file(path: Path) -> RegistryView:
    """A registry view from JSON: ``{"experiments": {key: {"variations": [{id, key, name}]}}}``."""
    try:
        document: Any = json.loads(path.read_text())
        experiments = document["experiments"]
        known: dict[str, frozenset[int]] = {}
        names: dict[tuple[str, int], str] = {}
        for key, spec in experiments.items():
            ids = []
            for variation in spec["variations"]:
                ids.append(int(variation["id"]))
                names[(key, int(variation["id"]))] = str(
                    variation.get("name") or variation.get("key") or variation["id"]
                )
            known[key] = frozenset(ids)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"cannot read registry file {path}: {error}") from error
    return RegistryView(known, names, None)


def known_event_names(settings: StreamSettings) -> frozenset[str]:
    """Event names accepted before the registry is read: ``XP_STREAM_EVENT_NAMES`` plus the catalog's
    defaults (the registry view adds its experiments' metric events, see ``RegistryView``)."""
    from assignment.metrics_catalog import known_event_names as catalog_names

    return catalog_names(None) | frozenset(settings.stream_event_names)


def restore_state(
    processor: StreamProcessor,
    warehouse: Warehouse,
    settings: StreamSettings,
    now: datetime,
    *,
    repair_until: datetime | None = None,
    hold_events: bool = True,
) -> dict[str, int]:
    """Rebuild dedup ids, first exposures and held events from the warehouse; returns counts.

    ``repair_until``: the view repair trusts raw rows loaded before it (:func:`repair_horizon`; None:
    every row, for a worker that is the store's only writer). ``hold_events`` False: no event is held
    here (a group member holds its own units' events once its partitions are known, decision 0094)."""
    from xpcore.warehouse import load_query

    since = now - timedelta(seconds=settings.stream_dedup_retention_seconds)
    table = warehouse.query_arrow(load_query("stream_recent_ids"), {"since": since})
    seen = {
        "exposure": processor.seen_exposures,
        "event": processor.seen_events,
        "dead_letter": processor.seen_dead_letters,
    }
    # One remember() per run of one kind loaded at one time (a batch's ids share one time).
    for kind, ingested_at, batch in id_runs(table):
        seen[kind].remember(batch, ingested_at)
    for ids_state in seen.values():
        ids_state.expire(now)

    # Before reading first exposures: complete what the materialized views missed (see _repair_views).
    _repair_views(warehouse, since, repair_until or ALL_ROWS)  # rows added: logged (an insert was cut)
    units = _restore_units(processor, warehouse)
    recent = _restore_held(processor, warehouse, settings, now) if hold_events else 0
    counts = {
        "dedup_ids": sum(len(s) for s in seen.values()),
        "unit_exposures": units,
        "held_events": recent,
    }
    logger.info("restored stream state from the warehouse %s", counts)
    return counts


def refresh_recent_ids(
    processor: StreamProcessor, warehouse: Warehouse, settings: StreamSettings, now: datetime
) -> int:
    """Add to the dedup state the ids other workers loaded since (within the retention); returns how many.

    A runner calls it when its group gave it partitions that another worker held: what that worker
    loaded and did not commit is read again here, and must be known as loaded (decision 0074). Only
    ids not known yet are added, so a refresh never inflates the state."""
    from xpcore.warehouse import load_query

    since = now - timedelta(seconds=settings.stream_dedup_retention_seconds)
    table = warehouse.query_arrow(load_query("stream_recent_ids"), {"since": since})
    seen = {
        "exposure": processor.seen_exposures,
        "event": processor.seen_events,
        "dead_letter": processor.seen_dead_letters,
    }
    added = 0
    for kind, ingested_at, batch in id_runs(table):
        known = seen[kind].contains_many(batch)
        fresh = [record_id for record_id, was_known in zip(batch, known, strict=True) if not was_known]
        if fresh:
            seen[kind].remember(fresh, ingested_at)
            added += len(fresh)
    return added


def id_runs(table: pa.Table) -> Iterator[tuple[str, datetime, list[str]]]:
    """``(kind, ingested_at, ids)`` per run of rows of one kind loaded at one time, in the order of
    ``table`` (``stream_recent_ids``: ordered by ingested_at, then kind, so a batch's ids of a kind are one
    run). The runs are found column-wise: no Python object per row but its id.

    Each run is one ``remember`` (a merge into the open dedup slice): when the query's ORDER BY ordered only
    its last SELECT, 2.2 M ids came back in 157 k runs, and their merges took ~45 s of a restart."""

    count = table.num_rows
    if not count:
        return
    ids = table.column("id").to_pylist()
    kinds = table.column("kind").combine_chunks().dictionary_encode()
    codes = kinds.indices.to_numpy(zero_copy_only=False)
    names = kinds.dictionary.to_pylist()
    for at, start, end in _time_runs(_epoch_us(table.column("ingested_at")), codes):
        yield names[codes[start]], at, ids[start:end]


def _time_runs(micros: np.ndarray, codes: np.ndarray | None = None) -> list[tuple[datetime, int, int]]:
    """``(time, start, end)`` per run of equal epoch microseconds (and equal ``codes``, when given)."""
    import numpy as np

    changed = micros[1:] != micros[:-1]
    if codes is not None:
        changed |= codes[1:] != codes[:-1]
    bounds = [0, *(np.flatnonzero(changed) + 1).tolist(), len(micros)]
    return [
        (_EPOCH + timedelta(microseconds=int(micros[start])), start, end) for start, end in pairwise(bounds)
    ]


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def refresh_state(
    processor: StreamProcessor,
    warehouse: Warehouse,
    settings: StreamSettings,
    now: datetime,
    *,
    taken_over: Callable[[str], bool],
) -> dict[str, int]:
    """After a rebalance gave this worker partitions another worker held: add what that worker loaded
    (dedup ids, first exposures, and the recent events of the units ``taken_over`` says are now this
    worker's, with the experiments they already have) to the live state, without the start-up view
    repair (decision 0074). The other workers' events are not held: they would be attributed twice.
    Returns counts; the caller attributes the held events the first exposures make attributable."""
    return {
        "dedup_ids": refresh_recent_ids(processor, warehouse, settings, now),
        "unit_exposures": _restore_units(processor, warehouse),
        "held_events": _restore_held(processor, warehouse, settings, now, taken_over),
    }


def _restore_units(processor: StreamProcessor, warehouse: Warehouse) -> int:
    """First exposures from ``xp.unit_exposures`` (a unit's entry is replaced by the warehouse's)."""
    from xpcore.warehouse import load_query

    table = warehouse.query_arrow(load_query("stream_unit_exposures"))
    if not table.num_rows:
        return 0
    load = processor.attribution.load_unit_exposure
    for unit_id, experiment_key, first_exposed_at, variation_id, low, high in zip(
        table.column("unit_id").to_pylist(),
        table.column("experiment_key").to_pylist(),
        utc_datetimes(table.column("first_exposed_at")),
        table.column("variation_id").to_pylist(),
        table.column("min_variation_id").to_pylist(),
        table.column("max_variation_id").to_pylist(),
        strict=True,
    ):
        load(unit_id, experiment_key, first_exposed_at, int(variation_id), {int(low), int(high)})
    return table.num_rows


def _restore_held(
    processor: StreamProcessor,
    warehouse: Warehouse,
    settings: StreamSettings,
    now: datetime,
    units: Callable[[str], bool] | None = None,
) -> int:
    """The events of the last ``XP_STREAM_HOLD_SECONDS`` (of the ``units`` it accepts, asked once per unit;
    None: all), held with the experiments they already have (an event held already is not held twice).
    Returns how many events of those units the warehouse has in that time.

    Read as columns and held in one call (:meth:`AttributionState.hold_restored`): per row, a dict, a
    ``MetricEvent`` and a search of the held events took ~45 µs, 91 s for the 2 M recent events of a
    restart after issue #22's workload."""

    from xpcore.warehouse import load_query

    hold_since = now - timedelta(seconds=settings.stream_hold_seconds)
    table = warehouse.query_arrow(load_query("stream_recent_events"), {"since": hold_since})
    if units is not None and table.num_rows:
        verdicts: dict[str, bool] = {}
        keep: list[int] = []
        for position, unit_id in enumerate(table.column("unit_id").to_pylist()):
            verdict = verdicts.get(unit_id)
            if verdict is None:
                verdict = verdicts[unit_id] = units(unit_id)
            if verdict:
                keep.append(position)
        if len(keep) < table.num_rows:
            table = table.take(keep)
    if not table.num_rows:
        return 0
    processor.attribution.hold_restored(
        _time_runs(_epoch_us(table.column("ingested_at"))),
        table.column("unit_id").to_pylist(),
        table.column("event_id").to_pylist(),
        table.column("event_name").to_pylist(),
        table.column("value").to_pylist(),
        utc_datetimes(table.column("occurred_at")),
        experiment_sets(table.column("experiments")),
    )
    return table.num_rows


def experiment_sets(column: pa.ChunkedArray) -> list[tuple[str, ...]]:
    """Each row's experiment keys (a list column) as ``tuple(set(keys))``, ``()`` for none or null.

    A batch's events share a few sets: each row's keys are joined into one string and dictionary-encoded,
    so a tuple is built per distinct set, not per row (a Python list per row was ~3 µs, 6 s for 2 M)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    separator = "\x1f"
    column = column.cast(pa.list_(pa.string()))  # chDB's items are `not null`: no join kernel for those
    keys = pc.list_flatten(column)
    if len(keys) and pc.any(pc.match_substring(keys, separator)).as_py():  # not joinable: row by row
        return [tuple(set(row)) if row else () for row in column.to_pylist()]
    joined = pc.binary_join(column, separator).combine_chunks()
    encoded = joined.dictionary_encode() if len(joined) else pa.array([], pa.string()).dictionary_encode()
    sets = [tuple(set(text.split(separator))) if text else () for text in encoded.dictionary.to_pylist()]
    sets.append(())  # index -1: a null row
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return [sets[code] for code in codes.tolist()]


def utc_datetimes(column: pa.ChunkedArray) -> list[datetime]:
    """A time column's values as UTC datetimes, equal to :func:`_utc` of each ``to_pylist()`` value.

    Through epoch microseconds: pyarrow's own conversion looks the zone up per value (``ZoneInfo``):
    ~6 µs each here, against ~1 µs."""
    import pyarrow as pa

    if not pa.types.is_timestamp(column.type) or column.null_count:
        return [_utc(value) for value in column.to_pylist()]
    return [_EPOCH + timedelta(microseconds=value) for value in _epoch_us(column).tolist()]


def _epoch_us(column: pa.ChunkedArray) -> np.ndarray:
    """A timestamp column (any unit, no nulls) as int64 microseconds since the epoch."""
    import pyarrow as pa

    return column.cast(pa.timestamp("us", "UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)


_VIEW_REPAIRS = {
    "stream_repair_unit_exposures": "xp.unit_exposures",
    "stream_repair_exposure_counts": "xp.exposure_counts_minute",
    "stream_repair_unit_metric_state": "xp.unit_metric_state",
    "stream_repair_ingest_counts": "xp.ingest_counts_minute",
}


ALL_ROWS = datetime(2200, 1, 1, tzinfo=UTC)
"""A repair horizon past every row: the worker is the store's only writer."""

_RECENT_WRITES = """
SELECT max(t) AS newest FROM (
    SELECT max(ingested_at) AS t FROM xp.exposures WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
    UNION ALL SELECT max(ingested_at) FROM xp.events WHERE ingested_at >= {since:DateTime64(3, 'UTC')}
    UNION ALL SELECT max(attributed_at) FROM xp.attributed_events
    WHERE attributed_at >= {since:DateTime64(3, 'UTC')}
)
"""


def repair_horizon(
    warehouse: Warehouse,
    *,
    exclusive: bool,
    settle_seconds: float,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    sleep: Callable[[float], None] = time.sleep,
) -> datetime | None:
    """Up to when the start-up view repair may trust the raw tables, with other writers on the store.

    Another worker's insert commits the table's part, then its views' parts: seen in between, its rows
    would look like a cut insert and be repaired, then its views' parts would land too (counted twice).
    So with other possible writers (``exclusive`` False: a store routed through `xp up`, a ClickHouse
    server), the repair takes only rows loaded before ``now``, after waiting ``settle_seconds`` for inserts
    in flight at ``now`` to finish, and only when something was written lately (an idle store has nothing
    in flight). Rows loaded later are new inserts: left out of the raw side, they can only make the
    repair add less, never twice. None: the worker is the only writer (no horizon)."""
    if exclusive:
        return None
    now = clock()
    recent = now - timedelta(seconds=max(3 * settle_seconds, 1.0))
    rows = warehouse.query_arrow(_RECENT_WRITES, {"since": recent}).to_pylist()
    if rows and rows[0]["newest"] is not None and settle_seconds > 0:
        logger.info("other writers on the store: waiting %.0f s before the view repair", settle_seconds)
        sleep(settle_seconds)
    return now


def _repair_views(warehouse: Warehouse, since: datetime, until: datetime = ALL_ROWS) -> int:
    """Re-add to the materialized views' tables the rows of recent inserts they missed.

    An insert into ``xp.exposures`` / ``xp.attributed_events`` commits the table's part first, then each
    view's part: a worker killed in between (``kill -9``, OOM, power) leaves rows in the table, so a restart
    deduplicates the re-delivered records (their ids are loaded), and their views' rows would never be
    written: first exposures missing from ``xp.unit_exposures`` (events not attributed on restart),
    counters short of a recount. Each repair compares, for the keys touched since ``since`` (the dedup
    retention: older records are not deduplicated, so nothing older is at risk), the raw table's count
    with the view's and inserts only the difference; running it again adds nothing. Returns the rows
    added. Raw rows loaded at or after ``until`` are left out (:func:`repair_horizon`: another worker's
    insert may be in flight).
    """
    from xpcore.warehouse import load_query

    added = 0
    for name, table in _VIEW_REPAIRS.items():
        before = _count(warehouse, table)
        warehouse.command(load_query(name), {"since": since, "until": until})
        rows = _count(warehouse, table) - before
        if rows:
            logger.warning("%s was missing rows of an interrupted insert: %d added", table, rows)
        added += rows
    return added


def _count(warehouse: Warehouse, table: str) -> int:
    # `table` is one of this module's own table names, never input.
    return int(warehouse.query_arrow(f"SELECT count() AS n FROM {table}").column("n")[0].as_py())  # nosec B608


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime.fromtimestamp(float(value), UTC)
