"""Running the JavaScript SDKs of tests/js (installed by ``make setup``) from the tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JS_DIR = Path(__file__).parent / "js"


def require_node() -> str:
    """The node executable; skips the test (with the reason) when node or tests/js is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript SDK tests need Node.js (and `make setup`)")
    if not (JS_DIR / "node_modules" / "@growthbook" / "growthbook").is_dir():
        pytest.skip("tests/js/node_modules is missing: run `make setup` (npm ci in tests/js)")
    return node


def run_node_json(script: str, *args: str, timeout: float = 60) -> Any:
    """Run ``tests/js/SCRIPT args…`` and decode its last stdout line as JSON."""
    node = require_node()
    completed = subprocess.run(
        [node, str(JS_DIR / script), *args],
        cwd=JS_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])
