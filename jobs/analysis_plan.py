"""How an experiment is analysed: its ``analysis:`` block (YAML registry) merged with CLI overrides.

The YAML registry (``assignment/authoring.py``) validates the block and stores it in the experiment's
metadata as ``{"method", "alpha", "cuped", "correction", "planned_units"}`` (only the fields given);
:func:`plan_from_metadata` reads it back (tolerantly: a registry written by an older version has no
block, and a field it does not know is ignored), and :func:`AnalysisPlan.with_overrides` applies the
flags of ``xp results`` on top. Defaults (docs/statistics.md, decision 0015):

- ``method: sequential`` (valid under continuous peeking: the default for realtime views),
- ``alpha: 0.05``, ``cuped: false``, ``correction: none``, ``planned_units: null``.

Pure; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal, cast

from jobs.stats.results import Method
from xpcore.errors import ValidationError

__all__ = [
    "CORRECTIONS",
    "DEFAULT_PLAN",
    "METHODS",
    "AnalysisPlan",
    "Correction",
    "plan_from_metadata",
]

Correction = Literal["none", "holm", "bh"]
"""Multiple-comparison correction across metrics × treatment variations."""

METHODS: Final = ("sequential", "frequentist", "bayesian")
CORRECTIONS: Final = ("none", "holm", "bh")


@dataclass(frozen=True, slots=True)
class AnalysisPlan:
    """The analysis settings of one experiment (what ``xp results`` and ``xp jobs run stats`` use)."""

    method: Method = "sequential"
    alpha: float = 0.05
    cuped: bool = False
    """Adjust binomial and mean metrics with their pre-exposure covariate (Deng et al. 2013)."""
    correction: Correction = "none"
    """holm (Holm–Bonferroni, family-wise error) or bh (Benjamini–Hochberg, false discovery rate)."""
    planned_units: int | None = None
    """Units the experiment was planned for (all variations), if known: shown next to the results."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValidationError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if not (isinstance(self.alpha, float | int) and 0 < self.alpha < 1 and math.isfinite(self.alpha)):
            raise ValidationError(f"alpha must be a number in (0, 1), got {self.alpha!r}")
        if self.correction not in CORRECTIONS:
            raise ValidationError(
                f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}"
            )
        if self.planned_units is not None and self.planned_units < 1:
            raise ValidationError(f"planned_units must be >= 1, got {self.planned_units!r}")

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
            method=cast(Method, method) if method is not None else self.method,
            alpha=float(alpha) if alpha is not None else self.alpha,
            cuped=cuped if cuped is not None else self.cuped,
            correction=cast(Correction, correction) if correction is not None else self.correction,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "alpha": self.alpha,
            "cuped": self.cuped,
            "correction": self.correction,
            "planned_units": self.planned_units,
        }


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
    return AnalysisPlan(
        method=cast(Method, raw.get("method", DEFAULT_PLAN.method)),
        alpha=float(raw.get("alpha", DEFAULT_PLAN.alpha)),
        cuped=bool(raw.get("cuped", DEFAULT_PLAN.cuped)),
        correction=cast(Correction, raw.get("correction", DEFAULT_PLAN.correction)),
        planned_units=int(planned) if planned is not None else None,
    )
