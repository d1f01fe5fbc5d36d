"""Cell sums → AdjustedStatistic (jobs.results.adjustment_stats): strata indicators from cell counts.

The statistics built from sums per variation × stratum cell equal those built directly from the units'
regressor rows (covariates, then one 0/1 indicator per stratum value) with numpy; too many stratum values
are refused with a reason; ratio and quantile metrics are not adjusted.
"""

from __future__ import annotations

import numpy as np
import pytest

from assignment.analysis_block import Adjustment
from assignment.metrics_catalog import DEFAULT_METRICS, metric_from_dict
from jobs.results.adjustment_stats import (
    MAX_REGRESSORS,
    CellSums,
    adjusted_statistics,
    adjustment_covariates,
)

ADJUSTMENT = Adjustment(covariates=("own", "sessions"), strata=("country", "device"))


def units(seed: int) -> list[tuple[int, tuple[str, str], float, np.ndarray]]:
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(300):
        cell = (str(rng.choice(["de", "fr", "", "us"])), str(rng.choice(["ios", "web"])))
        x = rng.poisson(3, size=2).astype(float)
        found.append((int(rng.integers(2)), cell, float(x @ [0.5, 0.2] + rng.normal()), x))
    return found


def cells_of(rows: list[tuple[int, tuple[str, str], float, np.ndarray]]) -> list[CellSums]:
    groups: dict[tuple[int, tuple[str, str]], list[tuple[float, np.ndarray]]] = {}
    for variation, cell, y, x in rows:
        groups.setdefault((variation, cell), []).append((y, x))
    found = []
    for (variation, cell), members in sorted(groups.items()):
        ys = np.array([m[0] for m in members])
        xs = np.array([m[1] for m in members])
        found.append(
            CellSums(
                variation,
                cell,
                len(ys),
                float(ys.sum()),
                float(ys @ ys),
                tuple(xs.sum(axis=0)),
                tuple((xs.T @ xs).ravel()),
                tuple(xs.T @ ys),
            )
        )
    return found


def test_statistics_from_cells_equal_those_from_unit_rows() -> None:
    rows = units(3)
    statistics, names = adjusted_statistics(cells_of(rows), [0, 1], ADJUSTMENT, binomial=False)
    countries = ["country=", "country=de", "country=fr", "country=us"]
    assert names == ["own", "sessions", *countries, "device=ios", "device=web"]
    for variation, statistic in zip((0, 1), statistics, strict=True):
        mine = [r for r in rows if r[0] == variation]
        y = np.array([r[2] for r in mine])
        indicators = [
            [float(r[1][0] == c) for c in ("", "de", "fr", "us")]
            + [float(r[1][1] == d) for d in ("ios", "web")]
            for r in mine
        ]
        regressors = np.column_stack([np.array([r[3] for r in mine]), np.array(indicators)])
        assert statistic.n == len(y)
        assert statistic.sum == pytest.approx(y.sum())
        assert statistic.covariate_sums == pytest.approx(tuple(regressors.sum(axis=0)))
        assert np.array(statistic.covariate_crosses) == pytest.approx(regressors.T @ regressors)
        assert statistic.metric_crosses == pytest.approx(tuple(regressors.T @ y))


def test_a_variation_without_units_gets_an_empty_statistic() -> None:
    rows = [r for r in units(4) if r[0] == 0]
    statistics, _ = adjusted_statistics(cells_of(rows), [0, 1], ADJUSTMENT, binomial=False)
    assert statistics[1].n == 0 and not any(statistics[1].covariate_sums)


def test_too_many_stratum_values_are_refused_with_a_reason() -> None:
    cells = [CellSums(0, (f"c{i}",), 1, 1.0, 1.0, (), (), ()) for i in range(MAX_REGRESSORS + 1)]
    with pytest.raises(ValueError, match=f"more than {MAX_REGRESSORS}"):
        adjusted_statistics(cells, [0], Adjustment(strata=("city",)), binomial=False)


def test_ratio_quantile_and_unknown_covariates_are_not_adjusted() -> None:
    catalog = {m.name: m for m in DEFAULT_METRICS}
    ratio = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "conversion"})
    pageviews = catalog["pageviews"]
    assert "ratio" in str(adjustment_covariates(ratio, ADJUSTMENT, catalog)[1])
    assert "'sessions' is not a metric" in str(adjustment_covariates(pageviews, ADJUSTMENT, catalog)[1])
    found, reason = adjustment_covariates(pageviews, Adjustment(covariates=("own", "revenue")), catalog)
    assert reason is None and [m.name for m in found] == ["pageviews", "revenue"]
    assert "covariate 'aov'" in str(
        adjustment_covariates(pageviews, Adjustment(covariates=("aov",)), {**catalog, "aov": ratio})[1]
    )


def test_a_quantile_metric_is_left_unadjusted_with_its_reason() -> None:
    from datetime import UTC, datetime

    from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
    from jobs.analysis_plan import AnalysisPlan
    from jobs.results.analysis import analyze_experiment
    from jobs.stats.quantiles import quantile_statistic
    from schemas.records import ExperimentStatus

    p90 = metric_from_dict({"name": "latency_p90", "type": "quantile", "event": "request", "quantile": 0.9})
    experiment = ExperimentSpec(
        key="x",
        name="x",
        status=ExperimentStatus.RUNNING,
        feature_key="x",
        variations=(VariationSpec(0, "a", "A", 0.5), VariationSpec(1, "b", "B", 0.5)),
        metrics=MetricsSpec(primary=("latency_p90",), definitions=(p90,)),
    )
    rng = np.random.default_rng(5)
    stats = [quantile_statistic(rng.lognormal(1, 1, 500), 0.9) for _ in range(2)]
    now = datetime(2026, 12, 5, tzinfo=UTC)
    bounds = {"computed_at": now, "since": now, "until": now, "quantiles": {"latency_p90": stats}}
    adjusted = analyze_experiment(
        experiment, {}, plan=AnalysisPlan(adjustment=ADJUSTMENT), **bounds
    ).to_json()
    plain = analyze_experiment(experiment, {}, plan=AnalysisPlan(), **bounds).to_json()
    metric = adjusted["metrics"][0]
    assert metric["adjustment"]["applied"] is False
    assert metric["adjustment"]["reason"] == "quantile metrics are not regression-adjusted"
    assert metric["variants"] == plain["metrics"][0]["variants"] and "adjustment" not in plain["metrics"][0]
