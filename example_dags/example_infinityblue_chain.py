"""Chain DAGs with an Asset: one DAG generates a video, another picks it up when it is ready.

What it shows
- The generating DAG announces each new video as an event on the ``infinityblue_daily_video`` Asset,
  with the video URL and the remote task id in the event's ``extra``.
- The publishing DAG is scheduled on that Asset: Airflow starts it whenever a new video is announced.
  It reads the URL from the event that triggered it (or, when started by hand, from the latest event)
  and keeps a copy of the video, ready for a publishing step.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_infinityblue.operators.infinityblue import (
    InfinityBlueDownloadVideoOperator,
    InfinityBlueGenerateVideoOperator,
)

POLL_SECONDS = float(os.environ.get("INFINITYBLUE_EXAMPLE_POLL_SECONDS", "10"))
DAILY_VIDEO = Asset("infinityblue_daily_video")

with DAG(
    dag_id="example_infinityblue_chain_generate",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    tags=["infinityblue", "example"],
    doc_md=__doc__,
) as generating_dag:
    generate = InfinityBlueGenerateVideoOperator(
        task_id="generate",
        prompt="Sunrise over rooftops on {{ (dag_run.logical_date or dag_run.run_after) | ds }}, slow pan",
        duration=5,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        retries=1,
        retry_delay=timedelta(seconds=10),
    )

    @task(outlets=[DAILY_VIDEO])
    def announce(video_url: str, **context: Any) -> None:
        generation_id = context["ti"].xcom_pull(task_ids="generate", key="infinityblue_task_id")
        context["outlet_events"][DAILY_VIDEO].extra = {"video_url": video_url, "infinityblue_task_id": generation_id}

    announce(generate.output)


with DAG(
    dag_id="example_infinityblue_chain_publish",
    schedule=[DAILY_VIDEO],
    start_date=datetime(2026, 11, 1),
    catchup=False,
    params={"output_dir": Param("/tmp/infinityblue-videos", type="string")},
    tags=["infinityblue", "example"],
    doc_md=__doc__,
) as publishing_dag:

    @task(inlets=[DAILY_VIDEO])
    def video_to_publish(**context: Any) -> str:
        """The URL from the Asset event that started this run; the latest one for a manual run."""
        triggering = context["triggering_asset_events"].get(DAILY_VIDEO) or []
        events = list(triggering) or list(context["inlet_events"][DAILY_VIDEO])
        if not events:
            raise ValueError(f"No event on {DAILY_VIDEO.name} yet: run example_infinityblue_chain_generate first")
        return events[-1].extra["video_url"]

    InfinityBlueDownloadVideoOperator(
        task_id="keep_a_copy",
        url=video_to_publish(),
        # Runs started by an Asset event have no logical date: name the file after the run's time.
        destination="{{ params.output_dir }}/published/{{ dag_run.run_after | ts_nodash }}.mp4",
    )
