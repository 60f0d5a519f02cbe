"""The batch operator in real Airflow (``dag.test()``, deferrals inline) against the emulator on loopback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_infinityblue.batch.manifest import read_manifest

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
        manifest = manifest or tmp_path / "manifest.jsonl"
        requests_path = conf.pop("requests_path", None) or write_jsonl(tmp_path / "prompts.jsonl", rows or [])
        result = run_dag(dag_id, {"requests_path": requests_path, "manifest_path": str(manifest), **conf})
        return result, read_manifest(str(manifest)) or {}

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
