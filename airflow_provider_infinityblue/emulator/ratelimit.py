"""A token bucket: ``rate`` requests per second, with bursts of up to one second's worth."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


class TokenBucket:
    """Admits ``rate`` requests per second on average; a full bucket admits a burst of ``rate``.

    >>> clock = iter([0.0, 0.0, 0.0, 0.0, 0.5]).__next__
    >>> bucket = TokenBucket(2, clock=clock)
    >>> bucket.take(), bucket.take(), bucket.take(), bucket.take()
    (0.0, 0.0, 0.5, 0.0)
    """

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._capacity = max(1.0, rate)
        self._clock = clock
        self._tokens = self._capacity
        self._refilled_at = clock()

    def take(self) -> float:
        """Take one token: 0.0 when the request is admitted, else the seconds until a token is free."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + (now - self._refilled_at) * self.rate)
        self._refilled_at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate


def retry_after_header(wait_seconds: float) -> str:
    """``Retry-After`` in whole seconds, never 0: a client told 0 would come straight back.

    >>> retry_after_header(0.2), retry_after_header(1.0), retry_after_header(1.01)
    ('1', '1', '2')
    """
    return str(max(1, math.ceil(wait_seconds)))
