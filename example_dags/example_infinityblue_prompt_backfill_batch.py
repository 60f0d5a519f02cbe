"""Backfill a prompt dataset of 1,000 rows from one task: the batch operator, in waves, with a manifest.

What it shows
- ``InfinityBlueGenerateVideoBatchOperator`` generates every row of a JSONL file from one task
  instance: it submits up to ``max_in_flight`` rows, waits for all of them in one trigger, and when
  a quarter have finished, resumes on a worker for a moment to submit the next ones, until every row
  has finished. One POST per row, one trigger per wave, a handful of worker runs in all.
- The dataset is made when the run starts, by a small task: the 20 prompts of ``data/prompts.jsonl``
  x 5 styles x 10 seeds = 1,000 rows, each with a ``key`` (``03-watercolor-s7``). It is generated
  rather than shipped so that the repository holds one copy of the prompts, and so that the
  ``rows`` param can choose a smaller run (a test runs 30 rows). The rows come out in the same order
  with the same content every time, so their fingerprints are stable across runs.
- The manifest (``manifest.jsonl`` under ``output_dir``, one line per row: key, generation id, status,
  video URL, error, times) is rewritten after every wave. With ``skip_existing=True`` a second run
  skips every row that already succeeded there: re-running after a partial failure only pays for
  the rows that are missing.

Mapping the single operator or the batch?
- Map ``InfinityBlueGenerateVideoOperator`` (``example_infinityblue_prompt_backfill``) for dozens of
  rows: each row is a task instance of its own, with its own state, log, retries and XCom in the UI,
  and a failed row can be cleared and re-run alone.
- Use the batch for hundreds of rows and more: each mapped row costs a scheduler decision, a worker
  start, a trigger and a second worker start, which is what limits a mapped backfill long before the
  API does. The batch pays that per wave instead of per row; rows are followed in the manifest, not
  in the UI.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param, task

from airflow_provider_infinityblue.operators.batch import InfinityBlueGenerateVideoBatchOperator

POLL_SECONDS = float(os.environ.get("INFINITYBLUE_EXAMPLE_POLL_SECONDS", "10"))
PROMPTS = Path(__file__).parent / "data" / "prompts.jsonl"
STYLES = ("photorealistic", "watercolor", "35mm film", "claymation", "anime")
SEEDS = range(10)
OUTPUT = "{{ params.output_dir }}/backfill_batch"

with DAG(
    dag_id="example_infinityblue_prompt_backfill_batch",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    params={
        "output_dir": Param("/tmp/infinityblue-videos", type="string"),
        "rows": Param(1000, type="integer", minimum=1, maximum=len(STYLES) * len(SEEDS) * 20),
        "max_in_flight": Param(100, type="integer", minimum=1),
    },
    tags=["infinityblue", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def make_dataset(rows: str, output_dir: str) -> str:
        """Write the first ``rows`` of prompts x styles x seeds as JSONL; answers the file's path."""
        count = int(rows)  # rendered from a template: a string
        prompts = [json.loads(line) for line in PROMPTS.read_text().splitlines() if line.strip()]
        folder = Path(output_dir) / "backfill_batch"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "prompts.jsonl"
        written = 0
        with path.open("w") as out:
            for seed in SEEDS:
                for style in STYLES:
                    for number, prompt in enumerate(prompts):
                        if written == count:
                            return str(path)
                        row = {
                            "key": f"{number:02d}-{style.replace(' ', '')}-s{seed}",
                            "prompt": f"{prompt['prompt']}, {style}",
                            "model": prompt["model"],
                            "duration": prompt["duration"],
                            "seed": seed,
                        }
                        out.write(json.dumps(row) + "\n")
                        written += 1
        return str(path)

    dataset = make_dataset(rows="{{ params.rows }}", output_dir="{{ params.output_dir }}")

    InfinityBlueGenerateVideoBatchOperator(
        task_id="generate_all",
        requests_path=dataset,
        manifest_path=f"{OUTPUT}/manifest.jsonl",
        max_in_flight="{{ params.max_in_flight }}",
        skip_existing=True,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=60 * 60,
        max_failed_rows=0.01,
        retries=2,
    )
