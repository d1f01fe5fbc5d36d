"""The stream kernel under generated hostile batches: every record is loaded, deduplicated or
dead-lettered — exactly one of the three — and nothing loaded carries a value analysis cannot sum."""

from __future__ import annotations

import math
from datetime import timedelta

import pyarrow.compute as pc
from hypothesis import given
from hypothesis import strategies as st

from pipelines.kernel import RawRecord
from schemas import DeadLetterReason
from tests.fuzz.strategies import RAW_VALUES, event_objects, exposure_objects, to_json_bytes
from tests.unit.pipeline.helpers import EVENTS_TOPIC, EXPOSURES_TOPIC, T0, T0_MS, make_processor

_VALID_EVENT = event_objects().map(
    lambda obj: {
        **obj,
        "event_id": f"e-{obj.get('event_id')!s:.8}",
        "unit_id": "u1",
        "event_name": "purchase",
        "occurred_at": "2024-05-01T12:00:00Z",
    }
)
_VALID_EXPOSURE = exposure_objects().map(
    lambda obj: {
        **obj,
        "exposure_id": f"x-{obj.get('exposure_id')!s:.8}",
        "unit_id": "u1",
        "hash_attribute": "id",
        "experiment_key": "exp-a",
        "variation_id": 1,
        "source": "sdk",
        "variation_key": "1",
        "exposed_at": "2024-05-01T11:59:00Z",
    }
)
_VALUES = st.one_of(RAW_VALUES, _VALID_EVENT.map(to_json_bytes), _VALID_EXPOSURE.map(to_json_bytes))


@st.composite
def batches(draw: st.DrawFn) -> list[RawRecord]:
    """A batch over both topics and two partitions, with re-sent records (same bytes, new offset)."""
    values = draw(st.lists(_VALUES, max_size=40))
    values += draw(st.lists(st.sampled_from(values), max_size=10)) if values else []  # duplicates
    offsets = {(EXPOSURES_TOPIC, 0): 0, (EXPOSURES_TOPIC, 1): 0, (EVENTS_TOPIC, 0): 0, (EVENTS_TOPIC, 1): 0}
    raws = []
    for value in values:
        where = draw(st.sampled_from(sorted(offsets)))
        raws.append(RawRecord(where[0], where[1], offsets[where], b"u1", value, T0_MS))
        offsets[where] += 1
    return raws


@given(st.lists(batches(), min_size=1, max_size=3))
def test_every_record_is_loaded_deduplicated_or_dead_lettered_once(batch_list: list[list[RawRecord]]) -> None:
    processor = make_processor(max_lateness=timedelta(days=3650))
    base = 0
    for raws in batch_list:
        # offsets continue across batches, as they do on Kafka
        raws = [raw._replace(offset=raw.offset + base) for raw in raws]
        base += len(raws) + 1
        output = processor.process(raws, T0 + timedelta(minutes=1))
        loaded = output.exposures.num_rows + output.events.num_rows
        assert loaded + len(output.dead_letters) + output.duplicates == output.consumed == len(raws)
        for letter in output.dead_letters:
            assert letter.reason is not DeadLetterReason.INTERNAL_ERROR, letter.detail
            raw = next(
                r
                for r in raws
                if (r.topic, r.partition, r.offset)
                == (letter.source_topic, letter.source_partition, letter.source_offset)
            )
            assert letter.original == (raw.value or b"")[: len(letter.original)]  # the original bytes
        values = output.events.column("value")
        finite = [v for v in values.to_pylist() if v is not None]
        assert all(math.isfinite(v) for v in finite)
        assert all(math.isfinite(v * v) for v in finite), "a loaded value whose square overflows"
        assert pc.count_distinct(output.events.column("event_id")).as_py() == output.events.num_rows
        processor.remember_ids(output)
