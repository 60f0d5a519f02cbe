"""The trigger that waits for a generation in the triggerer, and the event it ends with."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueError,
    InfinityBlueGenerationFailedError,
    InfinityBlueWaitTimeoutError,
)
from airflow_provider_infinityblue.hooks.infinityblue import GenerationProgressLog, InfinityBlueHook
from airflow_provider_infinityblue.models import Generation, GenerationState

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

# How long after the trigger's own deadline Airflow gives up on a trigger that never fired (a triggerer
# down for good), when an operator defers to it; the trigger normally ends first, with a timeout event.
DEFERRAL_GRACE = timedelta(minutes=5)

OutcomeStatus = Literal["success", "failed", "cancelled", "timeout", "error"]


@dataclass(frozen=True)
class GenerationOutcome:
    """How a wait for a generation ended: the payload of the trigger's one event.

    >>> outcome = GenerationOutcome("success", "t1", "InfinityBlue generation t1 completed", "https://cdn/t1.mp4")
    >>> GenerationOutcome.from_event(outcome.to_payload()).video_url_or_raise()
    'https://cdn/t1.mp4'
    """

    status: OutcomeStatus
    generation_id: str
    message: str
    video_url: str | None = None
    error_code: str | None = None

    @classmethod
    def of_generation(cls, generation: Generation) -> GenerationOutcome:
        """The outcome of a finished generation."""
        if generation.state is GenerationState.SUCCEEDED:
            if generation.video_url:
                return cls(
                    "success", generation.id, f"InfinityBlue generation {generation.id} completed", generation.video_url
                )
            return cls(
                "error",
                generation.id,
                f"InfinityBlue generation {generation.id} is {generation.status!r} but the answer has no "
                f"video URL: {generation.raw}",
            )
        status: OutcomeStatus = "cancelled" if generation.state is GenerationState.CANCELLED else "failed"
        return cls(
            status, generation.id, generation.error_message or "the API gave no reason", None, generation.error_code
        )

    def to_payload(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_event(cls, event: object) -> GenerationOutcome:
        """Read an event payload, refusing anything that is not one this provider sent."""
        if not isinstance(event, dict):
            raise InfinityBlueError(f"Expected an InfinityBlue trigger event (a dict), got {event!r}")
        status, generation_id = event.get("status"), event.get("generation_id")
        if status not in get_args(OutcomeStatus) or not isinstance(generation_id, str):
            raise InfinityBlueError(f"Unrecognised InfinityBlue trigger event: {event!r}")
        return cls(
            status=cast("OutcomeStatus", status),
            generation_id=generation_id,
            message=str(event.get("message") or ""),
            video_url=event.get("video_url"),
            error_code=event.get("error_code"),
        )

    def video_url_or_raise(self) -> str:
        """The video URL of a success; for any other outcome, the matching error."""
        if self.status == "success" and self.video_url:
            return self.video_url
        if self.status in ("failed", "cancelled"):
            raise InfinityBlueGenerationFailedError(
                self.generation_id, self.status, error_code=self.error_code, error_message=self.message
            )
        if self.status == "timeout":
            raise InfinityBlueWaitTimeoutError(self.generation_id, self.message)
        raise InfinityBlueError(f"InfinityBlue generation {self.generation_id}: {self.message}")


class InfinityBlueVideoTrigger(BaseTrigger):
    """Poll a generation from the triggerer until it finishes, fails or runs out of time.

    It only reads (``GET``), on one ``aiohttp`` session that is closed however the trigger
    ends, cancellation included. Transient failures (network, 429, 5xx) never end it; the
    deadline is an absolute time, serialized with the trigger, so a restarted triggerer
    resumes the same wait. It yields exactly one event: a :class:`GenerationOutcome` payload.

    Example::

        self.defer(
            trigger=InfinityBlueVideoTrigger("abcd1234efgh", "infinityblue_default", poll_interval=10, timeout=1800),
            method_name="execute_complete",
        )

    :param generation_id: the remote task id returned by the submission.
    :param infinityblue_conn_id: the Airflow connection to use.
    :param poll_interval: seconds between status requests.
    :param end_time: UNIX time at which to give up with a ``timeout`` event.
    :param timeout: seconds from now, used when ``end_time`` is not given.
    """

    def __init__(
        self,
        generation_id: str,
        infinityblue_conn_id: str = InfinityBlueHook.default_conn_name,
        poll_interval: float = 10.0,
        end_time: float | None = None,
        timeout: float = 3600.0,
    ) -> None:
        super().__init__()
        self.generation_id = generation_id
        self.infinityblue_conn_id = infinityblue_conn_id
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time) if end_time is not None else time.time() + timeout

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "generation_id": self.generation_id,
                "infinityblue_conn_id": self.infinityblue_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        outcome = await self._wait()
        yield TriggerEvent(outcome.to_payload())

    async def _wait(self) -> GenerationOutcome:
        progress = GenerationProgressLog()
        last_status: str | None = None
        last_problem = ""
        async with InfinityBlueHook(self.infinityblue_conn_id) as hook:
            while (remaining := self.end_time - time.time()) > 0:
                try:
                    generation = await hook.aget_generation(self.generation_id, deadline=time.monotonic() + remaining)
                except InfinityBlueError as error:
                    if not error.transient:
                        return GenerationOutcome(
                            "error", self.generation_id, str(error), error_code=getattr(error, "error_code", None)
                        )
                    # The hook's retries ran out, but the deadline has not: keep waiting.
                    last_problem = f"; the last request failed: {error}"
                    self.log.warning("Still waiting for InfinityBlue generation %s: %s", self.generation_id, error)
                else:
                    progress.report(generation, self.log)
                    if generation.is_finished:
                        return GenerationOutcome.of_generation(generation)
                    last_status, last_problem = generation.status, ""
                await asyncio.sleep(max(0.0, min(self.poll_interval, self.end_time - time.time())))
        deadline = datetime.fromtimestamp(self.end_time, tz=UTC).isoformat(timespec="seconds")
        timeout = InfinityBlueWaitTimeoutError.after(
            self.generation_id, last_status, when=f"at its deadline {deadline}"
        )
        return GenerationOutcome("timeout", self.generation_id, f"{timeout}{last_problem}")
