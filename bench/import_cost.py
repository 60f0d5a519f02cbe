"""What importing the provider's hook, operators, sensor and triggers costs a process that already has ``airflow.sdk``.

Run from the repository root::

    PYTHONPATH=. .venv/bin/python bench/import_cost.py          # ~2 min on 2 cores; --help for the knobs

DAG files import the operators on every parse, after ``airflow.sdk``: whatever that import pulls in
beyond ``airflow.sdk`` is paid by each DAG file processor run. Each case runs in a fresh subprocess,
several times (rounds interleave the cases, so a noisy neighbour hits them alike), and the median
``time.process_time()`` of the provider's imports after ``import airflow.sdk`` is the figure. The
children use a private bytecode cache (``PYTHONPYCACHEPREFIX``, filled by a warm-up run first), as a
deployed Airflow has compiled bytecode, and a throw-away ``AIRFLOW_HOME``.

It also says which heavy modules each case newly loads (aiohttp and its dependencies, requests,
urllib3, ...), and runs ``python -X importtime`` on all the modules together to name the top offenders:
the modules loaded after ``airflow.sdk`` with the largest self times (wall clock, median of the runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.packaging.parse_time import HTTP_CLIENTS, PARSE_TIME_MODULES, child_environment

MODULES = PARSE_TIME_MODULES
PREFIX = "airflow_provider_infinityblue."

# Modules that a DAG file parse should not pay for: HTTP clients and their dependencies (not idna or certifi:
# airflow.sdk loads those itself, for httpx), then others worth naming when they appear (Airflow's trigger
# base classes build pydantic models).
HEAVY = [
    *HTTP_CLIENTS,
    "yaml",
    "airflow.triggers.base",
]

CHILD = r"""
import json, sys, time
modules = json.loads(sys.argv[1])
started = time.process_time()
import airflow.sdk
sdk_done = time.process_time()
before = set(sys.modules)
for name in modules:
    __import__(name)
done = time.process_time()
new = set(sys.modules) - before
print(json.dumps({
    "sdk_ms": (sdk_done - started) * 1000,
    "over_ms": (done - sdk_done) * 1000,
    "heavy": [name for name in json.loads(sys.argv[2]) if name in new],
    "new_modules": len(new),
    "new_foreign": len([name for name in new if not name.startswith("airflow_provider_infinityblue")]),
}))
"""


def child_env(pycache: str, airflow_home: str) -> dict[str, str]:
    env = child_environment(pycache, AIRFLOW_HOME=airflow_home)
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    return env


def run_child(modules: list[str], env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(modules), json.dumps(HEAVY)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if result.returncode:
        raise RuntimeError(f"importing {modules} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def importtime(modules: list[str], env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """``-X importtime`` of the modules after airflow.sdk: module -> (self us, cumulative us)."""
    code = "import airflow.sdk\n" + "".join(f"import {name}\n" for name in modules)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, check=True
    )
    times: dict[str, tuple[int, int]] = {}
    after_sdk = False
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|")
        if after_sdk:
            times[name.strip()] = (int(self_us), int(cumulative_us))
        elif name.rstrip() == " airflow.sdk":  # the top-level line: everything after it is ours to pay
            after_sdk = True
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per case (default 5)")
    parser.add_argument("--top", type=int, default=10, help="offenders to name (default 10)")
    parser.add_argument("--budget-ms", type=float, default=30.0, help="the target per case (default 30)")
    args = parser.parse_args()

    started = time.monotonic()
    cases: list[tuple[str, list[str]]] = [("airflow.sdk alone", [])]
    cases += [(name.removeprefix(PREFIX), [name]) for name in MODULES]
    cases.append(("all together", MODULES))

    with tempfile.TemporaryDirectory(prefix="import-cost-") as work:
        home = Path(work, "airflow-home")
        home.mkdir()
        env = child_env(str(Path(work, "pycache")), str(home))
        run_child(MODULES, env)  # warm-up: compiles the bytecode every later run loads
        samples: dict[str, list[dict]] = {label: [] for label, _ in cases}
        for _ in range(args.runs):
            for label, modules in cases:
                samples[label].append(run_child(modules, env))
        runs = [importtime(MODULES, env) for _ in range(args.runs)]

    sdk_ms = statistics.median(s["sdk_ms"] for runs_ in samples.values() for s in runs_)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.runs} runs per case")
    print(f"import airflow.sdk: {sdk_ms:.0f} ms CPU (median over every run)\n")
    header = f"{'module':<28} {'ms CPU over airflow.sdk':>23} {'min':>5} {'max':>5} {'new modules':>11}"
    print(f"{header}  heavy modules loaded")
    for label, _ in cases:
        over = [s["over_ms"] for s in samples[label]]
        last = samples[label][-1]
        print(
            f"{label:<28} {statistics.median(over):>23.1f} {min(over):>5.1f} {max(over):>5.1f}"
            f" {last['new_modules']:>4} ({last['new_foreign']:>3})  {', '.join(last['heavy']) or '-'}"
        )
    print("new modules: what the case added to sys.modules (in brackets: not the provider's own)\n")

    names = set().union(*runs)
    medians = {
        name: tuple(statistics.median(run.get(name, (0, 0))[i] for run in runs) for i in (0, 1)) for name in names
    }
    print(f"top {args.top} self import times after airflow.sdk (-X importtime, wall clock, median of {args.runs}):")
    print(f"  {'self ms':>8} {'cumul. ms':>9}  module")
    for name, (self_us, cumulative_us) in sorted(medians.items(), key=lambda item: -item[1][0])[: args.top]:
        print(f"  {self_us / 1000:>8.1f} {cumulative_us / 1000:>9.1f}  {name}")
    ours = sum(self_us for name, (self_us, _) in medians.items() if name.startswith(PREFIX))
    others = sum(self_us for self_us, _ in medians.values()) - ours
    print(f"  self times in all: the provider's modules {ours / 1000:.1f} ms, others {others / 1000:.1f} ms\n")

    failed = False
    for label, _ in cases[1:]:
        median = statistics.median(s["over_ms"] for s in samples[label])
        clients = sorted({name for s in samples[label] for name in s["heavy"]} & set(HTTP_CLIENTS))
        failed |= median > args.budget_ms or bool(clients)
        print(
            f"{'PASS' if median <= args.budget_ms else 'FAIL'}: {label} {median:.1f} ms (budget {args.budget_ms:g});"
            f" {'FAIL' if clients else 'PASS'}: HTTP client modules loaded: {', '.join(clients) or 'none'}"
        )
    print(f"\nbench took {time.monotonic() - started:.0f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
