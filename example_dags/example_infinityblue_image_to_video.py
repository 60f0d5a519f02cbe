"""Image to video: animate a still, given either as a URL or as a local file.

What it shows
- ``image=`` with an http(s) URL: the API fetches the picture itself.
- ``image=`` with a local file path: the operator reads the file, checks it really is an image (PNG,
  JPEG, GIF, WEBP, BMP or TIFF) and under the size limit, and sends it as a base64 data URI. The file
  here ships beside this DAG; any absolute path on the worker works.
Both run in parallel and wait in the triggerer.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from airflow.sdk import DAG, Param

from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoOperator

POLL_SECONDS = float(os.environ.get("INFINITYBLUE_EXAMPLE_POLL_SECONDS", "10"))
FIRST_FRAME = Path(__file__).parent / "assets" / "first_frame.png"

with DAG(
    dag_id="example_infinityblue_image_to_video",
    schedule=None,
    start_date=datetime(2026, 11, 1),
    catchup=False,
    params={
        "image_url": Param(
            "https://upload.wikimedia.org/wikipedia/commons/3/3f/Fronalpstock_big.jpg",
            type="string",
            description="a picture the API can download",
        )
    },
    tags=["infinityblue", "example"],
    doc_md=__doc__,
) as dag:
    from_url = InfinityBlueGenerateVideoOperator(
        task_id="animate_image_url",
        prompt="The clouds drift slowly over the mountains, gentle camera push-in",
        image="{{ params.image_url }}",
        model="kling-v2-1-master",
        duration=5,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=30 * 60,
    )

    from_file = InfinityBlueGenerateVideoOperator(
        task_id="animate_local_file",
        prompt="The colours shimmer like light on water, slow zoom out",
        image=str(FIRST_FRAME),
        model="kling-v2-5-turbo",
        duration=5,
        deferrable=True,
        poll_interval=POLL_SECONDS,
        timeout=30 * 60,
    )
