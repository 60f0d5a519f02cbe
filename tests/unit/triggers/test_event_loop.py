"""A fresh triggerer: the first InfinityBlue trigger must not stall the shared event loop (aiohttp's import)."""

from __future__ import annotations

import json
import subprocess
import sys

# The longest the loop may go without running another coroutine: the import itself takes ~0.3 s here.
MAX_LOOP_STALL_SECONDS = 0.2

FIRST_TRIGGER_IN_A_FRESH_PROCESS = """
import asyncio, json, os, sys, time
from tests.loopback import LoopbackServer, Reply

import airflow_provider_infinityblue.triggers.infinityblue as triggers
aiohttp_before = "aiohttp" in sys.modules

async def another_trigger(gaps):
    # Stands for the other triggers sharing the triggerer's loop: records how long each turn waited.
    last = time.perf_counter()
    while True:
        await asyncio.sleep(0.01)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now

async def first_trigger(url):
    connection = json.dumps({"conn_type": "infinityblue", "host": url, "password": "sk-test-FAKE0000notarealkey0000"})
    os.environ["AIRFLOW_CONN_INFINITYBLUE_DEFAULT"] = os.environ["AIRFLOW_CONN_WARM_UP"] = connection
    # Airflow's own first connection lookup is paid before measuring: outside a triggerer, Airflow 3.1 loads
    # its ORM models for it (about a second, with pauses of the loop); a triggerer asks its supervisor instead.
    await triggers.InfinityBlueHook("warm_up").asettings()
    gaps = []
    neighbour = asyncio.ensure_future(another_trigger(gaps))
    await asyncio.sleep(0.05)
    async def run_one():
        trigger = triggers.InfinityBlueVideoTrigger("t1", poll_interval=1, timeout=30)
        return [event.payload async for event in trigger.run()]

    # Twenty at once, as after a backfill defers or a triggerer restarts: all start before aiohttp is loaded.
    results = await asyncio.gather(*(run_one() for _ in range(20)))
    neighbour.cancel()
    return [event for events in results for event in events], max(gaps)

done = Reply(body={"task_id": "t1", "status": "completed", "url": "https://cdn/t1.mp4"})
with LoopbackServer([done] * 20) as server:
    events, stall = asyncio.run(first_trigger(server.url))
print(json.dumps({"aiohttp_before": aiohttp_before, "statuses": [e["status"] for e in events], "stall": stall}))
"""


def test_first_triggers_do_not_stall_the_loop() -> None:
    run = subprocess.run(
        [sys.executable, "-c", FIRST_TRIGGER_IN_A_FRESH_PROCESS], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["aiohttp_before"] is False  # the import really happens during the trigger's run
    assert outcome["statuses"] == ["success"] * 20  # each got a fully initialised aiohttp
    assert outcome["stall"] < MAX_LOOP_STALL_SECONDS
