"""Per-unit metric values kept up to date (``xp.unit_values``, decision 0028): full results in ≤ 1 s.

The live results scan (``BatchPlan.sql()``) hashes every attributed event into its unit on every call.
Here the per-unit stage of that scan is stored, one row per experiment × plan fingerprint × unit, and
kept up to date:

- :func:`refresh` — the first time for a plan fingerprint (:attr:`UnitValuesPlan.key`; a changed
  metric is a new key): a **full build**; afterwards **incremental**: only the units with a row stored
  at or after the watermark (``xp.attributed_events.attributed_at``, ``xp.exposures.ingested_at``, with
  CUPED ``xp.events.ingested_at``) get a new row (newer ``version``; ``ReplacingMergeTree``, read
  ``FINAL``). A unit with only new attributed rows whose keys are new to it gets its stored row plus
  those rows (the **fold**, O(new rows), decision 0099); the others (new exposures or covariate events,
  a re-sent or already folded key) are recomputed in full. The new watermark is the refresh's start minus
  ``XP_RESULTS_UNIT_VALUES_MARGIN_SECONDS`` (in-flight inserts, clock skew between worker and
  warehouse): recomputing a unit twice is harmless, missing one is not.
- ``xp jobs run unit-values`` (:mod:`jobs.unit_values.job`, every 30 s inside ``xp up``) runs the same
  refresh in the background and merges replaced rows, so a results call finds the values current;
- :func:`fetch_unit_value_sums` — refresh, then the sufficient statistics from the newest rows: the same
  numbers as the scan. It returns ``None`` when the stored values cannot answer: an ``until`` not after
  the newest event folded in (the scan also drops events at or after ``until``). With a staleness bound
  (``XP_RESULTS_MAX_STALENESS_SECONDS``) and a window still open at the last refresh, it reads the
  stored values without refreshing while that refresh is younger than the bound: exact **as of** the
  refresh's start (:attr:`UnitValueSums.data_as_of`).

One refresh at a time per experiment: the embedded store runs one statement at a time; on a server
two refreshes may overlap, each unit's newest computation wins (``version``), and the state row with
the higher version wins (at worst a later refresh recomputes more units).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from jobs.results.metric_sql.unit_overlay import overlay_read_sql, recompute_read_sql
from jobs.results.metric_sql.unit_values import (
    build_parameters,
    build_sql,
    changed_units_sql,
    fold_sql,
    read_sql,
    recompute_units_sql,
)
from jobs.results.rows import VariationSums
from jobs.unit_values.plan import UnitValuesPlan
from jobs.unit_values.sql import MAX_OCCURRED_SQL, NOW_SQL, STATE_SQL, changed_max_occurred_sql
from xpcore.config import CoreSettings
from xpcore.warehouse.sqltext import placeholders

if TYPE_CHECKING:
    from xpcore.warehouse import Warehouse

__all__ = [
    "RefreshReport",
    "UnitValueSums",
    "UnitValuesSettings",
    "UnitValuesState",
    "add_rows",
    "fetch_unit_value_sums",
    "overlaid_sums",
    "read_state",
    "refresh",
]

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

MAX_RECOMPUTE_PARAMETER_BYTES = 100_000
"""The overlay's list of units to recompute travels as one query parameter. Over HTTP a long one is sent
form-encoded, and a ClickHouse server refuses a form field over ``http_max_field_value_size`` (128 KiB by
default): beyond this many bytes of unit ids the overlay gives up and the caller refreshes (exact either
way; decision 0100)."""


class UnitValuesSettings(CoreSettings):
    """Results from precomputed per-unit values (``XP_RESULTS_UNIT_VALUES*``), on top of CoreSettings."""

    model_config = SettingsConfigDict(env_prefix="XP_", extra="ignore", populate_by_name=True)

    results_unit_values: bool = Field(
        default=True,
        description="Compute results from xp.unit_values, refreshed incrementally before each read "
        "(false: the live scan of every attributed event, as before decision 0028).",
    )
    results_unit_values_margin_seconds: float = Field(
        default=30.0,
        ge=0,
        description="Safety margin of the unit-values watermark: rows stored up to this long before a "
        "refresh started are looked at again by the next one (in-flight inserts, worker/warehouse clock "
        "skew). Each refresh recomputes the units changed in this many seconds before the previous one.",
    )
    results_unit_values_fold: bool = Field(
        default=True,
        description="An incremental refresh adds the attributed rows stored since its watermark to the "
        "stored per-unit values (cost: the new rows), and recomputes in full only the units with new "
        "exposures, covariate events or re-sent rows (decision 0099). false: recompute every changed unit "
        "in full (cost: all rows of the touched units), as before.",
    )
    results_unit_values_overlay: bool = Field(
        default=True,
        description="A results call that must fold new rows in (`--fresh`, values older than the "
        "staleness bound) reads the stored per-unit values overlaid with the attributed rows stored since "
        "the last refresh, recomputing only the units it cannot add to (new exposures, re-sent rows) inside "
        "the read, and writes nothing (decision 0100); the background refresher folds them in. Only while "
        "the last refresh is younger than XP_RESULTS_UNIT_VALUES_OVERLAY_MAX_AGE_SECONDS. false: refresh, "
        "then read.",
    )
    results_unit_values_overlay_max_age_seconds: float = Field(
        default=300.0,
        ge=0,
        description="The overlay (XP_RESULTS_UNIT_VALUES_OVERLAY) answers only while the last refresh of "
        "the values is younger than this (a refresher is running, so the rows to overlay stay few); "
        "older values are refreshed (and written) first, as without the overlay.",
    )
    results_unit_values_compact: bool = Field(
        default=True,
        description="`xp jobs run unit-values` merges xp.unit_values (OPTIMIZE … FINAL) after its "
        "refreshes when a refreshed experiment's rows span several parts (every results read would "
        "otherwise merge them with FINAL). false: leave it to ClickHouse's background merges.",
    )
    results_max_staleness_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Results (`xp results`, the dashboard) read xp.unit_values as of their last refresh, "
        "without refreshing first, while that refresh is younger than this: full results stay fast under "
        "a steady flow of events, exact as of the refresh (`data_as_of` in the output). 0: refresh before "
        "every read. `xp results --fresh`, `xp jobs run stats` and windows that ended before the last "
        "refresh (`--until` in the past) always include every row stored so far (overlaid at read, "
        "XP_RESULTS_UNIT_VALUES_OVERLAY, or refreshed first).",
    )


@dataclass(frozen=True)
class UnitValuesState:
    """The row of ``xp.unit_values_state`` for one experiment and plan fingerprint."""

    watermark: datetime
    max_occurred_at: datetime
    version: int
    refreshed_at: datetime = EPOCH
    """The start of the refresh that wrote this state (warehouse clock): every row stored before it is
    folded in."""


@dataclass(frozen=True)
class RefreshReport:
    """What :func:`refresh` did."""

    full: bool
    seconds: float
    state: UnitValuesState
    units: int | None = None
    """Units written by an incremental refresh, folded or recomputed (None: a full build)."""
    recomputed: int | None = None
    """Of ``units``, those recomputed in full (the rest were folded; None: a full build)."""
    started_at: datetime = EPOCH
    """The refresh's start (warehouse clock): every row stored before it is folded in (also when it
    found nothing to recompute)."""


@dataclass(frozen=True)
class UnitValueSums:
    """What :func:`fetch_unit_value_sums` read: sums as ``BatchPlan.decode``, CUPED covariate sums."""

    by_segment: dict[str, list[tuple[str, VariationSums]]]
    covariates: dict[str, list[VariationSums]]
    data_as_of: datetime
    """Every row stored before this time is folded in (the start of the refresh the values come from)."""
    refreshed: bool
    """This call refreshed the values first (False: read as of an earlier refresh, within the bound)."""


def _utc(value: Any) -> datetime:
    if value is None:
        return EPOCH
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    raise TypeError(f"not a timestamp: {value!r}")


def read_state(warehouse: Warehouse, experiment: str, plan: UnitValuesPlan) -> UnitValuesState | None:
    """The stored state of ``plan`` for ``experiment``, or None (never built)."""
    rows = warehouse.query_arrow(STATE_SQL, {"experiment": experiment, "plan_key": plan.key}).to_pylist()
    if not rows:
        return None
    row = max(rows, key=lambda r: int(r["version"]))
    return UnitValuesState(
        watermark=_utc(row["watermark"]),
        max_occurred_at=_utc(row["max_occurred_at"]),
        version=int(row["version"]),
        refreshed_at=_utc(row["refreshed_at"]),
    )


def _now(warehouse: Warehouse) -> datetime:
    return _utc(warehouse.query_arrow(NOW_SQL).column("now")[0].as_py())


def _max_occurred(warehouse: Warehouse, sql: str, parameters: dict[str, Any]) -> datetime:
    row = warehouse.query_arrow(sql, parameters).to_pylist()[0]
    return _utc(row["max_occurred_at"]) if int(row["rows"]) else EPOCH


def _write_state(
    warehouse: Warehouse, experiment: str, plan: UnitValuesPlan, state: UnitValuesState, now: datetime
) -> None:
    warehouse.command(
        "INSERT INTO xp.unit_values_state (experiment_key, plan_key, plan, watermark, max_occurred_at,"
        " version, built_at, refreshed_at) VALUES ({experiment:String}, {plan_key:String},"
        " {plan:String}, {watermark:DateTime64(3, 'UTC')}, {max_occurred_at:DateTime64(3, 'UTC')},"
        " {version:UInt64}, {now:DateTime64(3, 'UTC')}, {now:DateTime64(3, 'UTC')})",
        {
            "experiment": experiment,
            "plan_key": plan.key,
            "plan": plan.description(),
            "watermark": state.watermark,
            "max_occurred_at": state.max_occurred_at,
            "version": state.version,
            "now": now,
        },
    )


def refresh(
    warehouse: Warehouse,
    experiment: str,
    plan: UnitValuesPlan,
    *,
    margin_seconds: float = 30.0,
    rebuild: bool = False,
    fold: bool = True,
) -> RefreshReport:
    """Bring ``xp.unit_values`` of ``experiment`` × ``plan`` up to date (full build the first time or
    with ``rebuild``; else only the units changed since the watermark: folded where their new rows can
    be added, with ``fold``, the others recomputed in full)."""
    started = time.perf_counter()
    known = read_state(warehouse, experiment, plan)
    previous = None if rebuild else known
    now = _now(warehouse)
    # newer than every row written before, even if the clock went back: the newest computation wins
    version = max(int(now.timestamp() * 1000), (known.version + 1) if known else 0)
    names = {"experiment": experiment, "event_names": list(plan.event_names)}
    units = recomputed = None
    if previous is None:
        warehouse.command(
            build_sql(plan, incremental=False), build_parameters(plan, experiment=experiment, version=version)
        )
        newest = _max_occurred(warehouse, MAX_OCCURRED_SQL, names)
    else:
        watermark = previous.watermark
        parameters = build_parameters(plan, experiment=experiment, version=version, watermark=watermark)
        counting = changed_units_sql(plan)
        bound = {k: v for k, v in parameters.items() if k in placeholders(counting)}
        units = int(warehouse.query_arrow(counting, bound).column("units")[0].as_py())
        if not units:  # nothing stored since the watermark: keep it (the next refresh looks from there)
            return RefreshReport(False, time.perf_counter() - started, previous, 0, 0, started_at=now)
        recomputed = units
        if fold:  # add the new rows where they can be added, then recompute what is left, if anything
            folding = fold_sql(plan)
            warehouse.command(folding, {k: v for k, v in parameters.items() if k in placeholders(folding)})
            left = recompute_units_sql(plan)
            bound = {k: v for k, v in parameters.items() if k in placeholders(left)}
            after = warehouse.query_arrow(left, bound).to_pylist()[0]
            recomputed = int(after["units"])
            units = int(after["folded"]) + recomputed
            changed = _utc(after["max_occurred_at"]) if int(after["rows"]) else EPOCH
        else:
            changed = _max_occurred(warehouse, changed_max_occurred_sql(), {**names, "watermark": watermark})
        if recomputed:
            warehouse.command(build_sql(plan, incremental=True, after_fold=fold), parameters)
            # rows stored during the recomputation may be in it: their occurred_at must count
            changed = _max_occurred(warehouse, changed_max_occurred_sql(), {**names, "watermark": watermark})
        newest = max(previous.max_occurred_at, changed)
    state = UnitValuesState(
        watermark=now - timedelta(seconds=margin_seconds),
        max_occurred_at=newest,
        version=version,
        refreshed_at=now,
    )
    _write_state(warehouse, experiment, plan, state, now)
    seconds = time.perf_counter() - started
    logger.info(
        "unit values of %s (%s): %s in %.2f s",
        experiment,
        plan.key,
        "full build" if previous is None else f"{units} units refreshed, {recomputed} recomputed in full",
        seconds,
    )
    return RefreshReport(previous is None, seconds, state, units, recomputed, started_at=now)


def _fresh_enough(
    warehouse: Warehouse, known: UnitValuesState, until: datetime, open_window: bool, max_staleness: float
) -> bool:
    """Whether ``known`` may answer without a refresh: a bound is set, the window was still open at the
    last refresh (``until`` defaulted to now, or is not before that refresh) and the refresh is younger
    than the bound (warehouse clock). A window that ended before it keeps refresh-then-read."""
    if max_staleness <= 0 or known.refreshed_at <= EPOCH:
        return False
    if not open_window and until < known.refreshed_at:
        return False
    return (_now(warehouse) - known.refreshed_at).total_seconds() < max_staleness


def overlaid_sums(
    warehouse: Warehouse,
    experiment: str,
    plan: UnitValuesPlan,
    known: UnitValuesState,
    *,
    since: datetime,
    until: datetime,
    dimension: str = "",
) -> tuple[UnitValueSums, datetime, int] | None:
    """The sums as if a refresh had just run, without writing (decision 0100): the stored values with
    the rows stored since ``known``'s watermark added, the units that cannot be added to recomputed from
    all their rows in a second statement; the newest ``occurred_at`` among the new rows and how many
    units were recomputed. None when no unit counts or when the units to recompute are too many to name
    in one parameter (:data:`MAX_RECOMPUTE_PARAMETER_BYTES`): the caller refreshes."""
    parameters = {
        **build_parameters(plan, experiment=experiment, version=0, watermark=known.watermark),
        "since": since,
        "until": until,
        "dimension": dimension,
    }
    sql = overlay_read_sql(plan)
    rows = warehouse.query_arrow(sql, _bound(sql, parameters)).to_pylist()
    newest = max((_utc(row["newest"]) for row in rows), default=EPOCH)
    recompute = sorted({str(unit) for row in rows if row["kind"] for unit in row["recompute"]})
    if sum(len(unit.encode()) + 4 for unit in recompute) > MAX_RECOMPUTE_PARAMETER_BYTES:
        return None  # too many units to name in one parameter: refresh instead
    rows = [row for row in rows if not row["kind"]]
    if recompute:
        again = recompute_read_sql(plan)
        rows = add_rows(
            rows,
            warehouse.query_arrow(again, _bound(again, {**parameters, "recompute": recompute})).to_pylist(),
        )
    if not rows:
        return None
    sums = UnitValueSums(plan.batch.decode(rows), plan.decode_covariates(rows), known.refreshed_at, False)
    return sums, newest, len(recompute)


_ADDED = (
    "sums",
    "squares",
    "crosses",
    "covariate_sums",
    "covariate_squares",
    "covariate_crosses",
    "covariate_units",
)


def add_rows(left: list[dict[str, Any]], right: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of ``read_sql`` over two disjoint sets of units → the rows over both (sums added per segment
    and variation), ordered like ``read_sql``'s."""
    merged: dict[tuple[str, int], dict[str, Any]] = {}
    for row in [*left, *right]:
        key = (str(row["segment"]), int(row["variation_id"]))
        if key not in merged:
            merged[key] = dict(row)
            continue
        into = merged[key]
        into["units"] = int(into["units"]) + int(row["units"])
        for column in _ADDED:
            if column in row:
                into[column] = [a + b for a, b in zip(into[column], row[column], strict=True)]
    return [merged[key] for key in sorted(merged)]


def _bound(sql: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in parameters.items() if k in placeholders(sql)}


def fetch_unit_value_sums(
    warehouse: Warehouse,
    experiment: str,
    plan: UnitValuesPlan,
    *,
    since: datetime,
    until: datetime,
    dimension: str = "",
    margin_seconds: float = 30.0,
    max_staleness_seconds: float = 0.0,
    open_window: bool = False,
    fold: bool = True,
    overlay_max_age_seconds: float | None = None,
) -> UnitValueSums | None:
    """Sums from the unit values, refreshed first unless the last refresh is younger than
    ``max_staleness_seconds`` and the window (``open_window``: ``until`` is "now") was open then; None
    when they cannot answer this window (use the scan)."""
    known = read_state(warehouse, experiment, plan)
    if known is not None and until <= known.max_occurred_at:
        return None  # events at or after `until` are folded in: only the scan can leave them out
    if known is None:
        newest = _max_occurred(
            warehouse, MAX_OCCURRED_SQL, {"experiment": experiment, "event_names": list(plan.event_names)}
        )
        if until <= newest:
            return None  # do not build for a window the values could not answer anyway
    if known is not None and _fresh_enough(warehouse, known, until, open_window, max_staleness_seconds):
        as_of, refreshed = known.refreshed_at, False
    elif known is not None and overlay_max_age_seconds is not None:
        now = _now(warehouse)
        if (now - known.refreshed_at).total_seconds() < overlay_max_age_seconds:
            found = overlaid_sums(
                warehouse, experiment, plan, known, since=since, until=until, dimension=dimension
            )
            if found is not None:
                sums, newest, _recomputed = found
                if until <= max(newest, known.max_occurred_at):
                    return None  # a new row at or after `until`: only the scan can leave it out
                return UnitValueSums(sums.by_segment, sums.covariates, min(now, until), True)
        report = refresh(warehouse, experiment, plan, margin_seconds=margin_seconds, fold=fold)
        if until <= report.state.max_occurred_at:
            return None
        as_of, refreshed = report.started_at, True
    else:
        report = refresh(warehouse, experiment, plan, margin_seconds=margin_seconds, fold=fold)
        if until <= report.state.max_occurred_at:
            return None
        as_of, refreshed = report.started_at, True
    parameters = {
        "experiment": experiment,
        "plan_key": plan.key,
        "since": since,
        "until": until,
        "dimension": dimension,
    }
    rows = warehouse.query_arrow(read_sql(plan), parameters).to_pylist()
    return UnitValueSums(plan.batch.decode(rows), plan.decode_covariates(rows), min(as_of, until), refreshed)
