"""The wait engine's promise: the same API answers give the same outcome in every way of waiting.

Each scenario is a scripted sequence of status answers from a real HTTP server on 127.0.0.1. It is fed to
every mode: the hook's sync wait, the trigger on its own, and real Airflow (``dag.test()``) running the
operator in worker and deferrable mode and the sensor in poke and reschedule mode. Each must end the same
way: a video URL, or the same exception class; operators send exactly one POST.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime

import pluggy
import pytest

from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.triggers.infinityblue import InfinityBlueVideoTrigger
from airflow_provider_infinityblue.wait import GenerationOutcome
from tests.loopback import Reply

VIDEO = "https://cdn.example.com/t1.mp4"
SUBMITTED = Reply(body={"task_id": "t1", "status": "queued"})
RUNNING = Reply(body={"task_id": "t1", "status": "in_progress", "progress": 40})
DONE = Reply(body={"task_id": "t1", "status": "completed", "url": VIDEO})
NOT_FOUND = Reply(404, {"error": {"message": "No video generation found with id 't1'.", "code": "not_found"}})
BUSY = Reply(503, b"<html><title>503 Service Unavailable</title></html>", {"Content-Type": "text/html"})
RATE_LIMITED = Reply(429, {"error": {"message": "Slow down", "code": "rate_limit"}}, {"Retry-After": "1"})
REVOKED = Reply(401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}})
TRICKLE = Reply(body={"task_id": "t1", "status": "in_progress", "padding": "x" * 4000}, action="trickle", delay=0.2)
SILENT = Reply(action="silent")
CONNECT_TIMEOUT = 1.0
SHORT_DEADLINE = 4.0
TIMEOUT = "timeout"  # InfinityBlueWaitTimeoutError, or AirflowSensorTimeout for a sensor


@dataclass(frozen=True)
class Scenario:
    answers: list[Reply]
    outcome: str  # "success", TIMEOUT, or the exception class
    short_deadline: bool = False


SCENARIOS = {
    # More consecutive 503s than the connection's max_attempts (4): waited through, not failed.
    "503 burst": Scenario([BUSY] * 5 + [DONE], "success"),
    "429 with Retry-After": Scenario([RATE_LIMITED, RATE_LIMITED, DONE], "success"),
    "404 right after creation": Scenario([NOT_FOUND, NOT_FOUND, DONE], "success"),
    "unknown status word": Scenario([Reply(body={"task_id": "t1", "status": "warming_up"})] * 2 + [DONE], "success"),
    "failed": Scenario(
        [RUNNING, Reply(body={"task_id": "t1", "status": "failed", "error": {"code": "nsfw", "message": "Refused"}})],
        "InfinityBlueGenerationFailedError",
    ),
    "completed without a URL": Scenario(
        [RUNNING, Reply(body={"task_id": "t1", "status": "completed"})], "InfinityBlueResponseError"
    ),
    # Only http(s) is a video URL: any other scheme is refused, never returned, pushed or put in an event.
    "completed with a javascript: URL": Scenario(
        [RUNNING, Reply(body={"task_id": "t1", "status": "completed", "url": "javascript:alert(1)"})],
        "InfinityBlueResponseError",
    ),
    "key revoked mid-wait": Scenario([RUNNING, REVOKED], "InfinityBlueAuthenticationError"),
    "deadline passes": Scenario([RUNNING] * 40, TIMEOUT, short_deadline=True),
    # A read timeout (60 s here) is per read: only the wait's deadline, given to every request, ends these.
    "status answers trickle": Scenario([TRICKLE] * 5, TIMEOUT, short_deadline=True),
    "server never answers": Scenario([SILENT] * 5, TIMEOUT, short_deadline=True),
}
OPERATOR_MODES = ("worker", "deferrable")
DAG_MODES = (
    "worker",
    "deferrable",
    "sensor_poke",
    # Airflow 3.0's dag.test() fails a sensor that really reschedules (README: supported Airflow versions).
    pytest.param("sensor_reschedule", marks=pytest.mark.airflow(">=3.1", feature="reschedule in dag.test")),
)


@pytest.fixture
def scripted_api(loopback_api):
    """Start a loopback API answering ``answers`` in order, with ``infinityblue_default`` pointing at it."""
    extra = {"initial_backoff": 0.01, "max_backoff": 0.05, "max_attempts": 4, "connect_timeout": CONNECT_TIMEOUT}
    return lambda answers: loopback_api(answers, extra=extra)


def outcome_of(error: BaseException | None) -> str:
    if error is None:
        return "success"
    name = type(error).__name__
    return TIMEOUT if name in ("InfinityBlueWaitTimeoutError", "AirflowSensorTimeout") else name


class FailureRecorder:
    """An Airflow listener keeping the exception of every task that fails (the same on every Airflow)."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []

    @pluggy.HookimplMarker("airflow")
    def on_task_instance_failed(self, previous_state: object, task_instance: object, error: object) -> None:
        if isinstance(error, BaseException):
            self.errors.append(error)


@pytest.fixture
def task_failures():
    """The exceptions that fail tasks while the test runs, as the task runner tells its listeners."""
    from airflow.sdk.execution_time import task_runner

    # The task runner's own manager: it comes from a different module on different Airflow versions.
    manager = task_runner.get_listener_manager()
    recorder = FailureRecorder()
    manager.add_listener(recorder)
    yield recorder.errors
    manager.pm.unregister(recorder)


def timeout_of(scenario: Scenario) -> float:
    return SHORT_DEADLINE if scenario.short_deadline else 40


def assert_no_overshoot(scenario: Scenario, elapsed: float, *, resolution: float = 0.1) -> None:
    """The promise: a deadline is overshot by connect_timeout plus a second at most."""
    if scenario.outcome == TIMEOUT:
        assert SHORT_DEADLINE - resolution <= elapsed <= SHORT_DEADLINE + CONNECT_TIMEOUT + 1 + resolution, elapsed


def logged_at(logs: str, text: str) -> tuple[float, float]:
    """The time of the first log line holding ``text``, and how precise it is (Airflow 3.0 logs whole seconds)."""
    line = next(line for line in logs.splitlines() if text in line)
    stamp = re.search(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?", line)
    assert stamp, line
    return datetime.fromisoformat(stamp.group(0)).timestamp(), 0.1 if stamp.group(1) else 1.0


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_sync_wait(scripted_api, scenario: Scenario) -> None:
    scripted_api(scenario.answers)
    error = None
    with InfinityBlueHook() as hook:
        started = time.monotonic()
        try:
            assert hook.wait_for_generation("t1", poll_interval=1, timeout=timeout_of(scenario)).video_url == VIDEO
        except Exception as caught:  # the outcome under test: compared below
            error = caught
        elapsed = time.monotonic() - started
    assert outcome_of(error) == scenario.outcome
    assert_no_overshoot(scenario, elapsed)


@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_trigger(scripted_api, scenario: Scenario) -> None:
    scripted_api(scenario.answers)
    trigger = InfinityBlueVideoTrigger("t1", poll_interval=1, timeout=timeout_of(scenario))
    trigger.end_time = time.time() + timeout_of(scenario)  # from the start of the run, not of the set-up

    started = time.monotonic()
    (event,) = asyncio.run(_events(trigger))
    assert_no_overshoot(scenario, time.monotonic() - started)
    error = None
    try:
        assert GenerationOutcome.from_event(event).video_url_or_raise() == VIDEO
    except Exception as caught:  # the outcome under test: compared below
        error = caught
    assert outcome_of(error) == scenario.outcome


@pytest.mark.parametrize("mode", DAG_MODES)
@pytest.mark.parametrize("scenario", SCENARIOS.values(), ids=SCENARIOS.keys())
def test_in_airflow(scripted_api, run_dag, task_failures, scenario: Scenario, mode: str) -> None:
    operator = mode in OPERATOR_MODES
    server = scripted_api([SUBMITTED, *scenario.answers] if operator else scenario.answers)
    result = run_dag(f"wait_modes_{mode}{'_short' if scenario.short_deadline else ''}")
    if scenario.outcome == "success":
        assert result.state == "success", result.logs[-3000:]
        assert result.xcom[("wait", "return_value")] == VIDEO
        assert not task_failures
    else:
        assert result.state == "failed"
        (raised,) = task_failures
        assert outcome_of(raised) == scenario.outcome
    if mode == "worker" and scenario.outcome == TIMEOUT:  # the wait, as the task logged it: from the POST's answer
        (failed, resolution), (accepted, _) = (
            logged_at(result.logs, "Task failed with exception"),
            logged_at(result.logs, "InfinityBlue accepted"),
        )
        assert_no_overshoot(scenario, failed - accepted, resolution=resolution)
    assert sum(r.method == "POST" for r in server.received) == (1 if operator else 0)


def test_a_trigger_started_after_its_deadline_delivers_a_video_that_finished_meanwhile(scripted_api) -> None:
    """A triggerer that was down past the deadline: one last look before any timeout."""
    server = scripted_api([DONE])
    trigger = InfinityBlueVideoTrigger("t1", poll_interval=1, end_time=time.time() - 600)
    (event,) = asyncio.run(_events(trigger))
    assert GenerationOutcome.from_event(event).video_url_or_raise() == VIDEO
    assert len(server.received) == 1


async def _events(trigger: InfinityBlueVideoTrigger) -> list[dict]:
    return [event.payload async for event in trigger.run()]
