"""Funnels against chDB: seeded step conversions recovered, counts equal to a recount and to direct SQL.

Units of experiment 'exp' (2 variations) go through pageview → add_to_cart → purchase with known
per-variation step conversions; treatment converts better on the middle step only (add_to_cart given
pageview: 0.30 → 0.45, a relative lift of overall add_to_cart conversion of +50 %). Some units are
excluded (overridden, seen in two variations), some events fall outside the window or out of order, and
another experiment's rows are present. The funnel (``windowFunnel``) must equal a Python recount of the
same rows (ordered and unordered), the exposure step must equal direct SQL over ``xp.unit_exposures``,
and the engine's interval must contain the seeded lift.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from assignment.funnel_block import make_funnel
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.funnels import compute_funnel
from pipelines.attribution import Attribution
from pipelines.processor import attributions_table
from schemas import Exposure
from schemas.arrow import to_arrow
from schemas.records import ExperimentStatus
from tests.factories import make_exposure
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

BASE = datetime(2026, 11, 20, 12, tzinfo=UTC)
STEPS = ("pageview", "add_to_cart", "purchase")
STEP_CONVERSION = {0: (0.60, 0.30, 0.50), 1: (0.60, 0.45, 0.50)}
"""Per variation: P(pageview), P(add_to_cart | pageview), P(purchase | add_to_cart)."""
SEEDED_LIFT = 0.45 / 0.30 - 1
WINDOW = timedelta(hours=24)


def spec() -> ExperimentSpec:
    return ExperimentSpec(
        key="exp",
        name="exp",
        status=ExperimentStatus.RUNNING,
        feature_key="exp",
        variations=(
            VariationSpec(0, "control", "Control", 0.5),
            VariationSpec(1, "treatment", "Treatment", 0.5),
        ),
        metrics=MetricsSpec(),
    )


class Seeded:
    """The rows, and per eligible unit its variation, first exposure and step events."""

    def __init__(self, seed: int, units: int = 6000) -> None:
        rng = random.Random(seed)
        self.exposures: list[Exposure] = []
        self.attributions: list[Attribution] = []
        self.units: dict[str, tuple[int, datetime, list[tuple[str, datetime]]]] = {}
        for u in range(units):
            unit, variation = f"u{u}", u % 2
            first = BASE + timedelta(seconds=rng.randrange(3600))
            overridden = u % 29 == 0
            seen = [variation] + ([1 - variation] if u % 31 == 0 else [])
            for i, v in enumerate(seen):
                self.exposures.append(make_exposure(unit, v, first + timedelta(minutes=i), i, overridden))
            events: list[tuple[str, datetime]] = []
            at = first
            for step, p in zip(STEPS, STEP_CONVERSION[variation], strict=True):
                if rng.random() >= p:
                    break
                at += timedelta(seconds=rng.randrange(1, 4 * 3600))
                events.append((step, at))
            if u % 13 == 0 and events:  # a late purchase, after the window: not a step
                events.append(("purchase", first + WINDOW + timedelta(minutes=5)))
            if u % 17 == 0:  # a purchase before its first pageview: counts only when unordered
                events.insert(0, ("purchase", first + timedelta(milliseconds=500)))
            if u % 11 == 0:
                events.append(("signup", first + timedelta(minutes=1)))  # not a step
            for j, (name, occurred) in enumerate(events):
                self.attributions.append(
                    Attribution(f"e{u}-{j}", unit, "exp", variation, name, None, occurred, first)
                )
            if not overridden and len(seen) == 1:
                self.units[unit] = (variation, first, events)
        self.exposures.append(make_exposure("u0", 1, BASE, 0, False, experiment="other"))
        self.attributions.append(Attribution("o1", "u0", "other", 1, "pageview", None, BASE, BASE))

    def recount(self, ordered: bool) -> dict[int, tuple[int, list[int]]]:
        """Per variation: units, and units that reached each step (the rule, recounted by hand)."""
        out: dict[int, tuple[int, list[int]]] = {v: (0, [0] * len(STEPS)) for v in (0, 1)}
        for variation, first, events in self.units.values():
            inside = sorted((at, name) for name, at in events if at <= first + WINDOW)
            if ordered:
                level = 0
                for _, name in inside:
                    if level < len(STEPS) and name == STEPS[level]:
                        level += 1
            else:
                names = {name for _, name in inside}
                level = next((j for j, step in enumerate(STEPS) if step not in names), len(STEPS))
            units, reached = out[variation]
            out[variation] = (units + 1, [r + (level > j) for j, r in enumerate(reached)])
        return out


def load(warehouse: Warehouse, data: Seeded) -> None:
    warehouse.insert_arrow("xp.exposures", to_arrow(data.exposures, Exposure))
    warehouse.insert_arrow("xp.attributed_events", attributions_table(data.attributions))
    warehouse.insert_arrow("xp.attributed_events", attributions_table(data.attributions[:7]))  # re-sent once


@pytest.mark.parametrize("ordered", [True, False], ids=["ordered", "unordered"])
def test_funnel_equals_a_recount_and_recovers_the_seeded_lift(warehouse: Warehouse, ordered: bool) -> None:
    data = Seeded(seed=20)
    load(warehouse, data)
    funnel = make_funnel(["exposure", *STEPS], "24h", ordered)
    result = compute_funnel(
        warehouse, spec(), funnel, plan=AnalysisPlan(method="frequentist"), until=BASE + timedelta(days=3)
    )
    document = result.to_json()
    assert document["steps"] == ["exposure", *STEPS]
    expected = data.recount(ordered)
    for variation in document["variations"]:
        units, reached = expected[variation["variation_id"]]
        assert [s["units"] for s in variation["steps"]] == [units, *reached]
        assert variation["steps"][2]["conversion_from_previous"] == pytest.approx(reached[1] / reached[0])
        assert variation["steps"][3]["conversion_overall"] == pytest.approx(reached[2] / units)
    # the exposure step is the results' unit rule: direct SQL over xp.unit_exposures
    direct = warehouse.query_arrow(
        "SELECT variation_id, count() AS units FROM (SELECT unit_id, argMinMerge(first_variation_id) AS "
        "variation_id FROM xp.unit_exposures WHERE experiment_key = 'exp' GROUP BY unit_id HAVING "
        "min(min_variation_id) = max(max_variation_id) AND max(overridden) = 0) GROUP BY variation_id "
        "ORDER BY variation_id"
    ).to_pylist()
    assert [(r["variation_id"], r["units"]) for r in direct] == [
        (v["variation_id"], v["steps"][0]["units"]) for v in document["variations"]
    ]
    treatment = {s["step"]: s for s in document["variations"][1]["steps"]}
    cart = treatment["add_to_cart"]
    assert cart["significant"] and cart["ci_low"] < SEEDED_LIFT < cart["ci_high"]
    assert cart["lift"] == pytest.approx(
        (expected[1][1][1] / expected[1][0]) / (expected[0][1][1] / expected[0][0]) - 1
    )
    assert treatment["pageview"]["ci_low"] < 0 < treatment["pageview"]["ci_high"]
    assert document["variations"][0]["steps"][1]["lift"] is None  # control


def test_unordered_counts_a_purchase_before_the_pageview(warehouse: Warehouse) -> None:
    """The difference between the two modes is exactly the out-of-order units."""
    data = Seeded(seed=3, units=800)
    load(warehouse, data)
    until = BASE + timedelta(days=3)
    purchases = [
        compute_funnel(warehouse, spec(), make_funnel(list(STEPS), "24h", ordered), until=until).to_json()
        for ordered in (True, False)
    ]
    ordered_total = sum(v["steps"][-1]["units"] for v in purchases[0]["variations"])
    unordered_total = sum(v["steps"][-1]["units"] for v in purchases[1]["variations"])
    assert ordered_total < unordered_total


def test_correction_adjusts_every_step(warehouse: Warehouse) -> None:
    load(warehouse, Seeded(seed=7, units=2000))
    funnel = make_funnel(list(STEPS), "24h")
    result = compute_funnel(
        warehouse,
        spec(),
        funnel,
        plan=AnalysisPlan(method="frequentist", correction="holm"),
        until=BASE + timedelta(days=3),
    ).to_json()
    steps = result["variations"][1]["steps"][1:]
    assert all(s["p_value_adjusted"] >= s["p_value"] for s in steps)
    assert any(s["p_value_adjusted"] > s["p_value"] for s in steps)


def test_an_experiment_without_units_gives_coded_errors(warehouse: Warehouse) -> None:
    result = compute_funnel(warehouse, spec(), make_funnel(["pageview"]), until=BASE).to_json()
    step = result["variations"][1]["steps"][1]
    assert step["units"] == 0 and step["lift"] is None and step["error"] == "empty_variation"
