"""How an emulated generation moves from ``queued`` to ``completed`` (or ``failed``) as time passes.

Nothing is scheduled: a generation's status is worked out from the time elapsed since
it was submitted whenever someone asks, so thousands of generations cost nothing
between polls.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow_provider_infinityblue.emulator.videos import SAMPLE_SHAPE, VideoShape

QUEUED = "queued"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
STATUSES = (QUEUED, IN_PROGRESS, COMPLETED, FAILED)

# The first quarter of a generation's time is spent waiting in the queue.
QUEUED_SHARE = 0.25


@dataclass(frozen=True)
class Failure:
    """Why a generation ends ``failed``: the ``error`` object of the status answer.

    >>> CONTENT_POLICY_FAILURE.code
    'content_policy_violation'
    """

    code: str
    message: str


CONTENT_POLICY_FAILURE = Failure(
    code="content_policy_violation",
    message="The prompt was rejected by the content policy, so no video was generated. Rephrase the prompt "
    "and submit it again.",
)
RANDOM_FAILURE = Failure(
    code="generation_failed",
    message="The model could not generate this video. Submitting it again may succeed.",
)


@dataclass(frozen=True)
class Progress:
    """Where a generation stands at one moment: status word and percentage.

    >>> Progress("completed", 100).is_finished, Progress("queued", 0).is_finished
    (True, False)
    """

    status: str
    percent: int

    @property
    def is_finished(self) -> bool:
        return self.status in (COMPLETED, FAILED)


def progress_after(elapsed: float, duration: float, *, fails: bool) -> Progress:
    """The status ``elapsed`` seconds after submitting a generation that takes ``duration`` seconds.

    >>> [progress_after(t, 2.0, fails=False) for t in (0.1, 1.25, 2.0)]  # doctest: +NORMALIZE_WHITESPACE
    [Progress(status='queued', percent=0), Progress(status='in_progress', percent=50),
     Progress(status='completed', percent=100)]
    >>> progress_after(2.0, 2.0, fails=True).status
    'failed'
    """
    if elapsed >= duration:
        return Progress(FAILED if fails else COMPLETED, 100)
    queued_for = duration * QUEUED_SHARE
    if elapsed < queued_for:
        return Progress(QUEUED, 0)
    share_done = (elapsed - queued_for) / (duration - queued_for)
    return Progress(IN_PROGRESS, min(99, 1 + int(99 * share_done)))


@dataclass(frozen=True)
class EmulatedGeneration:
    """One submitted generation. ``submitted_at`` is a ``time.monotonic()`` instant.

    >>> generation = EmulatedGeneration("abc", "veo_3_1", submitted_at=100.0, created_at=1700000000, duration=4.0)
    >>> generation.progress(now=103.0)
    Progress(status='in_progress', percent=67)
    """

    id: str
    model: str
    submitted_at: float
    created_at: int  # Unix seconds, as the API reports it
    duration: float
    failure: Failure | None = None
    prompt: str = ""
    # The video its request asked for, within the caps (emulator/videos.py).
    video: VideoShape = SAMPLE_SHAPE

    def progress(self, now: float) -> Progress:
        return progress_after(now - self.submitted_at, self.duration, fails=self.failure is not None)
