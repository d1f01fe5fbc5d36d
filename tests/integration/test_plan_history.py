"""`xp plan`'s history against chDB, recounted by hand with numpy.

Units are first seen at random over 14 days; each makes pageviews over the window, some purchase (with a
value) soon after and some much later (outside a 1-hour ``orders`` window). Checked: the history query's
units, mean and per-unit variance equal a numpy recount for a binomial, a mean, a windowed count and a
ratio metric (delta method); the traffic per day; and the plan's units per method equal the planning
functions on the recounted variance; unknown metrics and a bad lookback are refused.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from assignment.metrics_catalog import metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.results.plan import plan_experiment
from jobs.stats.planning import units_needed
from schemas.arrow import to_arrow
from schemas.records import ExperimentStatus, MetricEvent
from xpcore.errors import ValidationError
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

UNTIL = datetime(2026, 11, 30, tzinfo=UTC)
DAYS = 14.0
ORDERS = metric_from_dict({"name": "orders", "event": "purchase", "aggregation": "count", "window": "1h"})
AOV = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "orders"})


def spec(variations: int = 2) -> ExperimentSpec:
    return ExperimentSpec(
        key="exp",
        name="exp",
        status=ExperimentStatus.DRAFT,
        feature_key="exp",
        variations=tuple(VariationSpec(i, f"v{i}", f"V{i}", 1 / variations) for i in range(variations)),
        metrics=MetricsSpec(
            primary=("conversion", "revenue"),
            secondary=("pageviews", "orders", "aov"),
            definitions=(ORDERS, AOV),
        ),
    )


class History:
    def __init__(self, seed: int, units: int = 1500) -> None:
        rng = np.random.default_rng(seed)
        self.events: list[MetricEvent] = []
        self.values: dict[str, list[float]] = {"conversion": [], "revenue": [], "pageviews": [], "orders": []}
        self.revenue_in_window: list[float] = []
        for u in range(units):
            unit = f"u{u}"
            first = (
                UNTIL - timedelta(days=DAYS) + timedelta(seconds=int(rng.integers(int(DAYS * 86400) - 7200)))
            )
            pageviews = 1 + int(rng.poisson(2))
            for j in range(pageviews):
                at = first if j == 0 else first + timedelta(minutes=int(rng.integers(1, 600)))
                at = min(at, UNTIL - timedelta(seconds=1))
                self.events.append(
                    MetricEvent(event_id=f"p{u}-{j}", unit_id=unit, event_name="pageview", occurred_at=at)
                )
            revenue = orders = in_window = 0.0
            for j in range(int(rng.poisson(0.4))):
                late = j % 3 == 2
                at = first + (timedelta(hours=5) if late else timedelta(minutes=10 + j))
                if at >= UNTIL:
                    continue
                value = float(rng.integers(5, 60))
                self.events.append(
                    MetricEvent(
                        event_id=f"b{u}-{j}", unit_id=unit, event_name="purchase", value=value, occurred_at=at
                    )
                )
                revenue += value
                orders += 0 if late else 1
                in_window += 0 if late else value
            self.values["conversion"].append(float(revenue > 0 or orders > 0))
            self.values["revenue"].append(revenue)
            self.values["pageviews"].append(float(pageviews))
            self.values["orders"].append(orders)
            self.revenue_in_window.append(revenue)
        # Old events (before the window) count for nobody.
        self.events.append(
            MetricEvent(
                event_id="old",
                unit_id="u0",
                event_name="purchase",
                value=1e6,
                occurred_at=UNTIL - timedelta(days=30),
            )
        )


@pytest.fixture
def history(warehouse: Warehouse) -> History:
    data = History(seed=86)
    warehouse.insert_arrow("xp.events", to_arrow(data.events, MetricEvent))
    warehouse.insert_arrow("xp.events", to_arrow(data.events[:40], MetricEvent))  # re-sent: counts once
    return data


def test_history_equals_a_numpy_recount_and_the_plan_follows(warehouse: Warehouse, history: History) -> None:
    analysis = AnalysisPlan(method="group_sequential_obf", alpha=0.05, planned_units=1000, planned_looks=4)
    answer = plan_experiment(warehouse, spec(3), analysis, mde=0.1, until=UNTIL, lookback_days=DAYS)
    by_name = {m["metric"]: m for m in answer["metrics"]}
    assert list(by_name) == ["conversion", "revenue", "pageviews", "orders", "aov"]
    units = len(history.values["pageviews"])
    for name in ("conversion", "revenue", "pageviews", "orders"):
        values = np.array(history.values[name])
        metric = by_name[name]
        assert metric["history_units"] == units
        assert metric["mean"] == pytest.approx(values.mean(), rel=1e-9)
        assert metric["unit_variance"] == pytest.approx(values.var(ddof=1), rel=1e-9)
        assert metric["units_per_day"] == pytest.approx(units / DAYS)
        assert metric["error"] is None
        for row in metric["methods"]:
            expected, _ = units_needed(
                row["method"], 0.1 * values.mean(), values.var(ddof=1), variations=3, planned_looks=4
            )
            assert row["units_per_variation"] == expected
            assert row["total_units"] == 3 * expected
            assert row["days"] == int(np.ceil(3 * expected / (units / DAYS)))
    # The ratio revenue / orders with the orders' window: revenue has no window (the default metric).
    a, b = np.array(history.values["revenue"]), np.array(history.values["orders"])
    ratio = a.sum() / b.sum()
    variance = np.var(a - ratio * b, ddof=1) / b.mean() ** 2
    assert by_name["aov"]["mean"] == pytest.approx(ratio, rel=1e-9)
    assert by_name["aov"]["unit_variance"] == pytest.approx(variance, rel=1e-9)
    own = next(r for r in by_name["conversion"]["methods"] if r["method"] == "group_sequential_obf")
    assert answer["recommended_planned_units"] == own["total_units"]
    assert answer["yaml"] == f"planned_units: {own['total_units']}"
    assert answer["planned_looks"] == 4 and answer["variations"] == 3


def test_bad_requests_are_refused(warehouse: Warehouse, history: History) -> None:
    with pytest.raises(ValidationError, match="has no metric 'nope'"):
        plan_experiment(warehouse, spec(), AnalysisPlan(), mde=0.1, until=UNTIL, metric_names=("nope",))
    with pytest.raises(ValidationError, match="lookback"):
        plan_experiment(warehouse, spec(), AnalysisPlan(), mde=0.1, until=UNTIL, lookback_days=-1)
    # A metric name that is SQL stays a bound parameter: no event has it, so no history, no error.
    hostile = metric_from_dict({"name": "x", "event": "a' OR 1=1 --", "aggregation": "count", "window": "1h"})
    experiment = ExperimentSpec(
        key="exp",
        name="exp",
        status=ExperimentStatus.DRAFT,
        feature_key="exp",
        variations=(VariationSpec(0, "v0", "V0", 0.5), VariationSpec(1, "v1", "V1", 0.5)),
        metrics=MetricsSpec(primary=("x",), definitions=(hostile,)),
    )
    answer = plan_experiment(warehouse, experiment, AnalysisPlan(), mde=0.1, until=UNTIL)
    (metric,) = answer["metrics"]
    assert metric["history_units"] == len(history.values["pageviews"])
    assert metric["error"] is not None and "constant" in metric["error"]
    assert answer["recommended_planned_units"] is None


def test_empty_history_says_so(warehouse: Warehouse) -> None:
    answer = plan_experiment(warehouse, spec(), AnalysisPlan(), mde=0.1, until=UNTIL)
    assert all(m["error"] and "not enough history" in m["error"] for m in answer["metrics"])
    assert answer["yaml"] is None
