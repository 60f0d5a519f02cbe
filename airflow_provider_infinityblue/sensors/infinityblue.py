"""A sensor that waits for an InfinityBlue generation submitted elsewhere."""

from __future__ import annotations

import time
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowSensorTimeout
from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.links.infinityblue import VIDEO_URL_XCOM_KEY, InfinityBlueVideoLink
from airflow_provider_infinityblue.version_compat import default_deferrable
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

    from airflow.sdk import Context


class InfinityBlueVideoSensor(BaseSensorOperator):
    """Wait for an already submitted generation; return (and push as ``video_url``) its URL.

    Works in every sensor mode: ``poke`` (holds a worker slot), ``reschedule`` (frees it
    between checks) and ``deferrable=True`` (waits in the triggerer). ``poke_interval``
    is the time between status requests and ``timeout`` the longest wait. Every answer goes
    through the provider's wait engine, so each mode ends the same way on the same answers:
    a generation that fails or is cancelled fails the sensor with the API's reason,
    transient failures (network, 429, 5xx) are waited through until ``timeout``, and a 404
    within ``not_found_grace`` seconds of the sensor's start means the generation, just
    submitted upstream, is not visible yet.

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
    :param deferrable: wait in the triggerer instead of on a worker (``poke_interval`` of at least 1 s).
    :param not_found_grace: seconds from the sensor's first poke during which a 404 means "not
        visible yet" rather than "lost".
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
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.generation_id = generation_id
        self.infinityblue_conn_id = infinityblue_conn_id
        self.deferrable = deferrable
        self.not_found_grace = check_positive_seconds(not_found_grace, "not_found_grace")
        if deferrable:
            check_poll_interval(self.poke_interval, "poke_interval")
        self.video_url: str | None = None  # set once the video is ready; read by the extra link
        self._wait: GenerationWait | None = None

    @cached_property
    def hook(self) -> InfinityBlueHook:
        return InfinityBlueHook(infinityblue_conn_id=self.infinityblue_conn_id)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        step = self._wait_of(context).look(self.hook)
        if isinstance(step, KeepWaiting):
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._end(context, step))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        checked = self.poke(context)
        if isinstance(checked, PokeReturnValue):
            return checked.xcom_value
        wait = self._wait_of(context)
        # Imported here: the trigger module loads Airflow's trigger base classes, which DAG files have no use for.
        from airflow_provider_infinityblue.triggers.infinityblue import DEFERRAL_GRACE, InfinityBlueVideoTrigger

        self.defer(
            trigger=InfinityBlueVideoTrigger(
                generation_id=wait.generation_id,
                infinityblue_conn_id=self.infinityblue_conn_id,
                poll_interval=self.poke_interval,
                end_time=wait.deadline,
                submitted_at=wait.submitted_at,
                not_found_grace=self.not_found_grace,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Called on the worker with the trigger's event: returns the video URL or raises why not."""
        return self._end(context, GenerationOutcome.from_event(event))

    def _wait_of(self, context: Context) -> GenerationWait:
        """This try's wait; in reschedule mode it counts from the first poke, as the sensor's timeout does."""
        if self._wait is None or self._wait.generation_id != str(self.generation_id).strip():
            first_poke = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
            started_at = first_poke.timestamp() if first_poke is not None else time.time()
            self._wait = GenerationWait(
                str(self.generation_id).strip(),
                deadline=started_at + self.timeout,
                poll_interval=self.poke_interval,
                submitted_at=started_at,
                not_found_grace=self.not_found_grace,
                retry=self.hook.settings.retry,
                logger=self.log,
            )
        return self._wait

    def _end(self, context: Context, outcome: GenerationOutcome) -> str:
        if outcome.status == "timeout":
            raise AirflowSensorTimeout(outcome.message)
        video_url = outcome.video_url_or_raise()
        context["ti"].xcom_push(key=VIDEO_URL_XCOM_KEY, value=video_url)
        self.video_url = video_url
        return video_url
