"""The simulator's counts are exactly what a validating, deduplicating consumer of its records finds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import xpstream.loadgen.simulate as simulate_module
from assignment.registry import ExperimentSpec
from schemas import Exposure, MetricEvent, RecordCodec
from schemas.codec import RecordError
from xpcore.errors import ValidationError
from xpstream.loadgen.simulate import LoadgenCounts, LoadgenOptions, OutRecord, simulate_records

from .conftest import NOW

EVENT_NAMES = frozenset({"pageview", "purchase", "add_to_cart", "refund"})
CATALOG = ("add_to_cart", "pageview", "purchase", "refund")
"""What the example catalog (examples/experiments.yaml) counts: ``catalog_event_names`` of its experiments."""
MAX_BYTES = 1_000_000


@dataclass
class Consumed:
    """What the stream's validate + dedup stages would make of the records."""

    exposures: dict[str, Exposure] = field(default_factory=dict)
    events: dict[str, MetricEvent] = field(default_factory=dict)
    invalid: int = 0
    duplicates: int = 0
    late: int = 0
    order: list[str] = field(default_factory=list)


def consume(records: list[OutRecord], experiments: list[ExperimentSpec]) -> Consumed:
    known = {spec.key: {v.id for v in spec.variations} for spec in experiments}
    exposure_codec = RecordCodec(Exposure, max_record_bytes=MAX_BYTES)
    event_codec = RecordCodec(MetricEvent, max_record_bytes=MAX_BYTES)
    first_bytes: dict[str, bytes] = {}
    out = Consumed()
    latest = None
    for topic, key, value in records:
        try:
            if topic == "xp.exposures":
                record: Any = exposure_codec.decode(value)
                ok = record.variation_id in known.get(record.experiment_key, ())
                record_id, time = record.exposure_id, record.exposed_at
            else:
                assert topic == "xp.events"
                record = event_codec.decode(value)
                ok = record.event_name in EVENT_NAMES
                record_id, time = record.event_id, record.occurred_at
        except RecordError:
            out.invalid += 1
            continue
        if not ok:
            out.invalid += 1
            continue
        assert key == record.unit_id.encode()
        if record_id in first_bytes:
            assert first_bytes[record_id] == value, "a duplicate must be byte-identical"
            out.duplicates += 1
            continue
        first_bytes[record_id] = value
        if isinstance(record, Exposure):
            out.exposures[record_id] = record
        else:
            out.events[record_id] = record
            out.late += latest is not None and time < latest
        latest = time if latest is None else max(latest, time)
    return out


def run(
    payload: Any, experiments: list[ExperimentSpec], **options: Any
) -> tuple[list[OutRecord], LoadgenCounts]:
    return simulate_records(payload, experiments, LoadgenOptions(now=NOW, **options))


def test_counts_match_the_consumed_stream_exactly(payload: Any, experiments: list[ExperimentSpec]) -> None:
    records, counts = run(
        payload,
        experiments,
        users=3000,
        seed=11,
        invalid_fraction=0.05,
        duplicate_fraction=0.05,
        late_fraction=0.1,
        srm_skew=0.1,
        lift=0.1,
    )
    seen = consume(records, experiments)
    assert len(seen.exposures) == counts.exposures > 0
    assert len(seen.events) == counts.events > 0
    assert seen.invalid == counts.invalid > 0
    assert seen.duplicates == counts.duplicates > 0
    assert seen.late == counts.late > 0
    assert len(records) == counts.records
    per_experiment = Counter((e.experiment_key, e.variation_key) for e in seen.exposures.values())
    assert {(k, v): n for k, by in counts.per_experiment.items() for v, n in by.items()} == dict(
        per_experiment
    )
    assert counts.exposed_units == len({e.unit_id for e in seen.exposures.values()})
    names = Counter(e.event_name for e in seen.events.values())
    assert (names["pageview"], names["purchase"]) == (counts.pageviews, counts.purchases)
    assert sum(counts.invalid_by_kind.values()) == counts.invalid
    # Shares as documented: invalid of everything sent, duplicates per valid record.
    valid = counts.exposures + counts.events
    assert counts.invalid == round(0.05 / 0.95 * valid)
    assert counts.duplicates == round(0.05 * valid)


def test_one_first_exposure_per_unit_and_experiment(payload: Any, experiments: list[ExperimentSpec]) -> None:
    records, _ = run(payload, experiments, users=2000, seed=1, duplicate_fraction=0.1)
    seen = consume(records, experiments)
    pairs = Counter((e.unit_id, e.experiment_key) for e in seen.exposures.values())
    assert max(pairs.values()) == 1
    ranker = [e for e in seen.exposures.values() if e.experiment_key == "ranker-test"]
    assert all(e.hash_attribute == "device_id" for e in ranker)
    assert 0.75 < len(ranker) / 2000 < 0.85  # coverage 0.8


def test_events_follow_the_units_first_exposure_within_the_window(
    payload: Any, experiments: list[ExperimentSpec]
) -> None:
    records, _ = run(payload, experiments, users=2000, seed=2, late_fraction=0.3, window_seconds=60)
    seen = consume(records, experiments)
    first: dict[str, datetime] = {}
    for exposure in seen.exposures.values():
        first[exposure.unit_id] = min(first.get(exposure.unit_id, exposure.exposed_at), exposure.exposed_at)
    start = NOW - timedelta(seconds=60)
    for event in seen.events.values():
        assert start <= event.occurred_at <= NOW
        assert event.sent_at is not None and event.occurred_at <= event.sent_at <= NOW
        if event.unit_id in first:
            assert event.occurred_at > first[event.unit_id]
        if event.event_name == "purchase":
            assert event.value is not None and event.value > 0
        else:
            assert event.value is None
    # Exposures are sent before their unit's events, late ones included.
    sent: set[str] = set()
    for topic, key, _ in records:
        if topic == "xp.exposures":
            sent.add(key.decode())
        elif key.decode() in first:
            assert key.decode() in sent


def test_same_seed_same_bytes_other_seed_other_bytes(payload: Any, experiments: list[ExperimentSpec]) -> None:
    options = {"users": 1500, "invalid_fraction": 0.05, "duplicate_fraction": 0.05, "late_fraction": 0.1}
    first, counts = run(payload, experiments, seed=5, **options)
    again, counts_again = run(payload, experiments, seed=5, **options)
    other, _ = run(payload, experiments, seed=6, **options)
    assert first == again
    assert counts == counts_again
    assert first != other


def test_chunks_keep_counts_and_order(
    payload: Any, experiments: list[ExperimentSpec], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(simulate_module, "CHUNK_USERS", 400)
    records, counts = run(
        payload, experiments, users=2000, seed=8, events=7777, invalid_fraction=0.02, duplicate_fraction=0.02
    )
    seen = consume(records, experiments)
    assert (len(seen.exposures), len(seen.events), seen.invalid, seen.duplicates) == (
        counts.exposures,
        counts.events,
        counts.invalid,
        counts.duplicates,
    )
    assert counts.events == 7777
    assert seen.late == counts.late == 0  # without --late-fraction every chunk is in event-time order


def test_lift_raises_conversion_and_pageviews_of_treatment(
    payload: Any, experiments: list[ExperimentSpec]
) -> None:
    checkout_only = [experiments[0]]
    records, _ = run(payload, checkout_only, users=30_000, events=40_000, seed=21, lift=0.3)
    seen = consume(records, checkout_only)
    variation = {e.unit_id: e.variation_key for e in seen.exposures.values()}
    units = Counter(variation.values())
    buyers: Counter[str] = Counter()
    views: Counter[str] = Counter()
    for event in seen.events.values():
        if event.event_name == "purchase":
            buyers[variation[event.unit_id]] += 1
        else:
            views[variation[event.unit_id]] += 1
    control = buyers["control"] / units["control"]
    for treatment in ("green", "orange"):
        ratio = (buyers[treatment] / units[treatment]) / control
        assert 1.15 < ratio < 1.45, ratio  # 1.3 expected; SE of the ratio ≈ 0.05
        view_ratio = (views[treatment] / units[treatment]) / (views["control"] / units["control"])
        assert 1.2 < view_ratio < 1.4, view_ratio


def test_no_lift_no_difference(payload: Any, experiments: list[ExperimentSpec]) -> None:
    checkout_only = [experiments[0]]
    records, _ = run(payload, checkout_only, users=30_000, events=4_000, seed=22)
    seen = consume(records, checkout_only)
    variation = {e.unit_id: e.variation_key for e in seen.exposures.values()}
    units = Counter(variation.values())
    buyers = Counter(variation[e.unit_id] for e in seen.events.values() if e.event_name == "purchase")
    rates = {k: buyers[k] / units[k] for k in units}
    assert max(rates.values()) - min(rates.values()) < 0.015  # p = 0.1, SE of a difference ≈ 0.004


def test_srm_skew_drops_that_share_of_the_last_variation(
    payload: Any, experiments: list[ExperimentSpec]
) -> None:
    checkout_only = [experiments[0]]
    _, plain = run(payload, checkout_only, users=20_000, events=2_000, seed=31)
    records, skewed = run(payload, checkout_only, users=20_000, events=2_000, seed=31, srm_skew=0.2)
    before, after = plain.per_experiment["checkout-color"], skewed.per_experiment["checkout-color"]
    assert after["control"] == before["control"] and after["green"] == before["green"]
    assert after["orange"] == before["orange"] - round(0.2 * before["orange"])
    assert skewed.srm_dropped_units == before["orange"] - after["orange"]
    seen = consume(records, checkout_only)
    exposed = {e.unit_id for e in seen.exposures.values()}
    assert all(e.unit_id in exposed for e in seen.events.values())  # dropped units send no events


def test_every_invalid_kind_is_rejected(payload: Any, experiments: list[ExperimentSpec]) -> None:
    records, counts = run(payload, experiments, users=2000, seed=4, invalid_fraction=0.1)
    assert set(counts.invalid_by_kind) == {
        "invalid_utf8",
        "truncated_json",
        "missing_field",
        "wrong_type",
        "naive_timestamp",
        "unknown_experiment",
        "unknown_variation",
        "unknown_event_name",
        "oversized",
    }
    assert counts.invalid_by_kind["oversized"] == 1
    oversized = [value for _, _, value in records if len(value) > MAX_BYTES]
    assert [len(value) for value in oversized] == [MAX_BYTES + 1]
    reasons: Counter[str] = Counter()
    codecs: dict[str, RecordCodec[Any]] = {
        "xp.exposures": RecordCodec(Exposure),
        "xp.events": RecordCodec(MetricEvent),
    }
    for topic, _, value in records:
        try:
            codecs[topic].decode(value)
        except RecordError as error:
            reasons[error.reason.value] += 1
    assert set(reasons) == {
        "invalid_utf8",
        "invalid_json",
        "missing_field",
        "schema_violation",
        "bad_timestamp",
        "too_large",
    }
    assert consume(records, experiments).invalid == counts.invalid


def test_without_experiments_only_events_and_no_unknown_variation(payload: Any) -> None:
    records, counts = run(payload, [], users=500, seed=3, invalid_fraction=0.1)
    assert counts.exposures == 0 and counts.events == 2500
    assert "unknown_variation" not in counts.invalid_by_kind
    assert consume(records, []).invalid == counts.invalid


def test_events_without_users_are_refused() -> None:
    with pytest.raises(ValidationError, match="--events needs --users"):
        LoadgenOptions(now=NOW, users=0, events=1).check()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"users": -1}, "--users"),
        ({"invalid_fraction": 1.0}, "--invalid-fraction"),
        ({"duplicate_fraction": 1.5}, "--duplicate-fraction"),
        ({"srm_skew": -0.1}, "--srm-skew"),
        ({"lift": -1.0}, "--lift"),
    ],
)
def test_options_out_of_range_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        replace(LoadgenOptions(now=NOW), **change).check()


@settings(max_examples=25, deadline=None)
@given(
    users=st.integers(0, 300),
    events=st.none() | st.integers(0, 2000),
    seed=st.integers(0, 2**32 - 1),
    lift=st.floats(0, 2),
    srm_skew=st.floats(0, 1),
    invalid=st.floats(0, 0.5),
    duplicate=st.floats(0, 1),
    late=st.floats(0, 1),
    history_days=st.sampled_from([0.0, 0.5, 6.0]),
    catalog=st.booleans(),
)
def test_counts_reconcile_for_any_options(
    users: int,
    events: int | None,
    seed: int,
    lift: float,
    srm_skew: float,
    invalid: float,
    duplicate: float,
    late: float,
    history_days: float,
    catalog: bool,
) -> None:
    from .conftest import EXPERIMENTS, PAYLOAD

    assume(not (events and users == 0))  # refused by check(): see the test below
    records, counts = run(
        PAYLOAD,
        EXPERIMENTS,
        users=users,
        events=events,
        seed=seed,
        lift=lift,
        srm_skew=srm_skew,
        invalid_fraction=invalid,
        duplicate_fraction=duplicate,
        late_fraction=late,
        history_days=history_days,
        catalog_events=CATALOG if catalog else (),
    )
    seen = consume(records, EXPERIMENTS)
    names = Counter(e.event_name for e in seen.events.values())
    assert dict(names) == {name: n for name, n in counts.by_event_name.items() if n}
    assert (len(seen.exposures), len(seen.events), seen.invalid, seen.duplicates, seen.late) == (
        counts.exposures,
        counts.events,
        counts.invalid,
        counts.duplicates,
        counts.late,
    )
    assert len(records) == counts.records
    if events is not None and srm_skew == 0:
        assert counts.events - counts.history_events == events


def test_catalog_events_follow_the_funnel_and_keep_the_budget(
    payload: Any, experiments: list[ExperimentSpec]
) -> None:
    records, counts = run(payload, experiments, users=5000, seed=41, catalog_events=CATALOG, lift=0.2)
    seen = consume(records, experiments)
    assert counts.events == 5 * 5000 and counts.history_events == 0
    names = Counter(e.event_name for e in seen.events.values())
    assert set(names) == set(CATALOG) and dict(names) == counts.by_event_name
    assert 0.1 < names["add_to_cart"] / (names["add_to_cart"] + names["pageview"]) < 0.2  # share 0.15
    purchases = {e.unit_id: e.occurred_at for e in seen.events.values() if e.event_name == "purchase"}
    for event in seen.events.values():
        if event.event_name == "refund":  # a refund belongs to a purchase of the same unit, never before it
            assert event.unit_id in purchases and event.occurred_at >= purchases[event.unit_id]
            assert event.value is None
    assert 0.03 < names["refund"] / names["purchase"] < 0.12  # 0.08 in control, ÷ (1+lift) in treatment


def test_history_precedes_exposure_and_predicts_activity_after_it(
    payload: Any, experiments: list[ExperimentSpec]
) -> None:
    checkout_only = [experiments[0]]
    records, counts = run(
        payload, checkout_only, users=6000, seed=43, history_days=2.0, catalog_events=CATALOG
    )
    seen = consume(records, checkout_only)
    first = {e.unit_id: e.exposed_at for e in seen.exposures.values()}
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    for event in seen.events.values():
        assert event.sent_at is not None and event.occurred_at <= event.sent_at <= NOW
        exposed = first[event.unit_id]
        if event.occurred_at < exposed:
            assert exposed - timedelta(days=2) <= event.occurred_at
            before[event.unit_id] += event.event_name == "pageview"
        else:
            after[event.unit_id] += event.event_name == "pageview"
    assert sum(before.values()) > 0 and counts.history_events > sum(before.values())  # purchases, carts too
    assert counts.events - counts.history_events == 5 * 6000
    units = sorted(first)
    x = np.array([before[u] for u in units], dtype=float)
    y = np.array([after[u] for u in units], dtype=float)
    assert np.corrcoef(x, y)[0, 1] > 0.3  # the same activity level drives both: what CUPED uses


def test_history_is_refused_beyond_the_streams_lateness_bound() -> None:
    with pytest.raises(ValidationError, match=r"--history-days must be within 0\.\.6"):
        LoadgenOptions(now=NOW, history_days=6.5).check()


def test_the_funnel_model_walks_its_steps_in_order_with_the_lift_on_one_step(
    payload: dict[str, Any], experiments: list[ExperimentSpec]
) -> None:
    """``funnel``: every unit's step events come in the funnel's order, strictly after its exposure, each
    step reached only after the previous one; reach rates follow FUNNEL_FIRST_STEP / FUNNEL_NEXT_STEP, the
    lifted step's conditional rate × (1+F) for units in non-control variations of every experiment."""
    steps = ("pageview", "add_to_cart", "checkout")
    options = LoadgenOptions(
        now=NOW, users=40_000, events=0, seed=3, funnel=steps, funnel_lift=("add_to_cart", 0.5)
    )
    records, counts = simulate_records(payload, experiments, options)
    first: dict[str, datetime] = {}
    variations: dict[str, set[tuple[str, int]]] = {}
    walked: dict[str, list[tuple[datetime, str]]] = {}
    exposure_codec, event_codec = RecordCodec(Exposure), RecordCodec(MetricEvent)
    for topic, _, value in records:
        if topic == "xp.exposures":
            exposure = exposure_codec.decode(value)
            first[exposure.unit_id] = min(
                first.get(exposure.unit_id, exposure.exposed_at), exposure.exposed_at
            )
            variations.setdefault(exposure.unit_id, set()).add(
                (exposure.experiment_key, exposure.variation_id)
            )
        else:
            event = event_codec.decode(value)
            walked.setdefault(event.unit_id, []).append((event.occurred_at, event.event_name))
    assert counts.by_event_name.keys() == set(steps) and counts.events == sum(map(len, walked.values()))
    reached: Counter[tuple[int, int]] = Counter()
    for unit, path in walked.items():
        names = [name for _, name in sorted(path)]
        assert names == list(steps[: len(names)]), (unit, path)
        assert min(t for t, _ in path) > first[unit] and len({t for t, _ in path}) == len(path)
        non_control = sum(v != 0 for _, v in variations.get(unit, ()))
        for k in range(len(names)):
            reached[(non_control, k)] += 1
    for non_control in (0, 1, 2):  # two experiments: 2.25 × 0.5 is capped at 1
        rate = [reached[(non_control, k)] for k in range(3)]
        assert rate[2] / rate[1] == pytest.approx(simulate_module.FUNNEL_NEXT_STEP, abs=0.03)
        lift = min(1.0, simulate_module.FUNNEL_NEXT_STEP * 1.5**non_control)
        assert rate[1] / rate[0] == pytest.approx(lift, abs=0.03), non_control


@pytest.mark.parametrize(
    ("funnel", "lift", "message"),
    [
        (("a", "a"), None, "distinct"),
        (("a", ""), None, "distinct"),
        (("a", "b"), ("c", 0.1), "not a --funnel step"),
        (("a", "b"), ("b", -1.0), "> -1"),
        (("a", "b"), ("b", float("nan")), "> -1"),
    ],
)
def test_funnel_options_out_of_range_are_refused(
    funnel: tuple[str, ...], lift: tuple[str, float] | None, message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        LoadgenOptions(now=NOW, funnel=funnel, funnel_lift=lift).check()
