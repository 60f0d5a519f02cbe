"""A generation that waits on the worker (``deferrable=False``), for the worker-loss test.

The deployment test SIGKILLs the worker while this task polls; the retry must re-attach to the
generation already paid for instead of submitting it again.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoOperator

POLL_SECONDS = float(os.environ.get("INFINITYBLUE_EXAMPLE_POLL_SECONDS", "10"))

with DAG(
    dag_id="infinityblue_deployment_worker_loss",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    tags=["infinityblue", "deployment-test"],
):
    InfinityBlueGenerateVideoOperator(
        task_id="generate_on_worker",
        prompt="A lighthouse in a storm, waves crashing, slow push-in",
        deferrable=False,
        poll_interval=POLL_SECONDS,
        timeout=600,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
