"""`xp plan`: the command exists with its help, and refuses bad options in one line before touching the
warehouse (the history and the numbers: tests/integration/test_plan_history.py and
tests/unit/stats/test_planning.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _xp(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *arguments], capture_output=True, text=True, timeout=120
    )


def test_help_names_the_options() -> None:
    result = _xp("plan", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--mde", "--absolute", "--power", "--metric", "--lookback-days", "--until", "--format"):
        assert option in result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--power", "1.5"), "error: --power must be between 0 and 1"),
        (("--format", "csv"), "error: --format must be table or json"),
        (("--until", "yesterday; DROP TABLE xp.events"), "is not an ISO date"),
    ],
)
def test_bad_options_fail_in_one_line(arguments: tuple[str, ...], message: str) -> None:
    result = _xp("plan", "exp", *arguments)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
