"""GrowthBook's hashing: FNV-1a 32-bit over UTF-16 code units, hash versions 1 and 2.

Every GrowthBook SDK turns a (seed, unit id) pair into a number in ``[0, 1)`` the same way, which is
what makes assignments identical across languages:

- **v1**: ``fnv1a32(value + seed) % 1000 / 1000`` (three decimals; the legacy default).
- **v2**: ``fnv1a32(str(fnv1a32(seed + value))) % 10000 / 10000`` (four decimals, better spread).

FNV-1a is a streaming hash, so the state after a fixed prefix (the v2 seed) is computed once per
rule, a fixed suffix (the v1 seed) extends any state in constant time through a 256-entry table
(:func:`suffix_table`), and a v2 hash's outer decimal string is hashed from tables
(:func:`fnv1a32_decimal`): each unit only pays for its own characters (:class:`SeededHash`). JavaScript hashes
``charCodeAt`` values, i.e. UTF-16 code units: ASCII strings hash their bytes, anything else hashes
its UTF-16 units (a character beyond U+FFFF is two surrogate units).

Attribute values are hashed as JavaScript's ``String(value)`` would print them, and only
non-empty strings and finite non-zero numbers identify a unit (:func:`hash_string`).

**Native path.** When ``assignment/_native_hash.c`` has been built (``make setup`` runs
``python -m assignment.native_build``), :func:`fnv1a32_extend`, :func:`gbhash` and the functions of
:meth:`SeededHash.function` are C code; without it (no compiler, a failed build) they are the
pure-Python ``pure_*`` functions here, with identical results. :func:`use_native_hashing` switches
between the two (tests run both); hashes compiled before a switch keep the path they were built with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

try:  # the optional C half, built in place by `python -m assignment.native_build`
    from assignment import _native_hash as _native_module
except ImportError:  # not built (no compiler, or a failed build): the pure-Python path
    _native_module = None  # type: ignore[assignment]

__all__ = [
    "FNV_OFFSET",
    "FNV_PRIME",
    "SeededHash",
    "fnv1a32",
    "fnv1a32_decimal",
    "fnv1a32_extend",
    "gbhash",
    "hash_string",
    "is_hashable",
    "js_number_to_string",
    "native_hashing_available",
    "native_hashing_enabled",
    "pure_fnv1a32_extend",
    "pure_gbhash",
    "suffix_table",
    "use_native_hashing",
]

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193
_MASK = 0xFFFFFFFF
MEMO_LIMIT = 4096
"""Most values a ``memo`` of :meth:`SeededHash.function` holds; it is emptied when full."""

_native: Any = _native_module
"""The C module while native hashing is in use, else None (:func:`use_native_hashing`)."""


def native_hashing_available() -> bool:
    """Whether the C module was built and imported."""
    return _native_module is not None


def native_hashing_enabled() -> bool:
    """Whether hashes are computed by the C module (available and not switched off)."""
    return _native is not None


def use_native_hashing(enabled: bool) -> bool:
    """Compute hashes with the C module (when available) or in pure Python; returns the previous
    setting. Affects :func:`fnv1a32_extend`, :func:`gbhash` and hashes compiled afterwards."""
    global _native
    previous = _native is not None
    _native = _native_module if enabled else None
    return previous


def fnv1a32_extend(state: int, text: str) -> int:
    """Continue an FNV-1a 32 hash from ``state`` over the UTF-16 code units of ``text``."""
    native = _native
    if native is not None:
        return int(native.fnv1a32_extend(state, text))
    return pure_fnv1a32_extend(state, text)


def pure_fnv1a32_extend(state: int, text: str) -> int:
    """:func:`fnv1a32_extend` in pure Python.

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
    native = _native
    if native is not None:
        if version == 2:
            return float(native.hash_v2(seed, value))
        if version == 1:
            return float(native.hash_v1(seed, value))
        return None
    return pure_gbhash(seed, value, version)


def pure_gbhash(seed: str, value: str, version: int) -> float | None:
    """:func:`gbhash` in pure Python."""
    extend = pure_fnv1a32_extend
    if version == 2:
        return (extend(FNV_OFFSET, str(extend(extend(FNV_OFFSET, seed), value))) % 10000) / 10000
    if version == 1:
        return (extend(extend(FNV_OFFSET, value), seed) % 1000) / 1000
    return None


# -- constant-time suffixes --------------------------------------------------------------------
#
# FNV-1a's XOR with a code unit below 256 only changes the low 8 bits of the state, and the low 8
# bits of a product mod 2**32 depend only on the low 8 bits of its factors. So over a fixed suffix
# of L such code units, the sequence of changes the XORs make depends only on the low byte ``l`` of
# the starting state ``h``, and  ``extend(h, suffix) == (h * P**L + C[l]) mod 2**32``  with a
# 256-entry table ``C`` per suffix (``C[l] = extend(l, suffix) - l * P**L``). A v1 hash has a fixed
# suffix (its seed), and a v2 hash's outer string is decimal digits, hashed two digits at a time.


def suffix_table(suffix: str) -> tuple[int, list[int]] | None:
    """``(P**len mod 2**32, C)`` for a suffix of code units below 256, else None (see above)."""
    if any(ord(char) > 255 for char in suffix):
        return None
    power = pow(FNV_PRIME, len(suffix), 1 << 32)
    return power, [(fnv1a32_extend(low, suffix) - low * power) & _MASK for low in range(256)]


def _digit_tables() -> tuple[list[int], int, list[int]]:
    prefixes = [FNV_OFFSET]  # FNV-1a 32 of str(q) for 0 < q < 10**4 (index 0 unused)
    for q in range(1, 10_000):
        prefixes.append(fnv1a32_extend(prefixes[q // 10] if q >= 10 else FNV_OFFSET, chr(48 + q % 10)))
    power = pow(FNV_PRIME, 2, 1 << 32)
    pairs = [0] * (256 << 7)  # [low byte << 7 | two digits] → C of that two-digit suffix
    for low in range(256):
        for digits in range(100):
            pairs[(low << 7) | digits] = (fnv1a32_extend(low, f"{digits:02d}") - low * power) & _MASK
    return prefixes, power, pairs


_DIGIT_PREFIXES: list[int] = []
_DIGIT_PAIRS: list[int] = []
_PAIR_POWER = 637696617  # P**2 mod 2**32, written out in fnv1a32_decimal


def _ensure_digit_tables() -> None:
    """Build the decimal tables on first use (~35k entries, a few tens of ms)."""
    if not _DIGIT_PAIRS:
        prefixes, _, pairs = _digit_tables()
        _DIGIT_PREFIXES[:] = prefixes
        _DIGIT_PAIRS[:] = pairs


def fnv1a32_decimal(number: int) -> int:
    """``fnv1a32(str(number))`` for ``0 <= number < 2**32`` (a v2 hash's outer hash), from tables:
    the leading digits (up to four) directly, then three pairs of digits in constant time each."""
    pairs = _DIGIT_PAIRS
    if number < 1_000_000 or not pairs:
        return fnv1a32(str(number))
    head, rest = divmod(number, 1_000_000)
    h = _DIGIT_PREFIXES[head]
    h = (h * 637696617 + pairs[((h & 255) << 7) | rest // 10000]) & _MASK
    h = (h * 637696617 + pairs[((h & 255) << 7) | (rest // 100) % 100]) & _MASK
    return (h * 637696617 + pairs[((h & 255) << 7) | rest % 100]) & _MASK


class SeededHash:
    """:func:`gbhash` with the seed fixed: compiled once per rule, called once per unit.

    v2 keeps the FNV state after the seed (a prefix); v1 keeps the seed's suffix table, so the
    unit's characters are the only ones hashed one by one in either version.
    """

    __slots__ = ("_seed", "_seed_state", "_suffix_power", "_suffix_table", "version")

    def __init__(self, seed: str, version: int) -> None:
        self._seed = seed
        self._seed_state = fnv1a32(seed)
        self.version = version
        table = suffix_table(seed) if version == 1 else None
        self._suffix_power = table[0] if table is not None else 0
        self._suffix_table = table[1] if table is not None else None
        if version == 2 and _native is None:
            _ensure_digit_tables()

    @property
    def valid(self) -> bool:
        """Whether the hash version is one GrowthBook defines (1 or 2)."""
        return self.version in (1, 2)

    def function(self) -> Callable[[str, dict[str, int] | None], float] | None:
        """This hash as a plain function ``(value, memo)`` (cheaper to call than the instance), or
        None for an unknown version (which never hashes). ``memo`` (or None) maps values to their
        ``fnv1a32``, shared by the v1 hashes of one evaluation: a v1 hash of a value under any
        seed is then constant-time once the value has been hashed."""
        native = _native
        if native is not None:  # C functions with the seed bound: no Python frame per hash
            if self.version == 2:
                return partial(native.hash_v2, self._seed)
            if self.version == 1:
                return partial(native.hash_v1, self._seed)
            return None
        if self.version == 2:
            seed_state = self._seed_state
            decimal = fnv1a32_decimal

            def v2(value: str, memo: dict[str, int] | None = None) -> float:
                if len(value) <= 32 and value.isascii():  # fnv1a32_extend, inlined
                    h = seed_state
                    for unit in value.encode():
                        h = (h ^ unit) * 16777619
                    return (decimal(h & 4294967295) % 10000) / 10000
                return (decimal(pure_fnv1a32_extend(seed_state, value)) % 10000) / 10000

            return v2
        if self.version == 1 and self._suffix_table is not None:
            power = self._suffix_power
            table = self._suffix_table

            def v1(value: str, memo: dict[str, int] | None = None) -> float:
                h = memo.get(value) if memo is not None else None
                if h is None:
                    if len(value) <= 32 and value.isascii():  # fnv1a32_extend, inlined
                        h = 2166136261
                        for unit in value.encode():
                            h = (h ^ unit) * 16777619
                        h &= 4294967295
                    else:
                        h = pure_fnv1a32_extend(2166136261, value)
                    if memo is not None:
                        if len(memo) >= MEMO_LIMIT:
                            memo.clear()
                        memo[value] = h
                return (((h * power + table[h & 255]) & 4294967295) % 1000) / 1000

            return v1
        if self.version == 1:  # a seed beyond Latin-1: the generic path

            def generic(value: str, memo: dict[str, int] | None = None) -> float:
                extend = pure_fnv1a32_extend
                return (extend(extend(FNV_OFFSET, value), self._seed) % 1000) / 1000

            return generic
        return None

    def __call__(self, value: str) -> float | None:
        native = _native
        if native is not None and self.version in (1, 2):
            return float((native.hash_v2 if self.version == 2 else native.hash_v1)(self._seed, value))
        if self.version == 2:
            return (fnv1a32_decimal(fnv1a32_extend(self._seed_state, value)) % 10000) / 10000
        if self.version == 1:
            table = self._suffix_table
            if table is not None:
                h = fnv1a32_extend(FNV_OFFSET, value)
                return (((h * self._suffix_power + table[h & 255]) & _MASK) % 1000) / 1000
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
