"""The funnel section of the results page: ``GET /api/experiments/{key}/funnel`` (issue #20).

The same computation as ``xp funnel KEY --format json`` (:func:`jobs.funnels.compute_funnel`, the
experiment's declared funnel and analysis plan; ``steps``, ``window``, ``ordered``, ``since``,
``until`` override as the CLI flags do). An experiment that declares no funnel and is asked for no
steps answers ``{"funnel": null, "reason": …}`` (the page says so instead of failing). One query over
the experiment's step events (seconds on 10 M events: docs/benchmarks.md), not under the page runner's
lock, run as results views are (``context.funnels``, decision 0027's bookkeeping): one computation per
view (experiment × registry revision × funnel × window) however many viewers wait for it, and its result
reused for ``XP_DASHBOARD_VIEW_RESULTS_MAX_AGE_SECONDS``; ``shown.age_seconds`` says how old it is.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from dashboards.context import DashboardContext
from xpcore.errors import TransientError, ValidationError, XpError

if TYPE_CHECKING:
    from jobs.funnels import FunnelResult

__all__ = ["funnel_page", "parse_ordered"]


def parse_ordered(value: str | None) -> bool | None:
    """``ordered=true|false`` (None: not given)."""
    if value is None or value == "":
        return None
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValidationError(f"ordered must be true or false, got {value[:40]!r}")


def funnel_page(
    context: DashboardContext,
    key: str,
    *,
    steps: list[str] | None = None,
    window: str | None = None,
    ordered: bool | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """``{"funnel": <xp funnel --format json>}``, or ``{"funnel": null, "reason"}`` without a funnel."""
    from assignment.funnel_block import funnel_from_metadata, funnel_with_overrides
    from jobs.funnels import compute_funnel
    from jobs.results.compute import experiment_plan

    spec = context.experiment(key)
    snapshot = context.registry.snapshot()
    definition = snapshot.experiment_definition(key)
    declared = funnel_from_metadata(definition.metadata if definition is not None else None)
    if declared is None and steps is None:
        return {
            "funnel": None,
            "reason": f"experiment {key!r} declares no funnel (add funnel: to its YAML, or ?steps=a,b)",
        }
    funnel = funnel_with_overrides(declared, steps=steps, window=window, ordered=ordered, experiment=key)
    plan = experiment_plan(snapshot, spec)
    view = ("funnel", key, spec.version, snapshot.revision, funnel, plan, since, until)

    def compute() -> FunnelResult:
        return compute_funnel(context.warehouse, spec, funnel, plan=plan, since=since, until=until)

    computation = context.funnels.request(view, compute)
    if computation.pending:
        computation = context.funnels.wait(view) or computation
    if computation.result is None:
        error = computation.error
        raise error if isinstance(error, XpError) else TransientError(f"funnel of {key!r} failed: {error}")
    return {
        "funnel": computation.result.to_json(),
        "shown": {"age_seconds": round(computation.age_seconds, 1)},
    }
