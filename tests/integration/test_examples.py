"""The example DAGs: each imports cleanly and fast, and each runs end to end against the emulator.

The review-before-publishing example waits for a person, which ``dag.test()`` cannot be (it would wait for
an answer from an API server it does not have): here its import and its shape are checked, and the
deployment tier (tests/deployment/test_review_and_publish.py) runs it and answers it through the REST API.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from airflow_provider_infinityblue.version_compat import AIRFLOW_V_3_1_PLUS
from tests.conftest import FAKE_API_KEY
from tests.emulator.video_probe import probe_video

EXAMPLES = Path(__file__).parents[2] / "example_dags"
EXAMPLE_FILES = sorted(EXAMPLES.glob("example_*.py"))
# What importing one example may cost once Airflow itself is loaded: the provider's share of a DAG parse.
PARSE_BUDGET_SECONDS = 0.5
REVIEW = "example_infinityblue_review_and_publish"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_example_dag_imports_without_errors(airflow_db) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow < 3.2
        from airflow.models.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    # Airflow 3.0 has no human-in-the-loop operators: there the review example's file defines no DAG.
    needing_human_review = {REVIEW} if AIRFLOW_V_3_1_PLUS else set()
    assert set(bag.dag_ids) == {
        "example_infinityblue_text_to_video",
        "example_infinityblue_image_to_video",
        "example_infinityblue_prompt_backfill",
        "example_infinityblue_prompt_backfill_batch",
        "example_infinityblue_chain_generate",
        "example_infinityblue_chain_publish",
        *needing_human_review,
    }
    assert all("infinityblue" in dag.tags for dag in bag.dags.values())


def test_examples_parse_within_budget_without_heavy_imports() -> None:
    """Timed in a fresh interpreter after Airflow is imported: what the provider adds to each DAG parse."""
    code = (
        # Airflow's own cost of the DAG features the examples use is paid first, by a DAG without the provider,
        # so that only the provider's share is timed.
        "import json, runpy, sys, time, pendulum\n"
        "from airflow.sdk import DAG, Asset, Param, task\n"
        "from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator\n"
        "try:\n"
        "    from airflow.providers.standard.operators.hitl import HITLOperator\n"
        "except Exception:\n"  # Airflow 3.0: the module refuses to load
        "    pass\n"
        "with DAG('warm_up', schedule='@daily', start_date=pendulum.datetime(2026, 1, 1), params={'n': Param(1)}):\n"
        "    task(outlets=[Asset('warm_up')])(lambda: None).override(task_id='t')()\n"
        # Airflow 3.0 loads aiohttp itself: only what the examples add counts.
        "already = set(sys.modules)\n"
        "times = {}\n"
        f"for path in {[str(p) for p in EXAMPLE_FILES]!r}:\n"
        "    started = time.perf_counter()\n"
        "    runpy.run_path(path)\n"
        "    times[path] = time.perf_counter() - started\n"
        "heavy = [m for m in ('aiohttp', 'requests') if m in sys.modules and m not in already]\n"
        "print(json.dumps({'times': times, 'heavy': heavy}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(measured["times"]) == len(EXAMPLE_FILES) == 6
    assert {path: t for path, t in measured["times"].items() if t >= PARSE_BUDGET_SECONDS} == {}
    assert measured["heavy"] == []


@pytest.mark.parametrize("with_logical_date", [True, False], ids=["scheduled", "manual-without-logical-date"])
def test_text_to_video(run_dag, emulator, tmp_path, with_logical_date) -> None:
    result = run_dag(
        "example_infinityblue_text_to_video", {"output_dir": str(tmp_path)}, with_logical_date=with_logical_date
    )
    assert result.state == "success", result.logs[-3000:]
    video = Path(result.xcom[("download", "return_value")])
    assert video.parent == tmp_path / "text_to_video"
    # What the DAG asked for (5 s at 1280x720; the API's default 24 fps), as the emulator renders it.
    probed = probe_video(video)
    assert (probed.width, probed.height, probed.fps, probed.frames) == (1280, 720, 24, 120)
    assert probed.seconds == pytest.approx(5.0, abs=0.05)
    assert result.xcom[("download", "sha256")] == sha256_of(video)
    prompt = result.rendered["generate"]["prompt"]
    assert "{{" not in prompt
    assert prompt.startswith("A quiet harbour town on ")
    assert FAKE_API_KEY not in result.logs


def test_image_to_video_from_url_and_from_local_file(run_dag, emulator) -> None:
    result = run_dag("example_infinityblue_image_to_video")
    assert result.state == "success", result.logs[-3000:]
    for task_id in ("animate_image_url", "animate_local_file"):
        assert result.xcom[(task_id, "return_value")].startswith(emulator.url)
    assert result.rendered["animate_image_url"]["image"].startswith("https://")
    assert result.rendered["animate_local_file"]["image"].endswith("assets/first_frame.png")
    assert emulator.stats()["submissions"] == 2


# Twenty mapped generations, deferred one after another by dag.test(): about 40 s on Airflow 3.3, and
# several minutes on 3.1, whose dag.test() resumes deferred tasks more slowly.
@pytest.mark.timeout(600)
def test_prompt_backfill_maps_downloads_and_writes_a_manifest(run_dag, emulator, tmp_path) -> None:
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(
        "infinityblue_generations", slots=4, description="InfinityBlue generations in flight", include_deferred=True
    )
    result = run_dag("example_infinityblue_prompt_backfill", {"output_dir": str(tmp_path)})
    assert result.state == "success", result.logs[-3000:]
    rows = [line for line in (EXAMPLES / "data" / "prompts.jsonl").read_text().splitlines() if line.strip()]
    assert len(rows) == 20
    assert len(result.mapped_xcom[("generate", "return_value")]) == 20
    assert emulator.stats()["submissions"] == 20
    manifest = Path(result.xcom[("write_manifest", "return_value")])
    with manifest.open() as handle:
        entries = list(csv.DictReader(handle))
    assert len(entries) == 20
    assert {entry["infinityblue_task_id"] for entry in entries} == set(
        result.mapped_xcom[("generate", "infinityblue_task_id")].values()
    )
    for entry in entries:
        assert entry["video_url"].startswith(emulator.url)
        assert sha256_of(Path(entry["file"])) == entry["sha256"]
    assert entries[0]["prompt"].startswith("A paper boat")
    assert "XCom not found" not in result.logs  # the manifest reads exactly the mapped XComs there are


def test_prompt_backfill_batch_generates_the_rows_in_waves_and_skips_them_on_a_rerun(
    run_dag, emulator, tmp_path
) -> None:
    from airflow_provider_infinityblue.batch.manifest import read_manifest

    conf = {"output_dir": str(tmp_path), "rows": 30, "max_in_flight": 10}
    result = run_dag("example_infinityblue_prompt_backfill_batch", conf)
    assert result.state == "success", result.logs[-3000:]
    summary = result.xcom[("generate_all", "return_value")]
    assert (summary["total"], summary["succeeded"], summary["failed"], summary["skipped"]) == (30, 30, 0, 0)
    assert emulator.stats()["submissions"] == 30
    assert result.logs.count("Wave:") >= 3  # 10 in flight at most: the 30 rows went through several waves
    dataset = Path(result.xcom[("make_dataset", "return_value")])
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    assert len(rows) == len({row["key"] for row in rows}) == 30
    assert rows[0]["key"] == "00-photorealistic-s0"
    assert rows[0]["prompt"].startswith("A paper boat")
    assert rows[0]["prompt"].endswith(", photorealistic")
    manifest = read_manifest(summary["manifest_path"]) or {}
    assert Path(summary["manifest_path"]) == tmp_path / "backfill_batch" / "manifest.jsonl"
    assert [entry.key for entry in manifest.values()] == [row["key"] for row in rows]
    assert {entry.status for entry in manifest.values()} == {"succeeded"}

    # A second run over the same rows pays for nothing: every row already succeeded in the manifest.
    again = run_dag("example_infinityblue_prompt_backfill_batch", conf)
    assert again.state == "success", again.logs[-3000:]
    assert again.xcom[("generate_all", "return_value")]["skipped"] == 30
    assert emulator.stats()["submissions"] == 30


def test_chain_passes_the_video_through_an_asset_event(run_dag, emulator, tmp_path) -> None:
    generated = run_dag("example_infinityblue_chain_generate")
    assert generated.state == "success", generated.logs[-3000:]
    url = generated.xcom[("generate", "return_value")]

    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        event = session.scalars(
            select(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "infinityblue_daily_video")
            .order_by(AssetEvent.id.desc())
        ).first()
        assert event is not None
        assert event.extra["video_url"] == url

    # Started by an Asset event, a run has no logical date.
    published = run_dag("example_infinityblue_chain_publish", {"output_dir": str(tmp_path)}, with_logical_date=False)
    assert published.state == "success", published.logs[-3000:]
    assert published.xcom[("video_to_publish", "return_value")] == url
    copy = Path(published.xcom[("keep_a_copy", "return_value")])
    with requests.Session() as direct:
        direct.trust_env = False  # the emulator is on loopback, whatever proxy the environment names
        generated_video = direct.get(url, timeout=60).content
    assert copy.read_bytes() == generated_video
    assert probe_video(copy).seconds == pytest.approx(5.0, abs=0.05)  # the 5 s the generating DAG asked for


@pytest.mark.airflow(">=3.1", feature="human-in-the-loop operators")
def test_review_and_publish_routes_each_decision_and_keeps_the_note(dags) -> None:
    from airflow.providers.standard.operators.hitl import HITLOperator
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator

    dag = dags[REVIEW]
    review = dag.get_task("review")
    assert isinstance(review, HITLOperator)
    assert review.options == ["Publish", "Regenerate", "Discard"]
    # Unanswered, the video is discarded after a day (the argument's name depends on the standard provider).
    assert review.defaults == ["Discard"]
    assert timedelta(days=1) in (getattr(review, "response_timeout", None), review.execution_timeout)
    assert review.params["note"] == ""
    assert "{{ params.prompt }}" in review.body
    assert "{{ ti.xcom_pull(task_ids='generate') }}" in review.body

    # Each option leads to the first task of its path; the others are skipped.
    follow_decision = dag.get_task("follow_decision")
    assert follow_decision.downstream_task_ids == {"publish", "revise_prompt", "discard"}
    chosen = {option: follow_decision.python_callable({"chosen_options": [option]}) for option in review.options}
    assert chosen == {"Publish": "publish", "Regenerate": "revise_prompt", "Discard": "discard"}
    # The note travels in the review step's XCom, which every task after the decision reads.
    for reads_the_decision in ("follow_decision", "announce", "revise_prompt", "discard"):
        assert "review" in dag.get_task(reads_the_decision).upstream_task_ids
    assert [outlet.name for outlet in dag.get_task("announce").outlets] == ["infinityblue_reviewed_video"]
    next_conf = dag.get_task("revise_prompt").python_callable(
        {"params_input": {"note": " warmer light "}}, params={"prompt": "A harbour at dawn.", "output_dir": "/v"}
    )
    assert next_conf == {"prompt": "A harbour at dawn. warmer light", "output_dir": "/v"}
    regenerate = dag.get_task("regenerate")
    assert isinstance(regenerate, TriggerDagRunOperator)
    assert regenerate.trigger_dag_id == REVIEW
    assert regenerate.upstream_task_ids == {"revise_prompt"}
