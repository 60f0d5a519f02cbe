"""Watch a DAG run from outside, as an operator would: task instance states through the REST API, and
what the InfinityBlue API (the emulator) saw, sampled together on one timeline.

Tests read their assertions off this timeline: which tasks were deferred and to which triggerer, how
many generations were in flight at the API while how many tasks held a worker slot, and whether status
requests kept coming while a task was deferred.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deploy.processes import DeploymentError

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_infinityblue.testing import EmulatorHandle
    from deploy.deployment import AirflowDeployment

STATUS_ROUTE = "GET /v1/video/generations/{task_id}"
SUBMIT_ROUTE = "POST /v1/video/generations"
TaskKey = tuple[str, int]  # (task_id, map_index)


def status_gets(stats: dict[str, Any]) -> int:
    """Status requests the emulator answered, whatever the answer."""
    return sum(stats["requests"].get(STATUS_ROUTE, {}).values())


def posts(stats: dict[str, Any]) -> int:
    """Submissions the emulator answered, whatever the answer."""
    return sum(stats["requests"].get(SUBMIT_ROUTE, {}).values())


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the watch began
    states: dict[TaskKey, str]
    # For each deferred task: (trigger id, id of the triggerer job that runs it, or None while unassigned).
    triggers: dict[TaskKey, tuple[int, int | None]]
    emulator: dict[str, Any]

    def count(self, state: str, task_id: str | None = None) -> int:
        return sum(1 for (task, _), s in self.states.items() if s == state and task_id in (None, task))

    @property
    def in_flight(self) -> int:
        """Generations the API has accepted and not finished: what a render farm is busy with."""
        tasks = self.emulator["tasks"]
        return int(tasks["queued"] + tasks["in_progress"])

    @property
    def status_gets(self) -> int:
        return status_gets(self.emulator)


@dataclass
class RunWatch:
    """Samples one DAG run every ``interval`` seconds until told to stop."""

    deployment: AirflowDeployment
    emulator: EmulatorHandle
    dag_id: str
    run_id: str
    interval: float = 0.5
    samples: list[Sample] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def sample(self) -> Sample:
        states: dict[TaskKey, str] = {}
        triggers: dict[TaskKey, tuple[int, int | None]] = {}
        for ti in self.deployment.api.task_instances(self.dag_id, self.run_id):
            key = (ti["task_id"], ti["map_index"])
            states[key] = ti["state"] or "none"
            if ti["state"] == "deferred" and ti.get("trigger"):
                job = ti.get("triggerer_job")
                triggers[key] = (ti["trigger"]["id"], job["id"] if job else None)
        taken = Sample(time.monotonic() - self.started, states, triggers, self.emulator.stats())
        self.samples.append(taken)
        return taken

    def until(self, condition: Callable[[Sample], bool], *, timeout: float, what: str) -> Sample:
        """Sample until ``condition`` holds; on a timeout, fail with the last sample and the component logs."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self.sample()
            if condition(latest):
                return latest
            if time.monotonic() > deadline:
                raise DeploymentError(
                    f"Timed out after {timeout:g} s waiting until {what} in {self.dag_id} {self.run_id}.\n"
                    f"Last task states: {latest.states}\nEmulator: {latest.emulator}\n"
                    f"{self.deployment.log_tails()}"
                )
            time.sleep(self.interval)

    def until_finished(self, *, timeout: float) -> str:
        """Sample until the run succeeds or fails; answers its state."""
        finished: dict[str, str] = {}

        def done(_: Sample) -> bool:
            state = self.deployment.api.run(self.dag_id, self.run_id)["state"]
            finished["state"] = state
            return state in ("success", "failed")

        self.until(done, timeout=timeout, what="the run finished")
        return finished["state"]

    # -- what the timeline shows ----------------------------------------------------------------

    def peak(self, measure: Callable[[Sample], int]) -> int:
        return max((measure(sample) for sample in self.samples), default=0)

    def deferred_samples(self, key: TaskKey) -> list[Sample]:
        return [sample for sample in self.samples if sample.states.get(key) == "deferred"]

    def triggerer_jobs(self, key: TaskKey) -> list[int]:
        """The triggerer jobs seen running this task's trigger, in order of first sight."""
        seen: list[int] = []
        for sample in self.samples:
            job = sample.triggers.get(key, (0, None))[1]
            if job is not None and job not in seen:
                seen.append(job)
        return seen
