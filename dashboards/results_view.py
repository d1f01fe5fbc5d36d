"""Results page: the `xp results --format json` document, guardrails set apart, trend from snapshots."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from dashboards.context import DashboardContext
from jobs.results import SRM_THRESHOLD

__all__ = ["results_page", "trend"]


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
) -> dict[str, Any]:
    """The results document (`xp results KEY --format json`) plus what the page draws around it.

    Without a window or a segment: the newest snapshot, refreshed in the background
    (:meth:`DashboardContext.current_result`); with one: computed now. ``shown`` says which."""
    spec = context.experiment(key)
    if since is None and until is None and segment is None:
        document, shown = context.current_result(key, method=method)
    else:
        result = context.result(key, method=method, since=since, until=until, segment=segment, top=top)
        document = result.to_json()
        shown = {
            "source": "computed",
            "computed_at": document["computed_at"],
            "age_seconds": 0.0,
            "max_age_seconds": context.settings.dashboard_results_max_age_seconds,
            "refreshing": False,
        }
    segments = document.get("segments")
    srm = document["srm_p_value"]
    return {
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
    }
