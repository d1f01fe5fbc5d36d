"""How an experiment is analysed: its ``analysis:`` block (YAML registry) merged with CLI overrides.

The block's rules (allowed methods and corrections, ranges, defaults, what a bad value is told) are
declared once, in :mod:`assignment.analysis_block`: the YAML registry (``assignment/authoring/``)
validates the block with them and stores it in the experiment's metadata as ``{"method", "alpha",
"cuped", "correction", "planned_units", "planned_looks"}`` (only the fields given);
:func:`plan_from_metadata` reads it back (tolerantly: a registry written by an older version has no
block, and a field it does not know is ignored), and :func:`AnalysisPlan.with_overrides` applies the
flags of ``xp results`` on top; every plan is checked against the same rules. Defaults
(docs/statistics.md, decision 0015):

- ``method: sequential`` (valid under continuous peeking: the default for realtime views),
- ``alpha: 0.05``, ``cuped: false``, ``correction: none``, ``planned_units: null``,
  ``planned_looks: null`` (5 looks; group-sequential methods need ``planned_units``, decision 0063).

Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, cast

from assignment.analysis_block import (
    ANALYSIS_DEFAULTS,
    CORRECTIONS,
    METHODS,
    Adjustment,
    AnalysisMethod,
    Correction,
    analysis_problem,
)
from xpcore.errors import ValidationError

__all__ = [
    "CORRECTIONS",
    "DEFAULT_PLAN",
    "METHODS",
    "AnalysisPlan",
    "Correction",
    "plan_from_metadata",
]


@dataclass(frozen=True, slots=True)
class AnalysisPlan:
    """The analysis settings of one experiment (what ``xp results`` and ``xp jobs run stats`` use)."""

    method: AnalysisMethod = ANALYSIS_DEFAULTS.method
    alpha: float = ANALYSIS_DEFAULTS.alpha
    cuped: bool = ANALYSIS_DEFAULTS.cuped
    """Adjust binomial and mean metrics with their pre-exposure covariate (Deng et al. 2013)."""
    correction: Correction = ANALYSIS_DEFAULTS.correction
    """holm (Holm–Bonferroni, family-wise error) or bh (Benjamini–Hochberg, false discovery rate)."""
    planned_units: int | None = ANALYSIS_DEFAULTS.planned_units
    """Units the experiment was planned for (all variations), if known: shown next to the results, the
    sequential N*, and required by the group-sequential methods (decision 0063)."""
    planned_looks: int | None = ANALYSIS_DEFAULTS.planned_looks
    """Equally spaced looks of a group-sequential method; None: the default (5)."""
    adjustment: Adjustment | None = None
    """Regression adjustment (CUPED++, decision 0093): covariates and strata; None: none."""

    def __post_init__(self) -> None:
        problem = analysis_problem(
            self.method,
            self.alpha,
            self.cuped,
            self.correction,
            self.planned_units,
            self.planned_looks,
            self.adjustment.to_json() if self.adjustment is not None else None,
        )
        if problem is not None:
            field, what = problem
            raise ValidationError(f"{field} {what}, got {getattr(self, field)!r}")

    def with_overrides(
        self,
        *,
        method: str | None = None,
        alpha: float | None = None,
        cuped: bool | None = None,
        correction: str | None = None,
    ) -> AnalysisPlan:
        """This plan with every given (not None) CLI value replacing the experiment's."""
        return replace(
            self,
            method=cast(AnalysisMethod, method) if method is not None else self.method,
            alpha=float(alpha) if alpha is not None else self.alpha,
            cuped=cuped if cuped is not None else self.cuped,
            correction=cast(Correction, correction) if correction is not None else self.correction,
        )

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON (``adjustment`` only when one is declared: without it nothing changes)."""
        answer: dict[str, Any] = {
            "method": self.method,
            "alpha": self.alpha,
            "cuped": self.cuped,
            "correction": self.correction,
            "planned_units": self.planned_units,
            "planned_looks": self.planned_looks,
        }
        if self.adjustment is not None:
            answer["adjustment"] = self.adjustment.to_json()
        return answer


DEFAULT_PLAN: Final = AnalysisPlan()


def plan_from_metadata(metadata: Mapping[str, Any] | None) -> AnalysisPlan:
    """The plan stored in an experiment's metadata (``metadata["analysis"]``), defaults for what is missing.

    The registry validated the block when it was published; a value that is invalid anyway (a registry
    edited by hand) raises ValidationError naming the field.
    """
    raw = (metadata or {}).get("analysis")
    if not isinstance(raw, Mapping):
        return DEFAULT_PLAN
    planned = raw.get("planned_units")
    looks = raw.get("planned_looks")
    adjustment = raw.get("adjustment")
    return AnalysisPlan(
        method=cast(AnalysisMethod, raw.get("method", DEFAULT_PLAN.method)),
        alpha=float(raw.get("alpha", DEFAULT_PLAN.alpha)),
        cuped=bool(raw.get("cuped", DEFAULT_PLAN.cuped)),
        correction=cast(Correction, raw.get("correction", DEFAULT_PLAN.correction)),
        planned_units=int(planned) if planned is not None else None,
        planned_looks=int(looks) if looks is not None else None,
        adjustment=_adjustment(adjustment) if adjustment is not None else None,
    )


def _adjustment(raw: Any) -> Adjustment:
    """The stored ``adjustment`` block; ValidationError naming it when hand-edited into nonsense."""
    try:
        return Adjustment.model_validate(dict(raw) if isinstance(raw, Mapping) else raw)
    except Exception as error:  # pydantic's ValidationError: say which field
        raise ValidationError(f"adjustment is not valid in the stored analysis block: {error}") from error
