"""Results page: the `xp results --format json` document, guardrails set apart, trend from snapshots.

Without a window or a segment the page shows the newest snapshot at once (decision 0020). With one, the
computation runs in the background (decision 0027): the answer is 200 with the result when it is there,
202 with ``computing`` (since when, when to poll) while it runs, or the computation's error with its status.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from dashboards.context import DashboardContext
from jobs.results.contract import SRM_THRESHOLD
from xpcore.errors import TransientError, ValidationError

if TYPE_CHECKING:
    from dashboards.window_computations import Computation
    from jobs.results.contract import ExperimentAnalysis

__all__ = ["ResultsAnswer", "computation_failure", "failure_status", "results_page", "trend"]


@dataclass(frozen=True)
class ResultsAnswer:
    """What the results API answers: HTTP status, JSON body, extra headers (``Retry-After``)."""

    status: int
    document: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def failure_status(error: BaseException) -> int:
    """400 bad input, 503 warehouse unreachable (worth retrying), 500 anything else."""
    if isinstance(error, ValidationError):
        return 400
    if isinstance(error, TransientError):
        return 503
    return 500


def computation_failure(computation: Computation[ExperimentAnalysis]) -> ResultsAnswer:
    """A failed view computation as an error answer (``error`` and when the next try happens)."""
    error = computation.error
    message = str(error) if error is not None and str(error) else type(error).__name__
    retry = max(round(computation.retry_in_seconds), 1)
    return ResultsAnswer(
        failure_status(error) if error is not None else 500,
        {
            "error": f"computing these results failed: {message}",
            "computation": {
                "state": "failed",
                "requested_at": computation.requested_at.isoformat(),
                "failed_at": computation.finished_at.isoformat() if computation.finished_at else None,
                "retry_in_seconds": retry,
            },
        },
        {"Retry-After": str(retry), "Cache-Control": "no-store"},
    )


def trend(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Metric → one series per treatment variation: lift and interval at every snapshot."""
    series: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for row in rows:
        if row["estimate"] is None and row["ci_low"] is None:
            continue  # control rows, failed computations
        by_variation = series[row["metric"]]
        entry = by_variation.setdefault(
            row["variation_id"],
            {"variation_id": row["variation_id"], "name": row["variation_name"], "points": []},
        )
        entry["points"].append(
            {
                "computed_at": row["computed_at"].isoformat(),
                "estimate": row["estimate"],
                "ci_low": row["ci_low"],
                "ci_high": row["ci_high"],
                "units": row["units"],
                "significant": bool(row["significant"]),
            }
        )
    return {metric: list(by_variation.values()) for metric, by_variation in series.items()}


def results_page(
    context: DashboardContext,
    key: str,
    *,
    method: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    segment: str | None = None,
    top: int = 10,
) -> ResultsAnswer:
    """The results document (`xp results KEY --format json`) plus what the page draws around it.

    Without a window or a segment: the newest snapshot, refreshed in the background
    (:meth:`DashboardContext.current_result`); with one: the background computation of that view
    (:meth:`DashboardContext.view_result`): 202 while it runs. ``shown`` says which."""
    spec = context.experiment(key)
    if since is None and until is None and segment is None:
        document, shown = context.current_result(key, method=method)
    else:
        computation = context.view_result(
            key, method=method, since=since, until=until, segment=segment, top=top
        )
        if computation.pending:
            return computing_answer(computation, key, method, since, until, segment, top)
        if computation.state == "failed" or computation.result is None:
            return computation_failure(computation)
        document = computation.result.to_json()
        shown = {
            "source": "computed",
            "computed_at": document["computed_at"],
            "age_seconds": round(computation.age_seconds, 1),
            "max_age_seconds": context.settings.dashboard_view_results_max_age_seconds,
            "refreshing": False,
            "took_seconds": round(computation.elapsed_seconds, 1),
        }
    segments = document.get("segments")
    srm = document["srm_p_value"]
    return ResultsAnswer(
        200,
        {
            "result": document,
            "shown": shown,
            "experiment": {
                "key": spec.key,
                "name": spec.name,
                "status": spec.status.value,
                "owner": spec.owner,
                "hypothesis": spec.hypothesis,
                "start": spec.start_at.isoformat() if spec.start_at else None,
                "variations": [
                    {"id": v.id, "key": v.key, "name": v.name, "weight": v.weight} for v in spec.variations
                ],
            },
            "srm_flagged": srm is not None and srm < SRM_THRESHOLD,
            "confidence_level": 1 - document["alpha"],
            "primary_and_secondary": [m for m in document["metrics"] if m["role"] != "guardrail"],
            "guardrails": [m for m in document["metrics"] if m["role"] == "guardrail"],
            "trend": trend(context.runner.run("results_trend", {"experiment": key})),
            "segments": segments,
            "segments_note": "Pick an exposure attribute (e.g. country) to break the results down by it."
            if segment is None
            else "",
            "method_docs": context.settings.dashboard_docs_url,
        },
        {"Cache-Control": "no-store"},
    )


def computing_answer(
    computation: Computation[ExperimentAnalysis],
    key: str,
    method: str | None,
    since: datetime | None,
    until: datetime | None,
    segment: str | None,
    top: int,
) -> ResultsAnswer:
    """202: the view is being computed (or waits for a free worker); poll again after ``Retry-After``."""
    poll = computation.poll_after_seconds()
    return ResultsAnswer(
        202,
        {
            "computing": {
                "state": computation.state,
                "experiment": key,
                "view": {
                    "method": method,
                    "since": since.isoformat() if since else None,
                    "until": until.isoformat() if until else None,
                    "segment": segment,
                    "top": top if segment else None,
                },
                "requested_at": computation.requested_at.isoformat(),
                "elapsed_seconds": round(computation.elapsed_seconds, 1),
                "retry_after_seconds": poll,
                "started_by_this_request": computation.started_here,
            },
        },
        {"Retry-After": str(poll), "Cache-Control": "no-store"},
    )
