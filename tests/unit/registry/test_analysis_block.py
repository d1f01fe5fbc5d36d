"""The ``analysis:`` block's rules are declared once (assignment/analysis_block.py): the YAML registry
and ``AnalysisPlan`` (jobs/analysis_plan.py) refuse and accept the same values, with the same words."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from assignment.analysis_block import ANALYSIS_DEFAULTS, ANALYSIS_PROBLEMS, METHODS, AnalysisBlock
from assignment.authoring import parse_registry_document
from jobs.analysis_plan import DEFAULT_PLAN, AnalysisPlan
from jobs.stats.results import Method
from xpcore.errors import ValidationError


def yaml_block(**block: Any) -> dict[str, Any]:
    document = {
        "experiments": [
            {"key": "checkout", "variations": ["a", "b"], "analysis": block},
        ]
    }
    return dict(parse_registry_document(document, "x.yaml").experiments[0].metadata["analysis"])


REFUSED: list[tuple[str, Any]] = [
    ("method", "bayes"),
    ("correction", "bonferroni"),
    ("alpha", 0.0),
    ("alpha", 1.0),
    ("alpha", float("nan")),
    ("planned_units", 0),
    ("planned_looks", 0),
    ("planned_looks", 51),
]


@pytest.mark.parametrize(("field", "value"), REFUSED)
def test_yaml_and_plan_refuse_the_same_values_in_the_same_words(field: str, value: Any) -> None:
    words = ANALYSIS_PROBLEMS[field]
    with pytest.raises(ValidationError) as from_yaml:
        yaml_block(**{field: value})
    assert str(from_yaml.value) == f"x.yaml: experiment 'checkout': analysis.{field}: {words}"
    with pytest.raises(ValidationError) as from_plan:
        AnalysisPlan(**{field: value})
    assert str(from_plan.value) == f"{field} {words}, got {value!r}"


def test_yaml_and_plan_accept_the_same_values_with_the_same_defaults() -> None:
    block = {
        "method": "frequentist",
        "correction": "bh",
        "alpha": 0.01,
        "cuped": True,
        "planned_units": 10,
        "planned_looks": 4,
    }
    stored = yaml_block(**dict(reversed(block.items())))
    assert list(stored.items()) == list(block.items())  # stored in this order, whatever the file's order
    assert AnalysisPlan(**block).to_json() == block
    defaults = ANALYSIS_DEFAULTS
    assert (DEFAULT_PLAN.method, DEFAULT_PLAN.alpha, DEFAULT_PLAN.cuped) == (
        defaults.method,
        defaults.alpha,
        defaults.cuped,
    )
    assert (DEFAULT_PLAN.correction, DEFAULT_PLAN.planned_units) == (defaults.correction, None)
    assert AnalysisBlock(cuped=True).stored() == {"cuped": True}


def test_the_statistics_engine_knows_every_method() -> None:
    assert set(get_args(Method)) == set(METHODS)


def test_a_group_sequential_method_without_planned_units_is_refused_in_the_same_words() -> None:
    with pytest.raises(ValidationError) as from_yaml:
        yaml_block(method="group_sequential_obf", planned_looks=10)
    words = "must be given for method group_sequential_obf (its looks are fractions of it)"
    assert str(from_yaml.value) == f"x.yaml: experiment 'checkout': analysis.planned_units: {words}"
    with pytest.raises(ValidationError) as from_plan:
        AnalysisPlan(method="group_sequential_obf")
    assert str(from_plan.value) == f"planned_units {words}, got None"
    assert yaml_block(method="group_sequential_pocock", planned_units=5000) == {
        "method": "group_sequential_pocock",
        "planned_units": 5000,
    }
