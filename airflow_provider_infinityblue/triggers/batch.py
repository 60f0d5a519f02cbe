"""The trigger that waits for a whole wave of a batch's generations at once."""

from __future__ import annotations

import asyncio
import heapq
import random
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError, InfinityBlueRateLimitError
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.pacing import DEFAULT_POLLS_PER_SECOND, RequestPace
from airflow_provider_infinityblue.wait import (
    DEFAULT_NOT_FOUND_GRACE,
    POLL_JITTER,
    GenerationOutcome,
    GenerationWait,
    check_poll_interval,
    check_positive_seconds,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping

    from airflow_provider_infinityblue.retry import RetryPolicy

CONCURRENT_LOOKS = 8
"""GETs a batch trigger has on the wire at once (its request rate is bounded separately)."""
SWEEP_SECONDS = 1.0
"""Once enough rows have finished (and ``fire_not_before`` has passed), the trigger goes on looking until no
row has finished for this long, for at most one more poll interval: rows finishing together are handed to
the worker together, also when ``fire_not_before`` held the event until a cohort of rows was finishing."""


@dataclass
class InFlightRow:
    """A submitted row the trigger waits for, and when it looks at it next (UNIX times)."""

    row: int
    generation_id: str
    submitted_at: float
    next_look_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "generation_id": self.generation_id,
            "submitted_at": self.submitted_at,
            "next_look_at": self.next_look_at,
        }

    @classmethod
    def from_json(cls, values: Mapping[str, Any]) -> InFlightRow:
        return cls(
            row=int(values["row"]),
            generation_id=str(values["generation_id"]),
            submitted_at=float(values["submitted_at"]),
            next_look_at=float(values.get("next_look_at") or 0.0),
        )


class _QuietLog:
    """A row's progress goes to debug: a wave of hundreds of rows would drown the trigger's log otherwise."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def info(self, msg: str, /, *args: Any) -> None:
        self.logger.debug(msg, *args)

    def warning(self, msg: str, /, *args: Any) -> None:
        self.logger.warning(msg, *args)


class InfinityBlueBatchTrigger(BaseTrigger):
    """Poll every in-flight generation of a batch from one trigger, on one HTTP session, until the worker is needed.

    Each row is decided by its own :class:`~airflow_provider_infinityblue.wait.GenerationWait`, exactly as a
    single video's trigger decides it (404 grace, transient errors waited through, ``Retry-After``, the
    deadline ``submitted_at + timeout`` with one last look). The trigger only reads (``GET``), at most
    ``max_polls_per_second`` requests per second and none while a 429's ``Retry-After`` runs.

    It fires one event, ``{"finished": [...], "in_flight": [...]}``, when every row has finished, or
    (``refill_at`` > 0) once ``refill_at`` rows have finished, or ``refill_window`` seconds after the first
    one finished: the worker then submits the next wave and defers to a new trigger with the rows still in
    flight. Each finished row is ``{"row": ..., **GenerationOutcome payload}``; each row in flight keeps
    its next look time, so handing it over never costs an extra GET. Everything it needs is in its
    serialized state, so a restarted triggerer resumes the same wait.

    Example::

        self.defer(
            trigger=InfinityBlueBatchTrigger(
                in_flight=[{"row": 0, "generation_id": "abcd1234", "submitted_at": time.time()}],
                poll_interval=10,
                timeout=3600,
                refill_at=25,
            ),
            method_name="execute_complete",
        )

    :param in_flight: the rows to wait for: ``row``, ``generation_id``, ``submitted_at`` (UNIX time) and
        optionally ``next_look_at`` (UNIX time; default: one ``poll_interval`` after the submission).
    :param infinityblue_conn_id: the Airflow connection to use.
    :param poll_interval: seconds between looks at one row (at least 1).
    :param timeout: seconds from a row's submission after which its wait ends with ``timeout``.
    :param not_found_grace: seconds after a row's submission during which a 404 means "not visible yet".
    :param max_polls_per_second: the trigger's request rate to the API.
    :param refill_at: fire once this many rows have finished (0: only when all have).
    :param refill_window: with ``refill_at``, fire this many seconds after the first row finished.
    :param fire_not_before: a UNIX time before which the trigger never fires, whatever has finished (see
        :func:`~airflow_provider_infinityblue.operators.batch.resume_lag`).
    """

    def __init__(
        self,
        in_flight: list[dict[str, Any]],
        infinityblue_conn_id: str = InfinityBlueHook.default_conn_name,
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        max_polls_per_second: float = DEFAULT_POLLS_PER_SECOND,
        refill_at: int = 0,
        refill_window: float = 30.0,
        fire_not_before: float | None = None,
    ) -> None:
        super().__init__()
        self.poll_interval = check_poll_interval(poll_interval)
        self.rows = [InFlightRow.from_json(values) for values in in_flight]
        for row in self.rows:
            if not row.next_look_at:
                row.next_look_at = row.submitted_at + self.poll_interval
        self.infinityblue_conn_id = infinityblue_conn_id
        self.timeout = check_positive_seconds(timeout, "timeout")
        self.not_found_grace = check_positive_seconds(not_found_grace, "not_found_grace")
        self.max_polls_per_second = check_positive_seconds(max_polls_per_second, "max_polls_per_second")
        self.refill_at = int(refill_at)
        self.refill_window = check_positive_seconds(refill_window, "refill_window")
        self.fire_not_before = float(fire_not_before) if fire_not_before is not None else None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "in_flight": [row.to_json() for row in self.rows],
                "infinityblue_conn_id": self.infinityblue_conn_id,
                "poll_interval": self.poll_interval,
                "timeout": self.timeout,
                "not_found_grace": self.not_found_grace,
                "max_polls_per_second": self.max_polls_per_second,
                "refill_at": self.refill_at,
                "refill_window": self.refill_window,
                "fire_not_before": self.fire_not_before,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            async with InfinityBlueHook(self.infinityblue_conn_id) as hook:
                retry = (await hook.asettings()).retry
                payload = await _Wave(self, retry).run(hook)
        except InfinityBlueConfigurationError as error:  # the connection cannot be used: every row says so
            payload = {
                "finished": [
                    {"row": row.row, **GenerationOutcome.of_error(row.generation_id, error).to_payload()}
                    for row in self.rows
                ],
                "in_flight": [],
            }
        yield TriggerEvent(payload)


class _Wave:
    """One trigger's run: looks at due rows, paced, until the fire rule holds."""

    def __init__(self, trigger: InfinityBlueBatchTrigger, retry: RetryPolicy) -> None:
        self.trigger = trigger
        self.retry = retry
        self.log = trigger.log
        quiet = _QuietLog(trigger.log)
        self.rows = {row.row: row for row in trigger.rows}
        self.waits = {
            row.row: GenerationWait(
                row.generation_id,
                deadline=row.submitted_at + trigger.timeout,
                poll_interval=trigger.poll_interval,
                submitted_at=row.submitted_at,
                not_found_grace=trigger.not_found_grace,
                retry=retry,
                logger=quiet,
            )
            for row in trigger.rows
        }
        self.due: list[tuple[float, int]] = [(row.next_look_at, row.row) for row in trigger.rows]
        heapq.heapify(self.due)
        self.finished: list[dict[str, Any]] = []
        self.first_finished_at: float | None = None
        self.fire_at: float | None = None
        self.fire_at_latest: float | None = None
        self.pace = RequestPace(trigger.max_polls_per_second)
        self.looking: dict[int, asyncio.Task[None]] = {}
        self.changed = asyncio.Event()

    async def run(self, hook: InfinityBlueHook) -> dict[str, Any]:
        slots = asyncio.Semaphore(CONCURRENT_LOOKS)
        self.log.info(
            "Waiting for %d InfinityBlue generations (poll every %g s, at most %g GETs/s)",
            len(self.rows),
            self.trigger.poll_interval,
            self.trigger.max_polls_per_second,
        )
        try:
            while not self._time_to_fire():
                now = time.time()
                if self.due and self.due[0][0] <= now:
                    await slots.acquire()
                    await self.pace.await_slot()
                    _, index = heapq.heappop(self.due)
                    self.looking[index] = asyncio.create_task(self._look(hook, index, slots))
                    continue
                self.changed.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), self._sleep_for(now))
        finally:
            for task in self.looking.values():  # their rows go back in flight, to be looked at at once
                task.cancel()
            await asyncio.gather(*self.looking.values(), return_exceptions=True)
        return self._payload()

    async def _look(self, hook: InfinityBlueHook, index: int, slots: asyncio.Semaphore) -> None:
        row, wait = self.rows[index], self.waits[index]
        try:
            answer = await hook.apoll_generation(row.generation_id, deadline=wait.request_deadline())
            if isinstance(answer, InfinityBlueRateLimitError):  # the whole trigger slows down, not one row
                self.pace.hold(answer.retry_after if answer.retry_after is not None else self.retry.backoff(1))
            step = wait.observe(answer)
            if isinstance(step, GenerationOutcome):
                self._finish(index, step)
            else:
                row.next_look_at = time.time() + step.delay
                heapq.heappush(self.due, (row.next_look_at, index))
        finally:
            self.looking.pop(index, None)
            slots.release()
            self.changed.set()

    def _finish(self, index: int, outcome: GenerationOutcome) -> None:
        self.finished.append({"row": index, **outcome.to_payload()})
        del self.rows[index]
        now = time.time()
        if self.first_finished_at is None:
            self.first_finished_at = now
        if self.fire_at is not None and self.fire_at_latest is not None:  # sweeping: wait for a quiet moment
            self.fire_at = min(max(self.fire_at, now + SWEEP_SECONDS), self.fire_at_latest)
        if outcome.status != "success":
            self.log.warning("Row %d (generation %s) ended %s: %s", index, outcome.generation_id, outcome.status,
                             outcome.message)  # fmt: skip

    def _time_to_fire(self) -> bool:
        now = time.time()
        if self.trigger.fire_not_before is not None and now < self.trigger.fire_not_before:
            return False
        if not self.rows:
            return True
        if self.trigger.refill_at <= 0 or self.first_finished_at is None:
            return False
        if self.fire_at is None and (
            len(self.finished) >= self.trigger.refill_at or now >= self.first_finished_at + self.trigger.refill_window
        ):
            self.fire_at = now + SWEEP_SECONDS  # rows finishing together are handed over together
            self.fire_at_latest = self.fire_at + self.trigger.poll_interval
        return self.fire_at is not None and now >= self.fire_at

    def _sleep_for(self, now: float) -> float:
        moments = [self.due[0][0]] if self.due else []
        if self.trigger.fire_not_before is not None and now < self.trigger.fire_not_before:
            moments.append(self.trigger.fire_not_before)
        if self.fire_at is not None:
            moments.append(self.fire_at)
        elif self.trigger.refill_at > 0 and self.first_finished_at is not None:
            moments.append(self.first_finished_at + self.trigger.refill_window)
        # Bounded, so that a clock jump or a lost wake-up costs at most a second.
        return min(1.0, max(0.0, min(moments) - now)) if moments else 1.0

    def _payload(self) -> dict[str, Any]:
        now = time.time()
        in_flight = []
        for index, row in self.rows.items():
            if index in self.looking or row.next_look_at < now:  # cut short: look again soon, spread out
                row.next_look_at = now + random.uniform(0, POLL_JITTER * self.trigger.poll_interval)
            in_flight.append(row.to_json())
        self.log.info("%d finished, %d still in flight: handing over to the worker", len(self.finished), len(in_flight))
        return {"finished": self.finished, "in_flight": in_flight}
