"""GrowthBook's targeting condition language, compiled once into Python closures.

A condition is a MongoDB-like document: ``{"country": {"$in": ["US", "CA"]}, "age": {"$gte": 18}}``.
:func:`compile_condition` turns it (and the saved groups it references) into a predicate over a
unit's attributes, so evaluating a unit costs no parsing. Semantics follow GrowthBook's SDKs:

- logical: ``$and`` ``$or`` ``$nor`` ``$not``; ``$savedGroup`` (typed saved groups, cycle-safe)
- comparison: ``$eq`` ``$ne`` ``$lt`` ``$lte`` ``$gt`` ``$gte`` (numbers with numbers, strings with
  strings by UTF-16 code units); literals compare as JSON (``true`` never equals ``1``)
- membership: ``$in`` ``$nin`` ``$ini`` ``$nini`` ``$all`` ``$alli`` ``$size`` ``$elemMatch``
  ``$inGroup`` ``$notInGroup`` (legacy saved groups: lists of values)
- ``$exists`` ``$type`` ``$regex`` ``$regexi`` ``$notRegex`` ``$notRegexi`` ``$not``
- versions: ``$veq`` ``$vne`` ``$vgt`` ``$vgte`` ``$vlt`` ``$vlte``

Predicates are three-valued: True, False, or None when the result depends on an operator this
engine does not know (treated as failing at the top, as GrowthBook does). A malformed condition
fails as a whole, wherever the malformed part is reached, so ``$not`` cannot turn it into a match.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from typing import Any

from assignment.operators import (
    comparison_predicate,
    fused_attribute_predicate,
    membership_predicate,
    regex_predicate,
    version_comparison_predicate,
)
from assignment.values import (
    get_path,
    get_type,
    is_in,
    is_numeric,
    js_strict_equal,
    strict_deep_equal,
)

__all__ = [
    "EVAL_ERRORS",
    "CondResult",
    "Predicate",
    "as_condition",
    "attribute_checks",
    "compile_condition",
    "compile_predicate",
    "condition_attributes",
    "eval_condition",
]

CondResult = bool | None
Predicate = Callable[[Any], CondResult]

_EVAL_ERRORS = (TypeError, ValueError, AttributeError, IndexError, RecursionError, KeyError)
_CONDITION_KEYS = ("$or", "$nor", "$and", "$savedGroup")
_VERSION_OPS = ("$veq", "$vne", "$vlt", "$vlte", "$vgt", "$vgte")


def _malformed(_: Any) -> CondResult:
    raise TypeError("malformed condition")


def _true(_: Any) -> CondResult:
    return True


def _false(_: Any) -> CondResult:
    return False


def _unknown(_: Any) -> CondResult:
    return None


def _negate(predicate: Predicate) -> Predicate:
    def negated(x: Any) -> CondResult:
        r = predicate(x)
        return None if r is None else not r

    return negated


def _all_of(predicates: list[Predicate]) -> Predicate:
    if not predicates:
        return _true
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates

        def both(x: Any) -> CondResult:
            r1 = first(x)
            if r1 is False:
                return False
            r2 = second(x)
            if r2 is False:
                return False
            return None if r1 is None or r2 is None else True

        return both

    def every(x: Any) -> CondResult:
        result: CondResult = True
        for predicate in predicates:
            r = predicate(x)
            if r is False:
                return False
            if r is None:
                result = None
        return result

    return every


def _any_of(predicates: list[Predicate]) -> Predicate:
    if not predicates:
        return _true  # an empty $or passes, as in every SDK
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates

        def either(x: Any) -> CondResult:
            r1 = first(x)
            if r1 is True:
                return True
            r2 = second(x)
            if r2 is True:
                return True
            return None if r1 is None or r2 is None else False

        return either

    def some(x: Any) -> CondResult:
        result: CondResult = False
        for predicate in predicates:
            r = predicate(x)
            if r is True:
                return True
            if r is None:
                result = None
        return result

    return some


class _Compiler:
    """Compiles conditions against one payload's saved groups."""

    def __init__(self, saved_groups: Mapping[str, Any] | None) -> None:
        self.saved_groups: Mapping[str, Any] = saved_groups or {}

    # -- documents: {attribute: value-condition, "$or": [...], ...} -------------------------------

    def document(self, condition: Any, visited: frozenset[str]) -> Predicate:
        if not isinstance(condition, dict):
            return _malformed
        if len(condition) > 1 and all(key[:1] != "$" and "." not in key for key in condition):
            return self._attributes([(key, self.value(value, visited)) for key, value in condition.items()])
        parts: list[Predicate] = []
        for key, value in condition.items():
            if key == "$or":
                parts.append(self._list(value, visited, any_of=True))
            elif key == "$nor":
                parts.append(_negate(self._list(value, visited, any_of=True)))
            elif key == "$and":
                parts.append(self._list(value, visited, any_of=False))
            elif key == "$not":
                parts.append(_negate(self.document(value, visited)))
            elif key == "$savedGroup":
                parts.append(self._saved_group(value, visited))
            elif key == "$savedGroups":
                parts.append(_false)
            elif "." not in key and isinstance(value, str):
                parts.append(self._string_attribute(key, value))
            elif "." not in key and (fused := fused_attribute_predicate(key, value)) is not None:
                parts.append(fused)
            else:
                parts.append(self._attribute(key, self.value(value, visited)))
        return _all_of(parts)

    def _list(self, value: Any, visited: frozenset[str], any_of: bool) -> Predicate:
        if not isinstance(value, list | dict | str):
            return _malformed  # len()/iteration fails in the reference SDK
        predicates = [self.document(item, visited) for item in value]
        if not predicates:
            return _true
        return _any_of(predicates) if any_of else _all_of(predicates)

    @staticmethod
    def _attributes(checks: list[tuple[str, Predicate]]) -> Predicate:
        """Several plain (undotted) attributes, all required: ``_all_of`` of ``_attribute``s in one
        closure (same order, same three-valued result)."""

        def attributes(x: Any) -> CondResult:
            result: CondResult = True
            if type(x) is dict:
                get = x.get
                for path, check in checks:
                    r = check(get(path))
                    if r is False:
                        return False
                    if r is None:
                        result = None
                return result
            for path, check in checks:
                r = check(get_path(x, path))
                if r is False:
                    return False
                if r is None:
                    result = None
            return result

        _ATTRIBUTE_CHECKS[attributes] = tuple(checks)
        return attributes

    @staticmethod
    def _attribute(path: str, check: Predicate) -> Predicate:
        if "." in path:
            return lambda x: check(get_path(x, path))

        def attribute(x: Any) -> CondResult:
            if type(x) is dict:
                return check(x.get(path))
            return check(get_path(x, path))

        return attribute

    @staticmethod
    def _string_attribute(path: str, expected: str) -> Predicate:
        """``{path: "literal"}`` for an undotted path: ``_attribute`` and ``value`` in one closure."""

        def equals(x: Any) -> CondResult:
            v = x.get(path) if type(x) is dict else get_path(x, path)
            return isinstance(v, str) and v == expected

        return equals

    def _saved_group(self, reference: Any, visited: frozenset[str]) -> Predicate:
        if not isinstance(reference, dict):
            return _false
        group_id = reference.get("id")
        if not isinstance(group_id, str) or group_id in visited:
            return _false
        if "attributeKey" in reference and not isinstance(reference["attributeKey"], str):
            return _false
        entry = self.saved_groups.get(group_id)
        if not isinstance(entry, dict):
            return _false
        if entry.get("type") == "list":
            key = reference.get("attributeKey", entry.get("attributeKey"))
            values = entry.get("values")
            if not isinstance(key, str) or not isinstance(values, list):
                return _false
            return self._attribute(key, lambda v: is_in(values, v))
        if entry.get("type") == "condition":
            inner = entry.get("condition")
            if not isinstance(inner, dict):
                return _false
            return self.document(inner, visited | {group_id})
        return _unknown  # a group type newer than this engine

    # -- value conditions: a literal, or {"$op": operand, ...} ------------------------------------

    def value(self, condition: Any, visited: frozenset[str], insensitive: bool = False) -> Predicate:
        if isinstance(condition, dict) and all(key.startswith("$") for key in condition):
            return _all_of([self.operator(op, operand, visited) for op, operand in condition.items()])
        if insensitive and isinstance(condition, str):
            folded = condition.lower()
            return lambda v: folded == v.lower() if isinstance(v, str) else False
        if isinstance(condition, str):
            return lambda v: isinstance(v, str) and v == condition
        if isinstance(condition, bool):
            return lambda v: isinstance(v, bool) and v == condition
        if condition is None:
            return lambda v: v is None
        if is_numeric(condition):
            return lambda v: is_numeric(v) and v == condition
        return lambda v: strict_deep_equal(condition, v)

    def operator(self, op: str, operand: Any, visited: frozenset[str]) -> Predicate:
        if op == "$eq":
            return lambda v: js_strict_equal(v, operand)
        if op == "$ne":
            return lambda v: not js_strict_equal(v, operand)
        if op in ("$lt", "$lte", "$gt", "$gte"):
            return comparison_predicate(op, operand)
        if op in _VERSION_OPS:
            return version_comparison_predicate(op, operand)
        if op in ("$inGroup", "$notInGroup"):
            return self._in_group(op, operand)
        if op in ("$regex", "$regexi", "$notRegex", "$notRegexi"):
            return regex_predicate(op, operand)
        if op in ("$in", "$nin", "$ini", "$nini"):
            return membership_predicate(op, operand)
        if op == "$elemMatch":
            return self._elem_match(operand, visited)
        if op == "$size":
            check_size = self.value(operand, visited)
            return lambda v: check_size(len(v)) if isinstance(v, list) else False
        if op in ("$all", "$alli"):
            return self._all(operand, visited, insensitive=op == "$alli")
        if op == "$exists":
            if not operand:
                return lambda v: v is None
            return lambda v: v is not None
        if op == "$type":
            return lambda v: get_type(v) == operand
        if op == "$not":
            return _negate(self.value(operand, visited))
        if op in _CONDITION_KEYS:
            return _false
        return _unknown

    def _in_group(self, op: str, group_id: Any) -> Predicate:
        if not isinstance(group_id, str):
            return _false
        entry = self.saved_groups.get(group_id)
        values: list[Any] | None
        if isinstance(entry, dict) and entry.get("type") not in ("list", "condition"):
            return _unknown
        if group_id not in self.saved_groups:
            values = []
        elif isinstance(entry, list):
            values = entry
        elif (
            isinstance(entry, dict) and entry.get("type") == "list" and isinstance(entry.get("values"), list)
        ):
            values = entry["values"]
        else:
            values = None
        if values is None:
            return _false
        members = values
        if op == "$inGroup":
            return lambda v: is_in(members, v)
        return lambda v: not is_in(members, v)

    def _elem_match(self, condition: Any, visited: frozenset[str]) -> Predicate:
        on_value = (
            isinstance(condition, dict)
            and all(key.startswith("$") for key in condition)
            and not any(key in _CONDITION_KEYS for key in condition)
        )
        check = self.value(condition, visited) if on_value else self.document(condition, visited)

        def elem_match(v: Any) -> CondResult:
            if not isinstance(v, list):
                return False
            result: CondResult = False
            for item in v:
                if item is None:
                    continue
                r = check(item)
                if r is True:
                    return True
                if r is None:
                    result = None
            return result

        return elem_match

    def _all(self, operand: Any, visited: frozenset[str], insensitive: bool) -> Predicate:
        if not isinstance(operand, list):
            return _false
        checks = [self.value(item, visited, insensitive) for item in operand]

        def contains_all(v: Any) -> CondResult:
            if not isinstance(v, list):
                return False
            result: CondResult = True
            for check in checks:
                passed: CondResult = False
                for item in v:
                    r = check(item)
                    if r is True:
                        passed = True
                        break
                    if r is None:
                        passed = None
                if passed is False:
                    return False
                if passed is None:
                    result = None
            return result

        return contains_all


EVAL_ERRORS = _EVAL_ERRORS


def compile_predicate(condition: Any, saved_groups: Mapping[str, Any] | None = None) -> Predicate:
    """The three-valued predicate behind :func:`compile_condition`: it matches when it returns
    ``True`` (not merely truthy) and may raise one of ``EVAL_ERRORS``, which means no match. For
    hot loops that inline ``compile_condition``'s wrapper."""
    try:
        return _Compiler(saved_groups).document(condition, frozenset())
    except RecursionError:
        return _false


def compile_condition(condition: Any, saved_groups: Mapping[str, Any] | None = None) -> Callable[[Any], bool]:
    """Compile a condition into ``predicate(attributes) -> bool`` (unknown or malformed → False)."""
    return as_condition(compile_predicate(condition, saved_groups))


_ATTRIBUTE_CHECKS: weakref.WeakKeyDictionary[Predicate, tuple[tuple[str, Predicate], ...]] = (
    weakref.WeakKeyDictionary()
)


def attribute_checks(predicate: Predicate) -> tuple[tuple[str, Predicate], ...] | None:
    """``((attribute, check), …)`` when ``predicate`` is a conjunction of plain attributes
    (``{"country": …, "app_version": …}``): through :func:`as_condition` it holds for a unit
    exactly when ``check(unit.get(attribute)) is True`` for each, in order, without an error of
    ``EVAL_ERRORS`` (a ``False``, a ``None`` or such an error makes the whole false). Bulk
    evaluation memoizes each check per distinct value of its own attribute."""
    return _ATTRIBUTE_CHECKS.get(predicate)


def as_condition(predicate: Predicate) -> Callable[[Any], bool]:
    """A predicate of :func:`compile_predicate` as ``attributes -> bool`` (errors → False)."""

    def matches(attributes: Any) -> bool:
        try:
            return predicate(attributes) is True
        except _EVAL_ERRORS:
            return False

    return matches


def eval_condition(attributes: Any, condition: Any, saved_groups: Mapping[str, Any] | None = None) -> bool:
    """Evaluate ``condition`` against ``attributes`` once (compile and call)."""
    return compile_condition(condition, saved_groups)(attributes)


def condition_attributes(
    condition: Any, saved_groups: Mapping[str, Any] | None = None
) -> frozenset[str] | None:
    """The top-level attribute names a condition can read (through saved groups too), or None when
    that cannot be told statically (a malformed condition). Bulk evaluation memoizes a
    condition's result per combination of these attributes' values."""
    groups = saved_groups or {}
    names: set[str] = set()

    def walk(document: Any, visited: frozenset[str]) -> bool:
        if not isinstance(document, dict):
            return False
        for key, value in document.items():
            if key in ("$or", "$nor", "$and"):
                if not isinstance(value, list) or not all(walk(item, visited) for item in value):
                    return False
            elif key == "$not":
                if not walk(value, visited):
                    return False
            elif key == "$savedGroup":
                if not isinstance(value, dict):
                    continue
                group_id = value.get("id")
                entry = groups.get(group_id) if isinstance(group_id, str) else None
                if not isinstance(entry, dict) or group_id in visited:
                    continue
                attribute = value.get("attributeKey", entry.get("attributeKey"))
                if isinstance(attribute, str):
                    names.add(attribute.split(".")[0])
                inner = entry.get("condition")
                if isinstance(inner, dict) and not walk(inner, visited | {str(group_id)}):
                    return False
            elif key != "$savedGroups":
                names.add(key.split(".")[0])
        return True

    return frozenset(names) if walk(condition, frozenset()) else None
