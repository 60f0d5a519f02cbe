"""The batch operator in real Airflow (``dag.test()``, deferrals inline) against the emulator on loopback."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_infinityblue.batch.manifest import read_manifest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(600)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def prompts(count: int, *, failing: set[int] = frozenset()) -> list[dict[str, Any]]:  # type: ignore[assignment]
    return [
        {
            "key": f"clip-{index:03d}",
            "prompt": f"A paper boat, take {index}" + (" [content-policy]" if index in failing else ""),
        }
        for index in range(count)
    ]


@pytest.fixture
def batch(run_dag, emulator, tmp_path):
    """Run a batch DAG on ``rows`` and return the run, its manifest (by row) and the emulator's counts."""

    def run(dag_id: str, rows: list[dict[str, Any]] | None = None, *, manifest: Path | None = None, **conf: Any):
        conf.setdefault("manifest_path", str(manifest or tmp_path / "manifest.jsonl"))
        conf.setdefault("requests_path", write_jsonl(tmp_path / "prompts.jsonl", rows or []))
        result = run_dag(dag_id, conf)
        local = "://" not in conf["manifest_path"]
        return result, (read_manifest(conf["manifest_path"]) if local else None) or {}

    return run


def test_a_50_row_batch_in_deferrable_mode_sends_one_post_per_row(batch, emulator) -> None:
    result, manifest = batch("batch_deferrable", prompts(50))
    assert result.state == "success", result.logs[-3000:]
    summary = result.xcom[("generate", "return_value")]
    assert summary["total"] == summary["succeeded"] == 50
    assert (summary["failed"], summary["skipped"], summary["invalid"]) == (0, 0, 0)
    assert emulator.stats()["submissions"] == 50
    assert len(manifest) == 50
    assert {entry.status for entry in manifest.values()} == {"succeeded"}
    assert len({entry.generation_id for entry in manifest.values()}) == 50
    assert all(entry.video_url and entry.video_url.startswith("http") for entry in manifest.values())
    assert [entry.key for entry in manifest.values()][:2] == ["clip-000", "clip-001"]
    assert result.logs.count("Wave:") >= 5  # max_in_flight=10: at least five waves through the triggerer


def test_on_the_worker_the_same_waves_run_without_a_triggerer(batch, emulator) -> None:
    result, manifest = batch("batch_worker", prompts(25))
    assert result.state == "success", result.logs[-3000:]
    assert result.xcom[("generate", "return_value")]["succeeded"] == 25
    assert emulator.stats()["submissions"] == 25
    assert "waiting on the worker" in result.logs
    assert {entry.status for entry in manifest.values()} == {"succeeded"}


def test_a_csv_dataset_is_read_with_its_header(batch, emulator, tmp_path) -> None:
    csv_file = tmp_path / "prompts.csv"
    csv_file.write_text('key,prompt,duration,metadata\nfox,A red fox,,"{""style"": ""noir""}"\nowl,An owl,8,\n')
    result, manifest = batch("batch_deferrable", requests_path=str(csv_file))
    assert result.state == "success", result.logs[-3000:]
    assert [(entry.key, entry.status) for entry in manifest.values()] == [("fox", "succeeded"), ("owl", "succeeded")]
    assert emulator.stats()["submissions"] == 2


def test_invalid_rows_fail_the_task_before_anything_is_sent(batch, emulator) -> None:
    rows = prompts(6)
    rows[2]["duration"] = -5
    rows[4] = {"key": "no-prompt", "fps": 24}
    result, manifest = batch("batch_deferrable", rows)
    assert result.state == "failed"
    assert "2 of 6 rows are invalid; nothing was sent" in result.logs
    # Airflow 3.0's dag.test() logs the error only as its repr (quotes escaped): matched in parts.
    assert "row 2 (line 3): " in result.logs
    assert "duration" in result.logs
    assert "must be a positive number, got -5" in result.logs
    assert "row 4 (line 5): " in result.logs
    assert emulator.stats()["submissions"] == 0
    assert manifest == {}


def test_invalid_rows_can_be_skipped_and_are_named_in_the_manifest(batch, emulator) -> None:
    rows = prompts(6)
    rows[1]["seed"] = "twelve"
    result, manifest = batch("batch_skip_invalid", rows)
    assert result.state == "success", result.logs[-3000:]
    summary = result.xcom[("generate", "return_value")]
    assert (summary["total"], summary["succeeded"], summary["invalid"]) == (6, 5, 1)
    assert manifest[1].status == "invalid"
    assert "'seed' must be an integer, got 'twelve'" in (manifest[1].error or "")
    assert manifest[1].generation_id is None
    assert emulator.stats()["submissions"] == 5


def test_failed_rows_within_max_failed_rows_let_the_task_succeed(batch, emulator) -> None:
    result, manifest = batch("batch_tolerant", prompts(12, failing={3, 7}))
    assert result.state == "success", result.logs[-3000:]
    summary = result.xcom[("generate", "return_value")]
    assert (summary["succeeded"], summary["failed"]) == (10, 2)
    assert manifest[3].status == "failed"
    assert "content" in (manifest[3].error or "")
    assert manifest[3].generation_id
    assert emulator.stats()["submissions"] == 12


def test_past_max_failed_rows_the_task_fails_after_the_rows_in_flight_and_sends_no_more(batch, emulator) -> None:
    result, manifest = batch("batch_deferrable", prompts(40, failing={2}))  # max_failed_rows=0, 10 in flight
    assert result.state == "failed"
    assert "1 of 40 rows failed, more than max_failed_rows allows (0)" in result.logs
    assert "row 2 ('clip-002'): failed:" in result.logs
    sent = emulator.stats()["submissions"]
    assert 10 <= sent < 40  # the first wave went out; nothing new once the failure was seen
    statuses = [entry.status for entry in manifest.values()]
    assert statuses.count("pending") == 40 - sent
    assert "running" not in statuses  # the rows in flight were waited for


def test_skip_existing_after_a_run_that_failed_half_way_sends_only_the_missing_rows(batch, emulator, tmp_path) -> None:
    manifest_path = tmp_path / "dataset-manifest.jsonl"
    first, manifest = batch("batch_deferrable", prompts(40, failing={2}), manifest=manifest_path)
    assert first.state == "failed"
    succeeded_before = {index for index, entry in manifest.items() if entry.status == "succeeded"}
    sent_before = emulator.stats()["submissions"]
    assert 0 < len(succeeded_before) < 40

    second, manifest = batch("batch_skip_existing", prompts(40), manifest=manifest_path)  # row 2 fixed
    assert second.state == "success", second.logs[-3000:]
    summary = second.xcom[("generate", "return_value")]
    assert summary["skipped"] == len(succeeded_before)
    assert summary["succeeded"] == 40 - len(succeeded_before)
    assert emulator.stats()["submissions"] - sent_before == 40 - len(succeeded_before)
    assert {index for index, entry in manifest.items() if entry.status == "skipped"} == succeeded_before
    assert all(entry.video_url for entry in manifest.values())


@pytest.mark.airflow(">=3.3", feature="durable retries through the task state store")
def test_a_retry_after_a_worker_lost_mid_wave_reattaches_to_every_submitted_row(batch, emulator) -> None:
    result, manifest = batch("batch_killed_mid_wave", prompts(25))
    assert result.state == "success", result.logs[-3000:]
    assert result.tasks["generate"] == ("success", 2)
    assert "simulated worker loss in the middle of a wave" in result.logs
    assert "Re-attached to 10 rows an earlier try submitted" in result.logs
    assert emulator.stats()["submissions"] == 25  # one POST per row over both tries
    assert len({entry.generation_id for entry in manifest.values()}) == 25


def test_videos_and_manifest_go_to_s3_with_size_and_checksum(batch, emulator, s3) -> None:
    client, bucket, conn_id = s3
    dataset = prompts(6)
    client.put_object(Bucket=bucket, Key="in/prompts.jsonl", Body="".join(json.dumps(row) + "\n" for row in dataset))
    result = batch(
        "batch_deferrable",
        requests_path=f"s3://{bucket}/in/prompts.jsonl",
        manifest_path=f"s3://{bucket}/out/manifest.jsonl",
        destination=f"s3://{bucket}/videos/{{key}}.mp4",
        storage_conn_id=conn_id,
    )[0]
    assert result.state == "success", result.logs[-3000:]
    manifest = [
        json.loads(line)
        for line in client.get_object(Bucket=bucket, Key="out/manifest.jsonl")["Body"].read().splitlines()
    ]
    assert [entry["status"] for entry in manifest] == ["succeeded"] * 6
    for entry in manifest:
        assert entry["destination"] == f"s3://{bucket}/videos/{entry['key']}.mp4"
        body = client.get_object(Bucket=bucket, Key=f"videos/{entry['key']}.mp4")["Body"].read()
        assert entry["size_bytes"] == len(body) > 0
        assert entry["sha256"] == hashlib.sha256(body).hexdigest()
    assert emulator.stats()["submissions"] == 6


def test_rows_from_an_upstream_task_arrive_as_an_xcomarg(run_dag, emulator, tmp_path) -> None:
    manifest = tmp_path / "manifest.jsonl"
    result = run_dag("batch_from_xcom", {"manifest_path": str(manifest)})
    assert result.state == "success", result.logs[-3000:]
    assert result.xcom[("generate", "return_value")]["succeeded"] == 7
    entries = read_manifest(str(manifest)) or {}
    assert [entry.key for entry in entries.values()] == [f"row-{n}" for n in range(7)]
    assert emulator.stats()["submissions"] == 7
