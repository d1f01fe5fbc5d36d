"""What one worker run did: :class:`StreamReport` (``xp stream run --format json`` prints it).

A runner counts each loaded and committed batch with :meth:`StreamReport.add_batch` and the time per
stage in :attr:`StreamReport.stage_seconds`; the same report for every runner.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.processor import BatchOutput

__all__ = ["StreamReport"]


@dataclass
class StreamReport:
    """What one worker run did (``xp stream run --format json`` prints it)."""

    consumed: int = 0
    exposures: int = 0
    events: int = 0
    attributed: int = 0
    dead_letters: int = 0
    """Rows loaded into xp.dead_letters: the stream's rejects and the collector's (read from its topic)."""
    dead_letter_topic_records: int = 0
    """Records read from the dead-letter topic (not in ``consumed``)."""
    duplicates: int = 0
    batches: int = 0
    insert_retries: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    restored: dict[str, int] = field(default_factory=dict)
    verdicts: Counter[str] = field(default_factory=Counter)
    """The Flink runner only: the job's validation verdicts checked against the kernel's (``agree``,
    ``disagree``, ``undecided``, ``unconfirmed``: not dead-lettered now, e.g. already before a restart)."""
    attributions: Counter[str] = field(default_factory=Counter)
    """The Flink runner only: the job's attribution rows checked against the kernel's (``agree``,
    ``disagree``, and at the end ``job_only`` / ``kernel_only``: rows without their match yet)."""
    held_released_early: int = 0
    """Held events released unattributed before ``XP_STREAM_HOLD_SECONDS`` because
    ``XP_STREAM_MAX_HELD_EVENTS`` were held (the worker's total since it started): an exposure read later
    can no longer attribute them. Above 0 on a backlog, the events were read ahead of their units'
    exposures (docs/pipeline.md)."""
    exposures_first_pauses: int = 0
    """The Kafka runner only: events partitions paused while their exposures lagged (decision 0107)."""
    seconds: float = 0.0
    active_seconds: float = 0.0
    """From the moment the first non-empty batch was in hand to the last commit, or to the garbage collection
    right after it (throughput = consumed / this; the wait for the group join and the first fetch is not
    counted, as in the raw-consumer baseline)."""
    stage_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Time per stage over non-empty batches: consume, process (kernel), load (inserts), load_wait (the part
    of the inserts the worker waited for: all of it unless XP_STREAM_OVERLAP_LOAD), commit, gc (garbage
    collections between batches, :mod:`pipelines.gc_pacing`)."""

    def add_batch(self, output: BatchOutput, *, held_released_early: int | None = None) -> None:
        """Count a batch that is loaded and committed; ``held_released_early``: the kernel's count so far."""
        if held_released_early is not None:
            self.held_released_early = held_released_early
        self.batches += 1
        self.consumed += output.consumed
        self.dead_letter_topic_records += output.dead_letter_topic_records
        self.exposures += output.exposures.num_rows
        self.events += output.events.num_rows
        self.attributed += output.attributed.num_rows
        self.dead_letters += len(output.dead_letters)
        self.duplicates += output.duplicates
        self.reasons.update(output.reasons)

    def as_dict(self) -> dict[str, Any]:
        stages = {k: round(v, 3) for k, v in self.stage_seconds.items()}
        return {
            **self.__dict__,
            "reasons": dict(self.reasons),
            "verdicts": dict(self.verdicts),
            "attributions": dict(self.attributions),
            "stage_seconds": stages,
        }
