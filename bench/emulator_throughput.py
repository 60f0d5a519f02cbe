"""How many status GETs per second the InfinityBlue emulator answers, next to a bare aiohttp server.

Run from the repository root::

    .venv/bin/python bench/emulator_throughput.py

The emulator runs as a subprocess (``python -m airflow_provider_infinityblue.emulator``,
logging one INFO line per request as it always does) and is pinned to one CPU; this
process is the load generator, pinned to another. It submits 5,000 generations (long
enough that all 5,000 are in flight at once), then polls them round-robin with a bounded
number of concurrent keep-alive connections for a fixed time. As a baseline, the same
load generator polls a bare aiohttp server that answers a constant JSON body, in the same
run, alternating rounds with the emulator. Absolute numbers depend on the machine and on
its neighbours; the ratio emulator / baseline is the figure to compare across runs.
Everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from airflow_provider_infinityblue.emulator import emulator_process

if TYPE_CHECKING:
    from collections.abc import Iterator

SERVER_CPU = 0
LOAD_GENERATOR_CPU = 1
API_KEY_HEADER = {"Authorization": "Bearer sk-bench-0000"}
CONSTANT_ANSWER = {"task_id": "constant", "status": "in_progress", "progress": 50}


@dataclass
class PollResult:
    seconds: float
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def answered(self) -> int:
        return sum(self.statuses.values())

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds


async def submit_all(base_url: str, count: int, concurrency: int) -> tuple[list[str], float]:
    """Submit ``count`` generations; the ids and the submissions per second."""
    ids: list[str] = []
    remaining = iter(range(count))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url, connector=connector, headers=API_KEY_HEADER) as session:

        async def worker() -> None:
            for number in remaining:
                body = {"model": "kling-v2-5-turbo", "prompt": f"Benchmark clip {number}"}
                async with session.post("/v1/video/generations", json=body) as response:
                    response.raise_for_status()
                    ids.append((await response.json())["task_id"])

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ids, count / (time.perf_counter() - started)


async def poll_for(base_url: str, ids: list[str], seconds: float, concurrency: int, warmup: float) -> PollResult:
    """GET the ids round-robin for ``warmup + seconds``; only the last ``seconds`` are counted."""
    statuses: dict[int, int] = {}
    next_index = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url, connector=connector, headers=API_KEY_HEADER) as session:
        loop = asyncio.get_running_loop()
        counting_from = loop.time() + warmup
        stop_at = counting_from + seconds

        async def worker() -> None:
            nonlocal next_index
            while (now := loop.time()) < stop_at:
                task_id = ids[next_index % len(ids)]
                next_index += 1
                async with session.get(f"/v1/video/generations/{task_id}") as response:
                    await response.read()
                if now >= counting_from:
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return PollResult(seconds=seconds, statuses=statuses)


def serve_baseline(port: int) -> None:
    """The baseline: aiohttp answering the same routes with a constant body, no logging."""

    async def constant(request: web.Request) -> web.Response:
        return web.json_response(CONSTANT_ANSWER)

    app = web.Application()
    app.router.add_get("/v1/video/generations/{task_id}", constant)
    app.router.add_get("/ready", constant)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


@contextmanager
def baseline_process(port: int) -> Iterator[tuple[str, int]]:
    """The baseline server as a subprocess: its URL and PID."""
    command = [sys.executable, __file__, "--serve-baseline", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ready", timeout=1):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the baseline server did not start") from None
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(10)


def pin(pid: int, cpu: int) -> bool:
    """Keep a process on one CPU, when the machine has it; say whether it worked."""
    if not hasattr(os, "sched_setaffinity") or cpu not in os.sched_getaffinity(0):
        return False
    os.sched_setaffinity(pid, {cpu})
    return True


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=5000, help="generations to submit and keep in flight")
    parser.add_argument("--seconds", type=float, default=5.0, help="counted polling time per round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per server, alternating")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent connections of the load generator")
    parser.add_argument("--serve-baseline", type=int, metavar="PORT", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.serve_baseline is not None:
        serve_baseline(options.serve_baseline)
        return

    started = time.perf_counter()
    print(f"Python {sys.version.split()[0]}, aiohttp {aiohttp.__version__}, {os.cpu_count()} CPUs")
    with emulator_process(generation_seconds=600) as emulator, baseline_process(free_port()) as baseline:
        baseline_url, baseline_pid = baseline
        assert emulator.pid is not None
        # Both servers share one CPU but are never loaded at the same time.
        pinned = pin(emulator.pid, SERVER_CPU) and pin(baseline_pid, SERVER_CPU) and pin(0, LOAD_GENERATOR_CPU)
        print(f"servers pinned to CPU {SERVER_CPU}, load generator to CPU {LOAD_GENERATOR_CPU}: {pinned}")
        print(f"load: {options.concurrency} connections, {options.seconds:g} s per round after a 0.5 s warm-up")

        ids, submitted_per_second = asyncio.run(submit_all(emulator.url, options.tasks, options.concurrency))
        tasks = emulator.stats()["tasks"]
        in_flight = tasks["queued"] + tasks["in_progress"]
        print(f"submitted {len(ids)} generations at {submitted_per_second:,.0f}/s; in flight at once: {in_flight}")

        emulator_rates: list[float] = []
        baseline_rates: list[float] = []
        for round_number in range(1, options.rounds + 1):
            servers = (("emulator", emulator.url, emulator_rates), ("baseline", baseline_url, baseline_rates))
            for name, url, rates in servers:
                result = asyncio.run(poll_for(url, ids, options.seconds, options.concurrency, warmup=0.5))
                rates.append(result.per_second)
                print(
                    f"round {round_number} {name:8}: {result.per_second:8,.0f} GETs/s "
                    f"({result.answered} answers, statuses {result.statuses})"
                )
        polled = emulator.stats()["requests"]["GET /v1/video/generations/{task_id}"]

    emulator_figure = statistics.median(emulator_rates)
    baseline_figure = statistics.median(baseline_rates)
    print(f"emulator status answers by code (all rounds, warm-up included): {polled}")
    print(f"emulator: {emulator_figure:,.0f} GETs/s (median of {options.rounds})")
    print(f"baseline: {baseline_figure:,.0f} GETs/s (median of {options.rounds}, bare aiohttp, constant JSON)")
    print(f"ratio emulator/baseline: {emulator_figure / baseline_figure:.2f}")
    held = "yes" if in_flight >= options.tasks else "NO"
    fast_enough = "yes" if emulator_figure >= 1000 else "NO"
    took = time.perf_counter() - started
    print(f"{options.tasks:,} tasks in flight: {held}; >= 1,000 GETs/s: {fast_enough}; bench took {took:.0f} s")


if __name__ == "__main__":
    main()
