"""`xp results EXPERIMENT`: experiment results (issue #5). The computation lives in jobs/results*.py."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

import typer

from assignment.analysis_block import METHODS
from xpcore.timeparse import parse_time
from xpstream.cli.output import OutputFormat

if TYPE_CHECKING:
    from jobs.results.contract import ExperimentAnalysis, MetricResult

__all__ = [
    "CorrectionChoice",
    "StatsMethod",
    "print_result",
    "register",
    "results",
]


StatsMethod = enum.StrEnum("StatsMethod", [(m, m) for m in METHODS])  # type: ignore[misc]
"""``--method``: every method of ``assignment.analysis_block.METHODS`` (declared once there)."""


class CorrectionChoice(enum.StrEnum):
    none = "none"
    holm = "holm"
    bh = "bh"


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def _metric_table(metric: MetricResult, alpha: float, bayesian: bool = False) -> Any:
    from rich.table import Table

    level = f"{1 - alpha:.0%}"
    kind = metric.metric.type.value
    if metric.metric.quantile is not None and metric.metric.per is not None:  # decision 0083
        kind = f"p{metric.metric.quantile * 100:g} per {metric.metric.per.value}"
    title = f"{metric.metric.name} ({kind}, {metric.role})"
    table = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
    last = "chance to win" if bayesian else "p-value"
    for column in ("variation", "units", "mean", "lift", f"{level} interval", last, "note"):
        table.add_column(column, justify="left" if column in ("variation", "note") else "right")
    for variant in metric.variants:
        data = variant.to_json()
        lift, style = "", ""
        if variant.effect is None:
            lift = "control"
        else:
            lift = _fmt(data["estimate"], "+.1%")
            if data["significant"] and data["estimate"] is not None:
                good = (data["estimate"] > 0) == metric.metric.higher_is_better
                style = "bold green" if good else "bold red"
        interval = (
            f"[{data['ci_low']:+.1%}, {data['ci_high']:+.1%}]"
            if data["ci_low"] is not None and data["ci_high"] is not None
            else ""
        )
        note = data["error"] or ("significant" if data["significant"] else "")
        table.add_row(
            variant.name,
            str(variant.units),
            _fmt(data["mean"], ".4g"),
            lift,
            interval,
            _fmt(data["chance_to_win"], ".1%") if bayesian else _fmt(data["p_value"], ".3g"),
            note,
            style=style,
        )
    return table


def _cuped_line(result: ExperimentAnalysis) -> str | None:
    """One line on CUPED when it was asked for: which metrics were adjusted, and why others were not."""
    if result.plan is None or not result.plan.cuped:
        return None
    applied = [m.metric.name for m in result.metrics if m.cuped.applied]
    skipped = [f"{m.metric.name} ({m.cuped.reason})" for m in result.metrics if not m.cuped.applied]
    parts = [f"CUPED applied to: {', '.join(applied) or 'no metric'}"]
    if skipped:
        parts.append(f"not applied to: {'; '.join(skipped)}")
    return " · ".join(parts)


def _segment_table(result: ExperimentAnalysis, index: int) -> Any:
    """One metric across every segment: a row per segment × treatment."""
    from rich.table import Table

    assert result.segments is not None
    breakdown = result.segments
    metric = result.metrics[index].metric
    level = f"{1 - result.alpha:.0%}"
    table = Table(
        title=f"{metric.name} by {breakdown.dimension} (top {breakdown.top} + other)",
        title_justify="left",
        show_edge=False,
        header_style="bold",
    )
    for column in ("segment", "variation", "units", "lift", f"{level} interval", "note"):
        table.add_column(column, justify="left" if column in ("segment", "variation", "note") else "right")
    for segment in breakdown.segments:
        for variant in segment.result.metrics[index].variants[1:]:
            data = variant.to_json()
            interval = (
                f"[{data['ci_low']:+.1%}, {data['ci_high']:+.1%}]"
                if data["ci_low"] is not None and data["ci_high"] is not None
                else ""
            )
            note = data["error"] or ("significant" if data["significant"] else "")
            table.add_row(
                segment.segment,
                variant.name,
                str(variant.units),
                _fmt(data["estimate"], "+.1%"),
                interval,
                note,
            )
    return table


def _as_of_line(result: ExperimentAnalysis) -> str:
    """When the data ends: events stored before ``data_as_of`` are folded in (older than ``computed_at``
    when read from unit values as of their last refresh; ``--fresh`` refreshes them first)."""
    as_of = datetime.fromisoformat(result.to_json()["data_as_of"])
    lag = (min(result.until, result.computed_at) - as_of).total_seconds()  # > 0: read as of a refresh
    age = f" ({lag:.0f} s before computed; --fresh for now)" if lag >= 1 else ""
    return f"data as of {as_of:%Y-%m-%d %H:%M:%S} UTC{age}"


def print_result(result: ExperimentAnalysis) -> None:
    """A rich table per metric; significant lifts highlighted (green: good, red: harmful); SRM warning."""
    from xpstream.cli.output import console as make_console

    console = make_console()
    plan = result.plan
    extras = ""
    if plan is not None and plan.correction != "none":
        extras += f" · {plan.correction} correction"
    if plan is not None and plan.planned_units:
        units = sum(v.units for v in result.metrics[0].variants) if result.metrics else 0
        extras += f" · {units}/{plan.planned_units} planned units"
    console.print(
        f"[bold]{result.experiment}[/bold] · {result.method}{extras}"
        f" · computed {result.computed_at:%Y-%m-%d %H:%M:%S} UTC · SRM p = {_fmt(result.srm_p_value, '.3g')}"
    )
    console.print(_as_of_line(result))
    cuped = _cuped_line(result)
    if cuped:
        console.print(cuped)
    if result.srm_flagged:
        console.print(
            "[bold red]warning: sample ratio mismatch (SRM p < 0.001): the split does not match the "
            "configured weights; do not trust these results until the cause is found[/bold red]"
        )
    for metric in result.metrics:
        console.print(_metric_table(metric, result.alpha, bayesian=result.method == "bayesian"))
    if result.segments is not None:
        for index in range(len(result.metrics)):
            console.print(_segment_table(result, index))


def results(
    experiment: str = typer.Argument(..., help="Experiment key."),
    fmt: OutputFormat = typer.Option(
        OutputFormat.table, "--format", help="table, json, or csv (one row per metric × variation)."
    ),
    method: StatsMethod | None = typer.Option(
        None,
        "--method",
        help="sequential (valid under peeking), frequentist (Welch), bayesian, or group_sequential_obf / "
        "group_sequential_pocock (planned looks; need analysis.planned_units). Default: the experiment's "
        "analysis.method, else sequential.",
    ),
    alpha: float | None = typer.Option(
        None, "--alpha", help="Significance level. Default: the experiment's analysis.alpha, else 0.05."
    ),
    cuped: bool | None = typer.Option(
        None,
        "--cuped/--no-cuped",
        help="Adjust binomial and mean metrics with their pre-exposure covariate (CUPED). Default: the "
        "experiment's analysis.cuped, else off.",
    ),
    correction: CorrectionChoice | None = typer.Option(
        None,
        "--correction",
        help="Multiple-comparison correction across metrics × variations: none, holm or bh. Default: "
        "the experiment's analysis.correction, else none.",
    ),
    segment: str | None = typer.Option(
        None, "--segment", help="Also break results down by this exposure attribute (e.g. country)."
    ),
    top: int = typer.Option(10, "--top", min=1, help="With --segment: the N largest values, plus other."),
    since: str | None = typer.Option(None, "--since", help="Only units first exposed at or after (ISO)."),
    until: str | None = typer.Option(
        None, "--until", help="Only units and events before (ISO; default now)."
    ),
    fresh: bool = typer.Option(
        False,
        "--fresh",
        help="Fold in every event stored so far (refresh xp.unit_values first). Default: read them as of "
        "their last refresh when it is younger than XP_RESULTS_MAX_STALENESS_SECONDS (60 s); the output's "
        "data_as_of says up to when.",
    ),
) -> None:
    """Compute an experiment's results now, from ClickHouse, and print them (nothing is stored;
    `xp jobs run stats` stores snapshots).

    Relative lift of every variation against control, per metric; SRM against the configured weights.
    Method, alpha, CUPED and correction come from the experiment's `analysis:` block; flags override.

    Example: xp results checkout-button

    Example: xp results checkout-button --format json --method frequentist

    Example: xp results checkout-button --cuped --correction holm --segment country --top 5

    Example: xp results checkout-button --fresh
    """
    from jobs.results.flat_rows import CSV_COLUMNS, csv_rows
    from xpstream.cli.output import print_json
    from xpstream.results_query import compute_results

    result = compute_results(
        experiment,
        method=method.value if method is not None else None,
        alpha=alpha,
        cuped=cuped,
        correction=correction.value if correction is not None else None,
        segment=segment,
        top=top,
        since=parse_time(since, "--since"),
        until=parse_time(until, "--until"),
        fresh=fresh,
    )
    if fmt is OutputFormat.json:
        print_json(result.to_json())
    elif fmt is OutputFormat.csv:
        from xpstream.cli.output import print_rows

        print_rows(csv_rows(result), CSV_COLUMNS, OutputFormat.csv)
    else:
        print_result(result)


def register(app: typer.Typer) -> None:
    app.command("results")(results)
