"""Text to video, every day: generate a clip from a prompt that names the day, then keep a copy.

What it shows
- ``InfinityBlueGenerateVideoOperator`` with a prompt templated from the logical date. It submits the
  request, then defers: the worker slot is free while the video renders.
- ``InfinityBlueDownloadVideoOperator`` streaming the finished video into storage you own (the URL the
  API returns expires). ``destination`` may be a local path or an object storage URL such as
  ``s3://my-bucket/videos/...``.

Where the video goes: ``params.output_dir``, by default ``/tmp/infinityblue-videos`` (the system's temporary
folder, emptied on reboot on many systems): set your own in the trigger form or with ``--conf``.

Try it without an API key: ``make demo`` runs this DAG against the local emulator.
Set up for real: an ``infinityblue_default`` connection holding your key (see the README).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from airflow_provider_infinityblue.operators.infinityblue import (
    InfinityBlueDownloadVideoOperator,
    InfinityBlueGenerateVideoOperator,
)

# Seconds between status checks. Real generations take minutes; the demo and the tests, which run
# against the emulator, shorten it through this environment variable.
POLL_SECONDS = float(os.environ.get("INFINITYBLUE_EXAMPLE_POLL_SECONDS", "10"))

with DAG(
    dag_id="example_infinityblue_text_to_video",
    schedule="@daily",
    start_date=datetime(2026, 11, 1),
    catchup=False,
    params={
        "output_dir": Param(
            "/tmp/infinityblue-videos",
            type="string",
            description="Folder (or object storage URL) the video is saved under; the default is in the "
            "system's temporary folder.",
        )
    },
    tags=["infinityblue", "example"],
    doc_md=__doc__,
) as dag:
    generate = InfinityBlueGenerateVideoOperator(
        task_id="generate",
        # Rendered per run: each day gets its own clip. A run started by hand may have no logical date,
        # hence the fallback to the time the run was created for.
        prompt=(
            "A quiet harbour town on {{ (dag_run.logical_date or dag_run.run_after).strftime('%A, %d %B %Y') }}: "
            "fishing boats coming home "
            "at golden hour, gulls overhead, slow cinematic dolly shot"
        ),
        model="kling-v2-5-turbo",
        duration=5,
        width=1280,
        height=720,
        metadata={"negative_prompt": "text, watermark, blur"},
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=30 * 60,
        retries=1,  # a retry re-attaches to the generation already submitted: it never pays twice
        retry_delay=timedelta(seconds=10),
    )

    download = InfinityBlueDownloadVideoOperator(
        task_id="download",
        url=generate.output,  # the video URL the generate task returned
        destination="{{ params.output_dir }}/text_to_video/{{ (dag_run.logical_date or dag_run.run_after) | ds }}.mp4",
    )
