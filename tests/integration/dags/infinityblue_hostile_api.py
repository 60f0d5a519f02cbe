"""The generate operator against an API that echoes the key everywhere (tests/integration/test_hostile_api.py).

Each task's ``on_failure_callback`` appends the text of the exception it receives, as JSON, to the file
named by ``INFINITYBLUE_FAILURE_RECORD``: what an alert e-mail would carry (Airflow 3.1+: 3.0 gives
failure callbacks no exception).
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG

from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoOperator

FAILURE_RECORD_ENV = "INFINITYBLUE_FAILURE_RECORD"


def record_failure(context: Any) -> None:
    path = os.environ.get(FAILURE_RECORD_ENV)
    if path and "exception" in context:  # Airflow 3.0 gives failure callbacks no exception
        with open(path, "a", encoding="utf-8") as record:
            record.write(json.dumps(str(context["exception"])) + "\n")


for deferrable, name in ((False, "worker"), (True, "deferrable")):
    with DAG(f"hostile_api_{name}", start_date=datetime(2026, 11, 1), schedule=None, catchup=False) as dag:
        InfinityBlueGenerateVideoOperator(
            task_id="generate",
            prompt="A kite",
            deferrable=deferrable,
            poll_interval=1,
            timeout=30,
            retries=0,
            on_failure_callback=record_failure,
        )
    globals()[dag.dag_id] = dag
