"""`xp stack up|down|status`: the local Kafka broker and warehouse location (issue #2)."""

from __future__ import annotations

from typing import Any

import typer

from xpstream.cli.output import OutputFormat, print_json

stack_app = typer.Typer(help="Start, stop and inspect the local stack.", no_args_is_help=True)

_FORMAT_HELP = "table (for people) or json (one JSON object)."


def _say(text: str) -> None:
    from rich.console import Console

    Console(highlight=False).print(text)


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        _say(f"[yellow]note:[/yellow] {note}")


@stack_app.command("up")
def up(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=_FORMAT_HELP)) -> None:
    """Start the local Kafka broker and create the topics (idempotent).

    A single-node KRaft broker on 127.0.0.1 (XP_KAFKA_PORT, default 19092), data and logs under
    $XP_HOME/kafka. Storage is formatted on the first start. Running it again only ensures the topics.

    Example: xp stack up

    Example: XP_HOME=/tmp/xp XP_KAFKA_PORT=29092 XP_KAFKA_CONTROLLER_PORT=29093 xp stack up --format json
    """
    from rich.console import Console

    from xpcore.config import StackSettings, load_settings
    from xpstream.stack import start_kafka

    settings = load_settings(StackSettings)
    with Console(stderr=True).status(f"starting Kafka on 127.0.0.1:{settings.kafka_port}…"):
        result = start_kafka(settings)
    if fmt is OutputFormat.json:
        print_json(result.as_dict())
        return
    _print_notes(result.notes)
    state = "already running" if result.already_running else f"started in {result.seconds:.1f}s"
    _say(f"Kafka {result.bootstrap}: {state} (pid {result.pid})")
    if result.topics_created:
        _say(f"created topics: {', '.join(result.topics_created)}")


@stack_app.command("down")
def down(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=_FORMAT_HELP)) -> None:
    """Stop the local Kafka broker (SIGTERM, then SIGKILL after XP_KAFKA_STOP_TIMEOUT); idempotent.

    Data stays under $XP_HOME/kafka/data; delete $XP_HOME/kafka to start from nothing.

    Example: xp stack down
    """
    from xpcore.config import StackSettings, load_settings
    from xpstream.stack import stop_kafka

    result = stop_kafka(load_settings(StackSettings))
    if fmt is OutputFormat.json:
        print_json(result.as_dict())
        return
    _print_notes(result.notes)
    if result.was_running:
        how = " (killed after the stop timeout)" if result.forced else ""
        _say(f"Kafka stopped (pid {result.pid}){how}")
    else:
        _say("Kafka was not running")


@stack_app.command("status")
def status(fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=_FORMAT_HELP)) -> None:
    """Show whether the broker runs and where the warehouse is.

    Example: xp stack status --format json
    """
    from xpcore.config import StackSettings, load_settings
    from xpstream.stack import stack_status

    report = stack_status(load_settings(StackSettings))
    if fmt is OutputFormat.json:
        print_json(report)
        return
    rows: list[dict[str, Any]] = [
        {"part": f"kafka.{key}", "value": value}
        for key, value in report["kafka"].items()
        if value is not None
    ]
    rows += [{"part": f"warehouse.{key}", "value": value} for key, value in report["warehouse"].items()]
    from xpstream.cli.output import print_rows

    print_rows(rows, ["part", "value"], OutputFormat.table)


def register(app: typer.Typer) -> None:
    app.add_typer(stack_app, name="stack")
