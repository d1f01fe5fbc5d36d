"""Freshness, volume and dead-letter rate: the table checks that need history or arithmetic. Pure.

GX suites judge the rows of one window; these rules judge the window against time and against the
windows before it (docs/decisions/0008-quality-checks-split.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from quality.outcomes import CheckOutcome, Severity

__all__ = ["dead_letter_outcome", "freshness_outcome", "volume_outcome"]


def _age_text(age: timedelta) -> str:
    minutes = age.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


def freshness_outcome(
    table: str,
    newest: datetime | None,
    *,
    now: datetime,
    max_age: timedelta,
    severity: Severity = "error",
    data_since: datetime | None = None,
    filled_by: str | None = None,
) -> CheckOutcome:
    """Fails when the newest row of ``table`` was loaded more than ``max_age`` before ``now`` (or never).

    A table derived by a batch job (``filled_by``: the command that fills it) cannot be late before the
    data it is built from has been there ``max_age``: while the first stream row (``data_since``) is
    younger than that, or there is none, an empty derived table passes, not judged yet (a fresh stack
    does not alert before its first ETL or stats run was due)."""
    threshold = {"max_age_seconds": max_age.total_seconds()}
    if newest is None and filled_by is not None and (data_since is None or now - data_since <= max_age):
        since = (
            "no data has arrived yet" if data_since is None else f"data since {data_since:%Y-%m-%d %H:%M} UTC"
        )
        detail = (
            f"{table} is empty and not due yet ({since}, limit {_age_text(max_age)}; filled by {filled_by})"
        )
        return CheckOutcome("freshness", True, None, threshold, detail, table=table, severity=severity)
    if newest is None:
        return CheckOutcome(
            "freshness", False, None, threshold, f"{table} has no rows at all", table=table, severity=severity
        )
    age = max(now - newest, timedelta(0))
    ok = age <= max_age
    verdict = "within" if ok else "older than"
    detail = (
        f"newest row of {table} loaded {_age_text(age)} ago ({newest:%Y-%m-%d %H:%M:%S} UTC), "
        f"{verdict} the {_age_text(max_age)} limit"
    )
    observed = {"age_seconds": round(age.total_seconds(), 3), "newest": newest.isoformat()}
    return CheckOutcome("freshness", ok, observed, threshold, detail, table=table, severity=severity)


def volume_outcome(
    table: str,
    current: int,
    trailing: Sequence[int],
    *,
    drop_ratio: float,
    spike_ratio: float,
    min_history: int,
) -> CheckOutcome:
    """Rows in the window against the average of the non-empty earlier windows of the same length.

    Fails below ``drop_ratio`` × average (a drop) or above ``spike_ratio`` × average (a spike); passes
    without judging while fewer than ``min_history`` earlier windows hold rows (a new deployment).
    """
    history = [n for n in trailing if n > 0]
    threshold = {"drop_ratio": drop_ratio, "spike_ratio": spike_ratio, "min_history": min_history}
    if len(history) < min_history:
        detail = (
            f"{current} rows in the window; only {len(history)} of {len(trailing)} earlier windows hold "
            f"rows (need {min_history}): not judged yet"
        )
        observed: dict[str, float | None] = {"rows": current, "trailing_average": None, "ratio": None}
        return CheckOutcome("volume", True, observed, threshold, detail, table=table)
    average = sum(history) / len(history)
    ratio = current / average
    observed = {"rows": current, "trailing_average": round(average, 3), "ratio": round(ratio, 4)}
    if ratio < drop_ratio:
        detail = (
            f"volume drop: {current} rows vs a trailing average of {average:.0f} "
            f"({ratio:.0%}, below {drop_ratio:.0%})"
        )
        return CheckOutcome("volume", False, observed, threshold, detail, table=table)
    if ratio > spike_ratio:
        detail = (
            f"volume spike: {current} rows vs a trailing average of {average:.0f} "
            f"({ratio:.1f}×, above {spike_ratio:.1f}×)"
        )
        return CheckOutcome("volume", False, observed, threshold, detail, table=table)
    detail = f"{current} rows vs a trailing average of {average:.0f} ({ratio:.0%})"
    return CheckOutcome("volume", True, observed, threshold, detail, table=table)


def dead_letter_outcome(dead_letters: int, valid: int, *, max_rate: float) -> CheckOutcome:
    """Dead letters as a share of every record received in the window (dead + valid)."""
    total = dead_letters + valid
    rate = dead_letters / total if total else 0.0
    ok = rate <= max_rate
    observed = {"rate": round(rate, 6), "dead_letters": dead_letters, "records": total}
    verdict = "within" if ok else "above"
    detail = (
        f"{dead_letters} of {total} records dead-lettered ({rate:.2%}), {verdict} the {max_rate:.2%} limit"
    )
    return CheckOutcome(
        "dead_letter_rate", ok, observed, {"max_rate": max_rate}, detail, table="dead_letters"
    )
