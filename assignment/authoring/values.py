"""The value types of the experiments YAML: keys, times, namespaces, JSON values (pure).

Each type is a pydantic annotation whose validator raises :func:`problem`, a pydantic error that
carries the words the user sees (:mod:`assignment.authoring.problems` turns it into one line) and,
for a nested value, where inside the field it is (``at``, e.g. ``.colors[2]``).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BeforeValidator
from pydantic_core import PydanticCustomError

__all__ = [
    "KEY_PATTERN",
    "KEY_PROBLEM",
    "PROBLEM",
    "JsonValue",
    "Key",
    "Namespace",
    "Timestamp",
    "is_key",
    "json_ready",
    "problem",
]

KEY_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
"""Experiment, feature and variation keys: letters, digits, ``_ . -`` (no ``:``, used in registry keys)."""
KEY_PROBLEM: Final = "must be letters, digits, '_', '.', '-' (no spaces or ':'), ≤ 200 chars"
PROBLEM: Final = "xp_problem"
"""The pydantic error type of :func:`problem`: its message is shown as is."""

_TIME_EXAMPLE: Final = "2026-12-01T09:00:00Z"


def problem(message: str, at: str = "") -> PydanticCustomError:
    """A validation error whose ``message`` is what the user reads; ``at`` locates it inside the field."""
    return PydanticCustomError(PROBLEM, "{problem}", {"problem": message, "at": at})


def is_key(value: Any) -> bool:
    """Whether ``value`` is a valid experiment, feature or variation key."""
    return isinstance(value, str) and KEY_PATTERN.match(value) is not None


def _key(value: Any) -> Any:
    if not is_key(value):
        raise problem(KEY_PROBLEM)
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def json_ready(value: Any, at: str = "") -> Any:
    """YAML values → JSON values (dates as ISO strings); rejects what JSON cannot hold."""
    if isinstance(value, dict):
        return {str(k): json_ready(v, f"{at}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v, f"{at}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise problem("must be a finite number", at)
        return value
    raise problem(f"unsupported value of type {type(value).__name__}", at)


def _timestamp(value: Any) -> str | None:
    """A YAML time (datetime, date or ISO 8601 text with a zone) → ``2026-12-01T08:00:00Z`` (UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise problem(f"{value!r} is not an ISO 8601 time like {_TIME_EXAMPLE}") from None
    else:
        raise problem(f"must be an ISO 8601 time like {_TIME_EXAMPLE}")
    if parsed.tzinfo is None:
        raise problem(f"needs a time zone (e.g. {_TIME_EXAMPLE})")
    return parsed.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _namespace(value: Any) -> list[Any] | None:
    """``[name, start, end]`` or ``{name, start, end}`` → ``[name, start, end]`` (GrowthBook's form)."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = [value.get("name"), value.get("start"), value.get("end")]
    if not (isinstance(value, list) and len(value) == 3):
        raise problem("must be [name, start, end] or {name, start, end}")
    name, start, end = value
    if not isinstance(name, str) or not name:
        raise problem("name must be a non-empty string")
    if not (_is_number(start) and _is_number(end) and 0 <= start < end <= 1):
        raise problem("needs 0 ≤ start < end ≤ 1")
    return [name, start, end]


Key = Annotated[str, BeforeValidator(_key)]
"""An experiment, feature or variation key (:data:`KEY_PATTERN`)."""
JsonValue = Annotated[Any, AfterValidator(json_ready)]
"""Any value JSON can hold (YAML dates become ISO strings)."""
Timestamp = Annotated[str | None, BeforeValidator(_timestamp)]
"""A time with a zone, normalised to UTC ``…Z`` text."""
Namespace = Annotated[list[Any] | None, BeforeValidator(_namespace)]
"""A GrowthBook namespace ``[name, start, end]`` with ``0 ≤ start < end ≤ 1``."""
