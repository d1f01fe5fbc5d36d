"""The compact deduplication state: time slices of 64-bit hashes in a ring, checked against a plain model."""

from __future__ import annotations

import random
from datetime import timedelta

from pipelines.seen_ids import SLICES, SeenIds
from tests.unit.pipeline.helpers import T0


def test_ids_are_kept_at_least_the_retention_and_at_most_one_slice_longer() -> None:
    retention = timedelta(minutes=16)  # slices of 1 minute
    seen = SeenIds(retention, max_ids=100_000)
    for minute in range(40):
        seen.commit([f"id-{minute}-{i}" for i in range(50)], T0 + timedelta(minutes=minute))
        for earlier in range(minute + 1):
            age = timedelta(minutes=minute - earlier)
            present = f"id-{earlier}-7" in seen
            if age <= retention:
                assert present, (minute, earlier)
            elif age > retention + retention / SLICES:
                assert not present, (minute, earlier)


def test_the_ring_wraps_many_times_without_losing_or_inventing_ids() -> None:
    rng = random.Random(3)
    max_ids = 1600  # slices of 100 ids
    seen = SeenIds(timedelta(days=1), max_ids=max_ids)
    committed: list[str] = []
    for batch in range(300):
        ids = [f"b{batch}-{i}" for i in range(rng.randrange(1, 160))]
        fresh, duplicates = seen.deduplicate([(i, None) for i in ids + ids[:3]], str, T0)
        assert [i for i, _ in fresh] == ids and duplicates == min(3, len(ids))  # repeats in a batch
        seen.commit(ids, T0 + timedelta(seconds=batch))
        committed += ids
        kept = len(seen)
        assert max_ids - max_ids // SLICES <= kept <= max_ids or kept == len(committed)
        newest = committed[-kept:]
        assert all(seen.contains_many(newest)), batch
        forgotten = committed[: len(committed) - kept]
        assert not any(seen.contains_many(forgotten[-200:]))  # the oldest go, whole slices at a time
        replay, duplicates = seen.deduplicate([(i, None) for i in newest[-50:]], str, T0)
        assert replay == [] and duplicates == min(50, kept)
    assert seen.reserved_bytes == 8 * (max_ids + 2 * (max_ids // SLICES))


def test_an_idle_state_forgets_everything_after_the_retention() -> None:
    seen = SeenIds(timedelta(minutes=10), max_ids=1000)
    seen.commit(["a", "b"], T0)
    assert seen.expire(T0 + timedelta(minutes=11)) == 2 and len(seen) == 0 and "a" not in seen


def test_a_large_batch_is_looked_up_sorted_with_the_same_answers_in_its_order() -> None:
    rng = random.Random(103)
    seen = SeenIds(timedelta(days=1), max_ids=160_000)  # slices of 10,000 ids
    committed = [f"c-{i}" for i in range(55_000)]  # 5 sealed slices and an open one
    seen.commit(committed, T0)
    query = rng.sample(committed, 3_000) + [f"new-{i}" for i in range(3_000)]
    rng.shuffle(query)
    assert len(query) >= 2048  # the sorted lookup
    known = set(committed)
    assert seen.contains_many(query) == [record_id in known for record_id in query]
    pairs = [(record_id, position) for position, record_id in enumerate(query)]
    fresh, duplicates = seen.deduplicate(pairs, str, T0)
    assert duplicates == 3_000
    assert fresh == [pair for pair in pairs if pair[0] not in known]


def test_an_id_committed_twice_while_open_is_sealed_once_and_found_until_forgotten() -> None:
    """The open slice is one sorted array merged per commit: a repeat is kept twice there, once sealed."""
    seen = SeenIds(timedelta(minutes=16), max_ids=16 * 8)  # slices of 8 ids, 1 minute
    seen.commit(["a", "b"], T0)
    seen.commit(["b", "c"], T0)
    assert len(seen) == 4 and seen.contains_many(["a", "b", "c", "d"]) == [True, True, True, False]
    seen.commit(["d"], T0 + timedelta(minutes=2))  # the open slice spans a slice's time: sealed first
    assert len(seen) == 4  # a, b, c sealed (b once) and d open
    assert seen.fresh_positions(["d", "e", "a", "e", "f"]) == [1, 4]
    assert seen.fresh_positions(["e", "f"]) is None
    assert seen.expire(T0 + timedelta(minutes=17)) == 3 and seen.contains_many(["a", "d"]) == [False, True]


def _state(seen: SeenIds) -> tuple[list[int], list[tuple[int, int]], int]:
    """What a SeenIds holds: its open slice and its sealed slices' sorted hashes."""
    sealed = [(int(seen._ring[piece.start]), piece.end - piece.start) for piece in seen._sealed]
    return seen._open.tolist(), sealed, len(seen)


def test_a_commit_of_the_ids_just_found_fresh_remembers_exactly_what_a_plain_commit_does() -> None:
    """The look-up's sorted hashes are taken by the commit of the same list (no second hash and sort);
    a commit of another list, or of more ids than the open slice has room for, hashes its own."""
    rng = random.Random(5)
    reused, plain = SeenIds(timedelta(hours=1), max_ids=64_000), SeenIds(timedelta(hours=1), max_ids=64_000)
    for batch in range(12):
        ids = [f"id-{rng.randrange(10**12)}" for _ in range(rng.choice([2_500, 3_000, 5_000]))]
        at = T0 + timedelta(seconds=batch)
        assert reused.fresh_positions(ids) is None  # every id fresh: the sorted hashes are kept
        other = [f"other-{batch}-{i}" for i in range(3)] if batch % 4 == 3 else ids
        reused.commit(other, at)
        plain.commit(other, at)
        assert _state(reused) == _state(plain), batch
        assert all(reused.contains_many(other))
        assert any(reused.contains_many(ids)) == (other is ids)  # the ids looked up: kept only if committed
    assert len(reused) == len(plain) > 0 and len(plain._sealed) >= 1  # slices of 4,000: some sealed
