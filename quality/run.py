"""`xp jobs run quality`: every suite and check, stored, reported and alerted. Thin orchestration.

:func:`run_quality` reads the registry and the window's data, runs the GX suites
(:mod:`quality.gx_runner`), the table rules (:mod:`quality.rules`) and the experiment health checks
(:mod:`quality.health_checks`), stores each outcome in ``xp.dq_results``, renders the report
(:mod:`quality.report`) and raises alerts (:mod:`quality.alerts`: table ``xp.alerts``, topic
``xp.alerts``, webhook). It returns a :class:`QualityRun`; exit codes are the CLI's business.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from quality.alerts import AlertDelivery, decide_alerts, post_webhook, produce_alerts, slack_message
from quality.health_checks import HealthThresholds, VariationUnits, guardrail_outcome, health_outcomes
from quality.outcomes import CheckOutcome, outcomes_json
from quality.rules import dead_letter_outcome, freshness_outcome, volume_outcome
from quality.suites import KnownValues, table_suites
from quality.window import Window, check_window
from xpcore.warehouse import load_query

if TYPE_CHECKING:
    from assignment.registry import RegistrySnapshot
    from quality.gx_runner import GxRun
    from quality.settings import QualitySettings
    from xpcore.warehouse import Warehouse

__all__ = ["QualityRun", "run_checks", "run_quality"]

logger = logging.getLogger(__name__)

STREAM_TABLES = ("exposures", "events")
BATCH_TABLES = {"unit_metrics": "etl", "daily_metrics": "etl", "results": "stats"}
"""Tables derived by a batch job → the job that fills them."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class QualityRun:
    """What one run found and where its report is."""

    run_id: str
    run_at: datetime
    window: Window
    outcomes: list[CheckOutcome]
    report_path: Path | None = None
    docs_path: Path | None = None
    delivery: AlertDelivery = field(default_factory=AlertDelivery)
    notes: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def ok(self) -> bool:
        """Every check passed (``xp jobs run quality --strict`` exits 1 otherwise)."""
        return self.success

    @property
    def failures(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.success]

    def to_json(self) -> dict[str, Any]:
        """The ``--format json`` contract: ``{"success": …, "checks": [...]}``."""
        return outcomes_json(self.outcomes)

    def summary(self) -> str:
        """A few lines for people (the CLI and `make demo` print it)."""
        failures = self.failures
        head = (
            f"quality: {len(self.outcomes)} checks, all passed"
            if not failures
            else f"quality: {len(self.outcomes)} checks, {len(failures)} FAILED"
        )
        since, until = self.window.since, self.window.until
        lines = [f"{head} (window {since:%Y-%m-%d %H:%M} → {until:%Y-%m-%d %H:%M} UTC)"]
        for outcome in failures[:8]:
            lines.append(f"  ✘ {outcome.check} [{outcome.subject}]: {outcome.detail}")
        if len(failures) > 8:
            lines.append(f"  … and {len(failures) - 8} more (see the report)")
        lines.extend(f"  note: {note}" for note in self.notes)
        lines.append(f"  {self.delivery.summary()}")
        if self.report_path is not None:
            lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


def _thresholds(settings: QualitySettings) -> HealthThresholds:
    return HealthThresholds(
        srm_p_value=settings.quality_srm_p_value,
        max_multiple_variation_share=settings.quality_max_multiple_variation_share,
        max_overridden_share=settings.quality_max_overridden_share,
        max_units_without_events_share=settings.quality_max_units_without_events_share,
        min_units=settings.quality_min_units,
    )


def _known_values(snapshot: RegistrySnapshot) -> KnownValues:
    from assignment.metrics_catalog import known_event_names
    from schemas.records import DeadLetterReason

    return KnownValues.from_registry(
        snapshot.known_variations(), known_event_names(snapshot), [r.value for r in DeadLetterReason]
    )


def table_outcomes(warehouse: Warehouse, settings: QualitySettings, window: Window) -> list[CheckOutcome]:
    """Freshness, volume and dead-letter rate."""
    outcomes: list[CheckOutcome] = []
    loaded = [
        row
        for row in warehouse.query_arrow(load_query("quality_newest"), {"until": window.until}).to_pylist()
        if int(row["rows"])
    ]
    newest = {str(row["table_name"]): row["newest"] for row in loaded}
    firsts = [row["oldest"] for row in loaded if row["table_name"] in STREAM_TABLES]
    data_since = min(firsts) if firsts else None
    for table in STREAM_TABLES:
        max_age = timedelta(minutes=settings.quality_stream_max_age_minutes)
        outcomes.append(freshness_outcome(table, newest.get(table), now=window.until, max_age=max_age))
    for table, job in BATCH_TABLES.items():
        max_age = timedelta(hours=settings.quality_batch_max_age_hours)
        outcomes.append(
            freshness_outcome(
                table,
                newest.get(table),
                now=window.until,
                max_age=max_age,
                severity="warning",
                data_since=data_since,
                filled_by=f"`xp jobs run {job}`",
            )
        )
    trailing = settings.quality_trailing_windows
    counts: dict[str, dict[int, int]] = {}
    rows = warehouse.query_arrow(
        load_query("quality_volume"),
        {
            "start": window.until - window.length * (trailing + 1),
            "until": window.until,
            "step_ms": int(window.length / timedelta(milliseconds=1)),
        },
    ).to_pylist()
    for row in rows:
        counts.setdefault(str(row["table_name"]), {})[int(row["bucket"])] = int(row["rows"])
    for table in STREAM_TABLES:
        by_bucket = counts.get(table, {})
        outcomes.append(
            volume_outcome(
                table,
                by_bucket.get(0, 0),
                [by_bucket.get(i, 0) for i in range(1, trailing + 1)],
                drop_ratio=settings.quality_volume_drop_ratio,
                spike_ratio=settings.quality_volume_spike_ratio,
                min_history=settings.quality_volume_min_history,
            )
        )
    valid = sum(counts.get(t, {}).get(0, 0) for t in STREAM_TABLES)
    dead = counts.get("dead_letters", {}).get(0, 0)
    outcome = dead_letter_outcome(dead, valid, max_rate=settings.quality_dead_letter_max_rate)
    if dead:
        reasons = warehouse.query_arrow(
            load_query("quality_dead_letter_reasons"), {"since": window.since, "until": window.until}
        ).to_pylist()
        top = ", ".join(f"{r['reason']} {r['n']}" for r in reasons)
        outcome = CheckOutcome(
            outcome.check,
            outcome.success,
            {**outcome.observed, "top_reasons": {str(r["reason"]): int(r["n"]) for r in reasons}},
            outcome.threshold,
            f"{outcome.detail}; top reasons: {top}",
            table=outcome.table,
        )
    outcomes.append(outcome)
    return outcomes


def experiment_outcomes(
    warehouse: Warehouse,
    snapshot: RegistrySnapshot,
    settings: QualitySettings,
    window: Window,
    *,
    since: datetime | None,
) -> list[CheckOutcome]:
    """Health checks of every running experiment, over units first exposed in [since or ever, until)."""
    from jobs.results.compute import compute_experiment_result, experiment_plan

    experiments = snapshot.running_experiments()
    if not experiments:
        return []
    rows = warehouse.query_arrow(
        load_query("quality_experiment_units"), {"since": since or EPOCH, "until": window.until}
    ).to_pylist()
    by_experiment: dict[str, list[VariationUnits]] = {}
    for row in rows:
        by_experiment.setdefault(str(row["experiment_key"]), []).append(VariationUnits.from_row(row))
    thresholds = _thresholds(settings)
    outcomes: list[CheckOutcome] = []
    for experiment in experiments:
        plan = experiment_plan(snapshot, experiment)
        found = by_experiment.get(experiment.key, [])
        outcomes.extend(
            health_outcomes(experiment, found, thresholds, planned_units=plan.planned_units, now=window.until)
        )
        if sum(r.units for r in found) >= thresholds.min_units:
            result = compute_experiment_result(
                warehouse, experiment, since=since, until=window.until, computed_at=window.until, plan=plan
            )
            outcomes.append(guardrail_outcome(result))
    return outcomes


def _frames(warehouse: Warehouse, window: Window, queries: dict[str, str], limit: int) -> dict[str, Any]:
    parameters = {"since": window.since, "until": window.until, "limit": limit}
    return {
        table: warehouse.query_arrow(load_query(query), parameters).to_pandas()
        for table, query in queries.items()
    }


def run_checks(
    warehouse: Warehouse,
    snapshot: RegistrySnapshot,
    settings: QualitySettings,
    window: Window,
    *,
    docs_dir: Path,
    since: datetime | None = None,
) -> tuple[list[CheckOutcome], GxRun]:
    """Every check of one run (no storing, no alerts): GX suites, table rules, experiment health."""
    from quality.gx_runner import run_suites

    suites = table_suites(_known_values(snapshot))
    frames = _frames(warehouse, window, {s.table: s.query for s in suites}, settings.quality_max_rows)
    schemas: dict[str, list[str]] = {}
    for row in warehouse.query_arrow(
        load_query("quality_schema"), {"tables": [s.table for s in suites]}
    ).to_pylist():
        schemas.setdefault(str(row["table_name"]), []).append(str(row["column_type"]))
    gx = run_suites(suites, frames, schemas, docs_dir)
    outcomes = [
        *table_outcomes(warehouse, settings, window),
        *experiment_outcomes(warehouse, snapshot, settings, window, since=since),
        *gx.outcomes,
    ]
    return outcomes, gx


def _deliver(
    run: QualityRun, warehouse: Warehouse, settings: QualitySettings, records: Sequence[Any]
) -> AlertDelivery:
    from quality.store import store_alerts
    from xpcore.kafka.topics import ALERTS

    delivery = AlertDelivery(records=len(records), topic=settings.topic(ALERTS))
    if not records:
        return delivery
    delivery.table_rows = store_alerts(warehouse, run.run_id, records)
    delivery.topic_error = produce_alerts(settings, records, timeout=settings.quality_kafka_timeout)
    if delivery.topic_error:
        logger.warning("alerts not produced to %s: %s", delivery.topic, delivery.topic_error)
    if settings.quality_webhook_url is not None:
        body = slack_message(records, report_path=str(run.report_path) if run.report_path else None)
        delivery.webhook_error = post_webhook(
            settings.quality_webhook_url.get_secret_value(), body, timeout=settings.quality_webhook_timeout
        )
        delivery.webhook_posted = delivery.webhook_error is None
    return delivery


def run_quality(
    settings: QualitySettings,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    now: datetime | None = None,
    warehouse: Warehouse | None = None,
    registry: RegistrySnapshot | None = None,
) -> QualityRun:
    """`xp jobs run quality`: run, store, report, alert. ``warehouse``/``registry`` are for callers that
    hold them already (tests, the scheduler); otherwise they are opened from ``settings``."""
    from quality.registry_source import load_registry
    from quality.report import publish_latest, render_summary, run_folder
    from quality.store import read_alert_state, store_outcomes
    from xpcore.warehouse import open_warehouse

    run_at = (now or datetime.now(UTC)).astimezone(UTC)
    window = check_window(since=since, until=until, hours=settings.quality_window_hours, now=run_at)
    run_id = uuid.uuid4().hex
    owned = warehouse is None
    store = warehouse if warehouse is not None else open_warehouse(settings)
    try:
        notes: list[str] = []
        if registry is None:
            registry, note = load_registry(settings, store)
            if note:
                notes.append(note)
        root = settings.report_root
        folder = run_folder(root, run_at.strftime("%Y%m%dT%H%M%SZ"), run_id)
        outcomes, gx = run_checks(
            store, registry, settings, window, docs_dir=folder / "data-docs", since=since
        )
        run = QualityRun(run_id, run_at, window, outcomes, notes=notes)
        store_outcomes(store, run_id, run_at, outcomes)
        previous = read_alert_state(store)
        quiet = timedelta(minutes=settings.quality_quiet_minutes)
        records = decide_alerts(outcomes, previous, run_id=run_id, now=run_at, quiet=quiet)
        run.report_path = root / "latest" / "index.html"
        run.delivery = _deliver(run, store, settings, records)
        html = render_summary(
            outcomes,
            run_id=run_id,
            run_at=run_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            window=window,
            location=store.location,
            alerts_text=run.delivery.summary(),
            notes=notes,
            docs_link="data-docs/index.html" if gx.docs_index else None,
            table_links={table: f"data-docs/{page.as_posix()}" for table, page in gx.pages.items()},
        )
        (folder / "index.html").write_text(html, encoding="utf-8")
        run.report_path = publish_latest(root, folder, keep=settings.quality_report_keep)
        run.docs_path = run.report_path.parent / "data-docs" / "index.html" if gx.docs_index else None
    finally:
        if owned:
            store.close()
    logger.info("quality run", extra={"run_id": run_id, "checks": len(outcomes), "failed": len(run.failures)})
    return run
