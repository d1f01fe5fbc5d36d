"""The C hashes (assignment/_native_hash.c) agree with the pure-Python ones on many random strings,
and the engine falls back to pure Python when the C module is missing or cannot be built."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assignment import hashing
from assignment.native_build import build_native, native_path

native = pytest.importorskip(
    "assignment._native_hash", reason="native hashing is not built (python -m assignment.native_build)"
)
REPO = Path(__file__).resolve().parents[3]


def _random_strings(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    alphabets = [
        "abcdefghijklmnopqrstuvwxyz0123456789-_@.",
        "".join(chr(c) for c in range(32, 256)),  # Latin-1
        "".join(chr(c) for c in range(0x370, 0x3FF))
        + "日本語中文한국어"
        + "\ud800\udbff\udc00",  # BMP, lone surrogates
        "😀🎉𝄞𐍈" + "ab",  # beyond U+FFFF: two UTF-16 units each
    ]
    out = []
    for _ in range(count):
        alphabet = rng.choice(alphabets)
        out.append("".join(rng.choice(alphabet) for _ in range(rng.choice([0, 1, 2, 5, 12, 33, 80]))))
    return out


def test_native_and_pure_agree_on_many_random_strings() -> None:
    values = _random_strings(20_000, seed=7)
    seeds = ["", "checkout-exp", "ü-seed", "日本", *values[:20]]
    for index, value in enumerate(values):
        state = hashing.FNV_OFFSET if index % 2 else (index * 2654435761) & 0xFFFFFFFF
        assert native.fnv1a32_extend(state, value) == hashing.pure_fnv1a32_extend(state, value), value
        seed = seeds[index % len(seeds)]
        assert native.hash_v1(seed, value) == hashing.pure_gbhash(seed, value, 1), (seed, value)
        assert native.hash_v2(seed, value) == hashing.pure_gbhash(seed, value, 2), (seed, value)


@settings(max_examples=300, deadline=None)
@given(seed=st.text(max_size=16), value=st.text(max_size=40))
def test_native_and_pure_agree_on_arbitrary_text(seed: str, value: str) -> None:
    for version in (1, 2):
        previous = hashing.use_native_hashing(True)
        try:
            fast = hashing.SeededHash(seed, version).function()
            direct = hashing.gbhash(seed, value, version)
        finally:
            hashing.use_native_hashing(False)
        pure = hashing.SeededHash(seed, version).function()
        hashing.use_native_hashing(previous)
        assert fast is not None and pure is not None
        expected = hashing.pure_gbhash(seed, value, version)
        assert fast(value, None) == pure(value, {}) == direct == expected


def test_native_rejects_what_is_not_text() -> None:
    with pytest.raises(TypeError):
        native.hash_v1("seed", 12)
    with pytest.raises(TypeError):
        native.fnv1a32_extend("x", "text")
    with pytest.raises(TypeError):
        native.hash_v2("seed")


def test_switching_paths_changes_compiled_hashes_only() -> None:
    previous = hashing.use_native_hashing(False)
    try:
        assert not hashing.native_hashing_enabled()
        assert hashing.SeededHash("s", 2).function().__class__.__name__ == "function"
        hashing.use_native_hashing(True)
        assert hashing.native_hashing_enabled()
        assert hashing.SeededHash("s", 2).function().__class__.__name__ == "partial"
    finally:
        hashing.use_native_hashing(previous)


def test_without_the_module_the_pure_path_gives_the_same_assignments() -> None:
    script = (
        "import sys; sys.modules['assignment._native_hash'] = None\n"
        "from assignment import compile_payload, hashing\n"
        "assert not hashing.native_hashing_available() and not hashing.native_hashing_enabled()\n"
        "p = compile_payload({'features': {'f': {'defaultValue': 0, 'rules': [{'key': 'e', 'hashVersion': 2,"
        " 'namespace': ['ns', 0, 0.7], 'variations': [0, 1, 2]}]}}})\n"
        "print([p.evaluate('f', {'id': f'u{i}'}).variation_id for i in range(200)])\n"
    )
    fallback = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True
    ).stdout.strip()
    from assignment import compile_payload

    previous = hashing.use_native_hashing(True)
    try:
        payload = compile_payload(
            {
                "features": {
                    "f": {
                        "defaultValue": 0,
                        "rules": [
                            {
                                "key": "e",
                                "hashVersion": 2,
                                "namespace": ["ns", 0, 0.7],
                                "variations": [0, 1, 2],
                            }
                        ],
                    }
                }
            }
        )
        native_ids = [payload.evaluate("f", {"id": f"u{i}"}).variation_id for i in range(200)]
    finally:
        hashing.use_native_hashing(previous)
    assert fallback == str(native_ids)
    assert {0, 1, 2, None} == set(native_ids)


def test_a_failed_build_warns_and_leaves_the_module_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    before = native_path().stat().st_mtime_ns
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    ok, message = build_native(force=True)
    assert not ok and message.startswith("compiling failed")
    assert native_path().stat().st_mtime_ns == before
