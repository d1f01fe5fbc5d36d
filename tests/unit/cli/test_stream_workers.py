"""`xp stream run --workers N`: the pool's command, merged report and refused counts (no processes)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from xpcore.errors import ConfigError
from xpstream.stream_workers import WorkerPool, merge_reports


def test_each_worker_runs_the_single_worker_command_with_the_runner_and_idle() -> None:
    command = WorkerPool(3, "faust", until_idle=2.5).command()
    assert command[-8:] == ["stream", "run", "--runner", "faust", "--until-idle", "2.5", "--format", "json"]
    assert "--workers" not in command  # a worker never starts a pool of its own
    assert "--until-idle" not in WorkerPool(2, "kafka").command()


def test_reports_are_summed_and_reasons_merged() -> None:
    merged = merge_reports(
        [
            {
                "consumed": 10,
                "exposures": 4,
                "duplicates": 1,
                "reasons": {"schema_violation": 2},
                "seconds": 3.0,
            },
            {"consumed": 5, "exposures": 1, "reasons": {"schema_violation": 1, "unknown_experiment": 1}},
        ]
    )
    assert merged["consumed"] == 15 and merged["exposures"] == 5 and merged["duplicates"] == 1
    assert merged["reasons"] == {"schema_violation": 3, "unknown_experiment": 1}
    assert merged["seconds"] == 3.0
    assert merge_reports([])["consumed"] == 0


def test_a_pool_of_no_workers_is_refused() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        WorkerPool(0, "kafka").run()


@pytest.mark.parametrize("value", ["0", "-3", "three", "1e9999"])
def test_hostile_worker_counts_are_refused_before_anything_starts(value: str) -> None:
    from xpstream.cli.main import app

    result = CliRunner().invoke(app, ["stream", "run", "--workers", value])
    assert result.exit_code == 2
