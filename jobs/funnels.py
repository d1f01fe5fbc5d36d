"""Conversion funnels per variation: counts from the warehouse, differences from the statistics engine.

``xp funnel`` and the dashboards call :func:`compute_funnel`:

1. :func:`fetch_funnel_counts` runs the funnel query (:func:`jobs.results.metric_sql.funnel.funnel_sql`:
   the results' unit rule, ``windowFunnel`` for ordered steps) → per variation the units that count and
   the units that reached each step;
2. :func:`analyze_funnel` compares, at every step, each treatment's *overall* conversion (units that
   reached the step / units exposed: a binomial over the randomized units,
   :class:`~jobs.stats.ProportionStatistic`) with control's by :func:`~jobs.stats.compare_variations`
   with the experiment's method and α (relative lift), and corrects the p-values of every step ×
   treatment as one family with the experiment's correction (decision 0069);
3. :meth:`FunnelResult.to_json` is the ``--format json`` contract (docs/dashboards.md#funnels).

Degenerate data (an empty variation, nobody reaching a step) gives coded errors, never an exception.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from assignment.funnel_block import EXPOSURE_STEP, Funnel
from jobs.analysis_plan import AnalysisPlan
from jobs.results.adjustments import adjusted_p_values
from jobs.results.contract import corrected_significance
from jobs.results.metric_sql.funnel import funnel_sql
from jobs.stats import EffectResult, ProportionStatistic, compare_variations

if TYPE_CHECKING:
    from assignment.registry import ExperimentSpec
    from xpcore.warehouse import Warehouse

__all__ = [
    "FunnelCounts",
    "FunnelResult",
    "FunnelStep",
    "FunnelVariation",
    "analyze_funnel",
    "compute_funnel",
    "fetch_funnel_counts",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FunnelCounts:
    """One variation's counts: ``units`` that count, ``reached[k]`` that reached event step k (0-based)."""

    variation_id: int
    units: int
    reached: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FunnelStep:
    """One step of one variation."""

    step: str
    units: int
    conversion_from_previous: float | None
    conversion_overall: float | None
    effect: EffectResult | None = None
    """None for control and for the ``exposure`` step."""
    p_value_adjusted: float | None = None
    alpha: float | None = None

    @property
    def significant(self) -> bool:
        return corrected_significance(self.effect, self.p_value_adjusted, self.alpha)

    def to_json(self) -> dict[str, Any]:
        effect = self.effect
        return {
            "step": self.step,
            "units": self.units,
            "conversion_from_previous": self.conversion_from_previous,
            "conversion_overall": self.conversion_overall,
            "lift": effect.estimate if effect else None,
            "ci_low": effect.ci_low if effect else None,
            "ci_high": effect.ci_high if effect else None,
            "p_value": effect.p_value if effect else None,
            "p_value_adjusted": self.p_value_adjusted,
            "chance_to_win": effect.chance_to_win if effect else None,
            "significant": self.significant,
            "error": effect.error.value if effect is not None and effect.error else None,
        }


@dataclass(frozen=True, slots=True)
class FunnelVariation:
    variation_id: int
    key: str
    name: str
    steps: tuple[FunnelStep, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "variation_id": self.variation_id,
            "key": self.key,
            "name": self.name,
            "steps": [step.to_json() for step in self.steps],
        }


@dataclass(frozen=True, slots=True)
class FunnelResult:
    """A funnel of one experiment: per variation, per step (``exposure`` first)."""

    experiment: str
    funnel: Funnel
    plan: AnalysisPlan
    since: datetime
    until: datetime
    computed_at: datetime
    variations: tuple[FunnelVariation, ...]

    @property
    def steps(self) -> tuple[str, ...]:
        return (EXPOSURE_STEP, *self.funnel.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "steps": list(self.steps),
            "window_hours": self.funnel.window_hours,
            "ordered": self.funnel.ordered,
            "method": self.plan.method,
            "alpha": self.plan.alpha,
            "correction": self.plan.correction,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "computed_at": self.computed_at.isoformat(),
            "variations": [variation.to_json() for variation in self.variations],
        }


def fetch_funnel_counts(
    warehouse: Warehouse, experiment_key: str, funnel: Funnel, *, since: datetime, until: datetime
) -> list[FunnelCounts]:
    """Per variation with at least one unit that counts: the funnel's counts (one query)."""
    parameters = {
        "experiment": experiment_key,
        "since": since,
        "until": until,
        "steps": list(funnel.steps),
        "window_seconds": funnel.window_seconds,
    }
    rows = warehouse.query_arrow(funnel_sql(len(funnel.steps), ordered=funnel.ordered), parameters)
    return [
        FunnelCounts(int(row["variation_id"]), int(row["units"]), tuple(int(n) for n in row["reached"]))
        for row in rows.to_pylist()
    ]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def analyze_funnel(
    experiment: ExperimentSpec,
    funnel: Funnel,
    counts: Sequence[FunnelCounts],
    *,
    plan: AnalysisPlan,
    since: datetime,
    until: datetime,
    computed_at: datetime,
) -> FunnelResult:
    """The funnel of ``experiment`` from its per-variation ``counts`` (missing variations: empty)."""
    by_id: Mapping[int, FunnelCounts] = {c.variation_id: c for c in counts}
    variations = experiment.variations
    empty = (0,) * len(funnel.steps)
    table = [by_id.get(v.id, FunnelCounts(v.id, 0, empty)) for v in variations]
    effects: dict[tuple[int, int], EffectResult] = {}  # (variation index, step index) → effect
    for k in range(len(funnel.steps)):
        statistics = [ProportionStatistic(c.units, float(c.reached[k])) for c in table]
        results = compare_variations(
            statistics,
            method=plan.method,
            difference="relative",
            alpha=plan.alpha,
            planned_units=plan.planned_units,
            planned_looks=plan.planned_looks,
        )
        for index, result in enumerate(results, start=1):
            effects[(index, k)] = result
    keys = sorted(effects)
    adjusted = adjusted_p_values([effects[key].p_value for key in keys], plan.correction)
    corrected = dict(zip(keys, adjusted, strict=True)) if plan.correction != "none" else {}
    out = []
    for index, (variation, row) in enumerate(zip(variations, table, strict=True)):
        steps = [FunnelStep(EXPOSURE_STEP, row.units, None, 1.0 if row.units else None)]
        previous = row.units
        for k, name in enumerate(funnel.steps):
            reached = row.reached[k]
            steps.append(
                FunnelStep(
                    name,
                    reached,
                    _share(reached, previous),
                    _share(reached, row.units),
                    effects.get((index, k)),
                    corrected.get((index, k)),
                    plan.alpha if (index, k) in corrected else None,
                )
            )
            previous = reached
        out.append(FunnelVariation(variation.id, variation.key, variation.name, tuple(steps)))
    return FunnelResult(experiment.key, funnel, plan, since, until, computed_at, tuple(out))


def compute_funnel(
    warehouse: Warehouse,
    experiment: ExperimentSpec,
    funnel: Funnel,
    *,
    plan: AnalysisPlan | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    computed_at: datetime | None = None,
) -> FunnelResult:
    """The funnel over units first exposed in ``[since, until)`` (default: all, now), fresh from the
    warehouse (the live scan: one query over the experiment's attributed step events)."""
    computed_at = computed_at or datetime.now(UTC)
    since, until = since or EPOCH, until or computed_at
    counts = fetch_funnel_counts(warehouse, experiment.key, funnel, since=since, until=until)
    return analyze_funnel(
        experiment,
        funnel,
        counts,
        plan=plan or AnalysisPlan(),
        since=since,
        until=until,
        computed_at=computed_at,
    )
