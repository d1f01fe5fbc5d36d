"""The results page without the wait: the newest snapshot at once, a fresh computation in the background.

For an experiment's own analysis (no ``since``/``until``/``segment``; the plan's method or the method of a
stored snapshot) the page shows the newest of:

- the newest ``xp.results`` snapshot for that method (written by `xp jobs run stats`, which `xp up`
  schedules): read back by :func:`snapshot_document` in the `xp results --format json` shape;
- the last result this dashboard computed itself (kept in memory by :class:`BackgroundResults`).

When the shown one is older than ``dashboard_results_max_age_seconds``, one background computation per
experiment and method refreshes it (single-flight), and the next load shows the fresh one. With neither,
the request computes, as `xp results` does. The page states what it shows (``shown``: source, computed_at,
age, refreshing). Decision: docs/decisions/0020-results-page-serves-snapshots.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.analysis_plan import AnalysisPlan
    from jobs.results.contract import ExperimentAnalysis

__all__ = ["BackgroundResults", "snapshot_document"]

logger = logging.getLogger(__name__)

SNAPSHOT_NOTE = "not stored with the snapshot"


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def snapshot_document(
    experiment: Any, plan: AnalysisPlan, rows: Sequence[dict[str, Any]]
) -> dict[str, Any] | None:
    """Rows of one stored snapshot (``results_latest_snapshot.sql``) as the `xp results --format json`
    document. Metrics in the order the experiment analyses them, variations in its order; fields a snapshot
    does not store are ``None`` (``srm_error``, ``p_value_adjusted``, ``cuped``). None without rows."""
    from jobs.results.analysis import analyzed_metrics

    if not rows:
        return None
    by_metric: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        by_metric.setdefault(row["metric"], {})[int(row["variation_id"])] = row
    order = [v.id for v in experiment.variations]
    definitions = {m.name: m for m, _ in analyzed_metrics(experiment)}
    names = [name for name in definitions if name in by_metric]
    names += sorted(name for name in by_metric if name not in definitions)
    first = rows[0]
    metrics = []
    for name in names:
        variants = by_metric[name]
        ids = [i for i in order if i in variants] + sorted(i for i in variants if i not in order)
        row0 = variants[ids[0]]
        definition = definitions.get(name)
        metrics.append(
            {
                "metric": name,
                "type": row0["metric_type"],
                "role": row0["role"],
                "higher_is_better": definition.higher_is_better if definition is not None else True,
                "variants": [_variant(variants[i]) for i in ids],
                "cuped": None,
            }
        )
    return {
        "experiment": experiment.key,
        "srm_p_value": first["srm_p_value"],
        "srm_error": None,
        "computed_at": _iso(first["computed_at"]),
        "data_as_of": _iso(min(first.get("window_until") or first["computed_at"], first["computed_at"])),
        "method": first["method"],
        "alpha": plan.alpha,
        "metrics": metrics,
        "analysis": plan.to_json(),
        "segments": None,
    }


def _variant(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "variation_id": int(row["variation_id"]),
        "key": row["variation_key"],
        "name": row["variation_name"],
        "units": int(row["units"]),
        "mean": row["mean"],
        "estimate": row["estimate"],
        "ci_low": row["ci_low"],
        "ci_high": row["ci_high"],
        "p_value": row["p_value"],
        "chance_to_win": row["chance_to_win"],
        "significant": bool(row["significant"]),
        "error": row["error"] or None,
        "p_value_adjusted": None,
    }


class BackgroundResults:
    """Results this dashboard computed, by key, and at most one computation in flight per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[tuple[Any, ...], ExperimentAnalysis] = {}
        self._in_flight: dict[tuple[Any, ...], threading.Thread] = {}
        self._threads: list[threading.Thread] = []

    def latest(self, key: tuple[Any, ...]) -> ExperimentAnalysis | None:
        with self._lock:
            return self._latest.get(key)

    def put(self, key: tuple[Any, ...], result: ExperimentAnalysis) -> None:
        with self._lock:
            current = self._latest.get(key)
            if current is None or current.computed_at <= result.computed_at:
                if len(self._latest) > 256:
                    self._latest.clear()
                self._latest[key] = result

    def in_flight(self, key: tuple[Any, ...]) -> bool:
        """A computation for ``key`` runs (a 1-tuple ``(experiment,)``: for any version and method)."""
        with self._lock:
            if len(key) == 1:
                return any(k[0] == key[0] for k in self._in_flight)
            return key in self._in_flight

    def clear(self) -> None:
        """Forget the computed results (the admin cache clear); computations in flight still land."""
        with self._lock:
            self._latest.clear()

    def refresh(self, key: tuple[Any, ...], compute: Callable[[], ExperimentAnalysis]) -> bool:
        """Start ``compute`` in a background thread unless one runs for ``key`` already (single-flight);
        its result becomes :meth:`latest`. True when this call started one."""

        def run() -> None:
            try:
                self.put(key, compute())
            except Exception:  # a failed refresh keeps the snapshot shown; the next load retries
                logger.warning("background results refresh of %s failed", key[0], exc_info=True)
            finally:
                with self._lock:
                    self._in_flight.pop(key, None)

        with self._lock:  # check and register at once: two requests never both start one
            if key in self._in_flight:
                return False
            self._threads = [t for t in self._threads if t.is_alive()]
            thread = threading.Thread(target=run, name=f"results-refresh-{key[0]}", daemon=True)
            self._in_flight[key] = thread
            self._threads.append(thread)
        thread.start()
        return True

    def wait_for(self, key: tuple[Any, ...], timeout: float | None = None) -> None:
        """Wait for the computation in flight for ``key``, if any."""
        with self._lock:
            thread = self._in_flight.get(key)
        if thread is not None:
            thread.join(timeout)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the computations in flight (tests, shutdown)."""
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(timeout)
