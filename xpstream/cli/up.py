"""`xp up`: every long-running part in one process (issue #7); the work is in ``xpstream/up/``."""

from __future__ import annotations

import sys

import typer

__all__ = ["register", "up"]


def up(
    with_stack: bool = typer.Option(
        False,
        "--with-stack",
        help="Start the local Kafka broker first (like `xp stack up`) if it is not running.",
    ),
) -> None:
    """Run the stream worker, batch scheduler, dashboard and assignment service together.

    Expects Kafka to be reachable (`xp stack up`, or --with-stack). In embedded mode this process owns the
    chDB store and serves it to other xp commands (xp sql, xp results, xp jobs run …) over its API.
    Health: GET http://127.0.0.1:8210/healthz. Ctrl-C or SIGTERM stops everything cleanly (exit 0).

    Examples:

      xp up

      XP_SCHEDULE_LAKE="" XP_UP_COMPONENTS=stream,scheduler xp up --with-stack
    """
    from xpcore.config import load_settings
    from xpcore.logs import configure_logging
    from xpstream.up.runner import run_up
    from xpstream.up.settings import UpSettings

    settings = load_settings(UpSettings)
    if "--debug" not in sys.argv:
        configure_logging(level="INFO" if settings.log_level.upper() == "WARNING" else settings.log_level)
    run_up(settings, with_stack=with_stack)


def register(app: typer.Typer) -> None:
    app.command("up")(up)
