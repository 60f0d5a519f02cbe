"""The example DAGs on a real deployment with the LocalExecutor: separate scheduler, DAG processor,
triggerer and API server processes, two worker slots, and components stopped and killed mid-run.
"""

from __future__ import annotations

import json
import os
import signal
import time
from typing import TYPE_CHECKING

import pytest

from deploy.deployment import LocalDeployment
from deploy.processes import descendants_of, parent_of, wait_until
from tests.deployment.conftest import WORKER_SLOTS, deployment_settings
from tests.deployment.observe import RunWatch, posts, status_gets
from tests.deployment.scenarios import (
    BATCH,
    WORKER_LOSS,
    BackfillRun,
    prepare,
    summarise,
    text_to_video_defers_to_the_triggerer,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_provider_infinityblue.testing import EmulatorHandle

pytestmark = pytest.mark.deployment


@pytest.fixture(scope="module")
def airflow(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalDeployment]:
    home = tmp_path_factory.mktemp("airflow-local")
    with LocalDeployment(**deployment_settings(emulator, home)) as deployment:
        prepare(deployment)
        yield deployment


@pytest.mark.timeout(420)
def test_text_to_video_waits_in_the_triggerer(
    airflow: LocalDeployment, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    text_to_video_defers_to_the_triggerer(airflow, emulator, tmp_path, label="LocalExecutor")


@pytest.mark.timeout(900)
def test_twenty_generations_on_two_worker_slots_survive_a_triggerer_restart(
    airflow: LocalDeployment, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """All 20 rows are deferred at once on 2 worker slots; the only triggerer is stopped and started
    again; every generation completes, resumed by the new triggerer, with one POST each."""
    backfill = BackfillRun(airflow, emulator, tmp_path)
    backfill.start()
    all_deferred = backfill.wait_until_all_deferred()
    old_job = airflow.job_ids["triggerer-1"]
    assert all_deferred.in_flight == 20

    stopping = time.monotonic()
    airflow.stop_component("triggerer-1")
    stopped = time.monotonic()
    # While no triggerer runs, nothing asks the API about the generations: they wait in the database.
    gets_before, gets_after = backfill.quiet_gets(5.0)
    assert gets_after == gets_before
    restarting = time.monotonic()
    airflow.start_triggerer("triggerer-1")
    ready = time.monotonic()
    new_job = airflow.job_ids["triggerer-1"]
    assert new_job != old_job
    resumed = backfill.watch.until(
        lambda s: s.status_gets > gets_after, timeout=60, what="the restarted triggerer polled the API"
    )
    first_poll = backfill.watch.started + resumed.at

    backfill.finish(slots=WORKER_SLOTS)
    # Every generation's trigger ran first in the old triggerer, then in the new one.
    assert set(map(tuple, backfill.triggerer_jobs_by_task().values())) == {(old_job, new_job)}
    for index in range(20):
        log = airflow.trigger_log("example_infinityblue_prompt_backfill", backfill.run_id, "generate", new_job, index)
        assert "Trigger fired event" in log
    summarise(
        "LocalExecutor backfill + triggerer restart",
        backfill.notes,
        all_20_deferred_at=f"{all_deferred.at:.0f} s",
        triggerer_stopped_in=f"{stopped - stopping:.1f} s",
        status_gets_during_5s_outage=gets_after - gets_before,
        new_triggerer_ready_in=f"{ready - restarting:.1f} s",
        first_status_get_after_ready=f"{first_poll - ready:.1f} s",
        triggers_back_within=f"{first_poll - stopping:.1f} s of the stop",
        triggerer_jobs=f"{old_job} -> {new_job}",
    )


@pytest.mark.timeout(420)
def test_a_lost_worker_is_retried_without_a_second_post(airflow: LocalDeployment, emulator: EmulatorHandle) -> None:
    """SIGKILL the worker (the task's supervisor and the task process) while it polls, after its POST.

    The scheduler notices the missing heartbeats and retries the task; the retry finds the generation
    id in the task state store and re-attaches to it instead of paying for a new one.
    """
    emulator.reset()
    emulator.configure(generation_seconds=40)
    api = airflow.api
    run_id = api.trigger(WORKER_LOSS)
    watch = RunWatch(airflow, emulator, WORKER_LOSS, run_id)
    posted = watch.until(lambda s: posts(s.emulator) == 1, timeout=120, what="the generation was submitted")
    task = api.task_instance(WORKER_LOSS, run_id, "generate_on_worker")
    assert task["state"] == "running"
    assert task["try_number"] == 1
    task_pid = wait_until(
        lambda: api.task_instance(WORKER_LOSS, run_id, "generate_on_worker")["pid"], timeout=30, what="the task's pid"
    )
    assert isinstance(task_pid, int)
    supervisor_pid = parent_of(task_pid)
    assert supervisor_pid is not None
    # Both run under the scheduler: the LocalExecutor's worker process supervises the task process.
    assert {task_pid, supervisor_pid} <= set(descendants_of(airflow.components["scheduler"].pid))
    killed_at = time.monotonic()
    for pid in (supervisor_pid, task_pid):
        os.kill(pid, signal.SIGKILL)

    retried = watch.until(
        lambda _: api.task_instance(WORKER_LOSS, run_id, "generate_on_worker")["try_number"] == 2,
        timeout=120,
        what="the scheduler noticed the lost worker and retried the task",
    )
    detected_in = time.monotonic() - killed_at
    assert watch.until_finished(timeout=180) == "success"
    tries = api.tries(WORKER_LOSS, run_id, "generate_on_worker")
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "success")]
    generation_id = api.xcom(WORKER_LOSS, run_id, "generate_on_worker", key="infinityblue_task_id")
    assert api.xcom(WORKER_LOSS, run_id, "generate_on_worker") == f"{emulator.url}/videos/{generation_id}.mp4"
    retry_log = airflow.task_log(WORKER_LOSS, run_id, "generate_on_worker", try_number=2)
    assert "Reconnecting to existing job" in retry_log
    assert generation_id in retry_log
    stats = emulator.stats()
    assert posts(stats) == 1, stats
    assert stats["submissions"] == 1, stats
    summarise(
        "LocalExecutor worker SIGKILLed after its POST",
        [f"POST seen at {posted.at:.1f} s; killed supervisor {supervisor_pid} + task {task_pid}"],
        loss_detected_and_retry_queued_in=f"{detected_in:.1f} s",
        retry_seen_at=f"{retried.at:.1f} s",
        POSTs=posts(stats),
        submissions=stats["submissions"],
        tries=[(t["try_number"], t["state"]) for t in tries],
    )


@pytest.mark.timeout(420)
def test_a_worker_killed_mid_post_never_pays_twice(airflow: LocalDeployment, emulator: EmulatorHandle) -> None:
    """SIGKILL the worker while its POST waits for an answer: the API has created (and billed) the
    generation, but the task never learned its id.

    The submission record written before the POST is all the retry finds: an unconfirmed submission. With
    the default ``on_lost_generation="fail"`` the retry fails saying so, and sends no second POST.
    """
    emulator.reset()
    emulator.configure(generation_seconds=5, submission_answer_seconds=60)
    api = airflow.api
    run_id = api.trigger(WORKER_LOSS)
    watch = RunWatch(airflow, emulator, WORKER_LOSS, run_id)
    created = watch.until(lambda s: s.emulator["submissions"] == 1, timeout=120, what="the API created the generation")
    task_pid = wait_until(
        lambda: api.task_instance(WORKER_LOSS, run_id, "generate_on_worker")["pid"], timeout=30, what="the task's pid"
    )
    supervisor_pid = parent_of(task_pid)
    assert supervisor_pid is not None
    for pid in (supervisor_pid, task_pid):
        os.kill(pid, signal.SIGKILL)
    emulator.configure(submission_answer_seconds=0)

    assert watch.until_finished(timeout=240) == "failed"
    tries = api.tries(WORKER_LOSS, run_id, "generate_on_worker")
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "failed")]
    retry_log = airflow.task_log(WORKER_LOSS, run_id, "generate_on_worker", try_number=2)
    assert "never recorded the API's answer" in retry_log
    assert "on_lost_generation=" in retry_log  # the log is JSON: its quotes are escaped
    stats = emulator.stats()
    assert posts(stats) <= 1, stats  # the killed POST may never be answered, so never counted
    assert stats["submissions"] == 1, stats
    summarise(
        "LocalExecutor worker SIGKILLed while its POST awaited the answer",
        [f"generation created at {created.at:.1f} s; killed supervisor {supervisor_pid} + task {task_pid}"],
        submissions=stats["submissions"],
        tries=[(t["try_number"], t["state"]) for t in tries],
    )


def start_batch(
    airflow: LocalDeployment, emulator: EmulatorHandle, tmp_path: Path, rows: int
) -> tuple[str, Path, RunWatch]:
    """Trigger the deployment's batch DAG on ``rows`` prompts (two POSTs a second, ten rows a wave)."""
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(f'{{"key": "clip-{n:02d}", "prompt": "A paper boat, take {n}"}}\n' for n in range(rows)))
    manifest = tmp_path / "manifest.jsonl"
    run_id = airflow.api.trigger(BATCH, conf={"requests_path": str(prompts), "manifest_path": str(manifest)})
    return run_id, manifest, RunWatch(airflow, emulator, BATCH, run_id)


@pytest.mark.timeout(480)
def test_a_batch_worker_killed_mid_wave_is_retried_with_one_post_per_row(
    airflow: LocalDeployment, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """SIGKILL the worker while it submits a batch's first wave.

    The rows it submitted are recorded one key per row in the task state store; the retry re-attaches to
    each of them and submits only the rows no try had sent, so no row is ever paid for twice.
    """
    rows = 30
    emulator.reset()
    emulator.configure(generation_seconds=5)
    api = airflow.api
    run_id, manifest, watch = start_batch(airflow, emulator, tmp_path, rows)
    mid_wave = watch.until(lambda s: s.emulator["submissions"] >= 4, timeout=120, what="the first wave is under way")
    task_pid = wait_until(lambda: api.task_instance(BATCH, run_id, "generate_batch")["pid"], timeout=30, what="pid")
    supervisor_pid = parent_of(task_pid)
    assert supervisor_pid is not None
    for pid in (supervisor_pid, task_pid):
        os.kill(pid, signal.SIGKILL)
    submitted_by_the_killed_try = emulator.stats()["submissions"]
    assert submitted_by_the_killed_try < 10, "the kill must land inside the first wave"

    assert watch.until_finished(timeout=360) == "success"
    tries = api.tries(BATCH, run_id, "generate_batch")
    assert [(t["try_number"], t["state"]) for t in tries] == [(1, "failed"), (2, "success")]
    retry_log = airflow.task_log(BATCH, run_id, "generate_batch", try_number=2)
    assert "Re-attached to" in retry_log
    summary = api.xcom(BATCH, run_id, "generate_batch")
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(entries) == rows
    ids = [entry["generation_id"] for entry in entries if entry["status"] == "succeeded"]
    assert len(ids) == len(set(ids)) == summary["succeeded"] >= rows - 1
    stats = emulator.stats()
    # One POST per row at most: a row re-sent by the retry would push the count past the rows.
    assert stats["submissions"] <= rows, stats
    # The row whose POST the kill cut short is failed as unconfirmed: created at the API, or not.
    assert summary["succeeded"] <= stats["submissions"] <= summary["succeeded"] + summary["failed"], (stats, summary)
    summarise(
        "Batch worker SIGKILLed mid-wave (LocalExecutor)",
        [f"killed after {submitted_by_the_killed_try} POSTs at {mid_wave.at:.1f} s"],
        rows=rows,
        submissions=stats["submissions"],
        summary=summary,
        tries=[(t["try_number"], t["state"]) for t in tries],
    )


@pytest.mark.timeout(480)
def test_a_batch_wave_survives_a_triggerer_restart(
    airflow: LocalDeployment, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """Stop the only triggerer while a batch's wave is deferred, start it again: the new triggerer resumes the
    same wave from the trigger's serialized rows, and every row completes with one POST."""
    rows = 20
    emulator.reset()
    emulator.configure(generation_seconds=15)
    api = airflow.api
    run_id, manifest, watch = start_batch(airflow, emulator, tmp_path, rows)
    watch.until(
        lambda s: s.emulator["submissions"] == 10 and s.count("deferred") == 1,
        timeout=120,
        what="the first wave is deferred",
    )
    old_job = airflow.job_ids["triggerer-1"]
    airflow.stop_component("triggerer-1")
    airflow.start_triggerer("triggerer-1")
    new_job = airflow.job_ids["triggerer-1"]
    assert new_job != old_job

    assert watch.until_finished(timeout=360) == "success"
    assert api.task_instance(BATCH, run_id, "generate_batch")["try_number"] == 1
    resumed = airflow.trigger_log(BATCH, run_id, "generate_batch", triggerer_job_id=new_job)
    assert "Waiting for 10 InfinityBlue generations" in resumed  # the first wave, rebuilt from its serialized rows
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [entry["status"] for entry in entries] == ["succeeded"] * rows
    stats = emulator.stats()
    assert stats["submissions"] == rows, stats
    summarise(
        "Batch wave across a triggerer restart (LocalExecutor)",
        [f"triggerer jobs {old_job} -> {new_job}"],
        rows=rows,
        submissions=stats["submissions"],
        status_gets=status_gets(stats),
    )
