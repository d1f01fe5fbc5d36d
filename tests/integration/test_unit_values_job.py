"""The background refresher of ``xp.unit_values`` (``xp jobs run unit-values``, decision 0028) against a
real chDB store: after it runs, the results read current values (their own refresh has nothing left to
fold in) and equal the live scan; compaction merges replaced rows and changes no number.

Reuses the deterministic feed of tests/integration/test_unit_values.py (margin 0 s, as there).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from assignment.registry import RegistrySnapshot
from jobs.results.batch import batch_plan
from jobs.results.sums import experiment_catalog
from jobs.unit_values import UnitValuesSettings, refresh
from jobs.unit_values.job import (
    compact,
    experiment_unit_values_plan,
    refresh_experiment,
    refresh_running,
    stored_parts,
)
from jobs.unit_values.plan import unit_values_plan
from tests.integration.test_unit_values import (
    BASE,
    COVARIATE_DAYS,
    Feed,
    assert_same_as_scan,
    metrics,
    spec,
)
from xpcore.config import WarehouseSettings
from xpcore.warehouse import Warehouse, open_warehouse

pytestmark = pytest.mark.integration

OPTIONS = UnitValuesSettings(results_unit_values_margin_seconds=0)


def test_the_refresher_keeps_the_values_the_results_read_current(warehouse: Warehouse) -> None:
    experiment = spec()
    feed = Feed(warehouse, seed=5)
    feed.new_units(0, 200)
    feed.post_events(list(feed.first))
    for cuped in (False, True):
        plan = experiment_unit_values_plan(experiment, cuped=cuped, covariate_days=COVARIATE_DAYS)
        same = unit_values_plan(
            batch_plan(metrics(), experiment_catalog(experiment)), cuped=cuped, covariate_days=COVARIATE_DAYS
        )
        assert plan is not None and plan.key == same.key  # the plan the results read

    # the registry's running experiments: no analysis block, so no CUPED (one plan)
    snapshot = RegistrySnapshot(experiments={"uv": experiment})
    run = refresh_running(warehouse, snapshot, covariate_days=COVARIATE_DAYS, options=OPTIONS)
    [first] = run.refreshed
    assert first.experiment == "uv" and first.refresh.full and run.compaction is not None
    plan = experiment_unit_values_plan(experiment, cuped=False, covariate_days=COVARIATE_DAYS)
    assert plan is not None and first.plan.key == plan.key

    # new events arrive, the refresher folds them in, the results call finds nothing left to do
    feed.post_events([f"u{u}" for u in range(0, 200, 7)], per_unit=1.0)
    feed.new_units(200, 20)
    feed.post_events([f"u{u}" for u in range(200, 220)])
    run = refresh_running(warehouse, snapshot, covariate_days=COVARIATE_DAYS, options=OPTIONS)
    [again] = run.refreshed
    assert not again.refresh.full and again.refresh.units and again.refresh.units >= 20
    assert run.compaction is not None and run.compaction.compacted  # the new part was merged
    assert stored_parts(warehouse, "uv", plan) == (220, 1)
    assert refresh(warehouse, "uv", plan, margin_seconds=0).units == 0  # current: nothing changed since
    assert_same_as_scan(warehouse, experiment)

    # with CUPED the job keeps that plan current too (both keys coexist)
    feed.pre_events([f"u{u}" for u in range(0, 200, 9)])
    done = refresh_experiment(
        warehouse, experiment, cuped=True, covariate_days=COVARIATE_DAYS, options=OPTIONS
    )
    cuped_plan = experiment_unit_values_plan(experiment, cuped=True, covariate_days=COVARIATE_DAYS)
    assert cuped_plan is not None and cuped_plan.key != plan.key
    # built by the comparison above; the new pre-exposure events changed some units
    assert done is not None and done.plan.key == cuped_plan.key and done.refresh.units
    assert refresh(warehouse, "uv", cuped_plan, margin_seconds=0).units == 0
    assert_same_as_scan(warehouse, experiment)


def test_compaction_merges_replaced_rows_and_keeps_the_numbers(warehouse: Warehouse) -> None:
    experiment = spec()
    feed = Feed(warehouse, seed=9)
    feed.new_units(0, 150)
    feed.post_events(list(feed.first))
    plan = experiment_unit_values_plan(experiment, cuped=False, covariate_days=COVARIATE_DAYS)
    assert plan is not None
    refresh(warehouse, "uv", plan, margin_seconds=0)
    warehouse.command("SYSTEM STOP MERGES xp.unit_values")  # replaced rows stay until the compaction
    try:
        for step in (15, 4):  # two rounds of changed units, each a new part
            feed.post_events([f"u{u}" for u in range(0, 150, step)], per_unit=1.0)
            done = refresh_experiment(
                warehouse, experiment, cuped=False, covariate_days=COVARIATE_DAYS, options=OPTIONS
            )
            assert done is not None and done.refresh.units
        rows, parts = stored_parts(warehouse, "uv", plan)
        assert rows > 150 and parts == 3
        assert_same_as_scan(warehouse, experiment)  # FINAL reads the newest rows, merged or not
    finally:
        warehouse.command("SYSTEM START MERGES xp.unit_values")
    merged = compact(warehouse, [("uv", plan)])
    assert merged.compacted and merged.rows == rows and merged.parts == 3
    assert stored_parts(warehouse, "uv", plan) == (150, 1)  # one row per unit, one part
    assert_same_as_scan(warehouse, experiment)
    assert_same_as_scan(warehouse, experiment, since=BASE + timedelta(hours=6))
    assert not compact(warehouse, [("uv", plan)]).compacted  # one part: nothing to merge


def test_xp_jobs_run_unit_values_refreshes_every_running_experiment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from assignment import registry_topic
    from xpstream.cli.main import app

    experiment = spec()
    home = tmp_path / "xp-home"
    settings = WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=0)
    store = open_warehouse(settings)
    try:
        feed = Feed(store, seed=13)
        feed.new_units(0, 120)
        feed.post_events(list(feed.first))
    finally:
        store.close()
    snapshot = RegistrySnapshot(experiments={"uv": experiment})
    monkeypatch.setattr(registry_topic, "read_registry", lambda *_, **__: snapshot)
    for name, value in {"XP_HOME": str(home), "XP_STORE_WAIT_SECONDS": "0",
                        "XP_RESULTS_UNIT_VALUES_MARGIN_SECONDS": "0"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("XP_CLICKHOUSE_URL", raising=False)
    result = CliRunner().invoke(app, ["jobs", "run", "unit-values"])
    assert result.exit_code == 0, result.output
    plan = experiment_unit_values_plan(experiment, cuped=False, covariate_days=COVARIATE_DAYS)
    assert plan is not None
    assert f"unit-values: uv ({plan.key}): full build in" in result.output
    store = open_warehouse(settings)
    try:
        assert stored_parts(store, "uv", plan) == (120, 1)
        assert refresh(store, "uv", plan, margin_seconds=0).units == 0  # the values are current
        assert_same_as_scan(store, experiment)
    finally:
        store.close()
