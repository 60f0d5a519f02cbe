"""The trigger that waits for a generation in the triggerer."""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.wait import (
    DEFAULT_NOT_FOUND_GRACE,
    GenerationOutcome,
    GenerationWait,
    check_poll_interval,
    check_positive_seconds,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# How long after the trigger's own deadline Airflow gives up on a trigger that never fired (a triggerer
# down for good), when an operator defers to it; the trigger normally ends first, with a timeout event.
DEFERRAL_GRACE = timedelta(minutes=5)

__all__ = ["DEFERRAL_GRACE", "GenerationOutcome", "InfinityBlueBatchTrigger", "InfinityBlueVideoTrigger"]


class InfinityBlueVideoTrigger(BaseTrigger):
    """Poll a generation from the triggerer until it finishes, fails or runs out of time.

    It only reads (``GET``), on one ``aiohttp`` session that is closed however the trigger
    ends, cancellation included, and decides through the provider's wait engine
    (:class:`~airflow_provider_infinityblue.wait.GenerationWait`), exactly as a worker would:
    transient failures never end it before its deadline, a 429's ``Retry-After`` is honoured,
    and a 404 soon after the submission means "not visible yet". The deadline is an absolute
    time, serialized with the trigger with everything else it needs, so a restarted triggerer
    resumes the same wait, and a trigger that starts past its deadline still looks once. It
    yields exactly one event: a :class:`~airflow_provider_infinityblue.wait.GenerationOutcome` payload.

    Example::

        self.defer(
            trigger=InfinityBlueVideoTrigger("abcd1234efgh", "infinityblue_default", poll_interval=10, timeout=1800),
            method_name="execute_complete",
        )

    :param generation_id: the remote task id returned by the submission.
    :param infinityblue_conn_id: the Airflow connection to use.
    :param poll_interval: seconds between status requests (at least 1).
    :param end_time: UNIX time at which to give up with a ``timeout`` event.
    :param timeout: seconds from now, used when ``end_time`` is not given.
    :param submitted_at: UNIX time of the submission; a 404 within ``not_found_grace`` seconds of
        it means the generation is not visible yet. Default: the trigger's creation.
    :param not_found_grace: see ``submitted_at``.
    """

    def __init__(
        self,
        generation_id: str,
        infinityblue_conn_id: str = InfinityBlueHook.default_conn_name,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        timeout: float = 3600.0,
        submitted_at: float | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
    ) -> None:
        super().__init__()
        self.generation_id = generation_id
        self.infinityblue_conn_id = infinityblue_conn_id
        self.poll_interval = check_poll_interval(poll_interval)
        self.end_time = (
            float(end_time) if end_time is not None else time.time() + check_positive_seconds(timeout, "timeout")
        )
        self.submitted_at = float(submitted_at) if submitted_at is not None else time.time()
        self.not_found_grace = check_positive_seconds(not_found_grace, "not_found_grace")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "generation_id": self.generation_id,
                "infinityblue_conn_id": self.infinityblue_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "submitted_at": self.submitted_at,
                "not_found_grace": self.not_found_grace,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # A triggerer starts thousands of triggers within moments (a restart, a backfill). The first look's
        # share of the jitter (the wait's arun would sleep it first too) is slept before anything else, so
        # that each then reads the connection, leases the session and looks at its own moment: not all of
        # them waiting for the first one's connection read or session, then resuming in one turn of the loop.
        await asyncio.sleep(GenerationWait.first_look_delay(self.poll_interval, self.end_time))
        hook = InfinityBlueHook(self.infinityblue_conn_id)
        try:
            # What `async with hook` does, spelled out: `async with` would keep the hook's bound __aexit__ in
            # this frame, one more object for each waiting trigger.
            try:
                await hook.aget_conn()
                wait = GenerationWait(
                    self.generation_id,
                    deadline=self.end_time,
                    poll_interval=self.poll_interval,
                    submitted_at=self.submitted_at,
                    not_found_grace=self.not_found_grace,
                    retry=(await hook.asettings()).retry,
                    logger=_line_logger(type(self)),
                )
                outcome = await wait.alook_until_done(hook)
            finally:
                await hook.aclose()
        except InfinityBlueConfigurationError as error:  # the connection cannot be used: say so, in the event
            outcome = GenerationOutcome.of_error(self.generation_id, error)
        yield TriggerEvent(outcome.to_payload())


class _LinePerLogger:
    """Logs as a trigger's ``self.log`` does, through a logger made for each line instead of one the trigger keeps.

    ``self.log`` (Airflow's LoggingMixin) keeps the logger it makes, so every waiting trigger would hold
    one: about a kilobyte and seven objects for the garbage collector to go through, times the thousands
    of triggers a triggerer runs. A wait logs a few lines (a status change, a transient failure), and
    making a logger for each costs little. One of these serves every trigger of a class.
    """

    __slots__ = ("_trigger_class",)

    def __init__(self, trigger_class: type[BaseTrigger]) -> None:
        self._trigger_class = trigger_class

    def info(self, msg: str, /, *args: Any) -> None:
        self._logger().info(msg, *args)

    def warning(self, msg: str, /, *args: Any) -> None:
        self._logger().warning(msg, *args)

    def _logger(self) -> Any:
        # The `log` of a bare instance of the class: the same name, factory and output as a trigger's own, as
        # LoggingMixin reads them from the class; the instance, and the logger with it, go after the line.
        return object.__new__(self._trigger_class).log


@functools.cache
def _line_logger(trigger_class: type[BaseTrigger]) -> _LinePerLogger:
    return _LinePerLogger(trigger_class)


# The batch trigger lives in its own module; it is importable from here too, beside the single-video one.
from airflow_provider_infinityblue.triggers.batch import InfinityBlueBatchTrigger  # noqa: E402
