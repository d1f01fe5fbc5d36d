"""The columnar JSONL path (decision 0098) against the per-unit path, on random messy files.

Reference, written independently of :mod:`assignment.jsonl`: each ``\\n``-separated line read with
``json.loads`` (after a UTF-8 check and the line-length limit), evaluated with
:meth:`CompiledPayload.evaluate` and printed with ``json.dumps(result.to_dict(), ensure_ascii=False,
default=str)``; a bad line prints ``{"line": N, "error": reason}``. The fast path (columns decoded
with msgspec, bulk evaluation, output from cached pieces) and its per-line fallback must print the
very same bytes, whatever the block size.
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
from assignment.bulk import attributes_read
from assignment.hashing import native_hashing_available, use_native_hashing
from assignment.jsonl import MAX_LINE_BYTES, TOO_LONG, LineError
from assignment.jsonl_columns import ColumnDecoder, encode_jsonl
from tests.unit.assignment.test_bulk_file import PAYLOAD as BULK_PAYLOAD

PAYLOAD: dict[str, Any] = {
    "features": {
        **BULK_PAYLOAD["features"],
        "pricing": {
            "defaultValue": 0,
            "rules": [
                {"id": "grp", "condition": {"id": {"$inGroup": "vips"}}, "force": 99},
                {
                    "id": "both",
                    "condition": {"age": {"$gt": 20}, "plan": {"$in": ["pro", "team"]}, "n": {"$vgte": "1"}},
                    "force": -1.5,
                },
                {"id": "either", "condition": {"$or": [{"plan": "free"}, {"age": {"$lt": 0}}]}, "force": "x"},
                {
                    "id": "filtered",
                    "key": "pricing-exp",
                    "hashAttribute": "id",
                    "hashVersion": 2,
                    "filters": [{"seed": "f", "ranges": [[0, 0.6]], "attribute": "device"}],
                    "variations": [1, 2, 3],
                    "weights": [0.5, 0.25, 0.25],
                },
            ],
        },
    },
    "savedGroups": {"vips": ["u1", "ünïcödé", 7]},
}

IDS: list[Any] = [
    "u1", "", "😀-astral", "ünïcödé", "a\u2028b", 'q"\\/', "\x7f\x01", 7, 0, -0.0, 0.0, -1, 3.5, 1e300,
    10**30, -(10**25), True, False, None, [1], {"x": 1},
]  # fmt: skip
VALUES: list[Any] = [
    "US", "CA", "ÉÉ", "pro", "free", "team", "1.0.0", "2.0.0", "2.10.1", "", None, 0, -0.0, 21, 20.5,
    1e-300, 10**20, True, False, [], ["US"], {"a": [1, {"b": None}]}, "x" * 300,
]  # fmt: skip
NAMES = ["country", "app_version", "email", "device", "account", "flag", "age", "plan", "n"]


def messy_line(rng: random.Random) -> bytes:
    """A unit as JSON, written in one of several styles, with attributes no rule reads."""
    unit: dict[str, Any] = {}
    if rng.random() < 0.9:
        unit["id"] = rng.choice(IDS) if rng.random() < 0.5 else f"user-{rng.randrange(10**5)}"
    for name in NAMES:
        if rng.random() < 0.6:
            unit[name] = rng.choice(VALUES)
    if rng.random() < 0.3:
        unit["email"] = rng.choice(["a@example.com", "ü@example.com", "b@mail.test"])
    if rng.random() < 0.3:
        unit["extra"] = {"deep": [[[rng.choice(VALUES)]]], "s": "\U0001f600\u00e9\\"}
    text = json.dumps(
        unit, ensure_ascii=rng.random() < 0.5, separators=rng.choice([(",", ":"), (", ", ": ")])
    )
    if rng.random() < 0.05:  # a duplicate key: the last one counts
        text = text[:-1] + (', "id": "dup"}' if len(text) > 2 else '"id": "dup"}')
    if rng.random() < 0.05:
        text = "  " + text + " \r"
    return text.encode("utf-8")


HOSTILE: list[bytes] = [
    b"{not json",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b'{"id": "\xff\xfe"}',
    b'{"id": "u", "x": "\xc3"}',  # invalid UTF-8 in an attribute no rule reads
    b'{"id": "\\ud800"}',
    b'{"id": "u", "x": "\\udc00"}',
    b'{"id": "u"',
    b'{"id": "a"} {"id": "b"}',  # two objects on one line
    b'{"id": "n", "score": NaN, "big": 1E400}',  # Python reads these; msgspec does not
    b'{"id": 1E400}',
    b'{"id": 1e-400, "age": -0}',
    b'{"id": 1' + b"0" * 5000 + b"}",  # beyond Python's integer digit limit
    b'{"id": 1' + b"0" * 400 + b"}",
    b'{"id": "u", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # nested too deeply
    b'{"id": "u", "x": ' + b"[" * 50 + b"]" * 50 + b"}",
    b'{"id": "tab\there"}',  # a raw control character in a string
    b"",
    b"   ",
    b"\r",
    b"{}",
    b'{"id": "u", "x": "' + b"y" * (MAX_LINE_BYTES + 10) + b'"}',  # over the line limit
]


UNITS_AMONG_HOSTILE = {
    b"{}",
    b'{"id": 1e-400, "age": -0}',
    b'{"id": 1' + b"0" * 400 + b"}",
    b'{"id": "u", "x": ' + b"[" * 50 + b"]" * 50 + b"}",
}


def reference(payload: Any, key: str, data: bytes) -> bytes:
    lines: list[bytes] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        reason = None
        unit = None
        if len(raw) > MAX_LINE_BYTES:
            reason = TOO_LONG
        else:
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                reason = "not UTF-8 text"
            else:
                if not text.strip():
                    continue
                try:
                    unit = json.loads(text)
                except json.JSONDecodeError as error:
                    reason = f"invalid JSON: {error.msg}"
                except RecursionError:
                    reason = "invalid JSON: nested too deeply"
                except ValueError:
                    reason = "invalid JSON: a number has too many digits"
                else:
                    if not isinstance(unit, dict):
                        reason = "each line must be a JSON object"
                    else:
                        try:
                            json.dumps(unit, ensure_ascii=False).encode("utf-8")
                        except UnicodeEncodeError:
                            reason = "invalid JSON: a string holds a lone UTF-16 surrogate"
        if reason is not None:
            lines.append((json.dumps({"line": number, "error": reason}, ensure_ascii=False) + "\n").encode())
            continue
        result = payload.evaluate(key, unit)
        lines.append((json.dumps(result.to_dict(), ensure_ascii=False, default=str) + "\n").encode("utf-8"))
    return b"".join(lines)


def columnar(payload: Any, key: str, data: bytes, block_bytes: int) -> tuple[bytes, list[LineError]]:
    errors: list[LineError] = []
    out = b"".join(encode_jsonl(payload, key, io.BytesIO(data), errors, block_bytes))
    return out, errors


def messy_file(rng: random.Random, units: int, hostile_share: float) -> bytes:
    lines = [
        rng.choice(HOSTILE[:-1]) if rng.random() < hostile_share else messy_line(rng) for _ in range(units)
    ]
    return b"\n".join(lines) + (b"\n" if rng.random() < 0.5 else b"")


@pytest.mark.parametrize("native", [True, False])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_columnar_output_is_byte_identical_to_per_unit_evaluate(native: bool, seed: int) -> None:
    if native and not native_hashing_available():
        pytest.skip("C hashes not built")
    previous = use_native_hashing(native)
    try:
        payload = compile_payload(PAYLOAD)
        rng = random.Random(seed)
        clean = messy_file(rng, 4_000, 0.0)
        dirty = messy_file(rng, 4_000, 0.02)
        for key in ("checkout", "pricing"):  # the clean file takes the fast path
            names = attributes_read(payload.features[key])
            assert names is not None and ColumnDecoder(names).decode(clean) is not None
        for key in ("checkout", "pricing", "missing-feature"):
            for data in (clean, dirty):
                expected = reference(payload, key, data)
                for block_bytes in (2_048, 1 << 16, 1 << 22):
                    got, errors = columnar(payload, key, data, block_bytes)
                    assert got == expected, (key, block_bytes)
                    assert len(errors) == expected.count(b'{"line": ')
        sources = {json.loads(line)["source"] for line in reference(payload, "pricing", clean).splitlines()}
        assert sources == {"defaultValue", "force", "experiment"}
    finally:
        use_native_hashing(previous)


def test_the_fast_path_takes_clean_blocks_and_refuses_the_others() -> None:
    decoder = ColumnDecoder(["id", "country"])
    table = decoder.decode(b'{"id": "a", "other": [1, {"x": "\\u00e9"}]}\n{"country": "US", "id": 5}\n')
    assert table is not None and table.size == 2
    assert table.column("id") == ["a", 5] and table.column("country") == [None, "US"]
    for bad in HOSTILE:
        if bad not in UNITS_AMONG_HOSTILE:
            assert decoder.decode(b'{"id": "a"}\n' + bad + b"\n") is None, bad[:40]


def test_hostile_lines_are_reported_in_place(tmp_path: Path) -> None:
    payload = compile_payload(PAYLOAD)
    data = b"\n".join([b'{"id": "u1"}', *HOSTILE, b'{"id": "u2"}'])
    got, errors = columnar(payload, "checkout", data, 1 << 16)
    assert got == reference(payload, "checkout", data)
    reasons = {error.reason for error in errors}
    assert {TOO_LONG, "invalid JSON: nested too deeply", "not UTF-8 text"} <= reasons
    assert "invalid JSON: a number has too many digits" in reasons


def test_a_huge_line_is_skipped_without_holding_it_and_lines_are_counted(tmp_path: Path) -> None:
    payload = compile_payload(PAYLOAD)
    huge = b'{"id": "' + b"z" * (3 * MAX_LINE_BYTES) + b'"}'
    data = b'{"id": "u1"}\n' + huge + b'\n{"id": "u2"}\n' + huge + b"\n\n" + huge
    got, errors = columnar(payload, "checkout", data, 4_096)
    assert [(error.line, error.reason) for error in errors] == [(2, TOO_LONG), (4, TOO_LONG), (6, TOO_LONG)]
    assert got == reference(payload, "checkout", data)


def test_cli_survives_hostile_files(tmp_path: Path) -> None:
    payload_path = tmp_path / "payload.json"
    payload_path.write_text(json.dumps(PAYLOAD), encoding="utf-8")
    units = tmp_path / "units.jsonl"
    units.write_bytes(b"\n".join([b'{"id": "u1"}', *HOSTILE, b'{"id": "u2"}']) + b"\n")
    command = [sys.executable, "-m", "xpstream.cli", "assign", "eval", "--features", str(payload_path)]
    command += ["--key", "pricing", "--attributes-file", str(units), "--format", "json"]
    result = subprocess.run(command, capture_output=True, timeout=120)
    assert result.returncode == 2
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr and "nested too deeply" in stderr and TOO_LONG in stderr
    assert result.stdout == reference(compile_payload(PAYLOAD), "pricing", units.read_bytes())
    table = subprocess.run([*command[:-1], "csv"], capture_output=True, timeout=120)
    assert table.returncode == 2 and "Traceback" not in table.stderr.decode()
