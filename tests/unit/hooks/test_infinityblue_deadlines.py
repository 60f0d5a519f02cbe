"""Answer deadlines of the hook on real sockets: a server that trickles or never answers cannot hold a call.

A per-read timeout is started again by every byte; these servers send one byte at a time
(status line and headers too), or accept the request and stay silent.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from airflow_provider_infinityblue.exceptions import InfinityBlueAmbiguousSubmitError, InfinityBlueConnectionError
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import GenerationRequest
from airflow_provider_infinityblue.transport import LAST_LOOK_SECONDS
from tests.conftest import FAKE_API_KEY, set_connection
from tests.loopback import LoopbackServer, Reply

REQUEST = GenerationRequest(prompt="A kite over dunes", model="kling-v2-5-turbo")
QUEUED = Reply(body={"task_id": "t1", "status": "queued"})
# Long enough to last far beyond any timeout here, one byte every 50 ms.
SLOW_BODY = {"task_id": "t1", "status": "in_progress", "padding": "x" * 400}
MARGIN = 1.0


def trickle(*, headers: bool) -> Reply:
    return Reply(body=SLOW_BODY, action="trickle", delay=0.05, trickle_headers=headers)


def use_server(monkeypatch: pytest.MonkeyPatch, url: str, **extra: float) -> InfinityBlueHook:
    extra = {"initial_backoff": 0.01, "max_backoff": 0.05, "max_attempts": 1, "connect_timeout": 1, **extra}
    set_connection(monkeypatch, host=url, password=FAKE_API_KEY, extra=json.dumps(extra))
    return InfinityBlueHook()


async def aget(hook: InfinityBlueHook, *, deadline: float | None = None, times: int = 1) -> list[str]:
    """``times`` async GETs on one session; the statuses of those that succeeded, until one fails."""
    statuses = []
    async with hook:
        for _ in range(times):
            statuses.append((await hook.aget_generation("t1", deadline=deadline)).status)
    return statuses


TRICKLES = pytest.mark.parametrize("headers", [True, False], ids=["trickled-headers", "trickled-body"])


class TestReadTimeoutBoundsTheWholeAnswer:
    @TRICKLES
    def test_sync_get(self, monkeypatch, headers) -> None:
        with LoopbackServer([trickle(headers=headers)]) as server:
            hook = use_server(monkeypatch, server.url, read_timeout=1)
            started = time.monotonic()
            with pytest.raises(InfinityBlueConnectionError) as caught:
                hook.get_generation("t1")
            elapsed = time.monotonic() - started
        assert 1 <= elapsed < 1 + MARGIN
        assert str(caught.value) == (
            f"No complete answer arrived from the InfinityBlue API at {server.url} to GET /v1/video/generations/t1 "
            "within 1 s (read_timeout); the connection was closed"
        )
        assert caught.value.request_sent
        assert caught.value.transient
        assert FAKE_API_KEY not in str(caught.value)

    @TRICKLES
    def test_async_get(self, monkeypatch, headers) -> None:
        with LoopbackServer([trickle(headers=headers)]) as server:
            hook = use_server(monkeypatch, server.url, read_timeout=1)
            started = time.monotonic()
            with pytest.raises(InfinityBlueConnectionError, match=r"within 1 s \(read_timeout\)") as caught:
                asyncio.run(aget(hook))
            elapsed = time.monotonic() - started
        assert 1 <= elapsed < 1 + MARGIN
        assert caught.value.request_sent

    @TRICKLES
    def test_sync_post_is_ambiguous_and_sent_once(self, monkeypatch, headers) -> None:
        with LoopbackServer([trickle(headers=headers), QUEUED]) as server:
            hook = use_server(monkeypatch, server.url, read_timeout=1, max_attempts=3)
            started = time.monotonic()
            with pytest.raises(InfinityBlueAmbiguousSubmitError, match=r"may have been created.*within 1 s"):
                hook.submit_generation(REQUEST)
            elapsed = time.monotonic() - started
        assert elapsed < 1 + MARGIN
        assert [r.method for r in server.received] == ["POST"]

    @TRICKLES
    def test_a_get_is_retried_on_a_fresh_connection(self, monkeypatch, headers) -> None:
        with LoopbackServer([trickle(headers=headers), QUEUED]) as server:
            started = time.monotonic()
            generation = use_server(monkeypatch, server.url, read_timeout=1, max_attempts=2).get_generation("t1")
            elapsed = time.monotonic() - started
        assert generation.status == "queued"
        assert elapsed < 1 + MARGIN
        assert len(server.received) == 2
        assert server.connections == 2


class TestTheCallersDeadline:
    @TRICKLES
    def test_sync_get_ends_at_the_deadline_not_after_read_timeout(self, monkeypatch, headers) -> None:
        with LoopbackServer([trickle(headers=headers), trickle(headers=headers)]) as server:
            hook = use_server(monkeypatch, server.url, read_timeout=10, max_attempts=5)
            started = time.monotonic()
            with pytest.raises(InfinityBlueConnectionError, match=r"within 1(\.\d+)? s \(the caller's deadline\)"):
                hook.get_generation("t1", deadline=started + 1.5)
            elapsed = time.monotonic() - started
        assert 1.5 <= elapsed < 1.5 + MARGIN
        assert len(server.received) == 1  # no retry could end before the deadline

    @TRICKLES
    def test_async_get_ends_at_the_deadline_not_after_read_timeout(self, monkeypatch, headers) -> None:
        with LoopbackServer([trickle(headers=headers), trickle(headers=headers)]) as server:
            hook = use_server(monkeypatch, server.url, read_timeout=10, max_attempts=5)
            started = time.monotonic()
            with pytest.raises(InfinityBlueConnectionError, match=r"within 1(\.\d+)? s \(the caller's deadline\)"):
                asyncio.run(aget(hook, deadline=started + 1.5))
            elapsed = time.monotonic() - started
        assert 1.5 <= elapsed < 1.5 + MARGIN
        assert len(server.received) == 1

    def test_sync_silent_server(self, monkeypatch) -> None:
        with LoopbackServer([Reply(action="silent")]) as server:
            hook = use_server(monkeypatch, server.url, read_timeout=10, connect_timeout=1, max_attempts=5)
            started = time.monotonic()
            with pytest.raises(InfinityBlueConnectionError, match="No complete answer"):
                hook.get_generation("t1", deadline=started + 1.5)
            elapsed = time.monotonic() - started
        assert elapsed < 1.5 + 1 + MARGIN  # deadline + connect_timeout + margin
        assert len(server.received) == 1

    def test_async_silent_server(self, monkeypatch) -> None:
        with LoopbackServer([Reply(action="silent")]) as server:
            hook = use_server(monkeypatch, server.url, read_timeout=10, connect_timeout=1, max_attempts=5)
            started = time.monotonic()
            with pytest.raises(InfinityBlueConnectionError, match="No complete answer"):
                asyncio.run(aget(hook, deadline=started + 1.5))
            elapsed = time.monotonic() - started
        assert elapsed < 1.5 + 1 + MARGIN
        assert len(server.received) == 1

    def test_a_look_after_the_deadline_still_gets_its_answer(self, monkeypatch) -> None:
        with LoopbackServer([Reply(body=SLOW_BODY, action="stall", delay=0.3)]) as server:
            hook = use_server(monkeypatch, server.url, read_timeout=10)
            assert hook.get_generation("t1", deadline=time.monotonic() - 60).status == "in_progress"

    def test_a_look_after_the_deadline_gets_one_second(self, monkeypatch) -> None:
        with LoopbackServer([trickle(headers=False)]) as server:
            hook = use_server(monkeypatch, server.url, read_timeout=10)
            started = time.monotonic()
            with pytest.raises(InfinityBlueConnectionError, match=r"within 1 s \(the caller's deadline\)"):
                hook.get_generation("t1", deadline=started - 60)
            elapsed = time.monotonic() - started
        assert LAST_LOOK_SECONDS <= elapsed < LAST_LOOK_SECONDS + MARGIN


class TestTheHookStaysUsable:
    @TRICKLES
    def test_sync(self, monkeypatch, headers) -> None:
        with (
            LoopbackServer([trickle(headers=headers), QUEUED, QUEUED]) as server,
            use_server(monkeypatch, server.url, read_timeout=1) as hook,
        ):
            with pytest.raises(InfinityBlueConnectionError):
                hook.get_generation("t1")
            assert [hook.get_generation("t1").status for _ in range(2)] == ["queued", "queued"]
        # The cut connection was not reused; the next one was, kept alive.
        assert server.connections == 2

    @TRICKLES
    def test_async(self, monkeypatch, headers) -> None:
        async def fail_then_poll(hook: InfinityBlueHook) -> list[str]:
            async with hook:
                with pytest.raises(InfinityBlueConnectionError):
                    await hook.aget_generation("t1")
                return [(await hook.aget_generation("t1")).status for _ in range(2)]

        with LoopbackServer([trickle(headers=headers), QUEUED, QUEUED]) as server:
            hook = use_server(monkeypatch, server.url, read_timeout=1)
            assert asyncio.run(fail_then_poll(hook)) == ["queued", "queued"]
        assert server.connections == 2
