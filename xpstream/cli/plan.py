"""`xp plan EXPERIMENT`: units and days for a minimum detectable effect, per method (issue #16).

The computation lives in jobs/results/plan.py (history from ClickHouse) and jobs/stats/planning.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import typer

from xpcore.errors import ValidationError
from xpcore.timeparse import parse_time
from xpstream.cli.output import OutputFormat

__all__ = ["plan", "register"]


def _print_table(answer: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    history = answer["history"]
    size = f"{answer['mde']:.2%} relative" if answer["relative"] else f"{answer['mde']:g} absolute"
    console.print(
        f"{answer['experiment']}: {answer['variations']} variations, α = {answer['alpha']:g}, "
        f"power {answer['power']:.0%}, minimum detectable effect {size}; history {history['days']:g} days "
        f"to {history['until']}"
    )
    for metric in answer["metrics"]:
        title = (
            f"{metric['metric']} ({metric['type']}): {metric['history_units']} units, "
            f"{metric['units_per_day']:.1f}/day"
        )
        if metric["error"]:
            console.print(f"{title}: {metric['error']}")
            continue
        table = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
        for column in ("method", "units per variation", "total units", "days", "power"):
            table.add_column(column, justify="left" if column == "method" else "right")
        for row in metric["methods"]:
            days = "—" if row["days"] is None else str(row["days"])
            table.add_row(
                row["method"],
                str(row["units_per_variation"]),
                str(row["total_units"]),
                days,
                f"{row['power']:.3f}",
            )
        console.print(table)
    if answer["yaml"]:
        console.print(f"paste under analysis: ({answer['method']}):  {answer['yaml']}")


def plan(
    experiment: str = typer.Argument(..., help="Experiment key."),
    mde: float = typer.Option(
        0.05, "--mde", help="Minimum detectable effect (relative by default: 0.05 = 5 %)."
    ),
    absolute: bool = typer.Option(
        False, "--absolute", help="--mde is an absolute difference in metric units."
    ),
    power: float = typer.Option(0.8, "--power", help="Target power (0.8 = 80 %)."),
    metric: list[str] = typer.Option([], "--metric", help="Plan for this metric only (repeatable)."),
    lookback_days: float = typer.Option(14.0, "--lookback-days", help="Days of history to read."),
    until: str | None = typer.Option(None, "--until", help="End of the history window (default: now)."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table (default) or json."),
) -> None:
    """Sample size and duration for a minimum detectable effect, per method, from ClickHouse history.

    The metric's per-unit mean, its variance and the daily traffic come from recent raw events.

    Alpha, the method and the planned looks come from the experiment's analysis: block.

    Prints the planned_units line to paste into the experiment's YAML.

    Example: xp plan checkout --mde 0.05

    Example: xp plan checkout --mde 0.5 --absolute --metric revenue --format json
    """
    from jobs.results.compute import experiment_plan
    from jobs.results.plan import plan_experiment
    from xpcore.config import load_settings
    from xpcore.warehouse import open_warehouse
    from xpstream.batch.settings import ResultsJobSettings
    from xpstream.cli.output import print_json
    from xpstream.results_query import registry_snapshot

    if fmt not in (OutputFormat.table, OutputFormat.json):
        raise ValidationError("--format must be table or json")
    if not (0 < power < 1):
        raise ValidationError(f"--power must be between 0 and 1, got {power!r}")
    end = parse_time(until, "--until") or datetime.now(UTC)
    settings = load_settings(ResultsJobSettings)
    warehouse = open_warehouse(settings)
    try:
        snapshot = registry_snapshot(settings, warehouse)
        spec = snapshot.experiments.get(experiment)
        if spec is None:
            known = ", ".join(sorted(snapshot.experiments)) or "none"
            raise ValidationError(f"unknown experiment {experiment!r} (known: {known})")
        answer = plan_experiment(
            warehouse,
            spec,
            experiment_plan(snapshot, spec),
            mde=mde,
            relative=not absolute,
            target_power=power,
            lookback_days=lookback_days,
            until=end,
            metric_names=tuple(metric),
        )
    finally:
        warehouse.close()
    if fmt is OutputFormat.json:
        print_json(answer)
    else:
        _print_table(answer)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan)
