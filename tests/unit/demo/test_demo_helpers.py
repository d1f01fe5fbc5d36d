"""The demo's pure helpers: the seed it picks on a store that already holds a run, the CUPED lines."""

from __future__ import annotations

from typing import Any

from xpstream.demo import DEFAULT_SEED, cuped_lines, free_seed, interval_widths


def _document(widths: dict[str, list[float | None]], applied: set[str]) -> dict[str, Any]:
    return {
        "metrics": [
            {
                "metric": name,
                "cuped": {"applied": name in applied},
                "variants": [{"ci_low": None, "ci_high": None}]
                + [
                    {"ci_low": None if w is None else -w / 2, "ci_high": None if w is None else w / 2}
                    for w in spans
                ],
            }
            for name, spans in widths.items()
        ]
    }


def test_a_fresh_store_gets_the_fixed_seed_and_a_used_one_the_next_free() -> None:
    assert free_seed(DEFAULT_SEED, set()) == DEFAULT_SEED == 42
    assert free_seed(42, {7, 42, 43}) == 44
    assert free_seed(42, {41}) == 42


def test_interval_widths_average_the_treatments_and_skip_open_intervals() -> None:
    document = _document({"conversion": [0.2, 0.4], "open": [None]}, set())
    assert interval_widths(document) == {"conversion": 0.30000000000000004}


def test_cuped_lines_name_adjusted_metrics_with_their_narrowing_or_widening() -> None:
    with_cuped = _document({"pageviews": [0.08], "revenue": [0.44], "ratio": [0.1]}, {"pageviews", "revenue"})
    without = _document({"pageviews": [0.12], "revenue": [0.40], "ratio": [0.2]}, set())
    lines = cuped_lines(with_cuped, without)
    assert len(lines) == 2  # the ratio metric was not adjusted: no line
    assert "pageviews" in lines[0] and "12.0% → 8.0%" in lines[0] and "(33% narrower)" in lines[0]
    assert "revenue" in lines[1] and "(10% wider)" in lines[1]
