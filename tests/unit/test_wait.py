"""The wait engine's decisions, answer by answer, on a clock the test moves."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAPIError,
    InfinityBlueConnectionError,
    InfinityBlueGenerationFailedError,
    InfinityBlueGenerationLostError,
    InfinityBlueResponseError,
    InfinityBlueWaitTimeoutError,
)
from airflow_provider_infinityblue.models import Generation
from airflow_provider_infinityblue.retry import RetryPolicy
from airflow_provider_infinityblue.wait import (
    POLL_JITTER,
    GenerationOutcome,
    GenerationWait,
    KeepWaiting,
    check_poll_interval,
)

LOG = logging.getLogger("test_wait")


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def answer(status: str, **fields) -> Generation:
    return Generation.from_payload({"task_id": "t1", "status": status, **fields})


def api_error(status: int, **headers: str) -> InfinityBlueAPIError:
    return InfinityBlueAPIError.from_response(
        status_code=status, headers=headers, body=b'{"error": {"message": "x"}}', method="GET", path="/p", conn_id="c"
    )


def wait(clock: Clock, **kwargs) -> GenerationWait:
    settings = {"deadline": clock.now + 60, "poll_interval": 10, "logger": LOG, "clock": clock, **kwargs}
    return GenerationWait("t1", **settings)


def test_a_running_generation_is_polled_with_upward_jitter() -> None:
    clock = Clock()
    engine = wait(clock, deadline=clock.now + 10_000)
    delays = [engine.observe(answer("in_progress")).delay for _ in range(200)]
    assert all(10 <= delay <= 10 * (1 + POLL_JITTER) for delay in delays)
    assert len({round(delay, 3) for delay in delays}) > 50  # spread out, not in lockstep


def test_finished_generations_end_the_wait() -> None:
    clock = Clock()
    assert wait(clock).observe(answer("SUCCEEDED", video_url="https://v")) == GenerationOutcome(
        "success", "t1", "InfinityBlue generation t1 completed", "https://v"
    )
    failed = wait(clock).observe(answer("FAILURE", fail_reason="GPU out of memory"))
    with pytest.raises(InfinityBlueGenerationFailedError, match=r"t1.*GPU out of memory"):
        failed.video_url_or_raise()
    assert wait(clock).observe(answer("canceled")).status == "cancelled"
    with pytest.raises(InfinityBlueResponseError, match="no video URL"):
        wait(clock).observe(answer("completed")).video_url_or_raise()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("javascript:alert(document.cookie)", "scheme is 'javascript'"),
        ("file:///etc/passwd", "scheme is 'file'"),
        ("ftp://cdn.example.com/t1.mp4", "scheme is 'ftp'"),
        ("cdn.example.com/t1.mp4", "URL has no scheme"),
        ("data:video/mp4;base64,AAAA", "scheme is 'data'"),
        ("http:///etc/passwd", "URL has no host"),
    ],
)
def test_a_video_url_that_is_not_http_ends_the_wait_with_an_error(url: str, said: str) -> None:
    outcome = wait(Clock()).observe(answer("completed", url=url))
    assert outcome.status == "error"
    assert outcome.video_url is None
    assert url not in str(outcome.to_payload())  # never handed on, not even quoted
    with pytest.raises(InfinityBlueResponseError, match=rf"generation t1 .*{said}: refusing it as a video URL"):
        outcome.video_url_or_raise()


def test_http_and_https_video_urls_in_any_case_succeed() -> None:
    for url in ("http://cdn/t1.mp4", "HTTPS://cdn/t1.mp4"):
        assert wait(Clock()).observe(answer("completed", url=url)).video_url_or_raise() == url


def test_a_completed_answer_without_url_names_its_fields_without_quoting_them() -> None:
    outcome = wait(Clock()).observe(answer("completed", padding="p" * 1_048_576, note="n"))
    assert "fields 'task_id', 'status', 'padding', 'note'" in outcome.message
    assert "ppp" not in outcome.message
    assert len(outcome.message) < 500


def test_transient_errors_back_off_and_never_end_the_wait_before_its_deadline() -> None:
    clock = Clock()
    engine = wait(clock, retry=RetryPolicy(max_attempts=2, initial_backoff=1, max_backoff=8))
    delays = []
    for _ in range(10):  # far more than max_attempts
        step = engine.observe(api_error(503))
        assert isinstance(step, KeepWaiting)
        delays.append(step.delay)
    assert delays[0] <= 1
    assert max(delays) <= 8
    assert delays[-1] >= 4  # capped exponential growth


def test_retry_after_is_honoured_and_capped_by_the_deadline() -> None:
    clock = Clock()
    assert wait(clock).observe(api_error(429, **{"Retry-After": "7"})) == KeepWaiting(7.0)
    assert wait(clock, deadline=clock.now + 3).observe(api_error(429, **{"Retry-After": "3600"})) == KeepWaiting(3.0)


def test_a_permanent_error_ends_the_wait_with_that_error() -> None:
    outcome = wait(Clock()).observe(api_error(401))
    assert outcome.status == "error"
    assert outcome.error_type == "InfinityBlueAuthenticationError"
    assert outcome.status_code == 401


def test_a_404_within_the_grace_is_not_visible_yet_and_after_it_lost() -> None:
    clock = Clock()
    engine = wait(clock, submitted_at=clock.now, not_found_grace=30, deadline=clock.now + 600)
    assert isinstance(engine.observe(api_error(404)), KeepWaiting)
    clock.now += 29
    assert isinstance(engine.observe(api_error(404)), KeepWaiting)
    clock.now += 2
    outcome = engine.observe(api_error(404))
    assert outcome.error_type == "InfinityBlueGenerationLostError"
    with pytest.raises(InfinityBlueGenerationLostError, match="submitted 31 s ago"):
        outcome.video_url_or_raise()


def test_a_404_with_no_submission_time_is_not_found_at_once() -> None:
    assert wait(Clock()).observe(api_error(404)).error_type == "InfinityBlueNotFoundError"


def test_the_sleep_to_the_deadline_is_followed_by_one_last_look_only() -> None:
    clock = Clock()
    engine = wait(clock, deadline=clock.now + 15)
    first = engine.observe(answer("running"))
    assert 10 <= first.delay <= 11
    clock.now += first.delay
    last = engine.observe(answer("running"))
    assert last.delay == pytest.approx(15 - first.delay)
    clock.now += last.delay
    outcome = engine.observe(answer("running"))  # the last look, at the deadline
    assert outcome.status == "timeout"
    with pytest.raises(InfinityBlueWaitTimeoutError, match=r"t1 at its deadline .*'running'.*may still finish"):
        outcome.video_url_or_raise()


def test_a_wait_that_starts_past_its_deadline_still_takes_its_one_look() -> None:
    clock = Clock()
    assert wait(clock, deadline=clock.now - 3600).observe(answer("completed", url="https://v")).status == "success"
    assert wait(clock, deadline=clock.now - 3600).observe(answer("running")).status == "timeout"


def test_a_timeout_after_failures_says_what_the_last_look_met() -> None:
    clock = Clock()
    error = InfinityBlueConnectionError("no complete answer within 5 s", request_sent=True)
    outcome = wait(clock, deadline=clock.now - 1).observe(error)
    assert outcome.status == "timeout"
    assert "the last look failed: no complete answer within 5 s" in outcome.message


@pytest.mark.parametrize("value", [0, 0.99, -5, float("nan"), float("inf"), "five", "", None, True, [10]])
def test_nonsense_poll_intervals_are_refused(value) -> None:
    with pytest.raises(ValueError, match="poll_interval must be a finite number of seconds, at least 1"):
        check_poll_interval(value)


@pytest.mark.parametrize("interval", [0, -1, float("nan"), float("inf")])
def test_the_engine_itself_refuses_an_interval_that_would_busy_loop(interval) -> None:
    with pytest.raises(ValueError, match="poll_interval must be a finite number of seconds, more than 0"):
        GenerationWait("t1", deadline=0, poll_interval=interval, logger=LOG)
