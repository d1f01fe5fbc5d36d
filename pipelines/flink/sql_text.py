"""Flink SQL text helpers: every value that reaches the job's SQL is one of these literals (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["double", "literal", "options_clause"]


def literal(value: str) -> str:
    """A Flink SQL string literal: single quotes doubled; control characters refused (no value of ours
    has one, and a newline in a literal is where an injection would start)."""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError(f"control character in a SQL literal: {value!r}")
    return "'" + value.replace("'", "''") + "'"


def double(value: float) -> str:
    """A DOUBLE literal (``1.0E15``), for a finite float."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return f"{float(value):.17E}"


def options_clause(options: Mapping[str, str]) -> str:
    return ",\n  ".join(f"{literal(key)} = {literal(value)}" for key, value in options.items())
