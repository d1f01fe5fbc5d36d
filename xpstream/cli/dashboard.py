"""`xp dashboard serve`: experiments, realtime health, results, comparison, quality, activity (issue #7)."""

from __future__ import annotations

from typing import Any

import typer

dashboard_app = typer.Typer(help="Dashboards over HTTP.", no_args_is_help=True)


@dashboard_app.command("serve")
def serve(
    port: int | None = typer.Option(
        None, "--port", help="Port to listen on (default 8200, XP_DASHBOARD_PORT)."
    ),
    host: str | None = typer.Option(
        None,
        "--host",
        help="Interface (default 127.0.0.1); a non-loopback one needs XP_DASHBOARD_READ_TOKENS.",
    ),
) -> None:
    """Serve the dashboards and their JSON API over the warehouse (chDB store or ClickHouse server).

    Pages: experiments, realtime health, results per experiment, comparison, data quality, activity;
    exports as CSV, JSON, Parquet and XLSX. No login on loopback; any other interface requires tokens
    (XP_DASHBOARD_READ_TOKENS for reading, XP_DASHBOARD_ADMIN_TOKENS for admin). docs/dashboards.md.

    Example: xp dashboard serve --port 8200

    Example: XP_DASHBOARD_READ_TOKENS=r1 XP_DASHBOARD_ADMIN_TOKENS=a1 xp dashboard serve --host 0.0.0.0
    """
    from dashboards.server import run_dashboard
    from dashboards.settings import DashboardSettings
    from xpcore.config import load_settings

    overrides: dict[str, Any] = {}
    if port is not None:
        overrides["dashboard_port"] = port
    if host is not None:
        overrides["dashboard_host"] = host
    run_dashboard(load_settings(DashboardSettings, **overrides))


def register(app: typer.Typer) -> None:
    app.add_typer(dashboard_app, name="dashboard")
