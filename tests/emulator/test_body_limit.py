"""HTTP 413 for bodies over --max-body-mb, declared or streamed, as OpenAI-style JSON."""

from __future__ import annotations

import json

import pytest

from airflow_provider_infinityblue.emulator import running_emulator
from tests.emulator.conftest import MODEL, ApiClient

LIMIT_MB = 0.01  # 10,485 bytes


@pytest.fixture
def small_limit_api():
    with running_emulator(max_body_mb=LIMIT_MB) as emulator:
        yield ApiClient(emulator.url), emulator


def test_a_declared_length_over_the_limit_is_a_json_413(small_limit_api) -> None:
    api, emulator = small_limit_api
    response = api.submit(image="data:image/png;base64," + "A" * 20_000)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "request_too_large"
    assert "0.01 MB" in error["message"]
    assert response.headers["x-request-id"].startswith("req_")
    assert emulator.stats()["submissions"] == 0


def test_a_chunked_body_over_the_limit_is_a_json_413(small_limit_api) -> None:
    api, _ = small_limit_api
    body = json.dumps({"model": MODEL, "prompt": "x" * 20_000}).encode()
    chunks = (body[start : start + 1000] for start in range(0, len(body), 1000))
    response = api.session.post(
        f"{api.base_url}/v1/video/generations", data=chunks, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert "Content-Length" not in response.request.headers
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_a_body_under_the_limit_is_accepted(small_limit_api) -> None:
    api, _ = small_limit_api
    assert api.submit(prompt="y" * 9_000).status_code == 200


def test_the_limit_defaults_to_32_mb_and_can_change_at_runtime(emulator, api: ApiClient) -> None:
    assert emulator.configure()["max_body_mb"] == 32
    prompt = "z" * 50_000
    assert api.submit(prompt=prompt).status_code == 200
    emulator.configure(max_body_mb=0.04)
    assert api.submit(prompt=prompt).status_code == 413
