"""`xp stats test`: statistics on sufficient statistics (issue #5). The engine lives in jobs/stats/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from xpcore.errors import ValidationError
from xpstream.cli.output import OutputFormat

stats_app = typer.Typer(help="Statistics on sufficient statistics.", no_args_is_help=True)

_COLUMNS = [
    "input",
    "name",
    "n",
    "mean",
    "estimate",
    "ci_low",
    "ci_high",
    "p_value",
    "chance_to_win",
    "significant",
    "error",
]


def _read_documents(input_file: Path) -> list[tuple[str, str]]:
    """(where, text) per request: the whole file, or each non-blank line of a .jsonl file."""
    try:
        text = input_file.read_text(encoding="utf-8")
    except OSError as error:
        raise ValidationError(f"cannot read {input_file}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValidationError(f"{input_file}: not UTF-8 text") from None
    if input_file.suffix.lower() != ".jsonl":
        return [(f"{input_file}", text)]
    documents = [
        (f"{input_file} line {number}", line)
        for number, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not documents:
        raise ValidationError(f"{input_file}: no JSON lines")
    return documents


def _rows(index: int, answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {column: variant.get(column) for column in _COLUMNS} | {"input": index}
        for variant in answer["variants"]
    ]


@stats_app.command("test")
def test(
    input_file: Path = typer.Option(..., "--input", help="One JSON object, or a .jsonl file of them."),
    fmt: OutputFormat = typer.Option(OutputFormat.json, "--format", help="json (default), table or csv."),
) -> None:
    """Compare variants from their sufficient statistics; JSON in, JSON out.

    A .jsonl input gives one output line per input line, in order.

    Every line is validated before anything is printed.

    Example: xp stats test --input experiment.json

    Example: xp stats test --input metrics.jsonl --format table

    Input fields, output fields, formulas: docs/statistics.md.
    """
    from jobs.stats.contract import analyze_request, parse_request
    from xpstream.cli.output import print_json, print_rows

    parsed = [parse_request(text, where) for where, text in _read_documents(input_file)]
    answers = [analyze_request(request, statistics) for request, statistics in parsed]
    if fmt is OutputFormat.json:
        for answer in answers:
            print_json(answer)
        return
    rows = [row for index, answer in enumerate(answers, start=1) for row in _rows(index, answer)]
    print_rows(rows, _COLUMNS, fmt)


def register(app: typer.Typer) -> None:
    app.add_typer(stats_app, name="stats")
