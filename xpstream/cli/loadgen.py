"""`xp loadgen`: simulated users meeting the running experiments, produced to Kafka (issue #4).

The simulation is :mod:`xpstream.loadgen.simulate` (pure); producing is :mod:`xpstream.loadgen.produce`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from xpcore.errors import TransientError, ValidationError
from xpstream.cli.output import OutputFormat, print_json

__all__ = ["loadgen", "register"]

FUTURE_TOLERANCE = timedelta(seconds=60)
DEFAULT_STREAM_MAX_LATENESS = timedelta(days=7)


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"--now: not an RFC 3339 timestamp: {text!r}") from None
    if value.utcoffset() is None:
        raise ValidationError("--now: the timestamp needs a zone (Z or an offset)")
    if value > datetime.now(UTC) + FUTURE_TOLERANCE:
        raise ValidationError("--now: must not be in the future (the stream dead-letters future records)")
    return value.astimezone(UTC)


def loadgen(
    users: int = typer.Option(1000, "--users", min=0, help="Simulated units."),
    events: int | None = typer.Option(
        None, "--events", min=0, help="Metric events (default: 5 per user), before --srm-skew drops."
    ),
    rate: float | None = typer.Option(
        None, "--rate", min=0.001, help="Records per second (default: as fast as possible)."
    ),
    lift: float = typer.Option(
        0.0, "--lift", help="Non-control variations multiply purchase probability and pageview rate by 1+F."
    ),
    srm_skew: float = typer.Option(
        0.0,
        "--srm-skew",
        help="Drop this share of each experiment's last variation (with the unit's events).",
    ),
    invalid_fraction: float = typer.Option(
        0.0, "--invalid-fraction", help="Share of all records that are invalid (a documented mix)."
    ),
    duplicate_fraction: float = typer.Option(
        0.0, "--duplicate-fraction", help="Byte-identical re-sent copies, per valid record."
    ),
    late_fraction: float = typer.Option(
        0.0, "--late-fraction", help="Share of metric events sent after records with later event times."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Random seed (default: from the clock; printed with --format json)."
    ),
    features: Path | None = typer.Option(
        None,
        "--features",
        help="GrowthBook payload (JSON) or YAML experiments file instead of the registry topic.",
    ),
    now: str | None = typer.Option(
        None, "--now", help="End of the event-time window, RFC 3339 (default: the current time)."
    ),
    window: float = typer.Option(
        120.0, "--window", min=1, help="Event-time window in seconds, ending at --now."
    ),
    history_days: float = typer.Option(
        0.0,
        "--history-days",
        min=0,
        max=6,
        help="Also send each unit's activity over this many days before its first exposure (for CUPED).",
    ),
    funnel: str | None = typer.Option(
        None,
        "--funnel",
        help="Ordered funnel steps (event names, comma-separated) each unit walks after its exposure: "
        "60% reach the first, 50% of those reach each next one (on top of --events).",
    ),
    funnel_lift: str | None = typer.Option(
        None,
        "--funnel-lift",
        help="STEP=F: non-control variations reach STEP from the previous step 1+F times as often.",
    ),
    timeout: float = typer.Option(
        10.0, "--timeout", min=0.1, help="Seconds to wait for the broker (topics) and to read the registry."
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
) -> None:
    """Simulate users meeting the running experiments and produce exposures and events to Kafka.

    Units are assigned by the assignment engine; metric events (pageview, purchase with a value, and
    every other event the experiments' metric catalog counts, e.g. add_to_cart, refund) follow each
    unit's first exposure; --history-days adds activity before it.

    With --format json, prints one object whose counts the tables xp.exposures, xp.events and
    xp.dead_letters reproduce exactly after `xp stream run` (docs/loadgen.md).

    Same --seed and --now give byte-identical records.

    Example: xp loadgen --users 10000 --invalid-fraction 0.01 --seed 7 --format json

    Example: xp loadgen --features payload.json --users 2000 --lift 0.1 --srm-skew 0.05 --rate 5000

    Example: xp loadgen --users 20000 --lift 0.1 --history-days 3 --seed 42

    Example: xp loadgen --funnel pageview,add_to_cart,purchase --funnel-lift add_to_cart=0.2 --seed 7
    """
    from xpcore.config import CoreSettings, load_settings
    from xpstream.loadgen.simulate import LoadgenOptions, LoadSimulator
    from xpstream.loadgen.sources import catalog_event_names, load_features_file, load_from_registry

    seed = seed if seed is not None else time.time_ns() % 2**31
    settings = load_settings(CoreSettings)
    options = LoadgenOptions(
        now=_parse_now(now),
        users=users,
        events=events,
        lift=lift,
        srm_skew=srm_skew,
        invalid_fraction=invalid_fraction,
        duplicate_fraction=duplicate_fraction,
        late_fraction=late_fraction,
        seed=seed,
        window_seconds=window,
        max_record_bytes=settings.max_record_bytes,
        history_days=history_days,
        funnel=tuple(step.strip() for step in funnel.split(",")) if funnel else (),
        funnel_lift=_funnel_lift(funnel_lift),
    )
    options.check()
    oldest = options.now - timedelta(seconds=window, days=history_days)
    if oldest < datetime.now(UTC) - DEFAULT_STREAM_MAX_LATENESS:
        sys.stderr.write(
            "warning: --now (minus --history-days) is more than 7 days ago: with the stream's default max "
            "lateness (XP_STREAM_MAX_LATENESS_SECONDS) these records become timestamp_out_of_bounds "
            "dead letters\n"
        )
    if features is not None:
        payload, experiments = load_features_file(features)
    else:
        payload, experiments = load_from_registry(settings, timeout)
    options = dataclasses.replace(options, catalog_events=catalog_event_names(experiments))
    if not experiments:
        sys.stderr.write("warning: no running experiments: only metric events will be produced\n")
    began = time.monotonic()
    simulator = LoadSimulator(payload, experiments, options)
    report = _produce(settings, simulator, rate=rate, timeout=timeout, progress=fmt is not OutputFormat.json)
    seconds = time.monotonic() - began
    result: dict[str, Any] = {
        **simulator.counts.to_dict(),
        "seconds": round(seconds, 3),
        "rate": round(report.sent / seconds, 1) if seconds > 0 else 0.0,
        "seed": seed,
        "delivery_failures": report.failed,
        "experiments": [spec.key for spec in experiments],
        "topics": {"exposures": settings.topic("xp.exposures"), "events": settings.topic("xp.events")},
    }
    if fmt is OutputFormat.json:
        print_json(result)
    else:
        _print_summary(result)
    if report.failed:
        raise TransientError(
            f"{report.failed} of {report.sent} records were not delivered (first error: {report.first_error})"
        )


def _produce(settings: Any, simulator: Any, *, rate: float | None, timeout: float, progress: bool) -> Any:
    """Produce every batch of the simulation, with a rich progress bar on stderr when asked."""
    from xpcore.kafka import EVENTS, EXPOSURES, ensure_topics
    from xpstream.loadgen.produce import RecordProducer

    ensure_topics(settings, timeout=timeout, topics=[EXPOSURES, EVENTS])
    producer = RecordProducer(settings, rate=rate)
    users = simulator.options.users
    if not progress:
        for batch in simulator.batches():
            producer.send(batch)
        return producer.close()
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]loadgen"), BarColumn(), MofNCompleteColumn(), TextColumn("records"))
    with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("records", total=None)
        generated = 0
        for batch in simulator.batches():
            generated += len(batch)
            done = max(1, int(simulator.users_done))
            estimate = generated + max(0, users - done) * generated // done
            bar.update(task, total=estimate)
            producer.send(batch, on_progress=lambda n: bar.advance(task, n))
        report = producer.close()
        bar.update(task, total=report.sent, completed=report.sent)
    return report


def _print_summary(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(show_edge=False, header_style="bold")
    cells = ("exposures", "events", "invalid", "duplicates", "late", "users", "seconds", "rate")
    for column in cells:
        table.add_column(column, justify="right")
    table.add_row(*(str(result[c]) for c in cells))
    console.print(table)
    per = Table(show_edge=False, header_style="bold")
    for column in ("experiment", "variation", "exposures"):
        per.add_column(column)
    for experiment, variations in result["per_experiment"].items():
        for variation, count in variations.items():
            per.add_row(experiment, variation, str(count))
    console.print(per)
    console.print(f"seed {result['seed']} → {result['topics']['exposures']}, {result['topics']['events']}")


def register(app: typer.Typer) -> None:
    app.command("loadgen")(loadgen)


def _funnel_lift(value: str | None) -> tuple[str, float] | None:
    """``STEP=F`` → (step, F); ValidationError (exit 2) when malformed."""
    if value is None:
        return None
    step, sep, lift = value.rpartition("=")
    try:
        return (step.strip(), float(lift)) if sep and step.strip() else _malformed(value)
    except ValueError:
        return _malformed(value)


def _malformed(value: str) -> tuple[str, float]:
    raise ValidationError(f"--funnel-lift must be STEP=F (e.g. add_to_cart=0.2), got {value[:80]!r}")
