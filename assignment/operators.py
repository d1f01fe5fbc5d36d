"""Predicates for the value operators that need more than a one-line closure: JS-style ordering,
semver comparison, regular expressions and membership. Used by :mod:`assignment.conditions`."""

from __future__ import annotations

import operator
import re
import weakref
from collections.abc import Callable
from typing import Any

from assignment.values import (
    get_path,
    is_in,
    is_numeric,
    js_less_than,
    padded_version_string,
    padded_version_text,
)

__all__ = [
    "comparison_predicate",
    "fused_attribute_predicate",
    "membership_predicate",
    "regex_predicate",
    "string_column_test",
    "version_comparison_predicate",
]

CondResult = bool | None
Predicate = Callable[[Any], CondResult]


def _true(_: Any) -> CondResult:
    return True


def _false(_: Any) -> CondResult:
    return False


def comparison_predicate(op: str, operand: Any) -> Predicate:
    """``$lt`` ``$lte`` ``$gt`` ``$gte`` with JavaScript's relational semantics, as the reference SDK
    and the conformance cases have them: a missing attribute is null (0), numeric strings compare
    with numbers as numbers, two strings compare by UTF-16 code units."""
    if is_numeric(operand) and operand == operand:
        number = operand  # fast path: number against number, else JS coercion
        if op == "$lt":
            return lambda v: (
                v < number if type(v) is int or type(v) is float else js_less_than(v, number) is True
            )
        if op == "$gt":
            return lambda v: (
                v > number if type(v) is int or type(v) is float else js_less_than(number, v) is True
            )
        if op == "$lte":
            return lambda v: (
                v <= number if type(v) is int or type(v) is float else js_less_than(number, v) is False
            )
        return lambda v: (
            v >= number if type(v) is int or type(v) is float else js_less_than(v, number) is False
        )
    if op == "$lt":
        return lambda v: js_less_than(v, operand) is True
    if op == "$gt":
        return lambda v: js_less_than(operand, v) is True
    if op == "$lte":
        return lambda v: js_less_than(operand, v) is False
    return lambda v: js_less_than(v, operand) is False


def version_comparison_predicate(op: str, operand: Any) -> Predicate:
    expected = padded_version_string(operand)
    wanted = {
        "$veq": (0,),
        "$vne": (-1, 1),
        "$vlt": (-1,),
        "$vlte": (-1, 0),
        "$vgt": (1,),
        "$vgte": (1, 0),
    }[op]
    if type(operand) is str:
        # Fast path for the usual string attribute: padded strings order totally, so the wanted
        # signs are one comparison (padded_version_string maps "" to "0").
        compare = {
            "$veq": operator.eq,
            "$vne": operator.ne,
            "$vlt": operator.lt,
            "$vlte": operator.le,
            "$vgt": operator.gt,
            "$vgte": operator.ge,
        }[op]
        padded = padded_version_text

        def string_version_comparison(v: Any) -> CondResult:
            if type(v) is str:
                return compare(padded(v or "0"), expected)
            actual = padded_version_string(v)
            return ((actual > expected) - (actual < expected)) in wanted

        return string_version_comparison

    def version_comparison(v: Any) -> CondResult:
        # the JavaScript reference: any value that is not a non-empty string or a number (a missing
        # attribute, null, a boolean, a list) is version "0" (docs/assignment.md, SDK divergences)
        actual = padded_version_string(v)
        return ((actual > expected) - (actual < expected)) in wanted

    return version_comparison


def regex_predicate(op: str, operand: Any) -> Predicate:
    negated = op.startswith("$not")
    try:
        pattern = re.compile(operand, re.IGNORECASE if op.endswith("i") else 0)
    except Exception:
        return _true if negated else _false

    def regex(v: Any) -> CondResult:
        try:
            found = bool(pattern.search(v))
        except Exception:
            return negated  # a missing value does not match: $notRegex passes
        return not found if negated else found

    return regex


def membership_predicate(op: str, operand: Any) -> Predicate:
    if not isinstance(operand, list):
        return _false
    insensitive = op in ("$ini", "$nini")
    negated = op in ("$nin", "$nini")
    values = operand
    if not insensitive:
        strings = frozenset(item for item in values if isinstance(item, str))

        def member(v: Any) -> CondResult:
            found = v in strings if type(v) is str else is_in(values, v)
            return not found if negated else found

        return member

    def member_insensitive(v: Any) -> CondResult:
        found = is_in(values, v, insensitive=True)
        return not found if negated else found

    return member_insensitive


_ORDERINGS = {"$lt": operator.lt, "$lte": operator.le, "$gt": operator.gt, "$gte": operator.ge}


_STRING_COLUMN_TESTS: weakref.WeakKeyDictionary[Callable[..., Any], tuple[str, Callable[[str], Any]]] = (
    weakref.WeakKeyDictionary()
)


def string_column_test(predicate: Callable[..., Any]) -> tuple[str, Callable[[str], Any]] | None:
    """``(attribute, test)`` when ``predicate`` is a fused one whose answer for a unit whose
    attribute is a string ``v`` is ``bool(test(v))`` (a ``$regex``): bulk evaluation maps ``test``
    over a column of strings instead of calling the predicate per unit."""
    return _STRING_COLUMN_TESTS.get(predicate)


def fused_attribute_predicate(path: str, condition: Any) -> Predicate | None:
    """``{path: {"$op": operand}}`` for an undotted path and a common operator as one closure:
    the usual attribute type is decided inline, anything else goes to the operator's predicate
    (same results, one Python call less per check). None for other conditions."""
    if not (isinstance(condition, dict) and len(condition) == 1):
        return None
    ((op, operand),) = condition.items()
    if op in _ORDERINGS and is_numeric(operand) and operand == operand:
        order = _ORDERINGS[op]
        general = comparison_predicate(op, operand)

        def ordered(x: Any) -> CondResult:
            v = x.get(path) if type(x) is dict else get_path(x, path)
            if type(v) is int or type(v) is float:
                return bool(order(v, operand))
            return general(v)

        return ordered
    if op in ("$in", "$nin") and isinstance(operand, list):
        strings = frozenset(item for item in operand if isinstance(item, str))
        member = membership_predicate(op, operand)
        negated = op == "$nin"

        def membership(x: Any) -> CondResult:
            v = x.get(path) if type(x) is dict else get_path(x, path)
            if type(v) is str:
                return (v not in strings) if negated else (v in strings)
            return member(v)

        return membership
    if op == "$regex" and isinstance(operand, str):
        try:
            pattern = re.compile(operand)
        except Exception:
            return None  # the general predicate decides (it never matches)
        search = pattern.search
        general = regex_predicate(op, operand)

        def regex(x: Any) -> CondResult:
            v = x.get(path) if type(x) is dict else get_path(x, path)
            if type(v) is str:
                return search(v) is not None
            return general(v)

        _STRING_COLUMN_TESTS[regex] = (path, search)
        return regex
    return None
