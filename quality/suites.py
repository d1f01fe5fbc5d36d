"""The great-expectations suites, defined in code and versioned with it: one per checked table. Pure.

A suite is plain data (:class:`TableSuite` of :class:`ExpectationSpec`); :mod:`quality.gx_runner` turns
it into GX 1.x objects and runs it. Each expectation belongs to one check category, the ``check`` name of
its outcome: ``schema`` (columns and types), ``nulls``, ``unique_ids``, ``allowed_values`` (experiments,
variations and event names the registry knows, dead-letter reason codes) and ``ranges``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from quality.outcomes import Severity

__all__ = ["ExpectationSpec", "KnownValues", "TableSuite", "table_suites"]


@dataclass(frozen=True, slots=True)
class ExpectationSpec:
    """One GX expectation: its class name in ``great_expectations.expectations`` and its arguments."""

    check: str
    expectation: str
    kwargs: Mapping[str, Any]
    severity: Severity = "error"

    @property
    def column(self) -> str | None:
        column = self.kwargs.get("column") or self.kwargs.get("column_A")
        if column is None and "column_list" in self.kwargs:
            return "+".join(self.kwargs["column_list"])
        return str(column) if column is not None else None


@dataclass(frozen=True, slots=True)
class TableSuite:
    """The suite of one table: the named query reading its window rows, and the expectations on them."""

    table: str
    query: str
    expectations: tuple[ExpectationSpec, ...]
    schema: tuple[str, ...] = ()
    """``"column Type"`` pairs the table must have (more columns are fine: migrations add columns)."""


@dataclass(frozen=True, slots=True)
class KnownValues:
    """What the registry knows: the allowed values of the suites."""

    experiments: frozenset[str] = field(default_factory=frozenset)
    experiment_variations: frozenset[str] = field(default_factory=frozenset)
    """``"experiment_key:variation_id"`` pairs."""
    event_names: frozenset[str] = field(default_factory=frozenset)
    dead_letter_reasons: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_registry(
        cls,
        variations: Mapping[str, Iterable[int]],
        event_names: Iterable[str],
        dead_letter_reasons: Iterable[str],
    ) -> KnownValues:
        return cls(
            experiments=frozenset(variations),
            experiment_variations=frozenset(f"{e}:{v}" for e, ids in variations.items() for v in ids),
            event_names=frozenset(event_names),
            dead_letter_reasons=frozenset(dead_letter_reasons),
        )


def _e(check: str, expectation: str, severity: Severity = "error", **kwargs: Any) -> ExpectationSpec:
    return ExpectationSpec(check, expectation, kwargs, severity)


def _not_null(*columns: str) -> list[ExpectationSpec]:
    return [_e("nulls", "ExpectColumnValuesToNotBeNull", column=c) for c in columns]


def _in_set(column: str, values: frozenset[str]) -> ExpectationSpec:
    return _e("allowed_values", "ExpectColumnValuesToBeInSet", column=column, value_set=sorted(values))


def _at_least(column: str, minimum: float, severity: Severity = "error") -> ExpectationSpec:
    return _e("ranges", "ExpectColumnValuesToBeBetween", severity, column=column, min_value=minimum)


def _between(column: str, low: float, high: float) -> ExpectationSpec:
    return _e("ranges", "ExpectColumnValuesToBeBetween", column=column, min_value=low, max_value=high)


def table_suites(known: KnownValues) -> list[TableSuite]:
    """Every suite, with the registry's allowed values filled in."""
    return [
        TableSuite(
            "exposures",
            "quality_rows_exposures",
            (
                *_not_null("exposure_id", "unit_id", "experiment_key", "exposed_at"),
                _e("unique_ids", "ExpectColumnValuesToBeUnique", column="exposure_id"),
                _e("ranges", "ExpectColumnValueLengthsToBeBetween", column="unit_id", min_value=1),
                _in_set("experiment_key", known.experiments),
                _in_set("experiment_variation", known.experiment_variations),
                _between("bucket", 0.0, 1.0),
            ),
            (
                "exposure_id String",
                "unit_id String",
                "experiment_key LowCardinality(String)",
                "variation_id UInt16",
                "overridden Bool",
                "exposed_at DateTime64(3, 'UTC')",
                "ingested_at DateTime64(3, 'UTC')",
            ),
        ),
        TableSuite(
            "events",
            "quality_rows_events",
            (
                *_not_null("event_id", "unit_id", "event_name", "occurred_at"),
                _e("unique_ids", "ExpectColumnValuesToBeUnique", column="event_id"),
                _e("ranges", "ExpectColumnValueLengthsToBeBetween", column="unit_id", min_value=1),
                _in_set("event_name", known.event_names),
            ),
            (
                "event_id String",
                "unit_id String",
                "event_name LowCardinality(String)",
                "value Nullable(Float64)",
                "occurred_at DateTime64(3, 'UTC')",
                "ingested_at DateTime64(3, 'UTC')",
            ),
        ),
        TableSuite(
            "dead_letters",
            "quality_rows_dead_letters",
            (
                *_not_null("dead_letter_id", "reason", "received_at"),
                _e("unique_ids", "ExpectColumnValuesToBeUnique", column="dead_letter_id"),
                _in_set("reason", known.dead_letter_reasons),
            ),
            (
                "dead_letter_id String",
                "reason LowCardinality(String)",
                "original String",
                "received_at DateTime64(3, 'UTC')",
            ),
        ),
        TableSuite(
            "unit_metrics",
            "quality_rows_unit_metrics",
            (
                *_not_null("experiment_key", "metric", "unit_id", "value"),
                _e(
                    "unique_ids",
                    "ExpectCompoundColumnsToBeUnique",
                    column_list=["experiment_key", "metric", "unit_id"],
                ),
                _in_set("experiment_key", known.experiments),
                _at_least("events", 0),
                _at_least("covariate_seconds", 0),
            ),
            (
                "experiment_key LowCardinality(String)",
                "metric LowCardinality(String)",
                "unit_id String",
                "eligible Bool",
                "value Float64",
                "computed_at DateTime64(3, 'UTC')",
            ),
        ),
        TableSuite(
            "daily_metrics",
            "quality_rows_daily_metrics",
            (
                *_not_null("experiment_key", "metric", "day"),
                _e(
                    "unique_ids",
                    "ExpectCompoundColumnsToBeUnique",
                    column_list=["experiment_key", "metric", "variation_id", "day"],
                ),
                _in_set("experiment_key", known.experiments),
                _at_least("units", 0),
                _at_least("sum_squares", 0),
            ),
            (
                "experiment_key LowCardinality(String)",
                "metric LowCardinality(String)",
                "variation_id UInt16",
                "day Date",
                "units UInt64",
                "computed_at DateTime64(3, 'UTC')",
            ),
        ),
        TableSuite(
            "results",
            "quality_rows_results",
            (
                *_not_null("experiment_key", "metric", "computed_at"),
                _e(
                    "unique_ids",
                    "ExpectCompoundColumnsToBeUnique",
                    column_list=["experiment_key", "metric", "variation_id", "computed_at"],
                ),
                _in_set("experiment_key", known.experiments),
                _between("p_value", 0.0, 1.0),
                _between("chance_to_win", 0.0, 1.0),
                _between("srm_p_value", 0.0, 1.0),
                _e(
                    "ranges",
                    "ExpectColumnPairValuesAToBeGreaterThanB",
                    column_A="ci_high",
                    column_B="ci_low",
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                ),
            ),
            (
                "computed_at DateTime64(3, 'UTC')",
                "experiment_key LowCardinality(String)",
                "metric LowCardinality(String)",
                "variation_id UInt16",
                "p_value Nullable(Float64)",
                "ci_low Nullable(Float64)",
                "ci_high Nullable(Float64)",
            ),
        ),
    ]
