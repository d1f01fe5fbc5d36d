"""What every page's data needs: the query runner, the folded registry, the lag monitor, results.

Results come from :func:`jobs.results.compute.compute_experiment_result`, the code path of
`xp results --format json`, never from a re-implementation, or from the snapshots it stored:
:meth:`DashboardContext.current_result` shows the newest snapshot at once and refreshes it in the
background (:mod:`dashboards.results_snapshot`); :meth:`DashboardContext.view_result` starts or joins the
background computation of a custom view (a window or a segment breakdown) and never waits for it
(:mod:`dashboards.window_computations`, decision 0027).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from assignment.analysis_block import METHODS
from dashboards.queries import QueryRunner, dashboard_query
from dashboards.registry_view import CachedRegistry
from dashboards.results_snapshot import BackgroundResults, snapshot_document
from dashboards.units_so_far import UnitsSoFar
from dashboards.window_computations import Computation, WindowComputations
from xpcore.errors import ValidationError
from xpcore.usage import UsageCounts

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from dashboards.lag import LagMonitor
    from dashboards.settings import DashboardSettings
    from jobs.analysis_plan import AnalysisPlan
    from jobs.funnels import FunnelResult
    from jobs.results.contract import ExperimentAnalysis
    from xpcore.warehouse import Warehouse

__all__ = ["DashboardContext"]


@dataclass
class DashboardContext:
    """The app's state, built once by :func:`dashboards.app.create_app`."""

    settings: DashboardSettings
    warehouse: Warehouse
    runner: QueryRunner
    registry: CachedRegistry
    lag: LagMonitor | None
    views: WindowComputations[ExperimentAnalysis]
    background: BackgroundResults
    units: UnitsSoFar
    funnels: WindowComputations[FunnelResult]
    """Funnel sections (dashboards/funnel_view.py): one computation per view, kept as results views are."""
    realtime_funnels: WindowComputations[FunnelResult]
    """The health page's funnel of the last hour or day, recomputed when older than its refresh age."""
    latest_realtime_funnels: dict[tuple[str, str], Computation[FunnelResult]] = field(default_factory=dict)
    """The latest finished realtime funnel per (experiment, window), shown while the next one computes."""
    usage: UsageCounts = field(default_factory=UsageCounts)
    """Page views per token id and page and UTC day, flushed to xp.usage_daily (decision 0092)."""

    @classmethod
    def build(
        cls, settings: DashboardSettings, warehouse: Warehouse, lag: LagMonitor | None
    ) -> DashboardContext:
        runner = QueryRunner(warehouse)
        registry = CachedRegistry(lambda: runner.run("registry_records"))
        views: WindowComputations[ExperimentAnalysis] = WindowComputations(
            entries=settings.dashboard_view_results_entries,
            max_age=settings.dashboard_view_results_max_age_seconds,
            retry_after_failure=settings.dashboard_view_results_retry_seconds,
        )

        def count_units() -> list[dict[str, Any]]:  # not the runner's connection: pages do not wait for it
            table = warehouse.query_arrow(dashboard_query("experiments_units"))
            rows: list[dict[str, Any]] = table.to_pylist()
            return rows

        units = UnitsSoFar(count_units, settings.dashboard_units_max_age_seconds)
        funnels: WindowComputations[FunnelResult] = WindowComputations(
            entries=settings.dashboard_view_results_entries,
            max_age=settings.dashboard_view_results_max_age_seconds,
            retry_after_failure=settings.dashboard_view_results_retry_seconds,
        )
        realtime_funnels: WindowComputations[FunnelResult] = WindowComputations(
            entries=settings.dashboard_view_results_entries,
            max_age=settings.dashboard_realtime_funnel_seconds,
            retry_after_failure=settings.dashboard_view_results_retry_seconds,
        )
        return cls(
            settings,
            warehouse,
            runner,
            registry,
            lag,
            views,
            BackgroundResults(),
            units,
            funnels,
            realtime_funnels,
        )

    def experiment(self, key: str) -> ExperimentSpec:
        """The registry's experiment ``key``; ValidationError (404 in the API) when unknown."""
        spec = self.registry.snapshot().experiments.get(key)
        if spec is None:
            raise ValidationError(f"unknown experiment {key!r}")
        return spec

    def _compute(
        self,
        spec: ExperimentSpec,
        plan: AnalysisPlan,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        segment: str | None = None,
        top: int = 10,
    ) -> ExperimentAnalysis:
        """`xp results`' computation. Not under the runner's lock: page queries read on the warehouse's
        read-only connection meanwhile (a computation takes seconds on large stores)."""
        from jobs.results.compute import compute_experiment_result

        return compute_experiment_result(
            self.warehouse,
            spec,
            since=since,
            until=until,
            plan=plan,
            covariate_days=self.settings.etl_covariate_days,
            unit_values=self.settings,
            segment=segment or None,
            top=top,
        )

    def _plan(self, key: str, method: str | None) -> tuple[ExperimentSpec, AnalysisPlan, tuple[Any, ...]]:
        from jobs.results.compute import experiment_plan

        if method is not None and method not in METHODS:
            raise ValidationError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        snapshot = self.registry.snapshot()
        spec = self.experiment(key)
        plan = experiment_plan(snapshot, spec).with_overrides(method=method)
        return spec, plan, (key, spec.version, snapshot.revision)

    def view_result(
        self,
        key: str,
        *,
        method: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        segment: str | None = None,
        top: int = 10,
        wait: bool = False,
    ) -> Computation[ExperimentAnalysis]:
        """A custom view of one experiment's results (a window, a segment breakdown), exactly as
        `xp results KEY --format json [--method M] [--since/--until] [--segment S --top N]` computes it:
        the finished result when one is fresh, else the computation in flight, started here when there is
        none (single-flight per experiment × registry revision × method × window × segment). Never waits
        unless ``wait`` (exports): then it waits for that same computation to finish."""
        spec, plan, version = self._plan(key, method)
        view = (*version, plan.method, since, until, segment, top if segment else None)

        def compute() -> ExperimentAnalysis:
            return self._compute(spec, plan, since=since, until=until, segment=segment, top=top)

        computation = self.views.request(view, compute)
        if wait and computation.pending:
            finished = self.views.wait(view)
            if finished is not None:
                computation = finished
        return computation

    def current_result(self, key: str, *, method: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the `xp results --format json` document the page shows, what it is): the newest of the stored
        snapshot and the dashboard's own last computation, refreshed in the background when older than
        ``dashboard_results_max_age_seconds``; computed now when there is neither."""
        spec, plan, version = self._plan(key, method)
        flight = (*version, plan.method)
        now = datetime.now(UTC)
        candidates: list[tuple[datetime, str, dict[str, Any]]] = []
        rows = self.runner.run("results_latest_snapshot", {"experiment": key, "method": plan.method})
        stored = snapshot_document(spec, plan, rows)
        if stored is not None and _same_variations(stored, spec):
            candidates.append((_utc(rows[0]["computed_at"]), "snapshot", stored))
        computed = self.background.latest(flight)
        if computed is not None:
            candidates.append((computed.computed_at, "computed", computed.to_json()))
        if not candidates:  # nothing to show yet: compute, once however many requests wait for it
            self.background.refresh(flight, lambda: self._compute(spec, plan))
            self.background.wait_for(flight)
            result = self.background.latest(flight)
            if result is None:  # the computation failed: run it here to answer with its error
                result = self._compute(spec, plan)
                self.background.put(flight, result)
            candidates.append((result.computed_at, "computed", result.to_json()))
        at, source, document = max(candidates, key=lambda c: c[0])
        age = max((now - at).total_seconds(), 0.0)
        refreshing = self.background.in_flight(flight)
        if age > self.settings.dashboard_results_max_age_seconds and not refreshing:
            refreshing = self.background.refresh(flight, lambda: self._compute(spec, plan))
        shown = {
            "source": source,
            "computed_at": document["computed_at"],
            "age_seconds": round(age, 1),
            "max_age_seconds": self.settings.dashboard_results_max_age_seconds,
            "refreshing": refreshing,
        }
        return document, shown


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _same_variations(document: dict[str, Any], spec: ExperimentSpec) -> bool:
    """A snapshot of the experiment as it is now (its variations), not of an earlier definition."""
    ids = [v.id for v in spec.variations]
    return all([v["variation_id"] for v in m["variants"]] == ids for m in document["metrics"])
