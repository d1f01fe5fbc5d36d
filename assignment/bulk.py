"""One feature for many units at once: conditions per unit, hashing and bucketing per column.

The rule loop of :mod:`assignment.features` runs once per rule over the units still undecided
instead of once per unit: conditions are compiled closures called once per distinct combination of
the attribute values they read, while hashes of a whole column (rollouts, filters, namespaces,
experiments) come from :mod:`assignment.vectorized` (or the C hashes). Units are read through a
:class:`UnitTable` (columns of attribute values), so the same loop serves unit dicts
(:class:`DictTable`) and columns decoded straight from JSON Lines (:mod:`assignment.jsonl`).

:func:`evaluate_columns` returns :class:`Outcomes` (one code per unit into a short list of
results, plus the experiment buckets) without a result object per unit;
:func:`evaluate_feature_many` expands them into :class:`~assignment.results.FeatureResult` s.
Results are identical to evaluating each unit alone (the tests check it). Features with
prerequisites, and small batches, take the per-unit path.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

import numpy as np
import numpy.typing as npt

from assignment.conditions import EVAL_ERRORS, Predicate, attribute_checks
from assignment.experiments import CompiledExperiment, CompiledFilter
from assignment.features import CompiledFeature, CompiledRule
from assignment.hashing import hash_string, is_hashable
from assignment.operators import string_column_test
from assignment.results import FeatureResult
from assignment.vectorized import choose_variation_many, gbhash_many, in_ranges_many

if TYPE_CHECKING:
    from assignment.compiled import CompiledPayload

__all__ = [
    "MIN_VECTORIZED_UNITS",
    "DictTable",
    "Outcomes",
    "UnitTable",
    "attributes_read",
    "evaluate_columns",
    "evaluate_feature_many",
    "expand_outcomes",
    "take",
]

MIN_VECTORIZED_UNITS = 32

IndexArray = npt.NDArray[np.intp]


class UnitTable(Protocol):
    """Units as columns: what bulk evaluation reads."""

    size: int

    def column(self, name: str) -> list[Any]:
        """Attribute ``name`` of every unit, None where a unit lacks it."""
        ...

    def unit(self, row: int) -> Mapping[str, Any]:
        """Unit ``row`` as a mapping holding (at least) every attribute the feature reads."""
        ...


class DictTable:
    """A :class:`UnitTable` over unit mappings (columns built on first use)."""

    __slots__ = ("_columns", "size", "units")

    def __init__(self, units: Sequence[Mapping[str, Any]]) -> None:
        self.units = units
        self.size = len(units)
        self._columns: dict[str, list[Any]] = {}

    def column(self, name: str) -> list[Any]:
        column = self._columns.get(name)
        if column is None:
            column = self._columns[name] = [unit.get(name) for unit in self.units]
        return column

    def unit(self, row: int) -> Mapping[str, Any]:
        return self.units[row]


class Outcomes(NamedTuple):
    """Each unit's result as ``choices[codes[row]]``; an experiment choice (``source ==
    "experiment"``) stands for its variation, the unit's own ``hash_value`` (the column of its
    ``hash_attribute``) and ``buckets[row]`` completing it."""

    codes: npt.NDArray[np.int32]
    choices: list[FeatureResult]
    buckets: npt.NDArray[np.float64]


def attributes_read(feature: CompiledFeature) -> frozenset[str] | None:
    """The top-level attributes bulk evaluation of ``feature`` reads; None when that cannot be
    told (a condition read statically unknown, prerequisites)."""
    if feature.has_prerequisites:
        return None
    names: set[str] = set()
    for rule in feature.rules:
        if rule.condition is not None:
            if rule.condition_attributes is None:
                return None
            names.update(rule.condition_attributes)
        names.update(f.attribute for f in rule.filters or ())
        names.add(rule.hash_attribute)
        if rule.fallback_attribute:
            names.add(rule.fallback_attribute)
        if rule.experiment is not None:
            names.add(rule.experiment.hash_attribute)
    return frozenset(names)


def take(column: list[Any], rows: IndexArray) -> list[Any]:
    """``column`` at ``rows`` (sorted, distinct)."""
    if rows.size == len(column):
        return column
    if rows.size > 1:
        return list(itemgetter(*rows.tolist())(column))
    return [column[row] for row in rows.tolist()]


_MEMO_MAX_ATTRIBUTES = 4


def _condition_mask(rule: CompiledRule, table: UnitTable, rows: IndexArray) -> npt.NDArray[np.bool_]:
    """The rule's condition for each row, evaluated once per combination of the attribute values
    it reads (typed, so ``True`` and ``1`` never share an entry): the combinations are gathered as
    a column, their first rows found with one dict, and the answers spread back with one map."""
    condition = rule.condition
    assert condition is not None
    checks = attribute_checks(rule.predicate) if rule.predicate is not None else None
    if checks is not None:
        return _conjunction_mask(checks, table, rows)
    names = rule.condition_attributes
    row_list = rows.tolist()
    if not names or len(names) > _MEMO_MAX_ATTRIBUTES:  # none read (e.g. `$or: []`): no key to memoize on
        selected = map(table.unit, row_list)
        return np.fromiter(map(condition, selected), dtype=bool, count=len(row_list))
    columns = [take(table.column(name), rows) for name in names]
    keys: list[Any] = columns[0] if len(columns) == 1 else list(zip(*columns, strict=True))
    kinds: set[type] = set()
    for column in columns:
        kinds.update(map(type, column))
    column_test = string_column_test(rule.predicate) if rule.predicate is not None else None
    if column_test is not None and kinds == {str} and (column_test[0],) == names:
        found = map(column_test[1], cast(list[str], columns[0]))
        return np.fromiter(map(bool, found), dtype=np.bool_, count=len(row_list))
    if not kinds <= _PLAIN_KINDS:
        keys = list(zip(keys, *(map(type, column) for column in columns), strict=True))
    try:
        first_rows = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
    except TypeError:  # a list or object among the values: not hashable
        return _condition_mask_per_row(condition, table, row_list, columns)
    memo = {key: bool(condition(table.unit(row_list[row]))) for key, row in first_rows.items()}
    return np.fromiter(map(memo.__getitem__, keys), dtype=bool, count=len(keys))


_PLAIN_KINDS = frozenset({str, type(None)})
"""Attribute types whose values never compare equal across types: the value alone is the key."""


def _conjunction_mask(
    checks: tuple[tuple[str, Predicate], ...], table: UnitTable, rows: IndexArray
) -> npt.NDArray[np.bool_]:
    """A conjunction of plain attributes (see :func:`~assignment.conditions.attribute_checks`):
    each check runs once per distinct value of its attribute among the rows still matching."""
    mask = np.ones(rows.size, dtype=bool)
    for path, check in checks:
        live = np.flatnonzero(mask)
        if live.size == 0:
            break
        values = take(table.column(path), rows if live.size == rows.size else rows[live])
        mask[live] = _check_mask(check, values)
    return mask


def _passes(check: Predicate, value: Any) -> bool:
    try:
        return check(value) is True
    except EVAL_ERRORS:
        return False


def _check_mask(check: Predicate, values: list[Any]) -> npt.NDArray[np.bool_]:
    """``check`` of each value, memoized per distinct typed value (``-0.0`` apart from ``0.0``)."""
    kinds = set(map(type, values))
    keys: list[Any]
    if kinds <= _PLAIN_KINDS:
        keys = values
    elif float not in kinds:
        keys = list(zip(values, map(type, values), strict=True))
    else:
        keys = [(value, type(value), repr(value) if type(value) is float else None) for value in values]
    try:
        memo: dict[Any, bool] = dict.fromkeys(keys, False)
    except TypeError:  # a list or object among the values: not hashable
        return np.fromiter((_passes(check, value) for value in values), dtype=bool, count=len(values))
    plain = keys is values
    for key in list(memo):
        memo[key] = _passes(check, key if plain else key[0])
    return np.fromiter(map(memo.__getitem__, keys), dtype=bool, count=len(keys))


def _condition_mask_per_row(
    condition: Any, table: UnitTable, row_list: list[int], columns: list[list[Any]]
) -> npt.NDArray[np.bool_]:
    """The memo row by row, for columns holding unhashable values (those rows are evaluated)."""
    memo: dict[Any, bool] = {}
    matched: list[bool] = []
    append = matched.append
    for row, values in zip(row_list, zip(*columns, strict=True), strict=True):
        key = (values, tuple(map(type, values)))
        try:
            hit = memo.get(key)
        except TypeError:
            append(bool(condition(table.unit(row))))
            continue
        if hit is None:
            hit = memo[key] = bool(condition(table.unit(row)))
        append(hit)
    return np.array(matched, dtype=np.bool_)


def _hash_strings(table: UnitTable, rows: IndexArray, attribute: str) -> list[str]:
    raws = take(table.column(attribute), rows)
    if set(map(type, raws)) == {str}:
        return raws
    return [raw if type(raw) is str else hash_string(raw) for raw in raws]


def _rollout_strings(table: UnitTable, rows: IndexArray, attribute: str, fallback: str | None) -> list[str]:
    if not fallback:
        return _hash_strings(table, rows, attribute)
    primary = take(table.column(attribute), rows)
    secondary = take(table.column(fallback), rows)
    return [
        hash_string(raw if is_hashable(raw) else other) for raw, other in zip(primary, secondary, strict=True)
    ]


def _passing_filters(filters: Sequence[CompiledFilter], table: UnitTable, rows: IndexArray) -> IndexArray:
    for compiled_filter in filters:
        if rows.size == 0:
            break
        strings = _hash_strings(table, rows, compiled_filter.attribute)
        keep = np.fromiter(map(bool, strings), dtype=bool, count=len(strings))
        n = gbhash_many(compiled_filter.hasher._seed, strings, compiled_filter.hasher.version)
        if n is None:
            return rows[:0]
        keep &= in_ranges_many(n, compiled_filter.ranges)
        rows = rows[keep]
    return rows


def _in_rollout(rule: CompiledRule, table: UnitTable, rows: IndexArray) -> IndexArray:
    if rule.coverage is None and rule.range is None:
        return rows
    if rule.coverage == 0 and rule.range is None:
        return rows[:0]
    strings = _rollout_strings(table, rows, rule.hash_attribute, rule.fallback_attribute)
    n = gbhash_many(rule.hasher._seed, strings, rule.hasher.version)
    if n is None:
        return rows[:0]
    keep = np.fromiter(map(bool, strings), dtype=bool, count=len(strings))
    if rule.range is not None:
        keep &= (n >= rule.range[0]) & (n < rule.range[1])
    elif rule.coverage is not None:
        keep &= n < rule.coverage
    return rows[keep]


def _run_experiment(
    rule: CompiledRule,
    experiment: CompiledExperiment,
    table: UnitTable,
    rows: IndexArray,
    outcomes: Outcomes,
) -> IndexArray:
    """Assign ``rows``; record the units in the experiment in ``outcomes``; return them."""
    if experiment.skip or not experiment.active or experiment.qa_mode or experiment.stopped:
        return rows[:0]
    if experiment.force is not None:  # not produced by feature rules; keep one code path for it
        return rows[:0]
    strings = _hash_strings(table, rows, experiment.hash_attribute)
    keep = np.fromiter(map(bool, strings), dtype=bool, count=len(strings))
    if experiment.namespace_hasher is not None:
        start, end = experiment.namespace_range
        n_namespace = gbhash_many(experiment.namespace_hasher._seed, strings, 1)
        assert n_namespace is not None
        keep &= (n_namespace >= start) & (n_namespace < end)
    n = gbhash_many(experiment.hasher._seed, strings, experiment.hasher.version)
    if n is None:
        return rows[:0]
    variations = choose_variation_many(n, experiment.ranges)
    keep &= variations >= 0
    for index, (_, _, passthrough) in enumerate(experiment.variation_meta):
        if passthrough:
            keep &= variations != index
    selected = np.flatnonzero(keep)
    decided = rows[selected]
    chosen = variations[selected]
    codes, choices, buckets = outcomes
    buckets[decided] = n[selected]
    for index, (key, name, _) in enumerate(experiment.variation_meta):
        members = decided[chosen == index]
        if members.size == 0:
            continue
        codes[members] = len(choices)
        choices.append(
            FeatureResult(
                experiment.variations[index],
                "experiment",
                rule.id,
                experiment.key,
                True,
                index,
                True,
                experiment.hash_attribute,
                None,
                None,
                key,
                name,
                False,
            )
        )
    return decided


def evaluate_columns(feature: CompiledFeature, table: UnitTable) -> Outcomes:
    """``feature`` (without prerequisites) for every unit of ``table``, as :class:`Outcomes`."""
    outcomes = Outcomes(
        np.zeros(table.size, dtype=np.int32), [feature.default_result], np.full(table.size, np.nan)
    )
    pending = np.ones(table.size, dtype=bool)
    for rule in feature.rules:
        rows = np.flatnonzero(pending)
        if rows.size == 0:
            break
        if rule.condition is not None:
            rows = rows[_condition_mask(rule, table, rows)]
        if rule.filters is not None:
            rows = _passing_filters(rule.filters, table, rows)
        if rows.size == 0:
            continue
        if rule.force_result is not None:
            included = _in_rollout(rule, table, rows)
            if included.size:
                outcomes.codes[included] = len(outcomes.choices)
                outcomes.choices.append(rule.force_result)
                pending[included] = False
        elif rule.experiment is not None:
            decided = _run_experiment(rule, rule.experiment, table, rows, outcomes)
            pending[decided] = False
    return outcomes


def evaluate_feature_many(
    payload: CompiledPayload, feature_key: str, units: Sequence[Mapping[str, Any]]
) -> list[FeatureResult]:
    """Feature ``feature_key`` for every unit, in order (see the module docstring).

    The cyclic garbage collector is paused while results are built: they are tuples of plain
    values (no cycles to find), and collections triggered by allocating them would otherwise
    re-scan every live object of the caller (typically the whole batch of unit dicts).
    """
    feature = payload.features.get(feature_key)
    if feature is None or feature.has_prerequisites or len(units) < MIN_VECTORIZED_UNITS:
        return [payload.evaluate(feature_key, unit) for unit in units]
    collecting = gc.isenabled()
    gc.disable()
    try:
        table = DictTable(units)
        return expand_outcomes(evaluate_columns(feature, table), table)
    finally:
        if collecting:
            gc.enable()


def expand_outcomes(outcomes: Outcomes, table: UnitTable) -> list[FeatureResult]:
    """One :class:`~assignment.results.FeatureResult` per unit."""
    codes, choices, buckets = outcomes
    results = list(map(choices.__getitem__, codes.tolist()))
    new = tuple.__new__  # FeatureResult is a NamedTuple: skip its Python-level __new__
    for code, choice in enumerate(choices):
        if choice.source != "experiment":
            continue
        rows = np.flatnonzero(codes == code)
        hash_values = take(table.column(cast(str, choice.hash_attribute)), rows)
        head, tail = tuple(choice[:8]), tuple(choice[10:])
        for row, hash_value, bucket in zip(rows.tolist(), hash_values, buckets[rows].tolist(), strict=True):
            results[row] = new(FeatureResult, (*head, hash_value, bucket, *tail))
    return results
