"""`xp stats test` with ``"metric_type": "quantile"``: raw values and order statistics give the same
answer; every bad input is a ValidationError naming its field; one real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jobs.stats.contract import analyze_request, parse_request
from jobs.stats.quantiles import clustered_quantile_statistic, quantile_statistic
from xpcore.errors import ValidationError

_RNG = np.random.default_rng(1616)
_CONTROL = [round(float(v), 3) for v in _RNG.lognormal(1.0, 1.0, 1500)]
_TREATMENT = [round(float(v) * 1.15, 3) for v in _RNG.lognormal(1.0, 1.0, 1500)]


def _raw(**extra: Any) -> dict[str, Any]:
    return {
        "metric_type": "quantile",
        "quantile": 0.9,
        "method": "frequentist",
        "difference": "absolute",
        "variants": [{"name": "control", "values": _CONTROL}, {"name": "treatment", "values": _TREATMENT}],
        **extra,
    }


def _sufficient(values: list[float], name: str) -> dict[str, Any]:
    statistic = quantile_statistic(values, 0.9)
    return {
        "name": name,
        "n": statistic.n,
        "quantile_value": statistic.quantile,
        "quantile_lower": statistic.lower,
        "quantile_upper": statistic.upper,
    }


def _answer(document: dict[str, Any]) -> dict[str, Any]:
    return analyze_request(*parse_request(json.dumps(document), "input"))


def test_raw_values_and_order_statistics_give_the_same_answer() -> None:
    raw = _answer(_raw())
    sufficient = _answer(
        _raw(variants=[_sufficient(_CONTROL, "control"), _sufficient(_TREATMENT, "treatment")])
    )
    assert raw == sufficient
    treatment = raw["variants"][1]
    assert raw["metric_type"] == "quantile" and treatment["error"] is None
    assert treatment["mean"] == pytest.approx(quantile_statistic(_TREATMENT, 0.9).quantile)
    assert treatment["estimate"] == pytest.approx(
        quantile_statistic(_TREATMENT, 0.9).quantile - quantile_statistic(_CONTROL, 0.9).quantile
    )
    assert treatment["ci_low"] < treatment["estimate"] < treatment["ci_high"]


def test_per_event_values_use_the_units_for_srm_and_the_cluster_variance() -> None:
    units = [f"u{i // 5}" for i in range(len(_CONTROL))]
    document = _raw(
        variants=[
            {"name": "control", "values": _CONTROL, "units": units},
            {"name": "treatment", "values": _TREATMENT, "units": units},
        ]
    )
    answer = _answer(document)
    clustered = clustered_quantile_statistic(_CONTROL, units, 0.9)
    assert clustered.units == 300 and answer["srm_p_value"] == pytest.approx(1.0)
    plain = _answer(_raw())["variants"][1]
    assert answer["variants"][1]["standard_error"] != pytest.approx(plain["standard_error"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"quantile": 1.0}, "field quantile"),
        ({"quantile": None}, "field quantile"),
        ({"cuped": True}, "cuped"),
        ({"variants": [{"name": "a", "values": [1.0]}, {"name": "b", "n": 5}]}, "needs values"),
        (
            {
                "variants": [
                    {"name": "a", "values": [1.0], "quantile_value": 1},
                    {"name": "b", "values": [2.0]},
                ]
            },
            "not both",
        ),
        (
            {"variants": [{"name": "a", "values": [1.0], "units": []}, {"name": "b", "values": [2.0]}]},
            "units",
        ),
        (
            {"variants": [{"name": "a", "values": [1.0], "sum": 1}, {"name": "b", "values": [2.0]}]},
            "unknown field",
        ),
        (
            {
                "variants": [
                    {"name": "a", "n": 10, "quantile_value": 5, "quantile_lower": 6, "quantile_upper": 7},
                    {"name": "b", "values": [2.0]},
                ]
            },
            "lower <= quantile <= upper",
        ),
    ],
)
def test_bad_quantile_requests_are_validation_errors(change: dict[str, Any], message: str) -> None:
    document = _raw(**change)
    with pytest.raises(ValidationError, match=message):
        parse_request(json.dumps(document), "input")


def test_cli_answers_a_quantile_request(tmp_path: Path) -> None:
    path = tmp_path / "quantile.json"
    path.write_text(json.dumps(_raw(method="sequential", difference="relative")), encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "stats", "test", "--input", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    answer = json.loads(completed.stdout)
    assert answer["method"] == "sequential" and answer["variants"][1]["p_value"] is not None


@pytest.mark.parametrize(
    "variants",
    [
        [{"name": "a", "values": ["1", {"x": 1}]}, {"name": "b", "values": [1.0]}],
        [{"name": "a", "values": [1.0], "units": [{"nested": True}]}, {"name": "b", "values": [1.0]}],
        [{"name": "a", "values": 5}, {"name": "b", "values": [1.0]}],
        [{"name": "a", "n": -1, "quantile_value": 1, "quantile_lower": 0, "quantile_upper": 2}] * 2,
        [{"name": "a", "n": 5, "n_star": 0, "quantile_value": 1, "quantile_lower": 0, "quantile_upper": 2}]
        * 2,
    ],
)
def test_hostile_quantile_inputs_are_rejected_with_a_message(variants: list[dict[str, Any]]) -> None:
    with pytest.raises(ValidationError, match="input: field"):
        parse_request(json.dumps(_raw(variants=variants)), "input")


def test_values_at_the_float_limits_give_a_coded_result_not_a_crash() -> None:
    extreme = [(-1.7e308 if i % 2 else 1.7e308) for i in range(1000)]
    answer = _answer(_raw(variants=[{"name": "a", "values": extreme}, {"name": "b", "values": extreme}]))
    assert answer["variants"][1]["error"] == "zero_variance"
    assert answer["variants"][1]["p_value"] is None
