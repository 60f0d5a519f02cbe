"""When and how long to wait before repeating a request to the InfinityBlue API.

One policy serves the worker (``requests``) and the triggerer (``aiohttp``), so both
retry the same failures with the same delays. Which failures are safe to repeat
for a submission is decided by the hook before the policy is asked: a submission
that may have reached the API never comes here as retryable.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_infinityblue.exceptions import InfinityBlueError


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header: delta-seconds or an HTTP date.

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0)
    10.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # HTTP dates are GMT; a missing zone means the same.
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with jitter, honouring ``Retry-After``.

    ``max_attempts`` counts the first try. The n-th retry waits a random time between
    half and all of ``min(max_backoff, initial_backoff * 2 ** (n - 1))``, so that many
    tasks failing together do not come back together. A 429's ``Retry-After`` replaces
    that delay; one longer than ``max_retry_after`` is not waited for.

    >>> policy = RetryPolicy(max_attempts=3, initial_backoff=1, max_backoff=4)
    >>> 0.5 <= policy.backoff(1) <= 1 and 2 <= policy.backoff(3) <= 4
    True
    """

    max_attempts: int = 5
    initial_backoff: float = 1.0
    max_backoff: float = 30.0
    max_retry_after: float = 300.0

    def backoff(self, retry_number: int) -> float:
        ceiling = min(self.max_backoff, self.initial_backoff * 2 ** (retry_number - 1))
        return random.uniform(ceiling / 2, ceiling)

    def delay_before_retry(
        self, error: InfinityBlueError, attempt: int, *, deadline: float | None = None
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None when ``error`` is final.

        ``deadline`` is a ``time.monotonic()`` instant that no wait may cross.
        """
        if attempt >= self.max_attempts or not error.transient:
            return None
        retry_after: float | None = getattr(error, "retry_after", None)
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            delay = retry_after
        else:
            delay = self.backoff(attempt)
        if deadline is not None and time.monotonic() + delay >= deadline:
            return None
        return delay
