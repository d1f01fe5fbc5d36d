"""Results from ``xp.unit_values`` (decision 0028) equal the live scan's, after a full build and after
incremental refreshes, against a real chDB store.

Experiment 'uv' (3 variations) analyses binomial, count, sum, windowed-count and ratio metrics, with
CUPED (pre-exposure pageviews and purchases in raw ``xp.events``) and a ``country`` segment. Each
round adds data the refresh must pick up: new units, new events of old units, late events, duplicate
re-sends of attributed rows and raw events, units that become multiple-variation or overridden, an
earlier first exposure (moves the covariate window), pre-exposure events for old units. After every
round the sums (per variation, per segment, CUPED covariates) and the whole results JSON are compared
with the scan's (``XP_RESULTS_UNIT_VALUES=false``) to 1e-9 relative. The watermark margin is 0 s so
that the incremental path really is incremental (checked: fewer rows written than units).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from assignment.metrics_catalog import metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.results.batch import batch_plan
from jobs.results.compute import compute_experiment_result
from jobs.results.sums import experiment_catalog, fetch_experiment_sums
from jobs.unit_values import UnitValuesSettings, fetch_unit_value_sums, read_state, refresh
from jobs.unit_values.plan import unit_values_plan
from pipelines.attribution import Attribution
from pipelines.processor import attributions_table
from schemas import Exposure
from schemas.arrow import to_arrow
from schemas.records import ExperimentStatus, ExposureSource, MetricEvent
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

BASE = datetime(2026, 11, 20, 12, tzinfo=UTC)
UNTIL = BASE + timedelta(days=5)
COUNTRIES = ["us", "us", "de", "fr", "it", ""]
COVARIATE_DAYS = 14.0
ON = UnitValuesSettings(results_unit_values=True, results_unit_values_margin_seconds=0)
OFF = UnitValuesSettings(results_unit_values=False)
SUM_FIELDS = (
    "sum_a",
    "sum_a_squares",
    "sum_b",
    "sum_b_squares",
    "cross_sum",
    "sum_x",
    "sum_x_squares",
    "cross_sum_ax",
)


def metrics(pageview_window: str = "1h") -> list[Any]:
    return [
        metric_from_dict({"name": "bought", "event": "purchase", "aggregation": "binary"}),
        metric_from_dict({"name": "views", "event": "pageview", "aggregation": "count"}),
        metric_from_dict({"name": "spend", "event": "purchase", "aggregation": "sum"}),
        metric_from_dict(
            {"name": "views_soon", "event": "pageview", "aggregation": "count", "window": pageview_window}
        ),
        metric_from_dict(
            {"name": "spend_per_view", "type": "ratio", "numerator": "spend", "denominator": "views"}
        ),
    ]


def spec(pageview_window: str = "1h") -> ExperimentSpec:
    definitions = metrics(pageview_window)
    names = tuple(m.name for m in definitions)
    return ExperimentSpec(
        key="uv",
        name="uv",
        status=ExperimentStatus.RUNNING,
        feature_key="uv",
        variations=tuple(VariationSpec(i, f"v{i}", f"V{i}", 1 / 3) for i in range(3)),
        metrics=MetricsSpec(primary=names[:1], secondary=names[1:], definitions=tuple(definitions)),
    )


class Feed:
    """Deterministic data for 'uv', inserted round by round like the stream would."""

    def __init__(self, warehouse: Warehouse, seed: int = 7) -> None:
        self.warehouse = warehouse
        self.rng = np.random.default_rng(seed)
        self.first: dict[str, tuple[int, datetime]] = {}
        self.events = 0

    def exposure(self, unit: str, variation: int, at: datetime, *, overridden: bool = False) -> Exposure:
        country = COUNTRIES[int(self.rng.integers(len(COUNTRIES)))]
        return Exposure(
            exposure_id=f"x-{unit}-{variation}-{int(at.timestamp())}-{overridden}",
            unit_id=unit,
            hash_attribute="id",
            experiment_key="uv",
            variation_id=variation,
            variation_key=f"v{variation}",
            overridden=overridden,
            source=ExposureSource.LOADGEN,
            attributes={"country": country} if country else {},
            exposed_at=at,
        )

    def new_units(self, start: int, count: int) -> None:
        exposures = []
        for u in range(start, start + count):
            unit = f"u{u}"
            variation = int(self.rng.integers(3))
            at = BASE + timedelta(seconds=int(self.rng.integers(86400)))
            self.first[unit] = (variation, at)
            exposures.append(self.exposure(unit, variation, at))
        self.warehouse.insert_arrow("xp.exposures", to_arrow(exposures, Exposure))
        self.pre_events(list(self.first)[start : start + count])

    def pre_events(self, units: list[str]) -> None:
        raw = []
        for unit in units:
            _variation, first = self.first[unit]
            for _ in range(int(self.rng.poisson(1.5))):
                self.events += 1
                days = float(self.rng.uniform(0.01, 20.0))  # some outside the 14-day window
                name = "pageview" if self.rng.random() < 0.7 else "purchase"
                value = float(self.rng.integers(1, 50)) if name == "purchase" else None
                raw.append(
                    MetricEvent(
                        event_id=f"r{self.events}",
                        unit_id=unit,
                        event_name=name,
                        value=value,
                        occurred_at=first - timedelta(days=days),
                    )
                )
        if raw:
            self.warehouse.insert_arrow("xp.events", to_arrow(raw, MetricEvent))

    def post_events(self, units: list[str], *, per_unit: float = 2.0) -> list[Attribution]:
        raw, attributed = [], []
        for unit in units:
            variation, first = self.first[unit]
            for _ in range(int(self.rng.poisson(per_unit))):
                self.events += 1
                at = first + timedelta(minutes=int(self.rng.integers(0, 240)))  # some outside the 1 h window
                name = "pageview" if self.rng.random() < 0.6 else "purchase"
                value = float(self.rng.integers(1, 50)) + 0.25 if name == "purchase" else None
                event_id = f"e{self.events}"
                raw.append(
                    MetricEvent(event_id=event_id, unit_id=unit, event_name=name, value=value, occurred_at=at)
                )
                attributed.append(Attribution(event_id, unit, "uv", variation, name, value, at, first))
        if raw:
            self.warehouse.insert_arrow("xp.events", to_arrow(raw, MetricEvent))
            self.warehouse.insert_arrow("xp.attributed_events", attributions_table(attributed))
        return attributed


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def same_json(left: Any, right: Any, where: str = "") -> None:
    if isinstance(left, dict):
        assert set(left) == set(right), where
        for key in left:
            if key == "computed_at":
                continue
            same_json(left[key], right[key], f"{where}.{key}")
    elif isinstance(left, list):
        assert len(left) == len(right), where
        for i, (a, b) in enumerate(zip(left, right, strict=True)):
            same_json(a, b, f"{where}[{i}]")
    elif isinstance(left, float) and isinstance(right, float):
        assert close(left, right) or (math.isnan(left) and math.isnan(right)), f"{where}: {left} != {right}"
    else:
        assert left == right, f"{where}: {left!r} != {right!r}"


def assert_same_as_scan(warehouse: Warehouse, experiment: ExperimentSpec, **window: Any) -> None:
    """Sums (totals, segments, CUPED) and results JSON: unit values == live scan."""
    bounds = {"since": window.get("since", BASE - timedelta(days=30)), "until": window.get("until", UNTIL)}
    for cuped in (False, True):
        fast = fetch_experiment_sums(
            warehouse,
            experiment,
            dimension="country",
            cuped=cuped,
            covariate_days=COVARIATE_DAYS,
            unit_values=ON,
            **bounds,
        )
        slow = fetch_experiment_sums(
            warehouse,
            experiment,
            dimension="country",
            cuped=cuped,
            covariate_days=COVARIATE_DAYS,
            unit_values=OFF,
            **bounds,
        )
        pairs: list[tuple[Any, Any]] = [(fast[0], slow[0]), (fast[1], slow[1])]
        for found, expected in pairs:
            assert set(found) == set(expected)
            for name in found:
                assert len(found[name]) == len(expected[name]), name
                for a, b in zip(found[name], expected[name], strict=True):
                    a_sums, b_sums = (a[1], b[1]) if isinstance(a, tuple) else (a, b)
                    if isinstance(a, tuple):
                        assert a[0] == b[0], name
                    assert a_sums.variation_id == b_sums.variation_id and a_sums.units == b_sums.units, name
                    assert a_sums.has_covariate == b_sums.has_covariate, name
                    assert a_sums.units_with_covariate == b_sums.units_with_covariate, name
                    for attribute in SUM_FIELDS:
                        assert close(getattr(a_sums, attribute), getattr(b_sums, attribute)), (
                            name,
                            attribute,
                        )
    for plan in (AnalysisPlan(method="frequentist"), AnalysisPlan(cuped=True, correction="holm")):
        common: dict[str, Any] = {
            "plan": plan, "covariate_days": COVARIATE_DAYS, "segment": "country", "top": 2,
            "computed_at": UNTIL, **window,
        }  # fmt: skip
        # fresh: exact now (decision 0100: the overlay writes nothing, so a call within the staleness
        # bound would read the values as of the last refresh, older than the scan)
        fast_result = compute_experiment_result(
            warehouse, experiment, unit_values=ON, fresh=True, **common
        ).to_json()
        slow_result = compute_experiment_result(warehouse, experiment, unit_values=OFF, **common).to_json()
        same_json(fast_result, slow_result)


def stored_rows(warehouse: Warehouse) -> int:
    return int(warehouse.query_arrow("SELECT count() AS n FROM xp.unit_values").column("n")[0].as_py())


def test_unit_values_equal_the_scan_after_a_build_and_incremental_rounds(warehouse: Warehouse) -> None:
    experiment = spec()
    feed = Feed(warehouse)
    feed.new_units(0, 300)
    first_round = feed.post_events(list(feed.first))
    assert_same_as_scan(warehouse, experiment)
    layout = unit_values_plan(
        batch_plan(metrics(), experiment_catalog(experiment)), cuped=False, covariate_days=COVARIATE_DAYS
    )
    state = read_state(warehouse, "uv", layout)
    assert state is not None  # built by the first comparison
    built = stored_rows(warehouse)

    # round 1: new units, new events for some old units, duplicate re-sends of attributed rows
    feed.new_units(300, 40)
    feed.post_events([f"u{u}" for u in range(300, 340)])
    feed.post_events([f"u{u}" for u in range(0, 300, 17)], per_unit=1.0)
    warehouse.insert_arrow("xp.attributed_events", attributions_table(first_round[:25]))
    before = stored_rows(warehouse)
    report = refresh(warehouse, "uv", layout, margin_seconds=0)
    assert not report.full
    written = stored_rows(warehouse) - before
    assert report.units == written
    assert 40 <= written < 150, written  # only the changed units (incremental), but every one of them
    assert_same_as_scan(warehouse, experiment)

    # round 2: a unit sees a second variation, one is overridden, one gets an earlier first exposure,
    # late events (occurred long ago, stored now), pre-exposure events for old units, raw re-sends
    multi, forced, earlier = "u3", "u5", "u8"
    variation, at = feed.first[multi]
    late_exposures = [
        feed.exposure(multi, (variation + 1) % 3, at + timedelta(minutes=3)),
        feed.exposure(
            forced, feed.first[forced][0], feed.first[forced][1] + timedelta(minutes=1), overridden=True
        ),
        feed.exposure(earlier, feed.first[earlier][0], feed.first[earlier][1] - timedelta(days=2)),
    ]
    warehouse.insert_arrow("xp.exposures", to_arrow(late_exposures, Exposure))
    feed.pre_events([f"u{u}" for u in range(0, 300, 11)])
    late = feed.post_events([f"u{u}" for u in range(1, 300, 23)], per_unit=1.5)
    warehouse.insert_arrow("xp.attributed_events", attributions_table(late[:5]))  # re-sent at once
    before = stored_rows(warehouse)
    assert_same_as_scan(warehouse, experiment)
    assert stored_rows(warehouse) == before  # answered by the overlay: nothing written
    assert_same_as_scan(warehouse, experiment, since=BASE + timedelta(hours=12))

    # round 3: the reads of round 2 overlaid its rows without writing (decision 0100), a refresh folds
    # them in; then nothing new: the next refresh writes nothing, numbers unchanged
    assert refresh(warehouse, "uv", layout, margin_seconds=0).units
    before = stored_rows(warehouse)
    assert refresh(warehouse, "uv", layout, margin_seconds=0).units == 0
    assert stored_rows(warehouse) == before
    assert_same_as_scan(warehouse, experiment)
    assert built < stored_rows(warehouse)


def test_a_changed_metric_definition_rebuilds(warehouse: Warehouse) -> None:
    feed = Feed(warehouse, seed=11)
    feed.new_units(0, 200)
    feed.post_events(list(feed.first))
    assert_same_as_scan(warehouse, spec("1h"))
    changed = spec("2h")  # views_soon now counts 2 h after exposure: a new plan key, a full build
    old = unit_values_plan(
        batch_plan(metrics("1h"), experiment_catalog(changed)), cuped=False, covariate_days=COVARIATE_DAYS
    )
    new = unit_values_plan(
        batch_plan(metrics("2h"), experiment_catalog(changed)), cuped=False, covariate_days=COVARIATE_DAYS
    )
    assert old.key != new.key and read_state(warehouse, "uv", new) is None
    assert_same_as_scan(warehouse, changed)
    assert read_state(warehouse, "uv", new) is not None
    fast = compute_experiment_result(warehouse, changed, until=UNTIL, unit_values=ON).to_json()
    views_soon = next(m for m in fast["metrics"] if m["metric"] == "views_soon")
    old_result = compute_experiment_result(warehouse, spec("1h"), until=UNTIL, unit_values=ON).to_json()
    assert views_soon != next(m for m in old_result["metrics"] if m["metric"] == "views_soon")


def test_a_window_ending_before_the_newest_event_falls_back_to_the_scan(warehouse: Warehouse) -> None:
    experiment = spec()
    feed = Feed(warehouse, seed=3)
    feed.new_units(0, 100)
    feed.post_events(list(feed.first))
    layout = unit_values_plan(
        batch_plan(metrics(), experiment_catalog(experiment)), cuped=False, covariate_days=COVARIATE_DAYS
    )
    early = BASE + timedelta(hours=20)  # some events occur after it: the stored values cannot leave them out
    assert fetch_unit_value_sums(warehouse, "uv", layout, since=BASE, until=early) is None
    assert read_state(warehouse, "uv", layout) is None  # and nothing was built for it
    assert fetch_unit_value_sums(warehouse, "uv", layout, since=BASE, until=UNTIL) is not None
    assert_same_as_scan(warehouse, experiment, until=early)
