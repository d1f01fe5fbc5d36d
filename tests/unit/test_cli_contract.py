"""The command names of DESIGN.md exist and answer --help; pending ones fail with one clear line."""

from __future__ import annotations

import subprocess
import sys

import pytest

CONTRACT = [
    ["stack", "up"],
    ["stack", "down"],
    ["stack", "status"],
    ["experiments", "apply"],
    ["experiments", "list"],
    ["assign", "eval"],
    ["assign", "serve"],
    ["loadgen"],
    ["stream", "run"],
    ["jobs", "run"],
    ["results"],
    ["stats", "test"],
    ["sql"],
    ["dashboard", "serve"],
    ["up"],
    ["up", "status"],
    ["up", "stop"],
    ["program"],
    ["warehouse", "ddl"],
    ["backup"],
    ["restore"],
]


def run_xp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("command", CONTRACT, ids=" ".join)
def test_contract_command_has_help_with_example(command: list[str]) -> None:
    result = run_xp(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Example" in result.stdout


def test_unknown_command_fails_without_traceback() -> None:
    result = run_xp("no-such-command")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
