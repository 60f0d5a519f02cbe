"""Batch DAGs the end-to-end tests run with ``dag.test()`` against the local emulator.

Each test gives the input file and the manifest's place in the run's conf, so runs never share files.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoBatchOperator

START = datetime(2026, 11, 1)
FROM_CONF = {
    "requests_path": "{{ dag_run.conf['requests_path'] }}",
    "manifest_path": "{{ dag_run.conf['manifest_path'] }}",
    "destination": "{{ dag_run.conf.get('destination', '') }}",
    "destination_conn_id": "{{ dag_run.conf.get('storage_conn_id', '') }}",
    "manifest_conn_id": "{{ dag_run.conf.get('storage_conn_id', '') }}",
    "requests_conn_id": "{{ dag_run.conf.get('storage_conn_id', '') }}",
}
# dag.test() runs each trigger inline, so the worker's late report that min_wave_seconds guards against
# (see resume_lag) cannot race the next wave here.
QUICK = {
    "poll_interval": 1,
    "timeout": 120,
    "max_in_flight": 10,
    "max_submissions_per_second": 50,
    "refill_window": 2,
    "min_wave_seconds": 0,
}


class DiesAfterItsFirstWave(InfinityBlueGenerateVideoBatchOperator):
    """Simulates a worker lost mid-wave on the first try: its rows are submitted, the manifest never written."""

    first_try = False

    def _write_manifest(self, entries: Any, ledger: Any) -> str:
        if self.first_try:
            raise RuntimeError("simulated worker loss in the middle of a wave")
        return super()._write_manifest(entries, ledger)

    def execute(self, context: Any) -> Any:
        self.first_try = context["ti"].try_number == 1
        return super().execute(context)


def batch_dag(dag_id: str, operator: type[Any] = InfinityBlueGenerateVideoBatchOperator, **settings: Any) -> DAG:
    with DAG(dag_id, start_date=START, schedule=None, catchup=False) as dag:
        operator(
            task_id="generate",
            defaults={"model": "kling-v2-5-turbo", "duration": 5},
            **{**FROM_CONF, **QUICK, **settings},
        )
    return dag


deferrable = batch_dag("batch_deferrable", deferrable=True)
on_the_worker = batch_dag("batch_worker", deferrable=False)
skip_invalid = batch_dag("batch_skip_invalid", deferrable=True, on_invalid_row="skip")
tolerant = batch_dag("batch_tolerant", deferrable=True, max_failed_rows=0.5)
skip_existing = batch_dag("batch_skip_existing", deferrable=True, skip_existing=True)
killed_mid_wave = batch_dag(
    "batch_killed_mid_wave", DiesAfterItsFirstWave, deferrable=True, retries=1, retry_delay=timedelta(seconds=0)
)

with DAG("batch_from_xcom", start_date=START, schedule=None, catchup=False) as from_xcom:

    @task
    def load_rows(**context: Any) -> list[dict[str, Any]]:
        """An upstream task builds the rows; they reach the batch as an XComArg, not through a file."""
        return [{"key": f"row-{n}", "prompt": f"A lighthouse, take {n}", "fps": "24"} for n in range(7)]

    InfinityBlueGenerateVideoBatchOperator(
        task_id="generate",
        requests=load_rows(),
        manifest_path="{{ dag_run.conf['manifest_path'] }}",
        deferrable=True,
        **QUICK,
    )
