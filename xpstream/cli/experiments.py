"""`xp experiments …`: the experiment registry (topic ``xp.registry``; docs/registry.md)."""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from xpcore.errors import ValidationError
from xpstream.cli.output import OutputFormat, print_json, print_rows

if TYPE_CHECKING:
    from assignment.registry import RegistrySnapshot
    from schemas import RegistryRecord
    from xpcore.config import CoreSettings, KafkaSettings

experiments_app = typer.Typer(help="Manage experiments and overrides in the registry.", no_args_is_help=True)

_FORMAT_HELP = "table (for people) or json."
_ACTOR_HELP = "Who makes the change (audit trail); default $USER."
_TIMEOUT_HELP = "Seconds to wait for Kafka."


def _settings() -> CoreSettings:
    from xpcore.config import CoreSettings, load_settings

    return load_settings(CoreSettings)


def _actor(actor: str | None) -> str:
    """--actor, else $USER (typer reads it), else the login name of the process."""
    if actor is not None and actor.strip():
        return actor.strip()
    import getpass

    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError):
        return "unknown"


def _now() -> datetime:
    return datetime.now(UTC)


def _say(text: str) -> None:
    from rich.console import Console

    Console(highlight=False).print(text, markup=False)


def _print_changes(summaries: list[dict[str, Any]], fmt: OutputFormat, extra: dict[str, Any]) -> None:
    if fmt is OutputFormat.json:
        print_json({**extra, "changes": summaries})
        return
    if not summaries:
        _say("no changes: the registry already matches")
        return
    verb = "would publish" if extra.get("dry_run") else "published"
    for item in summaries:
        version = f" v{item['version']}" if item["version"] is not None else ""
        detail = f"  ({item['detail']})" if item["detail"] else ""
        _say(f"{item['change']:<8} {item['key']}{version}{detail}")
    _say(f"{verb} {len(summaries)} change(s)")


@experiments_app.command("apply")
def apply(
    file: Path = typer.Argument(..., help="YAML experiments or a GrowthBook features payload (JSON/YAML)."),
    actor: str | None = typer.Option(None, "--actor", envvar="USER", help=_ACTOR_HELP),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate and show the changes; publish nothing."),
    prune: bool = typer.Option(
        False, "--prune", help="Also delete experiments and features the registry has but FILE does not."
    ),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=_FORMAT_HELP),
    timeout: float = typer.Option(10.0, "--timeout", help=_TIMEOUT_HELP),
) -> None:
    """Validate FILE, compare it with the registry and publish only what changed (audited).

    Each change is a record on the compacted topic xp.registry with who (--actor or $USER), when and
    what (created/updated/deleted). Re-applying an unchanged file publishes nothing. Errors name the
    file, the experiment and the field; status transitions and frozen fields are checked against the
    registry (docs/registry.md).

    Example: xp experiments apply examples/experiments.yaml

    Example: xp experiments apply payload.json --actor alice --dry-run --format json
    """
    from assignment.authoring import load_registry_file
    from assignment.registry_changes import plan_changes, summarize
    from assignment.registry_topic import publish_changes, read_registry

    authored = load_registry_file(file)
    settings = _settings()
    snapshot = read_registry(settings, timeout)
    records = plan_changes(snapshot, authored, actor=_actor(actor), now=_now(), prune=prune)
    summaries = [summarize(snapshot, record).to_dict() for record in records]
    if records and not dry_run:
        publish_changes(settings, records, timeout=timeout)
        _check_applied(settings, records, timeout)
    extra = {"file": str(file), "dry_run": dry_run, "published": bool(records) and not dry_run}
    _print_changes(summaries, fmt, extra)


def _check_applied(settings: KafkaSettings, records: list[RegistryRecord], timeout: float) -> None:
    """Read the registry back: a record another writer beat to the same version was ignored by every
    reader (the fold keeps the first); say so instead of reporting success."""
    from assignment.registry_topic import read_registry
    from xpcore.errors import TransientError

    heads = read_registry(settings, timeout).records
    lost = [r for r in records if (head := heads.get(r.key)) is None or head.record_id != r.record_id]
    if lost:
        first = heads.get(lost[0].key)
        by = f" (now {first.change} by {first.changed_by} at {first.changed_at.isoformat()})" if first else ""
        raise TransientError(
            f"{len(lost)} of {len(records)} change(s) lost to a concurrent change, e.g. {lost[0].key}{by}; "
            "re-run to see what is left"
        )


def _experiment_rows(snapshot: RegistrySnapshot) -> list[dict[str, Any]]:
    rows = []
    for key in sorted(snapshot.experiments):
        spec = snapshot.experiments[key]
        record = snapshot.records.get(f"experiment:{key}")
        rows.append(
            {
                "key": key,
                "name": spec.name,
                "status": str(spec.status),
                "feature": spec.feature_key,
                "variations": [v.key for v in spec.variations],
                "weights": list(spec.weights),
                "coverage": spec.coverage,
                "version": spec.version,
                "owner": spec.owner,
                "changed_by": record.changed_by if record else None,
                "changed_at": record.changed_at.isoformat() if record else None,
                "overrides": sum(1 for (exp, _unit) in snapshot.overrides if exp == key),
            }
        )
    return rows


@experiments_app.command("list")
def list_(
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json or csv."),
    timeout: float = typer.Option(10.0, "--timeout", help=_TIMEOUT_HELP),
) -> None:
    """List the experiments in the registry: key, name, status, variations, weights, coverage, version.

    Example: xp experiments list

    Example: xp experiments list --format json
    """
    from assignment.registry_topic import read_registry
    from xpcore.registry_signing import refusals

    rows = _experiment_rows(read_registry(_settings(), timeout))
    refused = refusals().summary()
    if refused["refused"]:  # forged or unsigned records on xp.registry: not applied, said on stderr
        typer.echo(
            f"warning: {refused['refused']} registry record(s) refused (not signed by a registry key:"
            f" {refused['by_reason']}); they are not applied",
            err=True,
        )
    columns = ["key", "name", "status", "variations", "weights", "coverage", "version", "changed_by"]
    if fmt is not OutputFormat.table:
        print_rows(rows, list(rows[0]) if rows else columns, fmt)
        return
    if not rows:
        _say("no experiments in the registry (add some: xp experiments apply FILE)")
        return
    readable = [
        {
            **row,
            "variations": ", ".join(row["variations"]),
            "weights": ", ".join(f"{w:g}" for w in row["weights"]),
        }
        for row in rows
    ]
    print_rows(readable, columns, fmt)


def _history_row(record: RegistryRecord) -> dict[str, Any]:
    import msgspec

    payload = record.payload
    return {
        "changed_at": record.changed_at.isoformat(),
        "changed_by": record.changed_by,
        "change": str(record.change),
        "key": record.key,
        "version": getattr(payload, "version", None),
        "status": str(getattr(payload, "status", "") or ""),
        "record_id": record.record_id,
        "payload": msgspec.to_builtins(payload) if payload is not None else None,
    }


@experiments_app.command("history")
def history(
    key: str = typer.Argument(..., help="Experiment key, or a registry key like override:EXP:UNIT."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=_FORMAT_HELP),
    timeout: float = typer.Option(10.0, "--timeout", help=_TIMEOUT_HELP),
) -> None:
    """Show who changed an experiment (its feature and overrides too), when and how, oldest first.

    Reads the topic, which compaction may have thinned to the latest record per key; the full audit
    trail is the xp.registry table: xp sql "SELECT * FROM xp.registry WHERE key = 'experiment:KEY'".

    Example: xp experiments history checkout-button

    Example: xp experiments history override:checkout-button:user-42 --format json
    """
    from assignment.registry_topic import registry_history

    rows = [_history_row(record) for record in registry_history(_settings(), key, timeout)]
    if fmt is OutputFormat.json:
        print_json(rows)
        return
    if not rows:
        _say(f"no registry records for {key!r}")
        return
    columns = ["changed_at", "changed_by", "change", "key", "version", "status"]
    print_rows(rows, columns, OutputFormat.table)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_expiry(value: str | None, now: datetime) -> datetime | None:
    """``--expires``: a duration from now (``30m``, ``12h``, ``7d``, ``2w``) or an ISO 8601 time with zone."""
    if value is None or not value.strip():
        return None
    match = _DURATION.match(value.lower())
    if match:
        return now + timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"--expires: {value!r} is neither a duration (30m, 12h, 7d, 2w) nor an ISO 8601 time"
        ) from None
    if parsed.tzinfo is None:
        raise ValidationError(f"--expires: {value!r} needs a time zone (e.g. 2026-12-01T00:00:00Z)")
    return parsed.astimezone(UTC)


def _publish_one(
    settings: CoreSettings,
    snapshot: RegistrySnapshot,
    record: RegistryRecord,
    fmt: OutputFormat,
    timeout: float,
    notes: Sequence[str] = (),
) -> None:
    from assignment.registry_changes import summarize
    from assignment.registry_topic import publish_changes

    summary = summarize(snapshot, record).to_dict()
    publish_changes(settings, [record], timeout=timeout)
    _check_applied(settings, [record], timeout)
    extra: dict[str, Any] = {"dry_run": False, "published": True}
    if notes:
        extra["notes"] = notes
        if fmt is not OutputFormat.json:
            for note in notes:
                sys.stderr.write(f"note: {note}\n")
    _print_changes([summary], fmt, extra)


@experiments_app.command("override")
def override(
    experiment: str = typer.Argument(..., help="Experiment key."),
    unit: str = typer.Argument(..., help="Unit id (value of the experiment's hash attribute)."),
    variation: str | None = typer.Argument(None, help="Variation index or key (not with --remove)."),
    expires: str | None = typer.Option(None, "--expires", help="Duration (7d, 12h, 30m) or ISO 8601 time."),
    reason: str = typer.Option("", "--reason", help="Why (kept in the audit trail)."),
    remove: bool = typer.Option(False, "--remove", help="Remove the unit's override instead."),
    actor: str | None = typer.Option(None, "--actor", envvar="USER", help=_ACTOR_HELP),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=_FORMAT_HELP),
    timeout: float = typer.Option(10.0, "--timeout", help=_TIMEOUT_HELP),
) -> None:
    """Force UNIT into VARIATION of EXPERIMENT (QA, VIPs), or remove that with --remove.

    The service applies overrides (they are never in the SDK payload, which would leak unit ids) and
    marks the unit's exposures `overridden`, so analysis excludes them. Overrides are audited registry
    records; an expired override is ignored.

    Example: xp experiments override checkout-button qa-user-1 green --expires 7d --reason "QA"

    Example: xp experiments override checkout-button qa-user-1 --remove
    """
    from assignment.registry_changes import override_change, override_notes, remove_override_change
    from assignment.registry_topic import read_registry

    now = _now()
    if remove:
        if variation is not None:
            raise ValidationError("--remove takes EXPERIMENT UNIT only, not a VARIATION")
    elif variation is None:
        raise ValidationError("missing VARIATION (an index or key), or pass --remove")
    expires_at = parse_expiry(expires, now)
    settings = _settings()
    snapshot = read_registry(settings, timeout)
    if remove:
        record = remove_override_change(snapshot, experiment, unit, actor=_actor(actor), now=now)
    else:
        assert variation is not None
        record = override_change(
            snapshot,
            experiment,
            unit,
            variation,
            actor=_actor(actor),
            now=now,
            expires_at=expires_at,
            reason=reason,
        )
    notes = [] if remove else override_notes(snapshot, experiment)
    _publish_one(settings, snapshot, record, fmt, timeout, notes)


@experiments_app.command("clear-override")
def clear_override(
    experiment: str = typer.Argument(..., help="Experiment key."),
    unit: str = typer.Argument(..., help="Unit id."),
    actor: str | None = typer.Option(None, "--actor", envvar="USER", help=_ACTOR_HELP),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help=_FORMAT_HELP),
    timeout: float = typer.Option(10.0, "--timeout", help=_TIMEOUT_HELP),
) -> None:
    """Remove UNIT's override in EXPERIMENT (same as `override EXPERIMENT UNIT --remove`).

    Example: xp experiments clear-override checkout-button qa-user-1
    """
    from assignment.registry_changes import remove_override_change
    from assignment.registry_topic import read_registry

    settings = _settings()
    snapshot = read_registry(settings, timeout)
    record = remove_override_change(snapshot, experiment, unit, actor=_actor(actor), now=_now())
    _publish_one(settings, snapshot, record, fmt, timeout)


@experiments_app.command("overrides")
def overrides(
    experiment: str | None = typer.Argument(None, help="Only this experiment's overrides."),
    fmt: OutputFormat = typer.Option(OutputFormat.table, "--format", help="table, json or csv."),
    timeout: float = typer.Option(10.0, "--timeout", help=_TIMEOUT_HELP),
) -> None:
    """List live overrides (expired ones are marked).

    Example: xp experiments overrides checkout-button --format json
    """
    from assignment.registry_topic import read_registry

    snapshot = read_registry(_settings(), timeout)
    now = _now()
    rows = [
        {
            "experiment": o.experiment_key,
            "unit": o.unit_id,
            "variation_id": o.variation_id,
            "variation_key": o.variation_key,
            "expires_at": o.expires_at.isoformat() if o.expires_at else None,
            "expired": snapshot.override_for(o.experiment_key, o.unit_id, now) is None,
            "reason": o.reason,
        }
        for (exp, _unit), o in sorted(snapshot.overrides.items())
        if experiment is None or exp == experiment
    ]
    columns = ["experiment", "unit", "variation_id", "variation_key", "expires_at", "expired", "reason"]
    print_rows(rows, columns, fmt)


@experiments_app.command("payload")
def payload(
    file: Path | None = typer.Option(
        None, "--file", help="Compile this file instead of reading the registry."
    ),
    timeout: float = typer.Option(10.0, "--timeout", help=_TIMEOUT_HELP),
) -> None:
    """Print the GrowthBook SDK payload the registry (or FILE) serves: running experiments only, no overrides.

    Example: xp experiments payload > payload.json

    Example: xp experiments payload --file examples/experiments.yaml
    """
    if file is not None:
        from assignment.authoring import load_payload_file

        print_json(load_payload_file(file))
        return
    from assignment.registry_topic import read_registry

    print_json(read_registry(_settings(), timeout).payload())


def register(app: typer.Typer) -> None:
    app.add_typer(experiments_app, name="experiments")
