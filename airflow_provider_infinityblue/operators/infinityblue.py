"""Operators that generate InfinityBlue videos and save them where they are needed."""

from __future__ import annotations

import importlib
import time
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAmbiguousSubmitError,
    InfinityBlueError,
    InfinityBlueGenerationLostError,
    InfinityBlueNotFoundError,
)
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.links.infinityblue import (
    GENERATION_ID_XCOM_KEY,
    VIDEO_URL_XCOM_KEY,
    InfinityBlueVideoLink,
)
from airflow_provider_infinityblue.models import GenerationRequest, GenerationState, resolve_model
from airflow_provider_infinityblue.version_compat import ResumableJobMixin, default_deferrable
from airflow_provider_infinityblue.wait import (
    DEFAULT_NOT_FOUND_GRACE,
    GenerationOutcome,
    GenerationWait,
    KeepWaiting,
    check_poll_interval,
    check_positive_seconds,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_provider_infinityblue.operators.batch import InfinityBlueGenerateVideoBatchOperator
    from airflow_provider_infinityblue.operators.download import InfinityBlueDownloadVideoOperator

MODEL_XCOM_KEY = "model"
"""XCom key of the model a generation was submitted with (pushed with the remote task id)."""
SUBMISSION_KEY = "infinityblue_submission"
"""Task state store key of the submission record: ``submitting`` before the POST, ``submitted`` after it."""
ON_LOST_GENERATION = ("fail", "resubmit")

# What get_job_status answers for a stored generation, as the wait engine saw it.
_STILL_WAITING = "<still waiting>"  # running, not visible yet, or the API unreachable: re-attach
_LOST = "<lost, submitting anew>"  # unknown to the API past the grace, and on_lost_generation="resubmit"


class InfinityBlueGenerateVideoOperator(ResumableJobMixin, BaseOperator):
    """Generate a video with InfinityBlue and return its URL.

    The request is validated and submitted from the worker; the remote task id goes to
    XCom (key ``infinityblue_task_id``) right after the submission. Then the operator
    waits: deferred to the triggerer (``deferrable=True``, the default when
    ``[operators] default_deferrable`` is set), polling on the worker (``deferrable=False``),
    or not at all (``wait_for_completion=False``, which returns the remote task id). Both
    waits go through the provider's wait engine, so they end the same way on the same
    answers. On success the video URL is pushed as ``video_url`` and returned.

    The model is resolved when the task runs, not when the DAG is parsed: ``model`` if it names
    one, else the connection's ``default_model`` extra, else ``kling-v2-5-turbo``. The task log
    says which and why, and the model is pushed as XCom ``model`` beside the task id.

    Never paying twice: on Airflow 3.3+ the task state store keeps a record of the
    submission (a ``submitting`` marker with the request's fingerprint before the POST, the
    remote task id and submission time after it). A retry re-attaches to a generation still
    running, returns the URL of one that completed, and submits anew one that failed or was
    cancelled. A 404 within ``not_found_grace`` of the submission means "not visible yet".
    A generation unknown to the API after that, or a submission whose answer was never
    recorded (the worker died mid-POST), is never silently paid for again:
    ``on_lost_generation="fail"`` (the default) fails with the id and what to check,
    ``"resubmit"`` submits anew.

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
    :param model: the model id, e.g. ``kling-v2-5-turbo``, ``veo_3_1``. None, or a template
        that renders to an empty string, means the connection's ``default_model`` extra, else
        ``kling-v2-5-turbo``.
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
    :param poll_interval: seconds between status requests: a finite number, at least 1.
    :param timeout: how long to wait (seconds or a timedelta); the generation may still
        finish afterwards, and the error says so with its id.
    :param durable: keep the submission record across retries (Airflow 3.3+).
    :param not_found_grace: seconds after the submission during which a 404 for the new id
        means "not visible yet" (default 300).
    :param on_lost_generation: what a retry does with a generation it cannot confirm: one the
        API does not know past ``not_found_grace``, or a submission whose answer was never
        recorded. ``"fail"`` (default) or ``"resubmit"``.
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
        model: str | None = None,
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
        not_found_grace: float | timedelta = DEFAULT_NOT_FOUND_GRACE,
        on_lost_generation: str = "fail",
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
        try:
            self.poll_interval = check_poll_interval(poll_interval)
            self.timeout = check_positive_seconds(timeout, "timeout")
            self.not_found_grace = check_positive_seconds(not_found_grace, "not_found_grace")
        except ValueError as error:
            raise ValueError(f"{self.task_id}: {error}") from None
        if on_lost_generation not in ON_LOST_GENERATION:
            raise ValueError(
                f"{self.task_id}: on_lost_generation must be one of {ON_LOST_GENERATION}, got {on_lost_generation!r}"
            )
        self.on_lost_generation = on_lost_generation
        # What this try ended with, for the extra link and the OpenLineage facets.
        self.video_url: str | None = None
        self.generation_id: str | None = None
        self.resolved_model: str | None = None  # the model actually sent: see resolve_model
        self._wait: GenerationWait | None = None
        self._outcome: GenerationOutcome | None = None
        self._submitted: tuple[str, float] | None = None  # (id, UNIX time) of this try's own submission

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
        model = self._resolve_model()
        request = self._generation_request(model)
        self.hook.check_request(request)  # refused before the submission record below: nothing was sent
        fingerprint = request.fingerprint()
        store = self._store(context)
        if store is not None:
            self._check_earlier_submission(store.get(SUBMISSION_KEY))
            # Written before the POST: a worker killed before the answer is recorded leaves this behind.
            store.set(SUBMISSION_KEY, {"state": "submitting", "fingerprint": fingerprint, "started_at": time.time()})
        try:
            generation_id = self.hook.submit_generation(request)
        except InfinityBlueAmbiguousSubmitError:
            raise  # the marker stays: a retry must not pay again without being told to
        except InfinityBlueError:
            if store is not None:  # the API provably did not take it: nothing to remember
                store.delete(SUBMISSION_KEY)
            raise
        submitted_at = time.time()
        self._submitted = (generation_id, submitted_at)
        if store is not None:
            # The id first: the mixin re-attaches by it alone. The mixin stores it too, only later.
            store.set(self.external_id_key, generation_id)
            store.set(
                SUBMISSION_KEY,
                {
                    "state": "submitted",
                    "fingerprint": fingerprint,
                    "generation_id": generation_id,
                    "submitted_at": submitted_at,
                    "model": model,
                },
            )
        self._announce(context, generation_id, model)
        return generation_id

    def get_job_status(self, external_id: Any, context: Context) -> str:
        """Where a generation stored by an earlier try stands, as the wait engine reads its answer."""
        generation_id = str(external_id)
        # A retry's XComs start empty: the id is this try's too, and so is the model it was submitted with.
        self._announce(context, generation_id, self._recorded_model(generation_id, context))
        step = self._wait_for(generation_id, context).look(self.hook)
        if isinstance(step, KeepWaiting):
            return _STILL_WAITING
        if step.status == "error" and isinstance(
            step.error, (InfinityBlueGenerationLostError, InfinityBlueNotFoundError)
        ):
            if self.on_lost_generation == "fail":
                raise step.error
            self.log.warning("%s; submitting anew, as on_lost_generation='resubmit' says.", step.error)
            return _LOST
        if step.status in ("failed", "cancelled"):
            self.log.warning(
                "InfinityBlue generation %s from an earlier try ended %s: %s", generation_id, step.status, step.message
            )
            return step.status
        self._outcome = step
        if step.status == "success":
            return GenerationState.SUCCEEDED.value
        step.video_url_or_raise()  # a revoked key, a malformed answer: nothing a new submission would fix
        raise AssertionError("unreachable")  # pragma: no cover

    def is_job_active(self, status: str) -> bool:
        return status == _STILL_WAITING

    def is_job_succeeded(self, status: str) -> bool:
        return status == GenerationState.SUCCEEDED.value

    def poll_until_complete(self, external_id: Any, context: Context) -> Any:
        generation_id = str(external_id)
        if self.wait_for_completion and self._outcome is None:  # a retry's get_job_status may have decided
            self._outcome = self._wait_here_or_defer(generation_id, context)
        return self.get_job_result(generation_id, context)

    def get_job_result(self, external_id: Any, context: Context) -> Any:
        if not self.wait_for_completion:
            return str(external_id)
        if self.video_url is None:  # the mixin may ask twice: the XCom is pushed once
            assert self._outcome is not None  # decided by poll_until_complete, or by get_job_status on a retry
            self._succeed(context, self._outcome.video_url_or_raise())
        return self.video_url

    def _wait_here_or_defer(self, generation_id: str, context: Context) -> GenerationOutcome:
        wait = self._wait_for(generation_id, context)
        if not self.deferrable:
            return wait.run(self.hook)
        # One look before deferring (unless a retry just had it): a finished generation needs no triggerer.
        if wait.looks == 0 and isinstance(step := wait.look(self.hook), GenerationOutcome):
            return step
        # Imported here: the trigger module loads Airflow's trigger base classes (pydantic models), which a DAG
        # file importing this module has no use for.
        from airflow_provider_infinityblue.triggers.infinityblue import DEFERRAL_GRACE, InfinityBlueVideoTrigger

        self.defer(
            trigger=InfinityBlueVideoTrigger(
                generation_id=generation_id,
                infinityblue_conn_id=self.infinityblue_conn_id,
                poll_interval=self.poll_interval,
                end_time=wait.deadline,
                submitted_at=wait.submitted_at,
                not_found_grace=self.not_found_grace,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
        )

    # -- resuming from the trigger ----------------------------------------------------------

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Called on the worker with the trigger's event: returns the video URL or raises why not."""
        outcome = GenerationOutcome.from_event(event)
        # The worker that resumes runs a fresh copy of this operator: the model it was submitted with is
        # in XCom (deferral kwargs would do too, but dag.test() resumes with the event alone).
        ti = context["ti"]
        model = ti.xcom_pull(task_ids=self.task_id, key=MODEL_XCOM_KEY, map_indexes=ti.map_index)
        self.generation_id, self.resolved_model = outcome.generation_id, model
        return self._succeed(context, outcome.video_url_or_raise())

    # -- OpenLineage ------------------------------------------------------------------------

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """The lineage of a finished generation: the image it started from, the video, and how it was made.

        Called by the OpenLineage provider, when it is installed and configured; nothing here needs it
        otherwise. A data URI image is no dataset (its bytes are never put in an event); URLs lose their
        query strings (signed URLs carry tokens there).
        """
        from airflow_provider_infinityblue.operators.openlineage import generation_lineage

        return generation_lineage(self)

    # -- helpers ----------------------------------------------------------------------------

    def _store(self, context: Context) -> Any:
        return context.get("task_state_store") if self.durable else None

    def _check_earlier_submission(self, record: object) -> None:
        """Refuse to POST again after an earlier try's submission that never recorded its answer."""
        if not (isinstance(record, dict) and record.get("state") == "submitting"):
            return
        started = datetime.fromtimestamp(float(record.get("started_at") or 0), tz=UTC).isoformat(timespec="seconds")
        error = InfinityBlueAmbiguousSubmitError.unconfirmed(
            started_at=started, fingerprint=str(record.get("fingerprint") or "?")
        )
        if self.on_lost_generation == "fail":
            raise error
        self.log.warning("%s Submitting anew, as on_lost_generation='resubmit' says.", error)

    def _submission_time(self, generation_id: str, context: Context) -> float | None:
        """When ``generation_id`` was submitted, by this try or (from the task state store) an earlier one."""
        if self._submitted is not None and self._submitted[0] == generation_id:
            return self._submitted[1]
        store = self._store(context)
        record = store.get(SUBMISSION_KEY) if store is not None else None
        if isinstance(record, dict):
            if record.get("generation_id") == generation_id:
                return float(record["submitted_at"])
            if record.get("state") == "submitting":  # the id landed, the record of it did not
                return float(record["started_at"])
        return None

    def _wait_for(self, generation_id: str, context: Context) -> GenerationWait:
        if self._wait is None or self._wait.generation_id != generation_id:
            self._wait = GenerationWait(
                generation_id,
                deadline=time.time() + self.timeout,
                poll_interval=self.poll_interval,
                submitted_at=self._submission_time(generation_id, context),
                not_found_grace=self.not_found_grace,
                retry=self.hook.settings.retry,
                logger=self.log,
            )
        return self._wait

    def _generation_request(self, model: str) -> GenerationRequest:
        """The request of the rendered fields, validated (raises InfinityBlueValidationError)."""
        return GenerationRequest(
            prompt=self.prompt,
            model=model,
            image=self.image,
            duration=self.duration,  # type: ignore[arg-type]  # GenerationRequest converts rendered strings
            width=self.width,  # type: ignore[arg-type]
            height=self.height,  # type: ignore[arg-type]
            fps=self.fps,  # type: ignore[arg-type]
            seed=self.seed,  # type: ignore[arg-type]
            metadata=self.metadata,
            user=self.user,
        )

    def _resolve_model(self) -> str:
        """The model to submit with, decided on the worker (a DAG file's parse reads no connection)."""
        model, source = resolve_model(
            (self.model, "the operator's model"),
            (self.hook.settings.default_model, f"the default_model of connection '{self.infinityblue_conn_id}'"),
        )
        self.log.info("InfinityBlue model: %s (%s)", model, source)
        return model

    def _recorded_model(self, generation_id: str, context: Context) -> str:
        """The model an earlier try submitted ``generation_id`` with, as its submission record says."""
        store = self._store(context)
        record = store.get(SUBMISSION_KEY) if store is not None else None
        if isinstance(record, dict) and record.get("generation_id") == generation_id and record.get("model"):
            return str(record["model"])
        return self._resolve_model()  # a record written before records named the model: most likely this one

    def _announce(self, context: Context, generation_id: str, model: str) -> None:
        """Push the remote task id and its model: as soon as it is submitted, or when a retry finds it stored."""
        self.generation_id, self.resolved_model = generation_id, model
        context["ti"].xcom_push(key=GENERATION_ID_XCOM_KEY, value=generation_id)
        context["ti"].xcom_push(key=MODEL_XCOM_KEY, value=model)

    def _succeed(self, context: Context, video_url: str) -> str:
        self.log.info("InfinityBlue video ready: %s", video_url)
        context["ti"].xcom_push(key=VIDEO_URL_XCOM_KEY, value=video_url)
        self.video_url = video_url
        return video_url


__all__ = [
    "InfinityBlueDownloadVideoOperator",
    "InfinityBlueGenerateVideoBatchOperator",
    "InfinityBlueGenerateVideoOperator",
]

# The batch and download operators live in their own modules; they are importable from here too, beside the
# single-video one, and loaded on first use: a DAG file that imports the single operator does not pay for them.
_ELSEWHERE = {
    "InfinityBlueDownloadVideoOperator": "airflow_provider_infinityblue.operators.download",
    "InfinityBlueGenerateVideoBatchOperator": "airflow_provider_infinityblue.operators.batch",
}


def __getattr__(name: str) -> Any:
    if name not in _ELSEWHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_ELSEWHERE[name]), name)
    globals()[name] = value  # once imported, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
