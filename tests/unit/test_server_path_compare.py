"""The server-path check's comparison of two reads (tests/fixtures/server_path.py): equal rows in any
order agree, floats agree within a relative 1e-9 (parallel float sums differ in the last bits between two
runs), and anything else that differs is reported."""

from __future__ import annotations

import pyarrow as pa

from tests.fixtures.server_path import difference

SQL = "SELECT v, s, x FROM t"


def table(rows: list[dict[str, object]]) -> pa.Table:
    return pa.Table.from_pylist(
        rows, schema=pa.schema([("v", pa.string()), ("s", pa.float64()), ("x", pa.list_(pa.float64()))])
    )


def test_rows_in_another_order_agree() -> None:
    a = [{"v": "a", "s": 1.5, "x": [1.0]}, {"v": "b", "s": 2.5, "x": []}]
    assert difference(table(a), table(a[::-1]), SQL) is None


def test_a_float_sum_in_another_order_agrees() -> None:
    values = [0.1 * i for i in range(1, 200)]
    forward, backward = sum(values), sum(reversed(values))
    assert forward != backward  # the case seen: same rows, last bits differ
    left = table([{"v": "a", "s": forward, "x": [forward]}, {"v": "b", "s": 3.0, "x": []}])
    right = table([{"v": "b", "s": 3.0, "x": []}, {"v": "a", "s": backward, "x": [backward]}])
    assert difference(left, right, SQL) is None


def test_a_real_difference_is_reported() -> None:
    base = [{"v": "a", "s": 1.0, "x": [1.0]}, {"v": "b", "s": 2.0, "x": [2.0]}]
    for changed in (
        [{"v": "a", "s": 1.000001, "x": [1.0]}, base[1]],  # beyond the tolerance
        [{"v": "a", "s": 1.0, "x": [1.0, 0.0]}, base[1]],  # a longer array
        [{"v": "c", "s": 1.0, "x": [1.0]}, base[1]],  # a text value
        [{"v": "a", "s": None, "x": [1.0]}, base[1]],  # a null
        base[:1],  # a row missing
    ):
        message = difference(table(base), table(changed), SQL)
        assert message is not None and message.startswith("rows differ")


def test_nan_agrees_with_nan_only() -> None:
    nan = [{"v": "a", "s": float("nan"), "x": []}]
    assert difference(table(nan), table(nan), SQL) is None
    assert difference(table(nan), table([{"v": "a", "s": 0.0, "x": []}]), SQL) is not None
