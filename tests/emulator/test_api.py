"""The documented routes: submission, the status lifecycle, unknown tasks and routes, request ids."""

from __future__ import annotations

import time

import pytest

from airflow_provider_infinityblue.emulator import running_emulator
from airflow_provider_infinityblue.emulator.lifecycle import progress_after
from tests.emulator.conftest import MODEL, ApiClient


def test_submission_answers_a_queued_task(api: ApiClient) -> None:
    response = api.submit(duration=5, width=1280, height=720, metadata={"style": "noir"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "queued"
    assert isinstance(body["task_id"], str)
    assert body["task_id"]


def test_a_generation_goes_queued_then_in_progress_then_completed() -> None:
    with running_emulator(generation_seconds=0.8) as emulator:
        api = ApiClient(emulator.url)
        task_id = api.submit_id()
        seen: list[tuple[str, int]] = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            body = api.status(task_id).json()
            seen.append((body["status"], body["progress"]))
            if body["status"] == "completed":
                break
            time.sleep(0.02)
    statuses = [status for status, _ in seen]
    assert list(dict.fromkeys(statuses)) == ["queued", "in_progress", "completed"]
    progresses = [progress for _, progress in seen]
    assert progresses == sorted(progresses)
    assert all(progress == 0 for status, progress in seen if status == "queued")
    assert all(1 <= progress <= 99 for status, progress in seen if status == "in_progress")
    assert seen[-1] == ("completed", 100)


def test_a_completed_generation_has_url_format_and_metadata(api: ApiClient, emulator) -> None:
    task_id = api.submit_id()
    body = api.wait_until_finished(task_id)
    assert body["status"] == "completed"
    assert body["task_id"] == task_id
    assert body["model"] == MODEL
    assert body["url"] == f"{emulator.url}/videos/{task_id}.mp4"
    assert body["format"] == "mp4"
    assert body["metadata"] == {"duration": 3, "width": 320, "height": 180, "fps": 24}
    assert "error" not in body


def test_an_unfinished_generation_has_no_url(api: ApiClient) -> None:
    body = api.status(api.submit_id()).json()
    assert body["status"] in ("queued", "in_progress")
    assert "url" not in body


def test_the_video_url_follows_the_host_the_client_used(api: ApiClient, emulator) -> None:
    task_id = api.submit_id()
    api.wait_until_finished(task_id)
    port = emulator.url.rsplit(":", 1)[1]
    body = api.session.get(
        f"{emulator.url}/v1/video/generations/{task_id}", headers={"Host": f"localhost:{port}"}, timeout=10
    ).json()
    assert body["url"] == f"http://localhost:{port}/videos/{task_id}.mp4"


@pytest.mark.parametrize(
    ("elapsed", "expected"),
    [
        (0.0, ("queued", 0)),
        (0.49, ("queued", 0)),
        (0.5, ("in_progress", 1)),
        (1.25, ("in_progress", 50)),
        (1.999, ("in_progress", 99)),
        (2.0, ("completed", 100)),
        (60.0, ("completed", 100)),
    ],
)
def test_progress_follows_the_elapsed_share_of_the_generation_time(elapsed, expected) -> None:
    progress = progress_after(elapsed, 2.0, fails=False)
    assert (progress.status, progress.percent) == expected


def test_a_generation_with_no_time_is_done_at_once() -> None:
    assert progress_after(0.0, 0.0, fails=False).status == "completed"


def test_unknown_task_is_an_openai_style_404(api: ApiClient) -> None:
    response = api.status("no-such-task")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "not_found"
    assert "no-such-task" in error["message"]
    assert set(error) == {"message", "type", "code", "param"}


@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/v2/nothing", 404), ("DELETE", "/v1/video/generations/x", 405)]
)
def test_unknown_routes_and_methods_answer_json(api: ApiClient, emulator, method, path, status) -> None:
    response = api.session.request(method, emulator.url + path, timeout=10)
    assert response.status_code == status
    assert response.json()["error"]["message"]
    assert response.headers["x-request-id"].startswith("req_")


def test_every_answer_carries_its_own_request_id(api: ApiClient, emulator) -> None:
    task_id = api.submit_id()
    answers = [
        api.submit(),
        api.submit(prompt=""),
        api.status(task_id),
        api.status("missing"),
        api.session.get(f"{emulator.url}/videos/{task_id}.mp4", timeout=10),
        api.session.get(f"{emulator.url}/_emulator/stats", timeout=10),
        ApiClient(emulator.url, api_key=None).status(task_id),
    ]
    ids = [answer.headers["x-request-id"] for answer in answers]
    assert [answer.status_code for answer in answers] == [200, 400, 200, 404, 404, 200, 401]
    assert all(request_id.startswith("req_") and len(request_id) > 12 for request_id in ids)
    assert len(set(ids)) == len(ids)


def test_the_video_of_an_unfinished_failed_or_unknown_task_is_404(api: ApiClient, emulator) -> None:
    failed = api.submit_id(prompt="A riot [content-policy]")
    api.wait_until_finished(failed)
    running = api.submit_id()
    for task_id in (running, failed, "unknown"):
        response = api.session.get(f"{emulator.url}/videos/{task_id}.mp4", timeout=10)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
