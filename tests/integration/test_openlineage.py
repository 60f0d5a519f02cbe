"""A real DAG run (``dag.test()``) with the OpenLineage provider enabled emits our inputs, outputs and run facet.

The run is in a child process: the OpenLineage provider decides once per process, when Airflow loads its
plugin, whether it is enabled, and every other test runs with it disabled (no transport configured).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_infinityblue import __version__
from tests.conftest import FAKE_API_KEY

if TYPE_CHECKING:
    from airflow_provider_infinityblue.testing import EmulatorHandle

REPO = Path(__file__).parents[2]
IMAGE = "https://images.example/first-frame.png?token=image-host-secret"

RUN_DAG = """
import sys

import pendulum
from airflow.sdk import DAG

from airflow_provider_infinityblue.operators.infinityblue import (
    InfinityBlueDownloadVideoOperator,
    InfinityBlueGenerateVideoOperator,
)

image, destination = sys.argv[1:3]
with DAG("infinityblue_lineage", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False) as dag:
    generate = InfinityBlueGenerateVideoOperator(
        task_id="generate", prompt="A lantern on a lake", image=image, duration=5, width=1280, height=720, fps=24,
        deferrable=True, poll_interval=1,
    )
    download = InfinityBlueDownloadVideoOperator(
        task_id="download", url="{{ ti.xcom_pull(task_ids='generate') }}", destination=destination
    )
    generate >> download

if __name__ == "__main__":
    print(f"DAG RUN STATE: {dag.test().state}")
"""


def run_with_lineage(tmp_path: Path, destination: Path) -> tuple[str, list[dict[str, Any]]]:
    """Run the DAG in a child process with OpenLineage's file transport; its state and the events emitted."""
    events_file = tmp_path / "openlineage.jsonl"
    # dag.test() serializes the DAG from the DAGs folder: one of its own, so that it parses only this file.
    dags_folder = tmp_path / "dags"
    dags_folder.mkdir()
    dag_file = dags_folder / "infinityblue_lineage.py"
    dag_file.write_text(RUN_DAG)
    env = {
        **os.environ,
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "infinityblue-tests",
    }
    env.pop("AIRFLOW__OPENLINEAGE__DISABLED", None)
    result = subprocess.run(
        [sys.executable, str(dag_file), IMAGE, str(destination)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-5000:]
    state = next(line for line in result.stdout.splitlines() if line.startswith("DAG RUN STATE: "))[15:]
    lines = events_file.read_text().splitlines() if events_file.exists() else []
    return state, [json.loads(line) for line in lines if line.strip()]


def complete_event(events: list[dict[str, Any]], task_id: str) -> dict[str, Any]:
    found = [
        event
        for event in events
        if event.get("eventType") == "COMPLETE" and event["job"]["name"] == f"infinityblue_lineage.{task_id}"
    ]
    assert len(found) == 1, [(event.get("eventType"), event["job"]["name"]) for event in events]
    return found[0]


def test_the_complete_events_carry_our_inputs_outputs_and_run_facet(
    airflow_db: None, emulator: EmulatorHandle, monkeypatch, tmp_path: Path
) -> None:
    connection = emulator.airflow_connection(FAKE_API_KEY, extra={"default_model": "veo_3_1"})
    monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", connection)
    destination = tmp_path / "videos" / "lantern.mp4"
    state, events = run_with_lineage(tmp_path, destination)
    assert state in ("success", "DagRunState.SUCCESS")
    assert destination.is_file()

    generate = complete_event(events, "generate")
    facet = generate["run"]["facets"]["infinityblueGeneration"]
    generation_id = facet["generationId"]
    assert {name: facet.get(name) for name in ("model", "duration", "width", "height", "fps")} == {
        "model": "veo_3_1",  # from the connection's default_model, through the deferral
        "duration": 5,
        "width": 1280,
        "height": 720,
        "fps": 24,
    }
    assert facet["_producer"] == f"https://github.com/infinityblue/airflow-provider-infinityblue/tree/{__version__}"
    assert facet["_schemaURL"].endswith("#/$defs/InfinityBlueGenerationRunFacet")
    assert [(d["namespace"], d["name"]) for d in generate["inputs"]] == [("https://images.example", "/first-frame.png")]
    assert [(d["namespace"], d["name"]) for d in generate["outputs"]] == [
        (emulator.url, f"/videos/{generation_id}.mp4")
    ]

    download = complete_event(events, "download")
    assert [(d["namespace"], d["name"]) for d in download["inputs"]] == [(emulator.url, f"/videos/{generation_id}.mp4")]
    assert [(d["namespace"], d["name"]) for d in download["outputs"]] == [("file", str(destination))]
    assert download["outputs"][0]["outputFacets"]["outputStatistics"]["size"] == destination.stat().st_size

    ours = json.dumps([generate["inputs"], generate["outputs"], facet, download["inputs"], download["outputs"]])
    assert "image-host-secret" not in ours
    assert FAKE_API_KEY not in json.dumps(events)
