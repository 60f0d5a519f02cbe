"""The review-before-publishing example on a real deployment (LocalExecutor, PostgreSQL), answered as a
reviewer would: through the REST API that the UI's "Required actions" form uses.

Each test has a run with a prompt of its own, waits until its review step asks for an answer, checks
that the request shows the video and the prompt, answers it, and checks what the answer led to: a
published file and an Asset event, or a new run that asked the API for the revised prompt, then nothing.
Both runs are started together, so that their generations and task start-ups overlap.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from deploy.deployment import LocalDeployment
from deploy.processes import wait_until
from tests.deployment.conftest import deployment_settings
from tests.deployment.scenarios import SAMPLE_MP4, summarise

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_provider_infinityblue.testing import EmulatorHandle

pytestmark = [pytest.mark.deployment, pytest.mark.airflow(">=3.1", feature="human-in-the-loop operators")]

REVIEW = "example_infinityblue_review_and_publish"
REVIEWED_VIDEO = "infinityblue_reviewed_video"
# Over 10 s, as in scenarios.py: a deferral that resumes within a few seconds can race the scheduler's
# handling of the worker's exit (an Airflow 3.3.2 race).
GENERATION_SECONDS = 11
# A generation, its deferral and the review request being written, on a busy two-core machine.
UNTIL_REVIEW_SECONDS = 240
PUBLISHED_PROMPT = "A red kite over sand dunes at noon, heat shimmer, long lens"
REGENERATED_PROMPT = "A paper boat on a pond, morning mist."


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    prompt: str
    output_dir: Path
    started_at: float


@pytest.fixture(scope="module")
def airflow(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    home = tmp_path_factory.mktemp("airflow-review")
    with LocalDeployment(**deployment_settings(emulator, home)) as deployment:
        deployment.api.wait_for_dag(REVIEW)
        deployment.api.unpause(REVIEW)
        yield deployment


@pytest.fixture(scope="module")
def runs(
    airflow: LocalDeployment, emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, StartedRun]:
    """One run per test, by the prompt it generates from, started at once."""
    emulator.reset()
    emulator.configure(generation_seconds=GENERATION_SECONDS)
    started: dict[str, StartedRun] = {}
    for prompt in (PUBLISHED_PROMPT, REGENERATED_PROMPT):
        output_dir = tmp_path_factory.mktemp("reviewed-videos")
        run_id = airflow.api.trigger(REVIEW, conf={"prompt": prompt, "output_dir": str(output_dir)})
        started[prompt] = StartedRun(run_id, prompt, output_dir, time.monotonic())
    return started


def awaited_review(airflow: LocalDeployment, emulator: EmulatorHandle, run_id: str, prompt: str) -> dict[str, Any]:
    """The run's review request once it can be answered, checked to show what the reviewer decides on."""
    detail = airflow.api.wait_for_hitl_detail(REVIEW, run_id, "review", timeout=UNTIL_REVIEW_SECONDS)
    video_url = airflow.api.xcom(REVIEW, run_id, "generate")
    generation_id = airflow.api.xcom(REVIEW, run_id, "generate", key="infinityblue_task_id")
    assert video_url == f"{emulator.url}/videos/{generation_id}.mp4"
    assert f"**Prompt:** {prompt}\n" in detail["body"]
    assert f"[{video_url}]({video_url})" in detail["body"]
    assert detail["options"] == ["Publish", "Regenerate", "Discard"]
    assert detail["defaults"] == ["Discard"]
    assert detail["params"]["note"]["value"] == ""
    until_the_parking_worker_is_gone(airflow, run_id)
    return detail


def until_the_parking_worker_is_gone(airflow: LocalDeployment, run_id: str) -> None:
    """Wait until the scheduler has handled the exit of the worker that parked the review step.

    Airflow 3.3.2 fails a task answered before that: the stale exit of the parking try arrives once the
    answer has queued the task again, and reads as that try finishing while queued ("task state changed
    externally"). A person takes longer than that second to answer; a script has to wait for it.
    """
    exit_seen = (
        "Received executor event with state success for task instance TaskInstanceKey("
        f"dag_id='{REVIEW}', task_id='review', run_id='{run_id}', try_number=1,"
    )
    scheduler_log = airflow.components["scheduler"].log_path
    wait_until(
        lambda: exit_seen in scheduler_log.read_text(errors="replace"),
        timeout=60,
        what="the scheduler handled the exit of the worker that parked the review step",
    )


def task_states(airflow: LocalDeployment, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in airflow.api.task_instances(REVIEW, run_id)}


def runs_other_than(airflow: LocalDeployment, known: set[str]) -> list[str]:
    return [run["dag_run_id"] for run in airflow.api.dag_runs(REVIEW) if run["dag_run_id"] not in known]


@pytest.mark.timeout(480)
def test_publish_copies_the_video_and_announces_it_with_the_reviewers_note(
    airflow: LocalDeployment, emulator: EmulatorHandle, runs: dict[str, StartedRun]
) -> None:
    api = airflow.api
    run = runs[PUBLISHED_PROMPT]
    note = "Approved for Friday's newsletter"
    awaited_review(airflow, emulator, run.run_id, run.prompt)
    answerable_after = time.monotonic() - run.started_at

    response = api.respond_to_hitl(REVIEW, run.run_id, "review", ["Publish"], {"note": note})
    assert (response["chosen_options"], response["params_input"]) == (["Publish"], {"note": note})
    answered = time.monotonic()
    assert airflow.wait_for_run(REVIEW, run.run_id, timeout=180)["state"] == "success"
    finished_in = time.monotonic() - answered

    assert task_states(airflow, run.run_id) == {
        "generate": "success",
        "review": "success",
        "follow_decision": "success",
        "publish": "success",
        "announce": "success",
        "revise_prompt": "skipped",
        "regenerate": "skipped",
        "discard": "skipped",
    }
    generation_id = api.xcom(REVIEW, run.run_id, "generate", key="infinityblue_task_id")
    video_url = api.xcom(REVIEW, run.run_id, "generate")
    published = run.output_dir / "reviewed" / f"{generation_id}.mp4"
    assert api.xcom(REVIEW, run.run_id, "publish") == str(published)
    assert published.read_bytes() == SAMPLE_MP4.read_bytes()
    # The decision, note included, is the review step's XCom: what the tasks after it read.
    decision = api.xcom(REVIEW, run.run_id, "review")
    assert decision["chosen_options"] == ["Publish"]
    assert decision["params_input"] == {"note": note}
    [event] = api.asset_events(REVIEWED_VIDEO, source_run_id=run.run_id)
    assert event["source_task_id"] == "announce"
    assert event["extra"] == {
        "video_url": video_url,
        "published_to": str(published),
        "prompt": run.prompt,
        "note": note,
        "reviewed_by": "admin",
    }
    asked = [generation["id"] for generation in emulator.generations() if generation["prompt"] == run.prompt]
    assert asked == [generation_id]
    summarise(
        "Review and publish (LocalExecutor, two runs at once)",
        [f"answerable {answerable_after:.0f} s after the trigger", f"published {finished_in:.0f} s after the answer"],
    )


@pytest.mark.timeout(600)
def test_regenerate_starts_a_run_on_the_revised_prompt_which_is_then_discarded(
    airflow: LocalDeployment, emulator: EmulatorHandle, runs: dict[str, StartedRun]
) -> None:
    api = airflow.api
    first = runs[REGENERATED_PROMPT]
    note = "Slower camera, warmer light"
    revised_prompt = "A paper boat on a pond, morning mist. Slower camera, warmer light"
    awaited_review(airflow, emulator, first.run_id, first.prompt)
    known_runs = {run["dag_run_id"] for run in api.dag_runs(REVIEW)}

    api.respond_to_hitl(REVIEW, first.run_id, "review", ["Regenerate"], {"note": note})
    assert airflow.wait_for_run(REVIEW, first.run_id, timeout=180)["state"] == "success"
    states = task_states(airflow, first.run_id)
    assert (states["revise_prompt"], states["regenerate"]) == ("success", "success")
    assert {states[task] for task in ("publish", "announce", "discard")} == {"skipped"}
    second_run = api.xcom(REVIEW, first.run_id, "regenerate", key="trigger_run_id")
    assert runs_other_than(airflow, known_runs) == [second_run]
    assert api.run(REVIEW, second_run)["conf"] == {"prompt": revised_prompt, "output_dir": str(first.output_dir)}

    # The new run asked the API for the revised prompt, and is reviewed in turn: this time, discarded.
    awaited_review(airflow, emulator, second_run, revised_prompt)
    this_tests_prompts = {first.prompt, revised_prompt}
    asked = [generation["prompt"] for generation in emulator.generations()]
    assert [prompt for prompt in asked if prompt in this_tests_prompts] == [first.prompt, revised_prompt]
    api.respond_to_hitl(REVIEW, second_run, "review", ["Discard"], {"note": "Still too dark"})
    assert airflow.wait_for_run(REVIEW, second_run, timeout=180)["state"] == "success"
    states = task_states(airflow, second_run)
    assert states["discard"] == "success"
    assert {states[task] for task in ("publish", "announce", "revise_prompt", "regenerate")} == {"skipped"}
    assert "Discarded by the reviewer" in airflow.task_log(REVIEW, second_run, "discard")

    # Nothing was published by either run, and no third run or generation was started.
    assert not (first.output_dir / "reviewed").exists()
    for run_id in (first.run_id, second_run):
        assert api.asset_events(REVIEWED_VIDEO, source_run_id=run_id) == []
    assert runs_other_than(airflow, known_runs) == [second_run]
    assert [generation["prompt"] for generation in emulator.generations()].count(revised_prompt) == 1
