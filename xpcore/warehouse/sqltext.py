"""Pure helpers on ClickHouse SQL text, shared by both adapters (no database needed).

- statements: :func:`split_statements`, :func:`leading_keyword`, :func:`read_only_refusal`
- parameters: :func:`render_parameter` (a Python value as ClickHouse parameter text),
  :func:`wire_parameter` (the text the engine receives), :func:`placeholders`
- identifiers: :func:`quote_identifier`, :func:`qualified_table`, :func:`string_literal`
- errors: :func:`error_code`, :func:`one_line_error`, :data:`TRANSIENT_ERROR_CODES`
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from xpcore.errors import TerminalError

__all__ = [
    "READ_ONLY_KEYWORDS",
    "TRANSIENT_ERROR_CODES",
    "error_code",
    "escape_parameter",
    "leading_keyword",
    "one_line_error",
    "placeholders",
    "qualified_table",
    "quote_identifier",
    "read_only_refusal",
    "render_parameter",
    "render_parameters",
    "split_statements",
    "string_literal",
    "wire_parameter",
]

READ_ONLY_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"})
"""Statements `xp sql` runs without ``--write`` (the same set as :mod:`xpcore.warehouse.sqlguard`)."""

TRANSIENT_ERROR_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        160,  # TOO_SLOW
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        999,  # KEEPER_EXCEPTION
    }
)
"""ClickHouse error codes worth retrying; every other server error is terminal."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):((?:[^{}'\n]|'[^'\n]*')+)\}")


# ---------------------------------------------------------------------------------------------- statements


def _scan(sql: str) -> Iterator[tuple[str, str]]:
    """Yield ``(kind, text)`` pieces: ``code``, ``quoted`` (strings, quoted names), ``placeholder``
    (``{name:Type}``, whose type may hold quotes), ``comment``, ``;``."""
    i, n = 0, len(sql)
    start = 0
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            if i > start:
                yield "code", sql[start:i]
            j = i + 1
            while j < n:
                if sql[j] == "\\":
                    j += 2
                    continue
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # doubled quote inside
                        j += 2
                        continue
                    break
                j += 1
            yield "quoted", sql[i : j + 1]
            i = start = j + 1
        elif sql.startswith("--", i):
            if i > start:
                yield "code", sql[start:i]
            j = sql.find("\n", i)
            j = n if j == -1 else j
            yield "comment", sql[i:j]
            i = start = j
        elif sql.startswith("/*", i):
            if i > start:
                yield "code", sql[start:i]
            j = sql.find("*/", i + 2)
            j = n if j == -1 else j + 2
            yield "comment", sql[i:j]
            i = start = j
        elif ch == "{" and (placeholder := _PLACEHOLDER.match(sql, i)):
            if i > start:
                yield "code", sql[start:i]
            yield "placeholder", placeholder.group(0)
            i = start = placeholder.end()
        elif ch == ";":
            if i > start:
                yield "code", sql[start:i]
            yield ";", ";"
            i = start = i + 1
        else:
            i += 1
    if start < n:
        yield "code", sql[start:]


def split_statements(sql: str) -> list[str]:
    """Split text into statements at ``;`` outside strings, quoted names and comments.

    Pieces holding only whitespace and comments are dropped; each statement keeps its own comments
    and loses the terminating ``;``.
    """
    statements: list[str] = []
    current: list[str] = []
    has_code = False

    def flush() -> None:
        if has_code:
            statements.append("".join(current).strip())

    for kind, text in _scan(sql):
        if kind == ";":
            flush()
            current, has_code = [], False
            continue
        current.append(text)
        if kind in ("quoted", "placeholder") or (kind == "code" and text.strip()):
            has_code = True
    flush()
    return statements


def leading_keyword(statement: str) -> str:
    """The first keyword of a statement, upper-cased, skipping comments and opening parentheses."""
    for kind, text in _scan(statement):
        if kind == "comment":
            continue
        if kind != "code":
            return ""
        match = re.match(r"[\s(]*([A-Za-z]+)", text)
        if match:
            return match.group(1).upper()
        if text.strip(" \t\r\n("):
            return ""
    return ""


def read_only_refusal(sql: str, *, allow_external: bool = False) -> str | None:
    """Why ``sql`` may not run on a read-only path, or ``None`` when it only reads.

    The guard itself lives in :func:`xpcore.warehouse.sqlguard.read_only_refusal` (kept here for the
    callers that import it from this module).
    """
    from xpcore.warehouse.sqlguard import read_only_refusal as guard

    return guard(sql, allow_external=allow_external)


# ---------------------------------------------------------------------------------------------- parameters


def placeholders(sql: str) -> dict[str, str]:
    """``{name:Type}`` placeholders of ``sql`` outside strings and comments: name → type."""
    found: dict[str, str] = {}
    for kind, text in _scan(sql):
        if kind == "placeholder":
            match = _PLACEHOLDER.fullmatch(text)
            if match:
                found.setdefault(match.group(1), match.group(2).strip())
    return found


def _utc_text(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _literal(value: Any) -> str:
    """A value inside a container parameter (array, tuple, map) as a ClickHouse literal."""
    if value is None:
        return "NULL"
    if isinstance(value, str | dt.date | uuid.UUID) and not isinstance(value, bool):
        return string_literal(render_parameter(value))
    return render_parameter(value)


def render_parameter(value: Any) -> str:
    """A Python value as the text ClickHouse parses for a ``{name:Type}`` parameter (before escaping).

    Datetimes are written in UTC with microseconds (naive ones are taken as UTC); containers become
    ClickHouse literals (``['a', 'b']``, ``(1, 'x')``, ``{'k': 1}``). ``None`` is rendered by the adapters.
    """
    if value is None:
        raise TerminalError("a NULL parameter has no text form; pass it through the adapter")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime):
        return _utc_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        items = ", ".join(_literal(v) for v in value)
        return f"({items}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) else f"[{items}]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    raise TerminalError(f"cannot bind a parameter of type {type(value).__name__}")


_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "'": "\\'", "`": "\\`"}


def escape_parameter(text: str) -> str:
    """Escape parameter text the way ClickHouse reads it (backslash escapes, as over HTTP)."""
    return "".join(_ESCAPES.get(ch, ch) for ch in text)


def wire_parameter(value: Any) -> str:
    """The exact text the engine receives for one parameter (chDB and ClickHouse's HTTP ``param_*`` alike).

    ``NULL`` is ``\\N``; scalars are escaped text; containers are literals, sent as they are (ClickHouse
    parses container parameters as literals, where escaping the quotes would break them).
    """
    if value is None:
        return "\\N"
    text = render_parameter(value)
    if isinstance(value, list | tuple | set | frozenset | Mapping):
        return text
    return escape_parameter(text)


def render_parameters(sql: str, parameters: Mapping[str, Any] | None) -> dict[str, str]:
    """Check ``parameters`` against the placeholders of ``sql``; each as :func:`wire_parameter` text."""
    if not parameters:
        return {}
    wanted = placeholders(sql)
    unknown = sorted(set(parameters) - set(wanted))
    if unknown:
        raise TerminalError(
            f"parameters without a {{name:Type}} placeholder in the SQL: {', '.join(unknown)}"
        )
    return {name: wire_parameter(value) for name, value in parameters.items()}


# ---------------------------------------------------------------------------------------------- identifiers


def quote_identifier(name: str) -> str:
    """A column or table name in backquotes (backquotes and backslashes escaped)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def qualified_table(table: str) -> tuple[str, str]:
    """Split ``db.name`` into ``(db, name)``; both must be plain identifiers."""
    parts = table.split(".")
    if len(parts) != 2 or not all(_IDENTIFIER.match(p) for p in parts):
        raise TerminalError(f"table must be written database.name with plain identifiers, got {table!r}")
    return parts[0], parts[1]


def string_literal(text: str) -> str:
    """``text`` as a single-quoted ClickHouse string literal (escapes as clickhouse-connect writes them)."""
    return "'" + escape_parameter(text) + "'"


# ---------------------------------------------------------------------------------------------- errors

_CODE = re.compile(r"\bcode:?\s*(\d+)", re.IGNORECASE)
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]{2,})\)")
_NOISE = (
    re.compile(r"\s*\(version [^)]*\)"),
    re.compile(r"\s*\(for url [^)]*\)"),
    re.compile(r"^.*?server response:\s*", re.DOTALL),
    re.compile(r"^.*?DB::Exception:\s*", re.DOTALL),
)


def error_code(message: str) -> int | None:
    """The ClickHouse error code in an error message, if any."""
    match = _CODE.search(message)
    return int(match.group(1)) if match else None


def one_line_error(message: str, *, limit: int = 300) -> str:
    """A ClickHouse error as one short line: ``ClickHouse error 62 SYNTAX_ERROR: <message>``."""
    text = message.split("Stack trace", 1)[0]
    code = error_code(text)
    names = _NAME.findall(text)
    for pattern in _NOISE:
        text = pattern.sub("", text, count=1)
    text = " ".join(text.split())
    if names:
        text = re.sub(rf"\s*\({names[-1]}\)\s*\.?$", "", text)
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    prefix = (
        "ClickHouse error" + (f" {code}" if code is not None else "") + (f" {names[-1]}" if names else "")
    )
    return f"{prefix}: {text}" if text else prefix
