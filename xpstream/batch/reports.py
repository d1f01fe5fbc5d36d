"""What a batch job returns: a report with ``ok``, ``summary()`` and ``to_json()``.

ETL (:class:`jobs.etl.EtlReport`), lake (:class:`jobs.lake.LakeReport`) and quality
(:class:`quality.run.QualityRun`) return one themselves; the stats and unit-values jobs return their
results, which :class:`StatsReport` and :class:`UnitValuesReport` wrap here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from jobs.results.contract import ExperimentAnalysis
    from jobs.unit_values.job import RefresherRun

__all__ = ["JobReport", "StatsReport", "UnitValuesReport"]


class JobReport(Protocol):
    """What one run of a batch job did. A job that could not do its work raises instead."""

    @property
    def ok(self) -> bool:
        """False when the job ran but found problems (only quality's checks can); `--strict` fails then."""
        ...

    def summary(self) -> str:
        """What the job did, for people: one or more lines, without a trailing newline."""
        ...

    def to_json(self) -> dict[str, Any]:
        """What the job did, for machines."""
        ...


@dataclass(frozen=True)
class StatsReport:
    """`xp jobs run stats`: the results stored as one ``xp.results`` snapshot."""

    results: tuple[ExperimentAnalysis, ...]

    @property
    def ok(self) -> bool:
        return True

    def summary(self) -> str:
        if not self.results:
            return "stats: no running experiment"
        lines = []
        for result in self.results:
            significant = sum(
                1
                for metric in result.metrics
                for variant in metric.variants
                if variant.to_json()["significant"]
            )
            units = sum(v.units for v in result.metrics[0].variants) if result.metrics else 0
            srm = "" if not result.srm_flagged else " · SRM WARNING"
            lines.append(
                f"stats: {result.experiment}: {units} units, {len(result.metrics)} metrics, "
                f"{significant} significant lifts ({result.method}){srm}"
            )
        lines.append(f"stats: stored in xp.results at {self.results[0].computed_at.isoformat()}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"results": [result.to_json() for result in self.results]}


@dataclass(frozen=True)
class UnitValuesReport:
    """`xp jobs run unit-values`: which experiments' unit values were refreshed, and any compaction."""

    run: RefresherRun

    @property
    def ok(self) -> bool:
        return True

    def summary(self) -> str:
        lines = []
        if not self.run.refreshed:
            lines.append(
                "unit-values: nothing to refresh (no running experiment, or XP_RESULTS_UNIT_VALUES=false)"
            )
        for item in self.run.refreshed:
            what = "full build" if item.refresh.full else f"{item.refresh.units} units recomputed"
            took = f"{item.refresh.seconds:.2f} s"
            lines.append(f"unit-values: {item.experiment} ({item.plan.key}): {what} in {took}")
        merged = self.run.compaction
        if merged is not None and merged.compacted:
            lines.append(
                f"unit-values: compacted {merged.rows} rows ({merged.parts} parts) in {merged.seconds:.2f} s"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        merged = self.run.compaction
        return {
            "refreshed": [
                {
                    "experiment": item.experiment,
                    "plan_key": item.plan.key,
                    "full": item.refresh.full,
                    "units": item.refresh.units,
                    "seconds": item.refresh.seconds,
                }
                for item in self.run.refreshed
            ],
            "compaction": None
            if merged is None
            else {
                "compacted": merged.compacted,
                "rows": merged.rows,
                "parts": merged.parts,
                "seconds": merged.seconds,
            },
        }
