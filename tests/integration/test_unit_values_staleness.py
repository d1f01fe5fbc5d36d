"""The staleness bound of results read from ``xp.unit_values`` (``XP_RESULTS_MAX_STALENESS_SECONDS``,
decision 0028) against a real chDB store: within the bound a results call reads the values as of the
last refresh (exact as of it: the live scan without the events stored since) and says so
(``data_as_of``); ``fresh``, a bound of 0 or an expired bound refresh first (the scan with them); a
window that ended before the last refresh (an explicit past ``until``) keeps refresh-then-read.

Reuses the deterministic feed of tests/integration/test_unit_values.py (margin 0 s, as there).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import pytest

from assignment.registry import ExperimentSpec
from jobs.analysis_plan import AnalysisPlan
from jobs.results.batch import batch_plan
from jobs.results.compute import compute_experiment_result
from jobs.results.sums import experiment_catalog
from jobs.unit_values import UnitValuesSettings, UnitValuesState, read_state
from jobs.unit_values.plan import unit_values_plan
from tests.integration.test_unit_values import UNTIL, Feed, same_json, spec
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

# the refresh-then-read path (the overlay of decision 0100, which writes nothing, is tested on its own)
BOUND = UnitValuesSettings(
    results_unit_values_margin_seconds=0,
    results_max_staleness_seconds=3600,
    results_unit_values_overlay=False,
)
ALWAYS = UnitValuesSettings(
    results_unit_values_margin_seconds=0, results_max_staleness_seconds=0, results_unit_values_overlay=False
)
SCAN = UnitValuesSettings(results_unit_values=False)
PLAN = AnalysisPlan(method="frequentist")


def state(warehouse: Warehouse, experiment: ExperimentSpec) -> UnitValuesState:
    metrics = list(experiment.metrics.definitions)
    layout = unit_values_plan(
        batch_plan(metrics, experiment_catalog(experiment)), cuped=False, covariate_days=14.0
    )
    found = read_state(warehouse, experiment.key, layout)
    assert found is not None
    return found


def results(warehouse: Warehouse, experiment: ExperimentSpec, options: UnitValuesSettings, **kw: Any) -> Any:
    """The results JSON (until now unless ``kw`` says otherwise), with the country breakdown."""
    return compute_experiment_result(
        warehouse, experiment, plan=PLAN, segment="country", top=3, unit_values=options, **kw
    ).to_json()


def numbers(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k not in ("computed_at", "data_as_of")}


def as_of(document: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(document["data_as_of"])


def test_within_the_bound_results_are_exact_as_of_the_last_refresh(warehouse: Warehouse) -> None:
    experiment = spec()
    feed = Feed(warehouse)
    feed.new_units(0, 200)
    feed.post_events(list(feed.first))
    first = results(warehouse, experiment, BOUND)  # no state yet: builds, exact now
    assert as_of(first) == datetime.fromisoformat(first["computed_at"])
    built = state(warehouse, experiment)
    before = results(warehouse, experiment, SCAN)
    same_json(numbers(first), numbers(before))

    feed.new_units(200, 40)  # stored after the refresh: new units, and new events of old units
    feed.post_events(list(feed.first)[150:240], per_unit=3.0)
    after = results(warehouse, experiment, SCAN)
    assert after["metrics"][0]["variants"] != before["metrics"][0]["variants"]  # the new data counts

    stale = results(warehouse, experiment, BOUND)
    same_json(numbers(stale), numbers(before))  # as of the refresh: without the new events
    assert as_of(stale) == built.refreshed_at < datetime.fromisoformat(stale["computed_at"])
    assert state(warehouse, experiment) == built  # and nothing was refreshed

    fresh = results(warehouse, experiment, BOUND, fresh=True)
    same_json(numbers(fresh), numbers(after))
    assert as_of(fresh) == datetime.fromisoformat(fresh["computed_at"])
    refreshed = state(warehouse, experiment)
    assert refreshed.refreshed_at > built.refreshed_at

    feed.post_events(list(feed.first)[:60])
    latest = results(warehouse, experiment, SCAN)
    same_json(numbers(results(warehouse, experiment, ALWAYS)), numbers(latest))  # 0: always refresh
    assert state(warehouse, experiment).refreshed_at > refreshed.refreshed_at


def test_an_expired_bound_refreshes_first(warehouse: Warehouse) -> None:
    experiment = spec()
    feed = Feed(warehouse, seed=11)
    feed.new_units(0, 150)
    feed.post_events(list(feed.first))
    results(warehouse, experiment, BOUND)
    built = state(warehouse, experiment)
    feed.post_events(list(feed.first)[:80])
    short = BOUND.model_copy(update={"results_max_staleness_seconds": 0.05})
    time.sleep(0.1)  # the last refresh is now older than the bound
    expired = results(warehouse, experiment, short)
    same_json(numbers(expired), numbers(results(warehouse, experiment, SCAN)))
    assert state(warehouse, experiment).refreshed_at > built.refreshed_at
    assert as_of(expired) == datetime.fromisoformat(expired["computed_at"])


def test_a_window_that_ended_before_the_last_refresh_refreshes_first(warehouse: Warehouse) -> None:
    experiment = spec()
    feed = Feed(warehouse, seed=5)
    feed.new_units(0, 150)
    feed.post_events(list(feed.first))
    results(warehouse, experiment, BOUND)
    built = state(warehouse, experiment)
    assert built.refreshed_at > UNTIL
    feed.post_events(list(feed.first)[:80])  # late events, dated inside the window
    past = results(warehouse, experiment, BOUND, until=UNTIL)
    same_json(numbers(past), numbers(results(warehouse, experiment, SCAN, until=UNTIL)))
    assert state(warehouse, experiment).refreshed_at > built.refreshed_at
    assert as_of(past) == UNTIL
