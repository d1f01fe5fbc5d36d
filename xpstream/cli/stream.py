"""`xp stream …`: the stream worker (issue #4); its entry point is ``pipelines/worker.py``."""

from __future__ import annotations

import sys
from typing import Any

import typer

from xpcore.errors import ConfigError
from xpstream.cli.output import OutputFormat, print_json

__all__ = ["register", "run"]

stream_app = typer.Typer(help="Run the stream jobs.", no_args_is_help=True)

RUNNERS = ("kafka", "faust", "flink")


@stream_app.command("run")
def run(
    runner: str = typer.Option(
        "kafka",
        "--runner",
        help="kafka (confluent-kafka worker, the default), faust (a Faust agent, slower; docs/pipeline.md) "
        "or flink (a Flink job on the JVM: docs/flink.md).",
    ),
    until_idle: float | None = typer.Option(
        None,
        "--until-idle",
        min=0,
        help="Exit 0 once every assigned partition is drained and idle this long.",
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json (a run report)."),
    workers: int = typer.Option(
        1, "--workers", min=1, help="Worker processes in the group, supervised (restarted when they die)."
    ),
) -> None:
    """Validate, deduplicate, enrich, attribute and load exposures and events into ClickHouse.

    Runs until SIGTERM/Ctrl-C (graceful: the current batch is loaded and committed), or with
    --until-idle until the topics are drained. Workers in one group (XP_STREAM_GROUP_ID) share partitions.

    Examples:

      xp stream run

      xp stream run --until-idle 5 --format json

      xp stream run --workers 3

      xp stream run --runner flink --until-idle 10
    """
    from xpcore.config import StreamSettings, load_settings

    if runner not in RUNNERS:
        raise ConfigError(f"unknown runner {runner!r}: choose one of {', '.join(RUNNERS)}")
    if runner == "flink":
        if workers > 1:
            raise ConfigError("--workers applies to --runner kafka and faust (Flink scales by parallelism)")
        _run_flink(until_idle, fmt)
        return
    settings = load_settings(StreamSettings)
    from xpcore.logs import configure_logging

    if "--debug" not in sys.argv:
        configure_logging(level=settings.log_level)
    if workers > 1:
        from xpstream.stream_workers import WorkerPool

        pool = WorkerPool(workers, runner, until_idle)
        merged = pool.run()
        if fmt is OutputFormat.json:
            print_json(merged)
        else:
            sys.stderr.write(f"{workers} workers consumed {merged['consumed']} ({pool.restarts} restarts)\n")
        return

    from pipelines.worker import run_worker

    _print_report(run_worker(settings, until_idle=until_idle, runner=runner), fmt)


def _run_flink(until_idle: float | None, fmt: OutputFormat) -> None:
    """`--runner flink`: the Flink job (its own venv, `make flink`) and the loader of its hand-off."""
    from pipelines.flink.runner import run_flink_worker
    from pipelines.flink.settings import FlinkSettings
    from xpcore.config import load_settings
    from xpcore.logs import configure_logging

    settings = load_settings(FlinkSettings)
    if "--debug" not in sys.argv:
        configure_logging(level=settings.log_level)
    _print_report(run_flink_worker(settings, until_idle=until_idle), fmt)


def _print_report(report: Any, fmt: OutputFormat) -> None:
    """A worker's run report: the JSON document, or one line on stderr."""
    if fmt is OutputFormat.json:
        print_json(report.as_dict())
    else:
        sys.stderr.write(
            f"consumed {report.consumed}: {report.exposures} exposures, {report.events} events, "
            f"{report.attributed} attributions, {report.dead_letters} dead letters, "
            f"{report.duplicates} duplicates dropped in {report.seconds:.1f}s\n"
        )


@stream_app.command("replay-dead-letters")
def replay(
    reason: list[str] = typer.Option([], "--reason", help="Only dead letters with this reason (repeatable)."),
    since: str | None = typer.Option(None, "--since", help="Only those received at or after (RFC 3339)."),
    source_topic: list[str] = typer.Option(
        [], "--source-topic", help="Only those read from xp.exposures or xp.events (repeatable)."
    ),
    again: bool = typer.Option(False, "--again", help="Also dead letters replayed before."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be replayed; produce nothing."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
) -> None:
    """Re-produce dead letters' original bytes and keys to their source topic, after fixing the cause.

    The stream validates them again: fixed ones load once (ids already loaded are deduplicated),
    still-invalid ones become new dead letters. Each replayed dead letter is recorded in
    xp.dead_letter_replays, so running the same replay again produces nothing, and the dead-letter rate
    (health page, quality) counts only those still dead. Truncated originals are never replayed.

    Examples:

      xp stream replay-dead-letters --reason unknown_experiment --dry-run

      xp stream replay-dead-letters --since 2024-05-01T00:00:00Z --source-topic xp.events --format json
    """
    from datetime import UTC, datetime

    from pipelines.replay import replay_dead_letters
    from schemas import DeadLetterReason
    from xpcore.config import StreamSettings, load_settings
    from xpcore.errors import ValidationError
    from xpcore.timeparse import parse_time

    known = {r.value for r in DeadLetterReason}
    unknown = sorted(set(reason) - known)
    if unknown:
        raise ValidationError(f"unknown reason {unknown[0]!r}: choose from {', '.join(sorted(known))}")
    start = parse_time(since, "--since") or datetime(1970, 1, 1, tzinfo=UTC)
    settings = load_settings(StreamSettings)
    report = replay_dead_letters(
        settings,
        reasons=list(reason),
        since=start,
        source_topics=list(source_topic),
        dry_run=dry_run,
        again=again,
    )
    if fmt is OutputFormat.json:
        print_json(report.as_dict())
        return
    verb = "would replay" if dry_run else "replayed"
    topics = ", ".join(f"{topic} {n}" for topic, n in sorted(report.by_topic.items())) or "nothing to replay"
    skipped = f"; {report.truncated} truncated originals skipped" if report.truncated else ""
    sys.stderr.write(f"{verb} {report.replayed} dead letters ({topics}){skipped}\n")


def register(app: typer.Typer) -> None:
    app.add_typer(stream_app, name="stream")
