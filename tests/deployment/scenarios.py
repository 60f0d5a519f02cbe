"""What the deployment tests do to a running Airflow, whatever its executor, and what they check.

Each scenario triggers an example DAG through the REST API, watches it (``observe.RunWatch``) and
asserts what a user would see: the run's state, the XComs, the files, and at the InfinityBlue API
how many generations were paid for.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.deployment.observe import RunWatch, Sample, posts

if TYPE_CHECKING:
    from airflow_provider_infinityblue.testing import EmulatorHandle
    from deploy.deployment import AirflowDeployment

REPO = Path(__file__).parents[2]
SAMPLE_MP4 = REPO / "airflow_provider_infinityblue" / "emulator" / "sample.mp4"
TEXT_TO_VIDEO = "example_infinityblue_text_to_video"
BACKFILL = "example_infinityblue_prompt_backfill"
WORKER_LOSS = "infinityblue_deployment_worker_loss"
BATCH = "infinityblue_deployment_batch"
BACKFILL_ROWS = 20
BACKFILL_POOL = "infinityblue_generations"
# Long enough that the last of the 20 generations is submitted before the first one finishes: on two
# cores and two worker slots all 20 are submitted and deferred within about 55 s; twice that, for margin.
BACKFILL_GENERATION_SECONDS = 120
# What the test tier measured, printed at the end of the pytest run (see conftest.py).
OBSERVATIONS: list[str] = []


def prepare(deployment: AirflowDeployment) -> None:
    """Wait for the DAGs, unpause the unscheduled ones, and create the pool the backfill example asks for.

    The daily text-to-video DAG stays paused until its test: unpaused, it would start a scheduled run
    of its own (and pay for a generation) at once.
    """
    for dag_id in (TEXT_TO_VIDEO, BACKFILL, WORKER_LOSS, BATCH):
        deployment.api.wait_for_dag(dag_id)
    for dag_id in (BACKFILL, WORKER_LOSS, BATCH):
        deployment.api.unpause(dag_id)
    # As the example's docstring says, with a slot per row: deferred generations hold their slot.
    deployment.api.set_pool(
        BACKFILL_POOL, BACKFILL_ROWS, include_deferred=True, description="InfinityBlue generations in flight"
    )


def text_to_video_defers_to_the_triggerer(
    deployment: AirflowDeployment, emulator: EmulatorHandle, output_dir: Path, label: str
) -> None:
    """The daily example end to end: submitted on a worker, waited for in a triggerer, downloaded."""
    emulator.reset()
    # Over 10 s: a deferral that resumes within a few seconds can race the scheduler's handling of the
    # worker's exit and be marked failed (an Airflow 3.3.2 race, seen with 3 s generations).
    emulator.configure(generation_seconds=12)
    api = deployment.api
    # Today's run, triggered by hand with a conf before the DAG is unpaused: the scheduler then finds a
    # run for that date and starts no second one. (Its templates need a logical date: `ds`.)
    logical_date = api.wait_for_dag(TEXT_TO_VIDEO)["next_dagrun_logical_date"]
    run_id = api.trigger(TEXT_TO_VIDEO, conf={"output_dir": str(output_dir)}, logical_date=logical_date)
    api.unpause(TEXT_TO_VIDEO)
    watch = RunWatch(deployment, emulator, TEXT_TO_VIDEO, run_id)
    assert watch.until_finished(timeout=240) == "success", api.task_instances(TEXT_TO_VIDEO, run_id)

    generation_id = api.xcom(TEXT_TO_VIDEO, run_id, "generate", key="infinityblue_task_id")
    video_url = api.xcom(TEXT_TO_VIDEO, run_id, "generate")
    assert video_url == f"{emulator.url}/videos/{generation_id}.mp4"
    assert api.xcom(TEXT_TO_VIDEO, run_id, "generate", key="video_url") == video_url
    downloaded = Path(api.xcom(TEXT_TO_VIDEO, run_id, "download"))
    assert downloaded.parent == output_dir / "text_to_video"
    assert downloaded.read_bytes() == SAMPLE_MP4.read_bytes()

    # The task went through `deferred`, with a trigger that a triggerer process of this deployment ran...
    key = ("generate", -1)
    deferred = watch.deferred_samples(key)
    assert deferred, f"`generate` was never seen deferred: {[s.states for s in watch.samples]}"
    triggerer_jobs = watch.triggerer_jobs(key)
    assert len(triggerer_jobs) == 1
    assert triggerer_jobs[0] in {deployment.job_ids[name] for name in deployment.components if "triggerer" in name}
    # ...and whose log that triggerer wrote: the trigger polled and fired there, not inline in a worker.
    trigger_log = deployment.trigger_log(TEXT_TO_VIDEO, run_id, "generate", triggerer_jobs[0])
    assert f"InfinityBlue generation {generation_id} is completed" in trigger_log
    assert "Trigger fired event" in trigger_log
    # The API kept being asked for the status while the task was deferred, i.e. held no worker slot.
    gets_while_deferred = deferred[-1].status_gets - deferred[0].status_gets
    assert gets_while_deferred >= 3
    stats = emulator.stats()
    assert stats["submissions"] == 1
    assert posts(stats) == 1
    OBSERVATIONS.append(
        f"{label} text_to_video: success in {watch.samples[-1].at:.0f} s; deferred for "
        f"{deferred[-1].at - deferred[0].at:.1f} s to triggerer job {triggerer_jobs[0]}, "
        f"{gets_while_deferred} status GETs seen meanwhile; POSTs {posts(stats)}, submissions {stats['submissions']}"
    )


@dataclass
class BackfillRun:
    """The prompt backfill example (20 mapped generations) in a deployment, watched from outside."""

    deployment: AirflowDeployment
    emulator: EmulatorHandle
    output_dir: Path
    run_id: str = ""
    watch: RunWatch = field(init=False)
    notes: list[str] = field(default_factory=list)

    def start(self) -> None:
        self.emulator.reset()
        self.emulator.configure(generation_seconds=BACKFILL_GENERATION_SECONDS)
        self.run_id = self.deployment.api.trigger(BACKFILL, conf={"output_dir": str(self.output_dir)})
        self.watch = RunWatch(self.deployment, self.emulator, BACKFILL, self.run_id)

    def wait_until_all_deferred(self) -> Sample:
        """Until all 20 generations wait in a triggerer, each trigger assigned to a triggerer job."""
        return self.watch.until(
            lambda s: (
                s.count("deferred", "generate") == BACKFILL_ROWS
                and sum(1 for (task, _), (_, job) in s.triggers.items() if task == "generate" and job) == BACKFILL_ROWS
            ),
            timeout=240,
            what=f"all {BACKFILL_ROWS} generations were deferred to a triggerer",
        )

    def finish(self, *, slots: int) -> None:
        """Wait for the run and check it as its user would; then what the timeline shows about slots."""
        api = self.deployment.api
        state = self.watch.until_finished(timeout=480)
        assert state == "success", self.watch.samples[-1].states
        generate = [ti for ti in api.task_instances(BACKFILL, self.run_id) if ti["task_id"] == "generate"]
        assert len(generate) == BACKFILL_ROWS
        assert {ti["state"] for ti in generate} == {"success"}
        # No retry was needed: each generation was resumed where it was, by whichever triggerer.
        assert {ti["try_number"] for ti in generate} == {1}
        # Exactly one paid submission per row.
        stats = self.emulator.stats()
        assert stats["submissions"] == BACKFILL_ROWS, stats
        assert posts(stats) == BACKFILL_ROWS, stats
        assert stats["tasks"]["completed"] == BACKFILL_ROWS, stats
        generation_ids = [
            api.xcom(BACKFILL, self.run_id, "generate", key="infinityblue_task_id", map_index=index)
            for index in range(BACKFILL_ROWS)
        ]
        assert len(set(generation_ids)) == BACKFILL_ROWS
        manifest = Path(api.xcom(BACKFILL, self.run_id, "write_manifest"))
        with manifest.open() as rows:
            listed = list(csv.DictReader(rows))
        assert [row["infinityblue_task_id"] for row in listed] == generation_ids
        assert all(Path(row["file"]).read_bytes() == SAMPLE_MP4.read_bytes() for row in listed)

        # Worker slots: never more than `slots` tasks ran at once, yet all 20 generations were in
        # flight at the API at the same time: deferred tasks hold no worker slot.
        peak_running = self.watch.peak(lambda s: s.count("running"))
        peak_deferred = self.watch.peak(lambda s: s.count("deferred", "generate"))
        peak_in_flight = self.watch.peak(lambda s: s.in_flight)
        assert peak_running <= slots
        assert peak_in_flight == BACKFILL_ROWS > slots
        self.notes.insert(
            0,
            f"success in {self.watch.samples[-1].at:.0f} s; peak generations in flight at the API "
            f"{peak_in_flight}, peak deferred {peak_deferred}, peak running task instances {peak_running} "
            f"on {slots} worker slots; POSTs {posts(stats)}, submissions {stats['submissions']}, all try 1",
        )

    def triggerer_jobs_by_task(self) -> dict[int, list[int]]:
        """For each mapped generation, the triggerer jobs seen running its trigger, in order."""
        return {index: self.watch.triggerer_jobs(("generate", index)) for index in range(BACKFILL_ROWS)}

    def quiet_gets(self, seconds: float) -> tuple[int, int]:
        """Status GETs at the API before and after ``seconds`` of waiting."""
        before = self.watch.sample().status_gets
        time.sleep(seconds)
        return before, self.watch.sample().status_gets


def summarise(label: str, notes: list[str], **numbers: Any) -> None:
    details = ", ".join(f"{name} {value}" for name, value in numbers.items())
    OBSERVATIONS.append(f"{label}: {'; '.join(notes)}{'; ' + details if details else ''}")
