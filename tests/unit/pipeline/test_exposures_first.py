"""Exposures first on a backlog: when an events partition is paused and resumed (decision 0107)."""

from __future__ import annotations

from pipelines.exposures_first import ExposuresFirst


def test_an_events_partition_waits_while_its_exposures_lag_and_only_then() -> None:
    rule = ExposuresFirst(max_lag=100, max_pause=60)
    moves = rule.decide({0: 5_000, 1: 100, 2: None}, [0, 1, 2, 3], now=0)
    assert (moves.pause, moves.resume) == ({0}, set())  # 1: at the bound; 2: unknown; 3: no exposures lag
    assert rule.decide({0: 4_000}, [0, 1], now=1).pause == set()  # still behind: stays paused, no move
    moves = rule.decide({0: 100}, [0, 1], now=2)
    assert (moves.pause, moves.resume) == (set(), {0})
    assert rule.decide({0: 101}, [0], now=3).pause == {0}  # behind again
    assert rule.decide({0: None}, [0], now=4).resume == {0}  # unknown: never a reason to wait
    assert rule.pauses == 2


def test_a_pause_ends_after_max_pause_and_is_not_taken_again_for_as_long() -> None:
    rule = ExposuresFirst(max_lag=0, max_pause=10)
    assert rule.decide({7: 1}, [7], now=100).pause == {7}
    assert rule.decide({7: 1}, [7], now=109.9).resume == set()
    assert rule.decide({7: 1}, [7], now=110).resume == {7}  # a stalled exposures fetch must not stop events
    assert rule.decide({7: 1}, [7], now=119.9).pause == set()
    assert rule.decide({7: 1}, [7], now=120).pause == {7}


def test_a_new_assignment_forgets_every_pause() -> None:
    rule = ExposuresFirst(max_lag=0, max_pause=10)
    rule.decide({1: 5}, [1], now=0)
    rule.reset()
    assert rule.paused == {}
    assert rule.decide({1: 0}, [1], now=1).resume == set()  # nothing to resume: it was forgotten


def test_a_lag_the_broker_gave_stands_until_the_partition_is_known_locally() -> None:
    """Paused on the broker's word, an events partition stays paused while its exposures partition is not
    known locally yet (nothing read from it), instead of being resumed as 'unknown' one batch later."""
    rule = ExposuresFirst(max_lag=100, max_pause=60)
    rule.broker_lags.update({0: 50_000, 1: 20})
    assert rule.decide(rule.with_broker_lags({0: None, 1: None, 2: None}), [0, 1, 2], now=0).pause == {0}
    moves = rule.decide(rule.with_broker_lags({0: None, 1: None, 2: None}), [0, 1, 2], now=1)
    assert (moves.pause, moves.resume) == (set(), set())  # 0 stays paused: the broker's lag stands
    assert rule.decide(rule.with_broker_lags({0: 80, 1: None}), [0, 1], now=2).resume == {0}  # known: 80
    rule.reset()
    assert rule.with_broker_lags({0: None}) == {0: None}  # a new assignment forgets the broker's lags
