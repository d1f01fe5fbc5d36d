"""ON CLUSTER DDL for a sharded, replicated ClickHouse cluster, generated from sql/migrations (pure).

``xp warehouse ddl --cluster NAME`` prints what :func:`cluster_ddl` returns. Each migration statement
becomes its cluster form:

=================================  ==================================================================
migration statement                cluster form
=================================  ==================================================================
``CREATE DATABASE … xp``           ``CREATE DATABASE IF NOT EXISTS xp ON CLUSTER c`` (once)
``CREATE TABLE xp.T … ENGINE = E`` ``xp.T_local ON CLUSTER c`` with ``ReplicatedE('/clickhouse/tables/
                                   {shard}/xp/T_local', '{replica}', …)``, then ``xp.T ON CLUSTER c AS
                                   xp.T_local ENGINE = Distributed(c, xp, T_local, <shard key>)``
``CREATE MATERIALIZED VIEW``       ON CLUSTER, reading ``S_local`` and writing ``T_local`` (per shard)
``ALTER TABLE … ADD/… COLUMN``     on ``T_local`` and on ``T`` (the Distributed table), ON CLUSTER
``ALTER TABLE … UPDATE/DELETE``    on ``T_local`` ON CLUSTER (each shard mutates its own rows)
``ALTER TABLE … MODIFY SETTING``   on ``T_local`` ON CLUSTER (the engine's setting; Distributed has none)
``INSERT … SELECT`` (backfills)    unchanged, run once (not ON CLUSTER): it reads and writes through
                                   the Distributed tables
=================================  ==================================================================

The shard key is ``cityHash64(unit_id)`` for tables with a ``unit_id`` column (exposures and events of one
unit live on one shard, like their Kafka partition), else ``cityHash64`` of the table's sorting key.
Either way it is a function of sorting-key columns, so the rows a Replacing/Aggregating engine would
collapse are sent to one shard and ``FINAL`` over the Distributed table stays correct. Tables filled by
materialized views get their rows on the shard of the source row; they are aggregate states that every
query combines at read time (the migrations' rule), so that is also correct.

Last, ``xp.schema_migrations`` (replicated to every node, not sharded) records each migration with its
checksum, so an xpstream pointed at the cluster sees them applied and runs none of the single-node DDL.
Statements of a kind this module does not know raise :class:`~xpcore.warehouse.migrations.MigrationError`:
a new kind of migration has to teach this generator first (tests/unit/test_cluster_ddl.py fails).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from xpcore.errors import ValidationError
from xpcore.warehouse.migrations import DATABASE, Migration, MigrationError
from xpcore.warehouse.sqltext import string_literal

__all__ = [
    "LOCAL_SUFFIX",
    "ClusterStatement",
    "cluster_ddl",
    "pending_on_cluster",
    "render_script",
    "route_statement",
    "shard_key",
    "validate_cluster_name",
]

LOCAL_SUFFIX = "_local"
"""The suffix of the per-shard tables; the Distributed tables keep the single-node names."""

REPLICATED_ENGINES = {
    "MergeTree",
    "ReplacingMergeTree",
    "AggregatingMergeTree",
    "SummingMergeTree",
    "CollapsingMergeTree",
    "VersionedCollapsingMergeTree",
}
"""The MergeTree family, each of which has a ``Replicated*`` twin taking (path, replica, args…)."""

_CLUSTER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
_COMMENT_LINE = re.compile(r"^\s*--.*$", re.MULTILINE)
_CREATE_DATABASE = re.compile(rf"^CREATE DATABASE IF NOT EXISTS {DATABASE}$")
_CREATE_TABLE = re.compile(
    rf"^CREATE TABLE IF NOT EXISTS {DATABASE}\.(?P<name>\w+)\s*\((?P<columns>.*)\)\s*"
    r"ENGINE\s*=\s*(?P<engine>\w+)(?:\((?P<args>[^()]*)\))?\s*(?P<rest>.*)$",
    re.DOTALL,
)
_CREATE_VIEW = re.compile(
    rf"^CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}\.(?P<name>\w+)\s+TO\s+{DATABASE}\.(?P<target>\w+)"
    r"\s+AS\s+(?P<select>.*)$",
    re.DOTALL,
)
_ALTER = re.compile(rf"^ALTER TABLE {DATABASE}\.(?P<name>\w+)\s+(?P<body>.*)$", re.DOTALL)
_COLUMN_ALTER = re.compile(r"^(ADD|DROP|MODIFY|RENAME|COMMENT)\s+COLUMN\b", re.IGNORECASE)
_INSERT = re.compile(rf"^INSERT INTO {DATABASE}\.\w+", re.DOTALL)
_ORDER_BY = re.compile(r"\bORDER BY\s+(\([^()]*\)|\w+)")
_COMMENT_CLAUSE = re.compile(r"\bCOMMENT\s+('(?:[^'\\]|\\.)*')\s*$", re.DOTALL)
_UNIT_ID_COLUMN = re.compile(r"^\s*unit_id\s", re.MULTILINE)
_FROM_TABLE = re.compile(rf"\b(FROM|JOIN)\s+{DATABASE}\.(\w+)\b")


@dataclass(frozen=True)
class ClusterStatement:
    """One statement of the cluster script and where it came from."""

    migration: str
    """The migration's label (``0001_event_tables``), or ``bookkeeping``."""
    kind: str
    """``database``, ``local``, ``distributed``, ``view``, ``alter_local``, ``alter_distributed``,
    ``data`` (run once, through the Distributed tables) or ``bookkeeping`` (schema_migrations)."""
    sql: str


def validate_cluster_name(name: str) -> str:
    """``name`` when it is a plain cluster name (it is written into SQL unquoted), else a ValidationError."""
    if not _CLUSTER_NAME.match(name):
        raise ValidationError(
            f"cluster name {name!r} is not a plain name (letters, digits, '_' or '-', starting with a letter)"
        )
    return name


def _body(statement: str) -> str:
    """The statement without its full-line comments, trimmed."""
    return _COMMENT_LINE.sub("", statement).strip()


def _on_cluster(cluster: str) -> str:
    return f"ON CLUSTER `{cluster}`" if "-" in cluster else f"ON CLUSTER {cluster}"


def _order_by_columns(rest: str) -> list[str]:
    match = _ORDER_BY.search(rest)
    if match is None:
        return []
    return [c.strip() for c in match.group(1).strip("()").split(",") if c.strip()]


def shard_key(columns_sql: str, rest: str) -> str:
    """The sharding expression of a table: by unit when it has ``unit_id``, else by its sorting key."""
    if _UNIT_ID_COLUMN.search(columns_sql):
        return "cityHash64(unit_id)"
    order = _order_by_columns(rest)
    if not order:
        raise MigrationError("cluster DDL: a table without unit_id and without ORDER BY has no shard key")
    return f"cityHash64({', '.join(order)})"


def _replicated_engine(engine: str, args: str | None, table: str) -> str:
    if engine not in REPLICATED_ENGINES:
        raise MigrationError(f"cluster DDL: no Replicated form known for engine {engine} of {table}")
    path = string_literal(f"/clickhouse/tables/{{shard}}/{DATABASE}/{table}")
    extra = f", {args.strip()}" if args and args.strip() else ""
    return f"Replicated{engine}({path}, '{{replica}}'{extra})"


def _table(label: str, match: re.Match[str], cluster: str) -> list[ClusterStatement]:
    name, columns, rest = match.group("name"), match.group("columns"), match.group("rest")
    local = name + LOCAL_SUFFIX
    engine = _replicated_engine(match.group("engine"), match.group("args"), local)
    rest_local = rest.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
    local_sql = (
        f"CREATE TABLE IF NOT EXISTS {DATABASE}.{local} {_on_cluster(cluster)}\n({columns})\n"
        f"ENGINE = {engine}\n{rest_local}"
    )
    comment = _COMMENT_CLAUSE.search(rest)
    distributed_sql = (
        f"CREATE TABLE IF NOT EXISTS {DATABASE}.{name} {_on_cluster(cluster)} AS {DATABASE}.{local}\n"
        f"ENGINE = Distributed({cluster}, {DATABASE}, {local}, {shard_key(columns, rest)})"
        + (f"\nCOMMENT {comment.group(1)}" if comment else "")
    )
    return [
        ClusterStatement(label, "local", local_sql),
        ClusterStatement(label, "distributed", distributed_sql),
    ]


def _view(label: str, match: re.Match[str], cluster: str, tables: set[str]) -> ClusterStatement:
    target = match.group("target")
    if target not in tables:
        raise MigrationError(f"cluster DDL: view {match.group('name')} writes to unknown table {target}")

    def local_source(found: re.Match[str]) -> str:
        source = found.group(2)
        if source not in tables:
            raise MigrationError(f"cluster DDL: view {match.group('name')} reads unknown table {source}")
        return f"{found.group(1)} {DATABASE}.{source}{LOCAL_SUFFIX}"

    select = _FROM_TABLE.sub(local_source, match.group("select"))
    sql = (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {DATABASE}.{match.group('name')} {_on_cluster(cluster)} "
        f"TO {DATABASE}.{target}{LOCAL_SUFFIX} AS\n{select}"
    )
    return ClusterStatement(label, "view", sql)


def _alter(label: str, match: re.Match[str], cluster: str, tables: set[str]) -> list[ClusterStatement]:
    name, body = match.group("name"), match.group("body")
    if name not in tables:
        raise MigrationError(f"cluster DDL: ALTER of unknown table {name}")
    if body.upper().startswith("MODIFY SETTING"):  # the Replicated* engine's name for the same window
        body = body.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
    local = ClusterStatement(
        label,
        "alter_local",
        f"ALTER TABLE {DATABASE}.{name}{LOCAL_SUFFIX} {_on_cluster(cluster)}\n    {body}",
    )
    if not _COLUMN_ALTER.match(body):
        return [local]  # UPDATE / DELETE mutations (each shard changes its own rows), MODIFY SETTING
    distributed = ClusterStatement(
        label, "alter_distributed", f"ALTER TABLE {DATABASE}.{name} {_on_cluster(cluster)}\n    {body}"
    )
    return [local, distributed]


def _bookkeeping(migrations: Sequence[Migration], cluster: str) -> list[ClusterStatement]:
    path = string_literal(f"/clickhouse/tables/all/{DATABASE}/schema_migrations")
    statements = [
        ClusterStatement(
            "bookkeeping",
            "bookkeeping",
            f"CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations {_on_cluster(cluster)}\n"
            "(\n    version UInt32,\n    name String,\n    checksum String,\n"
            "    applied_at DateTime64(3, 'UTC')\n)\n"
            f"ENGINE = ReplicatedMergeTree({path}, '{{replica}}')\nORDER BY version",
        )
    ]
    for migration in migrations:
        statements.append(
            ClusterStatement(
                "bookkeeping",
                "bookkeeping",
                f"INSERT INTO {DATABASE}.schema_migrations (version, name, checksum, applied_at) "
                f"SELECT {migration.version}, {string_literal(migration.name)}, "
                f"{string_literal(migration.checksum)}, now64(3, 'UTC')",
            )
        )
    return statements


def cluster_ddl(
    migrations: Sequence[Migration], cluster: str, *, from_version: int = 1
) -> list[ClusterStatement]:
    """The cluster script for ``migrations`` (those at or after ``from_version``), in order.

    Tables created by earlier migrations are known (so a later ALTER or view finds them) but not
    created again: ``--from-version N`` gives the statements to run on a cluster that has N-1 applied.
    """
    validate_cluster_name(cluster)
    tables: set[str] = set()
    out: list[ClusterStatement] = []
    database_done = False
    for migration in migrations:
        emit = migration.version >= from_version
        for statement in migration.statements:
            body = _body(statement)
            produced: list[ClusterStatement]
            if _CREATE_DATABASE.match(body):
                produced = []
                if not database_done:
                    sql = f"CREATE DATABASE IF NOT EXISTS {DATABASE} {_on_cluster(cluster)}"
                    produced = [ClusterStatement(migration.label, "database", sql)]
                    database_done = True
            elif table := _CREATE_TABLE.match(body):
                produced = _table(migration.label, table, cluster)
                tables.add(table.group("name"))
            elif view := _CREATE_VIEW.match(body):
                produced = [_view(migration.label, view, cluster, tables)]
            elif alter := _ALTER.match(body):
                produced = _alter(migration.label, alter, cluster, tables)
            elif _INSERT.match(body):
                produced = [ClusterStatement(migration.label, "data", body)]
            else:
                first = body.splitlines()[0] if body else "(empty)"
                raise MigrationError(
                    f"cluster DDL: migration {migration.label} has a statement this generator does not know "
                    f"({first[:80]}): teach xpcore/warehouse/cluster_ddl.py its cluster form"
                )
            if emit:
                out.extend(produced)
    if not database_done and from_version <= 1:
        raise MigrationError("cluster DDL: no migration creates the database")
    if from_version > 1 and out:
        out.insert(
            0,
            ClusterStatement(
                "bookkeeping", "database", f"CREATE DATABASE IF NOT EXISTS {DATABASE} {_on_cluster(cluster)}"
            ),
        )
    out.extend(_bookkeeping([m for m in migrations if m.version >= from_version], cluster))
    return out


_HEADER = """\
-- xpstream schema for ClickHouse cluster {cluster}: made by `xp warehouse ddl --cluster {cluster}`
-- from sql/migrations ({first} … {last}). Do not edit: regenerate.
-- Needs the macros {{shard}} and {{replica}} on every node (the Altinity operator sets both) and
-- ClickHouse Keeper. Run once, against any one node, e.g.:
--   xp warehouse ddl --cluster {cluster} | clickhouse-client --multiquery
-- Statements marked "run once" go through the Distributed tables and must not be repeated per node.
"""


def render_script(
    statements: Sequence[ClusterStatement], cluster: str, migrations: Sequence[Migration]
) -> str:
    """The statements as one SQL script with a header and a comment line per migration."""
    labels = [m.label for m in migrations] or ["none"]
    parts = [_HEADER.format(cluster=cluster, first=labels[0], last=labels[-1])]
    current = None
    for statement in statements:
        if statement.migration != current:
            parts.append(f"\n-- {statement.migration}")
            current = statement.migration
        if statement.kind in ("data",):
            parts.append("-- run once (not ON CLUSTER): reads and writes through the Distributed tables")
        parts.append(statement.sql.rstrip() + ";\n")
    return "\n".join(parts)


_ROUTED = re.compile(
    rf"^(ALTER TABLE|OPTIMIZE TABLE|TRUNCATE TABLE(?: IF EXISTS)?)\s+`?{DATABASE}`?\.`?(\w+)`?(?=\s|$)",
    re.IGNORECASE,
)


def route_statement(sql: str, cluster: str) -> str:
    """A statement the application runs, as the cluster schema needs it: ``ALTER``, ``OPTIMIZE`` and
    ``TRUNCATE`` of ``xp.T`` (a Distributed table there, which refuses them) go to ``xp.T_local ON CLUSTER``;
    everything else, and ``xp.schema_migrations`` (not sharded), is returned unchanged."""
    body = _body(sql)
    match = _ROUTED.match(body)
    if match is None or match.group(2) == "schema_migrations":
        return sql
    head = f"{match.group(1)} {DATABASE}.{match.group(2)}{LOCAL_SUFFIX} {_on_cluster(cluster)}"
    return head + body[match.end() :]


def pending_on_cluster(pending: Sequence[Migration], cluster: str) -> MigrationError | None:
    """The error for migrations not yet applied to a cluster (the application never applies them there:
    the single-node DDL would create plain tables beside the Distributed ones)."""
    if not pending:
        return None
    first = pending[0].version
    return MigrationError(
        f"{len(pending)} migration(s) from {pending[0].label} are not applied to cluster {cluster}: run "
        f"`xp warehouse ddl --cluster {cluster} --from-version {first}` against it first"
    )
