"""The wait engine: the one place that decides, answer by answer, how a wait for a generation goes on or ends.

Every mode waits through :class:`GenerationWait`: the hook's ``wait_for_generation`` and the
operator's worker wait (:meth:`GenerationWait.run`), the trigger (:meth:`GenerationWait.arun`),
and the sensor, whose pokes each feed it one answer. So the same answers from the API give
the same :class:`GenerationOutcome` in every mode:

- a finished generation ends the wait: ``success`` with its video URL, ``failed`` or
  ``cancelled`` with the API's reason, or ``error`` when it "completed" without a URL or with
  one that is not ``http``/``https`` (``javascript:``, ``file:``, ...), which is never handed on;
- a transient failure (connection, timeout, 429, 5xx) never ends a wait before its deadline:
  the next look comes after a capped, jittered backoff, or after the 429's ``Retry-After``;
- a 404 (or ``task_not_exist``) within ``not_found_grace`` of the submission means "not
  visible yet" (gateways with several replicas answer so for a few seconds); after it, the
  generation is lost (``error``);
- any other error (401, 403, 400) ends the wait at once with that error;
- the deadline is a wall-clock instant, so it survives a triggerer restart or a reschedule; a
  wait always looks once before it declares a timeout, even one that starts past its deadline.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, get_args
from urllib.parse import urlsplit

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueError,
    InfinityBlueGenerationFailedError,
    InfinityBlueGenerationLostError,
    InfinityBlueNotFoundError,
    InfinityBlueResponseError,
    InfinityBlueWaitTimeoutError,
    restore_error,
)
from airflow_provider_infinityblue.models import Generation, GenerationState, describe_fields
from airflow_provider_infinityblue.redaction import scrub
from airflow_provider_infinityblue.retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

DEFAULT_NOT_FOUND_GRACE = 300.0
"""Seconds after a submission during which a 404 for the new id means "not visible yet"."""
MIN_POLL_INTERVAL = 1.0
"""The shortest ``poll_interval`` an operator, sensor or trigger accepts."""
POLL_JITTER = 0.1
"""Each poll comes up to this fraction of ``poll_interval`` late, so waits started together spread out."""
WAKE_GRID = 0.05
"""In the event loop (a trigger), each sleep is lengthened to end on a multiple of this many seconds of the
monotonic clock, unless that would pass the wait's deadline: the waits due within the same 50 ms wake in
one turn of the loop and send their GETs together, and the loop pays its fixed cost of a turn (a wait for
events, the timers, the answers read) once for all of them instead of once for each."""

OutcomeStatus = Literal["success", "failed", "cancelled", "timeout", "error"]


class _Logger(Protocol):
    def info(self, msg: str, /, *args: Any) -> Any: ...
    def warning(self, msg: str, /, *args: Any) -> Any: ...


class _Poller(Protocol):
    """What a wait needs from the hook: one look at a generation, the answer or the error it ended with."""

    def poll_generation(
        self, generation_id: str, *, deadline: float | None = None
    ) -> Generation | InfinityBlueError: ...

    def apoll_generation(
        self, generation_id: str, *, deadline: float | None = None
    ) -> Awaitable[Generation | InfinityBlueError]: ...


def check_poll_interval(value: object, name: str = "poll_interval", *, minimum: float = MIN_POLL_INTERVAL) -> float:
    """``value`` as seconds between polls: a finite number of at least ``minimum``.

    Raised when a DAG is parsed, so a bad value never reaches a worker or a triggerer.

    >>> check_poll_interval("15")
    15.0
    >>> check_poll_interval(float("nan"))
    Traceback (most recent call last):
    ...
    ValueError: poll_interval must be a finite number of seconds, at least 1, got nan
    """
    return check_seconds(value, name, minimum=minimum)


def check_seconds(value: object, name: str, *, minimum: float) -> float:
    """``value`` as a finite number of seconds of at least ``minimum``: a wait that may be zero, an interval.

    >>> check_seconds("0", "min_wave_seconds", minimum=0)
    0.0
    """
    return _seconds(value, name, minimum=minimum, inclusive=True)


def check_positive_seconds(value: object, name: str) -> float:
    """``value`` (seconds or a ``timedelta``) as a positive, finite number of seconds: a timeout, a grace.

    >>> check_positive_seconds(600, "timeout"), check_positive_seconds(__import__("datetime").timedelta(minutes=2), "t")
    (600.0, 120.0)
    """
    if hasattr(value, "total_seconds"):
        value = value.total_seconds()
    return _seconds(value, name, minimum=0.0, inclusive=False)


def _seconds(value: object, name: str, *, minimum: float, inclusive: bool) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    too_small = number is not None and (number < minimum if inclusive else number <= minimum)
    if number is None or not math.isfinite(number) or too_small:
        bound = f"at least {minimum:g}" if inclusive else f"more than {minimum:g}"
        raise ValueError(f"{name} must be a finite number of seconds, {bound}, got {value!r}")
    return number


@dataclass(frozen=True)
class GenerationOutcome:
    """How a wait for a generation ended; also the payload of the trigger's one event.

    ``error_type`` names the exception class of an ``error`` outcome, so that the worker
    raises the same class the triggerer saw (with ``status_code``, ``error_code`` and
    ``request_id`` when the API sent them).

    >>> outcome = GenerationOutcome("success", "t1", "InfinityBlue generation t1 completed", "https://cdn/t1.mp4")
    >>> GenerationOutcome.from_event(outcome.to_payload()).video_url_or_raise()
    'https://cdn/t1.mp4'
    """

    status: OutcomeStatus
    generation_id: str
    message: str
    video_url: str | None = None
    error_code: str | None = None
    error_type: str | None = None
    status_code: int | None = None
    request_id: str | None = None
    # The error itself, when the wait ran in this process; not part of the event.
    error: InfinityBlueError | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of_error(cls, generation_id: str, error: InfinityBlueError) -> GenerationOutcome:
        return cls(
            "error",
            generation_id,
            str(error),
            error_code=getattr(error, "error_code", None),
            error_type=type(error).__name__,
            status_code=error.status_code,
            request_id=getattr(error, "request_id", None),
            error=error,
        )

    def to_payload(self) -> dict[str, Any]:
        """The event payload: plain JSON values (the exception itself stays in this process)."""
        return {item.name: getattr(self, item.name) for item in fields(self) if item.name != "error"}

    @classmethod
    def from_event(cls, event: object) -> GenerationOutcome:
        """Read an event payload, refusing anything that is not one this provider sent."""
        if not isinstance(event, dict):
            raise InfinityBlueError(f"Expected an InfinityBlue trigger event (a dict), got {event!r}")
        status, generation_id = event.get("status"), event.get("generation_id")
        if status not in get_args(OutcomeStatus) or not isinstance(generation_id, str):
            raise InfinityBlueError(f"Unrecognised InfinityBlue trigger event: {event!r}")
        values: dict[str, Any] = {item.name: event.get(item.name) for item in fields(cls) if item.name != "error"}
        values["message"] = str(values["message"] or "")
        return cls(**values)

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
        if self.error is not None:
            raise self.error
        raise restore_error(
            self.error_type,
            self.message,
            status_code=self.status_code,
            error_code=self.error_code,
            request_id=self.request_id,
        )


@dataclass(frozen=True)
class KeepWaiting:
    """The wait goes on: look again in ``delay`` seconds."""

    delay: float


class GenerationWait:
    """One wait for one generation, fed one answer at a time by :meth:`observe`.

    ``run(hook)`` (a worker) and ``await arun(hook)`` (a trigger) loop over the hook's looks;
    a sensor feeds one answer per poke. Answer by answer:

    >>> import logging
    >>> log = logging.getLogger("example")
    >>> log.propagate = False  # this example's progress lines stay out of its output
    >>> wait = GenerationWait("t1", deadline=time.time() + 900, poll_interval=10, logger=log)
    >>> step = wait.observe(Generation.from_payload({"task_id": "t1", "status": "in_progress"}))
    >>> type(step).__name__, 10 <= step.delay <= 11
    ('KeepWaiting', True)
    >>> done = Generation.from_payload({"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"})
    >>> wait.observe(done).video_url_or_raise()
    'https://cdn/t1.mp4'

    :param generation_id: the remote task id.
    :param deadline: the UNIX time after which the wait times out (after one last look).
    :param poll_interval: seconds between looks while the generation runs (jittered upwards).
    :param submitted_at: the UNIX time the generation was submitted, or the wait's start for a
        generation submitted elsewhere; a 404 within ``not_found_grace`` of it means "not visible yet".
    :param not_found_grace: seconds; see ``submitted_at``.
    :param retry: the backoff between looks after a transient failure.
    """

    def __init__(
        self,
        generation_id: str,
        *,
        deadline: float,
        poll_interval: float,
        logger: _Logger,
        submitted_at: float | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.generation_id = generation_id
        self.deadline = deadline
        # Checked here for every caller: a NaN or zero interval would poll in a busy loop.
        self.poll_interval = check_positive_seconds(poll_interval, "poll_interval")
        self.submitted_at = submitted_at
        self.not_found_grace = not_found_grace
        self.retry = retry or RetryPolicy()
        self.log = logger
        self.clock = clock
        self.last_generation: Generation | None = None
        self.looks = 0
        # What _report_progress last logged, and the unknown status words it warned of (made when one comes).
        self._reported: tuple[str, int | None] | None = None
        self._unknown_statuses: set[str] | None = None
        self._failures = 0  # consecutive transient failures
        self._last_problem: InfinityBlueError | None = None
        self._not_visible_reported = False
        self._last_look_taken = False

    # -- the decision ------------------------------------------------------------------------

    def observe(self, answer: Generation | InfinityBlueError) -> KeepWaiting | GenerationOutcome:
        """What to do after one look: keep waiting (and how long), or how the wait ended."""
        self.looks += 1
        if isinstance(answer, Generation):
            return self._observe_generation(answer)
        return self._observe_error(answer)

    def _observe_generation(self, generation: Generation) -> KeepWaiting | GenerationOutcome:
        self.last_generation = generation
        self._failures, self._last_problem = 0, None
        self._report_progress(generation)
        if generation.state is GenerationState.SUCCEEDED:
            problem = _video_url_problem(generation.video_url) if generation.video_url else None
            if generation.video_url and problem is None:
                return GenerationOutcome(
                    "success", self.generation_id, f"InfinityBlue generation {self.generation_id} completed",
                    generation.video_url,
                )  # fmt: skip
            if problem is not None:
                return GenerationOutcome.of_error(
                    self.generation_id,
                    InfinityBlueResponseError(
                        f"InfinityBlue generation {self.generation_id} is {generation.status!r} but {problem}: "
                        "refusing it as a video URL (only http and https URLs with a host are handed on)"
                    ),
                )
            return GenerationOutcome.of_error(
                self.generation_id,
                InfinityBlueResponseError(
                    f"InfinityBlue generation {self.generation_id} is {generation.status!r} but the answer has no "
                    f"video URL (looked in url, video_url, result_url and metadata.url; the answer has "
                    f"{describe_fields(generation.raw)})"
                ),
            )
        if generation.state in (GenerationState.FAILED, GenerationState.CANCELLED):
            return GenerationOutcome(
                "cancelled" if generation.state is GenerationState.CANCELLED else "failed",
                self.generation_id,
                generation.error_message or "the API gave no reason",
                error_code=generation.error_code,
            )
        return self._look_again(self.poll_interval * random.uniform(1.0, 1.0 + POLL_JITTER))

    def _report_progress(self, generation: Generation) -> None:
        """Log the status and progress when they change, not on every look.

        A status word this provider does not know is reported once, as a warning: the generation is then
        treated as not finished, and polling goes on.
        """
        # The API's words, clipped and scrubbed (Generation did it already; a log line must not rely on that).
        generation_id, status = scrub(generation.id), scrub(generation.status)
        if generation.state is GenerationState.UNKNOWN and status not in (self._unknown_statuses or ()):
            if self._unknown_statuses is None:
                self._unknown_statuses = set()
            self._unknown_statuses.add(status)
            self.log.warning(
                "InfinityBlue generation %s has status %r, which this provider does not know; "
                "treating it as not finished and polling on.",
                generation_id,
                status,
            )
        current = (status, generation.progress)
        if current != self._reported:
            self._reported = current
            progress = "" if generation.progress is None else f" ({generation.progress}%)"
            self.log.info("InfinityBlue generation %s is %s%s", generation_id, status, progress)

    def _observe_error(self, error: InfinityBlueError) -> KeepWaiting | GenerationOutcome:
        if isinstance(error, InfinityBlueNotFoundError):
            if self._not_visible_yet():
                if not self._not_visible_reported:
                    self._not_visible_reported = True
                    self.log.info(
                        "InfinityBlue does not show generation %s yet (submitted %.0f s ago); polling on for up "
                        "to %g s after its submission.",
                        self.generation_id,
                        self.clock() - (self.submitted_at or 0),
                        self.not_found_grace,
                    )
                return self._look_again(self.poll_interval)
            return GenerationOutcome.of_error(self.generation_id, self._lost(error))
        if not error.transient:
            return GenerationOutcome.of_error(self.generation_id, error)
        self._failures += 1
        self._last_problem = error
        retry_after: float | None = getattr(error, "retry_after", None)
        step = self._look_again(retry_after if retry_after is not None else self.retry.backoff(self._failures))
        if isinstance(step, KeepWaiting):  # a timeout says what the last look met itself
            self.log.warning(
                "Still waiting for InfinityBlue generation %s; looking again in %.1f s after: %s",
                self.generation_id,
                step.delay,
                error,
            )
        return step

    def _not_visible_yet(self) -> bool:
        return self.submitted_at is not None and self.clock() < self.submitted_at + self.not_found_grace

    def _lost(self, error: InfinityBlueNotFoundError) -> InfinityBlueError:
        if self.submitted_at is None:
            return error
        return InfinityBlueGenerationLostError(
            self.generation_id,
            age=self.clock() - self.submitted_at,
            grace=self.not_found_grace,
            request_id=error.request_id,
        )

    def _look_again(self, delay: float) -> KeepWaiting | GenerationOutcome:
        remaining = self.deadline - self.clock()
        if remaining <= 0 or self._last_look_taken:
            return self._timeout()
        # A sleep that reaches the deadline is followed by one last look, and no more.
        self._last_look_taken = delay >= remaining
        return KeepWaiting(min(delay, remaining))

    def _timeout(self) -> GenerationOutcome:
        last_status = self.last_generation.status if self.last_generation else None
        deadline = datetime.fromtimestamp(self.deadline, tz=UTC).isoformat(timespec="seconds")
        error = InfinityBlueWaitTimeoutError.after(self.generation_id, last_status, when=f"at its deadline {deadline}")
        problem = f"; the last look failed: {self._last_problem}" if self._last_problem else ""
        return GenerationOutcome("timeout", self.generation_id, f"{error}{problem}")

    # -- the loops ---------------------------------------------------------------------------

    def request_deadline(self) -> float:
        """The wait's deadline as a ``time.monotonic()`` instant, which is what HTTP requests are clipped to."""
        return time.monotonic() + (self.deadline - self.clock())

    def look(self, hook: _Poller) -> KeepWaiting | GenerationOutcome:
        """One look at the generation through ``hook``, and what it means."""
        return self.observe(hook.poll_generation(self.generation_id, deadline=self.request_deadline()))

    def run(self, hook: _Poller) -> GenerationOutcome:
        """Wait on this thread until the outcome: the worker's way."""
        while isinstance(step := self.look(hook), KeepWaiting):
            time.sleep(step.delay)
        return step

    async def arun(self, hook: _Poller) -> GenerationOutcome:
        """Wait without blocking the event loop until the outcome: the trigger's way.

        The first look comes after a random part of the jitter (:meth:`first_look_delay`), so that the
        triggers a restarted triggerer resumes together do not all send their first GET at once (the
        operator looked just before deferring).
        """
        await asyncio.sleep(self.first_look_delay(self.poll_interval, self.deadline, self.clock))
        return await self.alook_until_done(hook)

    @staticmethod
    def first_look_delay(poll_interval: float, deadline: float, clock: Callable[[], float] = time.time) -> float:
        """Seconds before the first look of a wait that polls every ``poll_interval`` until ``deadline``.

        A random part of the jitter, on the wake grid (:data:`WAKE_GRID`), never past the deadline.

        >>> 0 <= GenerationWait.first_look_delay(10, time.time() + 900) <= 1 + WAKE_GRID
        True
        >>> GenerationWait.first_look_delay(10, 0)
        0.0
        """
        remaining = deadline - clock()
        return _on_wake_grid(max(0.0, min(random.uniform(0, POLL_JITTER * poll_interval), remaining)), remaining)

    async def alook_until_done(self, hook: _Poller) -> GenerationOutcome:
        """:meth:`arun` without its first sleep: for a caller that slept :meth:`first_look_delay` itself.

        The trigger does, before it reads its connection, so that the triggers a triggerer starts
        together each read it and lease their session at their own moment.
        """
        while True:
            step = self.observe(await hook.apoll_generation(self.generation_id, deadline=self.request_deadline()))
            if isinstance(step, GenerationOutcome):
                return step
            delay = _on_wake_grid(step.delay, self.deadline - self.clock())
            del step  # a waiting trigger keeps nothing of its last look but what the wait itself remembers
            await _sleep(delay)


def _sleep(delay: float) -> asyncio.Future[None]:
    """A future done in ``delay`` seconds: ``await _sleep(delay)`` sleeps as ``await asyncio.sleep(delay)`` does.

    Without asyncio.sleep's coroutine, which each of the thousands of triggers waiting in a triggerer would
    keep for as long as it sleeps. A waiter cancelled meanwhile leaves the timer to fire at its time, on a
    future already done.
    """
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()
    loop.call_later(delay, _wake, woken)
    return woken


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():
        woken.set_result(None)


def _on_wake_grid(delay: float, remaining: float) -> float:
    """``delay``, lengthened to end on a multiple of :data:`WAKE_GRID` seconds of the monotonic clock (the event
    loop's), unless that would take it past ``remaining`` (the seconds left to the deadline): the deadline's
    last look stays on time.

    >>> 0.5 <= _on_wake_grid(0.5, 900) <= 0.5 + WAKE_GRID, _on_wake_grid(0.5, 0.5)
    (True, 0.5)
    """
    now = time.monotonic()
    on_grid = math.ceil((now + delay) / WAKE_GRID) * WAKE_GRID - now
    return delay if on_grid > remaining else max(delay, on_grid)


def _video_url_problem(url: str) -> str | None:
    """Why ``url`` is not handed on as a video URL, or None for an ``http``/``https`` URL with a host.

    >>> _video_url_problem("HTTPS://cdn/x.mp4") is None, _video_url_problem("javascript:alert(1)")
    (True, "its URL's scheme is 'javascript'")
    >>> _video_url_problem("http:///x.mp4"), _video_url_problem("cdn/x.mp4")
    ('its URL has no host', 'its URL has no scheme')
    """
    try:
        parts = urlsplit(url.strip())
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError:
        return "its URL cannot be parsed"
    if not scheme:
        return "its URL has no scheme"
    if scheme not in ("http", "https"):
        return f"its URL's scheme is {scrub(scheme, limit=40)!r}"
    return None if host else "its URL has no host"
