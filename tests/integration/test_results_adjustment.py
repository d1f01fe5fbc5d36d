"""Regression adjustment (CUPED++) in results against chDB, recounted with numpy (decision 0093).

Units of 'exp' (2 variations) have a latent activity, a country and a device (first exposure's
attributes; a later exposure with other attributes must not count); pageviews and sessions before the
first exposure (raw ``xp.events``: the covariates, some outside the window) and pageviews after it.

Checked: the adjustment query's sums per variation × stratum cell equal a numpy recount; the adjusted
lift equals the treatment coefficient of ``numpy.linalg.lstsq`` of y on (1, arm, covariates, strata
dummies) over the control mean; the variance reduction equals one from the OLS residuals; the interval is
narrower than without; a ratio metric is not adjusted and says why; without the block nothing changes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from assignment.analysis_block import Adjustment
from assignment.metrics_catalog import metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.results.adjustment_stats import fetch_adjustment_sums
from jobs.results.compute import compute_experiment_result
from jobs.results.sums import experiment_catalog
from pipelines.attribution import Attribution
from pipelines.processor import attributions_table
from schemas import Exposure
from schemas.arrow import to_arrow
from schemas.records import ExperimentStatus, ExposureSource, MetricEvent
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

BASE = datetime(2026, 11, 20, 12, tzinfo=UTC)
UNTIL = BASE + timedelta(days=3)
COUNTRIES = ["us", "us", "de", "fr", ""]
DEVICES = ["ios", "android", "web"]
DEVICE_FACTOR = {"ios": 1.6, "android": 1.0, "web": 0.6}
COVARIATE_DAYS = 14.0
SESSIONS = metric_from_dict({"name": "sessions", "event": "session", "aggregation": "count"})
AOV = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "pageviews"})
ADJUSTMENT = Adjustment(covariates=("own", "sessions"), strata=("country", "device"))


class Data:
    def __init__(self, seed: int, units: int = 1500, lift: float = 0.1) -> None:
        rng = np.random.default_rng(seed)
        self.exposures: list[Exposure] = []
        self.events: list[MetricEvent] = []
        self.attributions: list[Attribution] = []
        self.rows: list[tuple[int, str, str, float, float, float]] = []
        """(variation, country, device, y = post pageviews, x1 = pre pageviews, x2 = pre sessions)."""
        for u in range(units):
            unit = f"u{u}"
            variation = int(rng.integers(2))
            first = BASE + timedelta(seconds=int(rng.integers(86400)))
            country = COUNTRIES[int(rng.integers(len(COUNTRIES)))]
            device = DEVICES[int(rng.integers(len(DEVICES)))]
            activity = float(rng.lognormal(0.5, 0.6))
            attributes = {"device": device, **({"country": country} if country else {})}
            self.exposures.append(self._exposure(unit, variation, first, attributes, "a"))
            later = {"device": "tv", "country": "zz"}  # a later exposure: not the unit's stratum
            self.exposures.append(self._exposure(unit, variation, first + timedelta(hours=1), later, "b"))
            counted = [0, 0]
            for kind, (name, mean) in enumerate((("pageview", 2 * activity), ("session", activity))):
                for j in range(int(rng.poisson(mean))):
                    days = 20.0 if j % 6 == 5 else float(rng.uniform(0.01, 13.9))
                    at = first - timedelta(days=days)
                    self.events.append(self._event(f"{name[0]}{u}-{j}", unit, name, at))
                    counted[kind] += days <= COVARIATE_DAYS
            post = int(rng.poisson(activity * DEVICE_FACTOR[device] * (1 + lift * variation)))
            for j in range(post):
                at = first + timedelta(minutes=int(rng.integers(0, 600)))
                self.events.append(self._event(f"q{u}-{j}", unit, "pageview", at))
                self.attributions.append(
                    Attribution(f"q{u}-{j}", unit, "exp", variation, "pageview", None, at, first)
                )
            self.rows.append((variation, country, device, float(post), float(counted[0]), float(counted[1])))

    @staticmethod
    def _exposure(unit: str, variation: int, at: datetime, attributes: dict[str, str], tag: str) -> Exposure:
        return Exposure(
            exposure_id=f"x-{unit}-{tag}",
            unit_id=unit,
            hash_attribute="id",
            experiment_key="exp",
            variation_id=variation,
            variation_key=f"v{variation}",
            source=ExposureSource.LOADGEN,
            attributes=attributes,
            exposed_at=at,
        )

    @staticmethod
    def _event(event_id: str, unit: str, name: str, at: datetime) -> MetricEvent:
        return MetricEvent(event_id=event_id, unit_id=unit, event_name=name, value=None, occurred_at=at)


def spec() -> ExperimentSpec:
    return ExperimentSpec(
        key="exp",
        name="exp",
        status=ExperimentStatus.RUNNING,
        feature_key="exp",
        variations=(VariationSpec(0, "v0", "V0", 0.5), VariationSpec(1, "v1", "V1", 0.5)),
        metrics=MetricsSpec(primary=("pageviews",), secondary=("aov",), definitions=(SESSIONS, AOV)),
    )


@pytest.fixture
def data(warehouse: Warehouse) -> Data:
    data = Data(seed=7)
    warehouse.insert_arrow("xp.exposures", to_arrow(data.exposures, Exposure))
    warehouse.insert_arrow("xp.events", to_arrow(data.events, MetricEvent))
    warehouse.insert_arrow("xp.events", to_arrow(data.events[:40], MetricEvent))  # re-sent: counts once
    warehouse.insert_arrow("xp.attributed_events", attributions_table(data.attributions))
    return data


def test_cell_sums_equal_a_numpy_recount(warehouse: Warehouse, data: Data) -> None:
    experiment = spec()
    catalog = experiment_catalog(experiment)
    found = fetch_adjustment_sums(
        warehouse,
        experiment,
        [catalog["pageviews"], catalog["aov"]],
        ADJUSTMENT,
        catalog,
        since=BASE,
        until=UNTIL,
        covariate_days=COVARIATE_DAYS,
    )
    assert isinstance(found["aov"], str) and "ratio" in found["aov"]
    cells = found["pageviews"]
    assert not isinstance(cells, str)
    expected: dict[tuple[int, tuple[str, str]], list[tuple[float, float, float]]] = {}
    for variation, country, device, y, x1, x2 in data.rows:
        expected.setdefault((variation, (country, device)), []).append((y, x1, x2))
    assert {(c.variation_id, c.cell) for c in cells} == set(expected)
    for cell in cells:
        values = np.array(expected[(cell.variation_id, cell.cell)])
        y, x = values[:, 0], values[:, 1:]
        assert cell.units == len(y)
        assert (cell.sum_y, cell.sum_y_squares) == pytest.approx((y.sum(), (y * y).sum()))
        assert cell.sum_x == pytest.approx(tuple(x.sum(axis=0)))
        assert cell.sum_xx == pytest.approx(tuple((x.T @ x).ravel()))
        assert cell.sum_yx == pytest.approx(tuple(x.T @ y))


def test_adjusted_results_match_ols_and_narrow_the_interval(warehouse: Warehouse, data: Data) -> None:
    plan = AnalysisPlan(method="frequentist", adjustment=ADJUSTMENT)
    adjusted = compute_experiment_result(
        warehouse, spec(), until=UNTIL, plan=plan, covariate_days=COVARIATE_DAYS
    ).to_json()
    plain = compute_experiment_result(warehouse, spec(), until=UNTIL, method="frequentist").to_json()
    json.dumps(adjusted, allow_nan=False)
    assert adjusted["analysis"]["adjustment"] == {
        "covariates": ["own", "sessions"],
        "strata": ["country", "device"],
    }
    assert "adjustment" not in plain["analysis"]
    assert all("adjustment" not in m for m in plain["metrics"])

    rows = data.rows
    arm = np.array([r[0] for r in rows], float)
    y = np.array([r[3] for r in rows])
    covariates = np.array([[r[4], r[5]] for r in rows])
    dummies = [
        np.array([r[i] == level for r in rows], float)
        for i, levels in ((1, sorted(set(COUNTRIES))), (2, DEVICES))
        for level in levels[1:]
    ]
    design = np.column_stack([np.ones(len(rows)), arm, covariates, *dummies])
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    residuals = y - design @ coefficients
    control = arm == 0
    lift = coefficients[1] / y[control].mean()
    plain_variance = sum(np.var(y[a], ddof=1) / a.sum() for a in (control, ~control))
    adjusted_variance = sum(np.var(residuals[a], ddof=1) / a.sum() for a in (control, ~control))

    pageviews = next(m for m in adjusted["metrics"] if m["metric"] == "pageviews")
    adjustment = pageviews["adjustment"]
    assert adjustment["applied"] is True and adjustment["reason"] is None
    assert adjustment["regressors"][:2] == ["own", "sessions"]
    assert "country=" in adjustment["regressors"] and "device=ios" in adjustment["regressors"]
    assert adjustment["coefficients"][:2] == pytest.approx(list(coefficients[2:4]), rel=1e-6)
    assert adjustment["variance_reduction"] == pytest.approx(1 - adjusted_variance / plain_variance, rel=1e-6)
    assert adjustment["variance_reduction"] > 0.2
    treatment = pageviews["variants"][1]
    assert treatment["estimate"] == pytest.approx(lift, rel=1e-6)
    assert pageviews["variants"][0]["mean"] == pytest.approx(y[control].mean())  # unadjusted mean shown
    plain_treatment = next(m for m in plain["metrics"] if m["metric"] == "pageviews")["variants"][1]
    assert treatment["ci_high"] - treatment["ci_low"] < plain_treatment["ci_high"] - plain_treatment["ci_low"]

    aov = next(m for m in adjusted["metrics"] if m["metric"] == "aov")
    assert aov["adjustment"]["applied"] is False and "ratio" in aov["adjustment"]["reason"]
    assert aov["variants"] == next(m for m in plain["metrics"] if m["metric"] == "aov")["variants"]


def test_strata_only_is_post_stratification(warehouse: Warehouse, data: Data) -> None:
    strata = Adjustment(strata=("country", "device"))
    plan = AnalysisPlan(method="sequential", adjustment=strata)  # every method takes it
    result = compute_experiment_result(warehouse, spec(), until=UNTIL, plan=plan).to_json()
    pageviews = next(m for m in result["metrics"] if m["metric"] == "pageviews")
    adjustment = pageviews["adjustment"]
    assert adjustment["applied"] is True and adjustment["covariates"] == []
    assert len(adjustment["regressors"]) == 4 + 3  # every country (none: "") and device seen
    rows = data.rows
    arm = np.array([r[0] for r in rows], float)
    y = np.array([r[3] for r in rows])
    dummies = [np.array([r[2] == d for r in rows], float) for d in DEVICES[1:]]
    dummies += [np.array([r[1] == c for r in rows], float) for c in sorted(set(COUNTRIES))[1:]]
    design = np.column_stack([np.ones(len(rows)), arm, *dummies])
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    control = arm == 0
    estimate = pageviews["variants"][1]["estimate"]
    assert estimate == pytest.approx(coefficients[1] / y[control].mean(), rel=1e-6)
    assert 0 < adjustment["variance_reduction"] < 1  # the device moves pageviews


def test_csv_and_table_report_the_variance_reduction(
    warehouse: Warehouse, data: Data, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobs.results.flat_rows import CSV_COLUMNS, csv_columns, csv_rows
    from xpstream.cli.results import print_result

    plan = AnalysisPlan(method="frequentist", adjustment=ADJUSTMENT)
    result = compute_experiment_result(
        warehouse, spec(), until=UNTIL, plan=plan, covariate_days=COVARIATE_DAYS
    )
    reduction = next(m for m in result.metrics if m.metric.name == "pageviews").adjustment
    assert reduction is not None and reduction.variance_reduction is not None
    assert csv_columns(result)[-2:] == ("adjustment_applied", "variance_reduction")
    rows = [r for r in csv_rows(result) if r["metric"] == "pageviews"]
    assert [r["variance_reduction"] for r in rows] == [reduction.variance_reduction] * 2
    assert all(r["adjustment_applied"] is True for r in rows)
    print_result(result)
    shown = " ".join(capsys.readouterr().out.split())
    assert f"pageviews (variance {reduction.variance_reduction:.1%} lower)" in shown
    assert "not applied to: aov (ratio metrics are not regression-adjusted" in shown
    plain = compute_experiment_result(warehouse, spec(), until=UNTIL, method="frequentist")
    assert csv_columns(plain) == tuple(CSV_COLUMNS)  # without the block the CSV is unchanged
    assert all("variance_reduction" not in r for r in csv_rows(plain))
