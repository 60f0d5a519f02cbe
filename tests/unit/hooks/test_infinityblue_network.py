"""The hook on real sockets: what a dropped or silent server does to a submission, keep-alive."""

from __future__ import annotations

import asyncio
import json

import pytest

from airflow_provider_infinityblue import __version__
from airflow_provider_infinityblue.exceptions import InfinityBlueAmbiguousSubmitError, InfinityBlueConnectionError
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import GenerationRequest
from tests.conftest import FAKE_API_KEY, set_connection
from tests.loopback import LoopbackServer, Reply, free_port

REQUEST = GenerationRequest(prompt="A lighthouse in a storm", model="kling-v2-5-turbo")
QUEUED = Reply(body={"task_id": "t1", "status": "queued"})


def use_server(monkeypatch: pytest.MonkeyPatch, url: str, **extra: float) -> InfinityBlueHook:
    extra = {"initial_backoff": 0.01, "max_backoff": 0.05, "max_attempts": 3, **extra}
    set_connection(monkeypatch, host=url, password=FAKE_API_KEY, extra=json.dumps(extra))
    return InfinityBlueHook()


def test_post_dropped_after_the_body_is_not_sent_again(monkeypatch) -> None:
    with LoopbackServer([Reply(action="drop"), QUEUED]) as server:
        hook = use_server(monkeypatch, server.url)
        with pytest.raises(InfinityBlueAmbiguousSubmitError, match="may have been created"):
            hook.submit_generation(REQUEST)
    assert [r.method for r in server.received] == ["POST"]
    assert json.loads(server.received[0].body)["prompt"] == "A lighthouse in a storm"


def test_post_without_answer_before_the_read_timeout_is_not_sent_again(monkeypatch) -> None:
    with LoopbackServer([Reply(action="stall", delay=1.5, body={"task_id": "late"}), QUEUED]) as server:
        hook = use_server(monkeypatch, server.url, read_timeout=0.3)
        with pytest.raises(InfinityBlueAmbiguousSubmitError, match=r"within 0.3 s \(read_timeout\)"):
            hook.submit_generation(REQUEST)
    assert len(server.received) == 1


def test_post_to_a_closed_port_is_a_connection_error_not_an_ambiguous_one(monkeypatch) -> None:
    hook = use_server(monkeypatch, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(InfinityBlueConnectionError) as caught:
        hook.submit_generation(REQUEST)
    assert not isinstance(caught.value, InfinityBlueAmbiguousSubmitError)
    assert caught.value.request_sent is False


def test_sync_calls_share_one_kept_alive_connection(monkeypatch) -> None:
    with LoopbackServer([QUEUED, QUEUED, QUEUED]) as server, use_server(monkeypatch, server.url) as hook:
        for _ in range(3):
            hook.get_generation("t1")
    assert server.connections == 1
    headers = server.received[0].headers
    assert headers["Authorization"] == f"Bearer {FAKE_API_KEY}"
    assert headers["User-Agent"] == f"airflow-provider-infinityblue/{__version__}"


def test_sync_get_dropped_is_retried(monkeypatch) -> None:
    with LoopbackServer([Reply(action="drop"), QUEUED]) as server:
        assert use_server(monkeypatch, server.url).get_generation("t1").id == "t1"
    assert len(server.received) == 2


def test_async_calls_share_one_session_and_connection(monkeypatch) -> None:
    async def poll_three_times(hook: InfinityBlueHook) -> None:
        async with hook:
            for _ in range(3):
                await hook.aget_generation("t1")

    with LoopbackServer([QUEUED, QUEUED, QUEUED]) as server:
        asyncio.run(poll_three_times(use_server(monkeypatch, server.url)))
    assert server.connections == 1
    headers = server.received[0].headers
    assert headers["Authorization"] == f"Bearer {FAKE_API_KEY}"
    assert headers["User-Agent"] == f"airflow-provider-infinityblue/{__version__}"


def test_async_get_dropped_is_retried(monkeypatch) -> None:
    async def poll(hook: InfinityBlueHook) -> str:
        async with hook:
            return (await hook.aget_generation("t1")).status

    with LoopbackServer([Reply(action="drop"), Reply(status=503, body=b"<html>down</html>"), QUEUED]) as server:
        assert asyncio.run(poll(use_server(monkeypatch, server.url))) == "queued"
    assert len(server.received) == 3


def test_async_read_timeout_is_retried(monkeypatch) -> None:
    async def poll(hook: InfinityBlueHook) -> str:
        async with hook:
            return (await hook.aget_generation("t1")).status

    with LoopbackServer([Reply(action="stall", delay=1.0, body={}), QUEUED]) as server:
        assert asyncio.run(poll(use_server(monkeypatch, server.url, read_timeout=0.3))) == "queued"
    assert len(server.received) == 2


def test_async_closed_port_gives_up_with_a_clear_error(monkeypatch) -> None:
    async def poll(hook: InfinityBlueHook) -> None:
        async with hook:
            await hook.aget_generation("t1")

    port = free_port()
    with pytest.raises(InfinityBlueConnectionError, match=f"127.0.0.1:{port}"):
        asyncio.run(poll(use_server(monkeypatch, f"http://127.0.0.1:{port}")))
