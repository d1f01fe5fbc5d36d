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

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from dashboards.context import DashboardContext
from xpcore.errors import TransientError, ValidationError, XpError

if TYPE_CHECKING:
    from jobs.funnels import FunnelResult

__all__ = ["REALTIME_WINDOWS", "funnel_page", "parse_ordered", "realtime_funnel_page"]

REALTIME_WINDOWS: dict[str, timedelta] = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
"""The health page's realtime funnel: units first exposed in the last hour or the last day."""


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
    from jobs.funnels import compute_funnel

    declared = _declared(context, key, steps=steps, window=window, ordered=ordered)
    if isinstance(declared, dict):
        return declared
    spec, funnel, plan, revision = declared
    view = ("funnel", key, spec.version, revision, funnel, plan, since, until)

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


def _declared(
    context: DashboardContext,
    key: str,
    *,
    steps: list[str] | None = None,
    window: str | None = None,
    ordered: bool | None = None,
) -> tuple[Any, Any, Any, int] | dict[str, Any]:
    """(spec, funnel, analysis plan, registry revision) of ``key``'s funnel with the overrides given, or
    the ``{"funnel": null, "reason"}`` answer when it declares none and no steps are asked for."""
    from assignment.funnel_block import funnel_from_metadata, funnel_with_overrides
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
    return spec, funnel, experiment_plan(snapshot, spec), snapshot.revision


def realtime_funnel_page(
    context: DashboardContext, key: str, window: str, *, now: datetime | None = None
) -> tuple[dict[str, Any], bool]:
    """The health page's funnel: ``key``'s declared funnel over the units first exposed in the last hour
    or day (``window``), as ``xp funnel KEY --since NOW-1h`` computes it. Served from the latest
    computation: when it is older than ``XP_DASHBOARD_REALTIME_FUNNEL_SECONDS`` it is still shown while the
    next one runs in the background (one per experiment and window). Returns (document, ready): not ready
    only before the first computation has finished (the API answers 202 and the page polls)."""
    from jobs.funnels import compute_funnel

    if window not in REALTIME_WINDOWS:
        raise ValidationError(f"window must be one of {', '.join(REALTIME_WINDOWS)}, got {window[:40]!r}")
    declared = _declared(context, key)
    if isinstance(declared, dict):
        return declared, True
    spec, funnel, plan, revision = declared
    view = ("realtime-funnel", key, spec.version, revision, funnel, plan, window)

    def compute() -> FunnelResult:
        since = (now or datetime.now(UTC)) - REALTIME_WINDOWS[window]
        return compute_funnel(context.warehouse, spec, funnel, plan=plan, since=since)

    computation = context.realtime_funnels.request(view, compute)
    if computation.result is not None:
        context.latest_realtime_funnels[(key, window)] = computation
    shown = (
        computation if computation.result is not None else context.latest_realtime_funnels.get((key, window))
    )
    if shown is None or shown.result is None:
        if computation.state == "failed":
            error = computation.error
            raise (
                error if isinstance(error, XpError) else TransientError(f"funnel of {key!r} failed: {error}")
            )
        return {"funnel": None, "pending": True, "window": window}, False
    finished = shown.finished_at or datetime.now(UTC)
    return {
        "funnel": shown.result.to_json(),
        "window": window,
        "pending": computation.pending,
        "shown": {
            "age_seconds": round(max((datetime.now(UTC) - finished).total_seconds(), 0.0), 1),
            "computed_at": finished.isoformat(),
        },
    }, True
