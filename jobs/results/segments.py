"""Segment breakdowns of experiment results: ``xp results KEY --segment DIMENSION [--top N]``.

A segment is a value of one exposure attribute (``Exposure.attributes[DIMENSION]`` of the unit's first
exposure; :mod:`jobs.results.metric_sql`). The ``top`` segments with the most units
are analysed one by one, every other value is folded into ``"other"`` (exact: sums add up,
:func:`jobs.stats.top_segments`), and units without the attribute form the segment ``"(none)"``.
Each segment is analysed like the whole experiment (same method, α and correction within the segment,
SRM against the weights) but without CUPED: segments are read-outs, not the decision (decision 0014).

Pure; the warehouse side is :func:`jobs.results.sums.fetch_segment_sums`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from assignment.analysis_block import GROUP_SEQUENTIAL_METHODS
from assignment.metrics_catalog import MetricType
from jobs.analysis_plan import AnalysisPlan
from jobs.results.analysis import analyze_experiment, analyzed_metrics
from jobs.results.contract import ExperimentAnalysis
from jobs.results.rows import SegmentRows, VariationSums
from jobs.stats import top_segments
from xpcore.errors import ValidationError

__all__ = [
    "DEFAULT_TOP",
    "MISSING_LABEL",
    "OTHER_LABEL",
    "SegmentBreakdown",
    "SegmentResult",
    "SegmentRows",
    "analyze_segments",
    "fold_segments",
]

DEFAULT_TOP = 10
OTHER_LABEL = "other"
MISSING_LABEL = "(none)"
"""The segment of units whose first exposure does not carry the attribute."""


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """The results of the units of one segment."""

    segment: str
    units: int
    result: ExperimentAnalysis

    def to_json(self) -> dict[str, Any]:
        document = self.result.to_json()
        return {
            "segment": self.segment,
            "units": self.units,
            "srm_p_value": document["srm_p_value"],
            "srm_error": document["srm_error"],
            "metrics": document["metrics"],
        }


@dataclass(frozen=True, slots=True)
class SegmentBreakdown:
    """Every kept segment, largest first, then ``"other"`` (if anything was folded)."""

    dimension: str
    top: int
    segments: tuple[SegmentResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "top": self.top,
            "other_label": OTHER_LABEL,
            "values": [s.to_json() for s in self.segments],
        }


def _by_segment(rows: SegmentRows, ids: Sequence[int]) -> dict[str, list[VariationSums]]:
    """Segment label → one VariationSums per variation id (missing → empty), in ``ids`` order."""
    found: dict[str, dict[int, VariationSums]] = {}
    for value, row in rows:
        label = value if value != "" else MISSING_LABEL
        cell = found.setdefault(label, {})
        cell[row.variation_id] = cell[row.variation_id] + row if row.variation_id in cell else row
    return {label: [cell.get(i, VariationSums(i, 0)) for i in ids] for label, cell in found.items()}


def fold_segments(
    rows_by_metric: Mapping[str, SegmentRows], metric_names: Sequence[str], ids: Sequence[int], top: int
) -> dict[str, dict[str, list[VariationSums]]]:
    """Segment label → metric name → per-variation sums, for the ``top`` largest segments and "other".

    Segments are ranked by units (ties by value) on the first metric: every metric has the same units.
    """
    if top < 1:
        raise ValidationError(f"--top must be >= 1, got {top}")
    if not metric_names:
        return {}
    per_metric = {name: _by_segment(rows_by_metric.get(name, ()), ids) for name in metric_names}
    first = per_metric[metric_names[0]]
    other = OTHER_LABEL if OTHER_LABEL not in first else f"({OTHER_LABEL})"
    kept = [label for label in top_segments(first, top, other_label=other) if label != other]
    folded: dict[str, dict[str, list[VariationSums]]] = {label: {} for label in kept}
    has_other = len(first) > len(kept)
    if has_other:
        folded[other] = {}
    for name, segments in per_metric.items():
        for label in kept:
            folded[label][name] = segments.get(label, [VariationSums(i, 0) for i in ids])
        if has_other:
            rest = [sums for label, sums in segments.items() if label not in kept]
            total = [VariationSums(i, 0) for i in ids]
            for sums in rest:
                total = [a + b for a, b in zip(total, sums, strict=True)]
            folded[other][name] = total
    return folded


def analyze_segments(
    experiment: Any,
    rows_by_metric: Mapping[str, SegmentRows],
    *,
    dimension: str,
    top: int,
    plan: AnalysisPlan,
    computed_at: datetime,
    since: datetime,
    until: datetime,
) -> SegmentBreakdown:
    """The breakdown of ``experiment`` by ``dimension`` (no CUPED within segments; quantile metrics are not
    broken down, decision 0083: the segments are ranked on the first summed metric)."""
    names = [m.name for m, _ in analyzed_metrics(experiment) if m.type is not MetricType.QUANTILE]
    ids = [v.id for v in experiment.variations]
    segment_plan = replace(plan, cuped=False)
    folded = fold_segments(rows_by_metric, names, ids, top)
    fraction = None  # group-sequential: every segment is judged at the whole experiment's look
    if plan.method in GROUP_SEQUENTIAL_METHODS and plan.planned_units and names:
        everyone = sum(row.units for sums in folded.values() for row in sums[names[0]])
        fraction = everyone / plan.planned_units
    results = []
    for label, sums in folded.items():
        result = analyze_experiment(
            experiment,
            sums,
            computed_at=computed_at,
            since=since,
            until=until,
            plan=segment_plan,
            information_fraction=fraction,
        )
        units = sum(row.units for row in sums[names[0]]) if names else 0
        results.append(SegmentResult(label, units, result))
    return SegmentBreakdown(dimension, top, tuple(results))
