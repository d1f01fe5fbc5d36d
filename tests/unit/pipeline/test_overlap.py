"""The one-job background runner of the overlapped load: results, errors and misuse reach the caller."""

from __future__ import annotations

import threading

import pytest

from pipelines.overlap import OneInFlight


def test_a_job_runs_in_another_thread_and_its_result_or_error_comes_back_on_wait() -> None:
    runner = OneInFlight("test")
    try:
        runner.submit(threading.get_ident)
        assert runner.busy
        assert runner.wait() != threading.get_ident() and not runner.busy

        def fail() -> None:
            raise ValueError("insert failed")

        runner.submit(fail)
        with pytest.raises(ValueError, match="insert failed"):
            runner.wait()
    finally:
        runner.close()


def test_only_one_job_is_in_flight_and_wait_needs_one() -> None:
    runner = OneInFlight("test")
    gate = threading.Event()
    try:
        runner.submit(gate.wait, 5)
        with pytest.raises(RuntimeError, match="still in flight"):
            runner.submit(gate.wait, 5)
        gate.set()
        assert runner.wait() is True
        with pytest.raises(RuntimeError, match="no job in flight"):
            runner.wait()
    finally:
        runner.close()
