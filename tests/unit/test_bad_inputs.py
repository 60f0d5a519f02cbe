"""Every bad input fails with one clear line naming the field, and nothing is sent: no POST, no submission record."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from airflow_provider_infinityblue.exceptions import InfinityBlueBatchError, InfinityBlueValidationError
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import DEFAULT_MAX_PROMPT_CHARS, GenerationRequest
from airflow_provider_infinityblue.operators.batch import InfinityBlueGenerateVideoBatchOperator
from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoOperator
from tests.conftest import BASE_URL, FAKE_API_KEY, set_connection
from tests.unit.fakes import MemoryTaskStateStore, task_context

SUBMIT_URL = f"{BASE_URL}/v1/video/generations"


class RecordingStore(MemoryTaskStateStore):
    """A task state store that remembers every key ever written, deleted or not."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.written.append(key)
        super().set(key, value)


def generate(**kwargs: Any) -> InfinityBlueGenerateVideoOperator:
    return InfinityBlueGenerateVideoOperator(**{"task_id": "generate", "prompt": "A kite", **kwargs})


def refused(requests_mock, operator: InfinityBlueGenerateVideoOperator) -> str:
    """The one line the operator fails with; it wrote nothing to the task state store and sent no POST."""
    requests_mock.post(SUBMIT_URL, json={"task_id": "never", "status": "queued"})
    store = RecordingStore()
    with pytest.raises(InfinityBlueValidationError) as raised:
        operator.execute(task_context(store))
    assert requests_mock.call_count == 0
    assert store.written == []
    message = str(raised.value)
    assert "\n" not in message
    assert "may have been created" not in message
    return message


@pytest.mark.parametrize(
    ("metadata", "said"),
    [
        ({"style": {"when": datetime(2026, 11, 30)}}, "'metadata.style.when' must be JSON (a string, number, "),
        (
            {"tags": {"fox", "snow"}},
            "'metadata.tags' must be JSON (a string, number, bool, null, list or object), got a set",
        ),
        ({"style": {"weights": [0.5, float("nan")]}}, "'metadata.style.weights[1]' must be a finite number, got nan"),
        ({"cfg": float("inf")}, "'metadata.cfg' must be a finite number, got inf"),
        ({"raw": b"\x00\x01"}, "'metadata.raw' must be JSON"),
        ({"thing": object()}, "'metadata.thing' must be JSON"),
        ({"style": {3: "three"}}, "'metadata.style' has the key 3 (int): JSON keys must be strings"),
    ],
)
def test_metadata_that_is_not_strict_json_is_refused_naming_its_path(hook, requests_mock, metadata, said) -> None:
    assert said in refused(requests_mock, generate(metadata=metadata))


def test_a_one_megabyte_prompt_is_refused(hook, requests_mock) -> None:
    message = refused(requests_mock, generate(prompt="a" * 1_048_576))
    assert f"'prompt' is 1048576 characters long, over the limit of {DEFAULT_MAX_PROMPT_CHARS}" in message


def test_a_prompt_over_the_connections_max_prompt_chars_is_refused(monkeypatch, requests_mock) -> None:
    set_connection(monkeypatch, host=BASE_URL, password=FAKE_API_KEY, extra=json.dumps({"max_prompt_chars": 20}))
    message = refused(requests_mock, generate(prompt="A kite over a windy beach at dawn"))
    assert "'prompt' is 33 characters long, over the limit of 20 (max_prompt_chars)" in message
    assert InfinityBlueHook().settings.max_prompt_chars == 20


def test_the_hook_refuses_them_too_and_never_sends_nan(hook, requests_mock) -> None:
    requests_mock.post(SUBMIT_URL, json={"task_id": "never", "status": "queued"})
    with pytest.raises(InfinityBlueValidationError, match="'prompt' is 10001 characters long"):
        hook.submit_generation(GenerationRequest(prompt="p" * 10_001, model="m"))
    request = GenerationRequest(prompt="p", model="m", metadata={"cfg": 1.0})
    object.__setattr__(request, "metadata", {"cfg": float("nan")})  # past the request's own check
    with pytest.raises(InfinityBlueValidationError, match="'request' cannot be sent as JSON"):
        hook.submit_generation(request)
    assert requests_mock.call_count == 0


def test_a_batch_names_each_bad_row_and_sends_nothing(monkeypatch, requests_mock, tmp_path) -> None:
    set_connection(monkeypatch, host=BASE_URL, password=FAKE_API_KEY, extra=json.dumps({"max_prompt_chars": 20}))
    requests_mock.post(SUBMIT_URL, json={"task_id": "never", "status": "queued"})
    rows = [
        {"prompt": "A kite"},
        {"prompt": "A kite over a windy beach at dawn"},
        {"prompt": "An owl", "metadata": {"style": {"when": datetime(2026, 1, 1)}}},
        {"prompt": "A fox", "metadata": {"seed_weights": [float("nan")]}},
    ]
    operator = InfinityBlueGenerateVideoBatchOperator(
        task_id="backfill", requests=rows, manifest_path=str(tmp_path / "manifest.jsonl"), deferrable=True
    )
    with pytest.raises(InfinityBlueBatchError) as raised:
        operator.execute(task_context())
    message = str(raised.value)
    assert "3 of 4 rows are invalid; nothing was sent" in message
    assert "row 1: 'prompt' is 33 characters long, over the limit of 20 (max_prompt_chars)" in message
    assert "row 2: 'metadata.style.when' must be JSON" in message
    assert "row 3: 'metadata.seed_weights[0]' must be a finite number, got nan" in message
    assert requests_mock.call_count == 0
