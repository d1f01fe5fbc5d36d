"""`xp jobs run …`: batch jobs (issues #5 and #6)."""

from __future__ import annotations

import enum

import typer

from xpstream.cli._pending import pending

jobs_app = typer.Typer(help="Run batch jobs.", no_args_is_help=True)


class JobName(enum.StrEnum):
    etl = "etl"
    lake = "lake"
    stats = "stats"
    quality = "quality"
    all = "all"


@jobs_app.command("run")
def run(
    job: JobName = typer.Argument(..., help="etl, lake, stats, quality or all."),
    since: str | None = typer.Option(None, "--since", help="Start of the window (ISO date/time)."),
    until: str | None = typer.Option(None, "--until", help="End of the window (ISO date/time)."),
) -> None:
    """Run one batch job, or all of them in order.

    Example: xp jobs run etl --since 2026-11-01 --until 2026-11-25
    """
    raise pending(f"jobs run {job.value}", 6 if job is JobName.quality else 5)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")
