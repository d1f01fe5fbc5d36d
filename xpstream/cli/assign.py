"""`xp assign …`: evaluate assignments (issue #3)."""

from __future__ import annotations

import gc
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import typer

from assignment.payload_file import json_error, read_payload_file
from xpcore.errors import ValidationError
from xpstream.cli.output import OutputFormat, print_rows

if TYPE_CHECKING:
    from assignment.compiled import CompiledPayload

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

    if (attributes is None) == (attributes_file is None):
        raise ValidationError("pass exactly one of --attributes JSON or --attributes-file FILE.jsonl")
    payload = compile_payload(read_payload_file(features))
    if attributes_file is not None:
        _eval_file(payload, key, attributes_file, fmt)
        return
    assert attributes is not None
    rows = [result.to_dict() for result in payload.evaluate_many(key, [_read_unit(attributes)])]
    if fmt is OutputFormat.json:
        sys.stdout.writelines(json.dumps(row, ensure_ascii=False, default=str) + "\n" for row in rows)
        return
    print_rows(rows, EVAL_COLUMNS, fmt)


def _read_unit(attributes: str) -> dict[str, Any]:
    try:
        unit = json.loads(attributes)
    except json.JSONDecodeError as error:
        raise json_error("--attributes", error) from error
    if not isinstance(unit, dict):
        raise ValidationError("--attributes: must be a JSON object of attribute name → value")
    return cast(dict[str, Any], unit)


_ERRORS_SHOWN = 20


def _eval_file(payload: CompiledPayload, key: str, path: Path, fmt: OutputFormat) -> None:
    """Evaluate every line of a JSONL file block by block (decision 0078): with --format json the
    results stream out as they are computed, a bad line becomes ``{"line": N, "error": …}`` in its
    place, and the command fails (exit 2) at the end naming the bad lines."""
    from assignment.jsonl import LineError, decode_units, oversized_line, read_blocks
    from assignment.jsonl_columns import encode_jsonl

    errors: list[LineError] = []
    rows: list[dict[str, Any]] = []
    out = sys.stdout.buffer
    # Units and results are plain acyclic data freed block by block: the cyclic GC would only
    # re-scan them as they are allocated (a quarter of the decoding time on 1 M units).
    gc.disable()
    try:
        with path.open("rb") as stream:
            if fmt is OutputFormat.json:
                sys.stdout.flush()
                for lines in encode_jsonl(payload, key, stream, errors):
                    out.write(lines)
            else:
                for first_line, block in read_blocks(stream):
                    if block is None:
                        errors.append(oversized_line(first_line))
                        continue
                    units, block_errors = decode_units(block, first_line)
                    errors.extend(block_errors)
                    rows.extend(result.to_dict() for result in payload.evaluate_many(key, units))
    except OSError as error:
        raise ValidationError(f"{path}: cannot read attributes file: {error.strerror or error}") from error
    finally:
        gc.enable()
    if fmt is not OutputFormat.json:
        print_rows(rows, EVAL_COLUMNS, fmt)
    else:
        out.flush()
    if len(errors) == 1:
        raise ValidationError(f"{path}:{errors[0].line}: {errors[0].reason}")
    if errors:
        for bad in errors[:_ERRORS_SHOWN]:
            sys.stderr.write(f"{path}:{bad.line}: {bad.reason}\n")
        more = f" ({len(errors) - _ERRORS_SHOWN} more not shown)" if len(errors) > _ERRORS_SHOWN else ""
        where = (
            '; each has a {"line", "error"} object in its place in the output'
            if fmt is OutputFormat.json
            else ""
        )
        raise ValidationError(f"{path}: {len(errors)} lines are not units{more}{where}")


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
