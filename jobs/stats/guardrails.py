"""Guardrail metrics: flag a variation that significantly harms a metric that must not get worse."""

from __future__ import annotations

from jobs.stats.results import EffectResult

__all__ = ["is_guardrail_harmed"]


def is_guardrail_harmed(result: EffectResult, *, higher_is_better: bool = True) -> bool:
    """True when the whole interval lies on the harmful side of 0.

    For a metric where higher is better (revenue) that is ``ci_high < 0``; where lower is better
    (latency, errors) it is ``ci_low > 0``. A result with an error code is never flagged here: the
    caller shows the error instead.
    """
    if result.error is not None or result.ci_low is None or result.ci_high is None:
        return False
    return result.ci_high < 0 if higher_is_better else result.ci_low > 0
