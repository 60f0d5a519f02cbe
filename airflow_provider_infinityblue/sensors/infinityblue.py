"""A sensor that waits for an InfinityBlue generation submitted elsewhere."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook, ensure_succeeded
from airflow_provider_infinityblue.links.infinityblue import VIDEO_URL_XCOM_KEY, InfinityBlueVideoLink
from airflow_provider_infinityblue.triggers.infinityblue import (
    DEFERRAL_GRACE,
    GenerationOutcome,
    InfinityBlueVideoTrigger,
)
from airflow_provider_infinityblue.version_compat import default_deferrable

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class InfinityBlueVideoSensor(BaseSensorOperator):
    """Wait for an already submitted generation; return (and push as ``video_url``) its URL.

    Works in every sensor mode: ``poke`` (holds a worker slot), ``reschedule`` (frees it
    between checks) and ``deferrable=True`` (waits in the triggerer). ``poke_interval``
    is the time between status requests and ``timeout`` the longest wait. A generation
    that fails or is cancelled fails the sensor with the API's reason.

    Example::

        wait = InfinityBlueVideoSensor(
            task_id="wait_for_video",
            generation_id="{{ ti.xcom_pull(task_ids='submit', key='infinityblue_task_id') }}",
            poke_interval=15,
            timeout=1800,
            deferrable=True,
        )

    :param generation_id: the remote task id (templated).
    :param infinityblue_conn_id: the Airflow connection to use.
    :param deferrable: wait in the triggerer instead of on a worker.
    """

    template_fields: Sequence[str] = ("generation_id",)
    ui_color = "#60a5fa"
    operator_extra_links = (InfinityBlueVideoLink(),)

    def __init__(
        self,
        *,
        generation_id: str,
        infinityblue_conn_id: str = InfinityBlueHook.default_conn_name,
        deferrable: bool = default_deferrable(),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.generation_id = generation_id
        self.infinityblue_conn_id = infinityblue_conn_id
        self.deferrable = deferrable
        self.video_url: str | None = None  # set once the video is ready; read by the extra link

    @cached_property
    def hook(self) -> InfinityBlueHook:
        return InfinityBlueHook(infinityblue_conn_id=self.infinityblue_conn_id)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        generation = self.hook.get_generation(self.generation_id)
        progress = "" if generation.progress is None else f" ({generation.progress}%)"
        self.log.info("InfinityBlue generation %s is %s%s", generation.id, generation.status, progress)
        if not generation.is_finished:
            return False
        video_url = ensure_succeeded(generation).video_url
        assert video_url is not None  # ensure_succeeded guarantees it
        return PokeReturnValue(is_done=True, xcom_value=self._succeed(context, video_url))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        checked = self.poke(context)
        if isinstance(checked, PokeReturnValue):
            return checked.xcom_value
        self.defer(
            trigger=InfinityBlueVideoTrigger(
                generation_id=self.generation_id,
                infinityblue_conn_id=self.infinityblue_conn_id,
                poll_interval=self.poke_interval,
                end_time=time.time() + self.timeout,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Called on the worker with the trigger's event: returns the video URL or raises why not."""
        outcome = GenerationOutcome.from_event(event)
        if outcome.status == "timeout":
            raise AirflowSensorTimeout(outcome.message)
        return self._succeed(context, outcome.video_url_or_raise())

    def _succeed(self, context: Context, video_url: str) -> str:
        context["ti"].xcom_push(key=VIDEO_URL_XCOM_KEY, value=video_url)
        self.video_url = video_url
        return video_url
