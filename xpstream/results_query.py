"""One experiment's results computed now, for `xp results` and the analyst client (the application layer,
not the command line: the CLI and ``xpstream.client`` both call it)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from assignment.analysis_block import CORRECTIONS, METHODS
from xpcore.errors import ValidationError

if TYPE_CHECKING:
    from assignment.registry import RegistrySnapshot
    from jobs.results.contract import ExperimentAnalysis

__all__ = ["REGISTRY_TIMEOUT", "compute_results", "registry_snapshot"]


def compute_results(
    experiment: str,
    *,
    method: str | None = None,
    alpha: float | None = None,
    cuped: bool | None = None,
    correction: str | None = None,
    segment: str | None = None,
    top: int = 10,
    since: datetime | None = None,
    until: datetime | None = None,
    fresh: bool = False,
) -> ExperimentAnalysis:
    """One experiment's results, computed now (what `xp results` prints and the analyst client returns).

    ``None`` options come from the experiment's ``analysis:`` block; the warehouse is opened for this
    call only (the embedded store is not held). Raises ``ValidationError`` for an unknown experiment.
    """
    from jobs.results.compute import compute_experiment_result, experiment_plan
    from xpcore.config import load_settings
    from xpcore.warehouse import open_warehouse
    from xpstream.batch.settings import ResultsJobSettings

    if method is not None and method not in METHODS:
        raise ValidationError(f"unknown method {method!r} (known: {', '.join(METHODS)})")
    if correction is not None and correction not in CORRECTIONS:
        raise ValidationError(f"unknown correction {correction!r} (known: {', '.join(CORRECTIONS)})")
    settings = load_settings(ResultsJobSettings)
    warehouse = open_warehouse(settings)
    try:
        snapshot = registry_snapshot(settings, warehouse)
        spec = snapshot.experiments.get(experiment)
        if spec is None:
            known = ", ".join(sorted(snapshot.experiments)) or "none"
            raise ValidationError(f"unknown experiment {experiment!r} (known: {known})")
        plan = experiment_plan(snapshot, spec).with_overrides(
            method=method, alpha=alpha, cuped=cuped, correction=correction
        )
        return compute_experiment_result(
            warehouse,
            spec,
            since=since,
            until=until,
            plan=plan,
            covariate_days=settings.etl_covariate_days,
            segment=segment,
            top=top,
            unit_values=settings,
            fresh=fresh,
        )
    finally:
        warehouse.close()


def registry_snapshot(settings: Any, warehouse: Any) -> RegistrySnapshot:
    """The registry from its topic; with Kafka unreachable, from the warehouse's copy (``xp.registry``,
    which the stream worker keeps), with a note on stderr, so stored numbers can still be read."""
    import sys

    from assignment.registry import RegistrySnapshot
    from assignment.registry_topic import read_registry
    from dashboards.queries import dashboard_query
    from dashboards.registry_view import records_from_rows
    from xpcore.errors import TransientError

    try:
        return read_registry(settings, timeout=REGISTRY_TIMEOUT)
    except TransientError as error:
        rows = warehouse.query_arrow(dashboard_query("registry_records")).to_pylist()
        if not rows:
            raise
        sys.stderr.write(
            f"note: {error}; experiments read from the warehouse's copy of the registry (xp.registry, as of "
            "the last change a stream worker stored)\n"
        )
        return RegistrySnapshot.from_records(records_from_rows(rows))


REGISTRY_TIMEOUT = 5.0
"""Seconds to read the registry topic before falling back to the warehouse's copy."""
