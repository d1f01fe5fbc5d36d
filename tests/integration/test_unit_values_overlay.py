"""The read-time overlay of decision 0100 against the full recomputation, on random messy data (chDB).

A ``--fresh`` call (and a refresh-needing read) answers from the stored per-unit values plus the rows
stored since the last refresh, recomputing inside the read only the units it cannot add to, and writes
nothing. Each seeded round stores a random mix of what a live experiment gets — new units (new
exposures), events of old units, late events (occurred long ago, stored now), re-sends of rows already
folded in (same key, another value or variation), a key twice among the new rows, a second variation, an
override, an earlier first exposure, pre-exposure raw events (CUPED) — sometimes with a background
refresh in between. After every round the sums (totals, ``country`` segments, CUPED covariates) and the
results JSON (binomial, count, sum, windowed, ratio and quantile metrics; frequentist and CUPED + Holm)
must equal the live scan's (the full recomputation, ``XP_RESULTS_UNIT_VALUES=false``) to 1e-9 relative,
and the store must be unchanged (the overlay really answered). The last test checks that these
comparisons fail on a deliberately wrong overlay (one that adds re-sent rows again).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

import jobs.unit_values as unit_values_module
from assignment.metrics_catalog import metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec
from jobs.results.batch import batch_plan
from jobs.results.sums import experiment_catalog
from jobs.unit_values import overlaid_sums, read_state, refresh
from jobs.unit_values.plan import UnitValuesPlan, unit_values_plan
from pipelines.processor import attributions_table
from schemas import Exposure
from schemas.arrow import to_arrow
from schemas.records import MetricEvent
from tests.integration.test_unit_values import (
    BASE,
    COVARIATE_DAYS,
    UNTIL,
    Feed,
    assert_same_as_scan,
    metrics,
    spec,
)
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

QUANTILE = {"name": "spend_p50", "type": "quantile", "event": "purchase", "quantile": 0.5}


def experiment() -> ExperimentSpec:
    """'uv' of test_unit_values plus a quantile metric (answered by its own query, beside the overlay)."""
    base = spec()
    definitions = (*base.metrics.definitions, metric_from_dict(QUANTILE))
    names = tuple(m.name for m in definitions)
    return replace(base, metrics=MetricsSpec(primary=names[:1], secondary=names[1:], definitions=definitions))


def layout(cuped: bool = False) -> UnitValuesPlan:
    return unit_values_plan(
        batch_plan(metrics(), experiment_catalog(spec())), cuped=cuped, covariate_days=COVARIATE_DAYS
    )


def overlay_report(warehouse: Warehouse) -> int:
    """How many units the overlay recomputes now (the rest of the touched units get their delta added)."""
    known = read_state(warehouse, "uv", layout())
    assert known is not None
    found = overlaid_sums(warehouse, "uv", layout(), known, since=BASE - timedelta(days=30), until=UNTIL)
    assert found is not None
    return found[2]


def newest_version(warehouse: Warehouse) -> int:
    """The newest version written to ``xp.unit_values`` (a refresh writes a higher one; merges do not)."""
    return int(warehouse.query_arrow("SELECT max(version) AS v FROM xp.unit_values").column("v")[0].as_py())


def messy_round(feed: Feed, rng: np.random.Generator, round_: int, sent: list[Any]) -> None:
    """One random round of what a live experiment gets (see the module docstring)."""
    warehouse, known = feed.warehouse, list(feed.first)
    start = len(known)
    fresh_units = int(rng.integers(0, 12))
    if fresh_units:  # new exposures, with events
        feed.new_units(start, fresh_units)
        sent += feed.post_events([f"u{u}" for u in range(start, start + fresh_units)])
    old = [known[int(i)] for i in rng.choice(len(known), size=25, replace=False)]
    new = feed.post_events(old, per_unit=float(rng.uniform(0.5, 3.0)))
    sent += new
    if (
        sent and rng.random() < 0.7
    ):  # re-sends of rows already stored: same key, maybe another value/variation
        picked = [sent[int(i)] for i in rng.choice(len(sent), size=min(4, len(sent)), replace=False)]
        resent = [
            a._replace(value=(a.value or 0.0) + 7.0) if k % 3 == 0 else
            a._replace(variation_id=(a.variation_id + 1) % 3) if k % 3 == 1 else a
            for k, a in enumerate(picked)
        ]  # fmt: skip
        warehouse.insert_arrow("xp.attributed_events", attributions_table(resent))
    if new and rng.random() < 0.5:  # a key twice among the new rows
        warehouse.insert_arrow("xp.attributed_events", attributions_table(new[:1]))
    if rng.random() < 0.6:  # late rows: occurred a day before, stored now
        unit = old[0]
        variation, first = feed.first[unit]
        late = [a._replace(event_id=f"late{round_}-{k}", occurred_at=first - timedelta(days=1))
                for k, a in enumerate(feed.post_events([unit], per_unit=2.0)[:2])]  # fmt: skip
        if late:
            warehouse.insert_arrow("xp.attributed_events", attributions_table(late))
            sent += late
    moves = []
    if rng.random() < 0.5:  # a second variation
        unit = old[1]
        variation, at = feed.first[unit]
        moves.append(feed.exposure(unit, (variation + 1) % 3, at + timedelta(minutes=5)))
    if rng.random() < 0.4:  # an override
        unit = old[2]
        moves.append(feed.exposure(unit, feed.first[unit][0], feed.first[unit][1], overridden=True))
    if rng.random() < 0.5:  # an earlier first exposure (moves the windows and the covariate window)
        unit = old[3]
        variation, at = feed.first[unit]
        moves.append(feed.exposure(unit, variation, at - timedelta(hours=30)))
    if moves:
        warehouse.insert_arrow("xp.exposures", to_arrow(moves, Exposure))
    if rng.random() < 0.6:  # pre-exposure raw events (CUPED covariates) of old units
        feed.pre_events(old[4:8])
    if rng.random() < 0.3:  # a raw event of a covariate name, stored now, before the first exposure
        unit = old[5]
        raw = MetricEvent(
            event_id=f"pre{round_}", unit_id=unit, event_name="purchase", value=3.0,
            occurred_at=feed.first[unit][1] - timedelta(days=2),
        )  # fmt: skip
        warehouse.insert_arrow("xp.events", to_arrow([raw], MetricEvent))


@pytest.mark.parametrize("seed", [3, 17, 41])
def test_the_overlay_equals_the_scan_on_messy_rounds(warehouse: Warehouse, seed: int) -> None:
    rng = np.random.default_rng(seed)
    feed = Feed(warehouse, seed=seed)
    feed.new_units(0, 120)
    sent = feed.post_events(list(feed.first))
    assert refresh(warehouse, "uv", layout(), margin_seconds=0).full
    assert refresh(warehouse, "uv", layout(cuped=True), margin_seconds=0).full
    recomputed = []
    for round_ in range(4):
        messy_round(feed, rng, round_, sent)
        before = newest_version(warehouse)
        recomputed.append(overlay_report(warehouse))
        assert_same_as_scan(warehouse, experiment())
        assert_same_as_scan(warehouse, experiment(), since=BASE + timedelta(hours=10))
        assert newest_version(warehouse) == before  # the overlay answered: nothing written
        if rng.random() < 0.5:  # the background refresher catches up now and then
            refresh(warehouse, "uv", layout(), margin_seconds=0)
            refresh(warehouse, "uv", layout(cuped=True), margin_seconds=0)
    assert any(recomputed), recomputed  # some rounds needed recomputed units (moves, re-sends, new units)


def test_new_rows_only_are_added_not_recomputed(warehouse: Warehouse) -> None:
    """Rows with new keys of known units, no exposure since: every touched unit gets its delta added."""
    feed = Feed(warehouse, seed=5)
    feed.new_units(0, 80)
    feed.post_events(list(feed.first))
    refresh(warehouse, "uv", layout(), margin_seconds=0)
    refresh(warehouse, "uv", layout(cuped=True), margin_seconds=0)
    feed.post_events([f"u{u}" for u in range(0, 80, 2)], per_unit=3.0)
    assert overlay_report(warehouse) == 0
    assert_same_as_scan(warehouse, experiment())


def test_a_margin_looks_again_at_folded_rows_and_recomputes_them(warehouse: Warehouse) -> None:
    """With a margin, the overlay sees rows the last refresh already folded: their keys are in
    ``folded``, so those units are recomputed inside the read, never counted twice."""
    feed = Feed(warehouse, seed=9)
    feed.new_units(0, 60)
    feed.post_events(list(feed.first))
    refresh(warehouse, "uv", layout(), margin_seconds=0)
    feed.post_events([f"u{u}" for u in range(0, 20)], per_unit=2.0)
    refresh(warehouse, "uv", layout(), margin_seconds=3600)
    assert overlay_report(warehouse) >= 15  # every unit with a row stored within the margin
    assert_same_as_scan(warehouse, experiment())


def test_the_comparison_fails_on_a_wrong_overlay(warehouse: Warehouse, monkeypatch: Any) -> None:
    """An overlay that adds a re-sent row to the stored value (no ``folded`` check) counts it twice:
    the same comparison as above must catch it."""
    feed = Feed(warehouse, seed=13)
    feed.new_units(0, 60)
    first = feed.post_events(list(feed.first), per_unit=3.0)
    refresh(warehouse, "uv", layout(), margin_seconds=0)
    refresh(warehouse, "uv", layout(cuped=True), margin_seconds=0)
    purchases = [a for a in first if a.event_name == "purchase"][:6]
    warehouse.insert_arrow("xp.attributed_events", attributions_table(purchases))
    assert_same_as_scan(warehouse, experiment())  # the right overlay recomputes those units
    right = unit_values_module.overlay_read_sql

    def wrong(plan: UnitValuesPlan) -> str:
        sql = right(plan)
        assert "OR hasAny(s.folded, d.all_keys)" in sql
        return sql.replace("OR hasAny(s.folded, d.all_keys)", "")

    monkeypatch.setattr(unit_values_module, "overlay_read_sql", wrong)
    with pytest.raises(AssertionError):
        assert_same_as_scan(warehouse, experiment())


def test_too_many_units_to_recompute_refresh_instead(warehouse: Warehouse, monkeypatch: Any) -> None:
    """The units to recompute travel as one parameter (a form field over HTTP, at most 128 KiB on a
    server): past the cap the overlay gives up and the call refreshes, still the scan's numbers."""
    feed = Feed(warehouse, seed=17)
    feed.new_units(0, 60)
    feed.post_events(list(feed.first))
    refresh(warehouse, "uv", layout(), margin_seconds=0)
    refresh(warehouse, "uv", layout(cuped=True), margin_seconds=0)
    feed.post_events([f"u{u}" for u in range(0, 20)], per_unit=2.0)
    refresh(warehouse, "uv", layout(), margin_seconds=3600)  # within the margin: those units recompute
    assert overlay_report(warehouse) >= 15
    monkeypatch.setattr(unit_values_module, "MAX_RECOMPUTE_PARAMETER_BYTES", 40)  # ~5 unit ids
    known = read_state(warehouse, "uv", layout())
    assert known is not None
    assert (
        overlaid_sums(warehouse, "uv", layout(), known, since=BASE - timedelta(days=30), until=UNTIL) is None
    )
    before = newest_version(warehouse)
    assert_same_as_scan(warehouse, experiment())
    assert newest_version(warehouse) > before  # it refreshed
