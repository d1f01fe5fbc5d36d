"""`xp up`: every long-running part in one process (issue #7)."""

from __future__ import annotations

import typer

from xpstream.cli._pending import pending


def up() -> None:
    """Run stream workers, batch scheduler, dashboard and assignment service together.

    Example: xp up
    """
    raise pending("up", 7)


def register(app: typer.Typer) -> None:
    app.command("up")(up)
