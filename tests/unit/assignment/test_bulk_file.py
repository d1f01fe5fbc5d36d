"""The bulk JSONL path (`xp assign eval --attributes-file`) against the per-unit path on messy input.

Reference: each line through ``json.loads``, :meth:`CompiledPayload.evaluate` and
``json.dumps(result.to_dict(), ensure_ascii=False, default=str)`` (what the command printed before
decision 0078). The bulk path (block decode, ``evaluate_many``, cached encoding) must print the very
same bytes for every unit, and one ``{"line", "error"}`` object in place of each bad line.
"""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from assignment import compile_payload
from assignment.hashing import native_hashing_available, use_native_hashing
from assignment.jsonl import ResultEncoder, decode_units, read_blocks

PAYLOAD: dict[str, Any] = {
    "features": {
        "checkout": {
            "defaultValue": {"layout": "classic", "ratio": 0.5},
            "rules": [
                {
                    "id": "qa",
                    "condition": {"email": {"$regex": "@example\\.com$"}},
                    "force": {"layout": "qa"},
                },
                {
                    "id": "exp",
                    "key": "checkout-exp",
                    "seed": "checkout-exp",
                    "hashAttribute": "id",
                    "hashVersion": 2,
                    "condition": {"country": {"$in": ["US", "CA", "ÉÉ"]}, "app_version": {"$vgte": "2.0.0"}},
                    "namespace": ["checkout", 0, 0.8],
                    "coverage": 0.9,
                    "variations": [{"layout": "classic"}, {"layout": "one%page"}, 1e-05],
                    "weights": [0.34, 0.33, 0.33],
                    "meta": [{"key": "control"}, {"key": "one-page", "name": "Ünï"}, {"key": "tiny"}],
                },
                {
                    "id": "half",
                    "force": True,
                    "coverage": 0.5,
                    "hashAttribute": "device",
                    "fallbackAttribute": "id",
                },
                {
                    "id": "v1",
                    "key": "legacy",
                    "hashAttribute": "account",
                    "hashVersion": 1,
                    "condition": {"flag": True},
                    "variations": ["a", "b"],
                },
            ],
        }
    }
}

IDS: list[Any] = ["u1", "", "😀-astral", "ünïcödé", 7, 0, -1, 3.5, 1e300, True, False, None, [1], {"x": 1}]
COUNTRIES: list[Any] = ["US", "CA", "FR", "ÉÉ", None, 1, True, ["US"]]
VERSIONS: list[Any] = ["1.0.0", "2.0.0", "2.10.1", "10", "", None, 2, "v2.0.0-beta"]


def messy_unit(rng: random.Random) -> dict[str, Any]:
    unit: dict[str, Any] = {}
    for name, choices in (
        ("id", IDS),
        ("country", COUNTRIES),
        ("app_version", VERSIONS),
        ("email", ["a@example.com", "b@mail.test", "", None, 3, "ü@example.com"]),
        ("device", ["d1", "", None, 9]),
        ("account", ["acc-1", 12, None]),
        ("flag", [True, 1, "true", None, False]),
    ):
        if rng.random() < 0.8:
            unit[name] = rng.choice(choices)
    if rng.random() < 0.3:
        unit["id"] = f"user-{rng.randrange(10**6)}"
    return unit


def reference_line(payload: Any, text: str) -> bytes:
    result = payload.evaluate("checkout", json.loads(text))
    return (json.dumps(result.to_dict(), ensure_ascii=False, default=str) + "\n").encode("utf-8")


def bulk_output(payload: Any, data: bytes, block_bytes: int) -> tuple[bytes, list[tuple[int, str]]]:
    encoder = ResultEncoder()
    out = io.BytesIO()
    errors: list[tuple[int, str]] = []
    for first_line, block in read_blocks(io.BytesIO(data), block_bytes):
        units, block_errors = decode_units(block, first_line)
        out.write(encoder.encode(payload.evaluate_many("checkout", units), block_errors))
        errors.extend((error.line, error.reason) for error in block_errors)
    return out.getvalue(), errors


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("seed", [1, 2])
def test_bulk_output_is_byte_identical_to_per_unit_on_messy_units(native: bool, seed: int) -> None:
    if native and not native_hashing_available():
        pytest.skip("C hashes not built")
    previous = use_native_hashing(native)
    try:
        payload = compile_payload(PAYLOAD)
        rng = random.Random(seed)
        texts = [json.dumps(messy_unit(rng), ensure_ascii=rng.random() < 0.5) for _ in range(3_000)]
        data = "".join(text + ("\r\n" if rng.random() < 0.1 else "\n") for text in texts).encode("utf-8")
        expected = b"".join(reference_line(payload, text) for text in texts)
        for block_bytes in (4096, 1 << 22):
            got, errors = bulk_output(payload, data, block_bytes)
            assert errors == []
            assert got == expected
        sources = {json.loads(line)["source"] for line in expected.splitlines()}
        assert sources == {"defaultValue", "force", "experiment"}
    finally:
        use_native_hashing(previous)


BAD_LINES = [
    (b"{not json", "invalid JSON: "),
    (b"[1, 2]", "each line must be a JSON object"),
    (b'"just a string"', "each line must be a JSON object"),
    (b'{"id": "\xff\xfe"}', "not UTF-8 text"),
    (b'{"id": "\\ud800"}', "lone UTF-16 surrogate"),
    (b'{"id": "u"', "invalid JSON: "),
]


def test_bad_lines_become_errors_in_place_and_the_rest_is_evaluated() -> None:
    payload = compile_payload(PAYLOAD)
    good = [b'{"id": "u1", "country": "US", "app_version": "3.0.0"}', b'{"id": 5, "email": "x@example.com"}']
    python_only = b'{"id": "n", "score": NaN, "big": 1E400}'  # Python's json reads these; msgspec does not
    lines: list[bytes] = []
    expected_errors: list[tuple[int, str]] = []
    for bad, reason in BAD_LINES:
        lines.extend([good[0], b"", b"   ", bad])
        expected_errors.append((len(lines), reason))
    lines.extend([python_only, good[1]])
    data = b"\n".join(lines)  # the last line has no newline
    for block_bytes in (16, 1 << 22):
        out, errors = bulk_output(payload, data, block_bytes)
        assert [line for line, _ in errors] == [line for line, _ in expected_errors]
        for (_, reason), (_, want) in zip(errors, expected_errors, strict=True):
            assert want in reason
        rows = out.splitlines(keepends=True)
        expected_rows: list[bytes] = []
        error_lines = iter(errors)
        for raw in lines:
            if not raw.strip():
                continue
            if any(raw == bad for bad, _ in BAD_LINES):
                line, reason = next(error_lines)
                expected_rows.append((json.dumps({"line": line, "error": reason}) + "\n").encode())
            else:
                expected_rows.append(reference_line(payload, raw.decode()))
        assert rows == expected_rows


def test_read_blocks_keeps_lines_whole_and_counts_them() -> None:
    data = b"".join(b'{"id": "%d"}\n' % i for i in range(1000)) + b'{"id": "last"}'
    blocks = list(read_blocks(io.BytesIO(data), 37))
    assert b"".join(block for _, block in blocks) == data
    line = 1
    for first_line, block in blocks:
        assert first_line == line
        assert block.endswith(b"\n") or block is blocks[-1][1]
        line += block.count(b"\n")


def test_cli_reports_each_bad_line_and_still_prints_the_others(tmp_path: Path) -> None:
    payload_path = tmp_path / "payload.json"
    payload_path.write_text(json.dumps(PAYLOAD), encoding="utf-8")
    units = tmp_path / "units.jsonl"
    units.write_bytes(b'{"id": "a"}\n{oops\n\n{"id": 3}\n[1]\n{"id": "\xc3\xa9"}\n')
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "xpstream.cli",
            "assign",
            "eval",
            "--features",
            str(payload_path),
            "--key",
            "checkout",
            "--attributes-file",
            str(units),
            "--format",
            "json",
        ],
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    assert f"{units}:2: invalid JSON" in stderr and f"{units}:5: each line must be a JSON object" in stderr
    rows = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [row.get("line") for row in rows] == [None, 2, None, 5, None]
    payload = compile_payload(PAYLOAD)
    for row, text in zip(
        [rows[0], rows[2], rows[4]], ['{"id": "a"}', '{"id": 3}', '{"id": "é"}'], strict=True
    ):
        assert row == json.loads(reference_line(payload, text))
