"""The model a generation is sent with: the operator's or row's, else the connection's ``default_model``, else the
built-in one. Against the emulator, which answers each generation with the model its request named."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_infinityblue.batch.manifest import read_manifest
from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.operators.infinityblue import (
    InfinityBlueGenerateVideoBatchOperator,
    InfinityBlueGenerateVideoOperator,
)
from airflow_provider_infinityblue.testing import running_emulator
from tests.unit.fakes import MemoryTaskStateStore, task_context

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from airflow_provider_infinityblue.testing import EmulatorHandle

BUILT_IN = "kling-v2-5-turbo"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator(generation_seconds=0.2) as handle:
        yield handle


@pytest.fixture
def connect(emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Point ``infinityblue_default`` at the emulator, with these extras."""

    def connect(**extra: Any) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", emulator.airflow_connection(extra=extra))

    return connect


def model_at_the_api(generation_id: str) -> str:
    """The model the emulator recorded for the generation (its status answer names it)."""
    with InfinityBlueHook() as hook:
        return str(hook.get_generation(generation_id).raw["model"])


def generate(**kwargs: Any) -> InfinityBlueGenerateVideoOperator:
    settings = {"task_id": "generate", "prompt": "A kite over dunes", "deferrable": False, "poll_interval": 1}
    return InfinityBlueGenerateVideoOperator(**{**settings, **kwargs})


@pytest.mark.parametrize(
    ("extra", "argument", "expected", "source"),
    [
        ({}, None, BUILT_IN, "the provider's default"),
        ({"default_model": ""}, None, BUILT_IN, "the provider's default"),
        ({"default_model": "   "}, None, BUILT_IN, "the provider's default"),
        ({"default_model": "veo_3_1"}, None, "veo_3_1", "the default_model of connection 'infinityblue_default'"),
        ({"extra__infinityblue__default_model": "veo_3_1"}, None, "veo_3_1", "the default_model of connection"),
        ({"default_model": "veo_3_1"}, "sora-2", "sora-2", "the operator's model"),
        ({"default_model": "veo_3_1"}, "", "veo_3_1", "the default_model of connection"),  # a template rendered empty
        ({}, "sora-2", "sora-2", "the operator's model"),
    ],
    ids=["absent", "empty", "blank", "set", "set-by-an-old-form", "argument-wins", "empty-argument", "argument-only"],
)
def test_the_model_sent_shown_in_the_log_and_xcom(
    connect, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str], extra, argument, expected, source
) -> None:
    connect(**extra)
    context = task_context()
    caplog.set_level(logging.INFO)
    video_url = generate(model=argument).execute(context)
    generation_id = context["ti"].xcom["infinityblue_task_id"]
    assert video_url == context["ti"].xcom["video_url"]
    assert model_at_the_api(generation_id) == expected
    assert context["ti"].xcom["model"] == expected
    logs = caplog.text + "".join(capfd.readouterr())
    assert f"InfinityBlue model: {expected} ({source}" in logs


def test_the_connection_is_read_when_the_task_runs_not_when_the_dag_is_parsed(connect, monkeypatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", raising=False)
    operator = generate()  # no connection exists yet: a DAG file's parse must not need one
    assert operator.model is None
    connect(default_model="veo_3_1")
    context = task_context()
    operator.execute(context)
    assert model_at_the_api(context["ti"].xcom["infinityblue_task_id"]) == "veo_3_1"


def test_a_model_extra_that_is_not_text_fails_with_the_connection_and_extra_named(connect) -> None:
    connect(default_model=5)
    with pytest.raises(
        InfinityBlueConfigurationError, match=r"'infinityblue_default'.*'default_model' must be a string"
    ):
        generate().execute(task_context())


@pytest.mark.airflow(">=3.3", feature="durable retries through the task state store")
def test_a_retry_reports_the_model_its_generation_was_submitted_with(connect) -> None:
    store = MemoryTaskStateStore()
    connect(default_model="veo_3_1")
    first = task_context(store)
    generate().execute(first)
    connect(default_model="sora-2")  # the extra changed between tries: the generation did not
    again = task_context(store)
    assert generate().execute(again) == first["ti"].xcom["video_url"]
    assert again["ti"].xcom["model"] == "veo_3_1"
    assert again["ti"].xcom["infinityblue_task_id"] == first["ti"].xcom["infinityblue_task_id"]


class TestBatchRows:
    ROWS = [
        {"key": "plain", "prompt": "A red fox"},
        {"key": "own", "prompt": "An owl", "model": "sora-2"},
        {"key": "blank", "prompt": "A heron", "model": ""},
    ]

    def run_batch(self, tmp_path: Path, **kwargs: Any) -> dict[str, dict[str, Any]]:
        """Run the batch on the worker; each row's manifest entry by key, with the model the API recorded."""
        manifest = str(tmp_path / "manifest.jsonl")
        batch = InfinityBlueGenerateVideoBatchOperator(
            task_id="backfill",
            requests=self.ROWS,
            manifest_path=manifest,
            deferrable=False,
            poll_interval=1,
            **kwargs,
        )
        summary = batch.execute(task_context())
        assert summary["succeeded"] == len(self.ROWS)
        entries = {entry.key: vars(entry) for entry in (read_manifest(manifest) or {}).values()}
        for entry in entries.values():
            entry["at_the_api"] = model_at_the_api(entry["generation_id"])
        return entries

    @pytest.mark.parametrize(
        ("extra", "defaults", "fallback"),
        [
            ({"default_model": "veo_3_1"}, None, "veo_3_1"),
            ({"default_model": "veo_3_1"}, {"model": "hailuo-02"}, "hailuo-02"),
            ({"default_model": ""}, None, BUILT_IN),
            ({}, None, BUILT_IN),
        ],
        ids=["connection", "defaults-win", "empty-extra", "no-extra"],
    )
    def test_rows_without_a_model_use_defaults_then_the_connection_then_the_built_in(
        self, connect, tmp_path: Path, extra, defaults, fallback
    ) -> None:
        connect(**extra)
        entries = self.run_batch(tmp_path, defaults=defaults)
        expected = {"plain": fallback, "own": "sora-2", "blank": fallback}
        assert {key: entry["model"] for key, entry in entries.items()} == expected
        assert {key: entry["at_the_api"] for key, entry in entries.items()} == expected

    def test_the_log_names_the_models_and_where_the_fallback_comes_from(
        self, connect, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
    ) -> None:
        connect(default_model="veo_3_1")
        caplog.set_level(logging.INFO)
        self.run_batch(tmp_path)
        logs = caplog.text + "".join(capfd.readouterr())
        assert (
            "Models of the rows: sora-2, veo_3_1; a row that names none uses veo_3_1 "
            "(the default_model of connection 'infinityblue_default')"
        ) in logs

    def test_the_manifest_of_an_earlier_version_without_models_still_reads(self, tmp_path: Path) -> None:
        path = tmp_path / "old.jsonl"
        path.write_text(json.dumps({"row": 0, "key": "a", "status": "succeeded", "video_url": "https://cdn/a.mp4"}))
        entries = read_manifest(str(path))
        assert entries is not None
        assert (entries[0].status, entries[0].model) == ("succeeded", None)
