"""Fixtures for the deployment tier: one emulator process and one real Airflow deployment per module.

A deployment takes about half a minute to start on two cores, so each test module starts one and its
tests share it; each test resets the emulator's counts first and triggers runs of its own.
When a test fails, the tail of every component's log is added to its report.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_infinityblue.testing import emulator_process
from deploy.deployment import AirflowDeployment

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_infinityblue.testing import EmulatorHandle

REPO = Path(__file__).parents[2]
DAG_FOLDERS = {"examples": REPO / "example_dags", "deployment": Path(__file__).parent / "dags"}
WORKER_SLOTS = 2
# Short enough to keep the tier fast; the example DAGs read it for their poll interval.
POLL_SECONDS = 1
# How quickly a lost worker or a dead triggerer is noticed. Airflow's defaults (300 s and 30 s) suit
# production; the tests shorten them, with margin for a busy two-core machine.
FAST_FAILURE_DETECTION: dict[str, dict[str, object]] = {
    "scheduler": {
        "task_instance_heartbeat_sec": 3,
        "task_instance_heartbeat_timeout": 20,
        "task_instance_heartbeat_timeout_detection_interval": 2,
    },
    "triggerer": {"job_heartbeat_sec": 3, "triggerer_health_check_threshold": 15},
}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    """The InfinityBlue API for every process of the deployment: a subprocess on 127.0.0.1."""
    # The fixed sample video: the scenarios check each downloaded file byte for byte against it.
    with emulator_process(generation_seconds=5, video="sample") as handle:
        yield handle


def ensure_redis_server() -> None:
    """Install Debian's ``redis-server`` when it is missing (as root, with apt-get); fail clearly when that fails.

    The CeleryExecutor tests need a real broker. Not finding one is a failure, never a skip: a skipped
    distributed tier would pass CI while proving nothing.
    """
    if shutil.which("redis-server"):
        return
    apt_get = shutil.which("apt-get")
    if apt_get is None or os.geteuid() != 0:
        pytest.fail("redis-server is not installed and cannot be installed here: run `apt-get install redis-server`")

    def run_apt_get(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [apt_get, "-q", "-y", *arguments],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            check=False,
        )

    # Package lists may be missing or stale on a fresh machine: refresh them if the first try fails.
    result = run_apt_get("install", "redis-server")
    if result.returncode != 0:
        run_apt_get("update")
        result = run_apt_get("install", "redis-server")
    if result.returncode != 0 or not shutil.which("redis-server"):
        pytest.fail(f"Could not install redis-server with apt-get ({result.returncode}):\n{result.stdout[-2000:]}")


def deployment_settings(emulator: EmulatorHandle, home: Path) -> dict[str, Any]:
    """What both executors' deployments share: DAGs, connection, worker slots, failure detection."""
    return {
        "home": home,
        "dag_folders": DAG_FOLDERS,
        "parallelism": WORKER_SLOTS,
        "environment": {
            "AIRFLOW_CONN_INFINITYBLUE_DEFAULT": emulator.airflow_connection(),
            "INFINITYBLUE_EXAMPLE_POLL_SECONDS": str(POLL_SECONDS),
        },
        "config": FAST_FAILURE_DETECTION,
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        for value in getattr(item, "funcargs", {}).values():
            if isinstance(value, AirflowDeployment):
                report.sections.append((f"Airflow deployment logs (home {value.home})", value.log_tails(lines=60)))
    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print what the deployment tests measured, so that every run (CI included) reports its numbers."""
    from tests.deployment.scenarios import OBSERVATIONS

    if OBSERVATIONS:
        terminalreporter.section("what the deployment tier observed")
        for line in OBSERVATIONS:
            terminalreporter.write_line(line)
