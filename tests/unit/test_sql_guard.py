"""The lexical SQL guard (issue #13 items 1 and 3): text only, no database.

Each bypass of the issue is a case here; a hypothesis property checks that a forbidden call is refused
wherever case, whitespace and comments put it, and that plain SELECTs over xp tables pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xpcore.warehouse.sqlguard import (
    EXTERNAL_FUNCTIONS,
    external_refusal,
    is_external_function,
    read_only_refusal,
    routed_insert_refusal,
    routed_write_refusal,
)

ISSUE_BYPASSES = [
    "WITH x AS (SELECT 1) INSERT INTO FUNCTION file('/tmp/t.txt','LineAsString','l String') SELECT"
    " 'overwritten' SETTINGS engine_file_truncate_on_insert=1",
    "SELECT * FROM file('/etc/passwd','LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:8099/x', 'LineAsString')",
]


@pytest.mark.parametrize("sql", ISSUE_BYPASSES)
def test_the_issue_bypasses_are_refused_on_the_read_only_path(sql: str) -> None:
    assert read_only_refusal(sql) is not None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM FILE('/etc/passwd')",
        "select * from File\n(\n'/etc/passwd')",
        "SELECT * FROM file/* x */('/etc/passwd')",
        "SELECT * FROM file -- x\n ('/etc/passwd')",
        "SELECT file('/etc/passwd')",
        "SELECT * FROM `file`('/etc/passwd')",
        "SELECT * FROM \"file\"('/etc/passwd')",
        "SELECT * FROM `fi\\x6ce`('/etc/passwd')",
        "SELECT * FROM xp.events WHERE unit_id IN (SELECT c1 FROM s3('https://b/k.csv'))",
        "SELECT * FROM remote('10.0.0.1', system.one)",
        "SELECT * FROM remoteSecure('10.0.0.1', system.one)",
        "SELECT * FROM cluster('default', system.one)",
        "SELECT * FROM executable('ls', 'LineAsString', 'l String')",
        "SELECT * FROM mysql('h:3306', 'db', 't', 'u', 'p')",
        "SELECT * FROM postgresql('h:5432', 'db', 't', 'u', 'p')",
        "SELECT * FROM jdbc('x', 'y')",
        "SELECT * FROM odbc('x', 'y', 'z')",
        "SELECT * FROM mongodb('h', 'db', 'c', 'u', 'p', 'x String')",
        "SELECT * FROM redis('h', 'k', 'k String')",
        "SELECT * FROM sqlite('/tmp/x.db', 't')",
        "SELECT * FROM hdfs('hdfs://x/y', 'TSV')",
        "SELECT * FROM azureBlobStorage('x')",
        "SELECT * FROM gcs('https://x')",
        "SELECT * FROM deltaLake('s3://x')",
        "SELECT * FROM icebergS3Cluster('c', 's3://x')",
        "SELECT * FROM hudi('s3://x')",
        "SELECT * FROM urlCluster('c', 'http://x')",
        "SELECT * FROM fileCluster('c', '/x')",
        "SELECT * FROM filesystem('/etc')",
        "SELECT * FROM python(secrets)",
        "SELECT * FROM input('x String')",
        "SELECT 1 INTO OUTFILE '/tmp/out.txt'",
        "SELECT 1 FORMAT CSV SETTINGS input_format_record_errors_file_path = '/tmp/e'",
        "SELECT * FROM {f:Identifier}('/etc/passwd')",
        "EXPLAIN SELECT * FROM file('/etc/passwd')",
        "DESCRIBE TABLE file('/etc/passwd', 'LineAsString')",
        "WITH (SELECT 1) AS x SELECT * FROM view(SELECT * FROM file('/etc/passwd'))",
    ],
)
def test_reaching_outside_the_database_is_refused(sql: str) -> None:
    assert read_only_refusal(sql) is not None
    assert external_refusal(sql) is not None or "OUTFILE" in sql
    assert read_only_refusal(sql, allow_external=True) is None or "OUTFILE" in sql


@pytest.mark.parametrize(
    "sql",
    [
        "WITH x AS (SELECT 1) INSERT INTO xp.events SELECT * FROM xp.events",
        "SELECT 1; DROP TABLE xp.events",
        "INSERT INTO xp.events SELECT * FROM xp.events",
        "CREATE TABLE xp.pwned (x String) ENGINE = Memory",
        "(SELECT 1) UNION ALL (SELECT 2); ALTER TABLE xp.events DELETE WHERE 1",
        "ALTER TABLE xp.events DELETE WHERE 1",
        "SYSTEM SHUTDOWN",
        "EXPLAIN SYNTAX DROP TABLE xp.events",
        "",
        "-- only a comment",
    ],
)
def test_writes_anywhere_are_refused_on_the_read_only_path(sql: str) -> None:
    assert read_only_refusal(sql, allow_external=True) is not None


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count() FROM xp.exposures",
        "SELECT name FROM system.tables WHERE database = 'xp'",
        "SELECT replace(detail, 'file(', ''), URLHash('x'), url FROM xp.dead_letters",
        "SELECT 'INSERT INTO FUNCTION file(' AS s",
        "SELECT * FROM numbers(10)",
        "SELECT * FROM xp.file",
        "SHOW CREATE TABLE xp.events",
        "SHOW TABLES FROM xp",
        "DESCRIBE TABLE xp.events",
        "EXISTS TABLE xp.events",
        "EXPLAIN SELECT 1",
        "WITH t AS (SELECT 1 AS a) SELECT a FROM t",
        "SELECT {unit:String} AS u, `update` FROM xp.events -- delete this later",
        "SELECT t.delete FROM xp.t AS t",
    ],
)
def test_reads_inside_the_database_pass(sql: str) -> None:
    assert read_only_refusal(sql) is None


# ---------------------------------------------------------------------------------------------- routed writes


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO xp.unit_values_state (experiment_key) VALUES ({e:String})",
        "INSERT INTO xp.unit_metrics (a) WITH u AS (SELECT 1) SELECT * FROM u",
        "INSERT INTO TABLE xp.t SELECT * FROM xp.s",
        "INSERT INTO `xp`.`t` (`a`) VALUES (1)",
        "ALTER TABLE xp.unit_metrics\nDELETE WHERE experiment_key = {experiment:String}\n"
        "SETTINGS mutations_sync = 2",
        "ALTER TABLE xp.t UPDATE v = 1 WHERE k = 2",
        "OPTIMIZE TABLE xp.unit_values FINAL",
        "INSERT INTO xp.t SELECT * FROM numbers(10)",
    ],
)
def test_what_routed_commands_send_is_allowed(sql: str) -> None:
    assert routed_write_refusal(sql) is None


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE xp.pwned (x String) ENGINE = Memory",
        "CREATE TABLE xp.pwned (x String) ENGINE = File(TSV, '/tmp/x')",
        "DROP TABLE xp.events",
        "TRUNCATE TABLE xp.events",
        "RENAME TABLE xp.a TO xp.b",
        "ATTACH TABLE xp.a",
        "DETACH TABLE xp.a",
        "ALTER TABLE xp.events ADD COLUMN x String",
        "ALTER TABLE xp.events MODIFY TTL occurred_at + INTERVAL 1 DAY",
        "ALTER TABLE xp.events DELETE WHERE 1, DROP COLUMN value",
        "ALTER USER default IDENTIFIED BY 'x'",
        "CREATE DICTIONARY xp.d (k UInt64) PRIMARY KEY k SOURCE(FILE(path '/etc/passwd' format 'TSV'))",
        "SELECT 1",
        "SET readonly = 0",
        "SYSTEM RELOAD CONFIG",
        "GRANT ALL ON *.* TO default",
        "KILL QUERY WHERE 1",
        "INSERT INTO FUNCTION file('/tmp/x', 'TSV', 'x String') SELECT 'x'",
        "INSERT INTO TABLE FUNCTION file('/tmp/x', 'TSV', 'x String') SELECT 'x'",
        "INSERT INTO system.query_log SELECT * FROM system.query_log",
        "INSERT INTO events SELECT 1",
        "INSERT INTO xp.t SELECT * FROM url('http://x', 'TSV')",
        "INSERT INTO xp.t FROM INFILE '/etc/passwd' FORMAT TSV",
        "INSERT INTO xp.t SELECT 1; DROP TABLE xp.t",
        "OPTIMIZE TABLE system.query_log",
    ],
)
def test_anything_else_is_refused_through_the_api(sql: str) -> None:
    assert routed_write_refusal(sql) is not None


def test_inserts_go_to_xp_tables_only() -> None:
    assert routed_insert_refusal("xp.events") is None
    for table in ("system.query_log", "default.t", "events", "xp.events; DROP", "xp.`e`"):
        assert routed_insert_refusal(table) is not None


def test_every_known_external_function_is_recognised_in_any_case() -> None:
    for name in EXTERNAL_FUNCTIONS:
        assert is_external_function(name.upper())
    for name in ("numbers", "view", "merge", "URLHash", "replace", "values", "generateRandom", "format"):
        assert not is_external_function(name)


# ---------------------------------------------------------------------------------------------- property

_NAMES = st.sampled_from(
    sorted(
        EXTERNAL_FUNCTIONS
        | {"deltaLakeLocal", "icebergLocal", "hudiCluster", "paimonS3", "s3Cluster", "azureBlobStorage"}
    )
)
_GAP = st.lists(st.sampled_from([" ", "\n", "\t", "/* c */", "-- c\n", "/**/"]), min_size=0, max_size=3).map(
    "".join
)
_SPACE = st.lists(st.sampled_from([" ", "\n", "\t", "/* c */", "-- c\n"]), min_size=1, max_size=3).map(
    "".join
)


def _case(name: str, flips: list[bool]) -> str:
    return "".join(
        c.upper() if flip else c.lower() for c, flip in zip(name, flips + [False] * len(name), strict=False)
    )


@settings(max_examples=300, deadline=None)
@given(
    name=_NAMES,
    flips=st.lists(st.booleans(), max_size=30),
    gap=_GAP,
    space=_SPACE,
    place=st.sampled_from(["from", "join", "scalar", "subquery", "with", "insert_select"]),
)
def test_a_forbidden_call_is_refused_wherever_it_stands(
    name: str, flips: list[bool], gap: str, space: str, place: str
) -> None:
    call = f"{_case(name, flips)}{gap}('/etc/passwd', 'LineAsString')"
    sql = {
        "from": f"SELECT *{space}FROM{space}{call}",
        "join": f"SELECT * FROM xp.events AS e{space}JOIN {call} AS f ON 1",
        "scalar": f"SELECT{space}{call}{space}AS x",
        "subquery": f"SELECT * FROM xp.events WHERE unit_id IN (SELECT *{space}FROM {call})",
        "with": f"WITH{space}t AS (SELECT * FROM {call}) SELECT * FROM t",
        "insert_select": f"INSERT INTO xp.events SELECT * FROM{space}{call}",
    }[place]
    assert read_only_refusal(sql) is not None
    assert routed_write_refusal(sql) is not None
    assert external_refusal(sql) is not None


_TABLES = st.sampled_from(["xp.exposures", "xp.events", "xp.results", "xp.dead_letters", "xp.unit_metrics"])
_COLUMNS = st.lists(
    st.sampled_from(["unit_id", "event_name", "value", "occurred_at", "experiment_key", "url", "file"]),
    min_size=1,
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    table=_TABLES,
    columns=_COLUMNS,
    space=_SPACE,
    literal=st.text(alphabet=st.characters(codec="utf-8", exclude_characters="'\\"), max_size=20),
    limit=st.integers(min_value=0, max_value=10_000),
    aggregate=st.sampled_from(["count()", "sum(value)", "uniqExact(unit_id)", "max(occurred_at)", "1"]),
)
def test_plain_selects_over_xp_tables_pass(
    table: str, columns: list[str], space: str, literal: str, limit: int, aggregate: str
) -> None:
    sql = (
        f"SELECT{space}{', '.join(columns)}, {aggregate} AS a{space}FROM {table}"
        f"{space}WHERE event_name = '{literal}' GROUP BY {', '.join(columns)}{space}LIMIT {limit}"
    )
    assert read_only_refusal(sql) is None
    assert external_refusal(sql) is None


# ------------------------------------------------------------------------------------- the real callers


def _statement_files() -> list[Path]:
    """Every named query that is a write: what the routed jobs and repairs send to /command."""
    from xpcore.warehouse.sqltext import leading_keyword

    files = sorted((Path(__file__).parents[2] / "sql" / "queries").glob("*.sql"))
    return [f for f in files if leading_keyword(f.read_text()) not in ("SELECT", "WITH")]


@pytest.mark.parametrize("path", _statement_files(), ids=lambda p: p.stem)
def test_every_named_write_of_the_jobs_passes_the_routed_guard(path: Path) -> None:
    assert routed_write_refusal(path.read_text()) is None


def test_the_unit_values_and_compaction_statements_pass_the_routed_guard() -> None:
    from assignment.metrics_catalog import DEFAULT_METRICS
    from jobs.results.batch import batch_plan
    from jobs.results.metric_sql.unit_values import build_sql
    from jobs.unit_values.job import COMPACT_SQL
    from jobs.unit_values.plan import unit_values_plan

    catalog = {m.name: m for m in DEFAULT_METRICS}
    for cuped in (False, True):
        plan = unit_values_plan(batch_plan(list(DEFAULT_METRICS), catalog), cuped=cuped, covariate_days=14)
        for incremental in (False, True):
            assert routed_write_refusal(build_sql(plan, incremental=incremental)) is None
    assert routed_write_refusal(COMPACT_SQL) is None
