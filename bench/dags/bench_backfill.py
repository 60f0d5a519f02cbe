"""The two DAGs ``bench/backfill.py`` compares, on the same generated dataset (its path in the run's conf).

- ``bench_backfill_mapped``: one ``InfinityBlueGenerateVideoOperator`` per row, mapped, deferrable, in a
  pool that counts deferred tasks (the cap on generations in flight).
- ``bench_backfill_batch``: one ``InfinityBlueGenerateVideoBatchOperator`` for every row.

``bench/backfill.py`` sets ``BENCH_POLL_SECONDS``, ``BENCH_POOL`` and ``BENCH_MAX_IN_FLIGHT`` for every
component of the deployment.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_infinityblue.operators.batch import InfinityBlueGenerateVideoBatchOperator
from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoOperator

POLL_SECONDS = float(os.environ.get("BENCH_POLL_SECONDS", "5"))
POOL = os.environ.get("BENCH_POOL", "bench_generations")
MAX_IN_FLIGHT = int(os.environ.get("BENCH_MAX_IN_FLIGHT", "100"))
START = datetime(2026, 11, 1)

with DAG("bench_backfill_mapped", schedule=None, start_date=START, catchup=False, tags=["bench"]) as mapped:

    @task
    def load_rows(requests_path: str, count: str) -> list[dict[str, Any]]:
        """The first ``count`` rows of the dataset, without their ``key`` (the single operator has none)."""
        lines = [line for line in Path(requests_path).read_text().splitlines() if line.strip()][: int(count)]
        rows = [json.loads(line) for line in lines]
        return [{key: value for key, value in row.items() if key != "key"} for row in rows]

    InfinityBlueGenerateVideoOperator.partial(
        task_id="generate",
        pool=POOL,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=60 * 60,
    ).expand_kwargs(load_rows("{{ dag_run.conf['requests_path'] }}", "{{ dag_run.conf['rows'] }}"))


with DAG("bench_backfill_batch", schedule=None, start_date=START, catchup=False, tags=["bench"]) as batch:
    InfinityBlueGenerateVideoBatchOperator(
        task_id="generate_all",
        requests_path="{{ dag_run.conf['requests_path'] }}",
        manifest_path="{{ dag_run.conf['manifest_path'] }}",
        max_in_flight=MAX_IN_FLIGHT,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=60 * 60,
    )
