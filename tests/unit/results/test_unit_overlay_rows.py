"""Adding the read rows of two disjoint sets of units (decision 0100: the overlaid units and the units
recomputed inside the read) per segment and variation."""

from __future__ import annotations

from typing import Any

from jobs.unit_values import add_rows


def row(segment: str, variation: int, units: int, sums: list[float], **extra: Any) -> dict[str, Any]:
    squares = [s * 2 for s in sums]
    return {"segment": segment, "variation_id": variation, "units": units, "sums": sums,
            "squares": squares, "crosses": [], **extra}  # fmt: skip


def test_rows_of_the_same_cell_are_added_and_others_kept_in_read_order() -> None:
    left = [row("", 0, 3, [1.0, 2.0]), row("us", 1, 2, [0.5, 0.0])]
    right = [row("us", 1, 1, [2.0, 4.0]), row("de", 0, 4, [1.0, 1.0])]
    merged = add_rows(left, right)
    assert [(r["segment"], r["variation_id"], r["units"]) for r in merged] == [
        ("", 0, 3),
        ("de", 0, 4),
        ("us", 1, 3),
    ]
    assert merged[2]["sums"] == [2.5, 4.0] and merged[2]["squares"] == [5.0, 8.0]
    assert left[1]["units"] == 2  # the inputs are not changed


def test_covariate_columns_are_added_too() -> None:
    a = row("", 2, 1, [1.0], covariate_sums=[3.0], covariate_squares=[9.0], covariate_crosses=[3.0],
            covariate_units=[1])  # fmt: skip
    b = row("", 2, 2, [0.0], covariate_sums=[1.0], covariate_squares=[1.0], covariate_crosses=[0.0],
            covariate_units=[1])  # fmt: skip
    [merged] = add_rows([a], [b])
    assert merged["units"] == 3 and merged["covariate_sums"] == [4.0] and merged["covariate_units"] == [2]
