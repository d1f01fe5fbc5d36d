"""Which jobs are due now (pure; the runner supplies the clock and reports finished runs).

Rules:

- a job is due when ``now`` reaches its next fire time;
- one run at a time per job: when a job is due while its previous run still goes, this fire time is
  skipped (returned as a ``skip`` dispatch, to be logged) and the next one is planned;
- missed fire times are not replayed: after a due time the next one is computed from ``now``, so a
  loop that woke late (or a process that was down) runs a job once, not once per missed time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from xpstream.scheduler.cron import JobSchedule, next_fire

__all__ = ["Dispatch", "SchedulePlan"]


@dataclass(frozen=True)
class Dispatch:
    """A decision for one job at one fire time."""

    job: str
    scheduled_for: datetime
    action: Literal["run", "skip"]


class SchedulePlan:
    """Next fire time per job, and which jobs are running."""

    def __init__(self, schedules: Iterable[JobSchedule], now: datetime) -> None:
        self.schedules = {s.job: s for s in schedules}
        self.next_at = {job: next_fire(s.expression, now) for job, s in self.schedules.items()}
        self.running: set[str] = set()

    def due(self, now: datetime) -> list[Dispatch]:
        """Dispatches for every job due at ``now``; each due job gets its next fire time planned."""
        dispatches = []
        for job, at in sorted(self.next_at.items(), key=lambda item: (item[1], item[0])):
            if at > now:
                continue
            action: Literal["run", "skip"] = "skip" if job in self.running else "run"
            if action == "run":
                self.running.add(job)
            dispatches.append(Dispatch(job, at, action))
            self.next_at[job] = next_fire(self.schedules[job].expression, max(now, at))
        return dispatches

    def finished(self, job: str) -> None:
        """The run of ``job`` is over (whatever its outcome)."""
        self.running.discard(job)

    def seconds_until_next(self, now: datetime) -> float | None:
        """Seconds until the earliest fire time (0 when one is due), ``None`` without schedules."""
        if not self.next_at:
            return None
        return max(0.0, (min(self.next_at.values()) - now).total_seconds())
