"""An experiment's analysis as flat rows: one per metric × variation, the JSON contract's numbers and names.

What `xp results --format csv` prints and the analyst client (``xpstream.connect().results``) returns. Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.results.contract import ExperimentAnalysis

__all__ = ["CSV_COLUMNS", "csv_rows"]


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
                    }
                )
    return rows
