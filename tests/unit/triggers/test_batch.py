"""InfinityBlueBatchTrigger: one session for a whole wave, every row decided by the wait engine, paced GETs."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import GenerationRequest
from airflow_provider_infinityblue.testing import running_emulator
from airflow_provider_infinityblue.triggers.infinityblue import InfinityBlueBatchTrigger
from tests.conftest import FAKE_API_KEY, set_connection
from tests.loopback import LoopbackServer, Reply

POLL = "GET /v1/video/generations/{task_id}"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch):
    with running_emulator(generation_seconds=2, api_key=FAKE_API_KEY) as handle:
        monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", handle.airflow_connection(FAKE_API_KEY))
        yield handle


def submit(count: int, *, prompt: str = "A paper boat", first_row: int = 0) -> list[dict]:
    with InfinityBlueHook() as hook:
        return [
            {"row": first_row + index, "generation_id": hook.submit_generation(GenerationRequest(prompt, "m")),
             "submitted_at": time.time()}
            for index in range(count)
        ]  # fmt: skip


def run(trigger: InfinityBlueBatchTrigger) -> dict:
    async def events() -> list[dict]:
        return [event.payload async for event in trigger.run()]

    payloads = asyncio.run(events())
    assert len(payloads) == 1  # one event per trigger run
    return payloads[0]


def test_serialize_round_trip_keeps_every_row_and_its_next_look() -> None:
    trigger = InfinityBlueBatchTrigger(
        [{"row": 4, "generation_id": "g4", "submitted_at": 1_900_000_000.0, "next_look_at": 1_900_000_007.5},
         {"row": 9, "generation_id": "g9", "submitted_at": 1_900_000_001.0}],
        "video_prod", poll_interval=5, timeout=600, refill_at=25, refill_window=12,
    )  # fmt: skip
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_infinityblue.triggers.batch.InfinityBlueBatchTrigger"
    assert kwargs["in_flight"] == [
        {"row": 4, "generation_id": "g4", "submitted_at": 1_900_000_000.0, "next_look_at": 1_900_000_007.5},
        {"row": 9, "generation_id": "g9", "submitted_at": 1_900_000_001.0, "next_look_at": 1_900_000_006.0},
    ]
    assert InfinityBlueBatchTrigger(**kwargs).serialize() == (path, kwargs)


def test_every_row_finishes_in_one_event_with_a_bounded_number_of_gets(emulator) -> None:
    rows = submit(8)
    payload = run(InfinityBlueBatchTrigger(rows, poll_interval=1, timeout=60))
    assert payload["in_flight"] == []
    assert sorted(item["row"] for item in payload["finished"]) == list(range(8))
    assert {item["status"] for item in payload["finished"]} == {"success"}
    assert all(item["video_url"].startswith("http") for item in payload["finished"])
    gets = sum(emulator.stats()["requests"][POLL].values())
    assert gets <= 8 * (math.ceil(2 / 1) + 2)  # at most ceil(T / poll_interval) + 2 per row


def test_it_fires_once_refill_at_rows_finished_and_hands_the_rest_over_without_an_extra_get(emulator) -> None:
    quick = submit(3)
    emulator.configure(generation_seconds=60)
    slow = submit(3, first_row=3)
    payload = run(InfinityBlueBatchTrigger(quick + slow, poll_interval=1, timeout=120, refill_at=3))
    fired_at = time.time()
    assert sorted(item["row"] for item in payload["finished"]) == [0, 1, 2]
    assert [item["generation_id"] for item in payload["in_flight"]] == [row["generation_id"] for row in slow]
    for item in payload["in_flight"]:  # the next look keeps its schedule: a new trigger does not look early
        assert fired_at - 0.5 < item["next_look_at"] < fired_at + 1.2


def test_a_row_handed_over_is_looked_at_when_its_schedule_says_not_at_once(emulator) -> None:
    emulator.configure(generation_seconds=0)
    finished_already = submit(3)
    later = time.time() + 3
    started = time.monotonic()
    payload = run(
        InfinityBlueBatchTrigger([{**row, "next_look_at": later} for row in finished_already], poll_interval=1)
    )
    assert len(payload["finished"]) == 3
    assert time.monotonic() - started >= 2.9
    assert sum(emulator.stats()["requests"][POLL].values()) == 3  # one GET per row, at its time


def test_a_window_after_the_first_finished_row_wakes_the_worker_for_fewer_than_refill_at(emulator) -> None:
    quick = submit(1)
    emulator.configure(generation_seconds=60)
    slow = submit(4, first_row=1)
    started = time.monotonic()
    payload = run(InfinityBlueBatchTrigger(quick + slow, poll_interval=1, timeout=120, refill_at=3, refill_window=2))
    assert [item["row"] for item in payload["finished"]] == [0]
    assert len(payload["in_flight"]) == 4
    assert 2 + 2 <= time.monotonic() - started < 2 + 2 + 4  # the row finishes at ~2 s, then the window, the sweep


def test_failed_and_lost_rows_end_as_the_single_trigger_would_end_them(emulator) -> None:
    failing = submit(1, prompt="A riot [content-policy]")
    lost = [{"row": 1, "generation_id": "never-created", "submitted_at": time.time() - 3600}]
    payload = run(InfinityBlueBatchTrigger(failing + lost, poll_interval=1, timeout=60, not_found_grace=300))
    by_row = {item["row"]: item for item in payload["finished"]}
    assert by_row[0]["status"] == "failed"
    assert by_row[0]["error_code"] == "content_policy_violation"
    assert by_row[1]["status"] == "error"
    assert by_row[1]["error_type"] == "InfinityBlueGenerationLostError"


def test_the_request_rate_is_bounded_for_the_whole_trigger(emulator) -> None:
    emulator.configure(generation_seconds=0)
    rows = [{**row, "next_look_at": time.time()} for row in submit(16)]  # all due at once
    started = time.monotonic()
    payload = run(InfinityBlueBatchTrigger(rows, poll_interval=1, timeout=60, max_polls_per_second=5))
    assert len(payload["finished"]) == 16
    assert time.monotonic() - started >= 15 / 5  # 16 GETs, spaced 0.2 s apart


def test_a_429_holds_every_look_for_its_retry_after(monkeypatch: pytest.MonkeyPatch) -> None:
    done = [Reply(body={"task_id": f"g{index}", "status": "completed", "url": f"https://cdn/g{index}.mp4"})
            for index in range(3)]  # fmt: skip
    limited = Reply(status=429, body={"error": {"message": "slow down"}}, headers={"Retry-After": "2"})
    with LoopbackServer([limited, *done]) as server:
        set_connection(monkeypatch, host=server.url, password=FAKE_API_KEY)
        now = time.time()
        rows = [
            {"row": index, "generation_id": f"g{index}", "submitted_at": now, "next_look_at": now} for index in range(3)
        ]
        payload = run(InfinityBlueBatchTrigger(rows[:1], poll_interval=1, timeout=60))
        assert payload["finished"][0]["status"] == "success"
        first, second = server.received[0].at, server.received[1].at
        assert 2.0 <= second - first < 3.5


def test_a_connection_that_cannot_be_used_ends_every_row_with_that_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, host="http://127.0.0.1:9")  # no API key
    now = time.time()
    rows = [{"row": index, "generation_id": f"g{index}", "submitted_at": now} for index in range(2)]
    payload = run(InfinityBlueBatchTrigger(rows, poll_interval=1, timeout=60))
    assert [item["error_type"] for item in payload["finished"]] == ["InfinityBlueConfigurationError"] * 2
    assert payload["in_flight"] == []


def test_it_never_fires_before_fire_not_before_even_when_every_row_has_finished(emulator) -> None:
    emulator.configure(generation_seconds=0)
    rows = [{**row, "next_look_at": time.time()} for row in submit(2)]
    started = time.monotonic()
    payload = run(InfinityBlueBatchTrigger(rows, poll_interval=1, fire_not_before=time.time() + 2.5))
    assert len(payload["finished"]) == 2
    assert time.monotonic() - started >= 2.4


def test_the_sweep_after_fire_not_before_waits_for_a_quiet_moment_at_most_one_poll_interval(monkeypatch) -> None:
    """A cohort of rows finishing as ``fire_not_before`` runs out goes in the same event (bench/backfill.py:
    without this, each event carried only the wave before, and waves locked into two half-size cohorts)."""
    from airflow_provider_infinityblue.retry import RetryPolicy
    from airflow_provider_infinityblue.triggers import batch
    from airflow_provider_infinityblue.wait import GenerationOutcome

    clock = [1000.0]
    monkeypatch.setattr(batch.time, "time", lambda: clock[0])
    rows = [{"row": row, "generation_id": f"g{row}", "submitted_at": 990.0} for row in range(10)]
    trigger = InfinityBlueBatchTrigger(rows, poll_interval=5, refill_at=1, fire_not_before=1010.0)
    wave = batch._Wave(trigger, RetryPolicy())

    def finish(row: int, at: float) -> None:
        clock[0] = at
        wave._finish(row, GenerationOutcome("success", f"g{row}", "done", f"https://cdn/g{row}.mp4"))

    finish(0, 1001.0)  # refill_at is met long before fire_not_before
    clock[0] = 1009.9
    assert not wave._time_to_fire()
    clock[0] = 1010.0
    assert not wave._time_to_fire()  # the sweep starts: fire at 1011 unless more rows finish
    finish(1, 1010.5)
    finish(2, 1011.8)  # each finished row pushes the fire time to a quiet second after it
    clock[0] = 1012.5
    assert not wave._time_to_fire()
    clock[0] = 1012.8
    assert wave._time_to_fire()
    # Rows that keep finishing cannot hold the event longer than one poll interval past the first fire time.
    wave = batch._Wave(trigger, RetryPolicy())
    finish(0, 1010.0)
    assert not wave._time_to_fire()  # fire at 1011, at the latest at 1016
    for step, row in enumerate(range(1, 7)):
        finish(row, 1010.9 + step * 0.9)  # never a quiet second; the last, at 1015.4, would push it to 1016.4
    clock[0] = 1015.9
    assert not wave._time_to_fire()
    clock[0] = 1016.0
    assert wave._time_to_fire()
