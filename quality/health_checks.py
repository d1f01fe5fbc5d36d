"""Experiment health checks in plain code (where GX is the wrong tool). Pure: rows in, outcomes out.

- ``srm``: Pearson's chi-square of units per variation against the configured weights
  (:func:`jobs.stats.srm.sample_ratio_mismatch`), fails when p < the configured threshold;
- ``multiple_variations``: share of units exposed to more than one variation;
- ``overridden``: share of overridden units;
- ``units_without_events``: per variation, share of exposed units with no attributed event (broken
  tracking shows as one variation, or all, going silent);
- ``sample_size``: units against the analysis plan's ``planned_units``;
- ``guardrails``: a guardrail metric significantly harmed (the interval of a treatment lies wholly on the
  harmful side, :func:`jobs.stats.guardrails.is_guardrail_harmed` on the results engine's effects).

Experiments with fewer than ``min_units`` units are reported as not judged yet (success), so a new
experiment does not page anyone on noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobs.stats.guardrails import is_guardrail_harmed
from jobs.stats.srm import sample_ratio_mismatch
from quality.outcomes import CheckOutcome

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from jobs.results.contract import ExperimentAnalysis

__all__ = ["HealthThresholds", "VariationUnits", "guardrail_outcome", "health_outcomes"]


@dataclass(frozen=True, slots=True)
class VariationUnits:
    """One row of ``sql/queries/quality_experiment_units.sql``."""

    variation_id: int
    units: int
    eligible_units: int = 0
    srm_units: int = 0
    multiple_units: int = 0
    overridden_units: int = 0
    units_without_events: int = 0

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> VariationUnits:
        return cls(**{name: int(row[name]) for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    srm_p_value: float = 0.001
    max_multiple_variation_share: float = 0.01
    max_overridden_share: float = 0.05
    max_units_without_events_share: float = 0.95
    min_units: int = 100


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _srm(experiment: ExperimentSpec, rows: Mapping[int, VariationUnits], p_threshold: float) -> CheckOutcome:
    counts = [rows[v.id].srm_units if v.id in rows else 0 for v in experiment.variations]
    weights = list(experiment.weights)
    threshold = {"p_value": p_threshold, "weights": weights}
    if len(counts) < 2 or not all(w > 0 for w in weights):
        detail = "fewer than 2 variations with positive weight: no split to check"
        return CheckOutcome("srm", True, None, threshold, detail, experiment=experiment.key)
    result = sample_ratio_mismatch(counts, weights)
    observed = {"p_value": result.p_value, "chi_square": result.chi_square, "units": counts}
    total = sum(counts)
    expected = [round(total * w / sum(weights)) for w in weights]
    split = ", ".join(
        f"{v.key} {n} (expected {e})" for v, n, e in zip(experiment.variations, counts, expected, strict=True)
    )
    if result.p_value is None:
        return CheckOutcome("srm", True, observed, threshold, "no units yet", experiment=experiment.key)
    ok = result.p_value >= p_threshold
    verdict = "split matches the weights" if ok else "SAMPLE RATIO MISMATCH: do not trust the results"
    detail = f"{verdict}: p = {result.p_value:.3g} (threshold {p_threshold:g}); units {split}"
    return CheckOutcome("srm", ok, observed, threshold, detail, experiment=experiment.key)


def _shares(experiment: str, check: str, part: int, whole: int, limit: float, what: str) -> CheckOutcome:
    share = _share(part, whole)
    ok = share <= limit
    verdict = "within" if ok else "above"
    detail = f"{part} of {whole} units {what} ({share:.2%}), {verdict} the {limit:.2%} limit"
    observed: dict[str, float] = {"share": round(share, 6), "units": part, "of": whole}
    return CheckOutcome(check, ok, observed, {"max_share": limit}, detail, experiment=experiment)


def _without_events(
    experiment: ExperimentSpec, rows: Mapping[int, VariationUnits], limit: float
) -> CheckOutcome:
    per_variation = {
        (v.key): _share(rows[v.id].units_without_events, rows[v.id].units)
        for v in experiment.variations
        if v.id in rows and rows[v.id].units
    }
    worst = max(per_variation.items(), key=lambda item: item[1], default=("", 0.0))
    ok = worst[1] <= limit
    shown = ", ".join(f"{key} {share:.1%}" for key, share in per_variation.items())
    detail = (
        f"units with no attributed event per variation: {shown}"
        if ok
        else f"broken tracking? {worst[1]:.1%} of {worst[0]}'s units have no event (limit {limit:.0%}); "
        f"per variation: {shown}"
    )
    observed = {k: round(v, 6) for k, v in per_variation.items()}
    return CheckOutcome(
        "units_without_events", ok, observed, {"max_share": limit}, detail, experiment=experiment.key
    )


def _sample_size(experiment: ExperimentSpec, units: int, planned: int | None, now: datetime) -> CheckOutcome:
    """Progress against the plan; fails (warning) when the pace cannot reach the plan by the stop date."""
    key = experiment.key
    if not planned:
        observed: dict[str, float | None] = {"units": units, "planned_units": None, "progress": None}
        detail = f"{units} units; no planned_units in the analysis plan"
        return CheckOutcome("sample_size", True, observed, None, detail, experiment=key, severity="warning")
    progress = units / planned
    observed = {"units": units, "planned_units": planned, "progress": round(progress, 4)}
    detail = f"{units} of {planned} planned units ({progress:.0%})"
    ok = True
    start, stop = experiment.start_at, experiment.stop_at
    if progress < 1 and start is not None and stop is not None and start < now:
        elapsed = (min(now, stop) - start).total_seconds()
        projected = units * (stop - start).total_seconds() / elapsed if elapsed > 0 else 0.0
        observed["projected_units"] = round(projected)
        if projected < planned:
            ok = False
            detail += f"; at this pace only ~{projected:.0f} by the stop date {stop.date().isoformat()}"
    return CheckOutcome(
        "sample_size", ok, observed, {"planned_units": planned}, detail, experiment=key, severity="warning"
    )


def health_outcomes(
    experiment: ExperimentSpec,
    rows: Sequence[VariationUnits],
    thresholds: HealthThresholds,
    *,
    planned_units: int | None,
    now: datetime,
) -> list[CheckOutcome]:
    """Every unit-count health check of one experiment (guardrails come from :func:`guardrail_outcome`)."""
    by_variation = {row.variation_id: row for row in rows}
    units = sum(row.units for row in rows)
    key = experiment.key
    if units < thresholds.min_units:
        detail = f"{units} units so far (< {thresholds.min_units}): not judged yet"
        observed = {"units": units}
        return [
            CheckOutcome(check, True, observed, {"min_units": thresholds.min_units}, detail, experiment=key)
            for check in ("srm", "multiple_variations", "overridden", "units_without_events")
        ] + [_sample_size(experiment, units, planned_units, now)]
    multiple = sum(row.multiple_units for row in rows)
    overridden = sum(row.overridden_units for row in rows)
    return [
        _srm(experiment, by_variation, thresholds.srm_p_value),
        _shares(
            key,
            "multiple_variations",
            multiple,
            units,
            thresholds.max_multiple_variation_share,
            "saw more than one variation",
        ),
        _shares(key, "overridden", overridden, units, thresholds.max_overridden_share, "were overridden"),
        _without_events(experiment, by_variation, thresholds.max_units_without_events_share),
        _sample_size(experiment, units, planned_units, now),
    ]


def guardrail_outcome(result: ExperimentAnalysis) -> CheckOutcome:
    """Fails when a treatment significantly harms a guardrail metric of the experiment."""
    guardrails = [m for m in result.metrics if m.role == "guardrail"]
    names = [m.metric.name for m in guardrails]
    threshold = {"alpha": result.alpha, "method": result.method}
    if not guardrails:
        detail = "no guardrail metrics"
        return CheckOutcome(
            "guardrails", True, {"harmed": []}, threshold, detail, experiment=result.experiment
        )
    harmed: list[dict[str, Any]] = []
    for metric in guardrails:
        for variant in metric.variants:
            effect = variant.effect
            if effect is not None and is_guardrail_harmed(
                effect, higher_is_better=metric.metric.higher_is_better
            ):
                harmed.append(
                    {
                        "metric": metric.metric.name,
                        "variation": variant.key,
                        "estimate": effect.estimate,
                        "ci_low": effect.ci_low,
                        "ci_high": effect.ci_high,
                    }
                )
    if not harmed:
        detail = f"no guardrail significantly harmed ({', '.join(names)})"
        return CheckOutcome(
            "guardrails", True, {"harmed": []}, threshold, detail, experiment=result.experiment
        )
    shown = "; ".join(
        f"{h['metric']} in {h['variation']}: {h['estimate'] or 0:+.1%} "
        f"[{h['ci_low']:+.1%}, {h['ci_high']:+.1%}]"
        for h in harmed
    )
    detail = f"guardrail harmed: {shown}"
    observed = {"harmed": harmed}
    return CheckOutcome("guardrails", False, observed, threshold, detail, experiment=result.experiment)
