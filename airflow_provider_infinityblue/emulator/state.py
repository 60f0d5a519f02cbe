"""Everything one running emulator remembers: its knobs, its generations, its counts, its randomness.

All randomness (durations, failures, proxy errors, ids) comes from one ``random.Random``
seeded with the ``seed`` knob, so a run with a seed and the same API requests in the
same order gives the same answers. The ``/_emulator`` routes draw nothing from it.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from typing import TYPE_CHECKING

from airflow_provider_infinityblue.emulator.lifecycle import (
    CONTENT_POLICY_FAILURE,
    RANDOM_FAILURE,
    STATUSES,
    EmulatedGeneration,
    Failure,
)
from airflow_provider_infinityblue.emulator.ratelimit import TokenBucket
from airflow_provider_infinityblue.emulator.sample_video import SAMPLE_VIDEO_PATH
from airflow_provider_infinityblue.emulator.stats import ConnectionCounts, RequestCounts
from airflow_provider_infinityblue.emulator.videos import SAMPLE_SHAPE, VideoShape, shared_library

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from airflow_provider_infinityblue.emulator.settings import EmulatorSettings
    from airflow_provider_infinityblue.emulator.validation import AcceptedGenerationRequest


class EmulatorState:
    """The state behind one emulator app; handlers read and change it, one event loop at a time.

    >>> from airflow_provider_infinityblue.emulator.settings import EmulatorSettings
    >>> from airflow_provider_infinityblue.emulator.validation import AcceptedGenerationRequest
    >>> state = EmulatorState(EmulatorSettings(seed=7, generation_seconds=1.0))
    >>> request = AcceptedGenerationRequest(model="veo_3_1", prompt="A fox [content-policy]", body={})
    >>> state.submit(request).failure.code
    'content_policy_violation'
    >>> state.status_counts()
    {'queued': 1, 'in_progress': 0, 'completed': 0, 'failed': 0}
    """

    def __init__(
        self,
        settings: EmulatorSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.generations: dict[str, EmulatedGeneration] = {}
        self.requests = RequestCounts()
        # Fed by the listener (emulator/listener.py), at the transport level.
        self.connections = ConnectionCounts()
        # Renders this emulator started; downloads of a shape already rendered in this process start none.
        self.video_renders = 0
        self.videos = shared_library()
        self.clock = clock
        self._wall_clock = wall_clock
        self._random = random.Random(settings.seed)
        self._bucket = self._new_bucket()
        self._request_numbers = itertools.count(1)
        self._request_id_prefix = self._random_hex(8)

    # -- control ----------------------------------------------------------------------------

    def configure(self, knobs: Mapping[str, object]) -> EmulatorSettings:
        """Change knobs; raises :class:`~.settings.InvalidSettingError` and changes nothing on a bad one."""
        self.settings = self.settings.with_knobs(knobs)
        if "seed" in knobs:
            self._random.seed(self.settings.seed)
        if "rate_limit" in knobs:
            self._bucket = self._new_bucket()
        return self.settings

    def reset(self) -> None:
        """Forget every generation and count; knobs stay, randomness starts again from the seed."""
        self.generations.clear()
        self.requests.clear()
        self.connections.clear()
        self.video_renders = 0
        self._random.seed(self.settings.seed)
        self._bucket = self._new_bucket()
        self._request_numbers = itertools.count(1)
        self._request_id_prefix = self._random_hex(8)

    def status_counts(self) -> dict[str, int]:
        now = self.clock()
        counts = dict.fromkeys(STATUSES, 0)
        for generation in self.generations.values():
            counts[generation.progress(now).status] += 1
        return counts

    def stats(self) -> dict[str, object]:
        return {
            "requests": self.requests.as_dict(),
            "tasks": self.status_counts(),
            "submissions": len(self.generations),
            "video_renders": self.video_renders,
            **self.connections.as_dict(),
        }

    def submitted_generations(self) -> list[dict[str, object]]:
        """Every generation since the last reset, in the order submitted: what each was asked to make."""
        now = self.clock()
        return [
            {"id": g.id, "model": g.model, "prompt": g.prompt, "status": g.progress(now).status}
            for g in self.generations.values()
        ]

    # -- per request ------------------------------------------------------------------------

    def next_request_id(self) -> str:
        return f"req_{self._request_id_prefix}{next(self._request_numbers):016x}"

    def wait_for_rate_limit(self) -> float:
        """Seconds the caller must wait before the rate limit admits it; 0.0 admits it now."""
        return self._bucket.take() if self._bucket is not None else 0.0

    def take_rejected_submission(self) -> bool:
        """Whether this submission is one the ``reject_submissions`` countdown turns away."""
        return self._count_down("reject_submissions")

    def take_unavailable_poll(self) -> bool:
        """Whether the proxy in front of the API fails this status request (countdown first, then chance)."""
        if self._count_down("unavailable_polls"):
            return True
        return self.settings.error_rate > 0 and self._random.random() < self.settings.error_rate

    def take_invisible_poll(self) -> bool:
        """Whether this status request of an existing generation is answered as if it did not exist yet."""
        return self._count_down("invisible_polls")

    def _count_down(self, knob: str) -> bool:
        """Whether the countdown knob ``knob`` is still running; if so, lowered by one."""
        remaining: int = getattr(self.settings, knob)
        if remaining > 0:
            self.settings = self.settings.with_knobs({knob: remaining - 1})
            return True
        return False

    def submit(self, request: AcceptedGenerationRequest) -> EmulatedGeneration:
        settings = self.settings
        if settings.generation_seconds_max is None:
            duration = settings.generation_seconds
        else:
            duration = self._random.uniform(settings.generation_seconds, settings.generation_seconds_max)
        failure: Failure | None = None
        if settings.fail_marker and settings.fail_marker in request.prompt:
            failure = CONTENT_POLICY_FAILURE
        elif settings.failure_rate > 0 and self._random.random() < settings.failure_rate:
            failure = RANDOM_FAILURE
        generation_id = self._random_hex(24)
        while generation_id in self.generations:
            generation_id = self._random_hex(24)
        generation = EmulatedGeneration(
            id=generation_id,
            model=request.model,
            submitted_at=self.clock(),
            created_at=int(self._wall_clock()),
            duration=duration,
            failure=failure,
            prompt=request.prompt,
            video=VideoShape.requested(request.body),
        )
        self.generations[generation_id] = generation
        return generation

    def served_video_shape(self, generation: EmulatedGeneration) -> VideoShape:
        """The shape of the video a download of ``generation`` gets, as far as is known now."""
        if self.settings.video == "sample":
            return SAMPLE_SHAPE
        return self.videos.served_shape(generation.video)

    async def video_file(self, generation: EmulatedGeneration) -> Path:
        """The file to serve for ``generation``'s video; the first download of a shape waits for its render."""
        shape = generation.video
        if self.settings.video == "sample" or shape == SAMPLE_SHAPE:
            return SAMPLE_VIDEO_PATH
        render, started = self.videos.start_render(shape)
        if started:
            self.video_renders += 1
        # Awaited off the event loop (the render runs in a worker thread), and shielded: a client that
        # hangs up must not cancel a render that other downloads wait for.
        return await asyncio.shield(asyncio.wrap_future(render))

    def _random_hex(self, digits: int) -> str:
        return f"{self._random.getrandbits(digits * 4):0{digits}x}"

    def _new_bucket(self) -> TokenBucket | None:
        rate = self.settings.rate_limit
        return TokenBucket(rate, clock=self.clock) if rate is not None else None
