"""Data quality page (xp.dq_results, xp.alerts, the latest report) and the audit / activity page."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboards.context import DashboardContext

__all__ = ["audit", "quality", "quality_report_path"]

HISTORY_DAYS = 30
HISTORY_ROWS = 5000


def _decode(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def quality_report_path(context: DashboardContext) -> Any:
    """``$XP_HOME/reports/quality/latest/index.html`` (the quality job writes it; may not exist)."""
    return context.settings.home / "reports" / "quality" / "latest" / "index.html"


def quality(context: DashboardContext) -> dict[str, Any]:
    """History per check over the last 30 days, open alerts, and whether a latest report exists.

    ``available`` is False when the quality tables do not exist yet (the page shows an empty state)."""
    since = datetime.now(UTC) - timedelta(days=HISTORY_DAYS)
    rows = context.runner.run_optional("quality_history", {"since": since, "limit": HISTORY_ROWS})
    alerts = context.runner.run_optional("quality_open_alerts")
    checks: dict[str, dict[str, Any]] = {}
    history: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows or []:
        target = row["experiment"] or row["table_name"] or ""
        name = f"{row['check']} · {target}" if target else row["check"]
        entry = {
            "run_id": row["run_id"],
            "run_at": row["run_at"].isoformat(),
            "success": bool(row["success"]),
            "severity": row["severity"],
            "observed": _decode(row["observed"]),
            "threshold": _decode(row["threshold"]),
            "detail": row["detail"],
        }
        history[name].append(entry)
        if name not in checks:  # rows are newest first: the first one is the latest outcome
            checks[name] = {"check": row["check"], "target": target, "latest": entry}
    for name, entries in history.items():
        checks[name]["runs"] = len(entries)
        checks[name]["failures"] = sum(not e["success"] for e in entries)
        checks[name]["history"] = entries[:50]
    report = quality_report_path(context)
    return {
        "available": rows is not None,
        "checks": [checks[name] for name in sorted(checks)],
        "open_alerts": None
        if alerts is None
        else [
            {
                "fingerprint": a["fingerprint"],
                "check": a["check"],
                "experiment": a["experiment"],
                "table_name": a["table_name"],
                "detail": a["detail"],
                "since": a["first_fired_at"].isoformat(),
                "at": a["at"].isoformat(),
            }
            for a in alerts
        ],
        "report_url": "/quality/report/" if report.is_file() else None,
        "history_days": HISTORY_DAYS,
    }


def audit(context: DashboardContext, *, key: str = "", limit: int = 500) -> dict[str, Any]:
    """The registry's change history, newest first (who changed which experiment or override, when)."""
    rows = context.runner.run("audit_changes", {"key": key, "limit": limit})
    return {
        "changes": [
            {
                "changed_at": r["changed_at"].isoformat(),
                "kind": r["kind"],
                "key": r["key"],
                "change": r["change"],
                "changed_by": r["changed_by"],
                "version": r["version"] or None,
                "status": r["status"] or None,
                "record_id": r["record_id"],
            }
            for r in rows
        ],
        "filter": key,
        "limit": limit,
    }
