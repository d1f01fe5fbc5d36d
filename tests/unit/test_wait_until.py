"""The one wait helper of the tests (tests/fixtures/waiting.py)."""

from __future__ import annotations

import pytest

from tests.fixtures.waiting import wait_until


def test_returns_the_first_truthy_value_without_waiting_when_already_true() -> None:
    values = iter([0, None, "", {"seen": 3}])
    assert wait_until(lambda: next(values), timeout=5, interval=0, message="a value") == {"seen": 3}


def test_times_out_with_the_message_after_one_last_check() -> None:
    calls: list[int] = []

    def never() -> bool:
        calls.append(1)
        return False

    with pytest.raises(AssertionError, match=r"timed out after 0s waiting for the spool to drain"):
        wait_until(never, timeout=0, interval=0, message="the spool to drain")
    assert calls == [1]


def test_a_callable_message_is_built_only_on_timeout() -> None:
    built: list[str] = []

    def message() -> str:
        built.append("x")
        return "log tail"

    assert wait_until(lambda: True, timeout=0, message=message) is True
    assert built == []
    with pytest.raises(AssertionError, match="log tail"):
        wait_until(lambda: False, timeout=0, message=message)
    assert built == ["x"]


def test_an_exception_in_the_predicate_propagates_at_once() -> None:
    def crashed() -> bool:
        raise AssertionError("the server exited with 1")

    with pytest.raises(AssertionError, match="exited with 1"):
        wait_until(crashed, timeout=60, message="the server")
