"""The OpenLineage facets of the generate and download operators, built from operators that ran against the emulator."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest
from openlineage.client.serde import Serde

from airflow_provider_infinityblue import __version__
from airflow_provider_infinityblue.operators.download import InfinityBlueDownloadVideoOperator
from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoOperator
from airflow_provider_infinityblue.operators.openlineage import GENERATION_RUN_FACET, InfinityBlueGenerationRunFacet
from airflow_provider_infinityblue.testing import running_emulator
from tests.unit.fakes import task_context

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from airflow_provider_infinityblue.testing import EmulatorHandle

API_KEY = "sk-lineage-test-0000secret0000"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator(generation_seconds=0.2, api_key=API_KEY) as handle:
        yield handle


@pytest.fixture(autouse=True)
def connection(emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", emulator.airflow_connection(API_KEY))


def generated(**kwargs: Any) -> tuple[InfinityBlueGenerateVideoOperator, dict[str, Any]]:
    """An operator that generated a video on the worker, and its task context."""
    settings = {"task_id": "generate", "prompt": "A glass whale", "deferrable": False, "poll_interval": 1}
    operator = InfinityBlueGenerateVideoOperator(**{**settings, **kwargs})
    context = task_context()
    operator.execute(context)
    return operator, context


def as_json(lineage: Any) -> dict[str, Any]:
    """The lineage as an OpenLineage event would carry it."""
    return {
        "inputs": [json.loads(Serde.to_json(dataset)) for dataset in lineage.inputs],
        "outputs": [json.loads(Serde.to_json(dataset)) for dataset in lineage.outputs],
        "run": {name: json.loads(Serde.to_json(facet)) for name, facet in lineage.run_facets.items()},
    }


def names(datasets: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(dataset["namespace"], dataset["name"]) for dataset in datasets]


class TestGenerate:
    def test_the_run_facet_says_how_the_video_was_made(self, emulator: EmulatorHandle) -> None:
        operator, context = generated(model="veo_3_1", duration="5", width="1280", height=720, fps="24")
        lineage = operator.get_openlineage_facets_on_complete(None)
        facet = lineage.run_facets[GENERATION_RUN_FACET]
        assert isinstance(facet, InfinityBlueGenerationRunFacet)
        assert as_json(lineage)["run"][GENERATION_RUN_FACET] == {
            "_producer": f"https://github.com/infinityblue/airflow-provider-infinityblue/tree/{__version__}",
            "_schemaURL": "https://github.com/infinityblue/airflow-provider-infinityblue#/$defs/InfinityBlueGenerationRunFacet",
            "model": "veo_3_1",
            "generationId": context["ti"].xcom["infinityblue_task_id"],
            "duration": 5,
            "width": 1280,
            "height": 720,
            "fps": 24,
        }
        assert names(as_json(lineage)["outputs"]) == [(emulator.url, f"/videos/{facet.generationId}.mp4")]

    def test_the_model_is_the_one_resolved_from_the_connection(self, emulator, monkeypatch) -> None:
        monkeypatch.setenv(
            "AIRFLOW_CONN_INFINITYBLUE_DEFAULT", emulator.airflow_connection(API_KEY, extra={"default_model": "sora-2"})
        )
        operator, _ = generated()
        facet = as_json(operator.get_openlineage_facets_on_complete(None))["run"][GENERATION_RUN_FACET]
        assert (facet["model"], "duration" in facet) == ("sora-2", False)  # what was not asked for is left out

    def test_an_image_url_is_the_input_without_its_query(self) -> None:
        operator, _ = generated(image="https://user:pw@Images.example/in/cat.png?token=sk-very-secret#frag")
        lineage = as_json(operator.get_openlineage_facets_on_complete(None))
        assert names(lineage["inputs"]) == [("https://images.example", "/in/cat.png")]
        assert "secret" not in json.dumps(lineage)

    def test_a_local_image_file_is_an_input_in_the_file_namespace(self, tmp_path: Path) -> None:
        image = tmp_path / "first frame.png"
        image.write_bytes(PNG)
        operator, _ = generated(image=str(image))
        assert names(as_json(operator.get_openlineage_facets_on_complete(None))["inputs"]) == [("file", str(image))]

    def test_a_data_uri_image_is_no_dataset_and_its_bytes_are_in_no_facet(self) -> None:
        data = base64.b64encode(PNG).decode()
        operator, _ = generated(image=f"data:image/png;base64,{data}")
        lineage = as_json(operator.get_openlineage_facets_on_complete(None))
        assert lineage["inputs"] == []
        assert data not in json.dumps(lineage)
        assert len(lineage["outputs"]) == 1

    def test_the_api_key_is_in_no_facet(self) -> None:
        operator, _ = generated(image="https://images.example/cat.png", metadata={"style": "ink"})
        assert API_KEY not in json.dumps(as_json(operator.get_openlineage_facets_on_complete(None)))

    def test_a_worker_resuming_from_the_trigger_reports_the_same(self, emulator: EmulatorHandle) -> None:
        _, context = generated(model="veo_3_1")  # a finished generation, for the event
        xcom = context["ti"].xcom
        resumed_context = task_context()  # a fresh worker: only what the submitting try pushed to XCom
        resumed_context["ti"].xcom.update(infinityblue_task_id=xcom["infinityblue_task_id"], model=xcom["model"])
        resumed = InfinityBlueGenerateVideoOperator(task_id="generate", prompt="A glass whale", fps=30)
        event = {"status": "success", "generation_id": xcom["infinityblue_task_id"], "message": "done",
                 "video_url": xcom["video_url"]}  # fmt: skip
        resumed.execute_complete(resumed_context, event=event)
        lineage = as_json(resumed.get_openlineage_facets_on_complete(None))
        facet = lineage["run"][GENERATION_RUN_FACET]
        assert (facet["model"], facet["generationId"], facet["fps"]) == ("veo_3_1", xcom["infinityblue_task_id"], 30)
        assert names(lineage["outputs"]) == [(emulator.url, f"/videos/{xcom['infinityblue_task_id']}.mp4")]

    def test_a_task_that_failed_before_submitting_still_describes_its_request(self) -> None:
        operator = InfinityBlueGenerateVideoOperator(task_id="generate", prompt="A whale", model="veo_3_1", width="x")
        lineage = as_json(operator.get_openlineage_facets_on_complete(None))  # what the provider calls on failure
        assert lineage["outputs"] == []
        assert lineage["run"][GENERATION_RUN_FACET]["model"] == "veo_3_1"
        assert "width" not in lineage["run"][GENERATION_RUN_FACET]


class TestDownload:
    def test_a_local_destination_is_in_the_file_namespace_with_the_size_saved(self, tmp_path: Path) -> None:
        _, context = generated()
        video_url = context["ti"].xcom["video_url"]
        download = InfinityBlueDownloadVideoOperator(
            task_id="download", url=f"{video_url}?X-Amz-Signature=sk-signed-secret", destination=str(tmp_path / "v.mp4")
        )
        download_context = task_context()
        saved_to = download.execute(download_context)
        lineage = as_json(download.get_openlineage_facets_on_complete(None))
        video = video_url.split("/videos/")
        assert names(lineage["inputs"]) == [(video[0], f"/videos/{video[1]}")]
        assert names(lineage["outputs"]) == [("file", saved_to)]
        statistics = lineage["outputs"][0]["outputFacets"]["outputStatistics"]
        assert statistics["size"] == download_context["ti"].xcom["size_bytes"] > 0
        assert "secret" not in json.dumps(lineage)

    @pytest.mark.parametrize(
        ("destination", "expected"),
        [
            ("s3://videos-bucket/daily/2026-01-01.mp4", ("s3://videos-bucket", "daily/2026-01-01.mp4")),
            ("s3://aws_videos@videos-bucket/v.mp4", ("s3://videos-bucket", "v.mp4")),  # the connection id is no name
            ("gs://media/out/v.mp4", ("gs://media", "out/v.mp4")),
            ("file:///data/videos/v.mp4", ("file", "/data/videos/v.mp4")),
        ],
    )
    def test_an_object_storage_destination_is_named_by_its_scheme_and_bucket(
        self, destination: str, expected: tuple[str, str]
    ) -> None:
        download = InfinityBlueDownloadVideoOperator(
            task_id="download", url="https://cdn.example/v.mp4?sig=abc", destination=destination
        )
        lineage = as_json(download.get_openlineage_facets_on_complete(None))  # not run: the rendered destination
        assert names(lineage["outputs"]) == [expected]
        assert names(lineage["inputs"]) == [("https://cdn.example", "/v.mp4")]


def test_importing_the_operators_loads_nothing_of_openlineage() -> None:
    modules = [
        "airflow_provider_infinityblue.operators.infinityblue",
        "airflow_provider_infinityblue.operators.download",
        "airflow_provider_infinityblue.operators.batch",
    ]
    # Airflow's providers manager reads every installed provider's metadata: that much is not ours to avoid.
    metadata = ["airflow.providers.openlineage", "airflow.providers.openlineage.get_provider_info"]
    code = (
        f"import sys; [__import__(name) for name in {modules!r}]; "
        f"print(sorted(name for name in sys.modules if 'openlineage' in name and name not in {metadata!r}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
