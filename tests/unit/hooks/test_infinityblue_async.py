"""The hook's coroutines (used by triggers), against aioresponses."""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING

import aiohttp
import pytest

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAuthenticationError,
    InfinityBlueConnectionError,
    InfinityBlueNotFoundError,
    InfinityBlueServerError,
)
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import GenerationState
from airflow_provider_infinityblue.session_pool import users_of
from tests.conftest import BASE_URL, FAKE_API_KEY, on_event_loop_thread

if TYPE_CHECKING:
    from aioresponses import aioresponses

STATUS_URL = f"{BASE_URL}/v1/video/generations/t1"


def calls(api: aioresponses) -> int:
    return sum(len(requests) for requests in api.requests.values())


@pytest.mark.asyncio
async def test_reads_a_generation(hook, api) -> None:
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4", "extra": 1})
    async with hook:
        generation = await hook.aget_generation("t1")
    assert generation.state is GenerationState.SUCCEEDED
    assert generation.video_url == "https://cdn/t1.mp4"
    assert generation.raw["extra"] == 1


@pytest.mark.asyncio
async def test_reads_the_wrapped_shape(hook, api) -> None:
    api.get(
        STATUS_URL,
        payload={"code": "success", "message": "", "data": {"id": "t1", "status": "IN_PROGRESS", "progress": "40%"}},
    )
    async with hook:
        generation = await hook.aget_generation("t1")
    assert (generation.state, generation.progress) == (GenerationState.RUNNING, 40)


@pytest.mark.asyncio
async def test_one_session_for_the_hooks_life_closed_on_exit(hook, api) -> None:
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "queued"}, repeat=True)
    async with hook:
        session = await hook.aget_conn()
        await hook.aget_generation("t1")
        await hook.aget_generation("t1")
        assert await hook.aget_conn() is session
        assert session.headers["Authorization"] == f"Bearer {FAKE_API_KEY}"
        assert users_of(session) == 1
    assert users_of(session) == 0


@pytest.mark.asyncio
async def test_session_is_closed_when_the_block_fails(hook, api) -> None:
    api.get(STATUS_URL, status=401, payload={"error": {"message": "bad key", "code": "invalid_api_key"}})

    async def use_and_fail() -> None:
        async with hook:
            sessions.append(await hook.aget_conn())
            await hook.aget_generation("t1")

    sessions: list[aiohttp.ClientSession] = []
    with pytest.raises(InfinityBlueAuthenticationError):
        await use_and_fail()
    assert users_of(sessions[0]) == 0


@pytest.mark.asyncio
async def test_transient_failures_are_retried(hook, api) -> None:
    api.get(STATUS_URL, status=503, body="<html>busy</html>", content_type="text/html")
    api.get(STATUS_URL, exception=aiohttp.ServerDisconnectedError())
    api.get(STATUS_URL, exception=TimeoutError())
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "running"})
    async with hook:
        generation = await hook.aget_generation("t1")
    assert generation.state is GenerationState.RUNNING
    assert calls(api) == 4


@pytest.mark.asyncio
async def test_429_waits_for_retry_after(hook, api) -> None:
    api.get(STATUS_URL, status=429, payload={"error": {"message": "slow"}}, headers={"Retry-After": "1"})
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "queued"})
    started = time.monotonic()
    async with hook:
        await hook.aget_generation("t1")
    assert time.monotonic() - started >= 1.0
    assert calls(api) == 2


@pytest.mark.asyncio
async def test_unknown_task_is_not_retried(hook, api) -> None:
    api.get(STATUS_URL, status=400, payload={"code": "task_not_exist", "message": "task not exist", "data": None})
    async with hook:
        with pytest.raises(InfinityBlueNotFoundError, match="task not exist"):
            await hook.aget_generation("t1")
    assert calls(api) == 1


@pytest.mark.asyncio
async def test_gives_up_after_max_attempts(hook, api) -> None:
    api.get(STATUS_URL, status=502, body="bad gateway", headers={"x-request-id": "req_async"}, repeat=True)
    async with hook:
        with pytest.raises(InfinityBlueServerError, match="req_async"):
            await hook.aget_generation("t1")
    assert calls(api) == 4


@pytest.mark.asyncio
async def test_network_failure_message(hook, api) -> None:
    api.get(re.compile(r".*"), exception=aiohttp.ClientConnectionError("connection refused"), repeat=True)
    async with hook:
        with pytest.raises(InfinityBlueConnectionError, match="Could not get an answer from the InfinityBlue API"):
            await hook.aget_generation("t1")


@pytest.mark.asyncio
async def test_key_never_in_async_errors(hook, api) -> None:
    api.get(STATUS_URL, status=401, payload={"error": {"message": f"Incorrect API key provided: {FAKE_API_KEY}"}})
    async with hook:
        with pytest.raises(InfinityBlueAuthenticationError) as caught:
            await hook.aget_generation("t1")
    assert FAKE_API_KEY not in str(caught.value)
    assert "Incorrect API key provided: ***" in str(caught.value)


@pytest.mark.airflow(">=3.1", feature="the async connection lookup")
def test_connection_is_read_without_the_sync_lookup(monkeypatch, hook) -> None:
    """In the triggerer the sync lookup would block the event loop; the coroutine path must not use it."""

    def forbidden(*args, **kwargs):
        raise AssertionError("sync get_connection called from a coroutine")

    monkeypatch.setattr(InfinityBlueHook, "get_connection", classmethod(forbidden))

    async def read() -> str:
        fresh = InfinityBlueHook()
        return (await fresh.asettings()).base_url

    assert asyncio.run(read()) == BASE_URL


@pytest.mark.airflow("<3.1", feature="the connection lookup of Airflow 3.0 triggers")
def test_without_the_async_lookup_the_connection_is_read_off_the_event_loop(monkeypatch, hook) -> None:
    """Airflow 3.0 has no aget_connection: the sync lookup runs in asgiref's executor thread."""
    original = InfinityBlueHook.get_connection.__func__
    lookups: list[bool] = []

    def recording(cls, conn_id):
        lookups.append(on_event_loop_thread())
        return original(cls, conn_id)

    monkeypatch.setattr(InfinityBlueHook, "get_connection", classmethod(recording))

    async def read() -> str:
        return (await InfinityBlueHook().asettings()).base_url

    assert asyncio.run(read()) == BASE_URL
    assert lookups == [False]
