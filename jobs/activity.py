"""Team activity and platform usage (issue #20 part 2): ``xp activity`` and the Activity page's roll-ups.

From the registry's audit history (``xp.registry``, every change with who and when) and the exposures:

- **changes per team per week**: registry changes in the window by the owner (``owner:`` of the
  experiment, for an override its experiment's owner; ``unowned`` otherwise) and ISO week (Monday);
- **experiments per team**: started (a change that makes an experiment ``running`` when it was not),
  stopped (→ ``stopped``, the decision), and the days from the first start to the stop of each experiment
  stopped in the window;
- **overrides per team**: created in the window, and expired in it (``expires_at`` in the window and
  before now);
- **usage**: exposures recorded per day and source (sdk, service, loadgen) and the experiments they name;
- **usage by key** (``xp.usage_daily``, decision 0092): per day, the assignment service's API requests per
  client key id and endpoint and the exposures they caused, dashboard page views per token id and
  page, and exports run per export and outcome (``xp.export_runs``).

Counts only: the roll-ups name teams (``owner``), never the people who made the changes (the audit page
lists those), and no unit id leaves the warehouse. :func:`roll_up` is pure; :func:`compute_activity`
runs the two named queries (``sql/queries/activity_*.sql``). Decision 0070.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from statistics import median
from typing import TYPE_CHECKING, Any

from xpcore.warehouse import load_query

if TYPE_CHECKING:
    from xpcore.warehouse import Warehouse

__all__ = ["UNOWNED", "compute_activity", "roll_up"]

UNOWNED = "unowned"
"""The team of a change whose experiment names no ``owner``."""


def _week(at: datetime) -> str:
    day = at.date()
    return (day - timedelta(days=day.weekday())).isoformat()


def _expiry(text: str) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def roll_up(
    changes: Iterable[Mapping[str, Any]],
    usage: Iterable[Mapping[str, Any]],
    *,
    by_key: Iterable[Mapping[str, Any]] = (),
    since: datetime,
    until: datetime,
    now: datetime,
) -> dict[str, Any]:
    """The activity document from registry change rows (oldest first: ``kind``, ``key``, ``change``,
    ``changed_at``, ``status``, ``owner``, ``experiment_key``, ``expires_at``) and usage rows."""
    owners: dict[str, str] = {}
    status: dict[str, str] = {}
    first_start: dict[str, datetime] = {}
    per_week: Counter[tuple[str, str]] = Counter()
    started: Counter[str] = Counter()
    stopped: Counter[str] = Counter()
    created: Counter[str] = Counter()
    expired: Counter[str] = Counter()
    decided: list[dict[str, Any]] = []
    for row in changes:
        at: datetime = row["changed_at"]
        inside = since <= at < until
        if row["kind"] == "experiment":
            key = row["key"].removeprefix("experiment:")
            if row["owner"]:
                owners[key] = row["owner"]
            team = owners.get(key, UNOWNED)
            before, after = status.get(key, ""), row["status"] if row["change"] != "deleted" else ""
            if after == "running" and before != "running":
                first_start.setdefault(key, at)
                started[team] += inside
            if after == "stopped" and before != "stopped":
                stopped[team] += inside
                if inside and key in first_start:
                    elapsed = (at - first_start[key]).total_seconds() / 86400
                    decided.append({"experiment": key, "team": team, "days_to_decision": elapsed})
            status[key] = after
        elif row["kind"] == "override":
            team = owners.get(row["experiment_key"], UNOWNED)
            created[team] += inside and row["change"] == "created"
            expiry = _expiry(row["expires_at"])
            if row["change"] != "deleted" and expiry is not None and since <= expiry < min(until, now):
                expired[team] += 1
        else:
            team = UNOWNED
        if inside:
            per_week[(team, _week(at))] += 1
    teams = sorted(set(started) | set(stopped) | set(created) | set(expired) | {t for t, _ in per_week})
    by_team = []
    for team in teams:
        days = [d["days_to_decision"] for d in decided if d["team"] == team]
        by_team.append(
            {
                "team": team,
                "changes": sum(n for (t, _), n in per_week.items() if t == team),
                "experiments_started": started[team],
                "experiments_stopped": stopped[team],
                "median_days_to_decision": median(days) if days else None,
                "overrides_created": created[team],
                "overrides_expired": expired[team],
            }
        )
    usage_rows = [
        {
            "day": r["day"].isoformat() if isinstance(r["day"], date) else str(r["day"]),
            "source": r["source"],
            "exposures": int(r["exposures"]),
            "experiments": int(r["experiments"]),
        }
        for r in usage
    ]
    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "teams": by_team,
        "changes_per_week": [
            {"team": team, "week": week, "changes": n} for (team, week), n in sorted(per_week.items())
        ],
        "decisions": sorted(decided, key=lambda d: (d["team"], d["experiment"])),
        "usage": usage_rows,
        "usage_by_key": [
            {
                "day": r["day"].isoformat() if isinstance(r["day"], date) else str(r["day"]),
                "kind": r["kind"],
                "subject": r["subject"],
                "count": int(r["count"]),
            }
            for r in by_key
        ],
    }


def compute_activity(
    warehouse: Warehouse, *, since: datetime, until: datetime | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """The activity document over ``[since, until)`` (default until now) from the warehouse."""
    now = now or datetime.now(UTC)
    until = until or now
    changes = warehouse.query_arrow(load_query("activity_registry_changes")).to_pylist()
    usage = warehouse.query_arrow(
        load_query("activity_exposures_daily"), {"since": since, "until": until}
    ).to_pylist()
    by_key = warehouse.query_arrow(
        load_query("activity_usage_daily"), {"since": since, "until": until}
    ).to_pylist()
    return roll_up(changes, usage, by_key=by_key, since=since, until=until, now=now)
