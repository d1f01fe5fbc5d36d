"""``xp jobs run etl``: per-unit and daily metric rollups, rebuilt per date range in ClickHouse.

For every experiment of the registry and every event metric it analyses (``metrics_for``; a ratio metric
is the ratio of two of them, so only its parts are rolled up):

- ``xp.unit_metrics`` (``sql/queries/etl_unit_metrics.sql``): one row per unit first exposed in the range,
  the metric after first exposure within its attribution window, and the CUPED covariate (the same
  metric over :attr:`EtlSettings.etl_covariate_days` before first exposure). Units seen in several
  variations or overridden are kept, flagged, with ``eligible = 0``;
- ``xp.daily_metrics`` (``sql/queries/etl_daily_metrics.sql``): per variation and UTC day of event time,
  units with counted events, Σ value, Σ value² over eligible units.

Idempotent per range: each experiment's rows of the range are deleted first (a synchronous mutation,
``etl_delete_*.sql``), then inserted again. ``--since/--until`` select units by first-exposure day and
daily rows by event day; both are widened to whole UTC days (:func:`etl_range`).

Pure parts (:func:`etl_range`, :func:`event_metrics`, :func:`metric_parameters`) are tested without a
warehouse; :func:`rollup_experiments` runs the SQL; :func:`run_etl` is the job (registry + warehouse).
Errors: warehouse errors propagate (:class:`~xpcore.errors.TransientError` / ``TerminalError``); a bad
range is a :class:`~xpcore.errors.ValidationError`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from typing import TYPE_CHECKING, Any

from assignment.metrics_catalog import MetricDefinition, MetricType, metrics_for
from xpcore.config import EtlSettings
from xpcore.errors import ValidationError
from xpcore.warehouse import load_query
from xpcore.warehouse.sqltext import placeholders

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from xpcore.warehouse import Warehouse

__all__ = [
    "DEFAULT_COVARIATE_DAYS",
    "EPOCH_DAY",
    "QUERIES",
    "EtlRange",
    "EtlReport",
    "EtlSettings",
    "ProgressCallback",
    "bind",
    "etl_range",
    "event_metrics",
    "metric_parameters",
    "rollup_experiments",
    "run_etl",
]

logger = logging.getLogger(__name__)

DEFAULT_COVARIATE_DAYS: float = EtlSettings.model_fields["etl_covariate_days"].default
"""Pre-exposure window of the CUPED covariate (Deng et al. 2013 use 1–2 weeks)."""

EPOCH_DAY = date(1970, 1, 1)
"""Default start of a run: everything."""

QUERIES = (
    "etl_delete_unit_metrics",
    "etl_delete_daily_metrics",
    "etl_unit_metrics",
    "etl_daily_metrics",
    "etl_range_rows",
)
"""The named queries a run uses (``sql/queries/NAME.sql``)."""

ProgressCallback = Callable[[int, int, str], None]
"""``(steps done, steps in total, label of the step just done)``."""


@dataclass(frozen=True, slots=True)
class EtlRange:
    """Whole UTC days ``[since_day, until_day)``: units by first-exposure day, daily rows by event day."""

    since_day: date
    until_day: date

    @property
    def since(self) -> datetime:
        return datetime.combine(self.since_day, day_time(), tzinfo=UTC)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.until_day, day_time(), tzinfo=UTC)

    def __str__(self) -> str:
        return f"[{self.since_day.isoformat()}, {self.until_day.isoformat()})"


def etl_range(since: datetime | None, until: datetime | None, *, now: datetime) -> EtlRange:
    """The whole-day range a run rebuilds: ``since`` rounded down to its UTC day (default 1970-01-01),
    ``until`` rounded up (default ``now``, so today is included). ValidationError if empty."""
    start = since.astimezone(UTC).date() if since is not None else EPOCH_DAY
    end_time = (until or now).astimezone(UTC)
    end = end_time.date()
    if end_time != datetime.combine(end, day_time(), tzinfo=UTC):
        end += timedelta(days=1)
    if end <= start:
        raise ValidationError(f"--until must be after --since (the range [{start}, {end}) is empty)")
    return EtlRange(start, end)


def event_metrics(experiment: ExperimentSpec) -> list[MetricDefinition]:
    """The experiment's metrics that are rolled up: every event metric it analyses, ratio parts included
    (ratio metrics themselves are derived from their parts)."""
    return [m for m in metrics_for(experiment) if m.type is not MetricType.RATIO and m.event_name]


def metric_parameters(metric: MetricDefinition) -> dict[str, Any]:
    """The metric's bound parameters of ``etl_unit_metrics``/``etl_daily_metrics``."""
    if metric.type is MetricType.RATIO or not metric.event_name or metric.aggregation is None:
        raise ValidationError(f"metric {metric.name!r} is not an event metric")
    field = metric.value_field or ""
    return {
        "metric": metric.name,
        "event_name": metric.event_name,
        "aggregation": metric.aggregation.value,
        "property": field.removeprefix("properties.") if field.startswith("properties.") else "",
        "window_seconds": (metric.window_hours or 0.0) * 3600.0,
    }


@dataclass(frozen=True, slots=True)
class EtlReport:
    """What a run did."""

    range: EtlRange
    experiments: int
    metrics: int
    """(experiment, metric) pairs rolled up."""
    unit_rows: int
    """Rows of ``xp.unit_metrics`` in the range after the run."""
    daily_rows: int
    """Rows of ``xp.daily_metrics`` in the range after the run."""
    seconds: float

    @property
    def ok(self) -> bool:
        """Always: a run that could not roll up raises instead."""
        return True

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "since": self.range.since_day.isoformat(),
            "until": self.range.until_day.isoformat(),
            "experiments": self.experiments,
            "metrics": self.metrics,
            "unit_rows": self.unit_rows,
            "daily_rows": self.daily_rows,
            "seconds": self.seconds,
        }

    def summary(self) -> str:
        """One line for people (`xp jobs run etl` prints it)."""
        return (
            f"etl {self.range}: {self.experiments} experiments, {self.metrics} metrics → "
            f"{self.unit_rows} unit_metrics rows, {self.daily_rows} daily_metrics rows "
            f"in {self.seconds:.1f} s"
        )


def bind(sql: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``parameters`` that ``sql`` has placeholders for; ValidationError if one is missing
    (so a query file and this module cannot drift apart silently)."""
    wanted = placeholders(sql)
    missing = sorted(set(wanted) - set(parameters))
    if missing:
        raise ValidationError(f"ETL query needs parameters that were not given: {', '.join(missing)}")
    return {name: parameters[name] for name in wanted}


def rollup_experiments(
    warehouse: Warehouse,
    experiments: Sequence[ExperimentSpec],
    etl: EtlRange,
    *,
    covariate_days: float = DEFAULT_COVARIATE_DAYS,
    computed_at: datetime | None = None,
    on_step: ProgressCallback | None = None,
) -> EtlReport:
    """Rebuild the range's rows of ``xp.unit_metrics`` and ``xp.daily_metrics`` for ``experiments``."""
    started = time.monotonic()
    computed_at = computed_at or datetime.now(UTC)
    sql = {name: load_query(name) for name in QUERIES}
    plan = [(e, event_metrics(e)) for e in experiments]
    total = sum(1 + len(metrics) for _, metrics in plan)
    done = 0
    pairs = 0
    bounds = {"since": etl.since, "until": etl.until, "since_day": etl.since_day, "until_day": etl.until_day}
    for experiment, metrics in plan:
        base = {"experiment": experiment.key, **bounds}
        for name in ("etl_delete_unit_metrics", "etl_delete_daily_metrics"):
            warehouse.command(sql[name], bind(sql[name], base))
        done += 1
        if on_step:
            on_step(done, total, f"{experiment.key}: cleared")
        for metric in metrics:
            parameters = {
                **base,
                **metric_parameters(metric),
                "covariate_seconds": covariate_days * 86400.0,
                "computed_at": computed_at,
            }
            for name in ("etl_unit_metrics", "etl_daily_metrics"):
                warehouse.command(sql[name], bind(sql[name], parameters))
            pairs += 1
            done += 1
            if on_step:
                on_step(done, total, f"{experiment.key}: {metric.name}")
    counts = warehouse.query_arrow(
        sql["etl_range_rows"],
        bind(sql["etl_range_rows"], {**bounds, "experiments": [e.key for e, _ in plan]}),
    ).to_pylist()[0]
    unit_rows, daily_rows = int(counts["unit_rows"]), int(counts["daily_rows"])
    report = EtlReport(etl, len(experiments), pairs, unit_rows, daily_rows, time.monotonic() - started)
    logger.info(
        "etl done",
        extra={"range": str(etl), "experiments": report.experiments, "unit_rows": unit_rows},
    )
    return report


def run_etl(
    settings: EtlSettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    covariate_days: float | None = None,
    on_step: ProgressCallback | None = None,
    registry_timeout: float = 10.0,
) -> EtlReport:
    """``xp jobs run etl``: every experiment of the registry (any status: a stopped experiment's range
    can still be backfilled), rebuilt over :func:`etl_range` of ``since``/``until``."""
    from assignment.registry_topic import read_registry
    from xpcore.warehouse import open_warehouse

    etl = etl_range(since, until, now=datetime.now(UTC))
    if covariate_days is None:
        covariate_days = settings.etl_covariate_days
    snapshot = read_registry(settings, timeout=registry_timeout)
    experiments = [e for _, e in sorted(snapshot.experiments.items())]
    warehouse = open_warehouse(settings)
    try:
        return rollup_experiments(
            warehouse, experiments, etl, covariate_days=float(covariate_days), on_step=on_step
        )
    finally:
        warehouse.close()
