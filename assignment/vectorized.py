"""GrowthBook hashing over a column of unit ids with numpy: same numbers as :mod:`assignment.hashing`.

Strings become a fixed-width UCS-4 matrix (one row per unit, one ``uint32`` code point per column)
and FNV-1a advances one column at a time over every row; ``uint32`` arithmetic wraps modulo 2**32
exactly as the scalar hash masks. Rows that need the scalar path (characters beyond U+FFFF, which
JavaScript hashes as two surrogate units, and unusually long strings) are hashed one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np
import numpy.typing as npt

from assignment import hashing
from assignment.hashing import FNV_OFFSET, FNV_PRIME, fnv1a32, fnv1a32_extend

__all__ = ["choose_variation_many", "fnv1a32_many", "gbhash_many", "in_ranges_many"]

_PRIME = np.uint32(FNV_PRIME)
_MAX_VECTOR_LENGTH = 128

U32Array = npt.NDArray[np.uint32]
F64Array = npt.NDArray[np.float64]


def fnv1a32_many(values: Sequence[str], state: int = FNV_OFFSET) -> U32Array:
    """FNV-1a 32 of each string, continuing from ``state`` (the hash of a common prefix)."""
    count = len(values)
    hashes = np.full(count, state, dtype=np.uint32)
    if count == 0:
        return hashes
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=count)
    long_rows = np.flatnonzero(lengths > _MAX_VECTOR_LENGTH)
    short_values = values
    if long_rows.size:
        short_values = list(values)
        for row in long_rows.tolist():
            short_values[row] = ""
        lengths[long_rows] = 0
    matrix = np.array(short_values, dtype=np.str_)
    width = matrix.dtype.itemsize // 4
    if width:
        codes = matrix.view(np.uint32).reshape(count, width)
        shortest = int(lengths.min())
        for column in range(width):
            step = (hashes ^ codes[:, column]) * _PRIME
            hashes = step if column < shortest else np.where(lengths > column, step, hashes)
        astral = np.flatnonzero((codes > 0xFFFF).any(axis=1))
        for row in astral.tolist():
            hashes[row] = fnv1a32_extend(state, values[row])
    for row in long_rows.tolist():
        hashes[row] = fnv1a32_extend(state, values[row])
    return hashes


def _extend_with_text(hashes: U32Array, text: str) -> U32Array:
    """Continue every hash over the same ``text`` (a suffix such as a v1 seed)."""
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        hashes = (hashes ^ np.uint32(data[i] | (data[i + 1] << 8))) * _PRIME
    return hashes


def _fnv_of_decimal(numbers: U32Array) -> U32Array:
    """FNV-1a 32 of each number's decimal string (``str(n)``), without building strings.

    Digits are visited from 10**9 down to 10**0; a row starts hashing at its leading digit.
    """
    hashes = np.full(numbers.shape[0], FNV_OFFSET, dtype=np.uint32)
    ten = np.uint32(10)
    zero = np.uint32(48)
    for exponent in range(9, -1, -1):
        scale = np.uint32(10**exponent)
        step = (hashes ^ ((numbers // scale) % ten + zero)) * _PRIME
        hashes = step if exponent == 0 else np.where(numbers >= scale, step, hashes)
    return hashes


def gbhash_many(seed: str, values: Sequence[str], version: int) -> F64Array | None:
    """:func:`assignment.hashing.gbhash` for many values; None for an unknown hash version.

    With the C hashes built (:mod:`assignment.hashing`), each value is hashed by C through a C-level
    ``map`` (no Python frame per value, several times faster than the matrix); without, numpy.
    """
    native = hashing._native
    if native is not None and version in (1, 2):
        hash_one = partial(native.hash_v2 if version == 2 else native.hash_v1, seed)
        return np.fromiter(map(hash_one, values), dtype=np.float64, count=len(values))
    if version == 2:
        inner = fnv1a32_many(values, fnv1a32(seed))
        return (_fnv_of_decimal(inner) % np.uint32(10000)).astype(np.float64) / 10000.0
    if version == 1:
        hashes = _extend_with_text(fnv1a32_many(values), seed)
        return (hashes % np.uint32(1000)).astype(np.float64) / 1000.0
    return None


def in_ranges_many(n: F64Array, ranges: Sequence[Sequence[float]]) -> npt.NDArray[np.bool_]:
    """Whether each hash falls in any of the half-open ``ranges``."""
    inside = np.zeros(n.shape[0], dtype=bool)
    for start, end in ranges:
        inside |= (n >= start) & (n < end)
    return inside


def choose_variation_many(n: F64Array, ranges: Sequence[Sequence[float]]) -> npt.NDArray[np.int64]:
    """:func:`assignment.bucketing.choose_variation` for many hashes (-1 where none holds)."""
    chosen = np.full(n.shape[0], -1, dtype=np.int64)
    for index in range(len(ranges) - 1, -1, -1):  # the first matching range wins
        start, end = ranges[index]
        chosen = np.where((n >= start) & (n < end), index, chosen)
    return chosen
