"""A token bucket for ``--rate``: pure, with an injectable clock and sleep so tests need no waiting."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["TokenBucket"]


class TokenBucket:
    """Allows ``rate`` tokens per second on average, bursts up to ``burst`` tokens."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self, tokens: float = 1.0) -> float:
        """Take ``tokens``, sleeping until they are available; returns the seconds slept.

        Requests larger than the burst are allowed: the bucket goes into debt and later calls wait.
        """
        self._refill()
        self._tokens -= tokens
        slept = 0.0
        if self._tokens < 0:
            wait = -self._tokens / self.rate
            self._sleep(wait)
            slept = wait
            self._refill()
        return slept
