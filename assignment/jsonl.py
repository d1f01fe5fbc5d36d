"""Units in, results out, as JSON Lines at I/O speed (`xp assign eval --attributes-file`).

- :func:`read_blocks` cuts a binary stream into blocks of whole lines;
- :func:`decode_units` decodes a block with msgspec in one call. A block that does not decode as a
  whole (or holds a line that is not an object) is redone line by line, so that each bad line gets
  its own :class:`LineError` (file line number, reason) and every good line still becomes a unit.
  A line msgspec rejects is retried with the standard library (``NaN``, ``1E400``), so each unit is
  exactly what ``json.loads`` reads;
- :class:`ResultEncoder` writes each :class:`~assignment.results.FeatureResult` as the line
  ``json.dumps(result.to_dict(), ensure_ascii=False, default=str)`` would, byte for byte, from
  cached pieces: results shared between units (defaults, forced values) are encoded once, and an
  experiment result is its variation's cached prefix and suffix around the unit's hash value and
  bucket.

Decision 0078: a bad line is reported in place (``{"line": N, "error": …}``) and the others are
still evaluated.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import IO, Any, NamedTuple

import msgspec

from assignment.results import FeatureResult

__all__ = [
    "BLOCK_BYTES",
    "MAX_LINE_BYTES",
    "LineError",
    "ResultEncoder",
    "decode_units",
    "dumps",
    "error_line",
    "oversized_line",
    "read_blocks",
    "result_template",
]

BLOCK_BYTES = 1 << 20
"""Bytes read per block: tens of thousands of units, memory bounded whatever the file size."""

MAX_LINE_BYTES = 1 << 20
"""A longer line is not a unit (decision 0098): it is reported without being held whole."""

TOO_LONG = f"line longer than {MAX_LINE_BYTES} bytes"

_decoder = msgspec.json.Decoder()
_encode_str = msgspec.json.Encoder().encode  # identical to json.dumps(ensure_ascii=False) for str
_SHARED_MAX = 4_096
"""Distinct shared results encoded once each (a payload has a handful per feature)."""


class LineError(NamedTuple):
    """A line that is not a unit: its position among the units, its file line number, why."""

    before: int
    """How many units of the block precede it (where its error object goes in the output)."""
    line: int
    reason: str


def read_blocks(
    stream: IO[bytes], size: int = BLOCK_BYTES, max_line: int = MAX_LINE_BYTES
) -> Iterator[tuple[int, bytes | None]]:
    """``(first line number, block)`` for blocks of whole lines (the last may lack its newline);
    ``(line number, None)`` for a line longer than ``max_line`` bytes that did not fit in a block,
    which is skipped without being held whole (shorter overlong lines stay in their block and
    are found by :func:`decode_units`)."""
    line = 1
    rest = b""
    skipping = False
    while True:
        chunk = stream.read(size)
        if not chunk:
            break
        if skipping:  # the rest of an oversized line, already reported
            end = chunk.find(b"\n")
            if end < 0:
                continue
            skipping = False
            line += 1
            chunk = chunk[end + 1 :]
        data = rest + chunk if rest else chunk
        cut = data.rfind(b"\n") + 1
        block, rest = data[:cut], data[cut:]
        if block:
            yield line, block
            line += block.count(b"\n")
        if len(rest) > max_line:
            yield line, None
            rest = b""
            skipping = True
    if rest:
        yield line, rest


def oversized_line(line: int) -> LineError:
    """The error of line ``line``, longer than :data:`MAX_LINE_BYTES` (first in its block)."""
    return LineError(0, line, TOO_LONG)


def decode_units(block: bytes, first_line: int) -> tuple[list[dict[str, Any]], list[LineError]]:
    """The units of ``block`` (one JSON object per non-blank line) and its bad lines, in order."""
    if not may_hold_long_line(block):
        try:
            units = _decoder.decode_lines(block)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            pass
        else:
            if all(type(unit) is dict for unit in units) and len(units) == lines_in(block):
                return units, []
    return _decode_line_by_line(block, first_line)


def _decode_line_by_line(block: bytes, first_line: int) -> tuple[list[dict[str, Any]], list[LineError]]:
    units: list[dict[str, Any]] = []
    errors: list[LineError] = []
    for number, raw in enumerate(block.split(b"\n"), start=first_line):
        try:
            unit = _decode_line(raw)
        except ValueError as error:
            errors.append(LineError(len(units), number, str(error)))
            continue
        if unit is not None:
            units.append(unit)
    return units, errors


def _decode_line(raw: bytes) -> dict[str, Any] | None:
    """One line's unit, None for a blank line; ValueError with the reason for a bad one."""
    if len(raw) > MAX_LINE_BYTES:
        raise ValueError(TOO_LONG)
    try:
        unit = _decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8 text") from None
        if not text.strip():
            return None
        try:
            unit = json.loads(text)  # what msgspec refuses but Python reads: NaN, Infinity, 1E400, "\ud800"
        except json.JSONDecodeError as error:
            raise ValueError(f"invalid JSON: {error.msg}") from None
        except RecursionError:
            raise ValueError("invalid JSON: nested too deeply") from None
        except ValueError:  # an integer beyond Python's digit limit (sys.get_int_max_str_digits)
            raise ValueError("invalid JSON: a number has too many digits") from None
        try:
            json.dumps(unit, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("invalid JSON: a string holds a lone UTF-16 surrogate") from None
    if not isinstance(unit, dict):
        raise ValueError("each line must be a JSON object")
    return unit


def may_hold_long_line(block: bytes, max_line: int = MAX_LINE_BYTES) -> bool:
    """Whether a line of ``block`` may be longer than ``max_line`` bytes: some aligned window of
    ``max_line // 2`` bytes holds no newline (a longer line covers a whole window). A few
    ``find`` calls per block; a yes sends the block line by line, where lengths are exact."""
    if len(block) <= max_line:
        return False
    window = max_line // 2
    starts = range(0, len(block) - window + 1, window)
    return any(block.find(b"\n", start, start + window) < 0 for start in starts)


def lines_in(block: bytes) -> int:
    """How many lines ``block`` holds (the last may lack its newline)."""
    return block.count(b"\n") + (0 if block.endswith(b"\n") else 1)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def error_line(error: LineError) -> bytes:
    """The output line standing for a bad input line."""
    return (dumps({"line": error.line, "error": error.reason}) + "\n").encode("utf-8")


class ResultEncoder:
    """Encodes results as JSON lines, identical to ``json.dumps(result.to_dict(), …)`` per result."""

    def __init__(self) -> None:
        self._shared: dict[int, tuple[FeatureResult, bytes]] = {}
        self._variations: dict[tuple[Any, ...], tuple[Any, bytes]] = {}

    def encode(self, results: Sequence[FeatureResult], errors: Sequence[LineError] = ()) -> bytes:
        """The lines for ``results`` in order, each error's line at its place."""
        if not errors:
            return b"".join(self._lines(results))
        pieces: list[bytes] = []
        start = 0
        for error in errors:
            pieces.extend(self._lines(results[start : error.before]))
            pieces.append(error_line(error))
            start = error.before
        pieces.extend(self._lines(results[start:]))
        return b"".join(pieces)

    def _lines(self, results: Sequence[FeatureResult]) -> list[bytes]:
        shared = self._shared
        variations = self._variations
        lines: list[bytes] = []
        append = lines.append
        for result in results:
            entry = shared.get(id(result))
            if entry is not None and entry[0] is result:
                append(entry[1])
            elif result[1] == "experiment":
                key = (id(result[0]), result[1:8], result[10:])
                template = variations.get(key)
                if template is None or template[0] is not result[0]:
                    template = variations[key] = (result[0], result_template(result, b"%b"))
                hash_value = result[8]
                bucket = result[9]
                append(
                    template[1]
                    % (
                        _encode_str(hash_value) if type(hash_value) is str else dumps(hash_value).encode(),
                        repr(bucket).encode() if type(bucket) is float else dumps(bucket).encode(),
                    )
                )
            else:
                line = (dumps(result.to_dict()) + "\n").encode("utf-8")
                if len(shared) < _SHARED_MAX:
                    shared[id(result)] = (result, line)
                append(line)
        return lines


def result_template(result: FeatureResult, bucket: bytes) -> bytes:
    """The line of an experiment result as a ``%b`` format of its hash value (encoded) followed
    by ``bucket`` (``%b``, or ``%a`` for a float), cut from ``json.dumps`` of its dict."""
    marker_hash = "\x00xp-hash\x00"
    marker_bucket = "\x00xp-bucket\x00"
    data = result.to_dict()
    data["hash_value"], data["bucket"] = marker_hash, marker_bucket
    text = dumps(data) + "\n"
    head, after = text.split(dumps(marker_hash))
    middle, tail = after.split(dumps(marker_bucket))
    head_bytes, middle_bytes, tail_bytes = (
        part.encode("utf-8").replace(b"%", b"%%") for part in (head, middle, tail)
    )
    return head_bytes + b"%b" + middle_bytes + bucket + tail_bytes
