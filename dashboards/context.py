"""What every page's data needs: the query runner, the folded registry, the lag monitor, a results cache.

Results come from :func:`jobs.results_store.compute_experiment_result`, the code path of
`xp results --format json`, never from a re-implementation; :class:`ResultsCache` only reuses one answer
for ``dashboard_results_cache_seconds`` (default 5 s) so that a page and its refreshes do not recompute.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dashboards.queries import QueryRunner
from dashboards.registry_view import CachedRegistry
from xpstream.errors import ValidationError

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from dashboards.lag import LagMonitor
    from dashboards.settings import DashboardSettings
    from jobs.results import ExperimentResult
    from xpstream.warehouse import Warehouse

__all__ = ["METHODS", "DashboardContext", "ResultsCache"]

METHODS = ("sequential", "frequentist", "bayesian")


class ResultsCache:
    """(experiment, method, since, until) → the computed result, kept ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], tuple[float, ExperimentResult]] = {}

    def get(self, key: tuple[Any, ...]) -> ExperimentResult | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[0] >= self.ttl:
                return None
            return entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def put(self, key: tuple[Any, ...], result: ExperimentResult) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            if len(self._entries) > 256:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), result)


@dataclass
class DashboardContext:
    """The app's state, built once by :func:`dashboards.app.create_app`."""

    settings: DashboardSettings
    warehouse: Warehouse
    runner: QueryRunner
    registry: CachedRegistry
    lag: LagMonitor | None
    results_cache: ResultsCache

    @classmethod
    def build(
        cls, settings: DashboardSettings, warehouse: Warehouse, lag: LagMonitor | None
    ) -> DashboardContext:
        runner = QueryRunner(warehouse)
        registry = CachedRegistry(lambda: runner.run("registry_records"))
        return cls(
            settings, warehouse, runner, registry, lag, ResultsCache(settings.dashboard_results_cache_seconds)
        )

    def experiment(self, key: str) -> ExperimentSpec:
        """The registry's experiment ``key``; ValidationError (404 in the API) when unknown."""
        spec = self.registry.snapshot().experiments.get(key)
        if spec is None:
            raise ValidationError(f"unknown experiment {key!r}")
        return spec

    def result(
        self,
        key: str,
        *,
        method: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        segment: str | None = None,
        top: int = 10,
    ) -> ExperimentResult:
        """Results of one experiment now, exactly as `xp results KEY --format json [--method M]
        [--segment S --top N]` computes them: the experiment's analysis plan with the same overrides."""
        from jobs.results_store import compute_experiment_result, covariate_days_of, experiment_plan

        if method is not None and method not in METHODS:
            raise ValidationError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        snapshot = self.registry.snapshot()
        spec = self.experiment(key)
        cache_key = (key, spec.version, snapshot.revision, method, since, until, segment, top)
        cached = self.results_cache.get(cache_key)
        if cached is not None:
            return cached
        plan = experiment_plan(snapshot, spec).with_overrides(method=method)
        with self.runner.locked():
            result = compute_experiment_result(
                self.warehouse,
                spec,
                since=since,
                until=until,
                plan=plan,
                covariate_days=covariate_days_of(self.settings),
                segment=segment or None,
                top=top,
            )
        self.results_cache.put(cache_key, result)
        return result
