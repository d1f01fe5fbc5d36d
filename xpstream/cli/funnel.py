"""`xp funnel EXPERIMENT`: conversion funnel per variation (issue #20). The computation is jobs/funnels.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from xpcore.errors import ValidationError
from xpcore.timeparse import parse_time
from xpstream.cli.output import OutputFormat

if TYPE_CHECKING:
    from jobs.funnels import FunnelResult

__all__ = ["funnel", "print_funnel", "register"]


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def print_funnel(result: FunnelResult) -> None:
    """One table: a row per variation × step (units, conversions, lift of overall conversion)."""
    from rich.table import Table

    from xpstream.cli.output import console as make_console

    document = result.to_json()
    console = make_console()
    order = "in order" if result.funnel.ordered else "any order"
    correction = f" · {result.plan.correction} correction" if result.plan.correction != "none" else ""
    console.print(
        f"[bold]{result.experiment}[/bold] funnel · {' → '.join(result.steps)} · within "
        f"{result.funnel.window_hours:g} h of exposure, {order} · {result.plan.method}{correction}"
    )
    level = f"{1 - result.plan.alpha:.0%}"
    table = Table(show_edge=False, header_style="bold")
    for column in (
        "variation",
        "step",
        "units",
        "from previous",
        "overall",
        "lift",
        f"{level} interval",
        "p-value",
    ):
        table.add_column(column, justify="left" if column in ("variation", "step") else "right")
    for variation in document["variations"]:
        for step in variation["steps"]:
            interval = (
                f"[{step['ci_low']:+.1%}, {step['ci_high']:+.1%}]"
                if step["ci_low"] is not None and step["ci_high"] is not None
                else ""
            )
            p_value = step["p_value_adjusted"] if step["p_value_adjusted"] is not None else step["p_value"]
            table.add_row(
                variation["name"],
                step["step"],
                str(step["units"]),
                _fmt(step["conversion_from_previous"], ".1%"),
                _fmt(step["conversion_overall"], ".1%"),
                _fmt(step["lift"], "+.1%") if step["lift"] is not None else (step["error"] or ""),
                interval,
                _fmt(p_value, ".3g"),
                style="bold" if step["significant"] else "",
            )
    console.print(table)


def funnel(
    experiment: str = typer.Argument(..., help="Experiment key."),
    steps: str | None = typer.Option(
        None,
        "--steps",
        help="Event names in funnel order, comma-separated. Default: the experiment's funnel.",
    ),
    window: str | None = typer.Option(
        None,
        "--window",
        help="Steps count within this long after exposure (24h, 3d, 90m). Default: declared, else 72h.",
    ),
    ordered: bool | None = typer.Option(
        None, "--ordered/--any-order", help="Steps must happen in order (default: declared, else ordered)."
    ),
    since: str | None = typer.Option(None, "--since", help="Only units first exposed at or after (ISO)."),
    until: str | None = typer.Option(
        None, "--until", help="Only units and events before (ISO; default now)."
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table or json."),
) -> None:
    """Conversion funnel per variation: units reaching each step after exposure, step-to-step and
    overall conversion, and each treatment's lift of overall conversion against control with an
    interval and a p-value (the experiment's method, alpha and correction). Overridden units and units
    seen in several variations are excluded, as in results.

    Example: xp funnel checkout-button

    Example: xp funnel checkout-button --steps pageview,add_to_cart,purchase --window 24h --format json
    """
    from assignment.funnel_block import funnel_from_metadata, funnel_with_overrides
    from jobs.funnels import compute_funnel
    from jobs.results.compute import experiment_plan
    from xpcore.config import load_settings
    from xpcore.warehouse import open_warehouse
    from xpstream.batch.settings import ResultsJobSettings
    from xpstream.cli.output import print_json
    from xpstream.results_query import registry_snapshot

    if fmt is OutputFormat.csv:
        raise ValidationError("--format must be table or json")
    start, end = parse_time(since, "--since"), parse_time(until, "--until")
    settings = load_settings(ResultsJobSettings)
    warehouse = open_warehouse(settings)
    try:
        snapshot = registry_snapshot(settings, warehouse)
        spec = snapshot.experiments.get(experiment)
        if spec is None:
            known = ", ".join(sorted(snapshot.experiments)) or "none"
            raise ValidationError(f"unknown experiment {experiment!r} (known: {known})")
        definition = snapshot.experiment_definition(experiment)
        declared = funnel_from_metadata(definition.metadata if definition is not None else None)
        chosen = funnel_with_overrides(
            declared,
            steps=[s.strip() for s in steps.split(",")] if steps is not None else None,
            window=window,
            ordered=ordered,
            experiment=experiment,
        )
        result = compute_funnel(
            warehouse, spec, chosen, plan=experiment_plan(snapshot, spec), since=start, until=end
        )
    finally:
        warehouse.close()
    if fmt is OutputFormat.json:
        print_json(result.to_json())
    else:
        print_funnel(result)


def register(app: Any) -> None:
    app.command("funnel")(funnel)
