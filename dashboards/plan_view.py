"""The planning section of the experiment's page: ``GET /api/experiments/{key}/plan`` (issue #16).

The same computation as ``xp plan KEY --format json`` (:func:`jobs.results.plan.plan_experiment`: the
experiment's metrics and ``analysis:`` block, the history of raw events): ``mde`` (default 0.05),
``absolute`` (true: ``mde`` in metric units), ``power`` (default 0.8), ``lookback_days`` (default 14) and
``until`` (default now) as the CLI flags. One short query per metric, read-only, computed per request
(it is asked for rarely and does not depend on the experiment's own traffic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from dashboards.context import DashboardContext
from xpcore.errors import ValidationError

__all__ = ["plan_options", "plan_page"]


def _number(params: Mapping[str, str], name: str, default: float) -> float:
    text = params.get(name) or ""
    if text == "":
        return default
    try:
        value = float(text[:40])
    except ValueError:
        raise ValidationError(f"{name} must be a number, got {text[:40]!r}") from None
    if not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number, got {text[:40]!r}")
    return value


def plan_options(params: Mapping[str, str]) -> dict[str, Any]:
    """The request's options, checked (a ValidationError names the bad one)."""
    mde = _number(params, "mde", 0.05)
    power = _number(params, "power", 0.8)
    lookback = _number(params, "lookback_days", 14.0)
    absolute = params.get("absolute", "")
    if absolute not in ("", "true", "false", "1", "0"):
        raise ValidationError(f"absolute must be true or false, got {absolute[:40]!r}")
    if mde == 0:
        raise ValidationError("mde must not be 0")
    if not 0 < power < 1:
        raise ValidationError(f"power must be between 0 and 1, got {power!r}")
    if not 0 < lookback <= 3660:
        raise ValidationError(f"lookback_days must be between 0 and 3660, got {lookback!r}")
    return {
        "mde": mde,
        "relative": absolute not in ("true", "1"),
        "target_power": power,
        "lookback_days": lookback,
    }


def plan_page(
    context: DashboardContext, key: str, options: Mapping[str, Any], until: datetime | None = None
) -> dict[str, Any]:
    """``{"plan": <xp plan KEY --format json>}``."""
    from jobs.results.compute import experiment_plan
    from jobs.results.plan import plan_experiment

    spec = context.experiment(key)
    snapshot = context.registry.snapshot()
    answer = plan_experiment(
        context.warehouse,
        spec,
        experiment_plan(snapshot, spec),
        until=until or datetime.now(UTC),
        **options,
    )
    return {"plan": answer}
