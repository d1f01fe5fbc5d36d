"""What may be committed: offsets of loaded batches, kept while commits fail, dropped on revoke or rejoin."""

from __future__ import annotations

from pipelines.offset_tracker import OffsetTracker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_loaded_offsets_are_pending_until_committed_and_never_move_backwards() -> None:
    tracker = OffsetTracker(rejoin_after=60)
    assert not tracker
    tracker.loaded({("t", 0): 10, ("t", 1): 5})
    tracker.loaded({("t", 0): 7, ("t", 2): 3})  # an older offset of partition 0 does not win
    assert dict(tracker.pending) == {("t", 0): 10, ("t", 1): 5, ("t", 2): 3}
    tracker.committed()
    assert not tracker and dict(tracker.pending) == {}


def test_revoked_partitions_are_not_ours_to_commit() -> None:
    tracker = OffsetTracker(rejoin_after=60)
    tracker.loaded({("t", 0): 10, ("t", 1): 5})
    tracker.revoked([("t", 1), ("t", 9)])
    assert dict(tracker.pending) == {("t", 0): 10}


def test_commits_failing_longer_than_rejoin_after_ask_for_a_new_consumer() -> None:
    clock = FakeClock()
    tracker = OffsetTracker(rejoin_after=60, clock=clock)
    tracker.loaded({("t", 0): 10})
    assert tracker.commit_failed() is False  # the first failure starts the count
    clock.now = 60
    assert tracker.commit_failed() is False  # not longer than 60 s yet
    assert dict(tracker.pending) == {("t", 0): 10}  # kept for the next commit
    clock.now = 60.5
    assert tracker.commit_failed() is True
    assert not tracker  # dropped: the new consumer resumes from the group's last commit
    clock.now = 61
    tracker.loaded({("t", 0): 12})
    assert tracker.commit_failed() is False  # a new count


def test_a_commit_that_goes_through_resets_the_failure_count() -> None:
    clock = FakeClock()
    tracker = OffsetTracker(rejoin_after=60, clock=clock)
    tracker.loaded({("t", 0): 1})
    tracker.commit_failed()
    clock.now = 50
    tracker.committed()
    tracker.loaded({("t", 0): 2})
    clock.now = 100
    assert tracker.commit_failed() is False
    clock.now = 150
    assert tracker.commit_failed() is False
    clock.now = 161
    assert tracker.commit_failed() is True
