"""The export API's pure parts: cursors (round trip, refusals) and the rate limiter (injected clock)."""

from __future__ import annotations

import datetime as dt

import pytest

from dashboards.export_api import RateLimiter, decode_cursor, encode_cursor, page_json_schema
from jobs.exports.datasets import PAGED_DATASETS
from xpcore.errors import ValidationError

T0 = dt.datetime(2024, 5, 17, 6, 30, 1, 250000, tzinfo=dt.UTC)
RESULTS = PAGED_DATASETS["results"]
ROW = {"experiment_key": "checkout", "metric": "revenue", "variation_id": 2, "computed_at": T0, "mean": 1.0}


def test_a_cursor_round_trips_only_for_its_own_query() -> None:
    cursor = encode_cursor(RESULTS, ROW, "q1")
    assert decode_cursor(cursor, RESULTS, "q1") == ["checkout", "revenue", 2, T0]
    with pytest.raises(ValidationError, match="another dataset, window or filter"):
        decode_cursor(cursor, RESULTS, "q2")
    with pytest.raises(ValidationError, match="another dataset"):
        decode_cursor(cursor, PAGED_DATASETS["events"], "q1")
    for garbage in ("", "%%%", "a" * 5000, "bnVsbA"):  # "bnVsbA" is base64 of null
        with pytest.raises(ValidationError, match="cursor is not valid"):
            decode_cursor(garbage, RESULTS, "q1")


def test_rate_limiter_refills_with_the_clock() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=2, clock=lambda: now[0])
    assert [limiter.allow("a"), limiter.allow("a")] == [0.0, 0.0]
    wait = limiter.allow("a")
    assert wait == pytest.approx(30.0)
    assert limiter.allow("b") == 0.0  # another caller, its own allowance
    now[0] = 30.0
    assert limiter.allow("a") == 0.0
    assert limiter.allow("a") > 0


def test_the_page_schema_names_every_dataset() -> None:
    schema = page_json_schema()
    assert schema["properties"]["dataset"]["enum"] == sorted(PAGED_DATASETS)
    assert schema["additionalProperties"] is False
