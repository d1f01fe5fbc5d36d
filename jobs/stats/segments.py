"""Segment breakdowns: keep the top N values of a dimension, fold the rest into "other".

Because sufficient statistics add up, "other" is exact: it is the statistic of the units in the folded
segments, not an approximation. Segments are ranked by total units across variations (ties by name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import reduce
from typing import Any, TypeVar

from xpcore.errors import ValidationError

__all__ = ["top_segments"]

S = TypeVar("S")


def _add(left: Any, right: Any) -> Any:
    return left + right


def top_segments(
    by_segment: Mapping[str, Sequence[S]],
    top_n: int,
    *,
    other_label: str = "other",
) -> dict[str, tuple[S, ...]]:
    """The ``top_n`` largest segments (per-variation statistics, control first) plus ``other_label``.

    ``other_label`` appears only when some segment was folded. Every segment must list the same number
    of variations, and ``other_label`` must not already be a segment value.
    """
    if top_n < 0:
        raise ValidationError(f"top_n must be >= 0, got {top_n}")
    if other_label in by_segment:
        raise ValidationError(f"segment value {other_label!r} collides with the label for folded segments")
    widths = {len(stats) for stats in by_segment.values()}
    if len(widths) > 1:
        raise ValidationError(f"segments list different numbers of variations: {sorted(widths)}")

    def units(item: tuple[str, Sequence[S]]) -> tuple[int, str]:
        return (-sum(int(getattr(s, "n", 0)) for s in item[1]), item[0])

    ranked = sorted(by_segment.items(), key=units)
    kept = {name: tuple(stats) for name, stats in ranked[:top_n]}
    folded = [stats for _, stats in ranked[top_n:]]
    if folded:
        kept[other_label] = tuple(reduce(_add, column) for column in zip(*folded, strict=True))
    return kept
