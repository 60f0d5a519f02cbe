"""HTTP 401: any sk- key by default, or exactly the configured key; control and video routes need none."""

from __future__ import annotations

import pytest
import requests

from airflow_provider_infinityblue.emulator import running_emulator
from tests.emulator.conftest import ApiClient

REQUIRED_KEY = "sk-the-only-right-key-42"


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_api_key"),
        ("Bearer", "missing_api_key"),
        ("Basic dXNlcjpwYXNz", "missing_api_key"),
        ("Bearer pk-not-a-secret-key", "invalid_api_key"),
        ("Bearer sk-", "invalid_api_key"),
    ],
)
def test_without_a_configured_key_only_sk_bearer_keys_pass(api: ApiClient, authorization, code) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    api.session.headers.pop("Authorization")
    for response in (
        api.session.post(f"{api.base_url}/v1/video/generations", json={}, headers=headers, timeout=10),
        api.session.get(f"{api.base_url}/v1/video/generations/x", headers=headers, timeout=10),
    ):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["type"] == "invalid_request_error"


def test_without_a_configured_key_any_sk_key_passes(emulator) -> None:
    for key in ("sk-a", "sk-anything-at-all", "sk-emulator-fake-key-0000"):
        assert ApiClient(emulator.url, api_key=key).submit().status_code == 200
    lower_case_scheme = {"Authorization": "bearer sk-lower-case-scheme"}
    poll = requests.get(f"{emulator.url}/v1/video/generations/x", headers=lower_case_scheme, timeout=10)
    assert poll.status_code == 404


def test_with_a_configured_key_only_that_key_passes() -> None:
    with running_emulator(api_key=REQUIRED_KEY) as emulator:
        wrong = ApiClient(emulator.url, api_key="sk-some-other-key").submit()
        missing = ApiClient(emulator.url, api_key=None).submit()
        right = ApiClient(emulator.url, api_key=REQUIRED_KEY).submit()
        wrong_poll = ApiClient(emulator.url, api_key="sk-some-other-key").status("x")
    assert (wrong.status_code, missing.status_code, right.status_code, wrong_poll.status_code) == (401, 401, 200, 401)
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert missing.json()["error"]["code"] == "missing_api_key"
    assert "sk-some-other-key" not in wrong.text
    assert emulator.api_key == REQUIRED_KEY


def test_the_key_can_be_required_at_runtime(emulator) -> None:
    emulator.configure(api_key=REQUIRED_KEY)
    assert ApiClient(emulator.url, api_key="sk-something-else").submit().status_code == 401
    assert ApiClient(emulator.url, api_key=REQUIRED_KEY).submit().status_code == 200
    assert emulator.configure(api_key=None)["api_key_required"] is False


def test_control_routes_and_videos_need_no_key() -> None:
    with running_emulator(api_key=REQUIRED_KEY, generation_seconds=0) as emulator:
        task_id = ApiClient(emulator.url, api_key=REQUIRED_KEY).submit_id()
        anonymous = ApiClient(emulator.url, api_key=None)
        video = anonymous.session.get(f"{emulator.url}/videos/{task_id}.mp4", timeout=10)
        stats = anonymous.session.get(f"{emulator.url}/_emulator/stats", timeout=10)
    assert (video.status_code, stats.status_code) == (200, 200)
