"""Multiple-comparison corrections over a family of p-values (metrics × variations).

Both return *adjusted* p-values in the input order: compare each with α as usual.

- Holm–Bonferroni (Holm 1979) controls the family-wise error rate: sort p ascending,
  ``p̃_(i) = max_{j ≤ i} min(1, (m − j + 1) · p_(j))``.
- Benjamini–Hochberg (1995) controls the false discovery rate: ``p̃_(i) = min_{j ≥ i} min(1, m · p_(j) / j)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from xpcore.errors import ValidationError

__all__ = ["benjamini_hochberg", "holm_bonferroni"]


def _check(p_values: Sequence[float]) -> None:
    for p in p_values:
        if not (isinstance(p, int | float) and math.isfinite(p) and 0 <= p <= 1):
            raise ValidationError(f"p-values must lie in [0, 1], got {p!r}")


def holm_bonferroni(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate)."""
    _check(p_values)
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg step-up adjusted p-values (false discovery rate)."""
    _check(p_values)
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 1.0
    for rank in range(m - 1, -1, -1):
        index = order[rank]
        running = min(running, m * p_values[index] / (rank + 1))
        adjusted[index] = min(1.0, running)
    return adjusted
