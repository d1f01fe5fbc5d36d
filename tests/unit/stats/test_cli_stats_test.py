"""`xp stats test`: through a real subprocess for a JSON file, a .jsonl file (order kept) and invalid files;
the many ways to be invalid are checked in-process on the same parser (each subprocess costs ~2.5 s here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from jobs.stats.contract import analyze_request, parse_request
from xpcore.errors import ValidationError

BINOMIAL: dict[str, Any] = {
    "metric_type": "binomial",
    "difference": "relative",
    "method": "frequentist",
    "alpha": 0.05,
    "weights": [0.5, 0.5],
    "variants": [
        {"name": "control", "n": 1000, "sum": 100, "sum_squares": 100},
        {"name": "treatment", "n": 1000, "sum": 130, "sum_squares": 130},
    ],
}
RATIO: dict[str, Any] = {
    "metric_type": "ratio",
    "difference": "absolute",
    "method": "sequential",
    "alpha": 0.05,
    "weights": [1, 1, 1],
    "variants": [
        {
            "name": name,
            "n": 500,
            "numerator": {"sum": s, "sum_squares": s * 3},
            "denominator": {"sum": 1000, "sum_squares": 2500},
            "cross_sum": s * 2.4,
        }
        for name, s in (("control", 300.0), ("b", 330.0), ("c", 290.0))
    ],
}
CUPED_BAYES: dict[str, Any] = {
    "metric_type": "mean",
    "difference": "relative",
    "method": "bayesian",
    "alpha": 0.1,
    "weights": [0.5, 0.5],
    "cuped": True,
    "variants": [
        {
            "name": "control",
            "n": 400,
            "sum": 4000,
            "sum_squares": 50000,
            "covariate": {"sum": 3800, "sum_squares": 45000},
            "cross_sum": 46000,
        },
        {
            "name": "treatment",
            "n": 410,
            "sum": 4300,
            "sum_squares": 56000,
            "covariate": {"sum": 3900, "sum_squares": 46200},
            "cross_sum": 50000,
        },
    ],
}


def run_stats(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "stats", "test", "--input", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_file_gives_the_contract_fields(tmp_path: Path) -> None:
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(BINOMIAL, indent=2))
    result = run_stats(path, "--format", "json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["srm_p_value"] == pytest.approx(1.0)
    control, treatment = answer["variants"]
    assert control == {"name": "control", "n": 1000, "mean": 0.1, "error": None}
    assert treatment["name"] == "treatment" and treatment["mean"] == pytest.approx(0.13)
    assert treatment["estimate"] == pytest.approx(0.3)
    assert treatment["ci_low"] < 0.3 < treatment["ci_high"]
    assert 0 < treatment["p_value"] < 1 and treatment["chance_to_win"] is None and treatment["error"] is None


def test_jsonl_file_gives_one_line_per_input_line_in_order(tmp_path: Path) -> None:
    empty_arm = {"name": "empty", "n": 0, "sum": 0, "sum_squares": 0}
    requests: list[dict[str, Any]] = [
        RATIO,
        BINOMIAL,
        CUPED_BAYES,
        {**BINOMIAL, "method": "sequential"},
        {**BINOMIAL, "variants": [BINOMIAL["variants"][0], empty_arm]},
    ]
    path = tmp_path / "batch.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in requests) + "\n")
    result = run_stats(path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(requests)
    answers = [json.loads(line) for line in lines]
    assert [a["metric_type"] for a in answers] == ["ratio", "binomial", "mean", "binomial", "binomial"]
    assert [a["method"] for a in answers] == [
        "sequential",
        "frequentist",
        "bayesian",
        "sequential",
        "frequentist",
    ]
    assert [v["name"] for v in answers[0]["variants"]] == ["control", "b", "c"]
    assert answers[2]["variants"][1]["chance_to_win"] is not None
    assert answers[2]["variants"][1]["p_value"] is None
    assert answers[3]["variants"][1]["p_value"] > answers[1]["variants"][1]["p_value"]
    assert answers[4]["variants"][1]["error"] == "empty_variation"
    assert answers[4]["variants"][1]["estimate"] is None


def test_invalid_jsonl_fails_with_one_line_naming_line_and_field(tmp_path: Path) -> None:
    bad = {
        **BINOMIAL,
        "variants": [BINOMIAL["variants"][0], {"name": "t", "n": 10, "sum": 3, "sum_squares": 2}],
    }
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(BINOMIAL) + "\n" + json.dumps(bad) + "\n")
    result = run_stats(path)
    assert result.returncode == 2
    assert result.stdout == ""  # nothing is printed before every line has been validated
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ")
    assert (
        "bad.jsonl line 2: field variants[1] (t): binomial metric needs sum == sum_squares" in result.stderr
    )


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_stats(tmp_path / "nope.json")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "nope.json" in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"metric_type": "binomial"', "x: invalid JSON at column 27"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({**BINOMIAL, "alpha": float("nan")}), "x: invalid JSON: NaN is not a number JSON allows"),
        (json.dumps({**BINOMIAL, "alpha": 2}), "field alpha:"),
        (json.dumps({**BINOMIAL, "metric_type": "median"}), "field metric_type:"),
        (
            json.dumps({k: v for k, v in BINOMIAL.items() if k != "variants"}),
            "field variants: required field is missing",
        ),
        (json.dumps({**BINOMIAL, "variants": [BINOMIAL["variants"][0]]}), "field variants:"),
        (
            json.dumps(
                {
                    **BINOMIAL,
                    "variants": [BINOMIAL["variants"][0], {"name": "t", "n": -1, "sum": 0, "sum_squares": 0}],
                }
            ),
            "field variants[1].n:",
        ),
        (
            json.dumps(
                {
                    **BINOMIAL,
                    "variants": [
                        BINOMIAL["variants"][0],
                        {"name": "t", "n": 10, "sum": 11, "sum_squares": 11},
                    ],
                }
            ),
            "field variants[1] (t): conversions must be between 0 and n",
        ),
        (
            json.dumps(
                {
                    **BINOMIAL,
                    "metric_type": "mean",
                    "variants": [
                        BINOMIAL["variants"][0],
                        {"name": "t", "n": 10, "sum": 10, "sum_squares": 1},
                    ],
                }
            ),
            "field variants[1] (t): sum_squares (1.0) is smaller than sum²/n",
        ),
        (
            json.dumps({**RATIO, "variants": [{**v, "cross_sum": 1e9} for v in RATIO["variants"]]}),
            "cross_sum is inconsistent",
        ),
        (
            json.dumps(
                {
                    **RATIO,
                    "variants": [{k: v for k, v in r.items() if k != "cross_sum"} for r in RATIO["variants"]],
                }
            ),
            "field variants[0] (control): ratio metric needs cross_sum",
        ),
        (json.dumps({**BINOMIAL, "weights": [0.5, 0.3, 0.2]}), "field weights: 3 entries for 2 variants"),
        (json.dumps({**BINOMIAL, "weights": [1, 0]}), "field weights: must be positive"),
        (
            json.dumps({**BINOMIAL, "cuped": True}),
            "field variants[0] (control): binomial metric needs covariate, cross_sum",
        ),
        (
            json.dumps({**CUPED_BAYES, "cuped": False}),
            "covariate, cross_sum not allowed for a mean metric (set cuped: true",
        ),
        (json.dumps({**RATIO, "cuped": True}), "field cuped: supported for binomial and mean metrics"),
        (
            json.dumps({**BINOMIAL, "prior": {"mean": 0, "variance": 1}}),
            "field prior: applies to method 'bayesian' only",
        ),
        (json.dumps({**BINOMIAL, "variants": [BINOMIAL["variants"][0]] * 2}), "names must be unique"),
        (json.dumps({**BINOMIAL, "extra": 1}), "field extra: unknown field"),
        (
            json.dumps({**BINOMIAL, "method": "group_sequential_obf"}),
            "field planned_units: method group_sequential_obf needs the planned units",
        ),
        (json.dumps({**BINOMIAL, "planned_units": 0}), "field planned_units:"),
        (json.dumps({**BINOMIAL, "planned_units": 1e400}), "x: invalid JSON: Infinity"),
        (json.dumps({**BINOMIAL, "planned_looks": 0}), "field planned_looks:"),
        (json.dumps({**BINOMIAL, "planned_looks": 10**9}), "field planned_looks:"),
        (json.dumps({**BINOMIAL, "planned_looks": 2.5}), "field planned_looks:"),
        (json.dumps({**BINOMIAL, "relative_interval": "log"}), "field relative_interval:"),
        (json.dumps({**BINOMIAL, "method": "group_sequential"}), "field method:"),
    ],
)
def test_invalid_requests_name_the_field(content: str, expected: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse_request(content, "x")
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_bayesian_prior_and_direction_are_honoured() -> None:
    request, statistics = parse_request(
        json.dumps({**CUPED_BAYES, "higher_is_better": False, "prior": {"mean": 0, "variance": 0.0001}}), "x"
    )
    answer = analyze_request(request, statistics)
    flat_request, flat_statistics = parse_request(json.dumps(CUPED_BAYES), "x")
    flat = analyze_request(flat_request, flat_statistics)
    assert abs(answer["variants"][1]["estimate"]) < abs(flat["variants"][1]["estimate"])
    assert answer["variants"][1]["chance_to_win"] < 0.5 < flat["variants"][1]["chance_to_win"]


@pytest.mark.parametrize("method", ["group_sequential_obf", "group_sequential_pocock"])
def test_group_sequential_requests_use_the_planned_looks(method: str) -> None:
    """2,000 of 4,000 planned units (t = 0.5): with 4 planned looks this is look 2 (after one at 0.25),
    with 1 planned look it is the only look so far."""
    answers = {}
    for looks in (4, 1):
        request, statistics = parse_request(
            json.dumps({**BINOMIAL, "method": method, "planned_units": 4000, "planned_looks": looks}), "x"
        )
        answers[looks] = analyze_request(request, statistics)["variants"][1]
    # both have spent α(0.5) by now; with four looks part of it went to the look at 0.25, so the boundary
    # (and the interval) at 0.5 is wider
    assert answers[4]["ci_high"] - answers[4]["ci_low"] > answers[1]["ci_high"] - answers[1]["ci_low"]
    assert answers[4]["significant"] == (answers[4]["p_value"] < 0.05)


def test_relative_interval_delta_gives_the_former_symmetric_interval() -> None:
    request, statistics = parse_request(json.dumps({**BINOMIAL, "relative_interval": "delta"}), "x")
    delta = analyze_request(request, statistics)["variants"][1]
    fieller = analyze_request(*parse_request(json.dumps(BINOMIAL), "x"))["variants"][1]
    assert delta["estimate"] - delta["ci_low"] == pytest.approx(delta["ci_high"] - delta["estimate"])
    assert fieller["ci_high"] - fieller["estimate"] > fieller["estimate"] - fieller["ci_low"]
    assert (delta["significant"], fieller["significant"]) == (False, True)  # p 0.066 vs 0.036
