"""Differential test: the columnar kernel against the per-record reference, on random messy batches.

Two processors see the same batches (invalid JSON, wrong types, oversized and poison values, duplicates
within and across batches, late and future records, missing Kafka timestamps, out-of-order and unknown
experiments and variations, unknown event names, events before their exposure) and must produce the same
tables, dead letters (reason, detail, original bytes), tokens, offsets, counts and state, batch after
batch. The reference attributes record by record (``AttributionState(columnar=False)``).
"""

from __future__ import annotations

import json
import random
from datetime import timedelta
from operator import attrgetter
from typing import Any

import pytest

from pipelines.attribution import AttributionState
from pipelines.kernel import RawRecord, ValidationRules, epoch_ms
from pipelines.processor import BatchOutput, RegistryView, StreamProcessor
from schemas import Exposure, ExposureSource, MetricEvent, RecordCodec
from tests.unit.pipeline.helpers import EVENTS_TOPIC, EXPOSURES_TOPIC, T0, T0_MS, event, exposure, minutes

_EXPOSURE_CODEC: RecordCodec[Exposure] = RecordCodec(Exposure)
_EVENT_CODEC: RecordCodec[MetricEvent] = RecordCodec(MetricEvent)
_MAX_BYTES = 2_000


def _registry(windows: dict[tuple[str, str], timedelta | None]) -> RegistryView:
    return RegistryView(
        {"exp-a": frozenset({0, 1}), "exp-b": frozenset({0, 1, 2}), "exp-c": frozenset({0, 1})},
        {("exp-a", 0): "Control", ("exp-a", 1): "Treatment", ("exp-b", 2): "B2"},
        None,
        windows,
        frozenset({"purchase", "pageview"}),
    )


def _processor(columnar: bool, windows: dict[tuple[str, str], timedelta | None]) -> StreamProcessor:
    registry = _registry(windows)
    processor = StreamProcessor(
        exposures_topic=EXPOSURES_TOPIC,
        events_topic=EVENTS_TOPIC,
        rules=ValidationRules(known_event_names=frozenset({"purchase"}), max_lateness=timedelta(days=2)),
        registry=registry,
        attribution=AttributionState(
            default_window=timedelta(hours=1), hold=timedelta(minutes=5), max_held=40, columnar=columnar
        ),
        dedup_retention=timedelta(hours=1),
        dedup_max_ids=10_000,
        max_record_bytes=_MAX_BYTES,
    )
    processor.set_registry(registry)
    return processor


class _Messy:
    """Random records of a small world (few units, experiments, ids), so that they collide often."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.offsets = {EXPOSURES_TOPIC: 0, EVENTS_TOPIC: 0}
        self.sent: list[RawRecord] = []

    def _time(self) -> Any:
        rng = self.rng
        # Whole minutes often: events at their exposure's time and on a window's end (the boundaries).
        at = minutes(rng.randrange(-90, 4) if rng.random() < 0.5 else rng.uniform(-90, 4))
        at = at.replace(microsecond=at.microsecond - at.microsecond % 1000)  # JSON keeps ms (codec: ms)
        if rng.random() < 0.03:
            at -= timedelta(days=3)  # late
        if rng.random() < 0.03:
            at += timedelta(hours=1)  # from the future
        return at

    def _value(self, topic: str) -> bytes | None:
        rng = self.rng
        roll = rng.random()
        unit = f"u{rng.randrange(12)}"
        if topic == EXPOSURES_TOPIC:
            experiment = rng.choice(["exp-a", "exp-a", "exp-b", "exp-c", "exp-unknown"])
            variation = rng.choice([0, 1, 1, 2, 9])
            record: Any = Exposure(
                exposure_id=f"x{rng.randrange(60)}",
                unit_id=unit,
                hash_attribute="id",
                experiment_key=experiment,
                variation_id=variation,
                variation_key=f"v{variation}",
                source=ExposureSource.SDK,
                exposed_at=self._time(),
                overridden=rng.random() < 0.05,
            )
            data = _EXPOSURE_CODEC.encode(record)
        else:
            name = rng.choice(["purchase", "purchase", "pageview", "signup"])
            value = rng.choice([None, 1.0, 12.5, -3.0, 0.0])
            record = event(f"e{rng.randrange(150)}", unit, name, value, self._time())
            data = _EVENT_CODEC.encode(record)
        if roll < 0.03:
            return b"{not json"
        if roll < 0.05:
            return None
        if roll < 0.07:
            document = json.loads(data)
            document[rng.choice(list(document))] = rng.choice([[1], "x", 17, None, {"a": 1}])
            return json.dumps(document).encode()
        if roll < 0.08:
            return data[:-1] + b"," + b'"pad":"' + b"x" * _MAX_BYTES + b'"}'  # oversized
        if roll < 0.10 and topic == EVENTS_TOPIC:
            document = json.loads(data)
            document["value"] = rng.choice([1e308, -1e300])  # poison value beyond the bound
            return json.dumps(document).encode()
        return data

    def batch(self, size: int) -> list[RawRecord]:
        rng = self.rng
        raws: list[RawRecord] = []
        for _ in range(size):
            if self.sent and rng.random() < 0.1:  # a re-sent record (new offset, same bytes)
                old = rng.choice(self.sent)
                topic, value, key = old.topic, old.value, old.key
            else:
                topic = EXPOSURES_TOPIC if rng.random() < 0.4 else EVENTS_TOPIC
                value, key = self._value(topic), b"k"
            stamp = None if rng.random() < 0.02 else T0_MS + rng.randrange(-1000, 1000)
            partition = rng.randrange(2)
            offset = self.offsets[topic]
            self.offsets[topic] += 1
            raws.append(RawRecord(topic, partition, offset, key, value, stamp))
        self.sent += raws
        return raws


def _comparable(output: BatchOutput) -> dict[str, Any]:
    return {
        "exposures": output.exposures.to_pylist(),
        "events": output.events.to_pylist(),
        "attributed": output.attributed.to_pylist(),
        "dead_letters": output.dead_letters,
        "tokens": output.tokens,
        "offsets": output.offsets,
        "exposure_ids": output.exposure_ids,
        "event_ids": output.event_ids,
        "counts": (output.consumed, output.duplicates, output.duplicates_by_topic, output.reasons),
    }


def _state(processor: StreamProcessor) -> dict[str, Any]:
    attribution = processor.attribution
    return {
        "units": attribution.units,
        "held": attribution._held.entries(),
        "held_count": attribution.held_count,
        "released": attribution.released,
        "seen": (len(processor.seen_exposures), len(processor.seen_events)),
    }


WINDOWS: list[dict[tuple[str, str], timedelta | None]] = [
    {},
    {("exp-a", "purchase"): timedelta(minutes=30), ("exp-b", "pageview"): None},
    {("exp-c", "purchase"): timedelta(minutes=-5), ("exp-a", "pageview"): timedelta(seconds=90.5)},
    {("exp-b", "purchase"): timedelta(days=365 * 400)},  # beyond the integer path: the walk decides
]


@pytest.mark.parametrize("seed", range(40))
def test_columnar_matches_reference(seed: int) -> None:
    rng = random.Random(seed)
    windows = WINDOWS[seed % len(WINDOWS)]
    columnar, reference = _processor(True, windows), _processor(False, windows)
    if seed % 5 == 0:  # state restored from the warehouse first
        for processor in (columnar, reference):
            processor.attribution.load_unit_exposure("u1", "exp-a", minutes(-30), 1, [1])
            processor.attribution.load_unit_exposure("u2", "exp-b", minutes(-10), 0, [0, 2])
            processor.attribution.load_unit_exposure("u1", "exp-a", minutes(-40), 0, [0, 1])  # replaced
            processor.attribution.hold_event(event("e7", "u3", at=minutes(5)), T0)
    messy = _Messy(rng)
    now = T0 + timedelta(minutes=1)
    for _ in range(6):
        raws = messy.batch(rng.randrange(0, 120))
        got, expected = columnar.process(raws, now), reference.process(raws, now)
        assert _comparable(got) == _comparable(expected)
        columnar.remember_ids(got)
        reference.remember_ids(expected)
        assert _state(columnar) == _state(reference)
        now += timedelta(minutes=rng.choice([0, 1, 3, 7]))
    assert columnar.attribution.attribute_held() == reference.attribution.attribute_held()


def test_the_columnar_path_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """The differential test compares two different paths: the columns are used for decoded events."""
    processor = _processor(True, {})
    messy = _Messy(random.Random(1))
    calls: list[int] = []
    joined = processor.attribution._attribute_joined

    def spy(*args: Any) -> Any:
        calls.append(1)
        return joined(*args)

    monkeypatch.setattr(processor.attribution, "_attribute_joined", spy)
    processor.process(messy.batch(100), T0)
    assert calls


def test_an_exotic_first_exposure_falls_back_to_the_walk() -> None:
    """A first exposure outside the storable range (only a restored state can hold one) is compared as
    datetimes, record by record, with the same result as the reference."""
    old = T0.replace(year=1850)
    events = [event("e", "u", at=T0.replace(year=1900)), event("f", "u", at=T0)]
    results = []
    for columnar in (True, False):
        state = AttributionState(
            default_window=timedelta(days=365 * 60), hold=timedelta(0), columnar=columnar
        )
        state.load_unit_exposure("u", "exp-a", old, 0, [0])
        results.append(state.attribute_events_columns(events, T0, epoch_ms(map(_occurred, events), 2)))
        assert state.columns.exotic
    assert results[0] == results[1] and results[0].positions == [0]


_occurred = attrgetter("occurred_at")


def test_events_in_many_experiments_hold_the_same_experiments() -> None:
    """Events of a unit in 70 experiments (their sequence too long for one integer code: the pair-by-pair
    form) and of a unit in 2: the same rows and held events as the walk."""
    events = [event("e1", "many", at=minutes(10)), event("e2", "two", at=minutes(10))]
    states = []
    for columnar in (True, False):
        state = AttributionState(
            default_window=timedelta(hours=1), hold=timedelta(minutes=5), columnar=columnar
        )
        state.observe_exposures(
            [exposure(f"x{n}", "many", f"exp-{n}", n % 2, minutes(n % 7)) for n in range(70)]
            + [exposure("y1", "two", "exp-b", 1, minutes(1)), exposure("y2", "two", "exp-a", 0, minutes(2))],
            T0,
        )
        rows = state.attribute_events_columns(events, T0, epoch_ms(map(_occurred, events), 2))
        states.append((rows, dict(state._held.entries())))
    assert states[0] == states[1]
    assert len(states[0][1]["many"][4]) == 70 and states[0][1]["two"][4] == ("exp-b", "exp-a")


def test_the_held_events_join_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Held events attributed by later exposures go through the join (decision 0097), with rows: the
    differential test above compares it with the walk."""
    import pipelines.attribution as attribution_module

    processor = _processor(True, {})
    messy = _Messy(random.Random(3))
    rows: list[int] = []
    joined = attribution_module.attribute_held_joined

    def spy(*args: Any) -> Any:
        result = joined(*args)
        rows.append(-1 if result is None else len(result.positions))
        return result

    monkeypatch.setattr(attribution_module, "attribute_held_joined", spy)
    now = T0 + timedelta(minutes=1)
    for _ in range(6):
        processor.remember_ids(processor.process(messy.batch(100), now))
    assert rows and -1 not in rows and sum(rows) > 0


def test_a_held_event_with_sub_millisecond_time_falls_back_to_the_walk() -> None:
    """A held time the integer join cannot compare exactly (records are whole ms, so only a record built
    around the codec could have µs): walked, with the same rows and held state as the reference."""
    from msgspec.structs import force_setattr

    odd = event("e1", "u", at=minutes(2))
    force_setattr(odd, "occurred_at", minutes(2) + timedelta(microseconds=7))
    results = []
    for columnar in (True, False):
        state = AttributionState(
            default_window=timedelta(hours=1), hold=timedelta(minutes=5), columnar=columnar
        )
        state.hold_event(odd, T0)
        state.hold_event(event("e2", "u", at=minutes(3)), T0)
        found = state.observe_exposures_columns([exposure("x1", "u", "exp-a", 1, minutes(1))], T0)
        assert isinstance(found, list)
        results.append((found, state._held.entries()))
    assert results[0] == results[1] and len(results[0][0]) == 2


def test_a_new_pair_moved_back_within_one_call_is_joined_with_its_final_first_exposure() -> None:
    """Pairs a call creates are added to the columns at the call's end (``add_many``): an earlier exposure
    of the same pair later in the same call must leave the columns with the earlier time and variation."""
    events = [
        event("e1", "u", at=minutes(12)),
        event("e2", "u", at=minutes(25)),
        event("e3", "v", at=minutes(1)),
    ]
    results = []
    for columnar in (True, False):
        state = AttributionState(default_window=timedelta(minutes=14), hold=timedelta(0), columnar=columnar)
        state.observe_exposures(
            [
                exposure("x2", "u", "exp-a", 1, minutes(20)),
                exposure("x1", "u", "exp-a", 0, minutes(10)),
                exposure("y1", "v", "exp-b", 1, minutes(0)),
            ],
            T0,
        )
        results.append(state.attribute_events_columns(events, T0, epoch_ms(map(_occurred, events), 3)))
    assert results[0] == results[1]
    assert results[0].variation_ids == [0, 1] and results[0].positions == [0, 2]  # e2: past 10 + 14 min
