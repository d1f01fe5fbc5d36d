"""`xp jobs run stats` stores every experiment it can: one whose analysis fails terminally is logged and
named, the others are still stored (issue #13 item 2, defence in depth; decision 0037)."""

from __future__ import annotations

from typing import Any

import pytest

from assignment.metrics_catalog import metric_from_dict
from assignment.registry import ExperimentSpec, MetricsSpec, VariationSpec
from jobs.results.stats_job import run_stats
from jobs.unit_values import UnitValuesSettings
from schemas.records import ExperimentStatus
from xpcore.errors import TerminalError
from xpcore.warehouse import Warehouse

pytestmark = pytest.mark.integration

AOV = metric_from_dict({"name": "aov", "numerator": "revenue", "denominator": "pageviews"})
BROKEN = metric_from_dict({"name": "ratio_of_ratio", "numerator": "aov", "denominator": "pageviews"})


def spec(key: str, metrics: MetricsSpec | None = None) -> ExperimentSpec:
    return ExperimentSpec(
        key=key,
        name=key,
        status=ExperimentStatus.RUNNING,
        feature_key=key,
        variations=(VariationSpec(0, "a", "A", 0.5), VariationSpec(1, "b", "B", 0.5)),
        metrics=metrics or MetricsSpec(),
    )


class Snapshot:
    def __init__(self, *experiments: ExperimentSpec) -> None:
        self.experiments = experiments

    def running_experiments(self) -> list[ExperimentSpec]:
        return list(self.experiments)

    def experiment_definition(self, key: str) -> None:
        return None


class Borrowed:
    """The test's store, not closed by the job."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def __getattr__(self, name: str) -> Any:
        return getattr(self.warehouse, name)

    def close(self) -> None:
        pass


def test_one_failing_experiment_does_not_keep_the_others_out(
    warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assignment.registry_topic
    import xpcore.warehouse

    broken = spec("broken", MetricsSpec(primary=("ratio_of_ratio",), definitions=(AOV, BROKEN)))
    snapshot = Snapshot(spec("first"), broken, spec("last"))
    monkeypatch.setattr(assignment.registry_topic, "read_registry", lambda settings, timeout: snapshot)
    monkeypatch.setattr(xpcore.warehouse, "open_warehouse", lambda settings: Borrowed(warehouse))
    with pytest.raises(TerminalError, match=r"2 experiments; 1 failed: broken \(.*not an event metric"):
        run_stats(UnitValuesSettings(), covariate_days=14.0)
    stored = warehouse.query_arrow("SELECT DISTINCT experiment_key FROM xp.results ORDER BY 1").to_pylist()
    assert [row["experiment_key"] for row in stored] == ["first", "last"]
