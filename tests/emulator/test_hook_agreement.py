"""The project's real InfinityBlueHook against the emulator: both must read the API the same way."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_infinityblue.emulator import running_emulator
from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAuthenticationError,
    InfinityBlueGenerationFailedError,
    InfinityBlueNotFoundError,
)
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import GenerationRequest, GenerationState

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_infinityblue.emulator import EmulatorHandle

FAST_RETRIES = {"initial_backoff": 0.01, "max_backoff": 0.05, "max_attempts": 4}
REQUEST = GenerationRequest(prompt="A red fox in snow", model="kling-v2-5-turbo", duration=5, width=1280, height=720)


@pytest.fixture(params=["documented", "wrapped"])
def connected(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorHandle]:
    with running_emulator(generation_seconds=0.3, shape=request.param) as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", emulator.airflow_connection(extra=FAST_RETRIES))
        yield emulator


def test_submit_then_wait_gives_the_video_url(connected: EmulatorHandle) -> None:
    with InfinityBlueHook() as hook:
        task_id = hook.submit_generation(REQUEST)
        generation = hook.wait_for_generation(task_id, poll_interval=0.05, timeout=10)
    assert generation.state is GenerationState.SUCCEEDED
    assert generation.id == task_id
    assert generation.progress == 100
    assert generation.video_url == f"{connected.url}/videos/{task_id}.mp4"
    assert connected.stats()["submissions"] == 1


def test_a_content_policy_failure_fails_the_wait_with_the_servers_reason(connected: EmulatorHandle) -> None:
    with InfinityBlueHook() as hook:
        task_id = hook.submit_generation(GenerationRequest(prompt="[content-policy] riot", model="veo_3_1"))
        with pytest.raises(InfinityBlueGenerationFailedError, match="content policy") as caught:
            hook.wait_for_generation(task_id, poll_interval=0.05, timeout=10)
    assert caught.value.generation_id == task_id


def test_an_unknown_task_is_not_found_in_both_shapes(connected: EmulatorHandle) -> None:
    with InfinityBlueHook() as hook, pytest.raises(InfinityBlueNotFoundError):
        hook.get_generation("no-such-generation")


def test_test_connection_accepts_the_emulator(connected: EmulatorHandle) -> None:
    ok, message = InfinityBlueHook().test_connection()
    assert ok, message


def test_the_hook_rides_out_unavailable_polls_and_rejected_submissions(connected: EmulatorHandle) -> None:
    connected.configure(reject_submissions=1, unavailable_polls=2)
    with InfinityBlueHook() as hook:
        started = time.monotonic()
        task_id = hook.submit_generation(REQUEST)  # the 429 says Retry-After: 1
        generation = hook.wait_for_generation(task_id, poll_interval=0.05, timeout=10)
    assert time.monotonic() - started >= 1.0
    assert generation.state is GenerationState.SUCCEEDED
    requests = connected.stats()["requests"]
    assert requests["POST /v1/video/generations"] == {"200": 1, "429": 1}
    assert requests["GET /v1/video/generations/{task_id}"]["503"] == 2
    assert connected.stats()["submissions"] == 1


@pytest.mark.asyncio
async def test_the_async_hook_reads_the_same_generation(connected: EmulatorHandle) -> None:
    task_id = InfinityBlueHook().submit_generation(REQUEST)
    async with InfinityBlueHook() as hook:
        first = await hook.aget_generation(task_id)
        while not first.is_finished:
            await asyncio.sleep(0.05)
            first = await hook.aget_generation(task_id)
    assert first.state is GenerationState.SUCCEEDED
    assert first.video_url == f"{connected.url}/videos/{task_id}.mp4"


def test_a_wrong_key_is_an_authentication_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with running_emulator(api_key="sk-right-key") as emulator:
        monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", emulator.airflow_connection(api_key="sk-wrong-key"))
        with InfinityBlueHook() as hook, pytest.raises(InfinityBlueAuthenticationError) as caught:
            hook.submit_generation(REQUEST)
    assert caught.value.request_id is not None
    assert caught.value.request_id.startswith("req_")
