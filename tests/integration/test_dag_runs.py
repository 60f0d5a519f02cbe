"""Each way of using the provider, run by real Airflow (``dag.test()``) against the emulator.

Every run's task logs are kept, and the last test checks that none of them holds the API key.
"""

from __future__ import annotations

import pytest

from tests.conftest import FAKE_API_KEY

SUBMIT = "POST /v1/video/generations"
POLL = "GET /v1/video/generations/{task_id}"
TASK_LOGS: list[str] = []


def post_count(emulator) -> int:
    return sum(emulator.stats()["requests"].get(SUBMIT, {}).values())


def succeeded_with_a_video(result, emulator, task_id: str = "generate") -> str:
    assert result.state == "success", result.logs[-3000:]
    url = result.xcom[(task_id, "return_value")]
    assert url.startswith(f"{emulator.url}/videos/")
    assert result.xcom[(task_id, "video_url")] == url
    return url


@pytest.fixture
def run(run_dag):
    def run_and_keep_logs(dag_id: str):
        result = run_dag(dag_id)
        TASK_LOGS.append(result.logs)
        return result

    return run_and_keep_logs


# How long the generations of the tests that check a wait really happened take: longer than an Airflow
# takes to start the next task or the trigger under dag.test() (about 4 s a task on Airflow 3.2).
OBSERVABLE_GENERATION_SECONDS = 10


def test_deferrable(run, emulator) -> None:
    emulator.configure(generation_seconds=OBSERVABLE_GENERATION_SECONDS)
    result = run("e2e_deferrable")
    url = succeeded_with_a_video(result, emulator)
    assert result.xcom[("check_video_url", "return_value")] == url  # reached the downstream task
    generation_id = result.xcom[("generate", "infinityblue_task_id")]
    assert url.endswith(f"{generation_id}.mp4")
    assert result.xcom[("generate", "_link_InfinityBlueVideoLink")] == url  # the UI's extra link
    assert "running trigger in line" in result.logs  # it really deferred
    assert f"InfinityBlue generation {generation_id} is in_progress" in result.logs  # the trigger's progress
    assert f"InfinityBlue video ready: {url}" in result.logs  # the operator's own log, after resuming
    assert emulator.stats()["submissions"] == 1


def test_sync(run, emulator) -> None:
    result = run("e2e_sync")
    succeeded_with_a_video(result, emulator)
    assert "running trigger in line" not in result.logs
    assert emulator.stats()["submissions"] == 1


def test_no_wait_returns_the_task_id(run, emulator) -> None:
    result = run("e2e_no_wait")
    assert result.state == "success"
    generation_id = result.xcom[("submit", "return_value")]
    assert result.xcom[("submit", "infinityblue_task_id")] == generation_id
    assert ("submit", "video_url") not in result.xcom
    assert post_count(emulator) == 1
    assert POLL not in emulator.stats()["requests"]


@pytest.mark.parametrize(
    "dag_id",
    [
        "e2e_sensor_poke",
        # Airflow 3.0's dag.test() fails a sensor that really reschedules (README: supported Airflow versions).
        pytest.param("e2e_sensor_reschedule", marks=pytest.mark.airflow(">=3.1", feature="reschedule in dag.test")),
        "e2e_sensor_deferrable",
    ],
)
def test_sensor(run, emulator, dag_id) -> None:
    emulator.configure(generation_seconds=OBSERVABLE_GENERATION_SECONDS)
    result = run(dag_id)
    url = succeeded_with_a_video(result, emulator, task_id="wait")
    assert url.endswith(f"{result.xcom[('submit', 'infinityblue_task_id')]}.mp4")
    assert ("running trigger in line" in result.logs) == dag_id.endswith("deferrable")
    assert ("marking task as UP_FOR_RESCHEDULE" in result.logs) == dag_id.endswith("reschedule")
    assert emulator.stats()["submissions"] == 1


def test_failed_generation_fails_the_task_with_the_servers_message(run, emulator) -> None:
    result = run("e2e_failed")
    assert result.state == "failed"
    assert result.tasks["generate"][0] == "failed"
    assert result.tasks["check_video_url"][0] == "upstream_failed"
    generation_id = result.xcom[("generate", "infinityblue_task_id")]
    assert f"InfinityBlue generation {generation_id} ended with status 'failed'" in result.logs
    assert "rejected by the content policy" in result.logs
    assert post_count(emulator) == 1


def test_timeout_says_the_generation_may_still_finish(run, emulator) -> None:
    emulator.configure(generation_seconds=60)
    result = run("e2e_timeout")
    assert result.tasks["generate"][0] == "failed"
    generation_id = result.xcom[("generate", "infinityblue_task_id")]
    assert f"Stopped waiting for InfinityBlue generation {generation_id}" in result.logs
    assert "may still finish" in result.logs
    assert post_count(emulator) == 1


def test_rate_limited_submission_is_sent_again(run, emulator) -> None:
    emulator.configure(reject_submissions=1)
    result = run("e2e_deferrable")
    succeeded_with_a_video(result, emulator)
    assert emulator.stats()["requests"][SUBMIT] == {"429": 1, "200": 1}
    assert emulator.stats()["submissions"] == 1


def test_unavailable_polls_are_ridden_out(run, emulator) -> None:
    emulator.configure(unavailable_polls=3)
    result = run("e2e_deferrable")
    succeeded_with_a_video(result, emulator)
    assert emulator.stats()["requests"][POLL]["503"] == 3


def test_wrapped_response_shape(run, emulator) -> None:
    emulator.configure(shape="wrapped")
    result = run("e2e_deferrable")
    succeeded_with_a_video(result, emulator)
    assert emulator.stats()["submissions"] == 1


def test_prompt_rendered_from_a_template_file(run, emulator) -> None:
    result = run("e2e_templated_prompt")
    succeeded_with_a_video(result, emulator)
    rendered = result.rendered["generate"]
    assert rendered["prompt"].startswith("A lighthouse at sunrise on ")
    assert "{{" not in rendered["prompt"]
    assert rendered["model"] == "kling-v2-1-master"
    assert rendered["duration"] == "5"
    assert rendered["metadata"]["style"]["title"].startswith("Lighthouse ")


@pytest.mark.airflow(">=3.3", feature="durable retries through the task state store")
@pytest.mark.parametrize("mode", ["deferrable", "sync"])
def test_durable_retry_sends_no_second_post(run, emulator, mode) -> None:
    result = run(f"e2e_durable_retry_{mode}")
    succeeded_with_a_video(result, emulator)
    assert result.tasks["generate"] == ("success", 2)  # the first try died after its POST
    assert "simulated worker loss right after the submission" in result.logs
    assert "Reconnecting to existing job" in result.logs
    assert post_count(emulator) == 1
    assert emulator.stats()["submissions"] == 1


@pytest.mark.airflow("<3.3", feature="retries without the task state store")
@pytest.mark.parametrize("mode", ["deferrable", "sync"])
def test_without_the_task_state_store_a_retry_submits_anew_and_says_so(run, emulator, mode) -> None:
    result = run(f"e2e_durable_retry_{mode}")
    succeeded_with_a_video(result, emulator)
    assert result.tasks["generate"] == ("success", 2)
    assert "simulated worker loss right after the submission" in result.logs
    assert result.logs.count("will submit a new job instead of re-attaching to this one") >= 2  # once per try
    assert "Reconnecting to existing job" not in result.logs
    assert post_count(emulator) == 2


@pytest.mark.parametrize("mode", ["deferrable", "sync"])
def test_a_new_generation_not_visible_yet_is_waited_for_not_paid_twice(run, emulator, mode) -> None:
    emulator.configure(invisible_polls=2)
    result = run(f"e2e_not_visible_yet_{mode}")
    succeeded_with_a_video(result, emulator)
    assert result.tasks["generate"] == ("success", 1)
    assert emulator.stats()["requests"][POLL]["404"] == 2
    assert "does not show generation" in result.logs
    assert post_count(emulator) == 1


@pytest.mark.airflow(">=3.3", feature="durable retries through the task state store")
@pytest.mark.parametrize("mode", ["deferrable", "sync"])
def test_a_lost_generation_fails_clearly_and_the_retry_does_not_pay_again(run, emulator, mode) -> None:
    emulator.configure(invisible_polls=1000)
    result = run(f"e2e_lost_{mode}")
    assert result.state == "failed"
    assert result.tasks["generate"] == ("failed", 2)
    generation_id = result.xcom[("generate", "infinityblue_task_id")]
    assert result.logs.count(f"InfinityBlue generation {generation_id} was submitted") >= 2  # each try says why
    assert "may still be billed" in result.logs
    assert 'on_lost_generation="resubmit"' in result.logs
    assert post_count(emulator) == 1


def test_no_task_log_holds_the_api_key(request: pytest.FixtureRequest) -> None:
    here = request.node.path
    runs = [item for item in request.session.items if item.path == here and "run" in getattr(item, "fixturenames", ())]
    assert len(TASK_LOGS) == len(runs) > 0, "the scan covers every DAG run of this module"
    assert all("InfinityBlue" in logs for logs in TASK_LOGS)
    assert not [logs for logs in TASK_LOGS if FAKE_API_KEY in logs]
