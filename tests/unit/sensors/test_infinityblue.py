"""InfinityBlueVideoSensor called directly: poke, deferral, outcomes."""

from __future__ import annotations

import time

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout, AirflowSkipException, TaskDeferred
from airflow.sdk import PokeReturnValue

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAuthenticationError,
    InfinityBlueGenerationFailedError,
    InfinityBlueGenerationLostError,
    InfinityBlueResponseError,
)
from airflow_provider_infinityblue.sensors.infinityblue import InfinityBlueVideoSensor
from airflow_provider_infinityblue.triggers.infinityblue import InfinityBlueVideoTrigger
from tests.conftest import BASE_URL, FAKE_API_KEY, set_connection
from tests.unit.fakes import task_context

STATUS_URL = f"{BASE_URL}/v1/video/generations/t1"


def sensor(**kwargs) -> InfinityBlueVideoSensor:
    return InfinityBlueVideoSensor(**{"task_id": "wait", "generation_id": "t1", "poke_interval": 1, **kwargs})


def test_poke_is_false_while_running(hook, requests_mock) -> None:
    requests_mock.get(STATUS_URL, json={"task_id": "t1", "status": "in_progress", "progress": 20})
    assert sensor().poke(task_context()) is False


def test_poke_returns_and_pushes_the_url(hook, requests_mock) -> None:
    requests_mock.get(STATUS_URL, json={"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"})
    context = task_context()
    result = sensor().poke(context)
    assert isinstance(result, PokeReturnValue)
    assert result.is_done
    assert result.xcom_value == "https://cdn/t1.mp4"
    assert context["ti"].xcom == {"video_url": "https://cdn/t1.mp4"}


def test_poke_mode_waits_until_done(hook, requests_mock) -> None:
    requests_mock.get(
        STATUS_URL,
        [
            {"json": {"task_id": "t1", "status": "queued"}},
            {"json": {"task_id": "t1", "status": "running"}},
            {"json": {"task_id": "t1", "status": "succeeded", "video_url": "https://cdn/t1.mp4"}},
        ],
    )
    assert sensor(mode="poke", deferrable=False).execute(task_context()) == "https://cdn/t1.mp4"
    assert requests_mock.call_count == 3


def test_failed_generation_fails_the_sensor_with_the_reason(hook, requests_mock) -> None:
    requests_mock.get(STATUS_URL, json={"task_id": "t1", "status": "failed", "fail_reason": "Prompt refused"})
    with pytest.raises(InfinityBlueGenerationFailedError, match=r"t1.*Prompt refused"):
        sensor().poke(task_context())


def test_completed_without_url_fails(hook, requests_mock) -> None:
    requests_mock.get(STATUS_URL, json={"task_id": "t1", "status": "completed"})
    with pytest.raises(InfinityBlueResponseError, match="no video URL"):
        sensor().poke(task_context())


def test_deferrable_defers_with_the_poke_interval_and_timeout(hook, requests_mock, monkeypatch) -> None:
    set_connection(monkeypatch, "video_prod", host=BASE_URL, password=FAKE_API_KEY)
    requests_mock.get(STATUS_URL, json={"task_id": "t1", "status": "queued"})
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        sensor(deferrable=True, poke_interval=20, timeout=900, infinityblue_conn_id="video_prod").execute(
            task_context()
        )
    trigger = deferred.value.trigger
    assert isinstance(trigger, InfinityBlueVideoTrigger)
    assert (trigger.generation_id, trigger.infinityblue_conn_id, trigger.poll_interval) == ("t1", "video_prod", 20.0)
    assert before + 900 <= trigger.end_time <= time.time() + 900


def test_deferrable_finished_at_first_check_does_not_defer(hook, requests_mock) -> None:
    requests_mock.get(STATUS_URL, json={"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"})
    context = task_context()
    assert sensor(deferrable=True).execute(context) == "https://cdn/t1.mp4"
    assert context["ti"].xcom == {"video_url": "https://cdn/t1.mp4"}


def test_execute_complete_success() -> None:
    context = task_context()
    event = {"status": "success", "generation_id": "t1", "message": "", "video_url": "https://cdn/t1.mp4"}
    assert sensor().execute_complete(context, event) == "https://cdn/t1.mp4"
    assert context["ti"].xcom == {"video_url": "https://cdn/t1.mp4"}


def test_execute_complete_timeout_is_a_sensor_timeout() -> None:
    with pytest.raises(AirflowSensorTimeout, match="may still finish"):
        sensor().execute_complete(
            task_context(), {"status": "timeout", "generation_id": "t1", "message": "may still finish"}
        )


def test_soft_fail_skips_on_a_failed_generation() -> None:
    event = {"status": "failed", "generation_id": "t1", "message": "Prompt refused"}
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).resume_execution("execute_complete", {"event": event}, task_context())


def test_a_transient_failure_keeps_the_sensor_waiting(hook, requests_mock) -> None:
    requests_mock.get(STATUS_URL, status_code=503, text="busy")
    assert sensor().poke(task_context()) is False


def test_a_404_soon_after_the_start_keeps_it_waiting_and_past_the_grace_fails(hook, requests_mock) -> None:
    requests_mock.get(STATUS_URL, status_code=404, json={"error": {"message": "no such task", "code": "not_found"}})
    waiting = sensor(not_found_grace=60)
    context = task_context()
    assert waiting.poke(context) is False
    assert waiting._wait is not None
    waiting._wait.submitted_at -= 61  # the sensor started over a minute ago
    with pytest.raises(InfinityBlueGenerationLostError, match="may still be billed"):
        waiting.poke(context)


def test_a_revoked_key_fails_the_sensor_at_once(hook, requests_mock) -> None:
    requests_mock.get(STATUS_URL, status_code=401, json={"error": {"message": "revoked", "code": "invalid_api_key"}})
    with pytest.raises(InfinityBlueAuthenticationError, match="revoked"):
        sensor().poke(task_context())


def test_a_deferrable_sensor_refuses_a_poke_interval_its_trigger_would() -> None:
    with pytest.raises(ValueError, match="poke_interval must be a finite number"):
        sensor(deferrable=True, poke_interval=0.5)


def test_generation_id_is_templated() -> None:
    assert InfinityBlueVideoSensor.template_fields == ("generation_id",)


@pytest.mark.parametrize("grace", [0, float("nan"), "soon"])
def test_a_nonsense_not_found_grace_is_refused_when_built(grace) -> None:
    with pytest.raises(ValueError, match="not_found_grace must be a finite number of seconds"):
        sensor(not_found_grace=grace)
