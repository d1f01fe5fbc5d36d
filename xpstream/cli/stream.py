"""`xp stream …`: stream jobs (issue #4)."""

from __future__ import annotations

import typer

from xpstream.cli._pending import pending

stream_app = typer.Typer(help="Run the stream jobs.", no_args_is_help=True)


@stream_app.command("run")
def run(
    runner: str = typer.Option("faust", "--runner", help="faust or flink."),
    until_idle: float | None = typer.Option(None, "--until-idle", help="Exit after this many idle seconds."),
) -> None:
    """Validate, deduplicate, enrich, attribute and load records into ClickHouse.

    Example: xp stream run --until-idle 5
    """
    raise pending("stream run", 4)


def register(app: typer.Typer) -> None:
    app.add_typer(stream_app, name="stream")
