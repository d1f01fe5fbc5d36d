"""The ``analysis:`` block: YAML validation (assignment/authoring.py), the stored plan, CLI overrides."""

from __future__ import annotations

import pytest

from assignment.authoring import parse_registry_text
from jobs.analysis_plan import DEFAULT_PLAN, AnalysisPlan, plan_from_metadata
from xpcore.errors import ValidationError

YAML = """
experiments:
  - key: checkout
    status: running
    variations:
      - {{key: a, weight: 0.5, value: 1}}
      - {{key: b, weight: 0.5, value: 2}}
{analysis}
"""


def parse(analysis: str) -> dict[str, object]:
    authored = parse_registry_text(YAML.format(analysis=analysis), "exp.yaml")
    return dict(authored.experiments[0].metadata)


def test_a_full_block_is_stored_and_read_back() -> None:
    metadata = parse(
        "    analysis: {method: frequentist, alpha: 0.01, cuped: true, correction: bh, planned_units: 5000}"
    )
    assert metadata["analysis"] == {
        "method": "frequentist",
        "alpha": 0.01,
        "cuped": True,
        "correction": "bh",
        "planned_units": 5000,
    }
    assert plan_from_metadata(metadata) == AnalysisPlan("frequentist", 0.01, True, "bh", 5000)


def test_no_block_and_partial_blocks_use_the_defaults() -> None:
    assert "analysis" not in parse("")
    assert plan_from_metadata(parse("")) == DEFAULT_PLAN
    assert AnalysisPlan("sequential", 0.05, False, "none", None) == DEFAULT_PLAN
    partial = plan_from_metadata(parse("    analysis: {cuped: true}"))
    assert (partial.method, partial.alpha, partial.cuped, partial.correction) == (
        "sequential",
        0.05,
        True,
        "none",
    )


@pytest.mark.parametrize(
    ("block", "field", "problem"),
    [
        ("analysis: {method: bayes}", "analysis.method", "must be one of sequential, frequentist, bayesian"),
        ("analysis: {alpha: 1.5}", "analysis.alpha", "must be a number in (0, 1)"),
        ("analysis: {alpha: '0.05'}", "analysis.alpha", "must be a number in (0, 1)"),
        ("analysis: {cuped: yes please}", "analysis.cuped", "must be true or false"),
        ("analysis: {correction: bonferroni}", "analysis.correction", "must be one of none, holm, bh"),
        ("analysis: {planned_units: 0}", "analysis.planned_units", "must be a whole number"),
        ("analysis: {planned_units: 10.5}", "analysis.planned_units", "must be a whole number"),
        ("analysis: {planned_looks: 0}", "analysis.planned_looks", "must be a whole number of looks"),
        ("analysis: {planned_looks: 51}", "analysis.planned_looks", "must be a whole number of looks"),
        (
            "analysis: {method: group_sequential_obf}",
            "analysis.planned_units",
            "must be given for method group_sequential_obf",
        ),
        ("analysis: {seqential: true}", "analysis.seqential", "unknown field"),
        ("analysis: [sequential]", "analysis", "must be a mapping"),
    ],
)
def test_errors_name_file_experiment_and_field(block: str, field: str, problem: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse(f"    {block}")
    message = str(error.value)
    assert message.startswith(f"exp.yaml: experiment 'checkout': {field}: "), message
    assert problem in message


def test_cli_flags_override_only_what_they_set() -> None:
    plan = AnalysisPlan("frequentist", 0.01, True, "holm", 100)
    assert plan.with_overrides() == plan
    assert plan.with_overrides(method="bayesian", cuped=False) == AnalysisPlan(
        "bayesian", 0.01, False, "holm", 100
    )
    assert plan.with_overrides(alpha=0.1, correction="none").alpha == 0.1


def test_invalid_values_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="alpha"):
        DEFAULT_PLAN.with_overrides(alpha=0.0)
    with pytest.raises(ValidationError, match="method"):
        plan_from_metadata({"analysis": {"method": "magic"}})
    with pytest.raises(ValidationError, match="correction"):
        AnalysisPlan(correction="bonferroni")  # type: ignore[arg-type]


def test_metadata_without_a_mapping_block_is_the_default() -> None:
    assert plan_from_metadata(None) == DEFAULT_PLAN
    assert plan_from_metadata({"analysis": "sequential"}) == DEFAULT_PLAN


def test_the_plan_travels_through_the_registry_snapshot() -> None:
    from jobs.results.compute import experiment_plan

    authored = parse_registry_text(
        YAML.format(analysis="    analysis: {method: bayesian, correction: holm}"), "exp.yaml"
    )
    snapshot = authored.snapshot()
    plan = experiment_plan(snapshot, snapshot.experiments["checkout"])
    assert (plan.method, plan.correction, plan.cuped) == ("bayesian", "holm", False)


def test_group_sequential_plans_need_planned_units_and_keep_their_looks() -> None:
    metadata = parse(
        "    analysis: {method: group_sequential_pocock, planned_units: 20000, planned_looks: 4}"
    )
    plan = plan_from_metadata(metadata)
    assert (plan.method, plan.planned_units, plan.planned_looks) == ("group_sequential_pocock", 20000, 4)
    assert plan.to_json()["planned_looks"] == 4
    with pytest.raises(ValidationError, match="planned_units must be given for method group_sequential_obf"):
        DEFAULT_PLAN.with_overrides(method="group_sequential_obf")
    assert AnalysisPlan(planned_units=100).with_overrides(method="group_sequential_obf").planned_units == 100
