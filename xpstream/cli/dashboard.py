"""`xp dashboard serve`: realtime health and results pages (issue #7)."""

from __future__ import annotations

import typer

from xpstream.cli._pending import pending

dashboard_app = typer.Typer(help="Dashboards over HTTP.", no_args_is_help=True)


@dashboard_app.command("serve")
def serve(port: int = typer.Option(8200, "--port", help="Port to listen on.")) -> None:
    """Serve the dashboards.

    Example: xp dashboard serve --port 8200
    """
    raise pending("dashboard serve", 7)


def register(app: typer.Typer) -> None:
    app.add_typer(dashboard_app, name="dashboard")
