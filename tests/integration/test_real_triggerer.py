"""One deferred generation through a real scheduler, worker and triggerer, on whichever Airflow runs the tests.

dag.test() runs a trigger inline, without the triggerer's supervisor, so it cannot show what a trigger may
and may not call in a real triggerer: on Airflow 3.0 a sync call from the event loop to the supervisor
(the connection lookup, masking the key) kills the trigger without an event, which dag.test() never sees.
`make test-compat` runs this on every supported Airflow; the deployment tier does much more on the newest.
"""

from __future__ import annotations

import json
from pathlib import Path

from airflow_provider_infinityblue.testing import DEFAULT_FAKE_API_KEY, emulator_process
from deploy.deployment import LocalDeployment

REPO = Path(__file__).parents[2]
DAG_ID = "example_infinityblue_text_to_video"
BATCH_DAG_ID = "infinityblue_deployment_batch"


def test_a_deferred_generation_completes_in_a_real_triggerer(tmp_path: Path) -> None:
    with (
        emulator_process(generation_seconds=6) as emulator,
        LocalDeployment(
            home=tmp_path / "airflow",
            dag_folders={"examples": REPO / "example_dags", "deployment": REPO / "tests" / "deployment" / "dags"},
            environment={
                "AIRFLOW_CONN_INFINITYBLUE_DEFAULT": emulator.airflow_connection(),
                "INFINITYBLUE_EXAMPLE_POLL_SECONDS": "1",
            },
            # What a trigger may call in a triggerer does not depend on the metadata DB, and the venvs of
            # older Airflows (`make test-compat`) carry no PostgreSQL driver: the deployment tier runs on it.
            database="sqlite",
        ) as airflow,
    ):
        airflow.api.wait_for_dag(DAG_ID)
        airflow.api.unpause(DAG_ID)
        run_id = airflow.api.trigger(DAG_ID, conf={"output_dir": str(tmp_path / "videos")})
        run = airflow.api.wait_for_run(DAG_ID, run_id, timeout=240)
        assert run["state"] == "success", airflow.log_tails()
        generate = airflow.api.task_instance(DAG_ID, run_id, "generate")
        assert generate["try_number"] == 1  # the trigger's event resumed the first try
        triggerer = airflow.api.jobs("TriggererJob")[0]
        trigger_log = airflow.trigger_log(DAG_ID, run_id, "generate", triggerer_job_id=triggerer["id"])
        assert "is in_progress" in trigger_log  # the provider's trigger polled in the triggerer
        assert "exited with error" not in trigger_log
        assert DEFAULT_FAKE_API_KEY not in trigger_log

        # The batch: waves of deferrals to one InfinityBlueBatchTrigger each, the worker resuming in between.
        prompts = tmp_path / "prompts.jsonl"
        prompts.write_text("".join(f'{{"prompt": "A paper boat, take {n}"}}\n' for n in range(12)))
        submitted_before = emulator.stats()["submissions"]
        airflow.api.wait_for_dag(BATCH_DAG_ID)
        airflow.api.unpause(BATCH_DAG_ID)
        conf = {"requests_path": str(prompts), "manifest_path": str(tmp_path / "manifest.jsonl")}
        run_id = airflow.api.trigger(BATCH_DAG_ID, conf=conf)
        run = airflow.api.wait_for_run(BATCH_DAG_ID, run_id, timeout=300)
        assert run["state"] == "success", airflow.log_tails()
        manifest = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
        assert [entry["status"] for entry in manifest] == ["succeeded"] * 12
        assert airflow.api.task_instance(BATCH_DAG_ID, run_id, "generate_batch")["try_number"] == 1
        assert emulator.stats()["submissions"] - submitted_before == 12  # one per row
        trigger_log = airflow.trigger_log(BATCH_DAG_ID, run_id, "generate_batch", triggerer_job_id=triggerer["id"])
        assert "handing over to the worker" in trigger_log
        assert "exited with error" not in trigger_log
