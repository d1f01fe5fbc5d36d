"""Checks of test settings at the boundary: a bad setting is a ValidationError, never a silent default."""

from __future__ import annotations

import math

from xpcore.errors import ValidationError

__all__ = ["check_alpha", "check_positive"]


def check_alpha(alpha: float) -> None:
    """α must lie strictly between 0 and 1."""
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and 0 < alpha < 1):
        raise ValidationError(f"alpha must be between 0 and 1 (exclusive), got {alpha!r}")


def check_positive(name: str, value: float) -> None:
    """A finite, strictly positive number."""
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise ValidationError(f"{name} must be a positive number, got {value!r}")
