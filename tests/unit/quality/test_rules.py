"""Window maths, freshness, volume and dead-letter rules, the JSON contract (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from quality.outcomes import CheckOutcome, fingerprint, outcomes_json
from quality.rules import dead_letter_outcome, freshness_outcome, volume_outcome
from quality.window import Window, check_window
from xpcore.errors import ValidationError

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_default_window_is_the_last_hours_and_trailing_windows_tile_backwards() -> None:
    window = check_window(since=None, until=None, hours=24, now=NOW)
    assert (window.since, window.until) == (NOW - timedelta(hours=24), NOW)
    trailing = window.trailing(3)
    assert [w.until for w in trailing] == [
        window.since,
        window.since - timedelta(days=1),
        NOW - timedelta(days=3),
    ]
    assert all(w.length == timedelta(hours=24) for w in trailing)


def test_explicit_bounds_win_and_an_empty_window_is_refused() -> None:
    since = datetime(2026, 11, 20, tzinfo=UTC)
    window = check_window(since=since, until=NOW, hours=1)
    assert window.since == since and window.length == NOW - since
    with pytest.raises(ValidationError, match="empty"):
        check_window(since=NOW, until=NOW, hours=1)
    with pytest.raises(ValidationError, match="timezone"):
        Window(datetime(2026, 1, 1), NOW)


def test_freshness() -> None:
    limit = timedelta(minutes=60)
    fresh = freshness_outcome("events", NOW - timedelta(minutes=5), now=NOW, max_age=limit)
    assert fresh.success and fresh.observed["age_seconds"] == 300
    stale = freshness_outcome("events", NOW - timedelta(hours=3), now=NOW, max_age=limit)
    assert not stale.success
    assert "3.0 h ago" in stale.detail and "older than" in stale.detail
    empty = freshness_outcome("results", None, now=NOW, max_age=limit, severity="warning")
    assert not empty.success and empty.severity == "warning" and "no rows" in empty.detail


def test_an_empty_derived_table_is_not_late_before_its_data_has_been_there_max_age() -> None:
    limit = timedelta(hours=26)

    def results(data_since: datetime | None, newest: datetime | None = None) -> Any:
        return freshness_outcome(
            "results", newest, now=NOW, max_age=limit, data_since=data_since, filled_by="`xp jobs run stats`"
        )

    fresh_stack = results(NOW - timedelta(minutes=10))
    assert (
        fresh_stack.success
        and "not due yet" in fresh_stack.detail
        and "xp jobs run stats" in fresh_stack.detail
    )
    assert results(None).success  # no data at all: nothing to derive yet
    overdue = results(NOW - timedelta(hours=27))
    assert not overdue.success and "no rows at all" in overdue.detail
    assert not results(NOW - timedelta(hours=1), newest=NOW - timedelta(hours=30)).success  # late is late


@pytest.mark.parametrize(
    ("current", "trailing", "success", "words"),
    [
        (100, [1000, 1000, 1000], False, "volume drop"),
        (5000, [1000, 1000, 1000], False, "volume spike"),
        (900, [1000, 1100, 0, 900], True, "trailing average of 1000"),
        (10, [1000, 0, 0, 0], True, "not judged yet"),
    ],
)
def test_volume_against_the_trailing_average(
    current: int, trailing: list[int], success: bool, words: str
) -> None:
    outcome = volume_outcome("events", current, trailing, drop_ratio=0.5, spike_ratio=3.0, min_history=3)
    assert outcome.success is success
    assert words in outcome.detail


def test_dead_letter_rate() -> None:
    burst = dead_letter_outcome(2000, 18000, max_rate=0.05)
    assert not burst.success and burst.observed["rate"] == pytest.approx(0.1)
    assert "2000 of 20000" in burst.detail
    assert dead_letter_outcome(10, 18000, max_rate=0.05).success
    assert dead_letter_outcome(0, 0, max_rate=0.05).success


def test_json_contract_shape() -> None:
    outcomes = [
        CheckOutcome("srm", False, {"p_value": 1e-9}, {"p_value": 0.001}, "mismatch", experiment="exp"),
        CheckOutcome("freshness", True, None, {"max_age_seconds": 60.0}, "ok", table="events"),
    ]
    document = json.loads(json.dumps(outcomes_json(outcomes)))
    assert document["success"] is False
    assert [sorted(c) for c in document["checks"]] == [
        ["check", "detail", "experiment", "observed", "success", "table", "threshold"]
    ] * 2
    assert document["checks"][0]["experiment"] == "exp" and document["checks"][0]["table"] is None
    assert document["checks"][1]["table"] == "events" and document["checks"][1]["experiment"] is None
    assert outcomes_json(outcomes[1:])["success"] is True
    assert fingerprint("srm", "exp", None) == "srm|exp|" == outcomes[0].fingerprint
