"""Exposures first on a backlog: which events partitions to pause while their exposures are read.

An event read before its unit's exposure is held, at most ``XP_STREAM_MAX_HELD_EVENTS`` of them; on a
backlog (a worker catching up, a first start on full topics) librdkafka may hand over the events long before
the exposures, and every event past the cap is released unattributed (decision 0107). Reading the
exposures first is the ideal order for the attribution rule (the first exposure is the earliest; an event
before it is not attributed either way). So while exposures partition *p* has more than ``max_lag`` records
left to read, events partition *p* (co-partitioned: the same units) is paused; it is resumed once the lag is
under ``max_lag``, when the lag is unknown (neither known locally nor ever given by the broker: a lag the
broker gave stands until the consumer knows the partition's, :meth:`ExposuresFirst.with_broker_lags`), or
after ``max_pause`` seconds whatever the lag says (a stalled fetch must not stop the events), after which
it is not paused again for another ``max_pause``. At a steady rate the lag stays under ``max_lag`` and
nothing pauses.

:class:`ExposuresFirst` only decides (pure, no Kafka); the runner measures the lags and calls
``pause``/``resume`` (librdkafka drops a paused partition's prefetched records and fetches again from the
position of the last record handed to the worker, so no record is skipped or read twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["ExposuresFirst", "Moves"]


@dataclass
class Moves:
    """What to do with the events partitions (by partition number)."""

    pause: set[int] = field(default_factory=set)
    resume: set[int] = field(default_factory=set)


class ExposuresFirst:
    """The pause state of the owned events partitions and the rule that moves it."""

    def __init__(self, *, max_lag: int, max_pause: float) -> None:
        self.max_lag = max_lag
        self.max_pause = max_pause
        self.paused: dict[int, float] = {}
        """Events partition → when it was paused."""
        self._free_until: dict[int, float] = {}
        """Events partition → until when it is not paused again (after ``max_pause`` ran out)."""
        self.pauses = 0
        """Partitions paused so far (the worker logs it)."""
        self.broker_lags: dict[int, int] = {}
        """Exposures partition → the lag the broker gave last (asked for partitions not known locally)."""

    def reset(self) -> None:
        """Forget every pause and lag (a new assignment: the runner resumes what it owns)."""
        self.paused.clear()
        self._free_until.clear()
        self.broker_lags.clear()

    def with_broker_lags(self, local: Mapping[int, int | None]) -> dict[int, int | None]:
        """The lags known locally, each unknown one filled with the broker's last answer for it: until the
        consumer has read from an exposures partition it knows no lag there, and treating that as unknown
        resumed a partition paused on the broker's word one batch later (the events of a backlog then
        came first after all)."""
        asked = self.broker_lags
        return {partition: asked.get(partition) if lag is None else lag for partition, lag in local.items()}

    def decide(self, exposure_lags: Mapping[int, int | None], events: Iterable[int], now: float) -> Moves:
        """The moves for the owned events partitions ``events``, given the lag of each exposures partition
        (records left to read; None or missing: not known, never a reason to pause)."""
        moves = Moves()
        for partition in events:
            lag = exposure_lags.get(partition)
            behind = lag is not None and lag > self.max_lag
            since = self.paused.get(partition)
            if since is not None:
                if not behind or now - since >= self.max_pause:
                    moves.resume.add(partition)
                    del self.paused[partition]
                    if behind:  # the pause ran out: not again for as long
                        self._free_until[partition] = now + self.max_pause
            elif behind and now >= self._free_until.get(partition, now):
                moves.pause.add(partition)
                self.paused[partition] = now
                self.pauses += 1
        return moves
