"""The program view (issue #18 part 3): ``xp program`` and the Program page, across finished experiments.

- **experiments**: every finished experiment (status ``stopped``, the decision in this registry) with its
  recorded decision (``decision:`` in the YAML: ship, rollback or inconclusive; ``undecided`` when none was
  recorded), the lift of its primary metric (or ``--metric``) for the treatment the decision is about (its
  ``decision.variation``, else the first treatment) with the interval of the experiment's own analysis, from
  its newest results snapshot (``xp.results``); its duration (first start to stop, from the registry's
  history) and units;
- **teams** and **metrics**: per team (the ``owner:``, decision 0070) and per metric, the decisions, the
  win rate (ships / decided) and the distribution of the lifts (quartiles);
- **meta_analysis**: one metric pooled across the chosen experiments (:mod:`jobs.stats.meta_analysis`):
  each experiment's relative lift and its delta-method standard error recomputed from the snapshot's
  sufficient statistics (fixed horizon, without CUPED: the covariate's sums are not stored), then the
  fixed-effect estimate, Cochran's Q, I² and DerSimonian–Laird.

:func:`build_program` is pure; :func:`compute_program` runs the two named queries
(``sql/queries/program_*.sql``). Decision 0089.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from statistics import quantiles
from typing import TYPE_CHECKING, Any

from jobs.activity import UNOWNED
from jobs.stats.meta_analysis import meta_analysis
from xpcore.errors import ValidationError
from xpcore.warehouse import load_query

if TYPE_CHECKING:
    from jobs.stats.sufficient import Statistic
    from xpcore.warehouse import Warehouse

__all__ = ["MAX_EXPERIMENTS", "OUTCOMES", "build_program", "compute_program", "parse_experiment_list"]

OUTCOMES = ("ship", "rollback", "inconclusive")
UNDECIDED = "undecided"
MAX_EXPERIMENTS = 500
"""At most this many experiments in ``--experiments`` / ``?experiments=``."""
_MAX_NAME = 200


def parse_experiment_list(text: str | None) -> list[str] | None:
    """``a,b,c`` → keys (None when not given); refuses an empty list, too many or over-long names."""
    if text is None:
        return None
    keys = [k.strip() for k in text.split(",") if k.strip()]
    if not keys:
        raise ValidationError("experiments must name at least one experiment: a,b,c")
    if len(keys) > MAX_EXPERIMENTS:
        raise ValidationError(f"experiments names at most {MAX_EXPERIMENTS} experiments, got {len(keys)}")
    for key in keys:
        if len(key) > _MAX_NAME or not key.isprintable():
            raise ValidationError("experiments must be experiment keys separated by commas")
    return list(dict.fromkeys(keys))


def _check_filter(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if len(value) > _MAX_NAME or not value.isprintable():
        raise ValidationError(f"{name} must be a printable name of at most {_MAX_NAME} characters")
    return value


def _fold(changes: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The latest state of every experiment (oldest change first), with its first start and its stop."""
    state: dict[str, dict[str, Any]] = {}
    for row in changes:
        key = str(row["key"]).removeprefix("experiment:")
        at: datetime = row["changed_at"]
        if row["change"] == "deleted":
            state.pop(key, None)
            continue
        before = state.get(key, {})
        status = row["status"]
        started = before.get("started_at")
        stopped = before.get("stopped_at")
        if status == "running" and started is None:
            started = at
        if status == "stopped" and before.get("status") != "stopped":
            stopped = at
        state[key] = {
            "status": status,
            "name": row["name"] or key,
            "team": row["owner"] or UNOWNED,
            "decision": row["decision"] if row["decision"] in OUTCOMES else UNDECIDED,
            "decision_variation": row["decision_variation"] or None,
            "primary_metric": row["primary_metric"] or None,
            "variation_keys": list(row["variation_keys"] or []),
            "started_at": started,
            "stopped_at": stopped,
        }
    return state


def _statistic(row: Mapping[str, Any]) -> Statistic:
    from jobs.stats.sufficient import (
        ProportionStatistic,
        RatioStatistic,
        SampleMeanStatistic,
        ValueSums,
    )

    n = int(row["units"])
    if row["metric_type"] == "binomial":
        return ProportionStatistic(n, float(round(row["sum"])))
    if row["metric_type"] == "ratio":
        return RatioStatistic(
            n,
            ValueSums(row["sum"], row["sum_squares"]),
            ValueSums(row["denominator_sum"], row["denominator_sum_squares"]),
            row["cross_sum"],
        )
    return SampleMeanStatistic(n, row["sum"], row["sum_squares"])


def relative_lift_moments(
    control: Mapping[str, Any], treatment: Mapping[str, Any]
) -> tuple[float, float] | str:
    """(relative lift, its delta-method standard error) of two snapshot rows, or the reason there is none."""
    from jobs.stats.effects import effect_moments

    if control.get("metric_type") == "quantile":  # snapshots keep no sums of quantiles (decision 0083)
        return "quantile_metric"
    try:
        moments = effect_moments(_statistic(control), _statistic(treatment), "relative")
    except ValidationError:
        return "invalid_sums"
    if moments.error is not None:
        return moments.error.value
    return moments.estimate, moments.standard_error


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _experiment_row(
    key: str, info: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], metric: str | None
) -> dict[str, Any]:
    shown = metric or info["primary_metric"]
    keys = info["variation_keys"]
    treatment_key = info["decision_variation"] or (keys[1] if len(keys) > 1 else None)
    started, stopped = info["started_at"], info["stopped_at"]
    row: dict[str, Any] = {
        "experiment": key,
        "name": info["name"],
        "team": info["team"],
        "decision": info["decision"],
        "variation": treatment_key,
        "metric": shown,
        "role": None,
        "method": None,
        "lift": None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "significant": None,
        "units": None,
        "started_at": started.isoformat() if started else None,
        "stopped_at": stopped.isoformat() if stopped else None,
        "duration_days": (stopped - started).total_seconds() / 86400 if started and stopped else None,
        "computed_at": None,
        "error": None,
        "_meta": None,
    }
    metric_rows = [r for r in rows if r["metric"] == shown]
    if not metric_rows:
        row["error"] = "no_results" if not rows else "metric_not_analysed"
        return row
    by_key = {r["variation_key"]: r for r in metric_rows}
    control = min(metric_rows, key=lambda r: int(r["variation_id"]))
    treatment = by_key.get(treatment_key or "")
    row.update(
        role=control["role"],
        method=control["method"],
        units=sum(int(r["units"]) for r in metric_rows),
        computed_at=control["computed_at"].isoformat(),
    )
    if treatment is None or treatment is control:
        row["error"] = "variation_not_analysed"
        return row
    row.update(
        lift=_finite(treatment["estimate"]),
        ci_low=_finite(treatment["ci_low"]),
        ci_high=_finite(treatment["ci_high"]),
        p_value=_finite(treatment["p_value"]),
        significant=bool(treatment["significant"]),
        error=treatment["error"] or None,
    )
    row["_meta"] = relative_lift_moments(control, treatment)
    return row


def _distribution(lifts: Sequence[float]) -> dict[str, Any]:
    if not lifts:
        return {"count": 0, "min": None, "p25": None, "median": None, "p75": None, "max": None, "mean": None}
    ordered = sorted(lifts)
    if len(ordered) == 1:
        q1 = q2 = q3 = ordered[0]
    else:
        q1, q2, q3 = quantiles(ordered, n=4, method="inclusive")
    return {
        "count": len(ordered),
        "min": ordered[0],
        "p25": q1,
        "median": q2,
        "p75": q3,
        "max": ordered[-1],
        "mean": math.fsum(ordered) / len(ordered),
    }


def _group(rows: Sequence[Mapping[str, Any]], field: str) -> list[dict[str, Any]]:
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row[field] or "—", []).append(row)
    summary = []
    for name in sorted(groups):
        members = groups[name]
        outcomes = Counter(r["decision"] for r in members)
        decided = sum(outcomes[o] for o in OUTCOMES)
        summary.append(
            {
                field: name,
                "experiments": len(members),
                "decided": decided,
                **{o: outcomes[o] for o in (*OUTCOMES, UNDECIDED)},
                "win_rate": outcomes["ship"] / decided if decided else None,
                "lift": _distribution([r["lift"] for r in members if r["lift"] is not None]),
            }
        )
    return summary


def build_program(
    changes: Iterable[Mapping[str, Any]],
    result_rows: Iterable[Mapping[str, Any]],
    *,
    team: str | None = None,
    metric: str | None = None,
    experiments: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """The program document from registry change rows (``program_experiments.sql``, oldest first) and the
    newest snapshot rows of the finished experiments (``program_latest_results.sql``)."""
    team, metric = _check_filter("team", team), _check_filter("metric", metric)
    finished = {k: v for k, v in _fold(changes).items() if v["status"] == "stopped"}
    if experiments is not None:
        missing = [k for k in experiments if k not in finished]
        if missing:
            raise ValidationError(f"not a finished experiment: {', '.join(sorted(missing)[:5])}")
    keys = sorted(experiments if experiments is not None else finished)
    if team is not None:
        keys = [k for k in keys if finished[k]["team"] == team]
    by_experiment: dict[str, list[Mapping[str, Any]]] = {}
    for row in result_rows:
        by_experiment.setdefault(row["experiment_key"], []).append(row)
    rows = [_experiment_row(k, finished[k], by_experiment.get(k, []), metric) for k in keys]
    pooled_metric = metric
    if pooled_metric is None:
        shown = {r["metric"] for r in rows if r["metric"]}
        pooled_metric = shown.pop() if len(shown) == 1 else None
    included: list[str] = []
    excluded: list[dict[str, str]] = []
    estimates: list[float] = []
    errors: list[float] = []
    for row in rows:
        meta = row.pop("_meta")
        if pooled_metric is None or row["metric"] != pooled_metric:
            continue
        if isinstance(meta, tuple):
            included.append(row["experiment"])
            estimates.append(meta[0])
            errors.append(meta[1])
            row["meta_lift"], row["meta_standard_error"] = meta
        else:
            excluded.append({"experiment": row["experiment"], "reason": meta or row["error"] or "no_results"})
    for row in rows:
        row.setdefault("meta_lift", None)
        row.setdefault("meta_standard_error", None)
    meta_document: dict[str, Any] | None = None
    if pooled_metric is not None:
        meta_document = {
            "metric": pooled_metric,
            "included": included,
            "excluded": excluded,
            **meta_analysis(estimates, errors, alpha=alpha).to_json(),
        }
    return {
        "filters": {
            "team": team,
            "metric": metric,
            "experiments": list(experiments) if experiments else None,
        },
        "experiments": rows,
        "teams": _group(rows, "team"),
        "metrics": _group(rows, "metric"),
        "meta_analysis": meta_document,
    }


def compute_program(
    warehouse: Warehouse,
    *,
    team: str | None = None,
    metric: str | None = None,
    experiments: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The program document from the warehouse (see :func:`build_program`)."""
    changes = warehouse.query_arrow(load_query("program_experiments")).to_pylist()
    finished = sorted(k for k, v in _fold(changes).items() if v["status"] == "stopped")
    rows: list[dict[str, Any]] = []
    if finished:
        rows = warehouse.query_arrow(
            load_query("program_latest_results"), {"experiments": finished}
        ).to_pylist()
    return build_program(changes, rows, team=team, metric=metric, experiments=experiments)
