"""analyze_funnel (pure): conversions from counts, every step's lift by the engine, the correction over
every step × treatment as one family, coded errors for degenerate data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from assignment.funnel_block import make_funnel
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.funnels import FunnelCounts, analyze_funnel
from jobs.stats import ProportionStatistic, compare_variations, holm_bonferroni
from schemas.records import ExperimentStatus

AT = datetime(2026, 12, 1, tzinfo=UTC)
SPEC = ExperimentSpec(
    key="exp",
    name="exp",
    status=ExperimentStatus.RUNNING,
    feature_key="exp",
    variations=tuple(VariationSpec(i, f"v{i}", f"V{i}", 1 / 3) for i in range(3)),
    metrics=MetricsSpec(),
)
FUNNEL = make_funnel(["pageview", "cart", "purchase"])
COUNTS = [
    FunnelCounts(0, 1000, (600, 180, 90)),
    FunnelCounts(1, 1000, (610, 270, 130)),
    FunnelCounts(2, 990, (590, 170, 95)),
]


def analyze(plan: AnalysisPlan, counts: list[FunnelCounts] = COUNTS) -> dict:
    return analyze_funnel(SPEC, FUNNEL, counts, plan=plan, since=AT, until=AT, computed_at=AT).to_json()


def test_conversions_and_lifts_come_from_the_counts_and_the_engine() -> None:
    document = analyze(AnalysisPlan(method="frequentist"))
    assert document["steps"] == ["exposure", "pageview", "cart", "purchase"]
    treatment = document["variations"][1]["steps"]
    assert [s["units"] for s in treatment] == [1000, 610, 270, 130]
    assert treatment[2]["conversion_from_previous"] == pytest.approx(270 / 610)
    assert treatment[3]["conversion_overall"] == pytest.approx(0.13)
    assert treatment[0]["conversion_overall"] == 1.0 and treatment[0]["lift"] is None
    assert treatment[2]["lift"] == pytest.approx(0.27 / 0.18 - 1)
    engine = compare_variations(
        [ProportionStatistic(1000, 180), ProportionStatistic(1000, 270), ProportionStatistic(990, 170)],
        method="frequentist",
    )
    assert (treatment[2]["ci_low"], treatment[2]["ci_high"], treatment[2]["p_value"]) == (
        engine[0].ci_low,
        engine[0].ci_high,
        engine[0].p_value,
    )
    assert treatment[2]["significant"] and not document["variations"][2]["steps"][2]["significant"]
    assert all(s["lift"] is None for s in document["variations"][0]["steps"])


def test_the_correction_covers_every_step_and_treatment() -> None:
    document = analyze(AnalysisPlan(method="frequentist", correction="holm"))
    raw = [v["steps"][k]["p_value"] for v in document["variations"][1:] for k in (1, 2, 3)]
    adjusted = [v["steps"][k]["p_value_adjusted"] for v in document["variations"][1:] for k in (1, 2, 3)]
    order = sorted(range(6), key=lambda i: (i % 3, i // 3))  # (variation, step) order of the family
    expected = holm_bonferroni([raw[i] for i in order])
    assert [adjusted[i] for i in order] == pytest.approx(expected)
    assert (
        analyze(AnalysisPlan(method="frequentist"))["variations"][1]["steps"][1]["p_value_adjusted"] is None
    )


def test_a_missing_variation_and_nobody_converting_are_coded() -> None:
    document = analyze(AnalysisPlan(), [FunnelCounts(0, 50, (0, 0, 0)), FunnelCounts(1, 40, (0, 0, 0))])
    missing = document["variations"][2]["steps"]
    assert missing[0]["units"] == 0 and missing[0]["conversion_overall"] is None
    assert missing[1]["error"] == "empty_variation" and missing[1]["lift"] is None
    assert document["variations"][1]["steps"][1]["error"] is not None
    assert document["variations"][1]["steps"][2]["conversion_from_previous"] is None
