"""The example DAGs on a distributed deployment: the CeleryExecutor with a Redis broker, two Celery
workers (one slot each) and two triggerers, one of which is killed mid-run.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from deploy.deployment import CeleryDeployment
from tests.deployment.conftest import WORKER_SLOTS, deployment_settings, ensure_redis_server
from tests.deployment.scenarios import (
    BACKFILL,
    BACKFILL_ROWS,
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

TRIGGERERS = ("triggerer-1", "triggerer-2")


@pytest.fixture(scope="module")
def airflow(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryDeployment]:
    ensure_redis_server()
    home = tmp_path_factory.mktemp("airflow-celery")
    # Two workers with one slot each: as many worker slots as the LocalExecutor deployment has.
    with CeleryDeployment(
        **deployment_settings(emulator, home), celery_workers=WORKER_SLOTS, worker_concurrency=1, triggerers=2
    ) as deployment:
        prepare(deployment)
        yield deployment


@pytest.mark.timeout(420)
def test_text_to_video_on_celery_workers(airflow: CeleryDeployment, emulator: EmulatorHandle, tmp_path: Path) -> None:
    text_to_video_defers_to_the_triggerer(airflow, emulator, tmp_path, label="CeleryExecutor")
    # The tasks ran in the Celery workers: the generation, its resumption and the download.
    received = sum(
        airflow.components[name].log_path.read_text().count("execute_workload") for name in ("worker-1", "worker-2")
    )
    assert received >= 3


@pytest.mark.timeout(900)
def test_twenty_generations_survive_losing_one_of_two_triggerers(
    airflow: CeleryDeployment, emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """SIGKILL the triggerer running most of the 20 deferred generations: once its heartbeat is stale,
    the other triggerer takes its triggers over and they finish, with one POST per generation."""
    job_of = {airflow.job_ids[name]: name for name in TRIGGERERS}
    backfill = BackfillRun(airflow, emulator, tmp_path)
    backfill.start()
    all_deferred = backfill.wait_until_all_deferred()
    assert all_deferred.in_flight == BACKFILL_ROWS
    shares = Counter(job for task, (_, job) in all_deferred.triggers.items() if task[0] == "generate" and job)
    victim_job, victim_share = shares.most_common(1)[0]
    victim = job_of[victim_job]
    survivor_job = next(job for job in job_of if job != victim_job)
    moved = {task for task, (_, job) in all_deferred.triggers.items() if job == victim_job}

    killing = time.monotonic()
    airflow.kill_component(victim)
    taken_over = backfill.watch.until(
        lambda s: all(s.triggers.get(task, (0, survivor_job))[1] == survivor_job for task in moved),
        timeout=120,
        what=f"triggerer job {survivor_job} took over the triggers of the killed job {victim_job}",
    )
    takeover = backfill.watch.started + taken_over.at - killing

    backfill.finish(slots=WORKER_SLOTS)
    # The killed triggerer's generations finished in the survivor; the others never moved.
    for index, jobs in backfill.triggerer_jobs_by_task().items():
        if ("generate", index) in moved:
            assert jobs == [victim_job, survivor_job]
            log = airflow.trigger_log(BACKFILL, backfill.run_id, "generate", survivor_job, index)
            assert "Trigger fired event" in log
        else:
            assert jobs == [survivor_job]
    summarise(
        "CeleryExecutor backfill, 2 workers x 1 slot, 2 triggerers, one SIGKILLed",
        backfill.notes,
        all_20_deferred_at=f"{all_deferred.at:.0f} s",
        triggers_per_triggerer_job=dict(shares),
        killed=f"{victim} (job {victim_job}, {victim_share} triggers)",
        taken_over_by=f"job {survivor_job} within {takeover:.1f} s of the kill",
    )
