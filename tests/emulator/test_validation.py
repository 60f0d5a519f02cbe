"""HTTP 400 for bodies the real API would reject, naming the field at fault."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import MODEL, PROMPT, ApiClient

BAD_FIELDS = [
    # (body changes, param, code)
    ({"model": None}, "model", "missing_required_parameter"),
    ({"prompt": None}, "prompt", "missing_required_parameter"),
    ({"model": 5}, "model", "invalid_type"),
    ({"prompt": ["a", "fox"]}, "prompt", "invalid_type"),
    ({"model": ""}, "model", "invalid_value"),
    ({"prompt": "   "}, "prompt", "invalid_value"),
    ({"duration": "5"}, "duration", "invalid_type"),
    ({"duration": True}, "duration", "invalid_type"),
    ({"duration": 0}, "duration", "invalid_value"),
    ({"duration": -2.5}, "duration", "invalid_value"),
    ({"width": 1280.5}, "width", "invalid_type"),
    ({"width": 1280.0}, "width", "invalid_type"),
    ({"width": 0}, "width", "invalid_value"),
    ({"height": "720"}, "height", "invalid_type"),
    ({"fps": 29.97}, "fps", "invalid_type"),
    ({"n": 0}, "n", "invalid_value"),
    ({"n": False}, "n", "invalid_type"),
    ({"seed": "42"}, "seed", "invalid_type"),
    ({"seed": 4.2}, "seed", "invalid_type"),
    ({"metadata": "style=noir"}, "metadata", "invalid_type"),
    ({"metadata": ["noir"]}, "metadata", "invalid_type"),
    ({"image": 12}, "image", "invalid_type"),
    ({"user": {"id": 1}}, "user", "invalid_type"),
    ({"response_format": 1}, "response_format", "invalid_type"),
]


@pytest.mark.parametrize(("changes", "param", "code"), BAD_FIELDS)
def test_a_bad_field_is_a_400_naming_it(api: ApiClient, changes, param, code) -> None:
    body = {key: value for key, value in {"model": MODEL, "prompt": PROMPT, **changes}.items() if value is not None}
    response = api.session.post(f"{api.base_url}/v1/video/generations", json=body, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert f"'{param}'" in error["message"]


def test_a_rejected_body_creates_nothing(api: ApiClient, emulator) -> None:
    api.submit(width="wide")
    assert emulator.stats()["submissions"] == 0


@pytest.mark.parametrize("raw", [b"{not json", b"", b'{"model": "m", "prompt": "p", "duration": NaN}'])
def test_a_body_that_is_not_json_is_a_400(api: ApiClient, raw: bytes) -> None:
    response = api.session.post(
        f"{api.base_url}/v1/video/generations", data=raw, headers={"Content-Type": "application/json"}, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert response.json()["error"]["param"] is None


def test_a_body_that_is_not_an_object_is_a_400(api: ApiClient) -> None:
    response = api.session.post(f"{api.base_url}/v1/video/generations", json=[MODEL, PROMPT], timeout=10)
    assert response.status_code == 400
    assert "JSON object" in response.json()["error"]["message"]


def test_every_documented_field_is_accepted(api: ApiClient) -> None:
    response = api.submit(
        image="https://example.com/cat.jpg",
        duration=5.5,
        width=1280,
        height=720,
        fps=30,
        seed=-20231234,
        n=1,
        response_format="url",
        user="user-1234",
        metadata={"negative_prompt": "blur", "style": "noir", "quality_level": "high"},
    )
    assert response.status_code == 200, response.text


def test_null_optional_fields_and_unknown_fields_are_ignored(api: ApiClient) -> None:
    response = api.submit(width=None, metadata=None, image=None, brand_new_option={"x": 1})
    assert response.status_code == 200, response.text
