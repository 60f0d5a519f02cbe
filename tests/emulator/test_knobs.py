"""Each knob, set at start and changed at runtime: failures, timing, rate limits, proxies, shape, seed."""

from __future__ import annotations

import time

import pytest

from airflow_provider_infinityblue.emulator import EmulatorSettings, running_emulator
from airflow_provider_infinityblue.emulator.errors import PROXY_UNAVAILABLE_PAGE as ERROR_PAGE
from airflow_provider_infinityblue.emulator.state import EmulatorState
from airflow_provider_infinityblue.emulator.validation import AcceptedGenerationRequest
from tests.emulator.conftest import ApiClient

REQUEST = AcceptedGenerationRequest(model="veo_3_1", prompt="A fox", body={})


def test_failure_rate_one_fails_every_generation_with_an_error_object() -> None:
    with running_emulator(generation_seconds=0.2, failure_rate=1.0) as emulator:
        api = ApiClient(emulator.url)
        body = api.wait_until_finished(api.submit_id())
    assert body["status"] == "failed"
    assert body["error"]["code"] == "generation_failed"
    assert body["error"]["message"]
    assert "url" not in body


def test_failure_rate_is_the_share_of_failed_generations() -> None:
    state = EmulatorState(EmulatorSettings(failure_rate=0.3, seed=5))
    failures = sum(state.submit(REQUEST).failure is not None for _ in range(2000))
    assert 500 <= failures <= 700


def test_the_prompt_marker_fails_with_content_policy_violation(api: ApiClient) -> None:
    body = api.wait_until_finished(api.submit_id(prompt="A protest [content-policy] downtown"))
    assert body["status"] == "failed"
    assert body["error"]["code"] == "content_policy_violation"
    assert "content policy" in body["error"]["message"]


def test_the_prompt_marker_can_be_changed_or_turned_off() -> None:
    with running_emulator(generation_seconds=0.1, fail_marker="FORBIDDEN") as emulator:
        api = ApiClient(emulator.url)
        flagged = api.wait_until_finished(api.submit_id(prompt="A FORBIDDEN scene"))
        default_marker = api.wait_until_finished(api.submit_id(prompt="A [content-policy] scene"))
        emulator.configure(fail_marker="")
        unflagged = api.wait_until_finished(api.submit_id(prompt="A FORBIDDEN scene"))
    assert [flagged["status"], default_marker["status"], unflagged["status"]] == ["failed", "completed", "completed"]


def test_a_fixed_generation_time_is_honoured() -> None:
    with running_emulator(generation_seconds=0.6) as emulator:
        api = ApiClient(emulator.url)
        started = time.monotonic()
        api.wait_until_finished(api.submit_id())
        took = time.monotonic() - started
    assert 0.6 <= took < 2.0


def test_a_generation_time_range_draws_uniformly_between_its_bounds() -> None:
    state = EmulatorState(EmulatorSettings(generation_seconds=1.0, generation_seconds_max=3.0, seed=9))
    durations = [state.submit(REQUEST).duration for _ in range(500)]
    assert min(durations) >= 1.0
    assert max(durations) <= 3.0
    assert min(durations) < 1.2
    assert max(durations) > 2.8


def test_the_rate_limit_answers_429_with_retry_after_in_whole_seconds() -> None:
    with running_emulator(rate_limit=3) as emulator:
        api = ApiClient(emulator.url)
        answers = [api.status("x") for _ in range(4)] + [api.submit()]
        stats = emulator.stats()
    assert [answer.status_code for answer in answers] == [404, 404, 404, 429, 429]
    limited = answers[3]
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["Retry-After"].isdigit()
    error = limited.json()["error"]
    assert (error["code"], error["type"]) == ("rate_limit_exceeded", "rate_limit_error")
    assert stats["submissions"] == 0


def test_the_rate_limit_refills_over_time_and_spares_videos_and_controls(emulator) -> None:
    api = ApiClient(emulator.url)
    task_id = api.submit_id()
    api.wait_until_finished(task_id)
    emulator.configure(rate_limit=2)
    assert [api.status(task_id).status_code for _ in range(3)] == [200, 200, 429]
    assert api.session.get(f"{emulator.url}/videos/{task_id}.mp4", timeout=10).status_code == 200
    time.sleep(0.6)
    assert api.status(task_id).status_code == 200
    emulator.configure(rate_limit=None)
    assert {api.status(task_id).status_code for _ in range(20)} == {200}


def test_error_rate_one_answers_every_status_request_503_with_an_html_page(emulator) -> None:
    api = ApiClient(emulator.url)
    task_id = api.submit_id()
    emulator.configure(error_rate=1.0)
    answers = [api.status(task_id) for _ in range(3)]
    submitted = api.submit()
    assert [answer.status_code for answer in answers] == [503, 503, 503]
    assert answers[0].headers["Content-Type"].startswith("text/html")
    assert "<html>" in answers[0].text
    assert "503" in answers[0].text
    assert answers[0].headers["x-request-id"].startswith("req_")
    assert submitted.status_code == 200  # a submission is never failed this way


def test_error_rate_is_the_share_of_failed_status_requests() -> None:
    with running_emulator(error_rate=0.5, seed=11) as emulator:
        api = ApiClient(emulator.url)
        codes = [api.status("x").status_code for _ in range(200)]
    assert set(codes) == {404, 503}
    assert 70 <= codes.count(503) <= 130


def test_reject_submissions_turns_away_the_next_n_posts_and_creates_nothing(emulator) -> None:
    api = ApiClient(emulator.url)
    emulator.configure(reject_submissions=2)
    answers = [api.submit() for _ in range(3)]
    assert [answer.status_code for answer in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "1"
    assert answers[0].json()["error"]["code"] == "rate_limit_exceeded"
    assert emulator.stats()["submissions"] == 1
    assert emulator.configure()["reject_submissions"] == 0


def test_unavailable_polls_fails_the_next_n_status_requests(emulator) -> None:
    api = ApiClient(emulator.url)
    task_id = api.submit_id()
    emulator.configure(unavailable_polls=2)
    answers = [api.status(task_id) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [503, 503, 200]
    assert answers[0].headers["Content-Type"].startswith("text/html")
    assert emulator.configure()["unavailable_polls"] == 0


def test_invisible_polls_hide_an_existing_generation_from_the_next_n_status_requests(emulator) -> None:
    api = ApiClient(emulator.url)
    task_id = api.submit_id()
    emulator.configure(invisible_polls=2)
    answers = [api.status(task_id) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [404, 404, 200]
    assert answers[0].json()["error"]["code"] == "not_found"
    assert emulator.configure()["invisible_polls"] == 0


def test_a_submission_can_be_answered_late_after_its_generation_exists(emulator) -> None:
    api = ApiClient(emulator.url)
    emulator.configure(submission_answer_seconds=1)
    started = time.monotonic()
    assert api.submit().status_code == 200
    assert time.monotonic() - started >= 1
    assert emulator.stats()["submissions"] == 1


def test_deterministic_knobs_can_be_set_at_start() -> None:
    with running_emulator(reject_submissions=1, unavailable_polls=1) as emulator:
        api = ApiClient(emulator.url)
        assert [api.submit().status_code, api.submit().status_code] == [429, 200]
        assert [api.status("x").status_code, api.status("x").status_code] == [503, 404]


def test_a_seed_makes_runs_reproducible() -> None:
    def run() -> tuple[list[str], list[object], list[str]]:
        with running_emulator(
            seed=1234, failure_rate=0.5, error_rate=0.3, generation_seconds=0.1, generation_seconds_max=0.3
        ) as emulator:
            api = ApiClient(emulator.url)
            ids = [api.submit_id() for _ in range(8)]
            time.sleep(0.35)
            polls = [api.status(task_id) for task_id in ids]
        # Wall-clock time and the port differ between runs; everything else must not.
        answers: list[object] = [
            poll.text if poll.status_code == 503 else _without(poll.json(), "created_at", "url") for poll in polls
        ]
        return ids, answers, [poll.headers["x-request-id"] for poll in polls]

    first, second = run(), run()
    assert first == second
    assert any(answer == ERROR_PAGE for answer in first[1])
    assert any(isinstance(answer, dict) and answer["status"] == "failed" for answer in first[1])
    assert any(isinstance(answer, dict) and answer["status"] == "completed" for answer in first[1])


def _without(body: dict[str, object], *names: str) -> dict[str, object]:
    return {key: value for key, value in body.items() if key not in names}


def test_shape_wrapped_wraps_the_submission(emulator) -> None:
    emulator.configure(shape="wrapped")
    body = ApiClient(emulator.url).submit().json()
    assert body["code"] == "success"
    assert body["message"] == ""
    assert body["data"]["status"] == "NOT_START"
    assert "task_id" not in body["data"]
    assert body["data"]["id"]


def test_shape_wrapped_reports_statuses_in_the_gateway_words() -> None:
    with running_emulator(generation_seconds=0.8, shape="wrapped") as emulator:
        api = ApiClient(emulator.url)
        task_id = api.submit_id()
        seen = []
        while not seen or seen[-1]["status"] != "SUCCESS":
            seen.append(api.status(task_id).json()["data"])
            time.sleep(0.02)
    assert list(dict.fromkeys(data["status"] for data in seen)) == ["NOT_START", "IN_PROGRESS", "SUCCESS"]
    assert all(isinstance(data["progress"], str) and data["progress"].endswith("%") for data in seen)
    done = seen[-1]
    assert done["id"] == task_id
    assert "task_id" not in done
    assert done["progress"] == "100%"
    assert done["result_url"] == f"{emulator.url}/videos/{task_id}.mp4"
    assert "url" not in done


def test_shape_wrapped_reports_a_failure_as_fail_reason() -> None:
    with running_emulator(generation_seconds=0.1, shape="wrapped") as emulator:
        api = ApiClient(emulator.url)
        payload = api.wait_until_finished(api.submit_id(prompt="[content-policy]"))
    assert payload["code"] == "success"
    assert payload["data"]["status"] == "FAILURE"
    assert "content policy" in payload["data"]["fail_reason"]
    assert "error" not in payload["data"]


def test_shape_wrapped_answers_an_unknown_task_with_400_task_not_exist(emulator) -> None:
    emulator.configure(shape="wrapped")
    response = ApiClient(emulator.url).status("nope")
    assert response.status_code == 400
    assert response.json() == {"code": "task_not_exist", "message": "task not exist", "data": None}


@pytest.mark.parametrize(
    ("knob", "value"),
    [("failure_rate", 1.5), ("error_rate", -0.1), ("shape", "xml"), ("rate_limit", 0), ("generation_seconds", -1)],
)
def test_invalid_knob_values_are_refused_from_python(knob, value) -> None:
    with pytest.raises(ValueError, match=knob):
        EmulatorSettings(**{knob: value})
