"""`xp warehouse ddl --cluster NAME`: the ON CLUSTER schema for a ClickHouse cluster (issue #19).

The generator is pure (:mod:`xpcore.warehouse.cluster_ddl`): it reads sql/migrations and opens no store.
"""

from __future__ import annotations

import enum
import sys

import typer

from xpstream.cli.output import print_json

__all__ = ["register", "warehouse_app"]

warehouse_app = typer.Typer(help="The warehouse schema for production ClickHouse.", no_args_is_help=True)


class DdlFormat(enum.StrEnum):
    sql = "sql"
    json = "json"


@warehouse_app.command("ddl")
def ddl(
    cluster: str = typer.Option(..., "--cluster", help="The ClickHouse cluster name (remote_servers)."),
    from_version: int = typer.Option(
        1, "--from-version", min=1, help="Only migrations from this version on (an upgrade of a cluster)."
    ),
    fmt: DdlFormat = typer.Option(DdlFormat.sql, "--format", help="sql (a script) or json (statements)."),
) -> None:
    """Print ON CLUSTER DDL (Replicated* local tables, Distributed tables) from the migrations.

    Local tables are xp.NAME_local (ReplicatedReplacingMergeTree or the Replicated form of each table's
    engine) sharded by cityHash64(unit_id); xp.NAME is a Distributed table over them, so queries and
    inserts keep their names. xp.schema_migrations records every migration, so an xpstream pointed at the
    cluster applies none of the single-node DDL. See docs/operations.md ("ClickHouse cluster").

    Examples:

      xp warehouse ddl --cluster xp | clickhouse-client --multiquery

      xp warehouse ddl --cluster xp --from-version 11 > upgrade.sql

      xp warehouse ddl --cluster xp --format json
    """
    from xpcore.warehouse.cluster_ddl import cluster_ddl, render_script, validate_cluster_name
    from xpcore.warehouse.migrations import discover_migrations

    validate_cluster_name(cluster)
    migrations = discover_migrations()
    statements = cluster_ddl(migrations, cluster, from_version=from_version)
    if fmt is DdlFormat.json:
        print_json(
            {
                "cluster": cluster,
                "from_version": from_version,
                "statements": [{"migration": s.migration, "kind": s.kind, "sql": s.sql} for s in statements],
            }
        )
        return
    chosen = [m for m in migrations if m.version >= from_version]
    sys.stdout.write(render_script(statements, cluster, chosen))


@warehouse_app.command("backup-sql")
def backup_sql(
    target: str = typer.Option(..., "--to", help="disk:DISK/NAME or https://HOST/BUCKET/PATH (S3)."),
    cluster: str | None = typer.Option(None, "--cluster", help="Back up every shard (ON CLUSTER)."),
    restore: bool = typer.Option(False, "--restore", help="Print the RESTORE statement instead."),
) -> None:
    """Print the ClickHouse server's BACKUP (or RESTORE) statement for database xp.

    The server writes the backup itself (consistent per table); credentials come from its configuration,
    never from the statement. `xp backup` copies an embedded chDB store; on a server, use this.

    Examples:

      xp warehouse backup-sql --to disk:backups/xp-2026-12-05 --cluster xp | clickhouse-client

      xp warehouse backup-sql --to https://s3.eu-west-1.amazonaws.com/acme-xp/backups/2026-12-05 --restore
    """
    from xpcore.warehouse.server_backup import server_backup_sql, server_restore_sql

    make = server_restore_sql if restore else server_backup_sql
    sys.stdout.write(make(target, cluster=cluster) + "\n")


def register(app: typer.Typer) -> None:
    app.add_typer(warehouse_app, name="warehouse")
