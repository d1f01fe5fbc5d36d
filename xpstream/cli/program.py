"""`xp program`: the program view across finished experiments (issue #18 part 3). The document is built in
jobs/program.py; this module prints it."""

from __future__ import annotations

from typing import Any

import typer

from xpstream.cli.output import OutputFormat

__all__ = ["CSV_COLUMNS", "print_program", "program", "register"]

CSV_COLUMNS = (
    "experiment",
    "team",
    "decision",
    "variation",
    "metric",
    "lift",
    "ci_low",
    "ci_high",
    "p_value",
    "significant",
    "duration_days",
    "units",
    "meta_lift",
    "meta_standard_error",
    "method",
    "computed_at",
    "error",
)
"""One row per finished experiment (``--format csv``)."""


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:+.2f} %"


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_program(document: dict[str, Any]) -> None:
    from rich.table import Table

    from xpstream.cli.output import console as make_console

    console = make_console()
    if not document["experiments"]:
        console.print("no finished experiments (status: stopped) match")
        return
    experiments = Table(
        title="finished experiments", title_justify="left", show_edge=False, header_style="bold"
    )
    for column in ("experiment", "team", "decision", "metric", "lift", "interval", "days", "units"):
        experiments.add_column(column, justify="right" if column in ("lift", "days", "units") else "left")
    for e in document["experiments"]:
        interval = (
            f"[{_pct(e['ci_low'])}, {_pct(e['ci_high'])}]" if e["lift"] is not None else e["error"] or "—"
        )
        experiments.add_row(
            e["experiment"],
            e["team"],
            e["decision"],
            e["metric"] or "—",
            _pct(e["lift"]),
            interval,
            _num(e["duration_days"]),
            "—" if e["units"] is None else f"{e['units']:,}",
        )
    console.print(experiments)
    for field, title in (("team", "per team"), ("metric", "per metric")):
        table = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
        for column in (
            field,
            "experiments",
            "ship",
            "rollback",
            "inconclusive",
            "undecided",
            "win rate",
            "median lift",
            "lift IQR",
        ):
            table.add_column(column, justify="left" if column == field else "right")
        for g in document[f"{field}s"]:
            lift = g["lift"]
            table.add_row(
                g[field],
                str(g["experiments"]),
                str(g["ship"]),
                str(g["rollback"]),
                str(g["inconclusive"]),
                str(g["undecided"]),
                "—" if g["win_rate"] is None else f"{g['win_rate'] * 100:.0f} %",
                _pct(lift["median"]),
                f"[{_pct(lift['p25'])}, {_pct(lift['p75'])}]" if lift["count"] else "—",
            )
        console.print(table)
    meta = document["meta_analysis"]
    if meta is None:
        if document["experiments"]:
            console.print(
                "meta-analysis: choose one metric (--metric): the experiments' primary metrics differ"
            )
        else:
            console.print("no finished experiments (status: stopped) match")
        return
    console.print(f"[bold]meta-analysis[/bold] of {meta['metric']} over {meta['experiments']} experiments")
    if meta["error"]:
        console.print(f"  no pooled estimate: {meta['error']}")
    else:
        fixed, random = meta["fixed_effect"], meta["random_effects"]
        console.print(
            f"  fixed effect: {_pct(fixed['estimate'])} [{_pct(fixed['ci_low'])}, {_pct(fixed['ci_high'])}],"
            f" p = {fixed['p_value']:.4g}"
        )
        if meta["q_df"]:
            console.print(
                f"  heterogeneity: Q = {meta['q']:.3f} (df {meta['q_df']}, p = {meta['q_p_value']:.4g}),"
                f" I² = {meta['i_squared'] * 100:.1f} %, τ² = {meta['tau_squared']:.3g}"
            )
            console.print(
                f"  random effects (DerSimonian–Laird): {_pct(random['estimate'])}"
                f" [{_pct(random['ci_low'])}, {_pct(random['ci_high'])}], p = {random['p_value']:.4g}"
            )
    for skipped in meta["excluded"]:
        console.print(f"  left out: {skipped['experiment']} ({skipped['reason']})")


def program(
    team: str | None = typer.Option(None, "--team", help="Only this team's experiments (the owner: field)."),
    metric: str | None = typer.Option(
        None, "--metric", help="Show and pool this metric (default: each experiment's primary metric)."
    ),
    experiments: str | None = typer.Option(
        None, "--experiments", help="Only these finished experiments, comma-separated: a,b,c."
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json or csv."),
) -> None:
    """Across finished (stopped) experiments: each one's decision, lift of its primary metric with the
    interval of its analysis, duration and units; win rate and the distribution of lifts per team and per
    metric; a fixed-effect meta-analysis of one metric (pooled lift, CI, p-value, Cochran's Q, I²) with
    DerSimonian–Laird random effects beside it. --format csv prints one row per experiment.

    Example: xp program

    Example: xp program --team growth --metric conversion --format json

    Example: xp program --experiments checkout-button,checkout-copy --metric conversion
    """
    from jobs.program import compute_program, parse_experiment_list
    from xpcore.config import WarehouseSettings, load_settings
    from xpcore.warehouse import open_warehouse
    from xpstream.cli.output import print_json, print_rows

    chosen = parse_experiment_list(experiments)
    warehouse = open_warehouse(load_settings(WarehouseSettings))
    try:
        document = compute_program(warehouse, team=team, metric=metric, experiments=chosen)
    finally:
        warehouse.close()
    if fmt is OutputFormat.json:
        print_json(document)
    elif fmt is OutputFormat.csv:
        print_rows(document["experiments"], CSV_COLUMNS, fmt)
    else:
        print_program(document)


def register(app: Any) -> None:
    app.command("program")(program)
