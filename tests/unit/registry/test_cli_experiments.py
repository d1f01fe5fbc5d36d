"""`xp experiments …` without a broker: help with examples, validation before Kafka, unreachable Kafka."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from tests.unit.registry.helpers import T0
from xpcore.errors import ValidationError
from xpstream.cli.experiments import parse_expiry

ROOT = Path(__file__).resolve().parents[3]


def xp(*args: str, bootstrap: str = "127.0.0.1:9") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XP_KAFKA_BOOTSTRAP": bootstrap, "XP_TOPIC_PREFIX": "unit."}
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "command", ["apply", "list", "history", "override", "clear-override", "overrides", "payload"]
)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = xp("experiments", command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


def test_invalid_file_fails_before_kafka_with_one_line(tmp_path: Path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "experiments:\n  - key: a\n    variations: [{key: x, weight: 0.5}, {key: y, weight: -0.5}]\n"
    )
    result = xp("experiments", "apply", str(path))
    assert result.returncode == 2
    assert result.stderr == "error: exp.yaml: experiment 'a': variations[1].weight: must be ≥ 0\n"


def test_unreachable_kafka_is_one_clear_line() -> None:
    result = xp("experiments", "list", "--timeout", "1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: cannot reach Kafka at 127.0.0.1:9")


def test_payload_of_a_file_needs_no_kafka() -> None:
    result = xp("experiments", "payload", "--file", "examples/experiments.yaml")
    assert result.returncode == 0, result.stderr
    assert '"checkout-button-color"' in result.stdout


def test_override_arguments_are_checked_before_kafka() -> None:
    result = xp("experiments", "override", "exp", "u1")
    assert result.returncode == 2 and "missing VARIATION" in result.stderr
    result = xp("experiments", "override", "exp", "u1", "0", "--remove")
    assert result.returncode == 2 and "--remove takes EXPERIMENT UNIT only" in result.stderr
    result = xp("experiments", "override", "exp", "u1", "0", "--expires", "soon")
    assert result.returncode == 2 and "--expires: 'soon' is neither a duration" in result.stderr


def test_parse_expiry() -> None:
    assert parse_expiry("7d", T0) == T0 + timedelta(days=7)
    assert parse_expiry("12h", T0) == T0 + timedelta(hours=12)
    assert parse_expiry("30m", T0) == T0 + timedelta(minutes=30)
    assert parse_expiry("2w", T0) == T0 + timedelta(weeks=2)
    assert parse_expiry("2026-12-01T00:00:00+01:00", T0) == T0 + timedelta(days=29, hours=23)
    assert parse_expiry(None, T0) is None
    with pytest.raises(ValidationError, match="needs a time zone"):
        parse_expiry("2026-12-01T00:00:00", T0)
