"""`xp activity`: team activity from the registry's audit history, and platform usage (issue #20).
The roll-ups live in jobs/activity.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import typer

from xpcore.timeparse import parse_time
from xpstream.cli.output import OutputFormat

__all__ = ["DEFAULT_DAYS", "activity", "print_activity", "register"]

DEFAULT_DAYS = 28
"""Without ``--since``: the last four weeks."""


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def print_activity(document: dict[str, Any]) -> None:
    from rich.table import Table

    from xpstream.cli.output import console as make_console

    console = make_console()
    console.print(f"[bold]activity[/bold] · {document['since']} → {document['until']}")
    teams = Table(title="teams", title_justify="left", show_edge=False, header_style="bold")
    columns = ("team", "changes", "started", "stopped", "median days to decision", "overrides +", "expired")
    for column in columns:
        teams.add_column(column, justify="left" if column == "team" else "right")
    for t in document["teams"]:
        teams.add_row(
            t["team"],
            str(t["changes"]),
            str(t["experiments_started"]),
            str(t["experiments_stopped"]),
            _fmt(t["median_days_to_decision"]),
            str(t["overrides_created"]),
            str(t["overrides_expired"]),
        )
    console.print(teams)
    usage = Table(title="exposures per day", title_justify="left", show_edge=False, header_style="bold")
    for column in ("day", "source", "exposures", "experiments"):
        usage.add_column(column, justify="left" if column in ("day", "source") else "right")
    for u in document["usage"]:
        usage.add_row(u["day"], u["source"], str(u["exposures"]), str(u["experiments"]))
    console.print(usage)
    by_key = Table(title="requests and page views per key id", title_justify="left", show_edge=False)
    for column in ("day", "kind", "subject", "count"):
        by_key.add_column(column, justify="right" if column == "count" else "left")
    for u in document["usage_by_key"]:
        by_key.add_row(u["day"], u["kind"], u["subject"], str(u["count"]))
    console.print(by_key)


def activity(
    since: str | None = typer.Option(
        None, "--since", help=f"Start of the window (ISO date or date-time; default {DEFAULT_DAYS} days ago)."
    ),
    until: str | None = typer.Option(None, "--until", help="End of the window (ISO; default now)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
) -> None:
    """Team activity and platform usage: registry changes per team (the experiment's owner) and week,
    experiments started and stopped and the days from start to decision, overrides created and expired,
    and exposures per day and source. Counts only: no person or unit is named.

    Example: xp activity

    Example: xp activity --since 2026-11-01 --format json
    """
    from jobs.activity import compute_activity
    from xpcore.config import WarehouseSettings, load_settings
    from xpcore.errors import ValidationError
    from xpcore.warehouse import open_warehouse
    from xpstream.cli.output import print_json

    if fmt is OutputFormat.csv:
        raise ValidationError("--format must be table or json")
    now = datetime.now(UTC)
    end = parse_time(until, "--until")
    start = parse_time(since, "--since") or (end or now) - timedelta(days=DEFAULT_DAYS)
    if end is not None and end <= start:
        raise ValidationError("--until must be after --since")
    warehouse = open_warehouse(load_settings(WarehouseSettings))
    try:
        document = compute_activity(warehouse, since=start, until=end, now=now)
    finally:
        warehouse.close()
    if fmt is OutputFormat.json:
        print_json(document)
    else:
        print_activity(document)


def register(app: Any) -> None:
    app.command("activity")(activity)
