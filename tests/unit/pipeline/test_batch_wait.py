"""``--until-idle N`` ends N seconds after the last records, not up to one batch wait later."""

from __future__ import annotations

import pytest

from pipelines.kafka_runner import batch_wait


@pytest.mark.parametrize(
    ("until_idle", "idle", "expected"),
    [
        (None, 0.0, 0.5),  # no --until-idle: always the batch wait
        (None, 100.0, 0.5),
        (5.0, 0.0, 0.5),  # records just now: the whole wait
        (5.0, 4.0, 0.5),  # 1 s left, more than one wait
        (5.0, 4.7, pytest.approx(0.3)),  # less than a wait left: only what is left
        (5.0, 4.999, pytest.approx(0.001)),
        (5.0, 5.0, 0.5),  # idle long enough (the run is waiting to be drained): the whole wait again
        (5.0, 7.5, 0.5),
    ],
)
def test_the_wait_is_cut_to_the_idle_time_left(
    until_idle: float | None, idle: float, expected: float
) -> None:
    assert batch_wait(0.5, until_idle, idle) == expected


def test_an_idle_run_reaches_its_deadline_exactly() -> None:
    """Waits as the idle loop takes them, from the last records on, add up to ``until_idle``."""
    idle, waits = 0.0, 0
    while idle < 5.0:
        idle += batch_wait(0.5, 5.0, idle)
        waits += 1
    assert idle == pytest.approx(5.0)
    assert waits == 10
    idle = 0.3  # the last batch took 0.3 s to process: the deadline stays 5 s after its records
    while idle < 5.0:
        idle += batch_wait(0.5, 5.0, idle)
    assert idle == pytest.approx(5.0)
