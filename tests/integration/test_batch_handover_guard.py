"""The batch trigger's hand-over guard: no event before ``not_before``, whatever has finished by then."""

from __future__ import annotations

import asyncio
import time

import pytest

from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import GenerationRequest
from airflow_provider_infinityblue.triggers.batch import InfinityBlueBatchTrigger


async def first_event(trigger: InfinityBlueBatchTrigger) -> dict:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("no event")


@pytest.mark.parametrize("refill_at", [0, 1], ids=["all-finished", "refill"])
def test_the_event_waits_for_not_before_and_hands_over_everything_finished_meanwhile(emulator, refill_at) -> None:
    hook = InfinityBlueHook()
    request = GenerationRequest(prompt="A paper boat", model="kling-v2-5-turbo", duration=5)
    submitted_at = time.time()
    in_flight = [
        {"row": row, "generation_id": hook.submit_generation(request), "submitted_at": submitted_at} for row in range(2)
    ]
    hook.close()
    guard = 2.5
    deferred_at = time.time()
    trigger = InfinityBlueBatchTrigger(
        in_flight, poll_interval=1, refill_at=refill_at, refill_window=5, not_before=deferred_at + guard
    )
    assert trigger.serialize()[1]["not_before"] == deferred_at + guard
    payload = asyncio.run(first_event(trigger))
    assert time.time() >= deferred_at + guard
    # The rows take 0.5 s: both finished while the event was held, and both are in it.
    assert sorted(values["row"] for values in payload["finished"]) == [0, 1]
    assert payload["in_flight"] == []
