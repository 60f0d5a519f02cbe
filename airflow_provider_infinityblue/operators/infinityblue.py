"""Operators that generate InfinityBlue videos."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_infinityblue.exceptions import InfinityBlueNotFoundError
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook, ensure_succeeded
from airflow_provider_infinityblue.links.infinityblue import (
    GENERATION_ID_XCOM_KEY,
    VIDEO_URL_XCOM_KEY,
    InfinityBlueVideoLink,
)
from airflow_provider_infinityblue.models import Generation, GenerationRequest, GenerationState
from airflow_provider_infinityblue.triggers.infinityblue import GenerationOutcome, InfinityBlueVideoTrigger
from airflow_provider_infinityblue.version_compat import ResumableJobMixin, default_deferrable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

# What get_job_status answers for a stored id the API no longer knows: neither running nor succeeded,
# so a retry submits anew.
_UNKNOWN_TO_API = "<unknown to the InfinityBlue API>"
# How long after the trigger's own deadline Airflow gives up on a trigger that never fired
# (a triggerer down for good); the trigger normally ends first with a timeout event.
_DEFERRAL_GRACE = timedelta(minutes=5)


def seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class InfinityBlueGenerateVideoOperator(ResumableJobMixin, BaseOperator):
    """Generate a video with InfinityBlue and return its URL.

    The request is validated and submitted from the worker; the remote task id goes to
    XCom (key ``infinityblue_task_id``) right after the submission. Then the operator
    waits: deferred to the triggerer (``deferrable=True``, the default when
    ``[operators] default_deferrable`` is set), polling on the worker (``deferrable=False``),
    or not at all (``wait_for_completion=False``, which returns the remote task id). On
    success the video URL is pushed as ``video_url`` and returned.

    Retries never pay twice: on Airflow 3.3+ the remote task id is kept in the task state
    store, and a retry re-attaches to a generation still running, returns the URL of one
    that completed, and submits anew only one that failed or that the API no longer knows.

    Example::

        generate = InfinityBlueGenerateVideoOperator(
            task_id="generate",
            prompt="A paper boat on a rainy street, {{ ds }}, cinematic",
            model="kling-v2-5-turbo",
            duration=5,
            metadata={"negative_prompt": "blur"},
        )

    :param prompt: what the video shows (templated; a path ending in ``.txt`` or ``.j2`` is
        read as a template file).
    :param model: the model id, e.g. ``kling-v2-5-turbo``, ``veo_3_1``.
    :param image: for image-to-video: an http(s) URL, a data URI, or a local file path,
        sent as a base64 data URI.
    :param duration: seconds of video. :param width: pixels. :param height: pixels.
    :param fps: frames per second. :param seed: for reproducible results.
    :param metadata: model-specific fields (``negative_prompt``, ``style``, ...); nested
        values are templated.
    :param user: an end-user id for the API's audit.
    :param infinityblue_conn_id: the Airflow connection to use.
    :param wait_for_completion: wait for the video (default) or return the task id at once.
    :param deferrable: free the worker while waiting.
    :param poll_interval: seconds between status requests.
    :param timeout: how long to wait (seconds or a timedelta); the generation may still
        finish afterwards, and the error says so with its id.
    :param durable: keep the remote task id across retries (Airflow 3.3+).
    """

    template_fields: Sequence[str] = (
        "prompt",
        "model",
        "image",
        "duration",
        "width",
        "height",
        "fps",
        "seed",
        "metadata",
        "user",
    )
    template_ext: Sequence[str] = (".txt", ".j2")
    template_fields_renderers = {"metadata": "json"}
    ui_color = "#1d4ed8"
    ui_fgcolor = "#ffffff"
    operator_extra_links = (InfinityBlueVideoLink(),)
    external_id_key = GENERATION_ID_XCOM_KEY

    def __init__(
        self,
        *,
        prompt: str,
        model: str = "kling-v2-5-turbo",
        image: str | None = None,
        duration: float | str | None = None,
        width: int | str | None = None,
        height: int | str | None = None,
        fps: int | str | None = None,
        seed: int | str | None = None,
        metadata: dict[str, Any] | None = None,
        user: str | None = None,
        infinityblue_conn_id: str = InfinityBlueHook.default_conn_name,
        wait_for_completion: bool = True,
        deferrable: bool = default_deferrable(),
        poll_interval: float = 10.0,
        timeout: float | timedelta = 3600.0,
        durable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(durable=durable, **kwargs)
        self.prompt = prompt
        self.model = model
        self.image = image
        self.duration = duration
        self.width = width
        self.height = height
        self.fps = fps
        self.seed = seed
        self.metadata = metadata
        self.user = user
        self.infinityblue_conn_id = infinityblue_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.poll_interval = float(poll_interval)
        self.timeout = seconds(timeout)
        if self.poll_interval <= 0 or self.timeout <= 0:
            raise ValueError(f"{self.task_id}: poll_interval and timeout must be positive")
        self._latest: Generation | None = None
        self.video_url: str | None = None  # set once the video is ready; read by the extra link
        self._announced: str | None = None

    @cached_property
    def hook(self) -> InfinityBlueHook:
        return InfinityBlueHook(infinityblue_conn_id=self.infinityblue_conn_id)

    def execute(self, context: Context) -> Any:
        try:
            return self.execute_resumable(context)
        finally:
            self.hook.close()

    # -- ResumableJobMixin ------------------------------------------------------------------

    def submit_job(self, context: Context) -> str:
        request = GenerationRequest(
            prompt=self.prompt,
            model=self.model,
            image=self.image,
            duration=self.duration,  # type: ignore[arg-type]  # GenerationRequest converts rendered strings
            width=self.width,  # type: ignore[arg-type]
            height=self.height,  # type: ignore[arg-type]
            fps=self.fps,  # type: ignore[arg-type]
            seed=self.seed,  # type: ignore[arg-type]
            metadata=self.metadata,
            user=self.user,
        )
        generation_id = self.hook.submit_generation(request)
        # Persist before anything else can fail: the mixin stores the id only after this returns.
        store = context.get("task_state_store")
        if self.durable and store is not None:
            store.set(self.external_id_key, generation_id)
        self._announce(context, generation_id)
        return generation_id

    def get_job_status(self, external_id: Any, context: Context) -> str:
        try:
            self._latest = self.hook.get_generation(str(external_id))
        except InfinityBlueNotFoundError:
            self.log.warning(
                "The InfinityBlue API no longer knows generation %s from an earlier try; submitting anew.",
                external_id,
            )
            return _UNKNOWN_TO_API
        return self._latest.status

    def is_job_active(self, status: str) -> bool:
        return status != _UNKNOWN_TO_API and not GenerationState.from_status(status).is_finished

    def is_job_succeeded(self, status: str) -> bool:
        return GenerationState.from_status(status) is GenerationState.SUCCEEDED

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        generation_id = str(external_id)
        self._announce(context, generation_id)
        if not self.wait_for_completion:
            return generation_id
        generation = self._latest_of(generation_id)
        if not generation.is_finished:
            if self.deferrable:
                self.defer(
                    trigger=InfinityBlueVideoTrigger(
                        generation_id=generation_id,
                        infinityblue_conn_id=self.infinityblue_conn_id,
                        poll_interval=self.poll_interval,
                        end_time=time.time() + self.timeout,
                    ),
                    method_name="execute_complete",
                    timeout=timedelta(seconds=self.timeout) + _DEFERRAL_GRACE,
                )
            generation = self.hook.wait_for_generation(
                generation_id, poll_interval=self.poll_interval, timeout=self.timeout
            )
        self._latest = generation
        return self.get_job_result(generation_id, context)

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        generation_id = str(external_id)
        self._announce(context, generation_id)
        if not self.wait_for_completion:
            return generation_id
        video_url = ensure_succeeded(self._latest_of(generation_id)).video_url
        assert video_url is not None  # ensure_succeeded guarantees it
        return self._succeed(context, video_url)

    # -- resuming from the trigger ----------------------------------------------------------

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Called on the worker with the trigger's event: returns the video URL or raises why not."""
        outcome = GenerationOutcome.from_event(event)
        return self._succeed(context, outcome.video_url_or_raise())

    # -- helpers ----------------------------------------------------------------------------

    def _latest_of(self, generation_id: str) -> Generation:
        if self._latest is None or self._latest.id != generation_id:
            self._latest = self.hook.get_generation(generation_id)
        return self._latest

    def _announce(self, context: Context, generation_id: str) -> None:
        if self._announced != generation_id:
            context["ti"].xcom_push(key=GENERATION_ID_XCOM_KEY, value=generation_id)
            self._announced = generation_id

    def _succeed(self, context: Context, video_url: str) -> str:
        self.log.info("InfinityBlue video ready: %s", video_url)
        context["ti"].xcom_push(key=VIDEO_URL_XCOM_KEY, value=video_url)
        self.video_url = video_url
        return video_url
