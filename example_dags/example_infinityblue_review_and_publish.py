"""Review before publishing: a person watches each generated video and decides what happens to it.

What it shows
- ``InfinityBlueGenerateVideoOperator`` rendering the prompt given when the run is started (the ``prompt``
  Param), deferred while the video renders.
- A human-in-the-loop step (``HITLOperator``, Airflow 3.1+): the reviewer sees the prompt and a link to the
  video under "Required actions" in the Airflow UI (or answers through the REST API), picks one of three
  options and may leave a note:
  - Publish: copy the video into storage you own (``params.output_dir``, a local folder or an object storage
    URL such as ``s3://my-bucket/videos``) and announce it as an event on the ``infinityblue_reviewed_video``
    Asset, with the URL, the copy and the note in the event's ``extra``: DAGs scheduled on that Asset take
    it from there.
  - Regenerate: start a new run of this DAG whose prompt is this one with the note added, e.g. "slower
    camera, warmer light". The new run is reviewed in turn.
  - Discard: nothing is published; the run ends.
- Nobody answering is a decision too: after a day the step takes its default, Discard, so that nothing goes
  out unseen and no run waits for ever. While it waits, the step holds no worker slot.

Airflow 3.0 has no human-in-the-loop operators: there this file defines no DAG.
"""

from __future__ import annotations

import inspect
import logging
import os
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import AirflowOptionalProviderFeatureException
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Asset, Param, task

from airflow_provider_infinityblue.operators.infinityblue import (
    InfinityBlueDownloadVideoOperator,
    InfinityBlueGenerateVideoOperator,
)

try:
    from airflow.providers.standard.operators.hitl import HITLOperator
except (ImportError, AirflowOptionalProviderFeatureException):  # Airflow 3.0, or an older standard provider
    HUMAN_REVIEW_AVAILABLE = False
else:
    HUMAN_REVIEW_AVAILABLE = True

DAG_ID = "example_infinityblue_review_and_publish"
POLL_SECONDS = float(os.environ.get("INFINITYBLUE_EXAMPLE_POLL_SECONDS", "10"))
REVIEWED_VIDEO = Asset("infinityblue_reviewed_video")
# The reviewer's options, and the first task of the path each one leads to.
PUBLISH, REGENERATE, DISCARD = "Publish", "Regenerate", "Discard"
NEXT_TASK = {PUBLISH: "publish", REGENERATE: "revise_prompt", DISCARD: "discard"}
# How long a reviewer has before the default (Discard) is taken.
REVIEW_WINDOW = timedelta(days=1)

log = logging.getLogger(__name__)


def review_window() -> dict[str, Any]:
    """The operator argument that bounds the wait for an answer.

    The standard provider of Airflow 3.2 and later calls it ``response_timeout``; older ones read the
    operator's ``execution_timeout`` for the same purpose.
    """
    if HUMAN_REVIEW_AVAILABLE and "response_timeout" in inspect.signature(HITLOperator.__init__).parameters:
        return {"response_timeout": REVIEW_WINDOW}
    return {"execution_timeout": REVIEW_WINDOW}


def revised(prompt: str, note: str) -> str:
    """The prompt with the reviewer's note added, as the next generation should read it."""
    note = note.strip()
    return f"{prompt.rstrip().rstrip('.')}. {note}" if note else prompt


if HUMAN_REVIEW_AVAILABLE:
    with DAG(
        dag_id=DAG_ID,
        schedule=None,  # started by hand, by another DAG, or by its own "Regenerate"
        start_date=datetime(2026, 11, 1),
        catchup=False,
        params={
            "prompt": Param(
                "A lighthouse on a cliff at dusk, waves breaking below, slow aerial orbit",
                type="string",
                minLength=1,
                description="what to generate",
            ),
            "output_dir": Param("/tmp/infinityblue-videos", type="string", description="where published videos go"),
        },
        tags=["infinityblue", "example"],
        doc_md=__doc__,
    ) as dag:
        generate = InfinityBlueGenerateVideoOperator(
            task_id="generate",
            prompt="{{ params.prompt }}",
            duration=5,
            deferrable=True,
            poll_interval=POLL_SECONDS,
            timeout=30 * 60,
            retries=1,  # a retry re-attaches to the generation already submitted: it never pays twice
            retry_delay=timedelta(seconds=10),
        )

        review = HITLOperator(
            task_id="review",
            subject="Publish this InfinityBlue video?",
            # Markdown, rendered per run: the reviewer needs the prompt and the video to decide.
            body=(
                "**Prompt:** {{ params.prompt }}\n\n"
                "**Video:** [{{ ti.xcom_pull(task_ids='generate') }}]({{ ti.xcom_pull(task_ids='generate') }}) "
                "(the link expires: decide within the day)\n\n"
                "*Publish* copies it to `{{ params.output_dir }}` and announces it. *Regenerate* makes a new "
                "one from this prompt plus your note. *Discard* drops it."
            ),
            options=[PUBLISH, REGENERATE, DISCARD],
            # Taken when nobody answers within the review window: nothing is published unseen.
            defaults=[DISCARD],
            # A form field: what the reviewer writes here reaches the tasks below through this step's XCom.
            params={
                "note": Param(
                    "",
                    type="string",
                    title="Note",
                    description="For Regenerate: what to change, added to the prompt. Kept with the decision.",
                )
            },
            **review_window(),
        )
        generate >> review

        # The step's XCom holds the decision: {"chosen_options": [...], "params_input": {"note": ...},
        # "responded_by_user": {...} or None when the default was taken, "responded_at": ...}.
        @task.branch
        def follow_decision(decision: dict[str, Any]) -> str:
            return NEXT_TASK[decision["chosen_options"][0]]

        decided = follow_decision(review.output)

        # -- Publish ------------------------------------------------------------------------------
        publish = InfinityBlueDownloadVideoOperator(
            task_id="publish",
            url=generate.output,
            # Named after the generation, so that each published file can be traced back to it.
            destination=(
                "{{ params.output_dir }}/reviewed/"
                "{{ ti.xcom_pull(task_ids='generate', key='infinityblue_task_id') }}.mp4"
            ),
        )

        @task(outlets=[REVIEWED_VIDEO])
        def announce(published_to: str, video_url: str, decision: dict[str, Any], **context: Any) -> None:
            """One event on the Asset per published video; consumers read what they need from its extra."""
            reviewer = decision["responded_by_user"] or {}
            context["outlet_events"][REVIEWED_VIDEO].extra = {
                "video_url": video_url,
                "published_to": published_to,
                "prompt": context["params"]["prompt"],
                "note": decision["params_input"].get("note", ""),
                "reviewed_by": reviewer.get("name"),
            }

        decided >> publish
        announce(publish.output, generate.output, review.output)

        # -- Regenerate ---------------------------------------------------------------------------
        @task
        def revise_prompt(decision: dict[str, Any], **context: Any) -> dict[str, Any]:
            """The next run's conf: the same settings, the prompt revised with the note."""
            params = context["params"]
            prompt = revised(params["prompt"], decision["params_input"].get("note", ""))
            return {"prompt": prompt, "output_dir": params["output_dir"]}

        new_settings = revise_prompt(review.output)
        decided >> new_settings
        TriggerDagRunOperator(
            task_id="regenerate",
            trigger_dag_id=DAG_ID,
            conf=new_settings,
            # This run ends now; the new one is reviewed on its own.
            wait_for_completion=False,
        )

        # -- Discard ------------------------------------------------------------------------------
        @task
        def discard(decision: dict[str, Any]) -> None:
            if decision["responded_by_user"] is None:
                log.info("Nobody reviewed the video within %s: discarded, nothing published.", REVIEW_WINDOW)
            else:
                note = decision["params_input"].get("note", "")
                log.info("Discarded by the reviewer, nothing published. Note: %r", note)

        decided >> discard(review.output)
