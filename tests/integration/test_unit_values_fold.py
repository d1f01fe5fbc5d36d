"""The fold of decision 0099: a refresh adds new attributed rows to the stored per-unit values, and
recomputes a unit in full only when adding would be wrong — against a real chDB store.

Each case stores rows the fold must add, or must refuse to add (a re-send of a folded row with another
value or variation, a key twice among the new rows, a row the previous refresh already folded in its
margin, a new exposure), refreshes, checks how many units were folded and how many recomputed (so the
fold really ran, or really stepped aside), and compares every sum and the results JSON with the live scan
(``XP_RESULTS_UNIT_VALUES=false``) to 1e-9 relative (:func:`assert_same_as_scan`).
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobs.results.batch import batch_plan
from jobs.results.sums import experiment_catalog
from jobs.unit_values import refresh
from jobs.unit_values.plan import UnitValuesPlan, unit_values_plan
from pipelines.attribution import Attribution
from pipelines.processor import attributions_table
from schemas import Exposure
from schemas.arrow import to_arrow
from tests.integration.test_unit_values import COVARIATE_DAYS, Feed, assert_same_as_scan, metrics, spec
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration


def layout() -> UnitValuesPlan:
    return unit_values_plan(
        batch_plan(metrics(), experiment_catalog(spec())), cuped=False, covariate_days=COVARIATE_DAYS
    )


def built(warehouse: Warehouse, units: int = 120) -> Feed:
    feed = Feed(warehouse, seed=23)
    feed.new_units(0, units)
    feed.post_events(list(feed.first))
    report = refresh(warehouse, "uv", layout(), margin_seconds=0)
    assert report.full
    return feed


def folded_count(warehouse: Warehouse) -> list[int]:
    """Per stored newest row: how many attributed keys it says it folded in (its ``folded`` length)."""
    table = warehouse.query_arrow(
        "SELECT length(folded) AS n FROM xp.unit_values FINAL WHERE experiment_key = 'uv' ORDER BY unit_id"
    )
    return [int(n) for n in table.column("n").to_pylist()]


def attributed_rows(warehouse: Warehouse) -> int:
    """Attributed rows of 'uv' counted per unit in its own variation (FINAL): what ``folded`` must hold."""
    table = warehouse.query_arrow(
        "SELECT count() AS n FROM xp.attributed_events AS a FINAL INNER JOIN"
        " (SELECT unit_id, argMinMerge(first_variation_id) AS v FROM xp.unit_exposures"
        "  WHERE experiment_key = 'uv' GROUP BY unit_id) AS u"
        " ON u.unit_id = a.unit_id AND u.v = a.variation_id"
        " WHERE a.experiment_key = 'uv' AND a.event_name IN ('purchase', 'pageview')"
    )
    return int(table.column("n")[0].as_py())


def test_new_rows_of_known_units_are_folded_not_recomputed(warehouse: Warehouse) -> None:
    feed = built(warehouse)
    feed.post_events([f"u{u}" for u in range(0, 120, 3)], per_unit=3.0)
    report = refresh(warehouse, "uv", layout(), margin_seconds=0)
    assert report.units is not None and report.units > 20
    assert report.recomputed == 0  # every changed unit only had new keys: all folded
    assert sum(folded_count(warehouse)) == attributed_rows(warehouse)
    assert_same_as_scan(warehouse, spec())
    # and once more on top of folded rows
    feed.post_events([f"u{u}" for u in range(1, 120, 4)], per_unit=2.0)
    again = refresh(warehouse, "uv", layout(), margin_seconds=0)
    assert again.units and again.recomputed == 0
    assert_same_as_scan(warehouse, spec())


def test_a_resent_row_makes_its_unit_recomputed(warehouse: Warehouse) -> None:
    """A re-send of a folded key (new attributed_at, another value, another variation) is replaced by
    FINAL: adding it would count the event twice, so the unit is recomputed."""
    feed = built(warehouse)
    first = feed.post_events([f"u{u}" for u in range(0, 40)], per_unit=2.0)
    assert refresh(warehouse, "uv", layout(), margin_seconds=0).recomputed == 0
    purchases = [a for a in first if a.event_name == "purchase"]
    changed_value = purchases[0]._replace(value=(purchases[0].value or 0.0) + 100.0)
    same = purchases[1]
    other_variation = purchases[2]._replace(variation_id=(purchases[2].variation_id + 1) % 3)
    resent = [changed_value, same, other_variation]
    warehouse.insert_arrow("xp.attributed_events", attributions_table(resent))
    feed.post_events([f"u{u}" for u in range(60, 80)], per_unit=2.0)  # foldable beside them
    report = refresh(warehouse, "uv", layout(), margin_seconds=0)
    assert report.recomputed == len({a.unit_id for a in resent})
    assert report.units is not None and report.units > report.recomputed
    assert sum(folded_count(warehouse)) == attributed_rows(warehouse)
    assert_same_as_scan(warehouse, spec())


def test_a_key_twice_among_the_new_rows_is_not_added_twice(warehouse: Warehouse) -> None:
    feed = built(warehouse)
    new = feed.post_events(["u7", "u8"], per_unit=4.0)
    assert new
    warehouse.insert_arrow("xp.attributed_events", attributions_table(new[:1]))  # re-sent before any refresh
    report = refresh(warehouse, "uv", layout(), margin_seconds=0)
    assert report.recomputed == 1
    assert_same_as_scan(warehouse, spec())


def test_rows_the_previous_refresh_folded_in_its_margin_are_not_added_again(warehouse: Warehouse) -> None:
    """With a margin, the next refresh looks at rows the previous one already folded: their keys are in
    ``folded``, so those units are recomputed (as before decision 0099), never counted twice."""
    feed = built(warehouse)
    feed.post_events([f"u{u}" for u in range(0, 30)], per_unit=2.0)
    assert refresh(warehouse, "uv", layout(), margin_seconds=3600).recomputed == 0
    feed.post_events([f"u{u}" for u in range(90, 100)], per_unit=2.0)
    report = refresh(warehouse, "uv", layout(), margin_seconds=3600)
    assert report.recomputed is not None and report.recomputed >= 20  # the re-looked units, recomputed
    assert sum(folded_count(warehouse)) == attributed_rows(warehouse)
    assert_same_as_scan(warehouse, spec())


def test_a_row_of_another_variation_and_a_new_exposure(warehouse: Warehouse) -> None:
    """A new row in a variation the unit was not assigned adds nothing; a unit with a new exposure (a
    second variation, an earlier first exposure) is recomputed whatever its new rows."""
    feed = built(warehouse)
    variation, first = feed.first["u11"]
    stray = Attribution("stray-1", "u11", "uv", (variation + 1) % 3, "purchase", 9.5, first, first)
    warehouse.insert_arrow("xp.attributed_events", attributions_table([stray]))
    moved_variation, moved_first = feed.first["u12"]
    earlier = feed.exposure("u12", moved_variation, moved_first - timedelta(hours=2))
    warehouse.insert_arrow("xp.exposures", to_arrow([earlier], Exposure))
    feed.post_events(["u12", "u13"], per_unit=3.0)
    report = refresh(warehouse, "uv", layout(), margin_seconds=0)
    assert report.recomputed == 1  # u12
    assert_same_as_scan(warehouse, spec())


def test_the_fold_can_be_turned_off(warehouse: Warehouse) -> None:
    feed = built(warehouse)
    feed.post_events([f"u{u}" for u in range(0, 120, 5)], per_unit=2.0)
    report = refresh(warehouse, "uv", layout(), margin_seconds=0, fold=False)
    assert report.units and report.recomputed == report.units
    assert_same_as_scan(warehouse, spec())


def test_hostile_event_ids_are_only_hashed(warehouse: Warehouse) -> None:
    """Event ids are data, never SQL: quotes, braces and placeholders in them are folded like any id."""
    feed = built(warehouse, units=20)
    _variation, first = feed.first["u3"]
    hostile = [
        Attribution(event_id, "u3", "uv", feed.first["u3"][0], "purchase", 1.25, first, first)
        for event_id in ("x'); DROP TABLE xp.unit_values; --", "{watermark:String}", "\\0\n\t\u00e9")
    ]
    warehouse.insert_arrow("xp.attributed_events", attributions_table(hostile))
    report = refresh(warehouse, "uv", layout(), margin_seconds=0)
    assert report.units == 1 and report.recomputed == 0
    assert_same_as_scan(warehouse, spec())
