"""Issue #13 item 3 (and low items) on real chDB: `xp sql` and the read-only path cannot touch files or URLs.

The three probes of the issue run through the CLI as users run it (a subprocess on its own XP_HOME):
the file is not written, /etc/passwd is not read, the URL is never fetched. Beneath the lexical guard,
the engine's read-only connection refuses the same on its own (the guard switched off in-process).
Also: invalid UTF-8 in `xp sql` output, and a private store directory and lock file.
"""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from xpcore.config import WarehouseSettings
from xpcore.errors import TerminalError
from xpcore.warehouse import Warehouse, open_warehouse
from xpcore.warehouse.chdb import adapter as chdb_adapter
from xpcore.warehouse.chdb.ownership import LOCK_FILE

pytestmark = pytest.mark.integration

PASSWD_LINE = Path("/etc/passwd").read_text().splitlines()[0]


def xp(home: Path, *args: str, **env_extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env.update({"XP_HOME": str(home), **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b"fetched-secret\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web() -> Iterator[tuple[str, list[str]]]:
    hits: ClassVar[list[str]] = []
    handler = type("Handler", (_Counting,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/probe", hits
    finally:
        server.shutdown()
        server.server_close()


def test_xp_sql_cannot_write_files_read_files_or_fetch_urls(
    tmp_path: Path, web: tuple[str, list[str]]
) -> None:
    home = tmp_path / "home"
    url, hits = web
    target = tmp_path / "t.txt"
    target.write_text("original\n")
    probes = [
        f"WITH x AS (SELECT 1) INSERT INTO FUNCTION file('{target}','LineAsString','l String') SELECT"
        " 'overwritten' SETTINGS engine_file_truncate_on_insert=1",
        "SELECT * FROM file('/etc/passwd','LineAsString')",
        f"SELECT * FROM url('{url}', 'LineAsString', 'l String')",
        "SELECT file('/etc/passwd')",
        f"SELECT 1 INTO OUTFILE '{tmp_path / 'out.txt'}'",
    ]
    for probe in probes:
        for extra in ([], ["--write"]):
            result = xp(home, "sql", probe, "--format", "json", *extra)
            assert result.returncode == 2, (probe, extra, result.stdout, result.stderr)
            assert result.stderr.startswith("error: refused") and result.stderr.count("\n") == 1
            assert "XP_SQL_ALLOW_EXTERNAL" in result.stderr and "--write" not in result.stderr  # the way out
            assert PASSWD_LINE not in result.stdout and "fetched-secret" not in result.stdout
    assert target.read_text() == "original\n"
    assert not (tmp_path / "out.txt").exists()
    assert hits == []


def test_the_operator_can_opt_in_to_external_reads(tmp_path: Path) -> None:
    home = tmp_path / "home"
    source = tmp_path / "in.txt"
    source.write_text("line-one\n")
    sql = f"SELECT line FROM file('{source}', 'LineAsString', 'line String')"
    assert xp(home, "sql", sql).returncode == 2
    allowed = xp(home, "sql", sql, "--format", "json", XP_SQL_ALLOW_EXTERNAL="true")
    assert (allowed.returncode, json.loads(allowed.stdout or "null")) == (0, [{"line": "line-one"}]), (
        allowed.stderr
    )


def test_the_engine_refuses_outside_access_on_its_own(
    warehouse: Warehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: with the lexical guard switched off, the read-only connection still refuses."""
    monkeypatch.setattr(chdb_adapter, "read_only_refusal", lambda sql, **kwargs: None, raising=False)
    target = tmp_path / "t.txt"
    with pytest.raises(TerminalError, match="READONLY"):
        warehouse.query_arrow("SELECT * FROM file('/etc/passwd', 'LineAsString')", read_only=True)
    with pytest.raises(TerminalError, match="READONLY"):
        warehouse.query_arrow(
            f"INSERT INTO FUNCTION file('{target}', 'LineAsString', 'l String') SELECT 'x'", read_only=True
        )
    with pytest.raises(TerminalError, match="READONLY"):
        warehouse.query_arrow("SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString')", read_only=True)
    with pytest.raises(TerminalError, match="READONLY"):
        warehouse.query_arrow("SELECT * FROM filesystem('/etc') LIMIT 1", read_only=True)
    assert not target.exists()
    with pytest.raises(TerminalError, match=r"FUNCTION_NOT_ALLOWED|allow_python_table_function"):
        warehouse.query_arrow("SELECT * FROM python(PASSWD_LINE)")  # even on the read-write connection


def test_the_adapter_guards_its_read_only_path(warehouse: Warehouse) -> None:
    """Dashboards and the up API reach the warehouse with read_only=True: the guard is in the adapter."""
    with pytest.raises(TerminalError, match="file"):
        warehouse.query_arrow("SELECT file('/etc/passwd') AS f", read_only=True)


def test_xp_sql_shows_invalid_utf8_with_replacement_characters(tmp_path: Path) -> None:
    home = tmp_path / "home"
    inserted = xp(
        home,
        "sql",
        "INSERT INTO xp.dead_letters (dead_letter_id, reason, original, original_key)"
        " VALUES ('d1', 'schema', unhex('7B22FF80C3'), unhex('FE'))",
        "--write",
    )
    assert inserted.returncode == 0, inserted.stderr
    query = "SELECT dead_letter_id, original, original_key, [original] AS originals FROM xp.dead_letters"
    as_json = xp(home, "sql", query, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    rows = json.loads(as_json.stdout)
    assert rows[0]["dead_letter_id"] == "d1"
    assert rows[0]["original"].startswith('{"') and "\ufffd" in rows[0]["original"]
    assert rows[0]["original_key"] == "\ufffd" and "\ufffd" in rows[0]["originals"][0]
    for fmt in ("csv", "table"):
        shown = xp(home, "sql", query, "--format", fmt)
        assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
        assert "d1" in shown.stdout and "\ufffd" in shown.stdout


def test_the_store_directory_and_lock_file_are_private(tmp_path: Path) -> None:
    settings = WarehouseSettings(home=tmp_path / "home", clickhouse_url=None, store_wait_seconds=0)
    settings.warehouse_path.mkdir(parents=True, mode=0o755)
    settings.warehouse_path.chmod(0o755)  # as an older version left it
    (settings.warehouse_path / LOCK_FILE).write_text("")
    (settings.warehouse_path / LOCK_FILE).chmod(0o644)
    store = open_warehouse(settings)
    try:
        assert stat.S_IMODE(settings.warehouse_path.stat().st_mode) == 0o700
        assert stat.S_IMODE((settings.warehouse_path / LOCK_FILE).stat().st_mode) == 0o600
    finally:
        store.close()


SAFE_TABLE_FUNCTIONS = {
    "sqlstandardvalues", "dictionary", "format", "fuzzjson", "fuzzquery", "generaterandom",
    "generateseries", "generate_series", "loop", "merge", "null", "numbers", "numbers_mt", "primes",
    "values", "view", "viewexplain", "viewifpermitted", "zeros", "zeros_mt",
}  # fmt: skip
"""Table functions that read only this database or generate data."""


def test_every_table_function_of_the_engine_is_classified(warehouse: Warehouse) -> None:
    """A chDB upgrade that adds a table function fails here until it is listed as safe or external."""
    from xpcore.warehouse.sqlguard import is_external_function

    names = warehouse.query_arrow("SELECT name FROM system.table_functions").column("name").to_pylist()
    unknown = sorted(
        name
        for name in names
        if not is_external_function(name)
        and name.lower() not in SAFE_TABLE_FUNCTIONS
        and not name.lower().startswith(("mergetree", "timeseries"))
    )
    assert unknown == []
    assert not any(is_external_function(name) for name in SAFE_TABLE_FUNCTIONS)
