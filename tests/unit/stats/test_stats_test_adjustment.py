"""`xp stats test` with a regression adjustment (``covariates``): the CLI, the numbers, hostile inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs.stats.contract import analyze_request, parse_request
from tests.unit.stats.test_regression_adjustment import _units
from xpcore.errors import ValidationError

NAMES = ["pre_value", "pre_other", "country=DE", "country=FR", "device=ios"]


def _variant(name: str, y: np.ndarray, x: np.ndarray) -> dict[str, Any]:
    return {
        "name": name,
        "n": len(y),
        "sum": float(y.sum()),
        "sum_squares": float(y @ y),
        "covariate_sums": [float(v) for v in x.sum(axis=0)],
        "covariate_crosses": [[float(v) for v in row] for row in x.T @ x],
        "metric_crosses": [float(v) for v in x.T @ y],
    }


def _request() -> tuple[dict[str, Any], list[tuple[np.ndarray, np.ndarray]]]:
    rng = np.random.default_rng(85)
    arms = [_units(rng, 1500, 0.0), _units(rng, 1500, 0.25)]
    request = {
        "metric_type": "mean",
        "difference": "absolute",
        "method": "frequentist",
        "covariates": NAMES,
        "variants": [
            _variant(name, y, x) for name, (y, x) in zip(("control", "treatment"), arms, strict=True)
        ],
    }
    return request, arms


def test_cli_answers_with_the_least_squares_estimate_and_the_variance_reduction(tmp_path: Path) -> None:
    request, arms = _request()
    path = tmp_path / "adjusted.json"
    path.write_text(json.dumps(request))
    result = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "stats", "test", "--input", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)

    (y_a, x_a), (y_b, x_b) = arms
    design = np.column_stack(
        [np.ones(len(y_a) + len(y_b)), np.r_[np.zeros(len(y_a)), np.ones(len(y_b))], np.vstack([x_a, x_b])]
    )
    coefficients, *_ = np.linalg.lstsq(design, np.r_[y_a, y_b], rcond=None)
    assert answer["variants"][1]["estimate"] == pytest.approx(coefficients[1], rel=1e-9)
    adjustment = answer["adjustment"]
    assert adjustment["covariates"] == NAMES
    assert adjustment["coefficients"] == pytest.approx(list(coefficients[2:]), rel=1e-8)
    plain = y_a.var(ddof=1) / len(y_a) + y_b.var(ddof=1) / len(y_b)
    adjusted = answer["variants"][1]["standard_error"] ** 2
    assert adjustment["variance_reduction"] == pytest.approx(1 - adjusted / plain, rel=1e-8)
    assert 0.4 < adjustment["variance_reduction"] < 0.6  # the model's R² is 0.486


def _with(**changes: Any) -> str:
    request, _ = _request()
    return json.dumps({**request, **changes})


def _with_variant(**changes: Any) -> str:
    request, _ = _request()
    request["variants"][0] = {**request["variants"][0], **changes}
    return json.dumps(request)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (_with(cuped=True), "use either cuped (one covariate) or covariates"),
        (_with(metric_type="ratio"), "field covariates: supported for binomial and mean metrics"),
        (_with(covariates=[]), "field covariates:"),
        (_with(covariates=[f"c{i}" for i in range(65)]), "field covariates:"),
        (_with(covariates=["a", "a", "b", "c", "d"]), "names must be unique"),
        (_with(covariates=NAMES[:4]), "must be 4, 4 and 4 × 4 long"),
        (_with_variant(metric_crosses=[1.0]), "must be 5, 5 and 5 × 5 long"),
        (_with_variant(covariate_crosses=[[1.0] * 5] * 4 + [[1.0] * 4]), "must be 5, 5 and 5 × 5 long"),
        (_with_variant(metric_crosses=[1e12] * 5), "not positive semi-definite"),
        (_with_variant(metric_crosses=None), "mean metric needs metric_crosses"),
        (_with_variant(metric_crosses=["x"] * 5), "field variants[0].metric_crosses[0]"),
        (
            json.dumps({"metric_type": "mean", "variants": _request()[0]["variants"]}),
            "not allowed for a mean metric (name them in covariates",
        ),
    ],
)
def test_hostile_adjustment_requests_name_the_field(content: str, expected: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse_request(content, "x")
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_binomial_adjustment_checks_the_conversions() -> None:
    request, _ = _request()
    request["metric_type"] = "binomial"
    control = request["variants"][0]
    control["sum"] = control["sum_squares"] = control["n"] + 1.0
    treatment = request["variants"][1]
    treatment["sum_squares"] = treatment["sum"]
    with pytest.raises(ValidationError, match="conversions must be between 0 and n"):
        parse_request(json.dumps(request), "x")


def test_every_method_takes_an_adjusted_request() -> None:
    request, _ = _request()
    for method in ("sequential", "bayesian", "group_sequential_obf", "group_sequential_pocock"):
        parsed = parse_request(json.dumps({**request, "method": method, "planned_units": 6000}), "x")
        answer = analyze_request(*parsed)
        assert answer["variants"][1]["error"] is None
        assert answer["variants"][1]["estimate"] == pytest.approx(0.25, abs=0.25)
