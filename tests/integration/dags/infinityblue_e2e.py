"""DAGs the end-to-end tests run with ``dag.test()`` against the local emulator.

Waits are short (the emulator renders in about half a second); each DAG exercises one
way of using the provider.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_infinityblue.operators.infinityblue import (
    InfinityBlueDownloadVideoOperator,
    InfinityBlueGenerateVideoOperator,
)
from airflow_provider_infinityblue.sensors.infinityblue import InfinityBlueVideoSensor

START = datetime(2026, 11, 1)
FAST = {"poll_interval": 1, "timeout": 60}
GENERATED_ID = "{{ ti.xcom_pull(task_ids='submit', key='infinityblue_task_id') }}"


@task
def check_video_url(url: str) -> str:
    """Downstream task: the URL arrives through XCom, as a real pipeline's next step would get it."""
    if not url.startswith("http"):
        raise ValueError(f"not a video URL: {url!r}")
    return url


def generating_dag(dag_id: str, **operator_kwargs: Any) -> DAG:
    with DAG(dag_id, start_date=START, schedule=None, catchup=False) as dag:
        settings = {"prompt": "A red fox running through snow", "duration": 5, **FAST, **operator_kwargs}
        generate = InfinityBlueGenerateVideoOperator(task_id="generate", **settings)
        check_video_url(generate.output)
    return dag


deferrable = generating_dag("e2e_deferrable", deferrable=True)
synchronous = generating_dag("e2e_sync", deferrable=False)
failing = generating_dag("e2e_failed", deferrable=True, prompt="A riot [content-policy]")
timing_out = generating_dag("e2e_timeout", deferrable=True, timeout=1)

with DAG("e2e_no_wait", start_date=START, schedule=None, catchup=False) as no_wait:
    InfinityBlueGenerateVideoOperator(task_id="submit", prompt="A paper boat", wait_for_completion=False)

with DAG("e2e_sensor_poke", start_date=START, schedule=None, catchup=False) as sensor_poke:
    InfinityBlueGenerateVideoOperator(
        task_id="submit", prompt="A paper boat", wait_for_completion=False
    ) >> InfinityBlueVideoSensor(task_id="wait", generation_id=GENERATED_ID, mode="poke", poke_interval=0.2, timeout=60)

with DAG("e2e_sensor_reschedule", start_date=START, schedule=None, catchup=False) as sensor_reschedule:
    InfinityBlueGenerateVideoOperator(
        task_id="submit", prompt="A paper boat", wait_for_completion=False
    ) >> InfinityBlueVideoSensor(
        task_id="wait", generation_id=GENERATED_ID, mode="reschedule", poke_interval=0.2, timeout=60
    )

with DAG("e2e_sensor_deferrable", start_date=START, schedule=None, catchup=False) as sensor_deferrable:
    InfinityBlueGenerateVideoOperator(
        task_id="submit", prompt="A paper boat", wait_for_completion=False
    ) >> InfinityBlueVideoSensor(
        task_id="wait", generation_id=GENERATED_ID, deferrable=True, poke_interval=1, timeout=60
    )

with DAG(
    "e2e_templated_prompt",
    start_date=START,
    schedule=None,
    catchup=False,
    params={"subject": "lighthouse"},
    render_template_as_native_obj=False,
) as templated:
    InfinityBlueGenerateVideoOperator(
        task_id="generate",
        prompt="prompts/daily_prompt.txt",
        model="{{ params.get('model', 'kling-v2-1-master') }}",
        duration="{{ 2 + 3 }}",
        metadata={"negative_prompt": "blur", "style": {"title": "{{ params.subject | title }} {{ ds }}"}},
        deferrable=True,
        **FAST,
    )


class DiesAfterSubmitting(InfinityBlueGenerateVideoOperator):
    """Simulates a worker lost right after its POST on the first try."""

    def submit_job(self, context: Any) -> str:
        generation_id = super().submit_job(context)
        if context["ti"].try_number == 1:
            raise RuntimeError("simulated worker loss right after the submission")
        return generation_id


def retried_once(dag_id: str, operator_class: type = InfinityBlueGenerateVideoOperator, **operator_kwargs: Any) -> DAG:
    """A DAG whose one generating task is retried once, at once."""
    with DAG(dag_id, start_date=START, schedule=None, catchup=False) as dag:
        settings = {"prompt": "A comet over a quiet town", "retries": 1, "retry_delay": timedelta(0), **FAST}
        operator_class(task_id="generate", **settings, **operator_kwargs)
    return dag


for mode, is_deferrable in (("deferrable", True), ("sync", False)):
    globals()[f"durable_{mode}"] = retried_once(
        f"e2e_durable_retry_{mode}", DiesAfterSubmitting, deferrable=is_deferrable
    )
    # A gateway whose replicas lag: the new id answers 404 for a while (the emulator's invisible_polls) ...
    globals()[f"not_visible_yet_{mode}"] = retried_once(f"e2e_not_visible_yet_{mode}", deferrable=is_deferrable)
    # ... or never shows it: lost past a short grace, on the first try and on the retry.
    globals()[f"lost_{mode}"] = retried_once(f"e2e_lost_{mode}", deferrable=is_deferrable, not_found_grace=3)


def generating_and_downloading_dag(dag_id: str, *, deferrable: bool) -> DAG:
    """Generate, then download the video to ``dag_run.conf['destination']``: every path the network takes."""
    with DAG(dag_id, start_date=START, schedule=None, catchup=False) as dag:
        generate = InfinityBlueGenerateVideoOperator(
            task_id="generate", prompt="A tram crossing a bridge at dusk", deferrable=deferrable, **FAST
        )
        InfinityBlueDownloadVideoOperator(
            task_id="download", url=generate.output, destination="{{ dag_run.conf['destination'] }}"
        )
    return dag


network_deferrable = generating_and_downloading_dag("e2e_network_deferrable", deferrable=True)
network_sync = generating_and_downloading_dag("e2e_network_sync", deferrable=False)
