"""Hypothesis strategies for hostile records: well-formed ones, near misses and plain junk."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import strategies as st

FINITE = st.floats(allow_nan=False, allow_infinity=False)
HOSTILE_FLOATS = st.one_of(
    FINITE,
    st.sampled_from([math.inf, -math.inf, math.nan, 1.7e308, -1.7e308, 1e300, 5e-324, -0.0]),
)
"""Numbers a producer may send: any finite float plus the poison values (NaN, ±Infinity, near max)."""

IDS = st.one_of(
    st.text(min_size=1, max_size=40),
    st.sampled_from(
        ["", " ", "\x00", "a" * 300, "u1", "e1", "\ud800".encode("utf-8", "surrogatepass").hex()]
    ),
)
TIMES = st.one_of(
    st.sampled_from(
        [
            "2024-05-01T12:00:00Z",
            "2024-05-01T12:00:00.123456+02:00",
            "2024-05-01T12:00:00",  # naive
            "1800-01-01T00:00:00Z",  # before DateTime64's range
            "9999-12-31T23:59:59Z",
            "not a time",
            "",
        ]
    ),
    st.integers(),
    st.none(),
)
JSON_LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), FINITE, st.text(max_size=20))
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _number_text(value: float) -> str:
    """JSON text of a float, including the non-standard NaN/Infinity spellings producers do send."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


@st.composite
def event_objects(draw: st.DrawFn) -> dict[str, Any]:
    """A metric event as a JSON object: every field present, missing, or of a wrong type."""
    fields: dict[str, Any] = {
        "event_id": draw(IDS),
        "unit_id": draw(IDS),
        "event_name": draw(st.sampled_from(["purchase", "pageview", "", "unknown_event", "x" * 200])),
        "value": draw(st.one_of(st.none(), HOSTILE_FLOATS, st.text(max_size=5), st.integers())),
        "occurred_at": draw(TIMES),
        "properties": draw(
            st.one_of(st.just({}), st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3))
        ),
    }
    drop = draw(st.sets(st.sampled_from(sorted(fields)), max_size=2))
    return {k: v for k, v in fields.items() if k not in drop}


@st.composite
def exposure_objects(draw: st.DrawFn) -> dict[str, Any]:
    """An exposure as a JSON object: every field present, missing, or of a wrong type."""
    fields: dict[str, Any] = {
        "exposure_id": draw(IDS),
        "unit_id": draw(IDS),
        "hash_attribute": draw(st.sampled_from(["id", "", "device_id"])),
        "experiment_key": draw(st.sampled_from(["exp-a", "exp-b", "", "unknown"])),
        "variation_id": draw(st.one_of(st.integers(-3, 70000), st.text(max_size=3), st.none())),
        "variation_key": draw(st.text(max_size=10)),
        "source": draw(st.sampled_from(["sdk", "server", "bogus", ""])),
        "exposed_at": draw(TIMES),
    }
    drop = draw(st.sets(st.sampled_from(sorted(fields)), max_size=2))
    return {k: v for k, v in fields.items() if k not in drop}


def to_json_bytes(obj: Any) -> bytes:
    """JSON bytes of ``obj``; non-finite floats spelled the way JavaScript-ish producers spell them."""
    return json.dumps(obj, allow_nan=True).encode()


def nested(depth: int) -> bytes:
    """A JSON value nested ``depth`` arrays deep inside an object field."""
    return b'{"event_id": "e", "properties": ' + b"[" * depth + b"]" * depth + b"}"


RAW_VALUES = st.one_of(
    st.binary(max_size=300),
    event_objects().map(to_json_bytes),
    exposure_objects().map(to_json_bytes),
    JSON_VALUES.map(to_json_bytes),
    st.integers(1, 20_000).map(nested),
    st.builds(lambda b, cut: b[:cut], event_objects().map(to_json_bytes), st.integers(0, 60)),  # truncated
    st.none(),
)
"""Kafka values as a producer might send them: valid records, near misses, truncations, deep nesting,
invalid UTF-8, empty messages."""

__all__ = ["HOSTILE_FLOATS", "RAW_VALUES", "event_objects", "exposure_objects", "nested", "to_json_bytes"]
