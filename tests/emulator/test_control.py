"""/_emulator/stats, /_emulator/generations, /_emulator/reset and /_emulator/config."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_infinityblue.emulator import EmulatorControlError, running_emulator
from tests.emulator.conftest import ApiClient


def test_stats_count_answers_per_route_template_and_tasks_per_status() -> None:
    with running_emulator(generation_seconds=0.2) as emulator:
        api = ApiClient(emulator.url)
        done = api.submit_id()
        failed = api.submit_id(prompt="[content-policy]")
        api.wait_until_finished(done)
        api.wait_until_finished(failed)
        polls_so_far = emulator.stats()["requests"]["GET /v1/video/generations/{task_id}"]["200"]
        # Long enough that "A long one" is still queued when counted, however busy the machine.
        emulator.configure(reject_submissions=1, unavailable_polls=2, generation_seconds=60)
        api.submit()
        running = api.submit_id(prompt="A long one")
        for task_id in (done, done, done, "unknown"):
            api.status(task_id)
        api.session.get(f"{emulator.url}/videos/{done}.mp4", timeout=10)
        api.session.get(f"{emulator.url}/videos/{done}.mp4", headers={"Range": "bytes=0-9"}, timeout=10)
        api.session.get(f"{emulator.url}/videos/{running}.mp4", timeout=10)
        stats = emulator.stats()
    # One keep-alive session, and a connection per control call (this stats() one included).
    assert (stats.pop("connections"), stats.pop("tls_handshakes")) == (1 + 3, 0)
    assert stats.pop("open_connections") >= 2  # the session's and this answer's; others may be closing
    assert stats == {
        "requests": {
            "POST /v1/video/generations": {"200": 3, "429": 1},
            "GET /v1/video/generations/{task_id}": {"200": polls_so_far + 1, "404": 1, "503": 2},
            "GET /videos/{task_id}.mp4": {"200": 1, "206": 1, "404": 1},
        },
        "tasks": {"queued": 1, "in_progress": 0, "completed": 1, "failed": 1},
        "submissions": 3,
        "video_renders": 0,  # both downloads got the sample: the request asked for no other shape
    }


def test_control_routes_are_not_counted(emulator) -> None:
    for _ in range(3):
        emulator.stats()
        emulator.configure()
    assert emulator.stats()["requests"] == {}


def test_generations_list_what_each_submission_asked_for_until_a_reset(emulator, api: ApiClient) -> None:
    emulator.configure(generation_seconds=60)
    first = api.submit_id(prompt="A red kite over the dunes")
    second = api.submit_id(model="veo_3_1", prompt="The same kite, closer")
    assert emulator.generations() == [
        {"id": first, "model": "kling-v2-5-turbo", "prompt": "A red kite over the dunes", "status": "queued"},
        {"id": second, "model": "veo_3_1", "prompt": "The same kite, closer", "status": "queued"},
    ]
    assert emulator.stats()["requests"]["POST /v1/video/generations"] == {"200": 2}  # the listing is not counted
    emulator.reset()
    assert emulator.generations() == []


def test_reset_forgets_tasks_and_counts_but_keeps_knobs(emulator, api: ApiClient) -> None:
    task_id = api.submit_id()
    emulator.configure(shape="wrapped", failure_rate=0.25)
    emulator.reset()
    stats = emulator.stats()
    # Connections still open stay counted as open; the one of this stats() call is the only new one.
    assert stats.pop("open_connections") >= 2
    assert stats == {
        "requests": {},
        "tasks": {"queued": 0, "in_progress": 0, "completed": 0, "failed": 0},
        "submissions": 0,
        "video_renders": 0,
        "connections": 1,
        "tls_handshakes": 0,
    }
    assert api.status(task_id).json() == {"code": "task_not_exist", "message": "task not exist", "data": None}
    knobs = emulator.configure()
    assert (knobs["shape"], knobs["failure_rate"]) == ("wrapped", 0.25)


def test_configure_changes_knobs_at_runtime_and_answers_them_all(emulator) -> None:
    knobs = emulator.configure(generation_seconds=1.5, generation_seconds_max=2.5, error_rate=0.1, seed=3)
    assert knobs == {
        "generation_seconds": 1.5,
        "generation_seconds_max": 2.5,
        "failure_rate": 0.0,
        "fail_marker": "[content-policy]",
        "rate_limit": None,
        "error_rate": 0.1,
        "shape": "documented",
        "seed": 3,
        "max_body_mb": 32.0,
        "reject_submissions": 0,
        "unavailable_polls": 0,
        "invisible_polls": 0,
        "submission_answer_seconds": 0.0,
        "video": "rendered",
        "api_key_required": False,
    }
    answer = requests.get(f"{emulator.url}/_emulator/config", timeout=10).json()
    assert answer == knobs


@pytest.mark.parametrize(
    ("knobs", "param"),
    [
        ({"no_such_knob": 1}, "no_such_knob"),
        ({"port": 9999}, "port"),
        ({"host": "0.0.0.0"}, "host"),
        ({"failure_rate": 2}, "failure_rate"),
        ({"shape": "xml"}, "shape"),
        ({"video": "4k"}, "video"),
        ({"reject_submissions": "3"}, "reject_submissions"),
        ({"generation_seconds": 3, "generation_seconds_max": 1}, "generation_seconds_max"),
    ],
)
def test_configure_refuses_unknown_names_and_bad_values_with_400(emulator, knobs, param) -> None:
    response = requests.post(f"{emulator.url}/_emulator/config", json=knobs, timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    with pytest.raises(EmulatorControlError, match=param):
        emulator.configure(**knobs)


def test_a_refused_configuration_changes_nothing(emulator) -> None:
    with pytest.raises(EmulatorControlError, match="bogus"):
        emulator.configure(failure_rate=1.0, bogus=True)
    assert emulator.configure()["failure_rate"] == 0.0


@pytest.mark.parametrize("raw", [b"[1, 2]", b"not json"])
def test_configure_wants_a_json_object(emulator, raw: bytes) -> None:
    response = requests.post(f"{emulator.url}/_emulator/config", data=raw, timeout=10)
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]["message"]
