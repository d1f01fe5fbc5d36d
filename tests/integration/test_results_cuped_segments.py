"""CUPED and segment breakdowns of results against chDB, recounted by hand with numpy.

Units of 'exp' (2 variations) have a latent activity; pageviews before first exposure (the CUPED
covariate, raw ``xp.events`` only) and after it (``xp.events`` + ``xp.attributed_events``) both follow
it, so the covariate correlates with the metric. Exposures carry a ``country`` attribute (some none).

Checked: the covariate sums the CUPED query (``jobs.results.metric_sql.scan``) returns equal a numpy
recount (the
pre-exposure window applied, post-exposure events not leaking into it); CUPED results equal a reference
computation from unit values (θ pooled, the adjusted lift) with a narrower interval than without CUPED;
metrics without pre-exposure data say why CUPED was not applied; the segment breakdown's units and sums
equal a recount per country, with the small countries folded into "other" exactly.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from assignment.metrics_catalog import metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.results.compute import compute_experiment_result
from jobs.results.sums import fetch_metric_sums, fetch_segment_sums
from pipelines.attribution import Attribution
from pipelines.processor import attributions_table
from schemas import Exposure
from schemas.arrow import to_arrow
from schemas.records import ExperimentStatus, ExposureSource, MetricEvent
from xpcore.config import KafkaSettings, WarehouseSettings
from xpcore.warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.integration

BASE = datetime(2026, 11, 20, 12, tzinfo=UTC)
UNTIL = BASE + timedelta(days=3)
COUNTRIES = ["us", "us", "us", "de", "de", "fr", "fr", "it", "es", "nl", ""]
COVARIATE_DAYS = 14.0


class Data:
    """Units with correlated pre/post pageviews, a country (or none), and a few post-exposure purchases."""

    def __init__(self, seed: int, units: int = 2000, lift: float = 0.1) -> None:
        rng = np.random.default_rng(seed)
        self.exposures: list[Exposure] = []
        self.events: list[MetricEvent] = []
        self.attributions: list[Attribution] = []
        self.variation: dict[str, int] = {}
        self.country: dict[str, str] = {}
        self.pre: dict[str, int] = {}
        self.post: dict[str, int] = {}
        for u in range(units):
            unit = f"u{u}"
            variation = int(rng.integers(2))
            first = BASE + timedelta(seconds=int(rng.integers(86400)))
            country = COUNTRIES[int(rng.integers(len(COUNTRIES)))]
            activity = float(rng.lognormal(0.5, 0.6))
            pre_n = int(rng.poisson(activity * 2))
            post_n = int(rng.poisson(activity * (1 + lift * variation)))
            self.variation[unit], self.country[unit] = variation, country
            self.exposures.append(
                Exposure(
                    exposure_id=f"x-{unit}",
                    unit_id=unit,
                    hash_attribute="id",
                    experiment_key="exp",
                    variation_id=variation,
                    variation_key=f"v{variation}",
                    source=ExposureSource.LOADGEN,
                    attributes={"country": country} if country else {},
                    exposed_at=first,
                )
            )
            counted = 0
            for j in range(pre_n):  # inside the covariate window, except every 5th: 20 days before
                days = 20.0 if j % 5 == 4 else float(rng.uniform(0.01, 13.9))
                at = first - timedelta(days=days)
                self.events.append(self._event(f"p{u}-{j}", unit, "pageview", at))
                counted += days <= COVARIATE_DAYS
            self.pre[unit] = counted
            for j in range(post_n):
                at = first + timedelta(minutes=int(rng.integers(0, 600)))
                self.events.append(self._event(f"q{u}-{j}", unit, "pageview", at))
                self.attributions.append(
                    Attribution(f"q{u}-{j}", unit, "exp", variation, "pageview", None, at, first)
                )
            self.post[unit] = post_n
            if u % 9 == 0:  # purchases only after exposure: no covariate data for conversion/revenue
                at = first + timedelta(minutes=5)
                self.events.append(self._event(f"b{u}", unit, "purchase", at, 20.0))
                self.attributions.append(
                    Attribution(f"b{u}", unit, "exp", variation, "purchase", 20.0, at, first)
                )

    @staticmethod
    def _event(event_id: str, unit: str, name: str, at: datetime, value: float | None = None) -> MetricEvent:
        return MetricEvent(event_id=event_id, unit_id=unit, event_name=name, value=value, occurred_at=at)

    def arrays(self, variation: int) -> tuple[np.ndarray, np.ndarray]:
        units = [u for u, v in self.variation.items() if v == variation]
        return np.array([self.post[u] for u in units], float), np.array([self.pre[u] for u in units], float)


def spec() -> ExperimentSpec:
    return ExperimentSpec(
        key="exp",
        name="exp",
        status=ExperimentStatus.RUNNING,
        feature_key="exp",
        variations=(VariationSpec(0, "v0", "V0", 0.5), VariationSpec(1, "v1", "V1", 0.5)),
        metrics=MetricsSpec(),
    )


@pytest.fixture
def data(warehouse: Warehouse) -> Data:
    data = Data(seed=42)
    warehouse.insert_arrow("xp.exposures", to_arrow(data.exposures, Exposure))
    warehouse.insert_arrow("xp.events", to_arrow(data.events, MetricEvent))
    warehouse.insert_arrow("xp.events", to_arrow(data.events[:50], MetricEvent))  # re-sent: counts once
    warehouse.insert_arrow("xp.attributed_events", attributions_table(data.attributions))
    return data


def test_covariate_sums_equal_a_numpy_recount(warehouse: Warehouse, data: Data) -> None:
    sums = fetch_metric_sums(
        warehouse, spec(), since=BASE, until=UNTIL, cuped=True, covariate_days=COVARIATE_DAYS
    )
    for row in sums["pageviews"]:
        y, x = data.arrays(row.variation_id)
        assert row.has_covariate and row.units == len(y)
        assert (row.sum_a, row.sum_a_squares) == (y.sum(), (y * y).sum())
        assert (row.sum_x, row.sum_x_squares) == (x.sum(), (x * x).sum())
        assert row.cross_sum_ax == (x * y).sum()
        assert row.units_with_covariate == int((x > 0).sum())
    assert all(row.units_with_covariate == 0 for row in sums["conversion"])
    # without CUPED the plain query runs: same metric sums, no covariate
    plain = fetch_metric_sums(warehouse, spec(), since=BASE, until=UNTIL)
    for with_x, without in zip(sums["pageviews"], plain["pageviews"], strict=True):
        assert not without.has_covariate
        assert (with_x.units, with_x.sum_a, with_x.sum_a_squares) == (
            without.units,
            without.sum_a,
            without.sum_a_squares,
        )


def test_cuped_results_match_a_reference_and_narrow_the_interval(warehouse: Warehouse, data: Data) -> None:
    plan = AnalysisPlan(method="frequentist", cuped=True)
    cuped = compute_experiment_result(
        warehouse, spec(), until=UNTIL, plan=plan, covariate_days=COVARIATE_DAYS
    ).to_json()
    plain = compute_experiment_result(warehouse, spec(), until=UNTIL, method="frequentist").to_json()
    json.dumps(cuped, allow_nan=False)
    assert cuped["analysis"]["cuped"] is True and plain["analysis"]["cuped"] is False

    (y0, x0), (y1, x1) = data.arrays(0), data.arrays(1)
    y, x = np.concatenate([y0, y1]), np.concatenate([x0, x1])
    theta = np.cov(y, x)[0, 1] / np.var(x, ddof=1)  # pooled over both variations (Deng et al. 2013)
    adjusted = (y1.mean() - theta * x1.mean()) - (y0.mean() - theta * x0.mean())
    lift = adjusted / y0.mean()

    pageviews = next(m for m in cuped["metrics"] if m["metric"] == "pageviews")
    assert pageviews["cuped"]["applied"] is True and pageviews["cuped"]["reason"] is None
    assert pageviews["cuped"]["theta"] == pytest.approx(theta, rel=1e-9)
    assert pageviews["cuped"]["covariate_days"] == COVARIATE_DAYS
    treatment = pageviews["variants"][1]
    assert treatment["estimate"] == pytest.approx(lift, rel=1e-9)
    assert pageviews["variants"][0]["mean"] == pytest.approx(y0.mean())  # the unadjusted mean is shown

    plain_treatment = next(m for m in plain["metrics"] if m["metric"] == "pageviews")["variants"][1]
    cuped_width = treatment["ci_high"] - treatment["ci_low"]
    plain_width = plain_treatment["ci_high"] - plain_treatment["ci_low"]
    rho = np.corrcoef(y, x)[0, 1]
    assert rho > 0.4
    assert cuped_width < plain_width
    assert cuped_width / plain_width == pytest.approx(math.sqrt(1 - rho * rho), abs=0.05)

    # conversion and revenue have no pre-exposure events: not adjusted, and the output says why
    for name in ("conversion", "revenue"):
        metric = next(m for m in cuped["metrics"] if m["metric"] == name)
        assert metric["cuped"]["applied"] is False
        assert "pre-exposure" in metric["cuped"]["reason"]
        assert metric["variants"] == next(m for m in plain["metrics"] if m["metric"] == name)["variants"]


def test_segments_recount_and_fold_into_other(warehouse: Warehouse, data: Data) -> None:
    result = compute_experiment_result(warehouse, spec(), until=UNTIL, segment="country", top=3)
    document = result.to_json()
    breakdown = document["segments"]
    assert breakdown["dimension"] == "country" and breakdown["top"] == 3
    units = Counter(c or "(none)" for c in data.country.values())
    kept = [name for name, _ in sorted(units.items(), key=lambda kv: (-kv[1], kv[0]))[:3]]
    labels = [s["segment"] for s in breakdown["values"]]
    assert labels == [*kept, "other"]
    assert sum(s["units"] for s in breakdown["values"]) == len(data.variation)

    def recount(names: set[str]) -> dict[int, tuple[int, float]]:
        found: dict[int, tuple[int, float]] = {}
        for unit, variation in data.variation.items():
            if (data.country[unit] or "(none)") in names:
                n, total = found.get(variation, (0, 0.0))
                found[variation] = (n + 1, total + data.post[unit])
        return found

    others = set(units) - set(kept)
    for segment in breakdown["values"]:
        names = others if segment["segment"] == "other" else {segment["segment"]}
        expected = recount(names)
        assert segment["units"] == sum(n for n, _ in expected.values())
        pageviews = next(m for m in segment["metrics"] if m["metric"] == "pageviews")
        for variant in pageviews["variants"]:
            n, total = expected[variant["variation_id"]]
            assert variant["units"] == n
            assert variant["mean"] == pytest.approx(total / n)
        assert "cuped" in pageviews and segment["srm_p_value"] is not None

    # the rows themselves: one per country and variation, '' for units without the attribute
    rows = fetch_segment_sums(warehouse, spec(), dimension="country", since=BASE, until=UNTIL)
    assert {value for value, _ in rows["pageviews"]} == {c for c in data.country.values()}
    assert document["metrics"] == result.to_json()["metrics"]  # the breakdown leaves the totals alone


# ---- through the registry and the CLI: the analysis block, flags overriding it ------------------------

REGISTRY_YAML = """
experiments:
  - key: exp
    status: running
    variations:
      - {key: v0, weight: 0.5, value: 0}
      - {key: v1, weight: 0.5, value: 1}
    metrics:
      primary: [pageviews]
      secondary: [conversion]
    analysis: {method: frequentist, alpha: 0.01, cuped: true, correction: holm, planned_units: 5000}
"""


def test_cli_uses_the_analysis_block_and_flags_override_it(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    home = tmp_path / "xp-home"
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        data = Data(seed=3, units=600)
        store.insert_arrow("xp.exposures", to_arrow(data.exposures, Exposure))
        store.insert_arrow("xp.events", to_arrow(data.events, MetricEvent))
        store.insert_arrow("xp.attributed_events", attributions_table(data.attributions))
    finally:
        store.close()
    registry = tmp_path / "experiments.yaml"
    registry.write_text(REGISTRY_YAML)
    env = {
        **os.environ,
        "XP_HOME": str(home),
        "XP_KAFKA_BOOTSTRAP": kafka_settings.kafka_bootstrap,
        "XP_TOPIC_PREFIX": kafka_settings.topic_prefix,
        "XP_STORE_WAIT_SECONDS": "10",
    }
    env.pop("XP_CLICKHOUSE_URL", None)

    def xp(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "xpstream.cli", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    applied = xp("experiments", "apply", str(registry), "--actor", "test")
    assert applied.returncode == 0, applied.stderr
    until = UNTIL.isoformat()
    from_block = xp("results", "exp", "--format", "json", "--until", until)
    assert from_block.returncode == 0, from_block.stderr
    document = json.loads(from_block.stdout)
    assert document["analysis"] == {
        "method": "frequentist",
        "alpha": 0.01,
        "cuped": True,
        "correction": "holm",
        "planned_units": 5000,
        "planned_looks": None,
    }
    assert document["method"] == "frequentist" and document["alpha"] == 0.01
    metrics = {m["metric"]: m for m in document["metrics"]}
    assert metrics["pageviews"]["cuped"]["applied"] is True
    assert metrics["conversion"]["cuped"]["applied"] is False
    assert metrics["pageviews"]["variants"][1]["p_value_adjusted"] is not None
    assert document["segments"] is None

    overridden = xp(
        "results", "exp", "--format", "json", "--until", until,
        "--method", "bayesian", "--no-cuped", "--correction", "none", "--segment", "country", "--top", "2",
    )  # fmt: skip
    assert overridden.returncode == 0, overridden.stderr
    document = json.loads(overridden.stdout)
    assert document["analysis"]["method"] == "bayesian" and document["analysis"]["cuped"] is False
    assert document["analysis"]["alpha"] == 0.01  # not overridden: still the block's
    assert all(not m["cuped"]["applied"] for m in document["metrics"])
    assert [s["segment"] for s in document["segments"]["values"]][-1] == "other"
    assert len(document["segments"]["values"]) == 3

    table = xp("results", "exp", "--until", until, "--segment", "country", "--top", "2")
    assert table.returncode == 0, table.stderr
    assert "CUPED applied to: pageviews" in table.stdout and "holm correction" in table.stdout
    assert "pageviews by country" in table.stdout


def test_property_and_unique_metrics_take_the_per_metric_query(warehouse: Warehouse, data: Data) -> None:
    """Metrics the shared scan cannot answer (properties.NAME, unique) are recounted the same way."""
    colors = metric_from_dict(
        {"name": "colors", "event": "view", "aggregation": "unique", "value_field": "properties.color"}
    )
    amount = metric_from_dict(
        {"name": "amount", "event": "view", "aggregation": "sum", "value_field": "properties.amount"}
    )
    views: list[MetricEvent] = []
    attributions: list[Attribution] = []
    expected: dict[str, dict[str, float]] = {"colors": {}, "amount": {}}
    for index, (unit, variation) in enumerate(sorted(data.variation.items())[:300]):
        seen: set[str] = set()
        for j in range(index % 4):
            color = ["red", "blue", "green"][(index + j) % 3]
            at = BASE + timedelta(days=1, minutes=j)
            views.append(
                MetricEvent(
                    event_id=f"v{index}-{j}",
                    unit_id=unit,
                    event_name="view",
                    properties={"color": color, "amount": str(j + 0.5)},
                    occurred_at=at,
                )
            )
            attributions.append(Attribution(f"v{index}-{j}", unit, "exp", variation, "view", None, at, at))
            seen.add(color)
            expected["amount"][unit] = expected["amount"].get(unit, 0.0) + j + 0.5
        expected["colors"][unit] = float(len(seen))
    warehouse.insert_arrow("xp.events", to_arrow(views, MetricEvent))
    warehouse.insert_arrow("xp.attributed_events", attributions_table(attributions))
    experiment = replace(
        spec(), metrics=MetricsSpec(primary=("colors", "amount"), definitions=(colors, amount))
    )
    sums = fetch_metric_sums(warehouse, experiment, since=BASE, until=UNTIL)
    for name in ("colors", "amount"):
        for row in sums[name]:
            values = np.array(
                [expected[name].get(u, 0.0) for u, v in data.variation.items() if v == row.variation_id]
            )
            assert row.units == len(values)
            assert row.sum_a == pytest.approx(values.sum()) and values.sum() > 0
            assert row.sum_a_squares == pytest.approx((values * values).sum())
    rows = fetch_segment_sums(warehouse, experiment, dimension="country", since=BASE, until=UNTIL)
    assert sum(r.sum_a for _, r in rows["colors"]) == pytest.approx(sum(expected["colors"].values()))
