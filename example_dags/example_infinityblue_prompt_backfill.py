"""Backfill a prompt dataset: one video per row, generated in parallel under a cap, with a manifest.

What it shows
- Dynamic task mapping: ``InfinityBlueGenerateVideoOperator.partial(...).expand_kwargs(...)`` makes one
  task per row of ``data/prompts.jsonl`` (each row has its own prompt, model and duration).
- A pool caps how many generations run at once. Create it before the first run, counting deferred
  tasks so that waiting generations hold their slot::

      airflow pools set infinityblue_generations 4 "InfinityBlue generations in flight" --include-deferred

- Every video is downloaded, and a manifest (prompt, remote task id, URL, file, sha256) is written
  beside the files, so the dataset can be audited or re-published later.

A failed row fails only its own mapped task; retries never pay twice for a row that was already
submitted (the remote task id is kept in the task state store).
"""

from __future__ import annotations

import csv
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param, task

from airflow_provider_infinityblue.operators.infinityblue import (
    InfinityBlueDownloadVideoOperator,
    InfinityBlueGenerateVideoOperator,
)

POLL_SECONDS = float(os.environ.get("INFINITYBLUE_EXAMPLE_POLL_SECONDS", "10"))
DATASET = Path(__file__).parent / "data" / "prompts.jsonl"
POOL = "infinityblue_generations"

with DAG(
    dag_id="example_infinityblue_prompt_backfill",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    params={"output_dir": Param("/tmp/infinityblue-videos", type="string")},
    tags=["infinityblue", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def load_prompts() -> list[dict[str, Any]]:
        """Read the dataset when the run starts, not when the DAG file is parsed."""
        rows = [json.loads(line) for line in DATASET.read_text().splitlines() if line.strip()]
        return [{"prompt": row["prompt"], "model": row["model"], "duration": row["duration"]} for row in rows]

    prompts = load_prompts()

    generate = InfinityBlueGenerateVideoOperator.partial(
        task_id="generate",
        pool=POOL,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=60 * 60,
        retries=2,
    ).expand_kwargs(prompts)

    download = InfinityBlueDownloadVideoOperator.partial(
        task_id="download",
        destination="{{ params.output_dir }}/backfill/{{ run_id | replace(':', '_') }}/{{ ti.map_index }}.mp4",
    ).expand(url=generate.output)

    @task
    def write_manifest(rows: list[dict[str, Any]], urls: list[str], files: list[str], **context: Any) -> str:
        """One line per video: what was asked, what the API called it, where the copy is and its checksum."""
        ti, count = context["ti"], len(rows)
        task_ids = ti.xcom_pull(task_ids="generate", key="infinityblue_task_id", map_indexes=list(range(count)))
        checksums = ti.xcom_pull(task_ids="download", key="sha256", map_indexes=list(range(count)))
        manifest = Path(files[0]).parent / "manifest.csv"
        with manifest.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["prompt", "model", "infinityblue_task_id", "video_url", "file", "sha256"])
            for index, row in enumerate(rows):
                writer.writerow(
                    [row["prompt"], row["model"], task_ids[index], urls[index], files[index], checksums[index]]
                )
        return str(manifest)

    write_manifest(prompts, generate.output, download.output)
