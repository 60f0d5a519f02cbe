"""The triggerer's shared pool: one session per event loop and connection settings, on real loopback sockets."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import warnings

import pytest

from airflow_provider_infinityblue import session_pool
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.session_pool import close_idle_sessions, users_of
from airflow_provider_infinityblue.triggers.infinityblue import InfinityBlueVideoTrigger
from tests.conftest import FAKE_API_KEY, set_connection
from tests.loopback import LoopbackServer, Reply

RUNNING = Reply(body={"task_id": "t1", "status": "in_progress"})
DONE = Reply(body={"task_id": "t1", "status": "completed", "url": "https://cdn.example/t1.mp4"})


def connect(monkeypatch: pytest.MonkeyPatch, url: str, conn_id: str = "infinityblue_default", **extra: object) -> None:
    set_connection(monkeypatch, conn_id, host=url, password=FAKE_API_KEY, extra=json.dumps(extra))


async def look_once(sessions: list) -> None:
    """One hook's look at a generation; the session it used goes into ``sessions``."""
    async with InfinityBlueHook() as hook:
        sessions.append(await hook.aget_conn())
        await hook.aget_generation("t1")


async def events(trigger: InfinityBlueVideoTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def test_triggers_of_one_loop_share_one_session_and_a_few_connections(monkeypatch) -> None:
    with LoopbackServer([DONE] * 200) as server:
        connect(monkeypatch, server.url, max_connections_per_host=4)

        async def main() -> list[list[dict]]:
            return await asyncio.gather(*(events(InfinityBlueVideoTrigger("t1", poll_interval=1)) for _ in range(200)))

        results = asyncio.run(main())
    assert [event["status"] for (event,) in results] == ["success"] * 200
    assert len(server.received) == 200
    assert server.connections <= 4  # the cap, not one connection per trigger


def test_the_session_is_given_back_lingers_for_the_next_trigger_then_closes(monkeypatch) -> None:
    monkeypatch.setattr(session_pool, "LINGER_SECONDS", 0.3)
    with LoopbackServer([DONE, DONE]) as server:
        connect(monkeypatch, server.url)

        async def main() -> tuple[bool, bool, bool]:
            async with InfinityBlueHook() as first:
                session = await first.aget_conn()
                await first.aget_generation("t1")
            lingering = not session.closed and users_of(session) == 0
            async with InfinityBlueHook() as second:  # a deferral right after: the same pool
                same = await second.aget_conn() is session
                await second.aget_generation("t1")
            await asyncio.sleep(0.6)
            return lingering, same, session.closed

        lingering, same, closed = asyncio.run(main())
    assert (lingering, same, closed) == (True, True, True)
    assert server.connections == 1  # the second hook reused the first one's kept-alive connection


def test_a_loop_that_ends_while_a_session_lingers_closes_it_without_warnings(monkeypatch) -> None:
    with LoopbackServer([DONE]) as server:
        connect(monkeypatch, server.url)
        sessions: list = []

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # As dag.test() runs each trigger: the loop ends long before the linger would.
            asyncio.run(look_once(sessions))
            gc.collect()
    assert sessions[0].closed
    assert not [w for w in caught if "Unclosed" in str(w.message) or "destroyed" in str(w.message)]


def test_each_event_loop_has_its_own_session(monkeypatch) -> None:
    with LoopbackServer([DONE, DONE]) as server:
        connect(monkeypatch, server.url)
        sessions: list = []
        thread = threading.Thread(target=asyncio.run, args=(look_once(sessions),))
        thread.start()
        asyncio.run(look_once(sessions))
        thread.join()
    assert sessions[0] is not sessions[1]
    assert all(session.closed for session in sessions)


def test_different_connections_get_different_sessions(monkeypatch) -> None:
    with LoopbackServer([DONE, DONE]) as server:
        connect(monkeypatch, server.url)
        connect(monkeypatch, server.url, "other", max_connections_per_host=2)

        async def main() -> bool:
            async with InfinityBlueHook() as one, InfinityBlueHook("other") as other:
                return await one.aget_conn() is await other.aget_conn()

        assert asyncio.run(main()) is False


def test_a_429_holds_every_trigger_on_the_session(monkeypatch) -> None:
    rate_limited = Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "1"})
    with LoopbackServer([rate_limited, RUNNING, DONE, DONE, DONE]) as server:
        connect(monkeypatch, server.url, initial_backoff=0.01)

        async def main() -> None:
            async with InfinityBlueHook() as first:
                await first.apoll_generation("t1")  # the 429: the whole session waits 1 s
                async with InfinityBlueHook() as second, InfinityBlueHook() as third:
                    await asyncio.gather(*(hook.apoll_generation("t1") for hook in (first, second, third)))

        asyncio.run(main())
    first, *others = (request.at for request in server.received)
    assert len(others) == 3
    assert min(others) - first >= 0.95  # none of the three went out before the Retry-After had passed


def test_max_requests_per_second_is_shared_by_the_triggers_of_the_session(monkeypatch) -> None:
    with LoopbackServer([DONE] * 21) as server:
        connect(monkeypatch, server.url, max_requests_per_second=20)

        async def main() -> None:
            hooks = [InfinityBlueHook() for _ in range(21)]
            try:
                await asyncio.gather(*(hook.aget_generation("t1") for hook in hooks))
            finally:
                for hook in hooks:
                    await hook.aclose()

        started = time.monotonic()
        asyncio.run(main())
    spread = server.received[-1].at - server.received[0].at
    assert spread >= 0.9  # 21 requests at 20 a second: the last one a second after the first
    assert time.monotonic() - started < 5


def test_triggers_starting_together_read_the_connection_once(monkeypatch) -> None:
    reads = []
    original = InfinityBlueHook._aread_settings

    async def counting(self):
        reads.append(self.infinityblue_conn_id)
        return await original(self)

    monkeypatch.setattr(InfinityBlueHook, "_aread_settings", counting)
    with LoopbackServer([DONE] * 51) as server:
        connect(monkeypatch, server.url, conn_id="read_once")

        async def main() -> None:
            await asyncio.gather(
                *(events(InfinityBlueVideoTrigger("t1", "read_once", poll_interval=1)) for _ in range(50))
            )

        asyncio.run(main())
        assert reads == ["read_once"]
        connect(monkeypatch, server.url, conn_id="read_once", read_timeout=30)  # a changed connection is read again
        asyncio.run(events(InfinityBlueVideoTrigger("t1", "read_once", poll_interval=1)))
    assert reads == ["read_once", "read_once"]


@pytest.mark.asyncio
async def test_close_idle_sessions_closes_only_sessions_nobody_holds(monkeypatch) -> None:
    with LoopbackServer([DONE]) as server:
        connect(monkeypatch, server.url)
        async with InfinityBlueHook() as held:
            async with InfinityBlueHook("infinityblue_default") as other:
                session = await other.aget_conn()
            await close_idle_sessions()
            assert not session.closed  # `held` still uses it
            await held.aget_generation("t1")
        await close_idle_sessions()
        assert session.closed
