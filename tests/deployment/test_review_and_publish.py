"""The review-before-publishing example on a real deployment (LocalExecutor, PostgreSQL), answered as a
reviewer would: through the REST API that the UI's "Required actions" form uses.

Each test starts a run with a prompt of its own, waits until the review step asks for an answer, checks
that the request shows the video and the prompt, answers it, and checks what the answer led to: a
published file and an Asset event, or a new run that asked the API for the revised prompt, or nothing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from deploy.deployment import LocalDeployment
from tests.deployment.conftest import deployment_settings
from tests.deployment.scenarios import SAMPLE_MP4, summarise

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_infinityblue.testing import EmulatorHandle

pytestmark = [pytest.mark.deployment, pytest.mark.airflow(">=3.1", feature="human-in-the-loop operators")]

REVIEW = "example_infinityblue_review_and_publish"
REVIEWED_VIDEO = "infinityblue_reviewed_video"
# Over 10 s, as in scenarios.py: a deferral that resumes within a few seconds can race the scheduler's
# handling of the worker's exit (an Airflow 3.3.2 race).
GENERATION_SECONDS = 11
# A generation, its deferral and the review request being written, on a busy two-core machine.
UNTIL_REVIEW_SECONDS = 180


@pytest.fixture(scope="module")
def airflow(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    home = tmp_path_factory.mktemp("airflow-review")
    with LocalDeployment(**deployment_settings(emulator, home)) as deployment:
        deployment.api.wait_for_dag(REVIEW)
        deployment.api.unpause(REVIEW)
        yield deployment


def start_review(
    airflow: LocalDeployment, emulator: EmulatorHandle, prompt: str, output_dir: Path
) -> tuple[str, dict[str, Any]]:
    """Start a run on ``prompt``; answers its run id and the review request, once the step waits for it."""
    run_id = airflow.api.trigger(REVIEW, conf={"prompt": prompt, "output_dir": str(output_dir)})
    return run_id, awaited_review(airflow, emulator, run_id, prompt)


def awaited_review(airflow: LocalDeployment, emulator: EmulatorHandle, run_id: str, prompt: str) -> dict[str, Any]:
    """The run's review request, checked to show the reviewer what they decide on."""
    detail = airflow.api.wait_for_hitl_detail(REVIEW, run_id, "review", timeout=UNTIL_REVIEW_SECONDS)
    video_url = airflow.api.xcom(REVIEW, run_id, "generate")
    generation_id = airflow.api.xcom(REVIEW, run_id, "generate", key="infinityblue_task_id")
    assert video_url == f"{emulator.url}/videos/{generation_id}.mp4"
    assert f"**Prompt:** {prompt}\n" in detail["body"]
    assert f"[{video_url}]({video_url})" in detail["body"]
    assert detail["options"] == ["Publish", "Regenerate", "Discard"]
    assert detail["defaults"] == ["Discard"]
    assert detail["params"]["note"]["value"] == ""
    return detail


def task_states(airflow: LocalDeployment, run_id: str) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in airflow.api.task_instances(REVIEW, run_id)}


def new_runs(airflow: LocalDeployment, earlier_runs: set[str]) -> list[str]:
    return [run["dag_run_id"] for run in airflow.api.dag_runs(REVIEW) if run["dag_run_id"] not in earlier_runs]


@pytest.mark.timeout(420)
def test_publish_copies_the_video_and_announces_it_with_the_reviewers_note(
    airflow: LocalDeployment, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    emulator.reset()
    emulator.configure(generation_seconds=GENERATION_SECONDS)
    api = airflow.api
    prompt = "A red kite over sand dunes at noon, heat shimmer, long lens"
    note = "Approved for Friday's newsletter"
    started = time.monotonic()
    run_id, _ = start_review(airflow, emulator, prompt, tmp_path)
    asked_at = time.monotonic() - started

    response = api.respond_to_hitl(REVIEW, run_id, "review", ["Publish"], {"note": note})
    assert (response["chosen_options"], response["params_input"]) == (["Publish"], {"note": note})
    answered = time.monotonic()
    assert airflow.wait_for_run(REVIEW, run_id, timeout=180)["state"] == "success"
    finished_in = time.monotonic() - answered

    assert task_states(airflow, run_id) == {
        "generate": "success",
        "review": "success",
        "follow_decision": "success",
        "publish": "success",
        "announce": "success",
        "revise_prompt": "skipped",
        "regenerate": "skipped",
        "discard": "skipped",
    }
    generation_id = api.xcom(REVIEW, run_id, "generate", key="infinityblue_task_id")
    video_url = api.xcom(REVIEW, run_id, "generate")
    published = Path(api.xcom(REVIEW, run_id, "publish"))
    assert published == tmp_path / "reviewed" / f"{generation_id}.mp4"
    assert published.read_bytes() == SAMPLE_MP4.read_bytes()
    # The decision, note included, is the review step's XCom: what the tasks after it read.
    decision = api.xcom(REVIEW, run_id, "review")
    assert decision["chosen_options"] == ["Publish"]
    assert decision["params_input"] == {"note": note}
    [event] = api.asset_events(REVIEWED_VIDEO, source_run_id=run_id)
    assert event["source_task_id"] == "announce"
    assert event["extra"] == {
        "video_url": video_url,
        "published_to": str(published),
        "prompt": prompt,
        "note": note,
        "reviewed_by": "admin",
    }
    assert [(g["id"], g["prompt"]) for g in emulator.generations()] == [(generation_id, prompt)]
    summarise(
        "Review and publish (LocalExecutor)",
        [f"review asked {asked_at:.0f} s after the trigger", f"published {finished_in:.0f} s after the answer"],
    )


@pytest.mark.timeout(600)
def test_regenerate_starts_a_run_on_the_revised_prompt_which_is_then_discarded(
    airflow: LocalDeployment, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    emulator.reset()
    emulator.configure(generation_seconds=GENERATION_SECONDS)
    api = airflow.api
    prompt = "A paper boat on a pond, morning mist."
    note = "Slower camera, warmer light"
    revised_prompt = "A paper boat on a pond, morning mist. Slower camera, warmer light"
    earlier_runs = {run["dag_run_id"] for run in api.dag_runs(REVIEW)}
    first_run, _ = start_review(airflow, emulator, prompt, tmp_path)

    api.respond_to_hitl(REVIEW, first_run, "review", ["Regenerate"], {"note": note})
    assert airflow.wait_for_run(REVIEW, first_run, timeout=180)["state"] == "success"
    states = task_states(airflow, first_run)
    assert (states["revise_prompt"], states["regenerate"]) == ("success", "success")
    assert {states[task] for task in ("publish", "announce", "discard")} == {"skipped"}
    second_run = api.xcom(REVIEW, first_run, "regenerate", key="trigger_run_id")
    assert new_runs(airflow, earlier_runs) == [first_run, second_run]
    assert api.run(REVIEW, second_run)["conf"] == {"prompt": revised_prompt, "output_dir": str(tmp_path)}

    # The new run asked the API for the revised prompt, and is reviewed in turn: this time, discarded.
    awaited_review(airflow, emulator, second_run, revised_prompt)
    assert [g["prompt"] for g in emulator.generations()] == [prompt, revised_prompt]
    api.respond_to_hitl(REVIEW, second_run, "review", ["Discard"], {"note": "Still too dark"})
    assert airflow.wait_for_run(REVIEW, second_run, timeout=180)["state"] == "success"
    states = task_states(airflow, second_run)
    assert states["discard"] == "success"
    assert {states[task] for task in ("publish", "announce", "revise_prompt", "regenerate")} == {"skipped"}
    assert "Discarded by the reviewer" in airflow.task_log(REVIEW, second_run, "discard")

    # Nothing was published by either run, and no third generation was paid for.
    assert not (tmp_path / "reviewed").exists()
    for run_id in (first_run, second_run):
        assert api.asset_events(REVIEWED_VIDEO, source_run_id=run_id) == []
    assert len(emulator.generations()) == 2
    assert new_runs(airflow, earlier_runs) == [first_run, second_run]
