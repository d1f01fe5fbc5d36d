"""GrowthBook's hashing: FNV-1a 32-bit over UTF-16 code units, hash versions 1 and 2.

Every GrowthBook SDK turns a (seed, unit id) pair into a number in ``[0, 1)`` the same way, which is
what makes assignments identical across languages:

- **v1**: ``fnv1a32(value + seed) % 1000 / 1000`` (three decimals; the legacy default).
- **v2**: ``fnv1a32(str(fnv1a32(seed + value))) % 10000 / 10000`` (four decimals, better spread).

FNV-1a is a streaming hash, so the state after a fixed prefix (the v2 seed) is computed once per
rule and each unit only pays for its own characters (:class:`SeededHash`). JavaScript hashes
``charCodeAt`` values, i.e. UTF-16 code units: ASCII strings hash their bytes, anything else hashes
its UTF-16 units (a character beyond U+FFFF is two surrogate units).

Attribute values are hashed as JavaScript's ``String(value)`` would print them, and only
non-empty strings and finite non-zero numbers identify a unit (:func:`hash_string`).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "FNV_OFFSET",
    "FNV_PRIME",
    "SeededHash",
    "fnv1a32",
    "fnv1a32_extend",
    "gbhash",
    "hash_string",
    "is_hashable",
    "js_number_to_string",
]

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF


def fnv1a32_extend(state: int, text: str) -> int:
    """Continue an FNV-1a 32 hash from ``state`` over the UTF-16 code units of ``text``.

    The product is masked once at the end: XOR with a code unit only touches the low 16 bits and
    the low 32 bits of a product depend only on the low 32 bits of its factors, so the result is
    the same as masking at every step, and faster for the short strings unit ids are.
    """
    h = state
    if text.isascii():
        if len(text) <= 32:
            for unit in text.encode():
                h = (h ^ unit) * FNV_PRIME
        else:  # keep the integer small on long strings
            for unit in text.encode():
                h = ((h & _MASK) ^ unit) * FNV_PRIME
        return h & _MASK
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h = ((h & _MASK) ^ (data[i] | (data[i + 1] << 8))) * FNV_PRIME
    return h & _MASK


def fnv1a32(text: str) -> int:
    """FNV-1a 32 of ``text`` over UTF-16 code units, like the JS SDK's ``charCodeAt`` loop."""
    return fnv1a32_extend(FNV_OFFSET, text)


def gbhash(seed: str, value: str, version: int) -> float | None:
    """GrowthBook's hash of ``value`` under ``seed`` into ``[0, 1)``; None for an unknown version."""
    if version == 2:
        return (fnv1a32(str(fnv1a32_extend(fnv1a32(seed), value))) % 10000) / 10000
    if version == 1:
        return (fnv1a32_extend(fnv1a32(value), seed) % 1000) / 1000
    return None


class SeededHash:
    """:func:`gbhash` with the seed fixed: compiled once per rule, called once per unit."""

    __slots__ = ("_seed", "_seed_state", "version")

    def __init__(self, seed: str, version: int) -> None:
        self._seed = seed
        self._seed_state = fnv1a32(seed)
        self.version = version

    @property
    def valid(self) -> bool:
        """Whether the hash version is one GrowthBook defines (1 or 2)."""
        return self.version in (1, 2)

    def __call__(self, value: str) -> float | None:
        if self.version == 2:
            inner = fnv1a32_extend(self._seed_state, value)
            return (fnv1a32_extend(FNV_OFFSET, str(inner)) % 10000) / 10000
        if self.version == 1:
            return (fnv1a32_extend(fnv1a32(value), self._seed) % 1000) / 1000
        return None


def js_number_to_string(value: float) -> str:
    """Format a number like JavaScript's ``String(number)`` (shortest round-trip digits).

    Integers become doubles first, as JS has only doubles; fixed notation for decimal exponents
    from -6 to 21, JS-style scientific notation (``1e+21``, ``1.5e-7``) otherwise.
    """
    try:
        x = float(value)
    except OverflowError:
        x = math.inf if value > 0 else -math.inf
    if math.isnan(x):
        return "NaN"
    if x == 0:
        return "0"
    if x < 0:
        return "-" + js_number_to_string(-x)
    if math.isinf(x):
        return "Infinity"
    mantissa, _, exp = repr(x).partition("e")
    whole, _, fraction = mantissa.partition(".")
    padded = (whole + fraction).lstrip("0")
    digits = padded.rstrip("0")
    k = len(digits)
    n = int(exp or "0") - len(fraction) + len(padded)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * -n + digits
    head = digits[0] + ("." + digits[1:] if k > 1 else "")
    return head + "e" + ("+" if n > 0 else "-") + str(abs(n - 1))


def is_hashable(value: Any) -> bool:
    """Whether an attribute value can identify a unit: a non-empty string or finite non-zero number.

    Booleans never count, although ``bool`` is a subclass of ``int`` in Python.
    """
    if isinstance(value, str):
        return value != ""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        try:
            return value != 0 and math.isfinite(value)
        except OverflowError:
            return False
    return False


def hash_string(value: Any) -> str:
    """The string GrowthBook hashes for an attribute value, ``""`` when it cannot identify a unit."""
    if type(value) is str:
        return value
    if not is_hashable(value):
        return ""
    return js_number_to_string(value)
