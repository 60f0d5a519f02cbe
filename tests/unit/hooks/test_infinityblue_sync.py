"""The hook's synchronous calls, against requests-mock: answers, errors, retries, waiting."""

from __future__ import annotations

import json
import time
from email.utils import formatdate

import pytest
import requests
import urllib3

from airflow_provider_infinityblue import __version__
from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAmbiguousSubmitError,
    InfinityBlueAuthenticationError,
    InfinityBlueConnectionError,
    InfinityBlueGenerationFailedError,
    InfinityBlueInvalidRequestError,
    InfinityBlueNotFoundError,
    InfinityBluePermissionError,
    InfinityBlueRateLimitError,
    InfinityBlueResponseError,
    InfinityBlueServerError,
    InfinityBlueValidationError,
    InfinityBlueWaitTimeoutError,
)
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import GenerationRequest, GenerationState
from tests.conftest import BASE_URL, FAKE_API_KEY

SUBMIT_URL = f"{BASE_URL}/v1/video/generations"
REQUEST = GenerationRequest(prompt="An astronaut on the Moon", model="kling-v2-5-turbo", duration=5)


def _write(path, content: bytes) -> str:
    path.write_bytes(content)
    return str(path)


def status_url(task_id: str) -> str:
    return f"{SUBMIT_URL}/{task_id}"


def refused() -> requests.exceptions.ConnectionError:
    """What requests raises when nothing listens: the request never left the machine."""
    cause = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", cause))


def reset_after_send() -> requests.exceptions.ConnectionError:
    """What requests raises when the server drops the connection after the request was sent."""
    cause = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    return requests.exceptions.ConnectionError(cause)


def api_error(status: int, code: str, message: str, request_id: str = "req_test") -> dict:
    return {
        "status_code": status,
        "json": {"error": {"message": message, "type": "invalid_request_error", "code": code, "param": None}},
        "headers": {"x-request-id": request_id},
    }


class TestSubmit:
    def test_sends_the_body_and_returns_the_task_id(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "abcd1234efgh", "status": "queued"})
        assert hook.submit_generation(REQUEST) == "abcd1234efgh"
        sent = requests_mock.last_request
        assert sent.json() == {"prompt": "An astronaut on the Moon", "model": "kling-v2-5-turbo", "duration": 5}
        assert sent.headers["Authorization"] == f"Bearer {FAKE_API_KEY}"
        assert sent.headers["User-Agent"] == f"airflow-provider-infinityblue/{__version__}"
        assert sent.headers["Content-Type"] == "application/json"

    def test_reads_the_wrapped_answer_and_the_id_field(self, hook, requests_mock) -> None:
        requests_mock.post(
            SUBMIT_URL, json={"code": "success", "message": "", "data": {"id": "w-1", "status": "SUBMITTED"}}
        )
        assert hook.submit_generation(REQUEST) == "w-1"

    @pytest.mark.parametrize(
        ("make_image", "fragment"),
        [
            (lambda tmp: str(tmp / "missing.png"), "does not exist"),
            (lambda tmp: str(tmp), "is not a file"),
            (lambda tmp: _write(tmp / "notes.png", b"plain text, not pixels"), "is not a PNG, JPEG"),
            (lambda tmp: "s3://bucket/frame.png", "http(s) URL, a data URI or a local file path"),
            (lambda tmp: "data:text/plain;base64,aGk=", "base64 image"),
        ],
    )
    def test_a_bad_image_sends_nothing(self, hook, requests_mock, tmp_path, make_image, fragment) -> None:
        requests_mock.post(SUBMIT_URL, json={"task_id": "never"})
        request = GenerationRequest(prompt="p", model="m", image=make_image(tmp_path))
        with pytest.raises(InfinityBlueValidationError) as caught:
            hook.submit_generation(request)
        assert fragment in str(caught.value)
        assert requests_mock.call_count == 0

    def test_image_over_the_connection_limit_sends_nothing(self, monkeypatch, requests_mock, tmp_path) -> None:
        from tests.conftest import set_connection

        set_connection(monkeypatch, host=BASE_URL, password=FAKE_API_KEY, extra=json.dumps({"max_image_mb": 0.001}))
        image = tmp_path / "big.png"
        image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 5000)
        requests_mock.post(SUBMIT_URL, json={"task_id": "never"})
        with pytest.raises(InfinityBlueValidationError, match="over the 1048-byte limit"):
            InfinityBlueHook().submit_generation(GenerationRequest(prompt="p", model="m", image=str(image)))
        assert requests_mock.call_count == 0

    def test_a_local_image_is_sent_as_data_uri(self, hook, requests_mock, tmp_path) -> None:
        image = tmp_path / "first_frame.jpg"
        image.write_bytes(b"\xff\xd8\xff\xe0" + b"\x01" * 100)
        requests_mock.post(SUBMIT_URL, json={"task_id": "i2v"})
        hook.submit_generation(GenerationRequest(prompt="p", model="m", image=str(image)))
        assert requests_mock.last_request.json()["image"].startswith("data:image/jpeg;base64,/9j/")

    def test_a_500_is_not_sent_again(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, [api_error(500, "internal", "boom"), {"json": {"task_id": "second"}}])
        with pytest.raises(InfinityBlueAmbiguousSubmitError) as caught:
            hook.submit_generation(REQUEST)
        assert requests_mock.call_count == 1
        message = str(caught.value)
        assert "may have been created" in message
        assert "req_test" in message
        assert "HTTP 500" in message

    def test_a_read_timeout_is_not_sent_again(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, [{"exc": requests.exceptions.ReadTimeout("read timed out")}])
        with pytest.raises(InfinityBlueAmbiguousSubmitError, match="may have been created"):
            hook.submit_generation(REQUEST)
        assert requests_mock.call_count == 1

    def test_a_connection_dropped_after_sending_is_not_sent_again(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, [{"exc": reset_after_send()}, {"json": {"task_id": "second"}}])
        with pytest.raises(InfinityBlueAmbiguousSubmitError):
            hook.submit_generation(REQUEST)
        assert requests_mock.call_count == 1

    def test_an_unreadable_success_is_ambiguous(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, text="<html>OK</html>", headers={"Content-Type": "text/html"})
        with pytest.raises(InfinityBlueAmbiguousSubmitError, match="not JSON"):
            hook.submit_generation(REQUEST)
        assert requests_mock.call_count == 1

    def test_a_success_without_id_is_ambiguous(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, json={"status": "queued"})
        with pytest.raises(InfinityBlueAmbiguousSubmitError, match="no task id"):
            hook.submit_generation(REQUEST)

    def test_a_connection_that_never_opened_is_retried(self, hook, requests_mock) -> None:
        requests_mock.post(
            SUBMIT_URL,
            [
                {"exc": refused()},
                {"exc": requests.exceptions.ConnectTimeout("connect")},
                {"json": {"task_id": "third-time"}},
            ],
        )
        assert hook.submit_generation(REQUEST) == "third-time"
        assert requests_mock.call_count == 3

    def test_a_429_is_sent_again_after_retry_after(self, hook, requests_mock) -> None:
        requests_mock.post(
            SUBMIT_URL,
            [
                {
                    "status_code": 429,
                    "json": {"error": {"message": "slow down", "code": "rate_limit"}},
                    "headers": {"Retry-After": "1"},
                },
                {"json": {"task_id": "after-wait"}},
            ],
        )
        started = time.monotonic()
        assert hook.submit_generation(REQUEST) == "after-wait"
        assert time.monotonic() - started >= 1.0
        assert requests_mock.call_count == 2

    def test_a_400_is_not_retried_and_says_what_is_wrong(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, **api_error(400, "invalid_duration", "duration must be 5 or 10", "req_400"))
        with pytest.raises(InfinityBlueInvalidRequestError) as caught:
            hook.submit_generation(REQUEST)
        assert requests_mock.call_count == 1
        error = caught.value
        assert (error.status_code, error.error_code, error.request_id) == (400, "invalid_duration", "req_400")
        assert "duration must be 5 or 10" in str(error)
        assert "req_400" in str(error)

    def test_a_413_says_the_body_is_too_large(self, hook, requests_mock) -> None:
        requests_mock.post(SUBMIT_URL, **api_error(413, "payload_too_large", "body over 10MB"))
        with pytest.raises(InfinityBlueInvalidRequestError, match="image URL instead of a file"):
            hook.submit_generation(REQUEST)

    def test_rate_limits_that_never_end_give_up(self, hook, requests_mock) -> None:
        requests_mock.post(
            SUBMIT_URL,
            status_code=429,
            json={"error": {"message": "slow", "code": "rate_limit"}},
            headers={"Retry-After": "0"},
        )
        with pytest.raises(InfinityBlueRateLimitError):
            hook.submit_generation(REQUEST)
        assert requests_mock.call_count == 4  # max_attempts from the test connection's extras


class TestErrors:
    @pytest.mark.parametrize(
        ("status", "code", "error_class", "advice"),
        [
            (
                401,
                "invalid_api_key",
                InfinityBlueAuthenticationError,
                "password field of Airflow connection 'infinityblue_default'",
            ),
            (403, "insufficient_quota", InfinityBluePermissionError, "out of quota"),
            (404, "not_found", InfinityBlueNotFoundError, "does not know this generation id"),
            (400, "task_not_exist", InfinityBlueNotFoundError, "does not know this generation id"),
            (400, "invalid_request", InfinityBlueInvalidRequestError, "Fix the request"),
        ],
    )
    def test_client_errors_are_not_retried(self, hook, requests_mock, status, code, error_class, advice) -> None:
        requests_mock.get(status_url("t1"), **api_error(status, code, "explained by the API", "req_77"))
        with pytest.raises(error_class) as caught:
            hook.get_generation("t1")
        assert requests_mock.call_count == 1
        text = str(caught.value)
        for fragment in (f"HTTP {status}", repr(code), "explained by the API", "req_77", advice):
            assert fragment in text

    def test_html_error_page_from_a_proxy(self, hook, requests_mock) -> None:
        page = "<html><head><title>502 Bad Gateway</title></head><body><h1>nginx</h1></body></html>"
        requests_mock.get(status_url("t1"), status_code=502, text=page, headers={"Content-Type": "text/html"})
        with pytest.raises(InfinityBlueServerError) as caught:
            hook.get_generation("t1")
        assert "non-JSON text/html answer: 502 Bad Gateway" in str(caught.value)
        assert "<html>" not in str(caught.value)

    @pytest.mark.parametrize(
        "body",
        [
            {"error": "plain string error"},
            {"code": "bad_thing", "message": "plain string error", "data": None},
            {"message": "plain string error"},
            {"detail": "plain string error"},
        ],
    )
    def test_other_error_body_shapes(self, hook, requests_mock, body) -> None:
        requests_mock.get(status_url("t1"), status_code=400, json=body)
        with pytest.raises(InfinityBlueInvalidRequestError, match="plain string error"):
            hook.get_generation("t1")

    def test_generation_ids_are_escaped_in_the_path(self, hook, requests_mock) -> None:
        requests_mock.get(f"{SUBMIT_URL}/..%2Fadmin%3Fx%3D1", json={"task_id": "../admin?x=1", "status": "queued"})
        assert hook.get_generation("../admin?x=1").id == "../admin?x=1"


class TestGetRetries:
    def test_5xx_then_success(self, hook, requests_mock) -> None:
        requests_mock.get(
            status_url("t1"),
            [
                {
                    "status_code": 503,
                    "text": "<html>Service Unavailable</html>",
                    "headers": {"Content-Type": "text/html"},
                },
                {"status_code": 500, "json": {"error": {"message": "oops"}}},
                {"json": {"task_id": "t1", "status": "running", "progress": 10}},
            ],
        )
        generation = hook.get_generation("t1")
        assert generation.state is GenerationState.RUNNING
        assert requests_mock.call_count == 3

    @pytest.mark.parametrize(
        "failure",
        [
            refused,
            reset_after_send,
            lambda: requests.exceptions.ReadTimeout("slow"),
            lambda: requests.exceptions.ConnectTimeout("x"),
        ],
    )
    def test_network_failures_then_success(self, hook, requests_mock, failure) -> None:
        requests_mock.get(status_url("t1"), [{"exc": failure()}, {"json": {"task_id": "t1", "status": "queued"}}])
        assert hook.get_generation("t1").state is GenerationState.PENDING
        assert requests_mock.call_count == 2

    def test_429_with_http_date_retry_after(self, hook, requests_mock) -> None:
        retry_at = formatdate(time.time() + 2, usegmt=True)  # second resolution: waits 1 to 2 s
        requests_mock.get(
            status_url("t1"),
            [
                {"status_code": 429, "json": {}, "headers": {"Retry-After": retry_at}},
                {"json": {"task_id": "t1", "status": "queued"}},
            ],
        )
        started = time.monotonic()
        hook.get_generation("t1")
        assert time.monotonic() - started >= 0.9
        assert requests_mock.call_count == 2

    def test_gives_up_after_max_attempts_with_the_last_error(self, hook, requests_mock) -> None:
        requests_mock.get(
            status_url("t1"), status_code=503, json={"error": {"message": "down"}}, headers={"x-request-id": "req_last"}
        )
        with pytest.raises(InfinityBlueServerError, match="req_last"):
            hook.get_generation("t1")
        assert requests_mock.call_count == 4

    def test_gives_up_on_network_failure_with_a_clear_message(self, hook, requests_mock) -> None:
        requests_mock.get(status_url("t1"), exc=refused())
        with pytest.raises(
            InfinityBlueConnectionError, match=f"Could not get an answer from the InfinityBlue API at {BASE_URL}"
        ):
            hook.get_generation("t1")

    def test_retries_stop_at_the_deadline(self, hook, requests_mock) -> None:
        requests_mock.get(status_url("t1"), status_code=429, json={}, headers={"Retry-After": "30"})
        started = time.monotonic()
        with pytest.raises(InfinityBlueRateLimitError):
            hook.get_generation("t1", deadline=time.monotonic() + 2)
        assert time.monotonic() - started < 1
        assert requests_mock.call_count == 1

    def test_a_retry_after_beyond_the_cap_is_not_waited_for(self, monkeypatch, requests_mock) -> None:
        from tests.conftest import set_connection

        set_connection(monkeypatch, host=BASE_URL, password=FAKE_API_KEY, extra=json.dumps({"max_retry_after": 5}))
        requests_mock.get(status_url("t1"), status_code=429, json={}, headers={"Retry-After": "3600"})
        with pytest.raises(InfinityBlueRateLimitError, match="wait 3600 s"):
            InfinityBlueHook().get_generation("t1")
        assert requests_mock.call_count == 1

    def test_one_session_is_reused(self, hook, requests_mock) -> None:
        requests_mock.get(status_url("t1"), json={"task_id": "t1", "status": "queued"})
        session = hook.get_conn()
        hook.get_generation("t1")
        hook.get_generation("t1")
        assert hook.get_conn() is session


class TestWait:
    @pytest.mark.parametrize(
        ("kwargs", "named"),
        [({"poll_interval": float("nan")}, "poll_interval"), ({"poll_interval": 0}, "poll_interval"),
         ({"timeout": float("nan")}, "timeout"), ({"timeout": -1}, "timeout")],
    )  # fmt: skip
    def test_nonsense_waits_are_refused_before_any_request(self, hook, requests_mock, kwargs, named) -> None:
        with pytest.raises(ValueError, match=f"{named} must be a finite number of seconds"):
            hook.wait_for_generation("t1", **kwargs)
        assert requests_mock.call_count == 0

    def test_returns_the_finished_generation(self, hook, requests_mock, capsys) -> None:
        requests_mock.get(
            status_url("t1"),
            [
                {"json": {"task_id": "t1", "status": "queued"}},
                {"json": {"task_id": "t1", "status": "in_progress", "progress": 30}},
                {"json": {"task_id": "t1", "status": "in_progress", "progress": 30}},
                {"json": {"task_id": "t1", "status": "in_progress", "progress": "60%"}},
                {"json": {"task_id": "t1", "status": "completed", "progress": 100, "url": "https://cdn/t1.mp4"}},
            ],
        )
        generation = hook.wait_for_generation("t1", poll_interval=0.01, timeout=10)
        assert generation.video_url == "https://cdn/t1.mp4"
        logged = capsys.readouterr().out
        progress_lines = [line for line in logged.splitlines() if "is in_progress" in line]
        assert len(progress_lines) == 2  # progress is logged when it changes, not on every poll
        assert "InfinityBlue generation t1 is in_progress (30%)" in progress_lines[0]
        assert "InfinityBlue generation t1 is in_progress (60%)" in progress_lines[1]

    def test_failed_generation_raises_with_the_server_message(self, hook, requests_mock) -> None:
        requests_mock.get(
            status_url("t1"),
            json={
                "task_id": "t1",
                "status": "failed",
                "error": {"code": "content_policy_violation", "message": "The prompt was refused"},
            },
        )
        with pytest.raises(InfinityBlueGenerationFailedError) as caught:
            hook.wait_for_generation("t1", poll_interval=0.01, timeout=10)
        assert "t1" in str(caught.value)
        assert "The prompt was refused" in str(caught.value)

    def test_unknown_status_is_logged_once_and_polling_goes_on(self, hook, requests_mock, capsys) -> None:
        requests_mock.get(
            status_url("t1"),
            [{"json": {"task_id": "t1", "status": "warming_up"}}] * 3
            + [{"json": {"task_id": "t1", "status": "SUCCESS", "video_url": "https://cdn/v.mp4"}}],
        )
        assert hook.wait_for_generation("t1", poll_interval=0.01, timeout=10).video_url == "https://cdn/v.mp4"
        warnings = [line for line in capsys.readouterr().out.splitlines() if "does not know" in line]
        assert len(warnings) == 1
        assert "warning" in warnings[0].lower()  # "warning" in 3.1+'s log format, "WARNING" in 3.0's
        assert "'warming_up'" in warnings[0]

    def test_times_out_with_the_id_and_last_status(self, hook, requests_mock) -> None:
        requests_mock.get(status_url("t1"), json={"task_id": "t1", "status": "in_progress"})
        started = time.monotonic()
        with pytest.raises(InfinityBlueWaitTimeoutError) as caught:
            hook.wait_for_generation("t1", poll_interval=0.05, timeout=0.3)
        assert 0.3 <= time.monotonic() - started < 2
        assert "t1" in str(caught.value)
        assert "'in_progress'" in str(caught.value)
        assert "may still finish" in str(caught.value)

    def test_completed_without_url_is_an_error(self, hook, requests_mock) -> None:
        requests_mock.get(status_url("t1"), json={"task_id": "t1", "status": "completed"})
        with pytest.raises(InfinityBlueResponseError, match="no video URL"):
            hook.wait_for_generation("t1", poll_interval=0.01, timeout=5)

    def test_transient_errors_while_waiting_are_ridden_out(self, hook, requests_mock) -> None:
        requests_mock.get(
            status_url("t1"),
            [
                {"json": {"task_id": "t1", "status": "queued"}},
                {"status_code": 503, "text": "busy"},
                {"exc": reset_after_send()},
                {"json": {"task_id": "t1", "status": "completed", "url": "https://cdn/v.mp4"}},
            ],
        )
        assert hook.wait_for_generation("t1", poll_interval=0.01, timeout=10).video_url == "https://cdn/v.mp4"


class TestConnectionCheck:
    def test_api_404_means_the_key_works(self, hook, requests_mock) -> None:
        requests_mock.get(requests_mock_any_status(), **api_error(404, "not_found", "no such task"))
        ok, message = hook.test_connection()
        assert ok, message
        assert "API key was accepted" in message
        assert requests_mock.last_request.method == "GET"

    def test_task_not_exist_means_the_key_works(self, hook, requests_mock) -> None:
        requests_mock.get(
            requests_mock_any_status(),
            status_code=400,
            json={"code": "task_not_exist", "message": "task not exist", "data": None},
        )
        assert hook.test_connection()[0]

    def test_401_means_invalid_key(self, hook, requests_mock) -> None:
        requests_mock.get(requests_mock_any_status(), **api_error(401, "invalid_api_key", "Incorrect API key provided"))
        ok, message = hook.test_connection()
        assert not ok
        assert message.startswith("Invalid API key")
        assert requests_mock.call_count == 1

    def test_a_404_page_that_is_not_the_api(self, hook, requests_mock) -> None:
        requests_mock.get(
            requests_mock_any_status(),
            status_code=404,
            text="<html><title>Not Found</title></html>",
            headers={"Content-Type": "text/html"},
        )
        ok, message = hook.test_connection()
        assert not ok
        assert "not the InfinityBlue API" in message

    def test_unreachable(self, hook, requests_mock) -> None:
        requests_mock.get(requests_mock_any_status(), exc=refused())
        ok, message = hook.test_connection()
        assert not ok
        assert "Could not get an answer" in message
        assert requests_mock.call_count == 1  # no retries while a user waits on the UI

    def test_never_posts(self, hook, requests_mock) -> None:
        requests_mock.get(requests_mock_any_status(), **api_error(404, "not_found", "no such task"))
        requests_mock.post(SUBMIT_URL, json={"task_id": "should-not-happen"})
        hook.test_connection()
        assert [r.method for r in requests_mock.request_history] == ["GET"]


def requests_mock_any_status():
    import re

    return re.compile(re.escape(SUBMIT_URL) + r"/airflow-connection-test-[0-9a-f]{32}$")
