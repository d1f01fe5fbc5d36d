"""What `xp … --format json|table` prints: standard JSON always, whole cells when piped."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import numpy as np
import pytest

from xpstream.cli.output import OutputFormat, json_safe, print_json, print_rows


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


def _printed(monkeypatch: pytest.MonkeyPatch, fn: Any, *args: Any) -> str:
    out = _Pipe()
    monkeypatch.setattr("sys.stdout", out)
    fn(*args)
    return out.getvalue()


def test_non_finite_numbers_print_as_null_and_the_output_is_strict_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = {
        "nan": math.nan,
        "inf": [math.inf, -math.inf],
        "ok": 1.5,
        "np": np.float64("nan"),
        "n": np.int64(3),
    }
    text = _printed(monkeypatch, print_json, data)

    def refuse(constant: str) -> None:
        raise AssertionError(f"not standard JSON: {constant}")

    assert json.loads(text, parse_constant=refuse) == {
        "nan": None,
        "inf": [None, None],
        "ok": 1.5,
        "np": None,
        "n": 3,
    }


def test_rows_as_json_are_strict_too(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _printed(monkeypatch, print_rows, [{"x": math.inf, "y": "a"}], ["x", "y"], OutputFormat.json)
    assert "Infinity" not in text and json.loads(text) == [{"x": None, "y": "a"}]


def test_json_safe_keeps_finite_values_and_text() -> None:
    assert json_safe({"a": (1, "NaN", 2.5), "b": None}) == {"a": [1, "NaN", 2.5], "b": None}


def test_a_piped_table_keeps_whole_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "checkout-button-colour-experiment-with-a-long-key"
    text = _printed(
        monkeypatch,
        print_rows,
        [{"key": key, "description": "d" * 150}],
        ["key", "description"],
        OutputFormat.table,
    )
    assert key in text and "d" * 150 in text and "…" not in text
