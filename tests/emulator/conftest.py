"""Helpers for the emulator's own tests: a small client for the API it emulates."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_infinityblue.emulator import running_emulator

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_infinityblue.emulator import EmulatorHandle

CLIENT_KEY = "sk-emulator-tests-0001"
PROMPT = "A lighthouse in a storm, cinematic"
MODEL = "kling-v2-5-turbo"


class ApiClient:
    """Calls the emulated API the way a client of the real one would."""

    def __init__(self, base_url: str, api_key: str | None = CLIENT_KEY) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.trust_env = False  # loopback only, whatever proxy the environment names
        if api_key is not None:
            self.session.headers["Authorization"] = f"Bearer {api_key}"

    def submit(self, **fields: Any) -> requests.Response:
        body = {"model": MODEL, "prompt": PROMPT, **fields}
        return self.session.post(f"{self.base_url}/v1/video/generations", json=body, timeout=10)

    def submit_id(self, **fields: Any) -> str:
        response = self.submit(**fields)
        assert response.status_code == 200, response.text
        payload = response.json()
        task_id: str = payload["data"]["id"] if "data" in payload else payload["task_id"]
        return task_id

    def status(self, task_id: str) -> requests.Response:
        return self.session.get(f"{self.base_url}/v1/video/generations/{task_id}", timeout=10)

    def wait_until_finished(self, task_id: str, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            payload: dict[str, Any] = self.status(task_id).json()
            data = payload.get("data", payload)
            if data["status"] in ("completed", "failed", "SUCCESS", "FAILURE"):
                return payload
            time.sleep(0.03)
        raise AssertionError(f"generation {task_id} did not finish within {timeout} s")


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator(generation_seconds=0.3, seed=1) as handle:
        yield handle


@pytest.fixture
def api(emulator: EmulatorHandle) -> Iterator[ApiClient]:
    client = ApiClient(emulator.url)
    yield client
    client.session.close()
