"""Realtime health page: traffic per minute, ingest and dead-letter rates, lag, SRM, progress, alerts."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboards.catalog import live_srm
from dashboards.context import DashboardContext
from jobs.results.contract import SRM_THRESHOLD

__all__ = ["health", "minute_grid", "planned_units", "series_by_minute"]

PLANNED_MDE = 0.05
"""Relative lift the estimated planned size detects (80 % power, α 0.05) when none is configured."""


def minute_grid(since: datetime, until: datetime) -> list[datetime]:
    """Every minute start from ``since`` up to ``until`` (both floored to the minute)."""
    start = since.replace(second=0, microsecond=0)
    end = until.replace(second=0, microsecond=0)
    minutes = int((end - start).total_seconds() // 60)
    return [start + timedelta(minutes=i) for i in range(minutes + 1)]


def last_60_seconds(values: list[int], now: datetime) -> int:
    """Records in the 60 s before ``now``, from per-minute counts whose last slot is ``now``'s minute.

    The current minute so far, plus the share of the previous minute that falls inside the 60 s (its
    records taken as spread evenly). A burst that just arrived shows at once, where "the last full
    minute" would still say 0."""
    if not values:
        return 0
    elapsed = (now.second + now.microsecond / 1e6) / 60
    previous = values[-2] if len(values) > 1 else 0
    return round(values[-1] + previous * (1 - elapsed))


def _minute_key(value: datetime) -> datetime:
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    return value.astimezone(UTC).replace(second=0, microsecond=0)


def series_by_minute(
    rows: list[dict[str, Any]], grid: list[datetime], group: str, value: str
) -> dict[Any, list[int]]:
    """Group value → counts on ``grid`` (zeros where no row)."""
    index = {minute: i for i, minute in enumerate(grid)}
    series: dict[Any, list[int]] = defaultdict(lambda: [0] * len(grid))
    for row in rows:
        position = index.get(_minute_key(row["minute"]))
        if position is not None:
            series[row[group]][position] += int(row[value])
    return dict(series)


def planned_units(context: DashboardContext, key: str, weights: tuple[float, ...]) -> dict[str, Any]:
    """The planned sample size: ``planned_units`` in the experiment's metadata or its ``analysis:`` block,
    else an estimate from the latest snapshot's control of the primary metric
    (docs/decisions/0012-dashboard-data-sources.md)."""
    from jobs.stats.power import sample_size_per_variation

    definition = context.registry.snapshot().experiment_definition(key)
    configured = definition.metadata.get("planned_units") if definition else None
    if isinstance(configured, int | float) and configured > 0:
        return {"planned": int(configured), "source": "planned_units in the experiment's metadata"}
    analysis = definition.metadata.get("analysis") if definition else None
    configured = analysis.get("planned_units") if isinstance(analysis, dict) else None
    if isinstance(configured, int | float) and configured > 0:  # the `analysis:` block (decision 0015)
        return {"planned": int(configured), "source": "planned_units in the experiment's analysis block"}
    rows = [
        r
        for r in context.runner.run("experiments_latest_results")
        if r["experiment_key"] == key and r["role"] == "primary" and r["variation_id"] == 0
    ]
    if not rows or not rows[0]["units"] or not weights:
        return {"planned": None, "source": "no planned_units and no results snapshot to estimate from"}
    row = rows[0]
    n, mean = row["units"], row["sum"] / row["units"]
    variance = max(row["sum_squares"] / n - mean * mean, 0.0)
    if mean == 0 or variance == 0 or not math.isfinite(variance):
        return {"planned": None, "source": f"cannot estimate: {row['metric']} has no variance yet"}
    per_variation = sample_size_per_variation(PLANNED_MDE * abs(mean), variance)
    share = min(weights) / sum(weights)
    return {
        "planned": math.ceil(per_variation / share),
        "source": f"estimate: {PLANNED_MDE:.0%} relative lift of {row['metric']}, 80% power, α 0.05",
    }


def _default_experiment(context: DashboardContext) -> str | None:
    snapshot = context.registry.snapshot()
    running = snapshot.running_experiments()
    if running:
        return running[0].key
    return min(snapshot.experiments) if snapshot.experiments else None


def health(context: DashboardContext, experiment: str | None = None) -> dict[str, Any]:
    """Everything the realtime health page draws, for one experiment (default: the first running one)."""
    key = experiment or _default_experiment(context)
    now = datetime.now(UTC)
    since = now - timedelta(minutes=context.settings.dashboard_health_minutes)
    grid = minute_grid(since, now)
    labels = [minute.isoformat() for minute in grid]
    runner = context.runner
    ingest = series_by_minute(runner.run("health_ingest_rate", {"since": since}), grid, "kind", "records")
    dead_rows = runner.run("health_dead_letters", {"since": since})
    dead = series_by_minute(dead_rows, grid, "reason", "records")
    valid_total = sum(sum(values) for values in ingest.values())
    dead_total = sum(sum(values) for values in dead.values())
    alerts = runner.run_optional("quality_open_alerts")
    document: dict[str, Any] = {
        "experiment": key,
        "now": now.isoformat(),
        "minutes": labels,
        "refresh_seconds": context.settings.dashboard_refresh_seconds,
        "ingest_per_minute": {kind: ingest.get(kind, [0] * len(grid)) for kind in ("events", "exposures")},
        "ingest_last_60s": {
            kind: last_60_seconds(ingest.get(kind, [0] * len(grid)), now) for kind in ("events", "exposures")
        },
        "dead_letters_per_minute": dead,
        "dead_letter_rate": dead_total / (dead_total + valid_total) if dead_total + valid_total else None,
        "dead_letters_by_reason": {reason: sum(values) for reason, values in sorted(dead.items())},
        "consumer_lag": context.lag.latest.to_json()
        if context.lag is not None
        else {"status": "unknown", "total": None, "by_topic": {}, "reason": "lag monitor off", "read_at": ""},
        "open_alerts": None if alerts is None else [_alert_json(a) for a in alerts],
        "srm_threshold": SRM_THRESHOLD,
    }
    if key is None:
        return document
    spec = context.registry.snapshot().experiments.get(key)
    names = {v.id: v.name for v in spec.variations} if spec else {}
    exposures = series_by_minute(
        runner.run("health_exposures_per_minute", {"experiment": key, "since": since}),
        grid,
        "variation_id",
        "exposures",
    )
    units, counted_at = context.units.by_experiment(key)
    weights = spec.weights if spec else ()
    srm_now = live_srm(units, weights)
    total = sum(units.values())
    document.update(
        {
            "experiment_name": spec.name if spec else key,
            "exposures_per_minute": [
                {"variation_id": v, "name": names.get(v, f"variation {v}"), "values": values}
                for v, values in sorted(exposures.items())
            ],
            "units_by_variation": [
                {"variation_id": v, "name": names.get(v, f"variation {v}"), "units": units.get(v, 0)}
                for v in sorted(set(units) | set(names))
            ],
            "units": total,
            "units_counted_at": counted_at.isoformat(),
            "weights": [w / sum(weights) for w in weights] if weights else [],
            "srm_p_value": srm_now,
            "srm_flagged": srm_now is not None and srm_now < SRM_THRESHOLD,
            "srm_over_time": [
                {"computed_at": r["computed_at"].isoformat(), "srm_p_value": r["srm_p_value"]}
                for r in runner.run("health_srm_over_time", {"experiment": key})
            ],
            "progress": {**planned_units(context, key, weights), "units": total},
        }
    )
    if document["open_alerts"] is not None:
        document["experiment_alerts"] = [a for a in document["open_alerts"] if a["experiment"] in (key, None)]
    return document


def _alert_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "fingerprint": row["fingerprint"],
        "check": row["check"],
        "experiment": row["experiment"],
        "table_name": row["table_name"],
        "detail": row["detail"],
        "since": row["first_fired_at"].isoformat() if row["first_fired_at"] else None,
        "at": row["at"].isoformat(),
    }
