"""One DAG per Airflow way of waiting, for the wait engine's table test (tests/integration/test_wait_modes.py).

Each waits for the same scripted answers from a loopback server; ``_short`` variants have a deadline that
passes. Tasks have no retries, so a run's outcome is its first try's.
"""

from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoOperator
from airflow_provider_infinityblue.sensors.infinityblue import InfinityBlueVideoSensor

START = datetime(2026, 11, 1)
TIMEOUTS = {"": 40, "_short": 4}

for suffix, timeout in TIMEOUTS.items():
    for deferrable, name in ((False, "worker"), (True, "deferrable")):
        with DAG(f"wait_modes_{name}{suffix}", start_date=START, schedule=None, catchup=False) as dag:
            InfinityBlueGenerateVideoOperator(
                task_id="wait", prompt="A kite", deferrable=deferrable, poll_interval=1, timeout=timeout, retries=0
            )
        globals()[dag.dag_id] = dag  # a module-level DAG, as the DAG processor and the tests find them
    for mode in ("poke", "reschedule"):
        with DAG(f"wait_modes_sensor_{mode}{suffix}", start_date=START, schedule=None, catchup=False) as dag:
            InfinityBlueVideoSensor(
                task_id="wait", generation_id="t1", mode=mode, poke_interval=1, timeout=timeout, retries=0
            )
        globals()[dag.dag_id] = dag
