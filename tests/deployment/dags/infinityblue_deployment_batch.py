"""A batch that submits slowly (two POSTs a second), for the test that SIGKILLs its worker mid-wave.

The test writes the prompts and names the manifest in the run's conf. The retry must re-attach to every
row the killed try submitted, and never POST a row twice.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoBatchOperator

POLL_SECONDS = float(os.environ.get("INFINITYBLUE_EXAMPLE_POLL_SECONDS", "10"))

with DAG(
    dag_id="infinityblue_deployment_batch",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    tags=["infinityblue", "deployment-test"],
):
    InfinityBlueGenerateVideoBatchOperator(
        task_id="generate_batch",
        requests_path="{{ dag_run.conf['requests_path'] }}",
        manifest_path="{{ dag_run.conf['manifest_path'] }}",
        max_in_flight=10,
        max_submissions_per_second=2,
        # The row whose POST the kill interrupts may have been created without the task learning its id:
        # it is failed as unconfirmed (never sent again), so one failed row is allowed.
        max_failed_rows=1,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=600,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
