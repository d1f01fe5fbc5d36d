"""An experiment's analysis as flat rows: one per metric × variation, the JSON contract's numbers and names.

What `xp results --format csv` prints and the analyst client (``xpstream.connect().results``) returns. Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.results.contract import ExperimentAnalysis

__all__ = ["ADJUSTMENT_COLUMNS", "CSV_COLUMNS", "csv_columns", "csv_rows"]


CSV_COLUMNS = [
    "experiment",
    "segment",
    "metric",
    "type",
    "role",
    "variation_id",
    "key",
    "name",
    "units",
    "mean",
    "estimate",
    "ci_low",
    "ci_high",
    "p_value",
    "p_value_adjusted",
    "chance_to_win",
    "significant",
    "error",
    "method",
    "alpha",
    "srm_p_value",
    "computed_at",
    "data_as_of",
]
"""`xp results --format csv`: one row per metric × variation (the JSON's numbers, flat), segments after."""


ADJUSTMENT_COLUMNS = ("adjustment_applied", "variance_reduction")
"""Added after :data:`CSV_COLUMNS` when the plan declares a regression adjustment (decision 0093): the
metric's (whole experiment; empty in segment rows, which are not adjusted)."""


def csv_columns(result: ExperimentAnalysis) -> tuple[str, ...]:
    """The header of ``--format csv``: :data:`CSV_COLUMNS`, plus the adjustment's when one is declared."""
    declared = result.plan is not None and result.plan.adjustment is not None
    return (*CSV_COLUMNS, *ADJUSTMENT_COLUMNS) if declared else tuple(CSV_COLUMNS)


def csv_rows(result: ExperimentAnalysis) -> list[dict[str, Any]]:
    """The rows of ``--format csv``: the whole experiment (segment empty), then each segment's."""
    document = result.to_json()
    common = {k: document[k] for k in ("experiment", "method", "alpha", "computed_at", "data_as_of")}
    parts = [("", document["srm_p_value"], document["metrics"])]
    if document["segments"] is not None:
        parts += [(s["segment"], s["srm_p_value"], s["metrics"]) for s in document["segments"]["values"]]
    rows = []
    for segment, srm, metrics in parts:
        for metric in metrics:
            for variant in metric["variants"]:
                rows.append(
                    {
                        **common,
                        "segment": segment,
                        "srm_p_value": srm,
                        "metric": metric["metric"],
                        "type": metric["type"],
                        "role": metric["role"],
                        **{c: variant[c] for c in CSV_COLUMNS if c in variant},
                        **_adjustment(metric),
                    }
                )
    return rows


def _adjustment(metric: dict[str, Any]) -> dict[str, Any]:
    adjustment = metric.get("adjustment")
    if adjustment is None:
        return {}
    return {
        "adjustment_applied": adjustment["applied"],
        "variance_reduction": adjustment["variance_reduction"],
    }
