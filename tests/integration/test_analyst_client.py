"""The analyst client (issue #18 item 1): polars frames with `xp results`' numbers; read-only like `xp sql`.

A store is seeded the way a stream worker fills it (registry copy, exposures, raw and attributed events);
Kafka is pointed at a closed port, so results read the warehouse's copy of the registry. The client runs
in this process (env through monkeypatch); `xp results` and `xp jobs run lake` run as subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from assignment.authoring import parse_registry_document
from assignment.registry import RegistrySnapshot
from assignment.registry_changes import plan_changes
from pipelines.attribution import Attribution
from pipelines.processor import attributions_table
from schemas import Exposure, MetricEvent, RegistryRecord
from schemas.arrow import to_arrow
from tests.factories import make_exposure
from tests.fixtures.kafka import free_ports
from xpcore.config import WarehouseSettings
from xpcore.errors import ReadOnlyError, ValidationError
from xpcore.warehouse import open_warehouse

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEY = "checkout-button"
UNITS = 400
DOCUMENT = {
    "experiments": [
        {
            "key": KEY,
            "status": "running",
            "variations": [{"key": "blue", "weight": 0.5}, {"key": "green", "weight": 0.5}],
            "metrics": {"primary": ["conversion"], "secondary": ["pageviews"]},
        }
    ]
}


def _seed(home: Path) -> None:
    now = datetime.now(UTC) - timedelta(hours=1)
    records = plan_changes(
        RegistrySnapshot(), parse_registry_document(DOCUMENT, "x.yaml"), actor="t", now=now
    )
    exposures = [make_exposure(f"u{i}", i % 2, now, 0, False, KEY) for i in range(UNITS)]
    # treatment (odd units) converts at 40 %, control at 20 %
    attributions = [
        Attribution(f"e{i}-{name}", f"u{i}", KEY, i % 2, name, 1.0, now + timedelta(minutes=1), now)
        for i in range(UNITS)
        for name in ("pageview", *(["purchase"] if i % 5 < (2 if i % 2 else 1) else []))
    ]
    events = [
        MetricEvent(event_id=a.event_id, unit_id=a.unit_id, event_name=a.event_name, value=a.value,
                    occurred_at=a.occurred_at, sent_at=a.occurred_at)
        for a in attributions
    ]  # fmt: skip
    store = open_warehouse(WarehouseSettings(home=home, clickhouse_url=None, store_wait_seconds=10))
    try:
        store.insert_arrow("xp.registry", to_arrow(records, RegistryRecord))
        store.insert_arrow("xp.exposures", to_arrow(exposures, Exposure))
        store.insert_arrow("xp.events", to_arrow(events, MetricEvent))
        store.insert_arrow("xp.attributed_events", attributions_table(attributions))
    finally:
        store.close()


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An XP_HOME with data and its lake written; the env the `xp` subprocesses and the client share."""
    home = tmp_path_factory.mktemp("analysts") / "xp-home"
    _seed(home)
    (closed,) = free_ports(1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env |= {"XP_HOME": str(home), "XP_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed}", "XP_STORE_WAIT_SECONDS": "10"}
    lake = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "jobs", "run", "lake"],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert lake.returncode == 0, lake.stderr
    return env


@pytest.fixture
def client(seeded: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Any:
    import xpstream

    for name in [k for k in os.environ if k.startswith("XP_")]:
        monkeypatch.delenv(name)
    for name, value in seeded.items():
        if name.startswith("XP_"):
            monkeypatch.setenv(name, value)
    return xpstream.connect()


def test_sql_returns_a_polars_frame_with_bound_parameters(client: Any) -> None:
    import polars as pl

    frame = client.sql(
        "SELECT variation_id, count() AS n FROM xp.exposures WHERE experiment_key = {key:String} "
        "GROUP BY variation_id ORDER BY variation_id",
        {"key": KEY},
    )
    assert isinstance(frame, pl.DataFrame)
    assert frame.columns == ["variation_id", "n"]
    assert frame["n"].to_list() == [UNITS // 2, UNITS // 2]
    assert client.sql("SELECT count() AS n FROM xp.exposures WHERE experiment_key = 'other'")["n"][0] == 0


def test_results_have_the_numbers_and_names_of_xp_results_json(client: Any, seeded: dict[str, str]) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "xpstream.cli", "results", KEY, "--method", "frequentist", "--format", "json"],
        env=seeded, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    document = json.loads(run.stdout)
    frame = client.results(KEY, method="frequentist")
    expected = [(m, v) for m in document["metrics"] for v in m["variants"]]
    assert frame.height == len(expected) == 4
    for row, (metric, variant) in zip(frame.iter_rows(named=True), expected, strict=True):
        assert (row["experiment"], row["segment"], row["metric"], row["role"]) == (
            KEY, "", metric["metric"], metric["role"],
        )  # fmt: skip
        assert (row["method"], row["alpha"]) == (document["method"], document["alpha"])
        for column in ("variation_id", "key", "name", "units", "significant", "error"):
            assert row[column] == variant[column], column
        for column in ("mean", "estimate", "ci_low", "ci_high", "p_value", "p_value_adjusted"):
            value = variant[column]
            assert row[column] is None if value is None else row[column] == pytest.approx(value, rel=1e-12)
    conversion = frame.row(1, named=True)
    assert conversion["metric"] == "conversion" and conversion["estimate"] == pytest.approx(
        1.0
    )  # 40 % vs 20 %


def test_results_of_an_unknown_experiment_is_a_clear_error(client: Any) -> None:
    with pytest.raises(ValidationError, match="unknown experiment 'nope'"):
        client.results("nope")
    with pytest.raises(ValidationError, match="unknown method"):
        client.results(KEY, method="'; DROP TABLE xp.events")


def test_lake_scan_is_a_lazy_frame_over_the_parquet_lake(client: Any) -> None:
    import polars as pl

    exposures = client.lake.scan("exposures")
    assert isinstance(exposures, pl.LazyFrame)
    by_variation = (
        exposures.filter(pl.col("experiment_key") == KEY)
        .group_by("variation_id").agg(pl.len().alias("n")).sort("variation_id").collect()
    )  # fmt: skip
    assert by_variation["n"].to_list() == [UNITS // 2, UNITS // 2]
    in_lake = client.lake.scan("events").select(pl.len()).collect().item()
    assert in_lake == client.sql("SELECT count() AS n FROM xp.events FINAL")["n"][0] > UNITS
    assert "date" in client.lake.scan("events").collect_schema().names()


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO xp.events (event_id) VALUES ('x')",
        "DROP TABLE xp.events",
        "ALTER TABLE xp.events DELETE WHERE 1",
        "WITH x AS (SELECT 1) INSERT INTO xp.events (event_id) SELECT 'y'",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT * FROM url('http://127.0.0.1:1/', 'CSV', 'a String')",
        "SELECT * FROM s3('http://127.0.0.1:1/b/k.csv')",
        "SELECT 1 INTO OUTFILE '/tmp/xp-analyst-client-outfile'",
        "SELECT * FROM executable('id', 'TSV', 'a String')",
        "SELECT 1; DROP TABLE xp.events",
        "  ",
    ],
)
def test_hostile_sql_is_refused_and_changes_nothing(client: Any, query: str) -> None:
    before = client.sql("SELECT count() AS n FROM xp.events")["n"][0]
    with pytest.raises((ReadOnlyError, ValidationError)):
        client.sql(query)
    assert client.sql("SELECT count() AS n FROM xp.events")["n"][0] == before
    assert not Path("/tmp/xp-analyst-client-outfile").exists()


@pytest.mark.parametrize("table", ["../../etc", "events/../../x", "registry", "", "exposures/date=*"])
def test_lake_scan_refuses_names_that_are_not_lake_tables(client: Any, table: str) -> None:
    with pytest.raises(ValidationError, match="unknown lake table"):
        client.lake.scan(table)


def test_the_worked_example_in_docs_analysts_runs(seeded: dict[str, str], tmp_path: Path) -> None:
    text = (ROOT / "docs" / "analysts.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, "docs/analysts.md lost its worked example"
    script = tmp_path / "worked_example.py"
    script.write_text("\n".join(blocks), encoding="utf-8")
    run = subprocess.run(
        [sys.executable, str(script)], env=seeded, capture_output=True, text=True, timeout=180, cwd=ROOT
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "refused as expected" in run.stdout
    assert "1 metric × variation pairs with a significant gain" in run.stdout  # conversion, green
    assert "shape: (2, 3)" in run.stdout  # the SQL frame: two variations


@pytest.fixture
def s3_endpoint() -> Any:
    """A real S3-compatible HTTP server (moto's server mode) on a free loopback port."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed (dev dependency)")
    (port,) = free_ports(1)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_lake_scan_reads_an_s3_lake_with_the_lake_settings(s3_endpoint: str) -> None:
    import polars as pl
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    from pydantic import SecretStr

    from xpcore.config import LakeSettings
    from xpstream.client import Lake

    fs = pafs.S3FileSystem(
        endpoint_override=s3_endpoint.removeprefix("http://"),
        scheme="http",
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        allow_bucket_creation=True,
    )
    fs.create_dir("lake-bucket")
    for day, ids in (("2024-05-17", ["a", "b"]), ("2024-05-18", ["c"])):
        table = pa.table({"event_id": ids, "event_name": ["pageview"] * len(ids)})
        pq.write_table(table, f"lake-bucket/xp/lake/events/date={day}/part-r1-0.parquet", filesystem=fs)
    settings = LakeSettings(
        lake_url="s3://lake-bucket/xp/lake",
        lake_s3_endpoint_url=s3_endpoint,
        lake_s3_region="us-east-1",
        lake_s3_access_key_id=SecretStr("testing"),
        lake_s3_secret_access_key=SecretStr("testing"),
    )
    lake = Lake(settings)
    assert lake.url == "s3://lake-bucket/xp/lake"
    frame = lake.scan("events").sort("event_id").collect()
    assert frame["event_id"].to_list() == ["a", "b", "c"]
    assert frame["date"].cast(pl.String).to_list() == ["2024-05-17", "2024-05-17", "2024-05-18"]
