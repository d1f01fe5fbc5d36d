"""Every shape of the generated results SQL (jobs.results.metric_sql), checked as text against a snapshot.

One file per shape in ``metric_sql_snapshots/``. A change to the rule or to a query shows up here as a
diff to read in review; when it is intended, rewrite the snapshots with
``XP_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/results/test_metric_sql_snapshots.py`` and commit
them with the change. The numbers the SQL gives are checked against recounts by the integration tests
(tests/integration/test_results*.py, test_unit_values*.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from assignment.metrics_catalog import DEFAULT_METRICS, metric_from_dict
from jobs.results.batch import batch_plan
from jobs.results.metric_sql.adjustment import adjustment_sums_sql
from jobs.results.metric_sql.funnel import funnel_sql
from jobs.results.metric_sql.history import history_sums_sql
from jobs.results.metric_sql.quantile import quantile_counts_sql, quantile_sketch_sql
from jobs.results.metric_sql.scan import metric_sums_sql
from jobs.results.metric_sql.unit_overlay import overlay_read_sql, recompute_read_sql
from jobs.results.metric_sql.unit_values import (
    build_sql,
    changed_units_sql,
    fold_sql,
    read_sql,
    recompute_units_sql,
)
from jobs.unit_values.plan import unit_values_plan

SNAPSHOTS = Path(__file__).parent / "metric_sql_snapshots"
CONVERSION, REVENUE, PAGEVIEWS = DEFAULT_METRICS
ORDERS = metric_from_dict({"name": "orders", "event": "purchase", "aggregation": "count", "window": "1h"})
AOV = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "orders"})
CATALOG = {m.name: m for m in (*DEFAULT_METRICS, ORDERS, AOV)}
BATCH = batch_plan([CONVERSION, REVENUE, PAGEVIEWS, ORDERS, AOV], CATALOG)
PLAIN = unit_values_plan(BATCH, cuped=False, covariate_days=14.0)
CUPED = unit_values_plan(BATCH, cuped=True, covariate_days=14.0)

SHAPES: dict[str, Callable[[], str]] = {
    "scan_experiment_sums": BATCH.sql,
    "scan_experiment_sums_no_ratio": batch_plan([CONVERSION, PAGEVIEWS], CATALOG).sql,
    "scan_metric_sums": metric_sums_sql,
    "scan_metric_segment_sums": lambda: metric_sums_sql(segment=True),
    "scan_metric_cuped_sums": lambda: metric_sums_sql(cuped=True),
    "unit_values_build_full": lambda: build_sql(PLAIN, incremental=False),
    "unit_values_build_incremental_cuped": lambda: build_sql(CUPED, incremental=True),
    "unit_values_changed_units_cuped": lambda: changed_units_sql(CUPED),
    "unit_values_fold": lambda: fold_sql(PLAIN),  # decision 0099
    "unit_values_fold_cuped": lambda: fold_sql(CUPED),
    "unit_values_build_after_fold": lambda: build_sql(PLAIN, incremental=True, after_fold=True),
    "unit_values_recompute_units_cuped": lambda: recompute_units_sql(CUPED),
    "unit_values_read": lambda: read_sql(PLAIN),
    "unit_values_read_cuped": lambda: read_sql(CUPED),
    "unit_values_overlay_read": lambda: overlay_read_sql(PLAIN),  # decision 0100
    "unit_values_overlay_read_cuped": lambda: overlay_read_sql(CUPED),
    "unit_values_overlay_recompute_cuped": lambda: recompute_read_sql(CUPED),
    "funnel_ordered_3_steps": lambda: funnel_sql(3, ordered=True),
    "funnel_unordered_2_steps": lambda: funnel_sql(2, ordered=False),
    "history_sums": history_sums_sql,  # xp plan
    "adjustment_sums_2_covariates": lambda: adjustment_sums_sql(2),  # CUPED++, decision 0093
    "adjustment_sums_strata_only": lambda: adjustment_sums_sql(0),
    "quantile_counts_per_unit": lambda: quantile_counts_sql("unit"),
    "quantile_sketch_per_unit": lambda: quantile_sketch_sql("unit"),
    "quantile_sketch_per_event": lambda: quantile_sketch_sql("event"),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_generated_sql_matches_its_snapshot(shape: str) -> None:
    sql = SHAPES[shape]()
    path = SNAPSHOTS / f"{shape}.sql"
    if os.environ.get("XP_UPDATE_SNAPSHOTS") == "1":
        path.write_text(sql, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run with XP_UPDATE_SNAPSHOTS=1 to write it"
    assert sql == path.read_text(encoding="utf-8"), f"{shape} changed: see the module docstring"


def test_every_snapshot_is_a_shape() -> None:
    assert {p.stem for p in SNAPSHOTS.glob("*.sql")} == set(SHAPES)
