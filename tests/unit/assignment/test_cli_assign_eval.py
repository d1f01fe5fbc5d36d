"""`xp assign eval` through the real CLI (subprocess), as outside checks run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from assignment import compile_payload

PAYLOAD = {
    "features": {
        "checkout": {
            "defaultValue": "control",
            "rules": [
                {"id": "qa", "condition": {"email": {"$regex": "@example\\.com$"}}, "force": "qa"},
                {
                    "id": "exp",
                    "key": "checkout-exp",
                    "hashVersion": 2,
                    "condition": {"country": {"$in": ["US", "CA"]}},
                    "variations": ["control", "treatment"],
                    "weights": [0.5, 0.5],
                    "coverage": 1,
                },
            ],
        }
    }
}


def run_xp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xpstream.cli", *args], capture_output=True, text=True, timeout=60
    )


def write_payload(tmp_path: Path, payload: Any = PAYLOAD) -> Path:
    path = tmp_path / "payload.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


def test_attributes_file_prints_one_object_per_line_in_order(tmp_path: Path) -> None:
    units = [{"id": f"u{i}", "country": "US"} for i in range(40)]
    units += [{"id": "x", "country": "FR"}, {"id": "y", "email": "a@example.com"}, {}]
    jsonl = tmp_path / "units.jsonl"
    jsonl.write_text("\n".join(json.dumps(u) for u in units) + "\n", encoding="utf-8")
    result = run_xp(
        "assign", "eval", "--features", str(write_payload(tmp_path)), "--key", "checkout",
        "--attributes-file", str(jsonl), "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == len(units)
    engine = compile_payload(PAYLOAD)
    for unit, row in zip(units, rows, strict=True):
        expected = engine.evaluate("checkout", unit)
        assert row["value"] == expected.value
        assert row["source"] == expected.source
        assert row["in_experiment"] is expected.in_experiment
        assert row["variation_id"] == expected.variation_id
        assert row["hash_used"] is expected.hash_used
        assert row["experiment_key"] == expected.experiment_key
    assert {row["source"] for row in rows} == {"experiment", "defaultValue", "force"}
    assert rows[-3]["variation_id"] is None and rows[-3]["in_experiment"] is False
    assert rows[-2]["source"] == "force" and rows[-2]["value"] == "qa"


def test_single_unit_from_attributes(tmp_path: Path) -> None:
    result = run_xp(
        "assign", "eval", "--features", str(write_payload(tmp_path)), "--key", "checkout",
        "--attributes", '{"id": "u1", "country": "CA"}', "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["source"] == "experiment"
    assert row["experiment_key"] == "checkout-exp"
    assert row["variation_id"] in (0, 1)
    assert row["hash_used"] is True


def test_bad_payload_json_is_one_line_naming_the_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"features": {\n  "x": oops\n}}', encoding="utf-8")
    result = run_xp("assign", "eval", "--features", str(bad), "--key", "x", "--attributes", "{}")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(bad) in result.stderr and "line 2" in result.stderr


def test_bad_attributes_line_names_file_and_line(tmp_path: Path) -> None:
    jsonl = tmp_path / "units.jsonl"
    jsonl.write_text('{"id": "a"}\n{not json\n', encoding="utf-8")
    result = run_xp(
        "assign", "eval", "--features", str(write_payload(tmp_path)), "--key", "checkout",
        "--attributes-file", str(jsonl), "--format", "json",
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{jsonl}:2:" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_invalid_payload_shape_is_a_validation_error(tmp_path: Path) -> None:
    path = write_payload(tmp_path, {"features": {"f": {"rules": [{"variations": "ab"}]}}})
    result = run_xp("assign", "eval", "--features", str(path), "--key", "f", "--attributes", "{}")
    assert result.returncode == 2
    assert "rule 0" in result.stderr and "'variations'" in result.stderr


def test_yaml_experiments_evaluate_like_their_compiled_payload(tmp_path: Path) -> None:
    from assignment import CompiledPayload
    from assignment.authoring import load_payload_file

    examples = Path(__file__).resolve().parents[3] / "examples" / "experiments.yaml"
    units = [{"id": f"u{i}"} for i in range(40)]
    jsonl = tmp_path / "units.jsonl"
    jsonl.write_text("".join(json.dumps(unit) + "\n" for unit in units), encoding="utf-8")
    result = run_xp(
        "assign", "eval", "--features", str(examples), "--key", "checkout-button-color",
        "--attributes-file", str(jsonl), "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    expected = CompiledPayload(load_payload_file(examples)).evaluate_many("checkout-button-color", units)
    assert [row["variation_id"] for row in rows] == [r.variation_id for r in expected]
    assert all(row["in_experiment"] for row in rows)
    assert {row["variation_id"] for row in rows} == {0, 1, 2}


def test_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "experiments.yaml"
    path.write_text("experiments:\n  - key: k\n    variations: []\n", encoding="utf-8")
    result = run_xp("assign", "eval", "--features", str(path), "--key", "k", "--attributes", "{}")
    assert result.returncode == 2
    assert str(path.name) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_needs_exactly_one_attributes_source(tmp_path: Path) -> None:
    result = run_xp("assign", "eval", "--features", str(write_payload(tmp_path)), "--key", "checkout")
    assert result.returncode == 2
    assert "--attributes" in result.stderr
