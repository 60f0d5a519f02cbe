"""Request pacing: at most ``per_second`` requests, and none before a 429's ``Retry-After`` has passed.

Used by the batch operator's submissions, the batch trigger's polls and the triggerer's
shared sessions (:mod:`~airflow_provider_infinityblue.session_pool`).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_POLLS_PER_SECOND = 25.0
"""A batch trigger's default GET rate (and the batch operator's default for it). Kept here, not in the trigger
module, so that the operator's signature does not import the trigger (and Airflow's trigger base classes)."""


class RequestPace:
    """Spaces requests evenly at ``per_second`` (no bursts), and holds all of them after a 429.

    ``per_second=None`` sets no rate: only a hold delays requests.

    >>> now = [0.0]
    >>> pace = RequestPace(4, clock=lambda: now[0])
    >>> [pace.reserve() for _ in range(3)]  # seconds each request must wait before it is sent
    [0.0, 0.25, 0.5]
    >>> pace.hold(10.0)  # the API said Retry-After: 10
    >>> pace.reserve()
    10.0
    """

    def __init__(self, per_second: float | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        if per_second is not None and not (
            isinstance(per_second, (int, float)) and math.isfinite(per_second) and per_second > 0
        ):
            raise ValueError(f"a request rate must be a positive, finite number per second, got {per_second!r}")
        self.interval = 0.0 if per_second is None else 1.0 / per_second
        self.clock = clock
        self._next = -math.inf

    def reserve(self) -> float:
        """Take the next slot; return how long to wait before sending (0 when it may go now)."""
        now = self.clock()
        slot = max(now, self._next)
        self._next = slot + self.interval
        return slot - now

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (a 429's ``Retry-After``, or a backoff after one)."""
        self._next = max(self._next, self.clock() + seconds)

    def wait(self) -> None:
        """Block this thread until the next slot (the worker's submissions)."""
        if (delay := self.reserve()) > 0:
            time.sleep(delay)

    async def await_slot(self, *, latest: float | None = None) -> None:
        """Wait for the next slot without blocking the event loop (the trigger's polls).

        ``latest`` (a clock instant) cuts the wait short: a wait's last look at its deadline goes out then.
        """
        delay = self.reserve()
        if latest is not None:
            delay = min(delay, latest - self.clock())
        if delay > 0:
            await asyncio.sleep(delay)
