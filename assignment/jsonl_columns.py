"""JSON Lines straight to columns and back (`xp assign eval --attributes-file … --format json`).

The fast path of decision 0098, per block of lines:

- :class:`ColumnDecoder` decodes the block with one msgspec ``decode_lines`` call into a Struct
  holding only the attributes the feature reads (msgspec skips the others without building them,
  but still checks their syntax), then pulls each attribute out as a column (:class:`ColumnTable`);
- :func:`assignment.bulk.evaluate_columns` evaluates the columns, returning one code per unit;
- :class:`OutcomeEncoder` writes the lines from cached bytes per result (a forced value, the
  default) or per experiment variation (a ``%`` format filled with the unit's hash value and
  bucket), with no dict or result object per unit.

A block the fast path cannot take whole — a bad or blank line, bytes that are not UTF-8, a line
that may be over :data:`~assignment.jsonl.MAX_LINE_BYTES` — goes through
:func:`~assignment.jsonl.decode_units` and the per-result encoder instead, so every line prints
what the per-unit path prints, byte for byte (``tests/unit/assignment/test_jsonl_columns.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from operator import attrgetter
from typing import IO, TYPE_CHECKING, Any

import msgspec
import numpy as np

from assignment.bulk import (
    MIN_VECTORIZED_UNITS,
    Outcomes,
    UnitTable,
    attributes_read,
    evaluate_columns,
    take,
)
from assignment.jsonl import (
    BLOCK_BYTES,
    LineError,
    ResultEncoder,
    decode_units,
    dumps,
    error_line,
    lines_in,
    may_hold_long_line,
    oversized_line,
    read_blocks,
    result_template,
)
from assignment.results import FeatureResult

if TYPE_CHECKING:
    from assignment.compiled import CompiledPayload

__all__ = ["ColumnDecoder", "ColumnTable", "OutcomeEncoder", "encode_jsonl"]

_encode_str = msgspec.json.Encoder().encode  # identical to json.dumps(ensure_ascii=False) for str


class ColumnTable:
    """A :class:`~assignment.bulk.UnitTable` of decoded columns (None where a unit lacks one)."""

    __slots__ = ("_columns", "size")

    def __init__(self, columns: dict[str, list[Any]], size: int) -> None:
        self._columns = columns
        self.size = size

    def column(self, name: str) -> list[Any]:
        column = self._columns.get(name)
        return column if column is not None else [None] * self.size

    def unit(self, row: int) -> dict[str, Any]:
        """The unit's attributes that the feature reads (a missing one as None: conditions read
        a missing attribute and a null alike)."""
        return {name: column[row] for name, column in self._columns.items()}


class ColumnDecoder:
    """Decodes blocks of JSON Lines into the columns of ``names``, or None for a block the fast
    path does not take (see the module docstring)."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        fields = [f"f{index}" for index in range(len(self.names))]
        unit_type = msgspec.defstruct(
            "Unit",
            [(field, Any, None) for field in fields],
            rename=dict(zip(fields, self.names, strict=True)),
            gc=False,
        )
        self._decoder = msgspec.json.Decoder(unit_type)
        self._getters = [attrgetter(field) for field in fields]

    def decode(self, block: bytes) -> ColumnTable | None:
        if may_hold_long_line(block):
            return None
        if not block.isascii():
            try:  # msgspec does not check the bytes of strings it skips
                block.decode("utf-8")
            except UnicodeDecodeError:
                return None
        try:
            units = self._decoder.decode_lines(block)
        except (msgspec.DecodeError, RecursionError):
            return None
        if len(units) != lines_in(block):  # a blank line, or two objects on one line
            return None
        columns = {
            name: list(map(getter, units)) for name, getter in zip(self.names, self._getters, strict=True)
        }
        return ColumnTable(columns, len(units))


class OutcomeEncoder:
    """Encodes :class:`~assignment.bulk.Outcomes` as the lines ``json.dumps(result.to_dict(),
    ensure_ascii=False, default=str)`` gives per unit."""

    def __init__(self) -> None:
        self._lines: dict[tuple[int, str], tuple[FeatureResult, bytes]] = {}

    def _line(self, choice: FeatureResult) -> bytes:
        """The line of a shared result, or the ``%b``/``%a`` format of an experiment variation."""
        key = (id(choice.value), repr(choice[1:8] + choice[10:]))
        entry = self._lines.get(key)
        if entry is None or entry[0].value is not choice.value:
            if choice.source == "experiment":
                line = result_template(choice, b"%a")  # a bucket is a float: ascii() is repr()
            else:
                line = (dumps(choice.to_dict()) + "\n").encode("utf-8")
            entry = self._lines[key] = (choice, line)
        return entry[1]

    def encode(self, outcomes: Outcomes, table: UnitTable) -> bytes:
        codes, choices, buckets = outcomes
        if len(choices) == 1:
            return self._line(choices[0]) * table.size
        lines = np.empty(table.size, dtype=object)
        for code, choice in enumerate(choices):
            rows = np.flatnonzero(codes == code)
            if rows.size == 0:
                continue
            line = self._line(choice)
            if choice.source != "experiment":
                lines[rows] = line
                continue
            hash_values = take(table.column(str(choice.hash_attribute)), rows)
            if set(map(type, hash_values)) == {str}:
                encoded: Iterable[bytes] = map(_encode_str, hash_values)
            else:
                encoded = [
                    _encode_str(value) if type(value) is str else dumps(value).encode("utf-8")
                    for value in hash_values
                ]
            filled = np.empty(rows.size, dtype=object)
            filled[:] = list(map(line.__mod__, zip(encoded, buckets[rows].tolist(), strict=True)))
            lines[rows] = filled
        return b"".join(lines.tolist())


def encode_jsonl(
    payload: CompiledPayload,
    key: str,
    stream: IO[bytes],
    errors: list[LineError],
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[bytes]:
    """The output lines of feature ``key`` for the units of ``stream``, block by block; each bad
    line is appended to ``errors`` and has its ``{"line", "error"}`` object in its place."""
    feature = payload.features.get(key)
    names = attributes_read(feature) if feature is not None else None
    decoder = ColumnDecoder(names) if names is not None else None
    outcome_encoder = OutcomeEncoder()
    result_encoder = ResultEncoder()
    for first_line, block in read_blocks(stream, block_bytes):
        if block is None:
            error = oversized_line(first_line)
            errors.append(error)
            yield error_line(error)
            continue
        table = decoder.decode(block) if decoder is not None else None
        if feature is not None and table is not None and table.size >= MIN_VECTORIZED_UNITS:
            yield outcome_encoder.encode(evaluate_columns(feature, table), table)
            continue
        units, block_errors = decode_units(block, first_line)
        errors.extend(block_errors)
        yield result_encoder.encode(payload.evaluate_many(key, units), block_errors)
