"""A prompt backfill on a real Airflow deployment: mapped single operators against one batch operator.

Run from the repository root::

    PYTHONPATH=. .venv/bin/python bench/backfill.py       # ~20 min on 2 cores; --help for the knobs
    PYTHONPATH=. .venv/bin/python bench/backfill.py --rows 200 --skip-mapped

One emulator process (10 s generations) serves a deployment of real Airflow components on loopback
(``deploy.LocalDeployment``: API server, scheduler with the LocalExecutor and 4 worker slots, DAG
processor, one triggerer). Three runs over the same generated dataset, each capped at 100
generations in flight, polling every 5 s:

(a) ``mapped``: ``InfinityBlueGenerateVideoOperator`` mapped over ``--mapped-rows`` rows, deferrable,
    in a pool of 100 slots that counts deferred tasks;
(b) ``mapped, tuned``: the same, on a second deployment with ``[workers] min_heartbeat_interval = 1``;
(c) ``batch``: one ``InfinityBlueGenerateVideoBatchOperator`` over ``--rows`` rows, ``max_in_flight=100``,
    on the first deployment (default settings).

For each it prints the wall time (the DAG run's start to end date, from the REST API), videos per
minute, task instances, worker runs, triggers, the API requests per video (the emulator's counts)
and the CPU seconds each component used during the run. The baseline is the mapped run measured in
the same bench run: the ratios batch / mapped are the figures to compare across machines. The
acceptance criteria are checked at the end (PASS/FAIL each); the exit status is 1 on any FAIL.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_infinityblue.testing import emulator_process
from deploy.deployment import AirflowDeployment, LocalDeployment
from deploy.processes import descendants_of

if TYPE_CHECKING:
    from airflow_provider_infinityblue.testing import EmulatorHandle

REPO = Path(__file__).parents[1]
BENCH_DAGS = Path(__file__).parent / "dags"
PROMPTS = REPO / "example_dags" / "data" / "prompts.jsonl"
MAPPED_DAG = "bench_backfill_mapped"
BATCH_DAG = "bench_backfill_batch"
POOL = "bench_generations"
WORKER_SLOTS = 4
GENERATION_SECONDS = 10.0
POLL_SECONDS = 5.0
MAX_IN_FLIGHT = 100
SUBMIT_ROUTE = "POST /v1/video/generations"
STATUS_ROUTE = "GET /v1/video/generations/{task_id}"
TUNED = {"workers": {"min_heartbeat_interval": 1}}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
STYLES = ("photorealistic", "watercolor", "35mm film", "claymation", "anime", "noir", "tilt-shift", "pixel art")


def write_dataset(path: Path, count: int) -> None:
    """The first ``count`` rows of the shipped prompts x styles x seeds, as JSONL (20 x 8 x as many seeds as needed)."""
    prompts = [json.loads(line) for line in PROMPTS.read_text().splitlines() if line.strip()]
    with path.open("w") as out:
        for number in range(count):
            prompt = prompts[number % len(prompts)]
            style = STYLES[(number // len(prompts)) % len(STYLES)]
            seed = number // (len(prompts) * len(STYLES))
            row = {
                "key": f"{number:05d}",
                "prompt": f"{prompt['prompt']}, {style}",
                "model": prompt["model"],
                "duration": prompt["duration"],
                "seed": seed,
            }
            out.write(json.dumps(row) + "\n")


# -- CPU time, from /proc ------------------------------------------------------------------------


def _cpu_fields(pid: int) -> tuple[int, int] | None:
    """``(utime + stime, cutime + cstime)`` of one process in clock ticks, or None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


@dataclass(frozen=True)
class Cpu:
    """CPU seconds of one process (``own``) and of its whole tree (``tree``), as of one moment."""

    own: float
    tree: float

    def __sub__(self, other: Cpu) -> Cpu:
        return Cpu(self.own - other.own, self.tree - other.tree)


def cpu_of(pid: int) -> Cpu:
    """The process's own CPU time, and its tree's: every live process below it (its own time and what it
    reaped), plus what the root reaped. A child that exits is reaped by its parent, whose ``cutime`` then
    holds it: the tree's total stays whole as long as the tree reaps its own (Airflow's components do)."""
    root = _cpu_fields(pid)
    if root is None:
        return Cpu(0.0, 0.0)
    total = root[0] + root[1]
    for child in descendants_of(pid):
        fields = _cpu_fields(child)
        if fields is not None:
            total += fields[0] + fields[1]
    return Cpu(root[0] / CLOCK_TICKS, total / CLOCK_TICKS)


def cpu_snapshot(deployment: AirflowDeployment, emulator: EmulatorHandle) -> dict[str, Cpu]:
    snapshot = {name: cpu_of(process.pid) for name, process in deployment.components.items()}
    assert emulator.pid is not None
    snapshot["emulator"] = cpu_of(emulator.pid)
    return snapshot


# -- one run ------------------------------------------------------------------------------------


@dataclass
class Measured:
    label: str
    rows: int
    state: str
    wall: float
    task_instances: int
    tries: int
    deferrals: int
    posts: int
    gets: int
    cpu: dict[str, Cpu]
    notes: list[str] = field(default_factory=list)

    @property
    def per_minute(self) -> float:
        return self.rows / self.wall * 60

    @property
    def worker_runs(self) -> int:
        """Every execution on a worker: one per try, plus one resume per deferral."""
        return self.tries + self.deferrals

    def cpu_line(self) -> str:
        scheduler = self.cpu.get("scheduler", Cpu(0, 0))
        parts = [
            f"scheduler {scheduler.own:.0f}",
            f"workers {scheduler.tree - scheduler.own:.0f}",
            f"triggerer {self.cpu.get('triggerer-1', Cpu(0, 0)).tree:.0f}",
            f"api-server {self.cpu.get('api-server', Cpu(0, 0)).tree:.0f}",
            f"dag-processor {self.cpu.get('dag-processor', Cpu(0, 0)).tree:.0f}",
            f"emulator {self.cpu.get('emulator', Cpu(0, 0)).own:.0f}",
        ]
        total = sum(value.tree for value in self.cpu.values())
        return ", ".join(parts) + f"; all {total:.0f}"


def _parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _task_logs(deployment: AirflowDeployment, dag_id: str, run_id: str) -> list[Path]:
    folder = deployment.task_logs / f"dag_id={dag_id}" / f"run_id={run_id}"
    return sorted(path for path in folder.rglob("attempt=*.log") if path.name.endswith(".log"))


def all_task_instances(deployment: AirflowDeployment, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of the run, page by page (the API answers at most 100 at a time)."""
    found: list[dict[str, Any]] = []
    while True:
        page = deployment.api.request(
            "GET", f"/dags/{dag_id}/dagRuns/{quote(run_id)}/taskInstances", params={"limit": 100, "offset": len(found)}
        )["task_instances"]
        found += page
        if not page or len(found) >= 100_000:
            return found


def run_once(
    label: str,
    deployment: AirflowDeployment,
    emulator: EmulatorHandle,
    dag_id: str,
    conf: dict[str, Any],
    rows: int,
) -> Measured:
    api = deployment.api
    emulator.reset()
    before = cpu_snapshot(deployment, emulator)
    print(f"[{time.strftime('%H:%M:%S')}] {label}: {rows} rows ...", flush=True)
    run_id = api.trigger(dag_id, conf=conf)
    run = deployment.wait_for_run(dag_id, run_id, timeout=max(1800.0, rows * 6.0))
    after = cpu_snapshot(deployment, emulator)
    stats = emulator.stats()["requests"]
    instances = all_task_instances(deployment, dag_id, run_id)
    logs = _task_logs(deployment, dag_id, run_id)
    deferrals = sum(path.read_text(errors="replace").count("Pausing task as DEFERRED") for path in logs)
    measured = Measured(
        label=label,
        rows=rows,
        state=run["state"],
        wall=_parse_time(run["end_date"]) - _parse_time(run["start_date"]),
        task_instances=len(instances),
        tries=sum(int(ti["try_number"]) for ti in instances),
        deferrals=deferrals,
        posts=sum(stats.get(SUBMIT_ROUTE, {}).values()),
        gets=sum(stats.get(STATUS_ROUTE, {}).values()),
        cpu={name: after[name] - before.get(name, Cpu(0, 0)) for name in after},
    )
    if dag_id == BATCH_DAG:
        measured.notes = wave_breakdown(deployment, run_id)
    print(f"[{time.strftime('%H:%M:%S')}] {label}: {run['state']} in {measured.wall:.0f} s", flush=True)
    return measured


_STAMP = re.compile(r'"timestamp":\s*"([^"]+)"|^\[?(\d{4}-\d\d-\d\dT[\d:.]+(?:Z|[+-]\d\d:?\d\d)?)')


def _log_events(path: Path) -> list[tuple[float, str]]:
    """``(time, event text)`` of each line of a task or trigger log (JSON lines, or text with a leading ISO time)."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            match = _STAMP.search(line)
            if match:
                events.append((_parse_time(match.group(1) or match.group(2)), line))
            continue
        if isinstance(record, dict) and "timestamp" in record:
            events.append((_parse_time(str(record["timestamp"])), str(record.get("event", ""))))
    return events


def wave_breakdown(deployment: AirflowDeployment, run_id: str) -> list[str]:
    """Per worker run of the batch, from its task log: when it started, how long it ran (of which
    submitting), and how long it then waited deferred until the next run started (the trigger's wait for
    ``refill_at`` rows, plus the hand-over: event, scheduler, executor, worker start)."""
    folder = deployment.task_logs / f"dag_id={BATCH_DAG}" / f"run_id={run_id}" / "task_id=generate_all"
    task_log = folder / "attempt=1.log"
    if not task_log.exists():
        return [f"(no task log at {task_log})"]
    runs: list[dict[str, Any]] = []
    for at, text in _log_events(task_log):
        if text.startswith("::group::Pre Execute"):
            runs.append({"start": at, "first_post": None, "submitted": "", "end": None, "wave": ""})
        elif runs and text.startswith("Submitting InfinityBlue generation") and runs[-1]["first_post"] is None:
            runs[-1]["first_post"] = at
        elif runs and text.startswith("Submitted "):
            runs[-1]["submitted"], runs[-1]["submitted_at"] = text, at
        elif runs and text.startswith("Wave: "):
            runs[-1]["wave"] = text
        elif runs and (text.startswith("Pausing task as DEFERRED") or text.startswith("Batch finished")):
            runs[-1]["end"] = at
    notes = ["run  starts  ran   (start->1st POST, POSTing)  then deferred   submitted / wave"]
    origin = runs[0]["start"] if runs else 0.0
    for number, run in enumerate(runs, start=1):
        ran = (run["end"] or run["start"]) - run["start"]
        to_post = f"{run['first_post'] - run['start']:4.1f}" if run["first_post"] else "   -"
        posting = "   -"
        if run["first_post"] and run["submitted"]:
            posting = f"{run['submitted_at'] - run['first_post']:4.1f}"
        waited = f"{runs[number]['start'] - run['end']:5.1f} s" if number < len(runs) and run["end"] else "      -"
        what = (run["submitted"].split(" (")[0] + "; " if run["submitted"] else "") + run["wave"].split(";")[0]
        notes.append(
            f"{number:3d} {run['start'] - origin:6.1f} {ran:5.1f} s ({to_post} s, {posting} s)"
            f"        {waited}     {what}"
        )
    gaps = [runs[i + 1]["start"] - runs[i]["end"] for i in range(len(runs) - 1) if runs[i]["end"]]
    if gaps:
        notes.append(f"deferred between runs: mean {sum(gaps) / len(gaps):.1f} s, total {sum(gaps):.0f} s")
    return notes


# -- the bench ----------------------------------------------------------------------------------


def deployment_for(home: Path, emulator: EmulatorHandle, options: argparse.Namespace, **extra: Any) -> LocalDeployment:
    settings: dict[str, Any] = {
        "home": home,
        "dag_folders": {"bench": BENCH_DAGS},
        "parallelism": WORKER_SLOTS,
        "triggerers": 1,
        "environment": {
            "AIRFLOW_CONN_INFINITYBLUE_DEFAULT": emulator.airflow_connection(),
            "BENCH_POLL_SECONDS": str(POLL_SECONDS),
            "BENCH_POOL": POOL,
            "BENCH_MAX_IN_FLIGHT": str(MAX_IN_FLIGHT),
        },
        **extra,
    }
    if options.database is not None:
        settings["database"] = options.database
    deployment = LocalDeployment(**settings)
    return deployment


def prepare(deployment: AirflowDeployment) -> None:
    deployment.api.set_pool(POOL, MAX_IN_FLIGHT, include_deferred=True, description="bench: generations in flight")
    for dag_id in (MAPPED_DAG, BATCH_DAG):
        deployment.api.wait_for_dag(dag_id)
        deployment.api.unpause(dag_id)


def report(results: list[Measured]) -> None:
    print()
    header = f"{'run':16} {'rows':>5} {'wall s':>7} {'videos/min':>10} {'TIs':>5} {'worker runs':>11} {'triggers':>8}"
    print(header + f" {'POST/video':>10} {'GET/video':>9}")
    for result in results:
        print(
            f"{result.label:16} {result.rows:5d} {result.wall:7.0f} {result.per_minute:10.1f} "
            f"{result.task_instances:5d} {result.worker_runs:11d} {result.deferrals:8d} "
            f"{result.posts / result.rows:10.2f} {result.gets / result.rows:9.2f}"
        )
    print("\nCPU seconds during each run:")
    for result in results:
        print(f"  {result.label:16} {result.cpu_line()}")
    for result in results:
        if result.notes:
            print(f"\n{result.label}, per wave:")
            for note in result.notes:
                print(f"  {note}")


def check(results: dict[str, Measured], rows: int) -> bool:
    batch = results["batch"]
    waves = math.ceil(rows / MAX_IN_FLIGHT)
    ideal = waves * GENERATION_SECONDS
    get_cap = math.ceil(GENERATION_SECONDS / POLL_SECONDS) + 2
    criteria: list[tuple[str, bool | None]] = [
        ("batch run succeeded", batch.state == "success"),
        (
            f"batch wall {batch.wall:.0f} s <= 2 x ideal ({waves} waves x {GENERATION_SECONDS:g} s = {ideal:g} s)",
            batch.wall <= 2 * ideal,
        ),
        (f"exactly 1 POST per row ({batch.posts} POSTs for {rows} rows)", batch.posts == rows),
        (f"<= {get_cap} GETs per row ({batch.gets / rows:.2f})", batch.gets <= get_cap * rows),
    ]
    mapped, tuned = results.get("mapped"), results.get("mapped, tuned")
    ratio = f"{batch.per_minute / mapped.per_minute:.1f}" if mapped else "-"
    criteria.append(
        (
            f"batch throughput >= 5 x mapped (ratio {ratio})",
            None if mapped is None else batch.per_minute >= 5 * mapped.per_minute,
        )
    )
    ratio = f"{batch.per_minute / tuned.per_minute:.1f}" if tuned else "-"
    criteria.append(
        (
            f"batch throughput > tuned mapped (ratio {ratio})",
            None if tuned is None else batch.per_minute > tuned.per_minute,
        )
    )
    for name in ("mapped", "mapped, tuned"):
        if name in results:
            criteria.append((f"{name} run succeeded", results[name].state == "success"))
    print()
    for text, passed in criteria:
        print(f"{'SKIP' if passed is None else 'PASS' if passed else 'FAIL'}: {text}")
    return all(passed is not False for _, passed in criteria)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1000, help="rows of the batch run")
    parser.add_argument("--mapped-rows", type=int, default=300, help="rows of each mapped run")
    parser.add_argument("--skip-mapped", action="store_true", help="run only the batch")
    parser.add_argument("--keep", action="store_true", help="keep the deployments' homes (logs) afterwards")
    has_database = "database" in inspect.signature(AirflowDeployment.__init__).parameters
    parser.add_argument(
        "--database",
        choices=("postgresql", "sqlite"),
        default=None,
        help="the metadata DB (default: the harness's default)"
        + ("" if has_database else "; this harness has only SQLite"),
    )
    options = parser.parse_args()
    if options.database is not None and not has_database:
        parser.error("this deployment harness has no database choice yet (SQLite only)")

    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="infinityblue-bench-backfill-"))
    dataset = workdir / "prompts.jsonl"
    write_dataset(dataset, max(options.rows, 0 if options.skip_mapped else options.mapped_rows))
    database = options.database or ("the harness's default" if has_database else "sqlite")
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"metadata DB: {database}; LocalExecutor, {WORKER_SLOTS} worker slots, 1 triggerer; "
        f"generations {GENERATION_SECONDS:g} s, poll {POLL_SECONDS:g} s, {MAX_IN_FLIGHT} in flight at most"
    )
    print(f"work folder: {workdir}")
    results: dict[str, Measured] = {}
    mapped_conf = {"requests_path": str(dataset), "rows": options.mapped_rows}
    try:
        with emulator_process(generation_seconds=GENERATION_SECONDS) as emulator:
            with deployment_for(workdir / "airflow-default", emulator, options) as deployment:
                prepare(deployment)
                if not options.skip_mapped:
                    results["mapped"] = run_once(
                        "mapped",
                        deployment,
                        emulator,
                        MAPPED_DAG,
                        mapped_conf,
                        options.mapped_rows,
                    )
                results["batch"] = run_once(
                    "batch",
                    deployment,
                    emulator,
                    BATCH_DAG,
                    {"requests_path": str(dataset), "manifest_path": str(workdir / "manifest.jsonl")},
                    options.rows,
                )
            if not options.skip_mapped:
                with deployment_for(workdir / "airflow-tuned", emulator, options, config=TUNED) as deployment:
                    prepare(deployment)
                    results["mapped, tuned"] = run_once(
                        "mapped, tuned",
                        deployment,
                        emulator,
                        MAPPED_DAG,
                        mapped_conf,
                        options.mapped_rows,
                    )
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    order = [name for name in ("mapped", "mapped, tuned", "batch") if name in results]
    report([results[name] for name in order])
    print(
        "\nworkers = the scheduler's process tree minus the scheduler process: the LocalExecutor's worker processes "
        "(each a task supervisor) and the task processes they fork. triggerer, api-server, dag-processor: each "
        "component's process tree. emulator: its one process. 'all' sums every tree and the emulator."
    )
    batch = results["batch"]
    for name in ("mapped", "mapped, tuned"):
        if name in results:
            print(f"ratio batch / {name} videos per minute: {batch.per_minute / results[name].per_minute:.1f}")
    passed = check(results, options.rows)
    print(f"\nbench took {time.monotonic() - started:.0f} s")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
