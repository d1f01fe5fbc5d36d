"""One feature for many units at once: conditions per unit, hashing and bucketing per column.

The rule loop of :mod:`assignment.features` runs once per rule over the units still undecided
instead of once per unit: conditions are compiled closures called per unit, while hashes of a
whole column (rollouts, filters, namespaces, experiments) come from :mod:`assignment.vectorized`.
Results are identical to evaluating each unit alone (the tests check it). Features with
prerequisites, and small batches, take the per-unit path.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from assignment.experiments import CompiledExperiment, CompiledFilter
from assignment.features import CompiledFeature, CompiledRule
from assignment.hashing import hash_string, is_hashable
from assignment.operators import string_column_test
from assignment.results import FeatureResult
from assignment.vectorized import choose_variation_many, gbhash_many, in_ranges_many

if TYPE_CHECKING:
    from assignment.compiled import CompiledPayload

__all__ = ["MIN_VECTORIZED_UNITS", "evaluate_feature_many"]

MIN_VECTORIZED_UNITS = 32

IndexArray = npt.NDArray[np.intp]


_MEMO_MAX_ATTRIBUTES = 4


def _condition_mask(
    rule: CompiledRule, units: Sequence[Mapping[str, Any]], rows: IndexArray
) -> npt.NDArray[np.bool_]:
    """The rule's condition for each row, evaluated once per combination of the attribute values
    it reads (typed, so ``True`` and ``1`` never share an entry): the combinations are gathered as
    a column, their first rows found with one dict, and the answers spread back with one map."""
    condition = rule.condition
    assert condition is not None
    names = rule.condition_attributes
    if rows.size == len(units):
        selected: Sequence[Mapping[str, Any]] = units
    else:
        selected = [units[row] for row in rows.tolist()]
    if not names or len(names) > _MEMO_MAX_ATTRIBUTES:  # none read (e.g. `$or: []`): no key to memoize on
        return np.fromiter(map(condition, selected), dtype=bool, count=len(selected))
    columns = [[unit.get(name) for unit in selected] for name in names]
    keys: list[Any] = columns[0] if len(columns) == 1 else list(zip(*columns, strict=True))
    kinds: set[type] = set()
    for column in columns:
        kinds.update(map(type, column))
    column_test = string_column_test(rule.predicate) if rule.predicate is not None else None
    if column_test is not None and kinds == {str} and (column_test[0],) == names:
        found = map(column_test[1], cast(list[str], columns[0]))
        return np.fromiter(map(bool, found), dtype=np.bool_, count=len(selected))
    if not kinds <= _PLAIN_KINDS:
        keys = list(zip(keys, *(map(type, column) for column in columns), strict=True))
    try:
        first_rows = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1), strict=True))
    except TypeError:  # a list or object among the values: not hashable
        return _condition_mask_per_row(condition, selected, columns)
    memo = {key: bool(condition(selected[row])) for key, row in first_rows.items()}
    return np.fromiter(map(memo.__getitem__, keys), dtype=bool, count=len(keys))


_PLAIN_KINDS = frozenset({str, type(None)})
"""Attribute types whose values never compare equal across types: the value alone is the key."""


def _condition_mask_per_row(
    condition: Any, selected: Sequence[Mapping[str, Any]], columns: list[list[Any]]
) -> npt.NDArray[np.bool_]:
    """The memo row by row, for columns holding unhashable values (those rows are evaluated)."""
    memo: dict[Any, bool] = {}
    matched: list[bool] = []
    append = matched.append
    for unit, values in zip(selected, zip(*columns, strict=True), strict=True):
        key = (values, tuple(map(type, values)))
        try:
            hit = memo.get(key)
        except TypeError:
            append(bool(condition(unit)))
            continue
        if hit is None:
            hit = memo[key] = bool(condition(unit))
        append(hit)
    return np.array(matched, dtype=np.bool_)


def _hash_strings(units: Sequence[Mapping[str, Any]], rows: IndexArray, attribute: str) -> list[str]:
    raws = [units[row].get(attribute) for row in rows.tolist()]
    return [raw if type(raw) is str else hash_string(raw) for raw in raws]


def _rollout_strings(
    units: Sequence[Mapping[str, Any]], rows: IndexArray, attribute: str, fallback: str | None
) -> list[str]:
    if not fallback:
        return _hash_strings(units, rows, attribute)
    strings = []
    for row in rows.tolist():
        unit = units[row]
        raw = unit.get(attribute)
        if not is_hashable(raw):
            raw = unit.get(fallback)
        strings.append(hash_string(raw))
    return strings


def _passing_filters(
    filters: Sequence[CompiledFilter], units: Sequence[Mapping[str, Any]], rows: IndexArray
) -> IndexArray:
    for compiled_filter in filters:
        if rows.size == 0:
            break
        strings = _hash_strings(units, rows, compiled_filter.attribute)
        keep = np.fromiter(map(bool, strings), dtype=bool, count=len(strings))
        n = gbhash_many(compiled_filter.hasher._seed, strings, compiled_filter.hasher.version)
        if n is None:
            return rows[:0]
        keep &= in_ranges_many(n, compiled_filter.ranges)
        rows = rows[keep]
    return rows


def _in_rollout(rule: CompiledRule, units: Sequence[Mapping[str, Any]], rows: IndexArray) -> IndexArray:
    if rule.coverage is None and rule.range is None:
        return rows
    if rule.coverage == 0 and rule.range is None:
        return rows[:0]
    strings = _rollout_strings(units, rows, rule.hash_attribute, rule.fallback_attribute)
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
    units: Sequence[Mapping[str, Any]],
    rows: IndexArray,
    results: list[FeatureResult | None],
) -> IndexArray:
    """Assign ``rows``; write results of units in the experiment; return the rows decided."""
    if experiment.skip or not experiment.active or experiment.qa_mode or experiment.stopped:
        return rows[:0]
    if experiment.force is not None:  # not produced by feature rules; keep one code path for it
        return rows[:0]
    strings = _hash_strings(units, rows, experiment.hash_attribute)
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
    per_variation = [
        (experiment.variations[index], key, name)
        for index, (key, name, _) in enumerate(experiment.variation_meta)
    ]
    attribute = experiment.hash_attribute
    rule_id = rule.id
    experiment_key = experiment.key
    new = tuple.__new__  # FeatureResult is a NamedTuple: skip its Python-level __new__
    for row, variation, bucket in zip(
        decided.tolist(), variations[selected].tolist(), n[selected].tolist(), strict=True
    ):
        value, key, name = per_variation[variation]
        results[row] = new(
            FeatureResult,
            (
                value,
                "experiment",
                rule_id,
                experiment_key,
                True,
                variation,
                True,
                attribute,
                units[row].get(attribute),
                bucket,
                key,
                name,
                False,
            ),
        )
    return decided


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
        return _evaluate_vectorized(feature, units)
    finally:
        if collecting:
            gc.enable()


def _evaluate_vectorized(feature: CompiledFeature, units: Sequence[Mapping[str, Any]]) -> list[FeatureResult]:
    results: list[FeatureResult | None] = [None] * len(units)
    pending = np.ones(len(units), dtype=bool)
    for rule in feature.rules:
        rows = np.flatnonzero(pending)
        if rows.size == 0:
            break
        if rule.condition is not None:
            rows = rows[_condition_mask(rule, units, rows)]
        if rule.filters is not None:
            rows = _passing_filters(rule.filters, units, rows)
        if rows.size == 0:
            continue
        if rule.force_result is not None:
            included = _in_rollout(rule, units, rows)
            force_result = rule.force_result
            for row in included.tolist():
                results[row] = force_result
            pending[included] = False
        elif rule.experiment is not None:
            decided = _run_experiment(rule, rule.experiment, units, rows, results)
            pending[decided] = False
    default = feature.default_result
    return [default if result is None else result for result in results]
