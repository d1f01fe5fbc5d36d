"""`xp assign …`: evaluate assignments (issue #3)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from assignment.payload_file import json_error, read_payload_file
from xpcore.errors import ValidationError
from xpstream.cli.output import OutputFormat, print_rows

assign_app = typer.Typer(help="Evaluate and serve assignments.", no_args_is_help=True)


EVAL_COLUMNS = ["value", "source", "in_experiment", "variation_id", "hash_used", "experiment_key", "rule_id"]


@assign_app.command("eval")
def eval_(
    features: Path = typer.Option(..., "--features", help="GrowthBook payload (JSON) or xpstream YAML."),
    key: str = typer.Option(..., "--key", help="Feature key to evaluate."),
    attributes: str | None = typer.Option(None, "--attributes", help="Unit attributes as a JSON object."),
    attributes_file: Path | None = typer.Option(None, "--attributes-file", help="JSONL: one unit per line."),
    fmt: OutputFormat = typer.Option(
        OutputFormat.table, "--format", help="table, json (one object per unit) or csv."
    ),
) -> None:
    """Evaluate feature KEY for one unit or a file of units, like a GrowthBook SDK would.

    With --format json, prints one JSON object per unit, in input order, with value, source
    (GrowthBook's names), in_experiment, variation_id (null unless in the experiment), hash_used,
    experiment_key, rule_id, hash_attribute, hash_value, bucket, variation_key.

    Example: xp assign eval --features payload.json --key checkout --attributes '{"id": "u1"}' --format json

    Example: xp assign eval --features payload.json --key checkout --attributes-file units.jsonl --format json
    """
    from assignment import compile_payload

    payload = compile_payload(read_payload_file(features))
    units = _read_units(attributes, attributes_file)
    rows = [result.to_dict() for result in payload.evaluate_many(key, units)]
    if fmt is OutputFormat.json:
        sys.stdout.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
        return
    print_rows(rows, EVAL_COLUMNS, fmt)


def _read_units(attributes: str | None, attributes_file: Path | None) -> list[dict[str, Any]]:
    """The units to evaluate: one from --attributes, or one per non-blank line of --attributes-file."""
    if (attributes is None) == (attributes_file is None):
        raise ValidationError("pass exactly one of --attributes JSON or --attributes-file FILE.jsonl")
    if attributes is not None:
        try:
            unit = json.loads(attributes)
        except json.JSONDecodeError as error:
            raise json_error("--attributes", error) from error
        if not isinstance(unit, dict):
            raise ValidationError("--attributes: must be a JSON object of attribute name → value")
        return [unit]
    assert attributes_file is not None
    try:
        lines = attributes_file.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ValidationError(
            f"{attributes_file}: cannot read attributes file: {error.strerror or error}"
        ) from error
    except UnicodeDecodeError as error:
        raise ValidationError(f"{attributes_file}: attributes file is not UTF-8 text") from error
    units: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            unit = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValidationError(f"{attributes_file}:{number}: invalid JSON: {error.msg}") from error
        if not isinstance(unit, dict):
            raise ValidationError(f"{attributes_file}:{number}: each line must be a JSON object")
        units.append(unit)
    return units


@assign_app.command("serve")
def serve(
    port: int | None = typer.Option(
        None, "--port", help="Port to listen on (default 8100, XP_SERVICE_PORT)."
    ),
    host: str | None = typer.Option(
        None, "--host", help="Interface (default 127.0.0.1); a non-loopback one needs XP_SERVICE_CLIENT_KEYS."
    ),
    features: Path | None = typer.Option(
        None,
        "--features",
        help="Serve this GrowthBook payload (JSON) instead of following the registry topic.",
    ),
    exposures: bool | None = typer.Option(
        None,
        "--exposures/--no-exposures",
        help="Produce exposures to Kafka (default on, XP_EXPOSURES_ENABLED).",
    ),
) -> None:
    """Serve the assignment HTTP API (assign, GrowthBook SDK payload, event collector, overrides).

    Follows the registry topic and reloads on every change, unless --features names a static payload.
    Exposures go to Kafka, or to the spool under $XP_HOME/spool while Kafka is unreachable.
    API: docs/service.md; OpenAPI at /openapi.json.

    Example: xp assign serve --port 8100

    Example: xp assign serve --features payload.json --port 8100 --no-exposures

    Example: XP_SERVICE_CLIENT_KEYS=k1 XP_SERVICE_ADMIN_KEYS=a1 xp assign serve --host 0.0.0.0
    """
    from assignment.service.server import run_service
    from xpcore.config import ServiceSettings, load_settings

    overrides: dict[str, Any] = {}
    if port is not None:
        overrides["service_port"] = port
    if host is not None:
        overrides["service_host"] = host
    if features is not None:
        overrides["service_features_file"] = features
    if exposures is not None:
        overrides["exposures_enabled"] = exposures
    run_service(load_settings(ServiceSettings, **overrides))


def register(app: typer.Typer) -> None:
    app.add_typer(assign_app, name="assign")
