"""JavaScript value semantics the condition language needs, in Python.

GrowthBook's reference SDK is JavaScript, so conditions compare values the way JS does: ``true``
never equals ``1``, arrays and objects are never ``===``, strings order by UTF-16 code units,
numbers print as ``String(number)``, and a dotted path reads own keys only (``tags.0``,
``tags.length``). These helpers reproduce that on values decoded from JSON.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

from assignment.hashing import js_number_to_string

__all__ = [
    "compare",
    "get_path",
    "get_type",
    "is_in",
    "is_numeric",
    "is_orderable",
    "js_less_than",
    "js_strict_equal",
    "padded_version_string",
    "padded_version_text",
    "strict_deep_equal",
]


def is_numeric(value: Any) -> bool:
    """A JSON number (booleans excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def get_type(value: Any) -> str:
    """The ``$type`` name of a value: null, boolean, number, string, array, object or unknown."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if is_numeric(value):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | set):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "unknown"


def _is_array_index(key: str, length: int) -> bool:
    """A canonical array index below ``length``: "0" or "12", never "01" or "-0"."""
    return (
        len(key) <= 10
        and key.isascii()
        and key.isdigit()
        and (key == "0" or key[0] != "0")
        and int(key) < length
    )


def get_path(attributes: Any, path: str) -> Any:
    """Read a dotted path like JS property access on own keys; None when any step is missing."""
    current: Any = attributes
    for segment in path.split("."):
        if isinstance(current, dict) and segment in current:
            current = current[segment]
        elif isinstance(current, list) and segment == "length":
            current = len(current)
        elif isinstance(current, list) and _is_array_index(segment, len(current)):
            current = current[int(segment)]
        else:
            return None
    return current


def _js_key_order(obj: dict[Any, Any]) -> list[Any]:
    """Keys in JS property order: array-index keys ascending, then the rest in insertion order."""
    keys = list(obj)
    indices = [k for k in keys if isinstance(k, str) and _is_array_index(k, 2**32 - 1)]
    others = [k for k in keys if not (isinstance(k, str) and _is_array_index(k, 2**32 - 1))]
    return sorted(indices, key=int) + others


def _json_value(value: Any) -> Any:
    """JSON.stringify writes NaN and Infinity as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def strict_deep_equal(a: Any, b: Any) -> bool:
    """Literal equality as JS compares JSON.stringify output: same JSON type at every level."""
    type_a = get_type(a)
    if type_a != get_type(b):
        return False
    if type_a == "array":
        return len(a) == len(b) and all(
            strict_deep_equal(_json_value(x), _json_value(y)) for x, y in zip(a, b, strict=False)
        )
    if type_a == "object":
        return _js_key_order(a) == _js_key_order(b) and all(
            strict_deep_equal(_json_value(a[k]), _json_value(b[k])) for k in a
        )
    return bool(a == b)


def js_strict_equal(a: Any, b: Any) -> bool:
    """JS ``===`` between decoded JSON values: same primitive type and equal; containers never."""
    type_a = get_type(a)
    if type_a != get_type(b) or type_a in ("array", "object"):
        return False
    return bool(a == b)


def is_orderable(a: Any, b: Any) -> bool:
    """Only two numbers or two strings can be ordered."""
    return (is_numeric(a) and is_numeric(b)) or (isinstance(a, str) and isinstance(b, str))


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1; strings by UTF-16 code units like JS. Raises ValueError on NaN (unordered)."""
    if (isinstance(a, float) and math.isnan(a)) or (isinstance(b, float) and math.isnan(b)):
        raise ValueError("NaN is unordered")
    if isinstance(a, str) and isinstance(b, str) and not (a.isascii() and b.isascii()):
        units_a = a.encode("utf-16-be", "surrogatepass")
        units_b = b.encode("utf-16-be", "surrogatepass")
        return (units_a > units_b) - (units_a < units_b)
    if a > b:
        return 1
    if a < b:
        return -1
    return 0


_JS_WHITESPACE = (
    " \t\n\v\f\r\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
_JS_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)")
_JS_RADIX = {"0x": 16, "0o": 8, "0b": 2}


def _js_string_to_number(text: str) -> float:
    """JavaScript's ``Number(string)``: trimmed decimal, ±Infinity, 0x/0o/0b literals; else NaN."""
    text = text.strip(_JS_WHITESPACE)
    if not text:
        return 0.0
    if _JS_DECIMAL.fullmatch(text):
        return float(text)
    if text in ("Infinity", "+Infinity"):
        return math.inf
    if text == "-Infinity":
        return -math.inf
    radix = _JS_RADIX.get(text[:2].lower())
    if radix is not None and len(text) > 2:
        try:
            return float(int(text[2:], radix))
        except ValueError:
            return math.nan
    return math.nan


def _js_to_primitive(value: Any) -> Any:
    """ToPrimitive for JSON values: arrays join with commas, objects print as [object Object]."""
    if isinstance(value, list):
        return ",".join("" if item is None else _js_to_string(item) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    return value


def _js_to_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if is_numeric(value):
        return js_number_to_string(value)
    if isinstance(value, str):
        return value
    return str(_js_to_primitive(value))


def _js_to_number(value: Any) -> float:
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if is_numeric(value):
        return float(value)
    if isinstance(value, str):
        return _js_string_to_number(value)
    return math.nan


def js_less_than(a: Any, b: Any) -> bool | None:
    """JavaScript's ``a < b`` on JSON values (null for a missing attribute); None when undefined
    (a NaN on either side), so ``a <= b`` is ``js_less_than(b, a) is False``."""
    a = _js_to_primitive(a)
    b = _js_to_primitive(b)
    if isinstance(a, str) and isinstance(b, str):
        if a.isascii() and b.isascii():
            return a < b
        return a.encode("utf-16-be", "surrogatepass") < b.encode("utf-16-be", "surrogatepass")
    if is_numeric(a) and is_numeric(b) and not isinstance(a, float) and not isinstance(b, float):
        return bool(a < b)
    x = _js_to_number(a)
    y = _js_to_number(b)
    if math.isnan(x) or math.isnan(y):
        return None
    return x < y


def _contains_boolean_or_number(values: list[Any], value: Any) -> bool:
    """Find 0/1 or False/True in ``values`` without Python's bool/int equality aliasing."""
    start = 0
    while True:
        try:
            index = values.index(value, start)
        except ValueError:
            return False
        if isinstance(values[index], bool) == isinstance(value, bool):
            return True
        start = index + 1


def _case_fold(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def is_in(condition_values: list[Any], attribute_value: Any, insensitive: bool = False) -> bool:
    """``$in``: the value is one of ``condition_values``; an array attribute needs one in common."""
    if insensitive:
        if isinstance(attribute_value, list):
            return any(
                js_strict_equal(_case_fold(item), _case_fold(expected))
                for item in attribute_value
                for expected in condition_values
            )
        folded = _case_fold(attribute_value)
        return any(js_strict_equal(folded, _case_fold(expected)) for expected in condition_values)
    if isinstance(attribute_value, list):
        try:
            matches = set(condition_values) & set(attribute_value)
            if not matches or matches.difference((0, 1)):
                return bool(matches)
            return any(
                _contains_boolean_or_number(condition_values, item)
                for item in attribute_value
                if item == 0 or item == 1
            )
        except TypeError:  # unhashable members (objects, arrays)
            pass
        return any(
            js_strict_equal(item, expected) for item in attribute_value for expected in condition_values
        )
    if isinstance(attribute_value, dict):
        return False
    if attribute_value == 0 or attribute_value == 1:
        return _contains_boolean_or_number(condition_values, attribute_value)
    return attribute_value in condition_values


_VERSION_STRIP = re.compile(r"(^v|\+.*$)")
_VERSION_SPLIT = re.compile(r"[-.]")


@lru_cache(maxsize=4096)
def _padded_version_text(text: str) -> str:
    parts = _VERSION_SPLIT.split(_VERSION_STRIP.sub("", text))
    if len(parts) == 3:
        parts.append("~")  # a release sorts after its pre-releases
    return "-".join(part.rjust(5, " ") if part.isdigit() else part for part in parts)


padded_version_text = _padded_version_text  # for a non-empty string, padded_version_string itself


def padded_version_string(value: Any) -> str:
    """A version as a string that orders like semver: numeric parts left-padded, ``~`` for releases."""
    if is_numeric(value):
        value = js_number_to_string(value)
    if not value or not isinstance(value, str):
        value = "0"
    return _padded_version_text(value)
