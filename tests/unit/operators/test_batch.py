"""InfinityBlueGenerateVideoBatchOperator called directly: waves, the per-row ledger, refusals, retries."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_infinityblue.batch.ledger import PROGRESS_KEY, ROW_KEY_PREFIX
from airflow_provider_infinityblue.batch.manifest import read_manifest
from airflow_provider_infinityblue.exceptions import InfinityBlueAuthenticationError, InfinityBlueBatchError
from airflow_provider_infinityblue.models import GenerationRequest
from airflow_provider_infinityblue.operators.batch import RESUME_MARGIN_SECONDS, resume_lag
from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoBatchOperator
from airflow_provider_infinityblue.triggers.batch import InfinityBlueBatchTrigger
from tests.conftest import BASE_URL
from tests.unit.fakes import MemoryTaskStateStore, task_context

if TYPE_CHECKING:
    from pathlib import Path

SUBMIT_URL = f"{BASE_URL}/v1/video/generations"


def rows(count: int) -> list[dict[str, Any]]:
    return [{"key": f"k{index}", "prompt": f"A paper boat, take {index}"} for index in range(count)]


def fingerprint(row: dict[str, Any]) -> str:
    fields = {name: value for name, value in row.items() if name != "key"}
    return GenerationRequest(**{"model": "kling-v2-5-turbo", **fields}).fingerprint()


@pytest.fixture
def manifest(tmp_path: Path) -> str:
    return str(tmp_path / "out" / "manifest.jsonl")


def operator(manifest: str, requests: list[dict[str, Any]], **kwargs: Any) -> InfinityBlueGenerateVideoBatchOperator:
    settings = {"task_id": "backfill", "poll_interval": 1, "deferrable": True, "max_in_flight": 4, **kwargs}
    return InfinityBlueGenerateVideoBatchOperator(requests=requests, manifest_path=manifest, **settings)


def accept_all(requests_mock, store: MemoryTaskStateStore | None = None) -> list[dict[str, Any]]:
    """Answer every POST with a new id; record what the task state store held for the row when it arrived."""
    seen: list[dict[str, Any]] = []

    def answer(request, context) -> dict[str, Any]:
        number = len(seen)
        records = store.values.items() if store is not None else ()
        seen.append({key: value for key, value in records if key.startswith(ROW_KEY_PREFIX)})
        return {"task_id": f"g{number}", "status": "queued"}

    requests_mock.post(SUBMIT_URL, json=answer)
    return seen


def deferred(call) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as raised:
        call()
    return raised.value


def test_a_wave_fills_max_in_flight_writes_the_manifest_and_defers(hook, requests_mock, manifest) -> None:
    accept_all(requests_mock)
    store = MemoryTaskStateStore()
    deferral = deferred(lambda: operator(manifest, rows(10)).execute(task_context(store)))
    trigger = deferral.trigger
    assert isinstance(trigger, InfinityBlueBatchTrigger)
    assert [row.row for row in trigger.rows] == [0, 1, 2, 3]
    assert [row.generation_id for row in trigger.rows] == ["g0", "g1", "g2", "g3"]
    assert trigger.refill_at == 1  # a quarter of max_in_flight
    # Not before the worker has reported its deferral: [workers] min_heartbeat_interval (5 s) + 5 s.
    assert trigger.fire_not_before is not None
    assert 9 < trigger.fire_not_before - time.time() <= 10
    assert deferral.method_name == "execute_complete"
    entries = read_manifest(manifest, expect_sha256=deferral.kwargs["manifest_sha256"])
    assert entries is not None
    assert [entry.status for entry in entries.values()] == ["running"] * 4 + ["pending"] * 6
    assert store.values[PROGRESS_KEY]["manifest_sha256"] == deferral.kwargs["manifest_sha256"]


def test_each_rows_marker_is_written_before_its_post_and_the_id_right_after(hook, requests_mock, manifest) -> None:
    store = MemoryTaskStateStore()
    seen = accept_all(requests_mock, store)
    deferred(lambda: operator(manifest, rows(3)).execute(task_context(store)))
    for number, records in enumerate(seen):
        marker = records[f"{ROW_KEY_PREFIX}{number}"]
        assert marker["state"] == "submitting"
        assert marker["fingerprint"] == fingerprint(rows(3)[number])
    record = store.values[f"{ROW_KEY_PREFIX}1"]
    assert (record["state"], record["generation_id"]) == ("submitted", "g1")


def test_the_next_wave_records_finished_rows_and_submits_into_the_freed_slots(hook, requests_mock, manifest) -> None:
    accept_all(requests_mock)
    store = MemoryTaskStateStore()
    task = operator(manifest, rows(6))
    first = deferred(lambda: task.execute(task_context(store)))
    in_flight = [row.to_json() for row in first.trigger.rows]
    event = {
        "finished": [
            {"row": 0, "status": "success", "generation_id": "g0", "message": "done", "video_url": "https://cdn/0.mp4"},
            {"row": 1, "status": "failed", "generation_id": "g1", "message": "Prompt refused",
             "error_code": "content_policy_violation"},
        ],
        "in_flight": in_flight[2:],
    }  # fmt: skip
    tolerant = operator(manifest, rows(6), max_failed_rows=1)
    second = deferred(lambda: tolerant.execute_complete(task_context(store), event=event, **first.kwargs))
    assert [row.row for row in second.trigger.rows] == [2, 3, 4, 5]
    entries = read_manifest(manifest)
    assert entries is not None
    assert (entries[0].status, entries[0].video_url) == ("succeeded", "https://cdn/0.mp4")
    assert (entries[1].status, entries[1].error) == ("failed", "Prompt refused")
    assert [entries[index].status for index in range(2, 6)] == ["running"] * 4
    assert requests_mock.call_count == 6


def test_an_ambiguous_post_fails_its_row_keeps_its_marker_and_is_never_sent_again(
    hook, requests_mock, manifest
) -> None:
    requests_mock.post(
        SUBMIT_URL,
        [{"json": {"task_id": "g0", "status": "queued"}}, {"status_code": 500, "json": {"error": {"message": "boom"}}},
         {"json": {"task_id": "g2", "status": "queued"}}],
    )  # fmt: skip
    store = MemoryTaskStateStore()
    deferral = deferred(lambda: operator(manifest, rows(3), max_failed_rows=1).execute(task_context(store)))
    assert [row.generation_id for row in deferral.trigger.rows] == ["g0", "g2"]
    assert requests_mock.call_count == 3
    assert store.values[f"{ROW_KEY_PREFIX}1"]["state"] == "submitting"
    entries = read_manifest(manifest)
    assert entries is not None
    assert entries[1].status == "failed"
    assert "may have been created" in (entries[1].error or "")


def test_a_row_the_api_refuses_is_failed_and_remembered_as_refused(hook, requests_mock, manifest) -> None:
    requests_mock.post(
        SUBMIT_URL,
        [{"status_code": 400, "json": {"error": {"message": "model not available"}}},
         {"json": {"task_id": "g1", "status": "queued"}}],
    )  # fmt: skip
    store = MemoryTaskStateStore()
    deferred(lambda: operator(manifest, rows(2), max_failed_rows=1).execute(task_context(store)))
    assert store.values[f"{ROW_KEY_PREFIX}0"]["state"] == "refused"
    assert "model not available" in store.values[f"{ROW_KEY_PREFIX}0"]["error"]


def test_a_bad_key_stops_the_task_after_the_manifest_records_what_is_in_flight(hook, requests_mock, manifest) -> None:
    requests_mock.post(
        SUBMIT_URL,
        [{"json": {"task_id": "g0", "status": "queued"}},
         {"status_code": 401, "json": {"error": {"message": "bad key"}}}],
    )  # fmt: skip
    store = MemoryTaskStateStore()
    with pytest.raises(InfinityBlueAuthenticationError):
        operator(manifest, rows(3)).execute(task_context(store))
    entries = read_manifest(manifest)
    assert entries is not None
    assert [entry.status for entry in entries.values()] == ["running", "pending", "pending"]
    assert f"{ROW_KEY_PREFIX}1" not in store.values  # refused before anything was made
    assert requests_mock.call_count == 2


def test_a_429_with_rows_in_flight_pauses_submissions_until_the_next_wave(hook, requests_mock, manifest) -> None:
    requests_mock.post(
        SUBMIT_URL,
        [{"json": {"task_id": "g0", "status": "queued"}}]
        + [{"status_code": 429, "json": {"error": {"message": "slow down"}}, "headers": {"Retry-After": "0"}}] * 10,
    )
    store = MemoryTaskStateStore()
    deferral = deferred(lambda: operator(manifest, rows(3)).execute(task_context(store)))
    assert [row.row for row in deferral.trigger.rows] == [0]
    assert f"{ROW_KEY_PREFIX}1" not in store.values  # provably not taken: the next wave sends it
    entries = read_manifest(manifest)
    assert entries is not None
    assert entries[1].status == "pending"


def test_a_retry_reattaches_to_submitted_rows_and_never_resends_an_unconfirmed_one(
    hook, requests_mock, manifest
) -> None:
    data = rows(6)
    now = time.time()
    store = MemoryTaskStateStore(
        **{
            f"{ROW_KEY_PREFIX}0": {"state": "submitted", "fingerprint": fingerprint(data[0]), "generation_id": "old0",
                                   "submitted_at": now - 30},
            f"{ROW_KEY_PREFIX}1": {"state": "refused", "fingerprint": fingerprint(data[1]), "error": "bad model"},
            f"{ROW_KEY_PREFIX}2": {"state": "submitting", "fingerprint": fingerprint(data[2]), "started_at": now - 20},
            f"{ROW_KEY_PREFIX}3": {"state": "submitted", "fingerprint": fingerprint(data[3]), "generation_id": "old3",
                                   "submitted_at": now - 10},
        }
    )  # fmt: skip
    accept_all(requests_mock)
    deferral = deferred(lambda: operator(manifest, data, max_failed_rows=2).execute(task_context(store)))
    assert [(row.row, row.generation_id) for row in deferral.trigger.rows] == [
        (0, "old0"), (3, "old3"), (4, "g0"), (5, "g1")
    ]  # fmt: skip
    assert requests_mock.call_count == 2  # only the rows no try had sent
    entries = read_manifest(manifest)
    assert entries is not None
    assert (entries[1].status, entries[1].error) == ("failed", "bad model")
    assert entries[2].status == "failed"
    assert "never recorded the API's answer" in (entries[2].error or "")


def test_a_retry_on_changed_input_refuses_to_guess(hook, requests_mock, manifest) -> None:
    store = MemoryTaskStateStore(
        **{f"{ROW_KEY_PREFIX}0": {"state": "submitted", "fingerprint": "another request", "generation_id": "old0",
                                  "submitted_at": time.time()}}
    )  # fmt: skip
    with pytest.raises(InfinityBlueBatchError, match="the input changed between tries"):
        operator(manifest, rows(2)).execute(task_context(store))
    assert requests_mock.call_count == 0


def test_every_row_has_its_own_small_key_in_the_task_state_store(hook, requests_mock, manifest) -> None:
    accept_all(requests_mock)
    store = MemoryTaskStateStore()
    deferred(lambda: operator(manifest, rows(300), max_in_flight=300, max_submissions_per_second=10_000)
             .execute(task_context(store)))  # fmt: skip
    assert sum(key.startswith(ROW_KEY_PREFIX) for key in store.values) == 300
    assert max(len(json.dumps(value)) for value in store.values.values()) < 300


def test_invalid_rows_are_all_listed_with_their_numbers_and_nothing_is_sent(hook, requests_mock, manifest) -> None:
    data = rows(5)
    data[1]["width"] = "wide"
    data[3]["colour"] = "blue"
    with pytest.raises(InfinityBlueBatchError) as raised:
        operator(manifest, data).execute(task_context())
    message = str(raised.value)
    assert "2 of 5 rows are invalid; nothing was sent" in message
    assert "row 1: 'width' must be an integer, got 'wide'" in message
    assert "row 3: unknown field 'colour'" in message
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"max_failed_rows": 1.5}, "max_failed_rows as a float is a fraction"),
        ({"max_failed_rows": -1}, "max_failed_rows must not be negative"),
        ({"max_in_flight": 0}, "max_in_flight must be a positive integer"),
        ({"max_submissions_per_second": float("nan")}, "max_submissions_per_second must be a finite number"),
        ({"poll_interval": 0.1}, "poll_interval must be a finite number of seconds, at least 1"),
        ({"on_invalid_row": "ignore"}, "on_invalid_row must be one of"),
        ({"min_wave_seconds": -1}, "min_wave_seconds must be a finite number of seconds, at least 0"),
        ({"requests_path": "prompts.jsonl"}, "give exactly one of requests or requests_path"),
    ],
)
def test_bad_settings_are_refused_when_the_dag_is_parsed(manifest, settings, problem) -> None:
    with pytest.raises(ValueError, match=problem):
        operator(manifest, rows(1), **settings)


def test_a_fraction_of_failed_rows_is_counted_against_all_rows(hook, requests_mock, manifest) -> None:
    accept_all(requests_mock)
    task = operator(manifest, rows(20), max_failed_rows=0.1)
    assert task._allowed_failures(20) == 2


def test_a_wave_lasts_at_least_the_workers_report_lag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL", "2")
    assert resume_lag() == 2 + RESUME_MARGIN_SECONDS
    assert operator("m.jsonl", rows(1)).min_wave_seconds == 2 + RESUME_MARGIN_SECONDS
    assert operator("m.jsonl", rows(1), min_wave_seconds=0).min_wave_seconds == 0
