"""InfinityBlueVideoTrigger: one event per outcome, survives restarts, closes its session, never blocks."""

from __future__ import annotations

import asyncio
import importlib
import json
import time

import aiohttp
import pytest

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAuthenticationError,
    InfinityBlueError,
    InfinityBlueGenerationFailedError,
    InfinityBlueWaitTimeoutError,
)
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.session_pool import users_of
from airflow_provider_infinityblue.triggers.infinityblue import GenerationOutcome, InfinityBlueVideoTrigger
from airflow_provider_infinityblue.version_compat import AIRFLOW_V_3_1_PLUS
from tests.conftest import BASE_URL, FAKE_API_KEY, on_event_loop_thread, set_connection
from tests.loopback import LoopbackServer, Reply

STATUS_URL = f"{BASE_URL}/v1/video/generations/t1"


@pytest.fixture
def sessions(monkeypatch) -> list[aiohttp.ClientSession]:
    """Every aiohttp session a hook opens during the test."""
    opened: list[aiohttp.ClientSession] = []
    original = InfinityBlueHook.aget_conn

    async def recording(self: InfinityBlueHook) -> aiohttp.ClientSession:
        session = await original(self)
        if session not in opened:
            opened.append(session)
        return session

    monkeypatch.setattr(InfinityBlueHook, "aget_conn", recording)
    return opened


def make_trigger(**kwargs) -> InfinityBlueVideoTrigger:
    return InfinityBlueVideoTrigger(
        **{"generation_id": "t1", "poll_interval": 1, "end_time": time.time() + 30, **kwargs}
    )


async def events_of(trigger: InfinityBlueVideoTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]


def test_serialize_round_trip_keeps_the_absolute_deadline() -> None:
    trigger = InfinityBlueVideoTrigger(
        "t1", "video_prod", poll_interval=7, end_time=1_900_000_000.5, submitted_at=1_899_999_000.0
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_infinityblue.triggers.infinityblue.InfinityBlueVideoTrigger"
    assert kwargs == {
        "generation_id": "t1",
        "infinityblue_conn_id": "video_prod",
        "poll_interval": 7.0,
        "end_time": 1_900_000_000.5,
        "submitted_at": 1_899_999_000.0,
        "not_found_grace": 300.0,
    }
    module, name = path.rsplit(".", 1)  # how the triggerer finds the class again
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)


def test_timeout_becomes_an_absolute_end_time() -> None:
    before = time.time()
    trigger = InfinityBlueVideoTrigger("t1", timeout=600)
    assert before + 600 <= trigger.end_time <= time.time() + 600


def test_serialized_trigger_holds_no_secret(hook) -> None:
    assert FAKE_API_KEY not in repr(make_trigger().serialize())


@pytest.mark.asyncio
async def test_success_is_one_event_with_the_url(hook, api, sessions) -> None:
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "queued"})
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "in_progress", "progress": 50})
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"})
    events = await events_of(make_trigger())
    assert events == [
        {
            "status": "success",
            "generation_id": "t1",
            "message": "InfinityBlue generation t1 completed",
            "video_url": "https://cdn/t1.mp4",
            "error_code": None,
            "error_type": None,
            "status_code": None,
            "request_id": None,
        }
    ]
    assert len(sessions) == 1
    assert users_of(sessions[0]) == 0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("answer", "status", "code", "message"),
    [
        (
            {"status": "failed", "error": {"code": "content_policy_violation", "message": "Prompt refused"}},
            "failed",
            "content_policy_violation",
            "Prompt refused",
        ),
        ({"status": "FAILURE", "fail_reason": "GPU ran out of memory"}, "failed", None, "GPU ran out of memory"),
        ({"status": "cancelled"}, "cancelled", None, "the API gave no reason"),
    ],
)
async def test_failures_carry_the_server_message(hook, api, sessions, answer, status, code, message) -> None:
    api.get(STATUS_URL, payload={"task_id": "t1", **answer})
    (event,) = await events_of(make_trigger())
    assert (event["status"], event["error_code"], event["message"]) == (status, code, message)
    assert users_of(sessions[0]) == 0


@pytest.mark.asyncio
async def test_completed_without_url_is_an_error_event(hook, api) -> None:
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "completed"})
    (event,) = await events_of(make_trigger())
    assert event["status"] == "error"
    assert "no video URL" in event["message"]


@pytest.mark.asyncio
async def test_a_permanent_api_error_ends_it_with_the_message_and_class(hook, api, sessions) -> None:
    api.get(
        STATUS_URL,
        status=401,
        payload={"error": {"message": "key revoked", "code": "invalid_api_key"}},
        headers={"x-request-id": "req_7"},
    )
    (event,) = await events_of(make_trigger())
    assert (event["status"], event["error_type"], event["status_code"]) == (
        "error",
        "InfinityBlueAuthenticationError",
        401,
    )
    assert "key revoked" in event["message"]
    assert event["request_id"] == "req_7"
    assert event["error_code"] == "invalid_api_key"
    assert users_of(sessions[0]) == 0
    with pytest.raises(InfinityBlueAuthenticationError, match="key revoked"):
        GenerationOutcome.from_event(event).video_url_or_raise()


@pytest.mark.asyncio
async def test_a_404_soon_after_the_submission_is_not_visible_yet(hook, api) -> None:
    not_found = {"status": 404, "payload": {"error": {"message": "task t1 not found", "code": "not_found"}}}
    api.get(STATUS_URL, **not_found)
    api.get(STATUS_URL, **not_found)
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"})
    (event,) = await events_of(make_trigger(submitted_at=time.time() - 5))
    assert event["status"] == "success"


@pytest.mark.asyncio
async def test_a_404_past_the_grace_is_a_lost_generation(hook, api) -> None:
    api.get(STATUS_URL, status=404, payload={"error": {"message": "task t1 not found", "code": "not_found"}})
    (event,) = await events_of(make_trigger(submitted_at=time.time() - 400))
    assert (event["status"], event["error_type"]) == ("error", "InfinityBlueGenerationLostError")
    assert "may still be billed" in event["message"]


@pytest.mark.parametrize("grace", [0, -5, float("nan"), "soon"])
def test_a_nonsense_not_found_grace_is_refused_when_built(grace) -> None:
    with pytest.raises(ValueError, match="not_found_grace must be a finite number of seconds"):
        InfinityBlueVideoTrigger("t1", not_found_grace=grace)


@pytest.mark.parametrize("interval", [0, 0.5, float("nan"), float("inf"), "five", None])
def test_a_nonsense_poll_interval_is_refused_when_built(interval) -> None:
    with pytest.raises(ValueError, match="poll_interval must be a finite number of seconds, at least 1"):
        InfinityBlueVideoTrigger("t1", poll_interval=interval)


@pytest.mark.asyncio
async def test_transient_errors_never_end_it(hook, api) -> None:
    # More consecutive failures than the hook's max_attempts (4 in the test connection).
    for _ in range(6):
        api.get(STATUS_URL, status=503, body="<html>busy</html>", content_type="text/html")
    api.get(STATUS_URL, exception=aiohttp.ServerDisconnectedError())
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"})
    (event,) = await events_of(make_trigger())
    assert event["status"] == "success"


@pytest.mark.asyncio
async def test_unknown_statuses_keep_it_polling(hook, api) -> None:
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "rendering"}, repeat=False)
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "rendering"})
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "SUCCEEDED", "video_url": "https://cdn/t1.mp4"})
    (event,) = await events_of(make_trigger())
    assert event["video_url"] == "https://cdn/t1.mp4"


@pytest.mark.asyncio
async def test_times_out_at_the_deadline(hook, api, sessions) -> None:
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "in_progress", "progress": 10}, repeat=True)
    started = time.monotonic()
    (event,) = await events_of(make_trigger(end_time=time.time() + 0.4))
    assert 0.3 <= time.monotonic() - started < 2
    assert event["status"] == "timeout"
    assert "'in_progress'" in event["message"]
    assert "may still finish" in event["message"]
    assert users_of(sessions[0]) == 0


@pytest.mark.asyncio
async def test_a_deadline_already_past_looks_once(hook, api) -> None:
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "in_progress"}, repeat=True)
    (event,) = await events_of(make_trigger(end_time=time.time() - 60))
    assert event["status"] == "timeout"
    assert sum(len(calls) for calls in api.requests.values()) == 1


@pytest.mark.asyncio
async def test_a_deadline_already_past_still_delivers_a_finished_video(hook, api) -> None:
    """A triggerer down past the deadline: the video that finished meanwhile is not lost to the task."""
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"})
    (event,) = await events_of(make_trigger(end_time=time.time() - 60))
    assert (event["status"], event["video_url"]) == ("success", "https://cdn/t1.mp4")


@pytest.mark.asyncio
async def test_timeout_mentions_the_last_failure_when_the_api_kept_failing(hook, api) -> None:
    api.get(STATUS_URL, status=502, body="bad gateway", repeat=True)
    (event,) = await events_of(make_trigger(end_time=time.time() + 0.5))
    assert event["status"] == "timeout"
    assert "the last look failed" in event["message"]
    assert "HTTP 502" in event["message"]


@pytest.mark.asyncio
async def test_cancellation_gives_the_session_back(hook, api, sessions) -> None:
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "in_progress"}, repeat=True)
    task = asyncio.ensure_future(events_of(make_trigger()))
    await asyncio.sleep(0.3)
    assert sessions
    assert users_of(sessions[0]) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert users_of(sessions[0]) == 0


@pytest.mark.asyncio
async def test_progress_is_logged_when_it_changes(hook, api, capsys) -> None:
    for progress in (10, 10, 40):
        api.get(STATUS_URL, payload={"task_id": "t1", "status": "in_progress", "progress": progress})
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"})
    await events_of(make_trigger())
    lines = [line for line in capsys.readouterr().out.splitlines() if "is in_progress" in line]
    assert len(lines) == 2
    assert "(10%)" in lines[0]
    assert "(40%)" in lines[1]


@pytest.mark.asyncio
async def test_never_uses_blocking_calls(hook, api, monkeypatch) -> None:
    """No requests, no sync connection lookup, and no callback that holds the loop."""
    import requests

    def blocking(*args, **kwargs):
        raise AssertionError("blocking call inside the trigger")

    real_lookup = InfinityBlueHook.get_connection.__func__

    def lookup_off_the_loop(cls, conn_id):
        # Airflow 3.0 has no async lookup: the sync one may run, but only in another thread.
        if AIRFLOW_V_3_1_PLUS or on_event_loop_thread():
            blocking()
        return real_lookup(cls, conn_id)

    monkeypatch.setattr(requests.Session, "request", blocking)
    monkeypatch.setattr(InfinityBlueHook, "get_connection", classmethod(lookup_off_the_loop))
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "queued"})
    api.get(STATUS_URL, payload={"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"})
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.1
    slow: list[str] = []
    original_warning = __import__("asyncio").log.logger.warning

    def record(msg, *args, **kwargs):
        slow.append(msg % args if args else msg)
        original_warning(msg, *args, **kwargs)

    monkeypatch.setattr(asyncio.log.logger, "warning", record)
    (event,) = await events_of(make_trigger())
    assert event["status"] == "success"
    assert not [line for line in slow if "took" in line]


class TestGenerationOutcome:
    def test_success_gives_the_url(self) -> None:
        assert (
            GenerationOutcome("success", "t1", "done", "https://cdn/v.mp4").video_url_or_raise() == "https://cdn/v.mp4"
        )

    @pytest.mark.parametrize("status", ["failed", "cancelled"])
    def test_failure_raises_with_reason_and_id(self, status) -> None:
        outcome = GenerationOutcome(status, "t9", "Prompt refused", error_code="content_policy_violation")
        with pytest.raises(InfinityBlueGenerationFailedError) as caught:
            outcome.video_url_or_raise()
        assert "t9" in str(caught.value)
        assert "Prompt refused" in str(caught.value)

    def test_timeout_raises_wait_timeout(self) -> None:
        with pytest.raises(InfinityBlueWaitTimeoutError, match="may still finish"):
            GenerationOutcome("timeout", "t1", "Stopped waiting ... may still finish").video_url_or_raise()

    def test_error_raises_with_the_message(self) -> None:
        with pytest.raises(InfinityBlueError, match="HTTP 401"):
            GenerationOutcome("error", "t1", "HTTP 401 bad key").video_url_or_raise()

    def test_an_error_type_from_elsewhere_is_not_imported(self) -> None:
        with pytest.raises(InfinityBlueError) as caught:
            GenerationOutcome("error", "t1", "boom", error_type="os.system").video_url_or_raise()
        assert type(caught.value) is InfinityBlueError

    @pytest.mark.parametrize(
        "event",
        [None, "success", {}, {"status": "done", "generation_id": "t1"}, {"status": "success"}],
    )
    def test_unrecognised_events_are_refused(self, event) -> None:
        with pytest.raises(InfinityBlueError, match="InfinityBlue trigger event"):
            GenerationOutcome.from_event(event)

    def test_payload_round_trip(self) -> None:
        outcome = GenerationOutcome("failed", "t1", "boom", None, "oops")
        assert GenerationOutcome.from_event(outcome.to_payload()) == outcome


class TestPolitePolling:
    """On a real socket: a 429's Retry-After is what the trigger waits, and the deadline caps it."""

    @staticmethod
    def run_against(monkeypatch, replies, **trigger_kwargs) -> tuple[dict, float, LoopbackServer]:
        with LoopbackServer(replies) as server:
            extra = json.dumps({"initial_backoff": 0.01, "max_backoff": 0.05})
            set_connection(monkeypatch, host=server.url, password=FAKE_API_KEY, extra=extra)
            started = time.monotonic()
            (event,) = asyncio.run(events_of(make_trigger(**trigger_kwargs)))
            return event, time.monotonic() - started, server

    def test_a_429_is_waited_out_for_its_retry_after(self, monkeypatch) -> None:
        rate_limited = Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "2"})
        done = Reply(body={"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"})
        event, elapsed, server = self.run_against(monkeypatch, [rate_limited, done])
        assert event["status"] == "success"
        assert 2 <= elapsed < 3.5  # Retry-After, plus the first look's spread and a loaded machine
        assert len(server.received) == 2

    def test_a_retry_after_past_the_deadline_is_cut_to_one_last_look(self, monkeypatch) -> None:
        rate_limited = Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": "3600"})
        event, elapsed, server = self.run_against(monkeypatch, [rate_limited] * 3, end_time=time.time() + 2)
        assert event["status"] == "timeout"
        assert "HTTP 429" in event["message"]
        assert 2 <= elapsed < 3.5  # Retry-After, plus the first look's spread and a loaded machine
        assert len(server.received) == 2  # the first look, and the last one at the deadline
