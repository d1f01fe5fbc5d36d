"""One batch through the kernel: raw Kafka records in, Arrow tables and dead letters out (no I/O).

:class:`StreamProcessor` holds the worker state (dedup ids, attribution) and the registry view;
:meth:`StreamProcessor.process` runs validate → deduplicate → enrich → attribute over a batch that may
mix exposures and events of several partitions and returns a :class:`BatchOutput` with one Arrow table
per warehouse table and a deterministic insert-deduplication token per table (from the batch's
topic/partition/offset ranges). The worker loads it, then calls :meth:`StreamProcessor.remember_ids`.
"""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from pipelines.attributed_tables import (
    ATTRIBUTED_EVENTS_SCHEMA,
    attributions_of_arrays,
    attributions_of_events,
    attributions_of_held,
    attributions_table,
)
from pipelines.attribution import (
    AttributionState,
    HeldArrays,
)
from pipelines.batch_topics import of_topic as _of_topic
from pipelines.batch_topics import offset_ranges as _offset_ranges
from pipelines.batch_topics import topic_codes as _topic_codes
from pipelines.field_lists import FieldLists
from pipelines.kernel import (
    SeenIds,
    Validated,
    ValidationRules,
    enrich_exposures,
    validate_events,
    validate_exposures,
)
from pipelines.raw_batch import RawBatch, RawRecord
from schemas import (
    DEFAULT_MAX_ABS_METRIC_VALUE,
    DeadLetter,
    Exposure,
    MetricEvent,
    RecordCodec,
    RecordKind,
    make_dead_letter,
)
from schemas.arrow import TIMESTAMP, to_arrow
from xpcore.errors import XpError

if TYPE_CHECKING:
    from pipelines.kernel import OverrideLookup

__all__ = [
    "ATTRIBUTED_EVENTS_SCHEMA",
    "BatchOutput",
    "RegistryView",
    "StreamProcessor",
    "attributions_table",
    "dedup_token",
]

logger = logging.getLogger(__name__)


def dedup_token(table: str, ranges: Mapping[tuple[str, int], tuple[int, int]]) -> str:
    """Deterministic insert-deduplication token of a batch: table + every partition's offset range."""
    parts = ",".join(
        f"{topic}/{partition}/{first}-{last}" for (topic, partition), (first, last) in sorted(ranges.items())
    )
    return f"{table}|{parts}"


@dataclass(frozen=True)
class RegistryView:
    """What the kernel needs from the registry (built from a ``RegistrySnapshot`` or a file)."""

    known_variations: Mapping[str, frozenset[int]] | None
    """None: no registry available, experiments are not checked."""
    variation_names: Mapping[tuple[str, int], str] = field(default_factory=dict)
    override_for: OverrideLookup | None = None
    attribution_windows: Mapping[tuple[str, str], timedelta | None] = field(default_factory=dict)
    """(experiment_key, event_name) → the longest window of the experiment's metrics on that event."""
    event_names: frozenset[str] | None = None
    """Event names of the metric catalog for this registry; None: not known here."""

    @classmethod
    def from_snapshot(cls, snapshot: Any) -> RegistryView:
        """From an ``assignment.registry.RegistrySnapshot`` (variations, overrides, metric windows)."""
        from assignment.metrics_catalog import known_event_names, metrics_for

        experiments = snapshot.experiments
        known = {key: frozenset(v.id for v in spec.variations) for key, spec in experiments.items()}
        names = {(key, v.id): (v.name or v.key) for key, spec in experiments.items() for v in spec.variations}
        windows: dict[tuple[str, str], timedelta | None] = {}
        for key, spec in experiments.items():
            try:
                metrics = metrics_for(spec)
            except XpError as error:  # invalid metric definitions: default window for this experiment
                logger.warning("metrics of experiment %s unusable (%s); default window", key, error)
                continue
            for metric in metrics:
                if not metric.event_name:
                    continue
                window = None if metric.window_hours is None else timedelta(hours=metric.window_hours)
                slot = (key, metric.event_name)
                if slot not in windows:
                    windows[slot] = window
                else:
                    current = windows[slot]
                    windows[slot] = None if current is None or window is None else max(current, window)
        return cls(known, names, snapshot.override_for, windows, known_event_names(snapshot))


@dataclass
class BatchOutput:
    """What one batch produced, ready to load; ``tokens`` per table, ``offsets`` to commit after."""

    exposures: pa.Table
    events: pa.Table
    attributed: pa.Table
    dead_letters: list[DeadLetter]
    tokens: dict[str, str]
    offsets: dict[tuple[str, int], int]
    """(topic, partition) → next offset to consume (last + 1)."""
    exposure_ids: list[str]
    event_ids: list[str]
    consumed: int
    """Records of the exposures and events topics in the batch."""
    duplicates: int
    duplicates_by_topic: dict[str, int]
    reasons: Counter[str]
    now: datetime
    dead_letter_topic_records: int = 0
    """Records read from the dead-letter topic (the collector's are loaded, the worker's own skipped)."""


class StreamProcessor:
    """The kernel with its state: validate → deduplicate → enrich → attribute, one batch at a time."""

    def __init__(
        self,
        *,
        exposures_topic: str,
        events_topic: str,
        rules: ValidationRules,
        registry: RegistryView,
        attribution: AttributionState,
        dedup_retention: timedelta,
        dedup_max_ids: int,
        max_record_bytes: int,
        max_abs_metric_value: float = DEFAULT_MAX_ABS_METRIC_VALUE,
        dead_letters_topic: str | None = None,
    ) -> None:
        self.exposures_topic = exposures_topic
        self.events_topic = events_topic
        self.dead_letters_topic = dead_letters_topic
        """When set, batches may hold records of this topic: dead letters of producers other than the
        stream (the HTTP collector) are loaded into ``xp.dead_letters``; the stream's own are skipped."""
        # A dead letter holds an original of up to max_record_bytes, base64-encoded, plus its fields.
        self.dead_letter_codec: RecordCodec[DeadLetter] = RecordCodec(
            DeadLetter, max_record_bytes=max_record_bytes * 2 + 64 * 1024
        )
        self.rules = rules
        self.registry = registry
        self.attribution = attribution
        self.seen_exposures = SeenIds(dedup_retention, dedup_max_ids)
        self.seen_events = SeenIds(dedup_retention, dedup_max_ids)
        self.seen_dead_letters = SeenIds(dedup_retention, dedup_max_ids)
        self.exposure_codec: RecordCodec[Exposure] = RecordCodec(Exposure, max_record_bytes=max_record_bytes)
        self.event_codec: RecordCodec[MetricEvent] = RecordCodec(
            MetricEvent, max_record_bytes=max_record_bytes, max_abs_metric_value=max_abs_metric_value
        )
        # pyarrow imports pandas on its first ``pa.array`` of a Python list (~0.3 s, once per process):
        # pay it here, at start-up, rather than in the first batch's latency.
        pa.array([], pa.string())

    def set_registry(self, registry: RegistryView) -> None:
        """Use a newer registry view from the next batch on."""
        self.registry = registry
        self.attribution.windows = dict(registry.attribution_windows)
        names = self.rules.known_event_names
        if registry.event_names is not None:
            names = registry.event_names | (names or frozenset())
        self.rules = ValidationRules(
            max_future_skew=self.rules.max_future_skew,
            max_lateness=self.rules.max_lateness,
            known_event_names=names,
            known_variations=registry.known_variations,
        )

    def process(
        self,
        raws: Sequence[RawRecord],
        now: datetime,
        attributed_elsewhere: AbstractSet[tuple[str, int, int]] | None = None,
    ) -> BatchOutput:
        """Run one batch through the kernel; state changes only for attribution (see remember_ids).

        ``attributed_elsewhere``: (topic, partition, offset) of events another attribution (the Flink
        job's, decision 0105) attributes: the kernel neither attributes nor holds them (every exposure
        still updates its state)."""
        with _gc_paused():
            return self._process(raws, now, attributed_elsewhere)

    def _process(
        self,
        raws: Sequence[RawRecord],
        now: datetime,
        attributed_elsewhere: AbstractSet[tuple[str, int, int]] | None = None,
    ) -> BatchOutput:
        exposures_topic, events_topic = self.exposures_topic, self.events_topic
        raws = RawBatch.of(raws)  # columns (a list of records, from the Faust and Flink runners, transposed)
        topics = _topic_codes(raws) if raws else (None, [])
        exposure_raws = _of_topic(raws, topics, exposures_topic)
        event_raws = _of_topic(raws, topics, events_topic)
        letter_raws = raws[0:0]
        if len(exposure_raws) + len(event_raws) != len(raws):
            letter_raws = _of_topic(raws, topics, self.dead_letters_topic)
            if len(exposure_raws) + len(event_raws) + len(letter_raws) != len(raws):
                other = next(raw for raw in raws if raw[0] not in (exposures_topic, events_topic))
                raise ValueError(f"records of an unexpected topic: {other.topic}")
        ranges = _offset_ranges(raws, topics)

        exposures = validate_exposures(self.exposure_codec, exposure_raws, self.rules, now)
        events = validate_events(self.event_codec, event_raws, self.rules, now)
        exposure_records, _, exposure_fields, exposure_ms, dup_exposures = _deduplicated(
            self.seen_exposures, exposures, "exposure_id"
        )
        event_records, fresh_raws, fields, occurred_ms, dup_events = _deduplicated(
            self.seen_events, events, "event_id"
        )
        errs = exposures.errs + events.errs
        collected = self._collected_dead_letters(letter_raws, now) if letter_raws else []
        if collected:  # one row per id, also when a producer re-sent one within this batch
            errs = list({d.dead_letter_id: d for d in [*errs, *collected]}.values())
        seen = self.seen_dead_letters.contains_many([d.dead_letter_id for d in errs]) if errs else []
        dead_letters = [d for d, known in zip(errs, seen, strict=True) if not known]

        enriched = enrich_exposures(
            exposure_records,
            self.registry.variation_names,
            self.registry.override_for,
            now,
        )
        # Exposures first: an event in the same batch as its exposure is attributed at once.
        ordered = sorted(enriched.records, key=_exposed_at)
        held_attributions = self.attribution.observe_exposures_columns(ordered, now)
        # Decoded records' times are whole milliseconds: attribution joins on them (decision 0076).
        to_attribute, to_attribute_ms, kept = event_records, occurred_ms, None
        to_attribute_fields: FieldLists | None = fields
        if attributed_elsewhere:
            kept = [(raw[0], raw[1], raw[2]) not in attributed_elsewhere for raw in fresh_raws]
            if all(kept):
                kept = None
            else:
                to_attribute = [record for record, keep in zip(event_records, kept, strict=True) if keep]
                to_attribute_ms = occurred_ms[np.asarray(kept, dtype=bool)]
                to_attribute_fields = None
        arrays = self.attribution.attribute_events_arrays(
            to_attribute, now, to_attribute_ms, to_attribute_fields
        )
        event_attributions = (
            self.attribution.attribute_events_columns(to_attribute, now) if arrays is None else None
        )

        # The record times converted during validation (taken with the records dedup kept).
        exposure_times = _times_column("exposed_at", exposure_ms)
        exposures_table = to_arrow(enriched.records, Exposure, columns=exposure_times)
        exposures_table = exposures_table.append_column(
            "variation_name", pa.array(enriched.variation_names, pa.string())
        ).append_column("ingested_at", _constant_timestamp(now, exposures_table.num_rows))
        event_times = _times_column("occurred_at", occurred_ms)
        events_table = to_arrow(event_records, MetricEvent, columns=event_times, fields=fields)
        events_table = events_table.append_column(
            "ingested_at", _constant_timestamp(now, events_table.num_rows)
        )
        attributed_from = events_table if kept is None else events_table.filter(pa.array(kept, pa.bool_()))
        if event_attributions is not None:
            attributed = attributions_of_events(attributed_from, event_attributions)
        else:
            assert arrays is not None
            attributed = attributions_of_arrays(attributed_from, arrays)
        if isinstance(held_attributions, HeldArrays):  # held events attributed by this batch's exposures
            attributed = pa.concat_tables([attributions_of_held(held_attributions), attributed])  # first
        elif held_attributions:
            attributed = pa.concat_tables([attributions_table(held_attributions), attributed])
        reasons: Counter[str] = Counter(d.reason.value for d in dead_letters)
        return BatchOutput(
            exposures=exposures_table,
            events=events_table,
            attributed=attributed,
            dead_letters=dead_letters,
            tokens={t: dedup_token(t, ranges) for t in _TABLES},
            offsets={key: last + 1 for key, (_, last) in ranges.items()},
            exposure_ids=exposure_fields["exposure_id"],  # enrichment keeps ids and order
            event_ids=fields["event_id"],
            consumed=len(raws) - len(letter_raws),
            dead_letter_topic_records=len(letter_raws),
            duplicates=dup_exposures + dup_events,
            duplicates_by_topic={self.exposures_topic: dup_exposures, self.events_topic: dup_events},
            reasons=reasons,
            now=now,
        )

    def _collected_dead_letters(self, raws: Sequence[RawRecord], now: datetime) -> list[DeadLetter]:
        """Dead letters to load from records of the dead-letter topic (docs/decisions/0036).

        The stream's own dead letters (read from its input topics) are in the table already: skipped.
        Any other valid dead letter (the HTTP collector's) is loaded as it is, keeping its id, so a
        re-read or re-sent one is deduplicated. A record of that topic that is no valid dead letter is
        kept as a dead letter of the topic itself (never produced back to it)."""
        own = (self.exposures_topic, self.events_topic, self.dead_letters_topic)
        decoded = self.dead_letter_codec.decode_many([raw.value for raw in raws])
        letters = [letter for letter in decoded.oks if letter.source_topic not in own]
        for position, error in decoded.failures:
            raw = raws[position]
            letters.append(
                make_dead_letter(
                    error,
                    raw.value,
                    record_kind=RecordKind.UNKNOWN,
                    source_topic=raw.topic,
                    source_partition=raw.partition,
                    source_offset=raw.offset,
                    original_key=raw.key,
                    received_at=now,
                    max_original_bytes=self.dead_letter_codec.max_record_bytes,
                )
            )
        return letters

    def remember_ids(self, output: BatchOutput) -> None:
        """Remember the batch's ids, so that later batches drop them as duplicates.

        Call once the batch is sure to end up in the warehouse: after its load, or before it when a
        failed load ends the run (the worker: the next batch is processed while this one loads; a new
        run rebuilds the state from the warehouse).
        """
        self.seen_exposures.commit(output.exposure_ids, output.now)
        self.seen_events.commit(output.event_ids, output.now)
        self.seen_dead_letters.commit([d.dead_letter_id for d in output.dead_letters], output.now)
        self.attribution.release_expired(output.now)


_TABLES = ("xp.exposures", "xp.events", "xp.attributed_events", "xp.dead_letters")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for one batch, back on after (if it was on).

    A batch allocates a few objects per record that live until the batch is done (decoded records,
    pairs, attributions): a collection every 700 of them, and a full one whenever they outgrow a
    quarter of the heap, cost the kernel as much as the work itself (measured: ~1 s of a 2.5 s run).
    Reference counting still frees everything as usual; the collector catches up after the batch.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# C-level getters (no Python frame per record).
_exposed_at: Callable[[Exposure], datetime] = attrgetter("exposed_at")


def _deduplicated(
    seen: SeenIds, validated: Validated[Any], id_field: str
) -> tuple[list[Any], Sequence[RawRecord], FieldLists, np.ndarray, int]:
    """The validated records ``seen`` does not know yet (nor twice in the batch): (records, their raws,
    their fields, their times in epoch ms, how many duplicates were left out)."""
    records, raws = validated.records, validated.raws
    fields = validated.fields if validated.fields is not None else FieldLists(records)
    times = validated.times_ms if validated.times_ms is not None else np.zeros(len(records), np.int64)
    kept = seen.fresh_positions(fields[id_field])
    if kept is None:
        return records, raws, fields, times, 0
    fresh = [records[position] for position in kept]
    return (
        fresh,
        RawBatch.of(raws).taken(kept),
        fields.taken(kept, fresh),
        times[np.array(kept, np.int64)],
        len(records) - len(kept),
    )


def _constant_timestamp(at: datetime, count: int) -> pa.Array:
    millis = round(at.timestamp() * 1000)
    return pa.array(np.full(count, millis, np.int64), TIMESTAMP)


def _times_column(name: str, millis: np.ndarray | None) -> dict[str, pa.Array] | None:
    return None if millis is None else {name: pa.array(millis, TIMESTAMP)}
