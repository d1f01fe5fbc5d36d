"""The rules of an experiment's ``funnel:`` block, declared once (issue #20, decision 0069).

A funnel is an ordered list of event names after the unit's first exposure, e.g.::

    funnel:
      steps: [pageview, add_to_cart, purchase]   # a leading "exposure" may be written; it is implicit
      window: 24h                                # after the first exposure (default: 72h, the metric default)
      ordered: true                              # steps must happen in this order (default)

The YAML registry (:mod:`assignment.authoring`) validates the block with :class:`FunnelBlock` and stores
it in the experiment's metadata (``{"steps", "window_hours", "ordered"}``); ``xp funnel`` and the
dashboards read it back with :func:`funnel_from_metadata` and may override each field. Every funnel,
declared or given on the command line, is checked by :func:`funnel_problem`, so the words that explain a
bad value live here only.

Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from assignment.metrics_catalog import DEFAULT_WINDOW_HOURS, parse_window_hours
from xpcore.errors import ValidationError

__all__ = [
    "EXPOSURE_STEP",
    "FUNNEL_FIELDS",
    "FUNNEL_PROBLEMS",
    "MAX_FUNNEL_STEPS",
    "Funnel",
    "FunnelBlock",
    "funnel_from_metadata",
    "funnel_problem",
    "funnel_with_overrides",
    "make_funnel",
]

EXPOSURE_STEP: Final = "exposure"
"""The implicit first step: every unit that counts (one variation, never overridden) was exposed."""
MAX_FUNNEL_STEPS: Final = 20
"""At most this many event steps (each is one condition of ClickHouse's ``windowFunnel``)."""
FUNNEL_FIELDS: Final = ("steps", "window", "ordered")
"""The block's fields, in the order error messages list them."""

FUNNEL_PROBLEMS: Final[dict[str, str]] = {
    "steps": f"must be a list of 1 to {MAX_FUNNEL_STEPS} distinct event names, e.g. [pageview, purchase]",
    "window": "must be hours (a number > 0) or a duration like 24h, 3d, 90m",
    "ordered": "must be true or false",
}
"""What is wrong with a bad value of each field (the YAML errors and ``xp funnel`` both say it)."""


def _event_steps(value: Any) -> Any:
    """Drop a leading ``exposure`` (the implicit first step); refuse blanks, repeats and too many."""
    if not isinstance(value, list) or not all(isinstance(step, str) for step in value):
        raise ValueError(FUNNEL_PROBLEMS["steps"])
    steps = [step.strip() for step in value]
    if steps[:1] == [EXPOSURE_STEP]:
        steps = steps[1:]
    if not 1 <= len(steps) <= MAX_FUNNEL_STEPS or "" in steps or len(set(steps)) != len(steps):
        raise ValueError(FUNNEL_PROBLEMS["steps"])
    if EXPOSURE_STEP in steps:
        raise ValueError(f"{EXPOSURE_STEP!r} may only be the first step (it is implicit)")
    return steps


def _window_hours(value: Any) -> Any:
    try:
        hours = parse_window_hours(value)
    except ValueError:
        raise ValueError(FUNNEL_PROBLEMS["window"]) from None
    if hours is None:
        raise ValueError(FUNNEL_PROBLEMS["window"])
    return hours


class FunnelBlock(BaseModel):
    """An experiment's ``funnel:`` block (strict: ``ordered: 'yes'`` is refused, unknown fields too)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    steps: list[str] = Field(min_length=1)
    """Event names, in funnel order (a leading ``exposure`` is dropped: it is the implicit first step)."""
    window: float = DEFAULT_WINDOW_HOURS
    """Hours after the unit's first exposure within which every step must happen."""
    ordered: bool = True
    """Steps must happen in order (ClickHouse ``windowFunnel``); false: each at any time in the window."""

    @pydantic.field_validator("steps", mode="before")
    @classmethod
    def _checked_steps(cls, value: Any) -> Any:
        return _event_steps(value)

    @pydantic.field_validator("window", mode="before")
    @classmethod
    def _checked_window(cls, value: Any) -> Any:
        return _window_hours(value)

    def stored(self) -> dict[str, Any]:
        """The block as the registry stores it in the experiment's metadata."""
        return {"steps": list(self.steps), "window_hours": self.window, "ordered": self.ordered}


@dataclass(frozen=True, slots=True)
class Funnel:
    """A checked funnel: what ``xp funnel`` computes."""

    steps: tuple[str, ...]
    """Event names after the implicit ``exposure`` step."""
    window_hours: float = DEFAULT_WINDOW_HOURS
    ordered: bool = True

    @property
    def window_seconds(self) -> float:
        return self.window_hours * 3600.0


def funnel_problem(steps: Sequence[Any], window: Any, ordered: Any) -> tuple[str, str] | None:
    """The first field of these funnel settings that breaks a rule and what is wrong; None if valid."""
    try:
        FunnelBlock.model_validate({"steps": list(steps), "window": window, "ordered": ordered})
    except pydantic.ValidationError as error:
        first = error.errors(include_url=False)[0]
        field = str(first["loc"][0]) if first["loc"] else "steps"
        message = str(first.get("ctx", {}).get("error", "")) or FUNNEL_PROBLEMS.get(field, first["msg"])
        return field, message
    return None


def make_funnel(steps: Sequence[Any], window: Any = DEFAULT_WINDOW_HOURS, ordered: Any = True) -> Funnel:
    """A :class:`Funnel` from raw values (CLI flags, stored metadata); ValidationError ``field: problem``."""
    problem = funnel_problem(steps, window, ordered)
    if problem is not None:
        raise ValidationError(f"funnel: {problem[0]}: {problem[1]}")
    block = FunnelBlock.model_validate({"steps": list(steps), "window": window, "ordered": ordered})
    return Funnel(tuple(block.steps), block.window, block.ordered)


def funnel_from_metadata(metadata: Mapping[str, Any] | None) -> Funnel | None:
    """The funnel stored in an experiment's metadata (``metadata["funnel"]``), None when it declares none."""
    raw = (metadata or {}).get("funnel")
    if not isinstance(raw, Mapping):
        return None
    return make_funnel(
        raw.get("steps", []), raw.get("window_hours", DEFAULT_WINDOW_HOURS), raw.get("ordered", True)
    )


def funnel_with_overrides(
    declared: Funnel | None,
    *,
    steps: Sequence[str] | None = None,
    window: Any = None,
    ordered: bool | None = None,
    experiment: str = "",
) -> Funnel:
    """The declared funnel with every given (not None) value on top (``xp funnel``'s flags, the funnel
    API's parameters); without a declared funnel, ``steps`` is required (ValidationError otherwise)."""
    if declared is None and steps is None:
        raise ValidationError(
            f"experiment {experiment!r} declares no funnel: give its steps, e.g. --steps pageview,purchase"
        )
    base = declared or Funnel(())
    return make_funnel(
        list(steps) if steps is not None else list(base.steps),
        window if window is not None else base.window_hours,
        ordered if ordered is not None else base.ordered,
    )
