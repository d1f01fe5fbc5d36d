"""The one-page HTML summary of a run (jinja2, self-contained CSS) and the report folders.

Layout under the report root (``XP_QUALITY_REPORT_DIR``, default ``$XP_HOME/reports/quality``)::

    <run folder>/index.html      this summary
    <run folder>/data-docs/      the GX Data Docs site of the run
    latest/                      a copy of the newest run folder

Old run folders beyond ``XP_QUALITY_REPORT_KEEP`` are removed.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quality.outcomes import CheckOutcome
from quality.window import Window

__all__ = ["HEALTH_CHECKS", "publish_latest", "render_summary", "run_folder"]

HEALTH_CHECKS = (
    "srm",
    "multiple_variations",
    "overridden",
    "units_without_events",
    "sample_size",
    "guardrails",
)
TEMPLATES = Path(__file__).resolve().parent / "templates"


@dataclass(frozen=True)
class _Row:
    outcome: CheckOutcome
    short: str

    def __getattr__(self, name: str) -> Any:
        return getattr(self.outcome, name)


def _short(outcome: CheckOutcome) -> str:
    """A cell-sized figure for the experiments table."""
    observed = outcome.observed if isinstance(outcome.observed, dict) else {}
    if outcome.check == "srm" and observed.get("p_value") is not None:
        return f"p = {observed['p_value']:.2g}"
    if "share" in observed:
        return f"{observed['share']:.1%}"
    if outcome.check == "sample_size":
        progress = observed.get("progress")
        return f"{observed.get('units', 0)} units" + (f" ({progress:.0%})" if progress is not None else "")
    if outcome.check == "guardrails":
        harmed = observed.get("harmed") or []
        return f"{len(harmed)} harmed" if harmed else "ok"
    if outcome.check == "units_without_events" and observed:
        worst = max((v for v in observed.values() if isinstance(v, float)), default=None)
        return f"max {worst:.0%}" if worst is not None else ""
    return ""


def render_summary(
    outcomes: Sequence[CheckOutcome],
    *,
    run_id: str,
    run_at: str,
    window: Window,
    location: str,
    alerts_text: str,
    notes: Sequence[str] = (),
    docs_link: str | None = None,
    table_links: Mapping[str, str] | None = None,
) -> str:
    """The summary page's HTML."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    failures = [o for o in outcomes if not o.success]
    failures.sort(key=lambda o: (o.severity != "error", o.check))
    experiments: dict[str, dict[str, _Row]] = {}
    tables: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        if outcome.experiment and outcome.check in HEALTH_CHECKS:
            experiments.setdefault(outcome.experiment, {})[outcome.check] = _Row(outcome, _short(outcome))
        if outcome.table:
            row = tables.setdefault(outcome.table, {"total": 0, "failed": 0, "notes": []})
            row["total"] += 1
            if not outcome.success:
                row["failed"] += 1
                row["notes"].append(outcome.detail)
            elif outcome.check in ("freshness", "volume"):
                row["notes"].append(outcome.detail)
    for row in tables.values():
        row["notes"] = " · ".join(row["notes"][:4])
    success = not failures
    return environment.get_template("summary.html.j2").render(
        success=success,
        verdict_text="all checks passed" if success else f"{len(failures)} checks failed",
        run_id=run_id,
        run_at=run_at,
        since=window.since.strftime("%Y-%m-%d %H:%M UTC"),
        until=window.until.strftime("%Y-%m-%d %H:%M UTC"),
        location=location,
        total=len(outcomes),
        passed=len(outcomes) - len(failures),
        failed_errors=sum(1 for o in failures if o.severity == "error"),
        failed_warnings=sum(1 for o in failures if o.severity == "warning"),
        failures=[_Row(o, _short(o)) for o in failures],
        experiments=experiments,
        health_checks=HEALTH_CHECKS,
        tables=tables,
        outcomes=[_Row(o, _short(o)) for o in outcomes],
        alerts_text=alerts_text,
        notes=list(notes),
        docs_link=docs_link,
        table_links=dict(table_links or {}),
    )


def run_folder(root: Path, run_at_stamp: str, run_id: str) -> Path:
    """A new folder for one run's report: ``<root>/<UTC stamp>-<run id prefix>``."""
    folder = root / f"{run_at_stamp}-{run_id[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def publish_latest(root: Path, folder: Path, *, keep: int) -> Path:
    """Copy ``folder`` to ``<root>/latest`` (replacing it) and prune old run folders; returns the summary."""
    latest = root / "latest"
    staging = root / ".latest-new"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(folder, staging)
    shutil.rmtree(latest, ignore_errors=True)
    staging.rename(latest)
    runs = sorted(p for p in root.iterdir() if p.is_dir() and p.name not in ("latest", ".latest-new"))
    for old in runs[: max(len(runs) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    return latest / "index.html"
