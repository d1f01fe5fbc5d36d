"""Quantile metrics against chDB: the generated queries (jobs.results.metric_sql.quantile) against a numpy
recount of hand-made rows and against direct, hand-written SQL over the same tables (decision 0083).

Checked: overridden and multiply-exposed units are left out; per unit, units without events count as 0;
per event, only events inside the window count; the t-digest quantiles are within 1 % in rank of the exact
order statistics (direct ``quantileExact``); the cluster sums equal a recount at the returned quantile; and
the statistics feed the engine (a 30 % shift of treatment's values is found at p90).
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import msgspec
import numpy as np
import pytest

from assignment.metrics_catalog import metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.results.compute import compute_experiment_result
from jobs.results.flat_rows import csv_rows
from jobs.results.quantile_stats import fetch_quantile_statistics
from jobs.stats.analysis import compare_variations
from pipelines.attribution import Attribution
from pipelines.processor import attributions_table
from schemas import Exposure
from schemas.arrow import to_arrow
from schemas.records import ExperimentStatus
from tests.factories import make_exposure
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

BASE = datetime(2026, 11, 20, 12, tzinfo=UTC)
LATENCY = metric_from_dict(
    {"name": "latency", "event": "request", "aggregation": "sum", "value_field": "value", "window": "2h"}
)


class Rows:
    """2,000 units of experiment 'exp' (2 variations); each eligible unit makes 0–6 ``request`` events
    with lognormal values sharing a unit effect (treatment ×1.3); some events fall outside the 2 h window."""

    def __init__(self, seed: int, units: int = 2000) -> None:
        rng = random.Random(seed)
        self.exposures: list[Exposure] = []
        self.attributions: list[Attribution] = []
        self.variation: dict[str, int] = {}
        self.events: dict[str, list[float]] = defaultdict(list)  # counted events of eligible units
        for u in range(units):
            unit, variation = f"u{u}", rng.randrange(2)
            first = BASE + timedelta(seconds=rng.randrange(3600))
            overridden, twice = u % 23 == 0, u % 19 == 0
            self.exposures.append(make_exposure(unit, variation, first, 0, overridden))
            if twice:
                self.exposures.append(
                    make_exposure(unit, 1 - variation, first + timedelta(minutes=1), 1, False)
                )
            eligible = not (overridden or twice)
            if eligible:
                self.variation[unit] = variation
            effect = rng.gauss(0.0, 0.8)
            for j in range(rng.choice([0, 1, 2, 3, 4, 6])):
                value = round(np.exp(3.0 + effect + rng.gauss(0.0, 0.5)) * (1.3 if variation else 1.0), 3)
                late = j == 5  # the 6th event is 3 h after exposure: outside the window
                occurred = first + timedelta(minutes=180 if late else rng.randrange(0, 110))
                self.attributions.append(
                    Attribution(f"e{u}-{j}", unit, "exp", variation, "request", value, occurred, first)
                )
                if eligible and not late:
                    self.events[unit].append(value)
        self.attributions.append(Attribution("o1", "u1", "other", 0, "request", 1e6, BASE, BASE))

    def per_unit(self) -> dict[int, np.ndarray]:
        out: dict[int, list[float]] = defaultdict(list)
        for unit, variation in self.variation.items():
            out[variation].append(sum(self.events.get(unit, [])))
        return {v: np.array(x) for v, x in out.items()}

    def per_event(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        values: dict[int, list[float]] = defaultdict(list)
        owners: dict[int, list[str]] = defaultdict(list)
        for unit, variation in self.variation.items():
            values[variation].extend(self.events.get(unit, []))
            owners[variation].extend([unit] * len(self.events.get(unit, [])))
        return {v: (np.array(values[v]), np.array(owners[v])) for v in values}


def _load(warehouse: Warehouse, rows: Rows) -> None:
    exposures = [
        msgspec.structs.replace(e, attributes={"country": "de" if e.unit_id[-1] in "02468" else "fr"})
        for e in rows.exposures
    ]
    warehouse.insert_arrow("xp.exposures", to_arrow(exposures, Exposure))
    warehouse.insert_arrow("xp.attributed_events", attributions_table(rows.attributions))
    warehouse.insert_arrow("xp.attributed_events", attributions_table(rows.attributions[:20]))  # re-sent


_DIRECT_PER_EVENT = """
SELECT a.variation_id AS variation_id, count() AS n, quantileExact({nu:Float64})(a.value) AS exact
FROM xp.attributed_events AS a FINAL
WHERE a.experiment_key = 'exp' AND a.event_name = 'request'
  AND dateDiff('millisecond', a.first_exposed_at, a.occurred_at) <= 7200000
  AND a.unit_id IN
      (SELECT unit_id FROM xp.unit_exposures WHERE experiment_key = 'exp' GROUP BY unit_id
       HAVING min(min_variation_id) = max(max_variation_id) AND max(overridden) = 0)
GROUP BY variation_id ORDER BY variation_id
"""


def _rank(values: np.ndarray, q: float) -> float:
    return float(np.mean(values <= q))


@pytest.mark.parametrize("nu", [0.5, 0.9])
def test_quantiles_match_a_recount_and_direct_sql(warehouse: Warehouse, nu: float) -> None:
    rows = Rows(seed=16)
    _load(warehouse, rows)
    bounds = {"since": BASE - timedelta(days=1), "until": BASE + timedelta(days=1)}
    per_unit = fetch_quantile_statistics(
        warehouse, "exp", LATENCY, nu=nu, per="unit", variation_ids=[0, 1], **bounds
    )
    per_event = fetch_quantile_statistics(
        warehouse, "exp", LATENCY, nu=nu, per="event", variation_ids=[0, 1], **bounds
    )
    direct = {r["variation_id"]: r for r in warehouse.query_arrow(_DIRECT_PER_EVENT, {"nu": nu}).to_pylist()}
    units, events = rows.per_unit(), rows.per_event()
    for v in (0, 1):
        # counts: eligible units only (zeros included); events inside the window only
        assert per_unit[v].n == len(units[v]) and per_unit[v].clusters is None
        values, owners = events[v]
        assert per_event[v].n == len(values) == direct[v]["n"]
        assert per_event[v].units == len(set(owners))
        # the sketch is within 1 % in rank of the exact quantile (and of direct SQL's quantileExact)
        assert abs(_rank(units[v], per_unit[v].quantile) - nu) <= 0.01
        assert abs(_rank(values, per_event[v].quantile) - nu) <= 0.01
        assert abs(_rank(values, direct[v]["exact"]) - nu) <= 1 / len(values)
        assert per_event[v].lower < per_event[v].quantile < per_event[v].upper
        # cluster sums recounted at the returned quantile (Float32: events within 1e-6 relative may flip)
        clusters = per_event[v].clusters
        assert clusters is not None
        below = np.array([np.sum(values[owners == u] <= per_event[v].quantile) for u in sorted(set(owners))])
        sizes = np.array([np.sum(owners == u) for u in sorted(set(owners))])
        assert clusters.events_sum == sizes.sum() and clusters.events_sum_squares == (sizes**2).sum()
        assert clusters.below_sum == pytest.approx(below.sum(), abs=2)
        assert clusters.cross_sum == pytest.approx((below * sizes).sum(), abs=14)
    found = compare_variations(per_event, method="frequentist", difference="relative")[0]
    assert found.error is None and found.significant and found.ci_low < 0.3 < found.ci_high  # type: ignore[operator]


def test_no_data_gives_empty_statistics(warehouse: Warehouse) -> None:
    bounds = {"since": BASE, "until": BASE + timedelta(days=1)}
    stats = fetch_quantile_statistics(
        warehouse, "none", LATENCY, nu=0.9, per="event", variation_ids=[0, 1], **bounds
    )
    assert [s.n for s in stats] == [0, 0]
    assert compare_variations(stats, method="frequentist")[0].error is not None


P90_PER_UNIT = metric_from_dict(
    {"name": "latency_p90", "type": "quantile", "event": "request", "quantile": 0.9, "window": "2h"}
)
P50_PER_EVENT = metric_from_dict(
    {
        "name": "request_p50",
        "type": "quantile",
        "event": "request",
        "quantile": 0.5,
        "per": "event",
        "window": "2h",
    }
)


def test_results_carry_quantile_metrics(warehouse: Warehouse) -> None:
    """``compute_experiment_result`` (what ``xp results`` runs) with two quantile metrics and a mean:
    the JSON and the CSV rows carry the quantile, its interval and p-value; SRM counts units."""
    rows = Rows(seed=23)
    _load(warehouse, rows)
    spec = ExperimentSpec(
        key="exp",
        name="exp",
        status=ExperimentStatus.RUNNING,
        feature_key="exp",
        variations=(VariationSpec(0, "v0", "V0", 0.5), VariationSpec(1, "v1", "V1", 0.5)),
        metrics=MetricsSpec(
            primary=("latency_p90",),
            secondary=("request_p50", "latency"),
            definitions=(P90_PER_UNIT, P50_PER_EVENT, LATENCY),
        ),
    )
    plan = AnalysisPlan(method="frequentist", alpha=0.05, cuped=True)
    result = compute_experiment_result(warehouse, spec, until=BASE + timedelta(days=1), plan=plan)
    document = result.to_json()
    by_name = {m["metric"]: m for m in document["metrics"]}
    units, events = rows.per_unit(), rows.per_event()
    p90 = by_name["latency_p90"]
    assert (p90["type"], p90["quantile"], p90["per"]) == ("quantile", 0.9, "unit")
    assert p90["cuped"]["applied"] is False
    for variant in p90["variants"]:
        values = units[variant["variation_id"]]
        assert variant["units"] == len(values)
        assert abs(_rank(values, variant["mean"]) - 0.9) <= 0.01
    treatment = p90["variants"][1]
    assert treatment["error"] is None and treatment["p_value"] is not None
    assert treatment["ci_low"] < treatment["estimate"] < treatment["ci_high"]
    p50 = by_name["request_p50"]
    assert p50["per"] == "event"
    assert [v["units"] for v in p50["variants"]] == [len(set(events[v][1])) for v in (0, 1)]
    assert "quantile" not in by_name["latency"] and by_name["latency"]["type"] == "mean"
    assert result.srm_p_value is not None
    csv = csv_rows(result)
    assert {row["metric"] for row in csv} >= {"latency_p90", "request_p50"}
    # a segment breakdown has no quantile numbers (decision 0083): coded, never a crash
    by_country = compute_experiment_result(
        warehouse, spec, until=BASE + timedelta(days=1), plan=plan, segment="country"
    ).to_json()
    assert by_country["metrics"][0]["variants"][1]["estimate"] == p90["variants"][1]["estimate"]
    assert by_country["segments"]["values"]
    for segment in by_country["segments"]["values"]:
        quantile = next(m for m in segment["metrics"] if m["metric"] == "latency_p90")
        assert quantile["variants"][1]["error"] == "empty_variation"
