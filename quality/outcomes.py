"""One check outcome: what `xp jobs run quality --format json` prints and ``xp.dq_results`` stores. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CheckOutcome", "Severity", "fingerprint", "outcomes_json"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class CheckOutcome:
    """The result of one check on one experiment or table.

    ``observed`` and ``threshold`` are JSON values (number, string, object or null).
    """

    check: str
    success: bool
    observed: Any
    threshold: Any
    detail: str
    experiment: str | None = None
    table: str | None = None
    severity: Severity = "error"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.check, self.experiment, self.table)

    @property
    def subject(self) -> str:
        """What was checked, for people: ``experiment x``, ``table y`` or ``everything``."""
        if self.experiment and self.table:
            return f"{self.experiment} · {self.table}"
        return self.experiment or self.table or "all"

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "experiment": self.experiment,
            "table": self.table,
            "success": self.success,
            "observed": self.observed,
            "threshold": self.threshold,
            "detail": self.detail,
        }


def fingerprint(check: str, experiment: str | None, table: str | None) -> str:
    """``check|experiment|table``: the same problem has the same fingerprint in every run."""
    return f"{check}|{experiment or ''}|{table or ''}"


def outcomes_json(outcomes: Sequence[CheckOutcome]) -> dict[str, Any]:
    """The ``--format json`` document: ``{"success": all passed, "checks": [...]}``."""
    return {"success": all(o.success for o in outcomes), "checks": [o.to_json() for o in outcomes]}
