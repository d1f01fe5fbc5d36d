"""jobs.activity.roll_up (pure): starts and stops from status transitions, teams from owners, overrides
by their experiment's team, expiries bounded by now, usage rows as given."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from jobs.activity import UNOWNED, roll_up

T0 = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday


def change(kind: str, key: str, day: float, change: str = "updated", **fields: str) -> dict[str, Any]:
    row = {"status": "", "owner": "", "experiment_key": "", "expires_at": ""} | fields
    return {
        "kind": kind,
        "key": f"{kind}:{key}",
        "change": change,
        "changed_at": T0 + timedelta(days=day),
        **row,
    }


def test_restarts_deletions_and_owner_changes() -> None:
    expiry = (T0 + timedelta(days=9)).isoformat()
    rows = [  # oldest first, as the query returns them
        change("experiment", "x", 0, "created", status="running", owner="a"),
        change("experiment", "x", 1, status="running"),  # not a new start
        change("override", "x:u1", 2, "created", experiment_key="x", expires_at=expiry),
        change("override", "y:u1", 2, "created", experiment_key="y"),
        change("experiment", "x", 3, status="stopped"),
        change("experiment", "x", 4, status="running", owner="b"),  # restarted under team b
        change("experiment", "x", 6, "deleted"),
    ]
    document = roll_up(rows, [], since=T0, until=T0 + timedelta(days=14), now=T0 + timedelta(days=8))
    teams = {t["team"]: t for t in document["teams"]}
    assert (teams["a"]["experiments_started"], teams["a"]["experiments_stopped"]) == (1, 1)
    assert teams["a"]["median_days_to_decision"] == 3.0
    assert (teams["a"]["changes"], teams["b"]["experiments_started"], teams["b"]["changes"]) == (4, 1, 2)
    assert teams["a"]["overrides_created"] == 1 and teams["a"]["overrides_expired"] == 0  # expires after now
    assert teams[UNOWNED]["overrides_created"] == 1
    assert [w["week"] for w in document["changes_per_week"]] == ["2026-10-05"] * 3


def test_the_window_bounds_counts_but_not_history() -> None:
    rows = [
        change("experiment", "x", 0, "created", status="running", owner="a"),
        change("experiment", "x", 10, status="stopped"),
    ]
    document = roll_up(
        rows,
        [{"day": date(2026, 10, 12), "source": "sdk", "exposures": 3, "experiments": 1}],
        since=T0 + timedelta(days=7),
        until=T0 + timedelta(days=14),
        now=T0 + timedelta(days=20),
    )
    (team,) = document["teams"]
    assert (team["experiments_started"], team["experiments_stopped"], team["changes"]) == (0, 1, 1)
    assert document["decisions"] == [{"experiment": "x", "team": "a", "days_to_decision": 10.0}]
    assert document["usage"] == [{"day": "2026-10-12", "source": "sdk", "exposures": 3, "experiments": 1}]
