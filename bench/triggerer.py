"""N InfinityBlue triggers in one event loop against the emulator: the shared pool against a session per poll.

Run from the repository root::

    PYTHONPATH=. .venv/bin/python bench/triggerer.py            # ~9 min on 2 cores; --help for the knobs
    PYTHONPATH=. .venv/bin/python bench/triggerer.py --quick    # ~1 min: 1,000 triggers, HTTPS only

The emulator runs as a subprocess pinned to one CPU, its generations queued for days so that
every trigger keeps waiting. The triggers run on the other CPU, as a triggerer runs them: real
``InfinityBlueVideoTrigger`` objects, each ``async for event in trigger.run()`` in a task of one
event loop, the connection given by ``AIRFLOW_CONN_INFINITYBLUE_DEFAULT`` (over HTTPS, its
``ca_bundle`` extra names the emulator's CA). The baseline, in the same run, is a trigger that
opens an ``aiohttp.ClientSession`` for each poll and sleeps ``poll_interval`` between polls (the
dbt Cloud provider's pattern), on the same endpoint with the same ``Authorization`` header.

Each run (a variant, a scheme, a poll interval) is its own child process, started from this one
and so on the same CPU: resident memory never shrinks back to where it was once a run has used it,
so only a fresh process measures the next run's memory, and its garbage collector's work, cleanly.
What a run measures:

- **startup**: from creating the first task until the emulator has answered every trigger's first GET;
- **loop lag**: a task that sleeps 10 ms records how late it wakes, in the startup and steady phases;
  the garbage collector runs as it would (each pause is recorded through ``gc.callbacks``);
- **RSS and tracked objects per waiting trigger**: the process's resident memory
  (``/proc/self/statm``) in the steady phase, and ``len(gc.get_objects())`` once it ends, each
  against the same figure just before the triggers were created, over N;
- **CPU per GET**: this process's CPU time (``time.process_time``) in the steady phase over the
  GETs the emulator answered in it; **connections and TLS handshakes per GET**: the emulator's
  ``/_emulator/stats`` counts over the same phase (its own control calls taken out).

Absolute figures move with the machine and its neighbours; the ratios ours / baseline, measured
in the same run, are the claim. Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import http.client
import json
import math
import os
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable

SERVER_CPU = 0
TRIGGERER_CPU = 1
STATUS_ROUTE = "GET /v1/video/generations/{task_id}"
# Queued for a quarter of this (the emulator's lifecycle): every trigger waits for the whole run, and logs
# its status once, at its first look, as a trigger whose generation sits in the queue does.
GENERATION_SECONDS = 30 * 24 * 3600.0
TICK_SECONDS = 0.010
STARTUP_LIMIT_SECONDS = 90.0
POOL_CAP = 16  # NetworkSettings' default max_connections_per_host, which the connection leaves as it is
POLL_JITTER = 0.1  # the provider's wait.POLL_JITTER: a trigger's first GET comes up to this share of its interval late
PROFILE_VARIABLE = "TRIGGERER_BENCH_PROFILE"
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The acceptance figures (the item for this bench).
MAX_RSS_PER_TRIGGER = {"https": 10 * 1024, "http": 6 * 1024}
MIN_CPU_RATIO = 3.0
MAX_HANDSHAKES_PER_GET = 0.01
MAX_STEADY_LAG_P99 = 0.050
MAX_OBJECTS_PER_TRIGGER = 20
MAX_STARTUP_SECONDS = 3.0
MAX_STARTUP_STALL = 0.100


@dataclass
class RunSpec:
    """One child run: what it runs and against which emulator."""

    variant: str  # "ours" or "baseline"
    scheme: str
    triggers: int
    poll_interval: float
    steady_seconds: float
    url: str
    ca_bundle: str | None
    connection: str
    api_key: str
    ids_path: str
    emulator_pid: int
    result_path: str
    full: bool = True  # False: only the connection counts matter (the --intervals runs)


# -- this process: emulator, submissions, child runs, the table ------------------------------------


def main() -> None:
    options = parse_arguments()
    if options.child:
        run_child(RunSpec(**json.loads(Path(options.child).read_text())))
        return
    started = time.perf_counter()
    raise_open_files_limit()  # before the emulator starts, so that it inherits the limit too
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"{options.triggers:,} triggers, poll {options.poll_interval:g} s, steady phase {options.steady_seconds:g} s"
    )
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as cleanup:
        if options.keep:
            workdir = Path(options.keep)
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-triggerer-")))
        for scheme in options.schemes:
            results += run_scheme(scheme, options, workdir)
    print()
    print_table(results)
    failures = print_checks(results, options)
    print(f"\nbench took {time.perf_counter() - started:.0f} s")
    sys.exit(1 if failures else 0)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triggers", type=int, default=5000, help="triggers in the loop (default 5000)")
    parser.add_argument("--poll-interval", type=float, default=10.0, help="seconds between polls (default 10)")
    parser.add_argument(
        "--steady-seconds", type=float, default=30.0, help="length of the measured steady phase (default 30)"
    )
    schemes = parser.add_mutually_exclusive_group()
    schemes.add_argument("--scheme", choices=("https", "http", "both"), default="both", help="default both")
    schemes.add_argument("--tls", dest="scheme", action="store_const", const="https", help="HTTPS only")
    schemes.add_argument("--plain", dest="scheme", action="store_const", const="http", help="plain HTTP only")
    parser.add_argument(
        "--intervals",
        default="5,30,60",
        help="poll intervals of the extra HTTPS runs of ours that count TLS handshakes per GET ('' for none)",
    )
    parser.add_argument("--skip-baseline", action="store_true", help="run ours only")
    parser.add_argument(
        "--quick", action="store_true", help="1,000 triggers, a 10 s steady phase, HTTPS, interval 5 only"
    )
    parser.add_argument("--keep", metavar="DIR", help="keep each run's log, JSON result and generation ids in DIR")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.quick:
        options.triggers, options.steady_seconds, options.scheme, options.intervals = 1000, 10.0, "https", "5"
    options.schemes = ("https", "http") if options.scheme == "both" else (options.scheme,)
    options.interval_list = [float(text) for text in options.intervals.split(",") if text.strip()]
    return options


def raise_open_files_limit() -> None:
    # The baseline opens a connection per trigger at once: thousands of sockets on each side.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4 * 5000 if hard == resource.RLIM_INFINITY else hard
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# The CPUs this process may use as it starts: once it is pinned, its own affinity no longer says.
CPUS = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()


def pin(pid: int, cpu: int) -> bool:
    """Keep a process on one CPU, when the machine has it; say whether it worked."""
    if cpu not in CPUS:
        return False
    os.sched_setaffinity(pid, {cpu})
    return True


def run_scheme(scheme: str, options: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    from airflow_provider_infinityblue.emulator import emulator_process

    results = []
    with emulator_process(generation_seconds=GENERATION_SECONDS, tls=scheme == "https") as emulator:
        assert emulator.pid is not None
        pinned = pin(emulator.pid, SERVER_CPU) and pin(0, TRIGGERER_CPU)
        print(f"\n[{scheme}] emulator at {emulator.url} pinned to CPU {SERVER_CPU}, triggers to CPU {TRIGGERER_CPU}: "
              f"{pinned}")  # fmt: skip
        ca_bundle = str(emulator.ca_bundle) if emulator.ca_bundle is not None else None
        count = options.triggers
        submitted = time.perf_counter()
        ids = asyncio.run(submit_all(emulator.url, ca_bundle, count))
        print(f"[{scheme}] submitted {len(ids):,} generations in {time.perf_counter() - submitted:.1f} s")
        ids_path = workdir / f"ids-{scheme}.json"
        ids_path.write_text(json.dumps(ids))
        plan = [("ours", options.poll_interval, options.steady_seconds, True)]
        if not options.skip_baseline:
            plan.append(("baseline", options.poll_interval, options.steady_seconds, True))
        if scheme == "https":
            # A phase long enough to hold the second round of polls: the first follows the startup, the
            # next one a poll interval (plus its jitter) later, after connections have sat idle that long.
            plan += [("ours", interval, 1.25 * interval + 5, False) for interval in options.interval_list]
        for variant, interval, steady, full in plan:
            spec = RunSpec(
                variant=variant,
                scheme=scheme,
                triggers=count,
                poll_interval=interval,
                steady_seconds=steady,
                url=emulator.url,
                ca_bundle=ca_bundle,
                connection=emulator.airflow_connection(),
                api_key=emulator.api_key or "sk-emulator-fake-key-0000",
                ids_path=str(ids_path),
                emulator_pid=emulator.pid,
                result_path=str(workdir / f"result-{scheme}-{variant}-{interval:g}.json"),
                full=full,
            )
            results.append(start_child(spec, workdir))
    return results


async def submit_all(url: str, ca_bundle: str | None, count: int, concurrency: int = 32) -> list[str]:
    import aiohttp

    context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else None
    ids: list[str] = []
    numbers = iter(range(count))
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=context if context is not None else True)
    headers = {"Authorization": "Bearer sk-bench-triggerer-0000"}
    async with aiohttp.ClientSession(url, connector=connector, headers=headers) as session:

        async def worker() -> None:
            for number in numbers:
                body = {"model": "kling-v2-5-turbo", "prompt": f"Triggerer bench clip {number}"}
                async with session.post("/v1/video/generations", json=body) as response:
                    response.raise_for_status()
                    ids.append((await response.json())["task_id"])

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


def start_child(spec: RunSpec, workdir: Path) -> dict[str, Any]:
    spec_path = Path(spec.result_path).with_suffix(".spec.json")
    spec_path.write_text(json.dumps(asdict(spec)))
    log_path = Path(spec.result_path).with_suffix(".log")
    label = f"[{spec.scheme}] {spec.variant:8} poll {spec.poll_interval:g} s"
    print(f"{label}: {spec.triggers:,} triggers, steady phase {spec.steady_seconds:g} s ...", flush=True)
    began = time.perf_counter()
    with log_path.open("wb") as log:
        # Airflow logs to stderr (and each trigger logs its first status): to a file, as a triggerer's would.
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(spec_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=spec.steady_seconds + 600,
            check=False,
        )
    if child.returncode != 0:
        tail = log_path.read_text(errors="replace")[-4000:]
        raise RuntimeError(f"{label} failed (exit code {child.returncode}); its log ends:\n{tail}")
    result: dict[str, Any] = json.loads(Path(spec.result_path).read_text())
    print(f"{label}: done in {time.perf_counter() - began:.0f} s; {summary_line(result)}", flush=True)
    return result


def summary_line(result: dict[str, Any]) -> str:
    line = (
        f"startup {fmt_seconds(result['startup_seconds'])}, {result['steady_gets']:,} GETs in the steady phase, "
        f"{result['handshakes_per_get']:.4f} TLS handshakes and {result['connections_per_get']:.4f} connections per GET"
    )
    if result["emulator_busy_steady"] >= 0.9 or result["emulator_busy_startup"] >= 0.9:
        line += (
            f"; EMULATOR-BOUND (its CPU: {result['emulator_busy_startup']:.0%} in the startup, "
            f"{result['emulator_busy_steady']:.0%} in the steady phase)"
        )
    return line


# -- the table and the checks --------------------------------------------------------------------


def fmt_seconds(value: float | None) -> str:
    return "> limit" if value is None else f"{value:.2f} s"


def fmt_ms(value: float) -> str:
    return f"{value * 1000:.1f} ms"


ROWS: list[tuple[str, Callable[[dict[str, Any]], float | None], Callable[[float], str]]] = [
    ("RSS per waiting trigger", lambda r: r["rss_per_trigger"], lambda v: f"{v / 1024:.1f} KB"),
    ("tracked objects per trigger", lambda r: r["objects_per_trigger"], lambda v: f"{v:.1f}"),
    ("CPU per GET (steady)", lambda r: r["cpu_per_get"], lambda v: f"{v * 1e6:.0f} us"),
    ("TCP connections per GET", lambda r: r["connections_per_get"], lambda v: f"{v:.4f}"),
    ("TLS handshakes per GET", lambda r: r["handshakes_per_get"], lambda v: f"{v:.4f}"),
    ("open connections (max)", lambda r: r["open_connections_max"], lambda v: f"{v:.0f}"),
    ("GETs/s (steady)", lambda r: r["steady_gets"] / r["steady_seconds"], lambda v: f"{v:.0f}"),
    ("startup: all first GETs answered", lambda r: r["startup_seconds"], lambda v: f"{v:.2f} s"),
    ("startup: every task created, stepped", lambda r: r["tasks_started_seconds"], lambda v: f"{v:.3f} s"),
    ("loop lag startup p50", lambda r: r["lag"]["startup"]["p50"], fmt_ms),
    ("loop lag startup p99", lambda r: r["lag"]["startup"]["p99"], fmt_ms),
    ("loop lag startup max", lambda r: r["lag"]["startup"]["max"], fmt_ms),
    ("  of it not the collector's", lambda r: r["lag"]["startup"]["max_besides_gc"], fmt_ms),
    ("loop lag steady p50", lambda r: r["lag"]["steady"]["p50"], fmt_ms),
    ("loop lag steady p99", lambda r: r["lag"]["steady"]["p99"], fmt_ms),
    ("loop lag steady max", lambda r: r["lag"]["steady"]["max"], fmt_ms),
    ("  of it not the collector's", lambda r: r["lag"]["steady"]["max_besides_gc"], fmt_ms),
    ("gc gen-2 collections startup/steady", lambda r: None, str),
    ("gc longest pause (startup)", lambda r: r["gc"]["startup"]["max_pause"], fmt_ms),
    ("gc longest pause (steady)", lambda r: r["gc"]["steady"]["max_pause"], fmt_ms),
    ("this process's CPU busy (startup)", lambda r: r["cpu_busy_startup"], lambda v: f"{v:.0%}"),
    ("emulator CPU busy (startup)", lambda r: r["emulator_busy_startup"], lambda v: f"{v:.0%}"),
    ("emulator CPU busy (steady)", lambda r: r["emulator_busy_steady"], lambda v: f"{v:.0%}"),
]


def print_table(results: list[dict[str, Any]]) -> None:
    for scheme in ("https", "http"):
        main = [r for r in results if r["scheme"] == scheme and r["full"]]
        ours = next((r for r in main if r["variant"] == "ours"), None)
        if ours is None:
            continue
        baseline = next((r for r in main if r["variant"] == "baseline"), None)
        print(
            f"{scheme.upper()}, {ours['triggers']:,} triggers, poll {ours['poll_interval']:g} s "
            f"(steady phase {ours['steady_seconds']:g} s):"
        )
        print(f"  {'':37}{'ours':>12}{'baseline':>12}{'ratio':>9}")
        for name, read, show in ROWS:
            if name.startswith("gc gen-2"):
                cells = [gen2_cell(r) for r in (ours, baseline) if r is not None]
                print(f"  {name:37}" + "".join(f"{cell:>12}" for cell in cells))
                continue
            mine = read(ours)
            theirs = read(baseline) if baseline is not None else None
            ratio = ""
            if mine is not None and theirs is not None and mine > 0 and not name.startswith("emulator"):
                ratio = f"{theirs / mine:.1f}x" if theirs >= mine else f"1/{mine / theirs:.1f}x" if theirs else "-"
            cells = [show(value) if value is not None else "-" for value in (mine, theirs)]
            print(f"  {name:37}{cells[0]:>12}{cells[1] if baseline else '':>12}{ratio:>9}")
        reference = ours.get("reference")
        if reference is not None:
            pooled, each = reference["pooled"], reference["session_per_get"]
            print(
                f"  for reference, one GET at a time on an idle loop: bare aiohttp pooled {pooled * 1e6:.0f} us, "
                f"a session per GET {each * 1e6:.0f} us of CPU (ratio {each / pooled:.1f}x)"
            )
        stalls = ", ".join(
            f"{lag * 1000:.0f} ms at {at:.2f} s ({collecting * 1000:.0f} ms of it collecting)"
            for at, lag, collecting in ours["startup_stalls"]
            if lag > 0.05
        )
        print(f"  ours, startup stalls over 50 ms: {stalls or 'none'}")
        print(
            f"  the collector's full pass walks every tracked object: {ours['objects_before']:,} before the triggers, "
            f"{ours['objects_per_trigger'] * ours['triggers']:,.0f} more with them"
        )
        print(
            "  ours, tracked objects per trigger by type:",
            top_types(ours),
            f"(with {ours['cancelled_timers'] / ours['triggers']:.2f} cancelled timer per trigger the loop had not "
            "swept yet, each with its Context: it sweeps them when they outnumber the live ones)",
        )
        if baseline is not None:
            print("  baseline, tracked objects per trigger by type:", top_types(baseline))
            print(f"  baseline errors (polls that raised): {baseline['errors']}")
        print(f"  ours, triggers that ended during the run: {ours['ended'] or 'none'}")
        print()
    intervals = [r for r in results if not r["full"]]
    if intervals:
        print("HTTPS, ours, by poll interval (steady phase = 1.25 x interval + 5 s, after the startup):")
        print(f"  {'poll':>6}{'GETs':>8}{'connections':>13}{'handshakes':>12}{'per GET':>10}{'open max':>10}")
        for r in sorted(intervals, key=poll_interval_of):
            print(
                f"  {r['poll_interval']:>5g}s{r['steady_gets']:>8,}{r['steady_connections']:>13}"
                f"{r['steady_handshakes']:>12}{r['handshakes_per_get']:>10.4f}{r['open_connections_max']:>10}"
            )
        print()


def gen2_cell(result: dict[str, Any]) -> str:
    return f"{result['gc']['startup']['gen2']}/{result['gc']['steady']['gen2']}"


def top_types(result: dict[str, Any]) -> str:
    return ", ".join(f"{name} {count:.2f}" for name, count in result["top_types"])


def print_checks(results: list[dict[str, Any]], options: argparse.Namespace) -> int:
    checks: list[tuple[bool, str]] = []

    def check(passed: bool, text: str) -> None:
        checks.append((passed, text))

    for scheme in options.schemes:
        main = [r for r in results if r["scheme"] == scheme and r["full"]]
        ours = next(r for r in main if r["variant"] == "ours")
        baseline = next((r for r in main if r["variant"] == "baseline"), None)
        n, where = ours["triggers"], f"{scheme}, N={ours['triggers']:,}, poll {ours['poll_interval']:g} s"
        limit = MAX_RSS_PER_TRIGGER[scheme]
        rss_kb = ours["rss_per_trigger"] / 1024
        check(
            ours["rss_per_trigger"] <= limit, f"{where}: RSS per waiting trigger {rss_kb:.1f} KB <= {limit // 1024} KB"
        )
        opened = ours["open_connections_max"]
        check(opened <= POOL_CAP, f"{where}: open connections {opened} <= pool cap {POOL_CAP}")
        if baseline is not None:
            ratio = baseline["cpu_per_get"] / ours["cpu_per_get"]
            check(
                ratio >= MIN_CPU_RATIO,
                f"{where}: CPU per GET {ratio:.1f}x less than the baseline (>= {MIN_CPU_RATIO:g}x; "
                f"{ours['cpu_per_get'] * 1e6:.0f} vs {baseline['cpu_per_get'] * 1e6:.0f} us)",
            )
        # Over plain HTTP there is no handshake: the connections a GET needed say the same.
        per_get = "handshakes_per_get" if scheme == "https" else "connections_per_get"
        what = "TLS handshakes" if scheme == "https" else "TCP connections"
        check(
            ours[per_get] <= MAX_HANDSHAKES_PER_GET,
            f"{where}: {ours[per_get]:.4f} {what} per GET <= {MAX_HANDSHAKES_PER_GET}",
        )
        for run in sorted((r for r in results if not r["full"] and r["scheme"] == scheme), key=poll_interval_of):
            check(
                run["handshakes_per_get"] <= MAX_HANDSHAKES_PER_GET,
                f"{scheme}, N={n:,}, poll {run['poll_interval']:g} s: {run['handshakes_per_get']:.4f} TLS handshakes "
                f"per GET <= {MAX_HANDSHAKES_PER_GET}",
            )
        p99, collected = ours["lag"]["steady"]["p99"], ours["gc"]["steady"]
        check(
            p99 <= MAX_STEADY_LAG_P99,
            f"{where}: steady loop lag p99 {fmt_ms(p99)} <= 50 ms ({collected['collections']} collections, "
            f"{collected['gen2']} of generation 2, included)",
        )
        objects = ours["objects_per_trigger"]
        check(
            objects <= MAX_OBJECTS_PER_TRIGGER,
            f"{where}: {objects:.1f} tracked objects per waiting trigger <= {MAX_OBJECTS_PER_TRIGGER}",
        )
        started = ours["tasks_started_seconds"]
        check(
            started <= MAX_STARTUP_SECONDS,
            f"{where}: all {n:,} started (created, first GET scheduled) {started:.2f} s after the first was created "
            f"(<= {MAX_STARTUP_SECONDS:g} s)",
        )
        startup = ours["startup_seconds"]
        check(
            startup is not None and startup <= MAX_STARTUP_SECONDS,
            f"{where}: all {n:,} first GETs answered {fmt_seconds(startup)} after the first task was created "
            f"(<= {MAX_STARTUP_SECONDS:g} s; each comes up to {POLL_JITTER:.0%} of the poll interval after its trigger "
            "starts, on purpose)",
        )
        lag = ours["lag"]["startup"]
        check(
            lag["max"] <= MAX_STARTUP_STALL,
            f"{where}: longest stall during the startup {fmt_ms(lag['max'])} <= 100 ms (not counting the "
            f"collector's pauses: {fmt_ms(lag['max_besides_gc'])})",
        )
        for result in (ours, baseline):
            if result is not None and max(result["emulator_busy_startup"], result["emulator_busy_steady"]) >= 0.9:
                print(
                    f"NOTE: {where}, {result['variant']}: the emulator's CPU was the limit "
                    f"({result['emulator_busy_startup']:.0%} busy in the startup, "
                    f"{result['emulator_busy_steady']:.0%} in the steady phase)"
                )
    print()
    for passed, text in checks:
        print(f"{'PASS' if passed else 'FAIL'}: {text}")
    return sum(not passed for passed, _ in checks)


def poll_interval_of(result: dict[str, Any]) -> float:
    interval: float = result["poll_interval"]
    return interval


# -- a child: one run in a fresh process ------------------------------------------------------------


class Phases:
    """The phase a measurement belongs to, with the loop lag samples and collector pauses of each."""

    def __init__(self) -> None:
        self.name = "idle"
        self.lags: dict[str, list[float]] = {}
        self.pauses: dict[str, list[tuple[int, float]]] = {}
        self.stalls_besides_gc: dict[str, float] = {}
        self.startup_trace: list[tuple[float, float, float]] = []  # (when, lag, of it collecting)
        self.collecting = 0.0  # seconds of collector pauses so far
        self._collecting_since = 0.0

    def lag(self, seconds: float, collecting: float) -> None:
        """A tick ``seconds`` late, of which ``collecting`` seconds the garbage collector held the loop."""
        self.lags.setdefault(self.name, []).append(seconds)
        if self.name == "startup":
            self.startup_trace.append((time.perf_counter(), seconds, collecting))
        besides = max(0.0, seconds - collecting)
        self.stalls_besides_gc[self.name] = max(self.stalls_besides_gc.get(self.name, 0.0), besides)

    def on_gc(self, event: str, info: dict[str, int]) -> None:
        if event == "start":
            self._collecting_since = time.perf_counter()
        else:
            pause = time.perf_counter() - self._collecting_since
            self.collecting += pause
            self.pauses.setdefault(self.name, []).append((info["generation"], pause))

    def lag_summary(self, phase: str) -> dict[str, float]:
        samples = sorted(self.lags.get(phase, [0.0]))
        return {
            "p50": samples[len(samples) // 2],
            "p99": samples[min(len(samples) - 1, math.ceil(0.99 * len(samples)) - 1)],
            "max": samples[-1],
            "max_besides_gc": self.stalls_besides_gc.get(phase, 0.0),
            "samples": len(samples),
        }

    def gc_summary(self, phase: str) -> dict[str, Any]:
        pauses = self.pauses.get(phase, [])
        return {
            "collections": len(pauses),
            "gen2": sum(1 for generation, _ in pauses if generation == 2),
            "max_pause": max((pause for _, pause in pauses), default=0.0),
            "total_pause": sum(pause for _, pause in pauses),
        }


async def tick(phases: Phases) -> None:
    """Stands for the other work of the loop: how late each 10 ms sleep wakes is the loop's lag."""
    loop = asyncio.get_running_loop()
    last, collecting = loop.time(), phases.collecting
    while True:
        await asyncio.sleep(TICK_SECONDS)
        now = loop.time()
        phases.lag(max(0.0, now - last - TICK_SECONDS), phases.collecting - collecting)
        last, collecting = now, phases.collecting


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_BYTES


def cpu_seconds_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def object_types() -> Counter[str]:
    gc.collect()
    return Counter(type(item).__qualname__ for item in gc.get_objects())


class Emulator:
    """``/_emulator/stats``, asked from a worker thread on one kept-alive connection.

    One connection, not one per call: the calls then add nothing to the counts between two of them,
    and little CPU (a new TLS handshake for each would cost this process about a millisecond).
    ``opened`` counts the connections it made (the emulator may close an idle one), to take out.
    """

    def __init__(self, spec: RunSpec) -> None:
        parts = urlsplit(spec.url)
        self._address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._context = ssl.create_default_context(cafile=spec.ca_bundle) if spec.ca_bundle else None
        self._connection: http.client.HTTPConnection | None = None
        self.opened = 0

    def stats_now(self) -> dict[str, Any]:
        for attempt in (1, 2):
            if self._connection is None:
                host, port = self._address
                self._connection = (
                    http.client.HTTPSConnection(host, port, context=self._context, timeout=30)
                    if self._context is not None
                    else http.client.HTTPConnection(host, port, timeout=30)
                )
                self.opened += 1
            try:
                self._connection.request("GET", "/_emulator/stats")
                with self._connection.getresponse() as answer:
                    stats: dict[str, Any] = json.loads(answer.read())
                return stats
            except (http.client.HTTPException, OSError):
                self._connection.close()
                self._connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def stats(self) -> dict[str, Any]:
        return await asyncio.to_thread(self.stats_now)

    @staticmethod
    def gets(stats: dict[str, Any]) -> int:
        return sum(stats["requests"].get(STATUS_ROUTE, {}).values())


def baseline_trigger_class() -> type[Any]:
    """The baseline: a new ``aiohttp.ClientSession`` for every poll, as the dbt Cloud provider's trigger does."""
    import aiohttp
    from airflow.triggers.base import BaseTrigger, TriggerEvent

    class SessionPerPoll(BaseTrigger):  # type: ignore[misc]
        errors = 0

        def __init__(
            self, generation_id: str, base_url: str, api_key: str, poll_interval: float, ssl_context: Any
        ) -> None:
            super().__init__()
            self.generation_id = generation_id
            self.base_url = base_url
            self.api_key = api_key
            self.poll_interval = poll_interval
            self.ssl_context = ssl_context

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return "bench.triggerer.SessionPerPoll", {"generation_id": self.generation_id}

        async def poll(self) -> dict[str, Any]:
            url = f"{self.base_url}/v1/video/generations/{self.generation_id}"
            headers = {"Authorization": f"Bearer {self.api_key}"}
            async with (
                aiohttp.ClientSession(headers=headers) as session,
                session.get(url, ssl=self.ssl_context) as response,
            ):
                response.raise_for_status()
                payload: dict[str, Any] = await response.json()
                return payload

        async def run(self) -> AsyncIterator[Any]:
            while True:
                try:
                    payload = await self.poll()
                    if payload.get("status") in ("completed", "failed", "cancelled"):
                        yield TriggerEvent(payload)
                        return
                except (aiohttp.ClientError, TimeoutError):
                    type(self).errors += 1  # polled again next time, as a trigger that tolerates errors would
                await asyncio.sleep(self.poll_interval)

    return SessionPerPoll


def start_profiler() -> Any:
    """With ``TRIGGERER_BENCH_PROFILE=<directory>``, each phase runs under cProfile (which slows it down)."""
    if not os.environ.get(PROFILE_VARIABLE):
        return None
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def stop_profiler(profiler: Any, spec: RunSpec, phase: str) -> None:
    if profiler is not None:
        profiler.disable()
        name = f"{spec.scheme}-{spec.variant}-{spec.poll_interval:g}-{phase}.prof"
        profiler.dump_stats(str(Path(os.environ[PROFILE_VARIABLE]) / name))


def run_child(spec: RunSpec) -> None:
    import aiohttp  # noqa: F401 - both variants pay for the same imports before measuring

    from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
    from airflow_provider_infinityblue.triggers.infinityblue import InfinityBlueVideoTrigger

    raise_open_files_limit()
    ids: list[str] = json.loads(Path(spec.ids_path).read_text())[: spec.triggers]
    os.environ["AIRFLOW_CONN_INFINITYBLUE_DEFAULT"] = spec.connection
    ssl_context = ssl.create_default_context(cafile=spec.ca_bundle) if spec.ca_bundle else True
    baseline_class = baseline_trigger_class()

    async def warm_up() -> None:
        # Paid once per process in a real triggerer too: Airflow's first connection lookup, aiohttp's import,
        # the certificates. Done in a loop of its own: the measured loop starts with no session.
        if spec.variant == "ours":
            async with InfinityBlueHook() as hook:
                await hook.apoll_generation(ids[0])
        else:
            await baseline_class(ids[0], spec.url, spec.api_key, 3600, ssl_context).poll()

    asyncio.run(warm_up())

    def make_trigger(generation_id: str) -> Any:
        if spec.variant == "ours":
            return InfinityBlueVideoTrigger(
                generation_id, poll_interval=spec.poll_interval, timeout=24 * 3600, submitted_at=time.time() - 60
            )
        return baseline_class(generation_id, spec.url, spec.api_key, spec.poll_interval, ssl_context)

    result = asyncio.run(measure(spec, ids, make_trigger))
    if spec.full and spec.variant == "ours":
        result["reference"] = asyncio.run(one_at_a_time(spec, ids[0], ssl_context))
    result["errors"] = baseline_class.errors
    Path(spec.result_path).write_text(json.dumps(result))


async def one_at_a_time(spec: RunSpec, generation_id: str, ssl_context: Any) -> dict[str, float]:
    """CPU per GET of bare aiohttp, one GET at a time on an otherwise idle loop, the triggers gone.

    A pooled session (keep-alive) against a new session for each GET: the least either can cost here,
    so ``session / pooled`` is the best ratio any client built on pooled aiohttp GETs could show.
    """
    import aiohttp

    url = f"{spec.url}/v1/video/generations/{generation_id}"
    headers = {"Authorization": f"Bearer {spec.api_key}"}

    async def pooled(count: int) -> float:
        async with aiohttp.ClientSession(headers=headers) as session:
            async with session.get(url, ssl=ssl_context) as response:  # the connection, made before measuring
                await response.read()
            started = time.process_time()
            for _ in range(count):
                async with session.get(url, ssl=ssl_context) as response:
                    await response.read()
            return (time.process_time() - started) / count

    async def new_session_each(count: int) -> float:
        started = time.process_time()
        for _ in range(count):
            async with (
                aiohttp.ClientSession(headers=headers) as session,
                session.get(url, ssl=ssl_context) as response,
            ):
                await response.read()
        return (time.process_time() - started) / count

    return {"pooled": await pooled(1000), "session_per_get": await new_session_each(300)}


async def measure(spec: RunSpec, ids: list[str], make_trigger: Callable[[str], Any]) -> dict[str, Any]:
    phases = Phases()
    gc.callbacks.append(phases.on_gc)
    ticker = asyncio.create_task(tick(phases))
    emulator = Emulator(spec)
    ended: Counter[str] = Counter()

    async def drive(trigger: Any) -> None:
        # What the triggerer's run_trigger does with a trigger, less its logging and bookkeeping.
        async for event in trigger.run():
            ended[str(event.payload.get("status"))] += 1

    await asyncio.sleep(0.5)
    types_before = object_types()
    rss_before = rss()
    stats_before = await emulator.stats()
    gets_before = Emulator.gets(stats_before)
    emulator_cpu = cpu_seconds_of(spec.emulator_pid)

    # Startup: tasks created as Airflow's TriggerRunner.create_triggers creates them, one a turn of the loop
    # (it awaits asyncio.sleep(0) before each), then the first GETs.
    loop = asyncio.get_running_loop()
    phases.name = "startup"
    cpu_started = time.process_time()
    profiler = start_profiler()
    started = time.perf_counter()
    tasks = []
    for generation_id in ids:
        await asyncio.sleep(0)
        tasks.append(loop.create_task(drive(make_trigger(generation_id))))
    await asyncio.sleep(0)  # the last task has taken its first step when this returns
    tasks_started = time.perf_counter() - started
    startup: float | None = None
    answered_by: list[tuple[float, int]] = []  # (seconds since the start, first GETs answered)
    while startup is None and time.perf_counter() - started < STARTUP_LIMIT_SECONDS:
        stats = await emulator.stats()
        answered_by.append((time.perf_counter() - started, Emulator.gets(stats) - gets_before))
        if answered_by[-1][1] >= len(ids):
            startup = answered_by[-1][0]
        else:
            await asyncio.sleep(0.02)
    startup_elapsed = time.perf_counter() - started
    startup_cpu = time.process_time() - cpu_started
    stop_profiler(profiler, spec, "startup")
    emulator_busy_startup = (cpu_seconds_of(spec.emulator_pid) - emulator_cpu) / startup_elapsed
    rss_started = rss()

    # Steady polling, from the end of the first round of polls to the end of a later one: a baseline that
    # polls in herds is then measured over whole herds, answers and the CPU they cost together.
    stats_a = stats
    opened_a = emulator.opened
    phases.name = "steady"
    cpu_a, wall_a, emulator_cpu_a = time.process_time(), time.perf_counter(), cpu_seconds_of(spec.emulator_pid)
    gets_a = Emulator.gets(stats_a)
    rss_samples: list[int] = []
    open_max = stats_a["open_connections"] - 1  # less the stats connection
    target: int | None = None
    profiler = start_profiler()
    give_up = wall_a + spec.steady_seconds + 2 * spec.poll_interval + 30
    while True:
        await asyncio.sleep(1.0)
        rss_samples.append(rss())
        stats_b = await emulator.stats()
        cpu_b, wall_b, emulator_cpu_b = time.process_time(), time.perf_counter(), cpu_seconds_of(spec.emulator_pid)
        open_max = max(open_max, stats_b["open_connections"] - 1)
        done = Emulator.gets(stats_b) - gets_a
        if wall_b - wall_a >= spec.steady_seconds and target is None:
            target = max(1, math.ceil(done / len(ids))) * len(ids)  # the round under way, to its end
        if (target is not None and done >= target) or wall_b > give_up:
            break
    phases.name = "done"
    stop_profiler(profiler, spec, "steady")
    stats_connections = emulator.opened - opened_a
    ticker.cancel()
    gc.callbacks.remove(phases.on_gc)

    # asyncio keeps a cancelled timer (each GET's answer deadline is one) in its heap until its time comes or
    # until the cancelled ones outnumber the others: each still counts, with its Context, in the objects below.
    cancelled_timers = sum(1 for handle in getattr(loop, "_scheduled", ()) if handle.cancelled())
    types_after = object_types() if spec.full else Counter[str]()
    rss_samples.sort()
    steady_gets = Emulator.gets(stats_b) - Emulator.gets(stats_a)
    connections = stats_b["connections"] - stats_a["connections"] - stats_connections
    handshakes = stats_b["tls_handshakes"] - stats_a["tls_handshakes"] - (stats_connections if spec.ca_bundle else 0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)

    n = len(ids)
    grown = types_after - types_before
    return {
        "variant": spec.variant,
        "scheme": spec.scheme,
        "full": spec.full,
        "triggers": n,
        "poll_interval": spec.poll_interval,
        "steady_seconds": wall_b - wall_a,
        "startup_seconds": startup,
        "tasks_started_seconds": tasks_started,
        "rss_before": rss_before,
        "rss_started": rss_started,
        "rss_steady_median": rss_samples[len(rss_samples) // 2],
        "rss_per_trigger": (rss_samples[len(rss_samples) // 2] - rss_before) / n,
        "rss_per_trigger_max": (rss_samples[-1] - rss_before) / n,
        "objects_before": sum(types_before.values()),
        "cancelled_timers": cancelled_timers,
        "objects_per_trigger": (sum(types_after.values()) - sum(types_before.values())) / n if spec.full else 0.0,
        "top_types": [(name, count / n) for name, count in grown.most_common(10)],
        "steady_gets": steady_gets,
        "cpu_per_get": (cpu_b - cpu_a) / max(1, steady_gets),
        "cpu_busy_steady": (cpu_b - cpu_a) / (wall_b - wall_a),
        "steady_connections": connections,
        "steady_handshakes": handshakes,
        "connections_per_get": connections / max(1, steady_gets),
        "handshakes_per_get": handshakes / max(1, steady_gets),
        "open_connections_max": open_max,
        "emulator_busy_startup": emulator_busy_startup,
        "cpu_busy_startup": startup_cpu / startup_elapsed,
        "answered_by": [(round(at, 3), count) for at, count in answered_by],
        "startup_stalls": [
            (round(at - started, 3), round(lag, 4), round(collecting, 4))
            for at, lag, collecting in phases.startup_trace
            if lag > 0.02
        ],
        "emulator_busy_steady": (emulator_cpu_b - emulator_cpu_a) / (wall_b - wall_a),
        "lag": {phase: phases.lag_summary(phase) for phase in ("startup", "steady")},
        "gc": {phase: phases.gc_summary(phase) for phase in ("startup", "steady")},
        "ended": dict(ended),
    }


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
