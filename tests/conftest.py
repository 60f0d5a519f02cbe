from __future__ import annotations

import json

import pytest

from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook

# Obviously fake: long enough for Airflow's secrets masker, and easy to grep for.
FAKE_API_KEY = "sk-test-FAKE0000notarealkey0000"
BASE_URL = "http://infinityblue.test"


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str = "infinityblue_default", **fields) -> None:
    """Define an Airflow connection through its ``AIRFLOW_CONN_*`` environment variable (JSON form)."""
    fields.setdefault("conn_type", "infinityblue")
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


@pytest.fixture
def fast_extra() -> dict[str, float]:
    """Connection extras that keep retry waits short in tests."""
    return {"initial_backoff": 0.01, "max_backoff": 0.05, "max_attempts": 4}


@pytest.fixture
def hook(monkeypatch: pytest.MonkeyPatch, fast_extra: dict[str, float]) -> InfinityBlueHook:
    set_connection(monkeypatch, host=BASE_URL, password=FAKE_API_KEY, extra=json.dumps(fast_extra))
    with InfinityBlueHook() as hook:
        yield hook
