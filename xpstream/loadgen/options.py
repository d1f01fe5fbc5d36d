"""What `xp loadgen` simulates (:class:`LoadgenOptions`) and what it counts (:class:`LoadgenCounts`).

The counts are the contract of docs/loadgen.md: after `xp stream run` drains the topics, the tables
reproduce them exactly. The simulation itself is :mod:`xpstream.loadgen.simulate`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from schemas.codec import DEFAULT_MAX_RECORD_BYTES
from xpcore.errors import ValidationError

__all__ = ["MAX_HISTORY_DAYS", "LoadgenCounts", "LoadgenOptions"]

MAX_HISTORY_DAYS: Final = 6.0
"""Pre-exposure history stays within the stream's default lateness bound (7 days)."""


@dataclass(frozen=True)
class LoadgenOptions:
    """What to simulate (the ``xp loadgen`` options)."""

    now: datetime
    """End of the event-time window (aware); records' times are in [now - window, now]."""
    users: int = 1000
    events: int | None = None
    """Metric events before SRM drops (default ``EVENTS_PER_USER × users``)."""
    lift: float = 0.0
    srm_skew: float = 0.0
    invalid_fraction: float = 0.0
    """Share of all records sent (valid + invalid) that are invalid."""
    duplicate_fraction: float = 0.0
    """Re-sent copies per valid record."""
    late_fraction: float = 0.0
    """Share of metric events sent after records with later event times."""
    seed: int = 0
    window_seconds: float = 120.0
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    history_days: float = 0.0
    """Pre-exposure activity: each unit's events over this many days before its arrival (0: none)."""
    catalog_events: tuple[str, ...] = ()
    """Event names the experiments' metric catalog counts besides pageview and purchase (``refund``
    refunds purchases; any other name is an engagement event like pageviews)."""
    funnel: tuple[str, ...] = ()
    """Ordered funnel steps (event names) every unit walks after its first exposure, on top of the
    ``events`` budget: it reaches the first with probability ``FUNNEL_FIRST_STEP`` and each next one,
    later in time, with ``FUNNEL_NEXT_STEP`` given the previous (``xpstream.loadgen.simulate``)."""
    funnel_lift: tuple[str, float] | None = None
    """(step, F): in non-control variations the probability of reaching ``step`` from the previous one
    is multiplied by 1+F, so its conversion and every later step's overall conversion lift by F."""

    def check(self) -> None:
        """ValidationError naming the first option out of range."""
        if self.users < 0:
            raise ValidationError("--users must be ≥ 0")
        if self.events is not None and self.events < 0:
            raise ValidationError("--events must be ≥ 0")
        if self.events and self.users == 0:
            raise ValidationError("--events needs --users ≥ 1 (metric events belong to simulated users)")
        if self.lift <= -1:
            raise ValidationError("--lift must be > -1")
        for name, value in (
            ("--srm-skew", self.srm_skew),
            ("--duplicate-fraction", self.duplicate_fraction),
            ("--late-fraction", self.late_fraction),
        ):
            if not 0 <= value <= 1:
                raise ValidationError(f"{name} must be within 0..1")
        if not 0 <= self.invalid_fraction < 1:
            raise ValidationError("--invalid-fraction must be within 0..1 (1 excluded)")
        if self.window_seconds < 1:
            raise ValidationError("--window must be ≥ 1 second")
        if not 0 <= self.history_days <= MAX_HISTORY_DAYS:
            raise ValidationError(
                f"--history-days must be within 0..{MAX_HISTORY_DAYS:g} "
                "(the stream's lateness bound is 7 days)"
            )
        if len(set(self.funnel)) != len(self.funnel) or not all(
            0 < len(step) <= 64 and step.isprintable() for step in self.funnel
        ):
            raise ValidationError("--funnel steps must be distinct, printable event names (1..64 characters)")
        if self.funnel_lift is not None:
            step, lift = self.funnel_lift
            if step not in self.funnel:
                raise ValidationError(f"--funnel-lift names {step[:64]!r}, which is not a --funnel step")
            if not (math.isfinite(lift) and lift > -1):
                raise ValidationError("--funnel-lift must be a number > -1")
        if self.now.utcoffset() is None:
            raise ValidationError("`now` must be timezone-aware")


@dataclass
class LoadgenCounts:
    """What was generated; ``xp.exposures``/``xp.events``/``xp.dead_letters`` must reproduce these."""

    exposures: int = 0
    events: int = 0
    invalid: int = 0
    duplicates: int = 0
    late: int = 0
    users: int = 0
    exposed_units: int = 0
    srm_dropped_units: int = 0
    pageviews: int = 0
    purchases: int = 0
    history_events: int = 0
    by_event_name: dict[str, int] = field(default_factory=dict)
    per_experiment: dict[str, dict[str, int]] = field(default_factory=dict)
    invalid_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def records(self) -> int:
        """Everything sent: valid + invalid + duplicates."""
        return self.exposures + self.events + self.invalid + self.duplicates

    def to_dict(self) -> dict[str, Any]:
        return {
            "exposures": self.exposures,
            "events": self.events,
            "invalid": self.invalid,
            "duplicates": self.duplicates,
            "late": self.late,
            "users": self.users,
            "exposed_units": self.exposed_units,
            "srm_dropped_units": self.srm_dropped_units,
            "pageviews": self.pageviews,
            "purchases": self.purchases,
            "history_events": self.history_events,
            "by_event_name": dict(sorted(self.by_event_name.items())),
            "records": self.records,
            "per_experiment": {k: dict(sorted(v.items())) for k, v in sorted(self.per_experiment.items())},
            "invalid_by_kind": dict(sorted(self.invalid_by_kind.items())),
        }
