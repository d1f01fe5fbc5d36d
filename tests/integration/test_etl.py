"""The ETL rollups against a Python recount, on a fresh migrated chDB store (``warehouse`` fixture).

Hand-made exposures and events over several days (some units in two variations, some overridden, events
before and after first exposure, inside and outside windows, a re-sent event) are loaded; the rows of
``xp.unit_metrics`` and ``xp.daily_metrics`` are compared with a recount in Python; re-runs of the same
range leave the tables identical, a partial range re-run touches only that range.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assignment import registry_topic
from assignment.metrics_catalog import MetricDefinition, metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, RegistrySnapshot, VariationSpec
from jobs.etl import EtlRange, EtlSettings, etl_range, event_metrics, rollup_experiments, run_etl
from schemas import Exposure
from schemas.arrow import to_arrow
from schemas.records import ExperimentStatus, MetricEvent
from tests.factories import make_exposure
from xpcore.warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.integration

BASE = datetime(2026, 11, 10, tzinfo=UTC)
DAYS = 6
COVARIATE_DAYS = 2.0
COMPUTED_AT = datetime(2026, 11, 25, 12, tzinfo=UTC)
ORDERS = metric_from_dict({"name": "orders", "event": "purchase", "aggregation": "count", "window": "1d"})
PLANS = metric_from_dict(
    {"name": "plans", "event": "purchase", "aggregation": "unique", "value_field": "properties.plan"}
)
AOV = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "orders"})
SPEC = ExperimentSpec(
    key="exp",
    name="exp",
    status=ExperimentStatus.RUNNING,
    feature_key="exp",
    variations=tuple(VariationSpec(i, f"v{i}", f"V{i}", 0.5) for i in range(2)),
    metrics=MetricsSpec(
        primary=("conversion",),
        secondary=("pageviews", "plans", "aov"),
        definitions=(ORDERS, PLANS, AOV),
    ),
)
FULL = EtlRange(BASE.date(), (BASE + timedelta(days=DAYS)).date())


@dataclass
class Unit:
    variation: int
    first: datetime
    eligible: bool
    multiple: bool
    overridden: bool


class HandMade:
    """Units of 'exp' first exposed over DAYS days, with events from 3 days before to 3 days after."""

    def __init__(self, seed: int = 3, units: int = 300) -> None:
        rng = random.Random(seed)
        self.units: dict[str, Unit] = {}
        self.exposures: list[Exposure] = []
        self.events: list[MetricEvent] = []
        for u in range(units):
            unit = f"u{u}"
            first = BASE + timedelta(seconds=rng.randrange(DAYS * 86400))
            variation = rng.randrange(2)
            multiple, overridden = u % 17 == 0, u % 13 == 0
            seen = [variation, 1 - variation] if multiple else [variation]
            for i, v in enumerate(seen):
                self.exposures.append(self._exposure(unit, v, first + timedelta(hours=i), i, overridden))
            self.units[unit] = Unit(variation, first, not (multiple or overridden), multiple, overridden)
            for j in range(rng.choice([0, 1, 3, 6])):
                name = rng.choice(["purchase", "pageview"])
                value = round(rng.uniform(1, 50), 2) if name == "purchase" else None
                properties = {"plan": rng.choice(["a", "b", "c"])} if name == "purchase" else {}
                at = first + timedelta(minutes=rng.randrange(-3 * 1440, 3 * 1440))
                self.events.append(MetricEvent(
                    event_id=f"e{u}-{j}", unit_id=unit, event_name=name, value=value,
                    properties=properties, occurred_at=at,
                ))  # fmt: skip
        # an event exactly at first exposure counts after it; another unit's experiment never leaks in
        self.events.append(MetricEvent(event_id="edge", unit_id="u1", event_name="pageview",
                                       occurred_at=self.units["u1"].first))  # fmt: skip
        self.exposures.append(self._exposure("u2", 1, BASE, 0, False, experiment="other"))

    _exposure = staticmethod(make_exposure)

    @staticmethod
    def aggregate(metric: MetricDefinition, events: list[MetricEvent]) -> float:
        aggregation = metric.aggregation.value if metric.aggregation else ""
        if aggregation == "binary":
            return float(bool(events))
        if aggregation == "count":
            return float(len(events))
        if aggregation == "sum":
            return sum(e.value or 0.0 for e in events)
        return float(len({e.properties["plan"] for e in events}))

    def matching(self, metric: MetricDefinition, unit: str) -> list[MetricEvent]:
        return [e for e in self.events if e.unit_id == unit and e.event_name == metric.event_name]

    def counted(self, metric: MetricDefinition, unit: str, e: MetricEvent) -> bool:
        first = self.units[unit].first
        window = timedelta(hours=metric.window_hours) if metric.window_hours else None
        return first <= e.occurred_at and (window is None or e.occurred_at <= first + window)

    def unit_rows(self, metric: MetricDefinition, etl: EtlRange) -> dict[str, tuple[Any, ...]]:
        """unit → (variation, eligible, value, covariate) for units first exposed in the range."""
        rows = {}
        for unit, info in self.units.items():
            if not etl.since <= info.first < etl.until:
                continue
            events = self.matching(metric, unit)
            post = [e for e in events if self.counted(metric, unit, e)]
            start = info.first - timedelta(days=COVARIATE_DAYS)
            pre = [e for e in events if start <= e.occurred_at < info.first]
            value, covariate = self.aggregate(metric, post), self.aggregate(metric, pre)
            rows[unit] = (info.variation, info.eligible, round(value, 6), round(covariate, 6))
        return rows

    def daily_rows(self, metric: MetricDefinition, etl: EtlRange) -> dict[tuple[int, date], tuple[Any, ...]]:
        """(variation, day) → (units, sum, sum_squares) over eligible units and days in the range."""
        per_unit_day: dict[tuple[int, date, str], list[MetricEvent]] = defaultdict(list)
        for unit, info in self.units.items():
            if not info.eligible:
                continue
            for e in self.matching(metric, unit):
                day = e.occurred_at.date()
                if self.counted(metric, unit, e) and etl.since_day <= day < etl.until_day:
                    per_unit_day[(info.variation, day, unit)].append(e)
        totals: dict[tuple[int, date], list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        for (variation, day, _), events in per_unit_day.items():
            value = self.aggregate(metric, events)
            total = totals[(variation, day)]
            total[0] += 1
            total[1] += value
            total[2] += value * value
        return {k: (int(t[0]), round(t[1], 6), round(t[2], 6)) for k, t in totals.items()}


def load(warehouse: Warehouse, data: HandMade) -> None:
    warehouse.insert_arrow("xp.exposures", to_arrow(data.exposures, Exposure))
    warehouse.insert_arrow("xp.events", to_arrow(data.events, MetricEvent))
    # a re-sent batch of events (another insert) must count once: xp.events is read FINAL
    warehouse.insert_arrow("xp.events", to_arrow(data.events[:20], MetricEvent))


def run(warehouse: Warehouse, etl: EtlRange) -> Any:
    return rollup_experiments(warehouse, [SPEC], etl, covariate_days=COVARIATE_DAYS, computed_at=COMPUTED_AT)


def unit_table(warehouse: Warehouse, metric: str) -> dict[str, tuple[Any, ...]]:
    rows = warehouse.query_arrow(
        "SELECT unit_id, variation_id, eligible, value, covariate, count() OVER (PARTITION BY unit_id) AS n "
        "FROM xp.unit_metrics WHERE experiment_key = 'exp' AND metric = {metric:String}",
        {"metric": metric},
    ).to_pylist()
    assert all(r["n"] == 1 for r in rows), "a unit appears twice"
    return {
        r["unit_id"]: (r["variation_id"], bool(r["eligible"]), round(r["value"], 6), round(r["covariate"], 6))
        for r in rows
    }


def daily_table(warehouse: Warehouse, metric: str) -> dict[tuple[int, date], tuple[Any, ...]]:
    rows = warehouse.query_arrow(
        "SELECT variation_id, day, units, sum, sum_squares FROM xp.daily_metrics "
        "WHERE experiment_key = 'exp' AND metric = {metric:String}",
        {"metric": metric},
    ).to_pylist()
    keys = [(r["variation_id"], r["day"]) for r in rows]
    assert len(keys) == len(set(keys)), "a day appears twice"
    return {
        (r["variation_id"], r["day"]): (r["units"], round(r["sum"], 6), round(r["sum_squares"], 6))
        for r in rows
    }


def snapshot(warehouse: Warehouse) -> list[dict[str, Any]]:
    unit = warehouse.query_arrow("SELECT * FROM xp.unit_metrics ORDER BY ALL").to_pylist()
    daily = warehouse.query_arrow("SELECT * FROM xp.daily_metrics ORDER BY ALL").to_pylist()
    return unit + daily


def test_rollups_equal_a_python_recount(warehouse: Warehouse) -> None:
    data = HandMade()
    load(warehouse, data)
    report = run(warehouse, FULL)
    metrics = event_metrics(SPEC)
    assert {m.name for m in metrics} == {"conversion", "pageviews", "plans", "revenue", "orders"}
    assert report.metrics == len(metrics)
    for metric in metrics:
        expected_units = data.unit_rows(metric, FULL)
        assert unit_table(warehouse, metric.name) == expected_units, metric.name
        assert daily_table(warehouse, metric.name) == data.daily_rows(metric, FULL), metric.name
    assert report.unit_rows == len(data.units) * len(metrics)
    # the data exercises what it should: exclusions, covariates, the window
    pageviews = data.unit_rows(next(m for m in metrics if m.name == "pageviews"), FULL)
    assert sum(1 for row in pageviews.values() if not row[1]) > 10
    assert sum(1 for row in pageviews.values() if row[3] > 0) > 20
    assert warehouse.query_arrow(
        "SELECT count() AS n FROM xp.unit_metrics WHERE experiment_key = 'other'"
    ).to_pylist() == [{"n": 0}]


def test_covariate_is_the_pre_exposure_recount(warehouse: Warehouse) -> None:
    data = HandMade(seed=11)
    load(warehouse, data)
    run(warehouse, FULL)
    rows = warehouse.query_arrow(
        "SELECT unit_id, covariate, covariate_events, covariate_seconds FROM xp.unit_metrics "
        "WHERE metric = 'pageviews'"
    ).to_pylist()
    for row in rows:
        first = data.units[row["unit_id"]].first
        pre = [
            e
            for e in data.events
            if e.unit_id == row["unit_id"]
            and e.event_name == "pageview"
            and first - timedelta(days=COVARIATE_DAYS) <= e.occurred_at < first
        ]
        assert (row["covariate"], row["covariate_events"]) == (len(pre), len(pre)), row
        assert row["covariate_seconds"] == COVARIATE_DAYS * 86400
    assert sum(r["covariate"] for r in rows) > 0


def test_rerun_of_the_same_range_changes_nothing(warehouse: Warehouse) -> None:
    load(warehouse, HandMade(seed=5))
    run(warehouse, FULL)
    before = snapshot(warehouse)
    assert before
    run(warehouse, FULL)
    run(warehouse, FULL)
    assert snapshot(warehouse) == before


def test_partial_rerun_touches_only_its_range(warehouse: Warehouse) -> None:
    data = HandMade(seed=7)
    load(warehouse, data)
    run(warehouse, FULL)
    before = snapshot(warehouse)
    partial = etl_range(BASE + timedelta(days=2), BASE + timedelta(days=4), now=COMPUTED_AT)
    later = COMPUTED_AT + timedelta(hours=1)
    rollup_experiments(warehouse, [SPEC], partial, covariate_days=COVARIATE_DAYS, computed_at=later)
    after = snapshot(warehouse)
    assert len(after) == len(before)

    def inside(row: dict[str, Any]) -> bool:
        when = row.get("first_exposed_at")
        day = when.date() if when is not None else row["day"]
        return partial.since_day <= day < partial.until_day

    assert any(inside(r) for r in after) and any(not inside(r) for r in after)
    for row in after:
        assert row["computed_at"] == (later if inside(row) else COMPUTED_AT), row
    strip = [{k: v for k, v in r.items() if k != "computed_at"} for r in (before, after)[0]]
    assert [{k: v for k, v in r.items() if k != "computed_at"} for r in after] == strip


def test_the_job_reads_the_registry_and_runs_every_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = EtlSettings(
        home=tmp_path / "xp-home", clickhouse_url=None, store_wait_seconds=0, etl_covariate_days=1
    )
    store = open_warehouse(settings)
    try:
        load(store, HandMade(units=40))
    finally:
        store.close()
    registries = iter([RegistrySnapshot(experiments={"exp": SPEC}), RegistrySnapshot()])
    monkeypatch.setattr(registry_topic, "read_registry", lambda *_, **__: next(registries))
    steps: list[tuple[int, int, str]] = []
    report = run_etl(settings, until=BASE + timedelta(days=DAYS), on_step=lambda *s: steps.append(s))
    assert report.range == EtlRange(date(1970, 1, 1), FULL.until_day)
    assert (report.experiments, report.metrics, report.unit_rows) == (1, 5, 40 * 5)
    assert steps[-1][:2] == (6, 6)
    empty = run_etl(settings, since=BASE, until=BASE + timedelta(days=1))
    assert (empty.experiments, empty.unit_rows, empty.daily_rows) == (0, 0, 0)
    store = open_warehouse(settings)
    try:
        covariates = store.query_arrow("SELECT DISTINCT covariate_seconds AS s FROM xp.unit_metrics")
    finally:
        store.close()
    assert covariates.to_pylist() == [{"s": 86400.0}]
