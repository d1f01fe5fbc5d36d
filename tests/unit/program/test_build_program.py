"""The program view's pure roll-up (jobs/program.py): registry rows and snapshot rows in, the document out."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobs.program import build_program, parse_experiment_list, relative_lift_moments
from xpcore.errors import ValidationError

T0 = datetime(2026, 10, 1, tzinfo=UTC)


def change(key: str, day: float, status: str, **fields: Any) -> dict[str, Any]:
    return {
        "key": f"experiment:{key}",
        "change": fields.pop("change", "updated"),
        "changed_at": T0 + timedelta(days=day),
        "status": status,
        "name": key,
        "owner": fields.get("owner", ""),
        "decision": fields.get("decision", ""),
        "decision_variation": fields.get("variation", ""),
        "primary_metric": fields.get("metric", "conversion"),
        "variation_keys": fields.get("keys", ["a", "b"]),
    }


def snapshot(
    key: str, metric: str, conversions: list[int], *, units: int = 1000, lift: float = 0.1
) -> list[dict[str, Any]]:
    return [
        {
            "experiment_key": key,
            "computed_at": T0 + timedelta(days=30),
            "metric": metric,
            "metric_type": "binomial",
            "role": "primary",
            "method": "frequentist",
            "variation_id": i,
            "variation_key": "abc"[i],
            "units": units,
            "estimate": None if i == 0 else lift * i,
            "ci_low": None if i == 0 else lift * i - 0.05,
            "ci_high": None if i == 0 else lift * i + 0.05,
            "p_value": None if i == 0 else 0.01,
            "significant": i > 0,
            "error": "",
            "sum": float(c),
            "sum_squares": float(c),
            "denominator_sum": 0.0,
            "denominator_sum_squares": 0.0,
            "cross_sum": 0.0,
        }
        for i, c in enumerate(conversions)
    ]


CHANGES = [
    change("x", 0, "draft", change="created", owner="growth"),
    change("x", 2, "running", owner="growth"),
    change("x", 12, "stopped", owner="growth", decision="ship"),
    change("y", 1, "running", owner="growth"),
    change("y", 4, "stopped", owner="growth", decision="rollback"),
    change("z", 1, "running", owner="", keys=["a", "b", "c"]),
    change("z", 8, "stopped", owner="", decision="ship", variation="c"),
    change("w", 1, "running", owner="search"),  # still running: not in the program
    change("gone", 1, "stopped", owner="search"),
    change("gone", 3, "stopped", change="deleted"),
]
ROWS = [
    *snapshot("x", "conversion", [100, 120], lift=0.2),
    *snapshot("y", "conversion", [100, 95], lift=-0.05),
    *snapshot("z", "conversion", [100, 104, 130], lift=0.15),
    *snapshot("z", "revenue", [100, 104, 130]),
]


def test_finished_experiments_with_decisions_lifts_and_durations() -> None:
    document = build_program(CHANGES, ROWS)
    rows = {r["experiment"]: r for r in document["experiments"]}
    assert sorted(rows) == ["x", "y", "z"]
    assert [rows[k]["decision"] for k in "xyz"] == ["ship", "rollback", "ship"]
    assert [rows[k]["team"] for k in "xyz"] == ["growth", "growth", "unowned"]
    assert [rows[k]["duration_days"] for k in "xyz"] == [10.0, 3.0, 7.0]
    assert rows["z"]["variation"] == "c" and rows["z"]["lift"] == pytest.approx(0.30)
    assert rows["x"]["variation"] == "b" and rows["x"]["lift"] == pytest.approx(0.2)
    assert rows["z"]["units"] == 3000
    # the pooled lift is recomputed from the sums: 130/100 − 1 for z's chosen treatment
    assert rows["z"]["meta_lift"] == pytest.approx(0.30)
    assert rows["y"]["meta_lift"] == pytest.approx(-0.05)


def test_win_rate_and_lift_quartiles_per_team() -> None:
    teams = {t["team"]: t for t in build_program(CHANGES, ROWS)["teams"]}
    assert teams["growth"]["win_rate"] == 0.5 and teams["growth"]["decided"] == 2
    assert teams["unowned"]["win_rate"] == 1.0
    lifts = teams["growth"]["lift"]
    assert (lifts["min"], lifts["max"], lifts["count"]) == (pytest.approx(-0.05), pytest.approx(0.2), 2)
    assert lifts["median"] == pytest.approx(0.075) and lifts["p25"] == pytest.approx(0.0125)


def test_meta_analysis_pools_the_recomputed_lifts() -> None:
    meta = build_program(CHANGES, ROWS)["meta_analysis"]
    assert meta["metric"] == "conversion" and meta["included"] == ["x", "y", "z"]
    moments = [
        relative_lift_moments(c, t) for c, t in ((ROWS[0], ROWS[1]), (ROWS[2], ROWS[3]), (ROWS[4], ROWS[6]))
    ]
    assert all(isinstance(m, tuple) for m in moments)
    weights = [1 / m[1] ** 2 for m in moments]  # type: ignore[index]
    pooled = sum(w * m[0] for w, m in zip(weights, moments, strict=True)) / sum(weights)  # type: ignore[index]
    assert meta["fixed_effect"]["estimate"] == pytest.approx(pooled)
    assert meta["fixed_effect"]["standard_error"] == pytest.approx(1 / math.sqrt(sum(weights)))


def test_relative_lift_standard_error_is_the_delta_method() -> None:
    """p_a = 0.1, p_b = 0.12, n = 1000: Var = s_b²/(n p_a²) + p_b² s_a²/(n p_a⁴), s² = p(1−p)·n/(n−1)."""
    lift, se = relative_lift_moments(ROWS[0], ROWS[1])  # type: ignore[misc]
    s_a, s_b = 0.1 * 0.9 * 1000 / 999, 0.12 * 0.88 * 1000 / 999
    assert lift == pytest.approx(0.2)
    assert se == pytest.approx(math.sqrt(s_b / (1000 * 0.01) + 0.0144 * s_a / (1000 * 1e-4)))


def test_filters_team_metric_and_chosen_experiments() -> None:
    growth = build_program(CHANGES, ROWS, team="growth")
    assert [r["experiment"] for r in growth["experiments"]] == ["x", "y"]
    revenue = build_program(CHANGES, ROWS, metric="revenue")
    by_key = {r["experiment"]: r for r in revenue["experiments"]}
    assert by_key["x"]["error"] == "metric_not_analysed" and by_key["z"]["error"] is None
    assert revenue["meta_analysis"]["included"] == ["z"]
    assert {e["experiment"] for e in revenue["meta_analysis"]["excluded"]} == {"x", "y"}
    chosen = build_program(CHANGES, ROWS, experiments=["y", "x"])
    assert chosen["meta_analysis"]["included"] == ["x", "y"]
    with pytest.raises(ValidationError, match="not a finished experiment: w"):
        build_program(CHANGES, ROWS, experiments=["x", "w"])
    with pytest.raises(ValidationError, match="not a finished experiment: gone"):
        build_program(CHANGES, ROWS, experiments=["gone"])


def test_differing_primary_metrics_ask_for_one() -> None:
    changes = [
        *CHANGES,
        change("v", 1, "running", metric="revenue"),
        change("v", 2, "stopped", metric="revenue"),
    ]
    document = build_program(changes, ROWS)
    assert document["meta_analysis"] is None
    v = next(r for r in document["experiments"] if r["experiment"] == "v")
    assert v["decision"] == "undecided" and v["error"] == "no_results"


def test_experiment_lists_are_checked() -> None:
    assert parse_experiment_list(None) is None
    assert parse_experiment_list(" a, b ,a,") == ["a", "b"]
    for text, words in ((",", "at least one"), (",".join(["k"] * 501), "at most 500"), ("a,\x1b[1m", "keys")):
        with pytest.raises(ValidationError, match=words):
            parse_experiment_list(text)
    with pytest.raises(ValidationError, match="team must be a printable name"):
        build_program(CHANGES, ROWS, team="t" * 201)


def test_an_empty_program_is_a_document_not_an_error() -> None:
    document = build_program([change("w", 1, "running")], [])
    assert document["experiments"] == [] and document["teams"] == [] and document["meta_analysis"] is None


def test_a_quantile_metric_is_not_pooled() -> None:
    """Snapshots keep no sums of a quantile metric (decision 0083): its lift is not recomputed."""
    control, treatment = ({**row, "metric_type": "quantile"} for row in (ROWS[0], ROWS[1]))
    assert relative_lift_moments(control, treatment) == "quantile_metric"
