"""`xp up`: every long-running part in one process (issue #7); the work is in ``xpstream/up/``.

`xp up` alone runs everything; `xp up status` and `xp up stop` find a running one through
``$XP_HOME/run/xp-up.json`` (``xpstream/up/pidfile.py``)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import typer

from xpstream.cli.output import OutputFormat, print_json, print_rows

__all__ = ["register", "up_app"]

up_app = typer.Typer(invoke_without_command=True)  # help: the callback's docstring


@up_app.callback()
def up(
    ctx: typer.Context,
    with_stack: bool = typer.Option(
        False,
        "--with-stack",
        help="Start the local Kafka broker first (like `xp stack up`) if it is not running.",
    ),
) -> None:
    """Run the stream worker, batch scheduler, dashboard and assignment service together.

    Expects Kafka to be reachable (`xp stack up`, or --with-stack). In embedded mode this process owns the
    chDB store and serves it to other xp commands (xp sql, xp results, xp jobs run …) over its API.
    Health: GET /healthz on XP_UP_HOST:XP_UP_PORT (127.0.0.1:8210 unless set); `xp up status` prints the
    URL of the running one. Ctrl-C, SIGTERM or `xp up stop` stops everything cleanly (exit 0).

    Examples:

      xp up

      XP_SCHEDULE_LAKE="" XP_UP_COMPONENTS=stream,scheduler xp up --with-stack

      xp up status --format json
    """
    if ctx.invoked_subcommand is not None:
        return
    from xpcore.config import load_settings
    from xpcore.logs import configure_logging
    from xpstream.up.runner import run_up
    from xpstream.up.settings import UpSettings

    settings = load_settings(UpSettings)
    if "--debug" not in sys.argv:
        configure_logging(level="INFO" if settings.log_level.upper() == "WARNING" else settings.log_level)
    run_up(settings, with_stack=with_stack)


def _health(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """The /healthz body of a running `xp up` (its 503 body too), or an ``error`` when it does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # nosec B310 - our own http URL
            body: dict[str, Any] = json.load(response)
            return body
    except urllib.error.HTTPError as error:
        try:
            failing: dict[str, Any] = json.load(error)
            return failing
        except ValueError:
            return {"status": "failing", "error": f"HTTP {error.code}"}
    except (OSError, ValueError) as error:
        return {"status": "not answering", "error": str(error)}


@up_app.command("status")
def status(
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json (one object)."),
) -> None:
    """Whether an `xp up` runs for this XP_HOME: its pid, start time, health URL and components.

    Exit 0 when it runs and every component is ok, 1 when it is not running or something is failing.

    Example: xp up status

    Example: xp up status --format json
    """
    from xpcore.config import WarehouseSettings, load_settings
    from xpstream.up.pidfile import read_record

    settings = load_settings(WarehouseSettings)
    record = read_record(settings.home)
    if record is None:
        report: dict[str, Any] = {"running": False, "home": str(settings.home)}
    else:
        health = _health(record.health_url)
        report = {
            "running": True,
            "pid": record.pid,
            "started_at": record.started_at,
            "health_url": record.health_url,
            "status": health.get("status"),
            "components": {name: c.get("status") for name, c in (health.get("components") or {}).items()},
        }
        if "error" in health:
            report["error"] = health["error"]
    healthy = report["running"] and report.get("status") == "ok"
    if fmt is OutputFormat.json:
        print_json(report)
    else:
        rows = [
            {"part": key, "value": value}
            for key, value in report.items()
            if key != "components" and value is not None
        ]
        rows += [
            {"part": f"component.{name}", "value": state}
            for name, state in report.get("components", {}).items()
        ]
        print_rows(rows, ["part", "value"], OutputFormat.table)
    if not healthy:
        raise typer.Exit(1)


@up_app.command("stop")
def stop(
    timeout: float = typer.Option(60.0, "--timeout", min=1.0, help="Seconds to wait for a clean stop."),
) -> None:
    """Stop the running `xp up` of this XP_HOME (SIGTERM: it finishes its batch and commits); idempotent.

    Exit 0 when it stopped or was not running, 1 when it still runs after --timeout.

    Example: xp up stop
    """
    from xpcore.config import WarehouseSettings, load_settings
    from xpstream.up.pidfile import looks_like_xp_up, read_record, record_path, stop_process

    settings = load_settings(WarehouseSettings)
    record = read_record(settings.home)
    if record is None:
        sys.stdout.write("xp up was not running\n")
        return
    if _health(record.health_url).get("pid") != record.pid and not looks_like_xp_up(record.pid):
        sys.stderr.write(
            f"pid {record.pid} of {record_path(settings.home)} is not an xp up (its health URL does not name "
            "it and its command line is another): not stopping it; remove that file if it is stale\n"
        )
        raise typer.Exit(1)
    if not stop_process(record.pid, timeout):
        sys.stderr.write(f"xp up (pid {record.pid}) still runs after {timeout:.0f}s\n")
        raise typer.Exit(1)
    sys.stdout.write(f"xp up stopped (pid {record.pid})\n")


def register(app: typer.Typer) -> None:
    app.add_typer(up_app, name="up")
