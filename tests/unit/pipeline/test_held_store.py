"""The held-events store against a plain model: a list of (held_at, unit, entry) in holding order.

Random operations (batches held, single events restored, releases by time and by the cap, units dropped,
units looked up and their entries updated) on both; after each, the same events in the same order, the
same units holding events, the same counts — including units whose ``hash()`` values collide, and with
batches merged into the newest chunk (segments of several hold times in one chunk, its index extended).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from pipelines.held_store import HeldStore

T0 = datetime(2026, 12, 1, tzinfo=UTC)


class _Model:
    def __init__(self) -> None:
        self.rows: list[tuple[datetime, str, tuple]] = []  # (held_at, unit, entry), holding order

    def release(self, horizon: datetime, max_held: int) -> tuple[int, int]:
        released = early = 0
        while self.rows:
            held_at, _, entry = self.rows[0]
            if held_at >= horizon and len(self.rows) <= max_held:
                # the store releases whole runs of one held_at in order: the first young event stops it
                break
            if held_at >= horizon and not entry[4]:
                early += 1
            self.rows.pop(0)
            released += 1
        return released, early


class _Unit(str):
    """A unit id whose hash collides with every other one's of the same ``bucket``."""

    __slots__ = ("bucket",)

    def __new__(cls, value: str, bucket: int) -> _Unit:
        unit = super().__new__(cls, value)
        unit.bucket = bucket
        return unit

    def __hash__(self) -> int:
        return self.bucket

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, other)


def _units(rng: random.Random, collide: bool) -> list[str]:
    names = [f"u{n}" for n in range(12)]
    return [_Unit(name, n % 3) for n, name in enumerate(names)] if collide else names


@pytest.mark.parametrize("merge_up_to", [0, 25, 10_000])
@pytest.mark.parametrize("seed", range(30))
def test_the_store_holds_releases_and_finds_what_the_model_does(seed: int, merge_up_to: int) -> None:
    rng = random.Random(seed)
    units = _units(rng, collide=seed % 2 == 1)
    store, model = HeldStore(merge_up_to=merge_up_to), _Model()
    now = T0
    ids = iter(range(1_000_000))
    for _ in range(60):
        action = rng.random()
        if action < 0.35:  # a batch
            count = rng.randrange(0, 15)
            chosen = [rng.choice(units) for _ in range(count)]
            entries = [
                (f"e{next(ids)}", "purchase", rng.choice([None, 1.5]), now, rng.choice([(), ("exp-a",)]))
                for _ in chosen
            ]
            store.hold_many(
                now,
                chosen,
                [e[0] for e in entries],
                [e[1] for e in entries],
                [e[2] for e in entries],
                [e[3] for e in entries],
                [e[4] for e in entries],
            )
            model.rows += [(now, unit, entry) for unit, entry in zip(chosen, entries, strict=True)]
        elif action < 0.5:  # one restored event, sometimes an id its unit holds already
            unit = rng.choice(units)
            mine = [entry for _, owner, entry in model.rows if owner == unit]
            if mine and rng.random() < 0.4:
                entry = rng.choice(mine)
            else:
                entry = (f"r{next(ids)}", "pageview", None, now, ())
            held_at = rng.choice([now, now - timedelta(minutes=1)])
            expected = not any(e[0] == entry[0] for e in mine)
            assert store.hold_one(held_at, unit, entry) is expected
            if expected:
                model.rows.append((held_at, unit, entry))
        elif action < 0.7:  # release
            horizon = now - timedelta(minutes=rng.choice([0, 2, 5]))
            cap = rng.randrange(0, 40)
            assert store.release(horizon, cap) == model.release(horizon, cap)
        elif action < 0.8:  # drop some units
            gone = set(rng.sample(units, 2))
            dropped = sum(1 for _, unit, _ in model.rows if unit in gone)
            assert store.drop(lambda unit, gone=gone: unit not in gone) == dropped
            model.rows = [row for row in model.rows if row[1] not in gone]
        else:  # look units up, give some of their events an experiment
            asked = sorted(set(rng.sample(units, rng.randrange(1, 6))))
            holding = [unit for unit in asked if any(owner == unit for _, owner, _ in model.rows)]
            assert store.holding(asked) == holding
            view, where = store.view(holding)
            assert view == {
                unit: [entry for _, owner, entry in model.rows if owner == unit] for unit in holding
            }
            for unit in holding:
                for index, entry in enumerate(view[unit]):
                    if rng.random() < 0.5:
                        view[unit][index] = (*entry[:4], (*entry[4], "exp-b"))
            store.write_back(view, holding, where)
            updated = {entry[0]: entry for unit in holding for entry in view[unit]}
            model.rows = [(at, unit, updated.get(entry[0], entry)) for at, unit, entry in model.rows]
        now += timedelta(minutes=rng.choice([0, 1, 2]))
        assert store.entries() == [(unit, entry) for _, unit, entry in model.rows]
        assert len(store) == len(model.rows)
        assert store.units() == sorted({unit for _, unit, _ in model.rows})


@pytest.mark.parametrize("merge_up_to", [0, 25, 10_000])
@pytest.mark.parametrize("seed", range(30))
def test_events_restored_in_bulk_are_held_as_one_by_one(seed: int, merge_up_to: int) -> None:
    """``hold_restored`` against ``hold_one`` per event, in order, on two stores fed the same batches,
    releases and drops: the same events held (an id its unit holds already, before or earlier in the same
    call, is not held twice), in the same release order, with the same count."""
    rng = random.Random(seed)
    units = _units(rng, collide=seed % 2 == 1)
    bulk, single = HeldStore(merge_up_to=merge_up_to), HeldStore(merge_up_to=merge_up_to)
    now = T0
    ids = iter(range(1_000_000))
    for _ in range(40):
        action = rng.random()
        if action < 0.3:  # a batch, the same into both
            chosen = [rng.choice(units) for _ in range(rng.randrange(0, 15))]
            entries = [(f"e{next(ids)}", "purchase", rng.choice([None, 1.5]), now, ()) for _ in chosen]
            for store in (bulk, single):
                store.hold_many(now, list(chosen), *([entry[i] for entry in entries] for i in range(5)))
        elif action < 0.6:  # events read back from the warehouse: runs of held_at, ids held or repeated
            held = [(unit, entry) for unit, entry in single.entries()]
            rows: list[tuple[datetime, str, tuple]] = []
            for held_at in sorted({now - timedelta(minutes=rng.choice([0, 1, 3])) for _ in range(3)}):
                for _ in range(rng.randrange(0, 8)):
                    roll = rng.random()
                    if held and roll < 0.3:
                        unit, entry = rng.choice(held)  # its unit holds it already
                    elif rows and roll < 0.5:
                        _, unit, entry = rng.choice(rows)  # twice in this read
                    else:
                        unit = rng.choice(units)
                        entry = (
                            f"r{next(ids)}",
                            "pageview",
                            rng.choice([None, 2.0]),
                            now,
                            rng.choice([(), ("a",)]),
                        )
                    rows.append((held_at, unit, entry))
            runs, start = [], 0
            for position in range(1, len(rows) + 1):
                if position == len(rows) or rows[position][0] != rows[start][0]:
                    runs.append((rows[start][0], start, position))
                    start = position
            expected = sum(single.hold_one(at, unit, entry) for at, unit, entry in rows)
            columns = [[entry[i] for _, _, entry in rows] for i in range(5)]
            assert bulk.hold_restored(runs, [unit for _, unit, _ in rows], *columns) == expected
        elif action < 0.8:  # release
            horizon, cap = now - timedelta(minutes=rng.choice([0, 2, 5])), rng.randrange(0, 40)
            assert bulk.release(horizon, cap) == single.release(horizon, cap)
        else:  # drop some units
            gone = set(rng.sample(units, 2))
            assert bulk.drop(lambda unit, gone=gone: unit not in gone) == single.drop(
                lambda unit, gone=gone: unit not in gone
            )
        now += timedelta(minutes=rng.choice([0, 1, 2]))
        assert bulk.entries() == single.entries()
        assert len(bulk) == len(single)
        assert bulk.holding(units) == single.holding(units)
