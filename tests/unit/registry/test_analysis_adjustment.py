"""The ``analysis: adjustment:`` block (regression adjustment, CUPED++; decision 0093): YAML and plan."""

from __future__ import annotations

from typing import Any

import pytest

from assignment.analysis_block import ADJUSTMENT_PROBLEMS, ANALYSIS_PROBLEMS, Adjustment
from assignment.authoring import parse_registry_document
from jobs.analysis_plan import AnalysisPlan, plan_from_metadata
from xpcore.errors import ValidationError

PREFIX = "x.yaml: experiment 'checkout': analysis."


def stored(**block: Any) -> dict[str, Any]:
    document = {"experiments": [{"key": "checkout", "variations": ["a", "b"], "analysis": block}]}
    return dict(parse_registry_document(document, "x.yaml").experiments[0].metadata["analysis"])


def test_a_declared_adjustment_is_stored_and_read_back_into_the_plan() -> None:
    block = {"covariates": ["own", "revenue"], "strata": ["country", "device"]}
    metadata = stored(method="frequentist", adjustment=block)
    assert metadata == {"method": "frequentist", "adjustment": block}
    plan = plan_from_metadata({"analysis": metadata})
    assert plan.adjustment == Adjustment(covariates=("own", "revenue"), strata=("country", "device"))
    assert plan.to_json()["adjustment"] == block


def test_without_the_block_the_plan_json_is_unchanged() -> None:
    assert "adjustment" not in AnalysisPlan().to_json()
    assert plan_from_metadata({"analysis": {"cuped": True}}).adjustment is None


@pytest.mark.parametrize(
    ("adjustment", "where", "words"),
    [
        ({}, "adjustment", ANALYSIS_PROBLEMS["adjustment"]),
        ({"covariates": [], "strata": []}, "adjustment", ANALYSIS_PROBLEMS["adjustment"]),
        (["own"], "adjustment", ANALYSIS_PROBLEMS["adjustment"]),
        (None, "adjustment", ANALYSIS_PROBLEMS["adjustment"]),
        ({"covariates": "own"}, "adjustment.covariates", ADJUSTMENT_PROBLEMS["covariates"]),
        ({"covariates": ["own", "own"]}, "adjustment.covariates", ADJUSTMENT_PROBLEMS["covariates"]),
        (
            {"covariates": [f"m{i}" for i in range(9)]},
            "adjustment.covariates",
            ADJUSTMENT_PROBLEMS["covariates"],
        ),
        ({"covariates": [3]}, "adjustment.covariates", ADJUSTMENT_PROBLEMS["covariates"]),
        ({"strata": ["a b"]}, "adjustment.strata", ADJUSTMENT_PROBLEMS["strata"]),
        ({"strata": ["x') OR 1=1 --"]}, "adjustment.strata", ADJUSTMENT_PROBLEMS["strata"]),  # hostile
        ({"strata": ["x" * 129]}, "adjustment.strata", ADJUSTMENT_PROBLEMS["strata"]),
        ({"strata": ["a", "b", "c", "d", "e"]}, "adjustment.strata", ADJUSTMENT_PROBLEMS["strata"]),
        ({"strata": ["country"], "by": 1}, "adjustment.by", "unknown field (expected covariates, strata)"),
    ],
)
def test_bad_adjustments_are_refused_with_clear_words(adjustment: Any, where: str, words: str) -> None:
    with pytest.raises(ValidationError) as refused:
        stored(adjustment=adjustment)
    assert str(refused.value) == f"{PREFIX}{where}: {words}"


def test_cuped_and_an_adjustment_together_are_refused_in_yaml_and_plan() -> None:
    with pytest.raises(ValidationError, match=r"analysis\.adjustment: cannot be used together with cuped"):
        stored(cuped=True, adjustment={"strata": ["country"]})
    plan = AnalysisPlan(adjustment=Adjustment(strata=("country",)))
    with pytest.raises(ValidationError, match="adjustment cannot be used together with cuped"):
        plan.with_overrides(cuped=True)  # xp results --cuped on an experiment with an adjustment


def test_a_hand_edited_stored_adjustment_names_the_field() -> None:
    with pytest.raises(ValidationError, match="adjustment is not valid"):
        plan_from_metadata({"analysis": {"adjustment": {"covariates": "own"}}})


def test_covariates_must_be_known_event_metrics_and_are_stored_with_the_experiment() -> None:
    sessions = {"name": "sessions", "event": "session", "aggregation": "count"}
    aov = {"name": "aov", "numerator": "revenue", "denominator": "pageviews"}

    def metadata(covariates: list[str]) -> dict[str, Any]:
        document = {
            "metrics": [sessions, aov],
            "experiments": [
                {
                    "key": "checkout",
                    "variations": ["a", "b"],
                    "analysis": {"adjustment": {"covariates": covariates}},
                }
            ],
        }
        return dict(parse_registry_document(document, "x.yaml").experiments[0].metadata)

    stored_metrics = metadata(["own", "sessions"])["metric_definitions"]
    assert [m["name"] for m in stored_metrics] == ["sessions"]  # results can read it without naming it
    with pytest.raises(ValidationError, match=r"analysis\.adjustment\.covariates: unknown metric 'nope'"):
        metadata(["nope"])
    with pytest.raises(ValidationError, match=r"'aov' is a ratio metric \(binomial or mean only\)"):
        metadata(["aov"])
