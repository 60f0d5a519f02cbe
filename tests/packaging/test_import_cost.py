"""Importing the hook, operators, sensor and triggers stays cheap: DAG files import them on every parse.

Neither HTTP client (aiohttp and its dependencies, requests, urllib3) loads until a request is made; only the
triggers load Airflow's trigger base classes, and only a download the download engine. The CPU time of importing
them all over ``airflow.sdk`` stays within a generous bound, robust on a busy 2-core machine: the 30 ms target
itself is ``bench/import_cost.py``'s to measure.

The interpreters run with a private bytecode cache (``PYTHONPYCACHEPREFIX``), filled by the first one, as a
deployment has compiled bytecode. Which modules each module loads is read in the first interpreter, which
imports ``airflow.sdk`` and forks a child per module. The CPU time is measured in each interpreter itself (forked
children would pay for copying the parent's memory on write, and measure that too), after ``airflow.sdk``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.packaging.parse_time import HTTP_CLIENTS, PARSE_TIME_MODULES, child_environment

MODULES = PARSE_TIME_MODULES
# Only the triggers need Airflow's trigger base classes (pydantic models), only a download the download engine.
TRIGGER_AND_DOWNLOAD_MODULES = [
    "airflow.triggers.base",
    "airflow_provider_infinityblue.download.destinations",
    "airflow_provider_infinityblue.download.safety",
    "airflow_provider_infinityblue.download.transfer",
]
RUNS = 5
BOUND_MS = 60.0

# Imports airflow.sdk, then (with "each") each module in a forked child, for the modules it adds to sys.modules;
# then every module: their CPU time, and the modules they added.
CHILD = r"""
import json, os, sys, time, traceback

import airflow.sdk

modules, fork_each = json.loads(sys.argv[1]), sys.argv[2] == "each"
before = set(sys.modules)


def loaded_by(name):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            __import__(name)
            os.write(write, json.dumps(sorted(set(sys.modules) - before)).encode())
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    if os.waitpid(pid, 0)[1]:
        raise SystemExit(f"importing {name} failed")
    return json.loads(answer)


each = {name: loaded_by(name) for name in modules} if fork_each else None
started = time.process_time()
for name in modules:
    __import__(name)
ms = (time.process_time() - started) * 1000
print(json.dumps({"airflow.sdk": sorted(before), "each": each, "ms": ms, "loaded": sorted(set(sys.modules) - before)}))
"""


def run(env: dict[str, str], mode: str) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(MODULES), mode], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    env = child_environment(tmp_path_factory.mktemp("pycache"))
    first = run(env, "each")  # its forked children fill the bytecode cache before it imports every module itself
    with ThreadPoolExecutor(max_workers=2) as pool:  # CPU time, not wall time: two at once changes it little
        return [first, *pool.map(lambda _: run(env, "together"), range(RUNS - 1))]


@pytest.fixture(scope="module")
def loaded(runs: list[dict[str, Any]]) -> dict[str, list[str]]:
    return {"airflow.sdk": runs[0]["airflow.sdk"], **runs[0]["each"]}


def test_airflow_sdk_loads_no_http_client_itself(loaded: dict[str, list[str]]) -> None:
    assert set(HTTP_CLIENTS).isdisjoint(loaded["airflow.sdk"])  # else the tests below would prove nothing


@pytest.mark.parametrize("module", MODULES)
def test_importing_loads_no_http_client(loaded: dict[str, list[str]], module: str) -> None:
    assert set(HTTP_CLIENTS).isdisjoint(loaded[module])


@pytest.mark.parametrize("module", [name for name in MODULES if ".triggers." not in name])
def test_the_hook_operators_and_sensor_load_neither_triggers_nor_the_download_engine(
    loaded: dict[str, list[str]], module: str
) -> None:
    assert set(TRIGGER_AND_DOWNLOAD_MODULES).isdisjoint(loaded[module])


def test_importing_everything_costs_little_cpu_over_airflow_sdk(runs: list[dict[str, Any]]) -> None:
    assert all(set(HTTP_CLIENTS).isdisjoint(run["loaded"]) for run in runs)
    cpu_ms = [run["ms"] for run in runs]
    assert statistics.median(cpu_ms) <= BOUND_MS, f"ms of CPU per run: {cpu_ms}"
