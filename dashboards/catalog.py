"""Experiments list and comparison pages: what runs, how many units so far, headline, SRM and alerts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from dashboards.context import DashboardContext
from jobs.results.contract import SRM_THRESHOLD
from jobs.stats.srm import sample_ratio_mismatch

__all__ = ["compare_experiments", "list_experiments", "live_srm", "shared_metrics"]


def live_srm(units: dict[int, int], weights: tuple[float, ...]) -> float | None:
    """SRM p-value of the units so far against the configured split (None without units or weights)."""
    if len(weights) < 2 or not all(w > 0 for w in weights):
        return None
    counts = [units.get(i, 0) for i in range(len(weights))]
    return sample_ratio_mismatch(counts, weights).p_value


def _headline(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The primary metric's best treatment in the latest snapshot (largest |lift| among significant, else
    largest |lift|)."""
    primary = [r for r in rows if r["role"] == "primary" and r["estimate"] is not None]
    if not primary:
        return None
    metric = primary[0]["metric"]
    candidates = [r for r in primary if r["metric"] == metric]
    best = max(candidates, key=lambda r: (bool(r["significant"]), abs(r["estimate"])))
    return {
        "metric": metric,
        "variation": best["variation_name"] or best["variation_key"],
        "estimate": best["estimate"],
        "ci_low": best["ci_low"],
        "ci_high": best["ci_high"],
        "significant": bool(best["significant"]),
        "computed_at": best["computed_at"].isoformat(),
    }


def open_alert_counts(context: DashboardContext) -> dict[str | None, int] | None:
    """Experiment (None: not tied to one) → open alerts; None when xp.alerts does not exist yet."""
    rows = context.runner.run_optional("quality_open_alerts")
    if rows is None:
        return None
    counts: dict[str | None, int] = defaultdict(int)
    for row in rows:
        counts[row["experiment"]] += 1
    return dict(counts)


def list_experiments(context: DashboardContext, *, query: str = "", status: str = "") -> dict[str, Any]:
    """Every experiment the registry knows or the exposures mention, with status, units and badges."""
    snapshot = context.registry.snapshot()
    units: dict[str, dict[int, int]] = defaultdict(dict)
    first_seen: dict[str, Any] = {}
    unit_rows, counted_at = context.units.rows()
    for row in unit_rows:
        units[row["experiment_key"]][row["variation_id"]] = row["units"]
        seen = first_seen.get(row["experiment_key"])
        if seen is None or row["first_exposed_at"] < seen:
            first_seen[row["experiment_key"]] = row["first_exposed_at"]
    latest: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in context.runner.run("experiments_latest_results"):
        latest[row["experiment_key"]].append(row)
    alerts = open_alert_counts(context)
    items: list[dict[str, Any]] = []
    for key in sorted(set(snapshot.experiments) | set(units)):
        spec = snapshot.experiments.get(key)
        by_variation = units.get(key, {})
        srm = live_srm(by_variation, spec.weights) if spec else None
        start = spec.start_at if spec and spec.start_at else first_seen.get(key)
        items.append(
            {
                "key": key,
                "name": spec.name if spec else key,
                "status": spec.status.value if spec else "not in registry",
                "owner": spec.owner if spec else "",
                "start": start.isoformat() if start else None,
                "units": sum(by_variation.values()),
                "variations": len(spec.variations) if spec else len(by_variation),
                "headline": _headline(latest.get(key, [])),
                "srm_p_value": srm,
                "srm_flagged": srm is not None and srm < SRM_THRESHOLD,
                "open_alerts": None if alerts is None else alerts.get(key, 0),
            }
        )
    needle = query.strip().lower()
    statuses = sorted({item["status"] for item in items})
    if needle:
        items = [i for i in items if needle in i["key"].lower() or needle in i["name"].lower()]
    if status:
        items = [i for i in items if i["status"] == status]
    return {
        "experiments": items,
        "statuses": statuses,
        "srm_threshold": SRM_THRESHOLD,
        "units_counted_at": counted_at.isoformat(),
    }


def shared_metrics(documents: list[dict[str, Any]]) -> list[str]:
    """Metric names every result document analyses, in the first document's order."""
    if not documents:
        return []
    names = [m["metric"] for m in documents[0]["metrics"]]
    common = set(names)
    for document in documents[1:]:
        common &= {m["metric"] for m in document["metrics"]}
    return [name for name in names if name in common]


def compare_experiments(context: DashboardContext, keys: list[str], *, method: str | None) -> dict[str, Any]:
    """Two or more experiments side by side on the metrics they share (each as its results page shows it:
    the newest snapshot, refreshed in the background)."""
    documents = [context.current_result(key, method=method)[0] for key in keys]
    metrics = shared_metrics(documents)
    rows = []
    for name in metrics:
        for document in documents:
            metric = next(m for m in document["metrics"] if m["metric"] == name)
            rows.append({"metric": name, "experiment": document["experiment"], **metric})
    methods = sorted({d["method"] for d in documents})
    return {"experiments": keys, "method": ", ".join(methods), "shared_metrics": metrics, "rows": rows}
