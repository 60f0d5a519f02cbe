"""The one scrubbing rule: the API key in any form leaves every text, and every text is clipped."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAPIError,
    InfinityBlueError,
    InfinityBlueGenerationFailedError,
    restore_error,
)
from airflow_provider_infinityblue.models import Generation
from airflow_provider_infinityblue.redaction import (
    MESSAGE_LIMIT,
    QUOTE_LIMIT,
    register_secret,
    scrub,
    scrub_json,
)

KEY = "sk-fake-REDACTION/0123+4567=89"


@pytest.fixture(autouse=True)
def registered() -> None:
    register_secret(KEY)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"key {KEY} echoed", "key *** echoed"),
        (f"Authorization: Bearer {KEY}", "Authorization: Bearer ***"),
        (f"?key={quote(KEY, safe='')}&x=1", "?key=***&x=1"),
        (f"{KEY}{KEY}", "******"),
        ("nothing secret", "nothing secret"),
    ],
)
def test_scrub_removes_the_key_in_every_form(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_scrub_clips_to_the_quote_limit_after_removing_the_key() -> None:
    # The key is removed first: clipping never leaves a part of it.
    assert scrub("x" * (QUOTE_LIMIT - 1) + KEY) == "x" * (QUOTE_LIMIT - 1) + "*…"
    assert len(scrub("y" * 10_000)) == QUOTE_LIMIT + 1
    assert scrub("abc", limit=None) == "abc"
    assert len(scrub("z" * 10_000, limit=None)) == 10_000


def test_scrub_passes_none_through_and_ignores_empty_secrets() -> None:
    register_secret("")
    register_secret(None)
    register_secret("abc")  # too short to be a key: would mangle every text
    assert scrub(None) is None
    assert scrub("abcabc") == "abcabc"


def test_scrub_json_cleans_keys_and_nested_strings_without_clipping() -> None:
    url = "https://cdn.example.com/v.mp4?sig=" + "s" * 2000
    answer = {"url": url, KEY: [{"reason": f"Bearer {KEY}"}, 3, None], "n": 1.5}
    assert scrub_json(answer) == {"url": url, "***": [{"reason": "Bearer ***"}, 3, None], "n": 1.5}


def test_every_error_message_is_scrubbed_and_bounded() -> None:
    error = InfinityBlueError(f"{KEY} " + "e" * 50_000)
    assert str(error).startswith("*** e")
    assert len(str(error)) == MESSAGE_LIMIT + 1
    assert KEY not in repr(error)


def test_api_error_parts_are_scrubbed_and_clipped() -> None:
    error = InfinityBlueAPIError.from_response(
        status_code=401,
        headers={"x-request-id": f"req-{KEY}", "Content-Type": "application/json"},
        body=f'{{"error": {{"code": "{KEY}", "message": "Bearer {KEY} {"m" * 5000}"}}}}'.encode(),
        method="GET",
        path="/v1/video/generations/t1",
        conn_id="infinityblue_default",
    )
    assert error.error_code == "***"
    assert error.request_id == "req-***"
    assert error.api_message is not None
    assert error.api_message.startswith("Bearer *** m")
    assert len(error.api_message) == QUOTE_LIMIT + 1
    assert KEY not in str(error)


def test_an_error_restored_from_an_event_is_scrubbed_too() -> None:
    error = restore_error("InfinityBlueServerError", f"failed: {KEY}", error_code=KEY, request_id="r" * 1000)
    assert str(error) == "failed: ***"
    assert error.error_code == "***"
    assert len(error.request_id or "") == QUOTE_LIMIT + 1


def test_a_generation_clips_what_it_reads_from_the_answer() -> None:
    generation = Generation.from_payload(
        {"task_id": "t1", "status": "s" * 10_000, "error": {"code": "c" * 10_000, "message": f"{KEY} " * 3000}}
    )
    assert len(generation.status) == QUOTE_LIMIT + 1
    assert len(generation.error_code or "") == QUOTE_LIMIT + 1
    assert (generation.error_message or "").startswith("*** ***")
    failed = InfinityBlueGenerationFailedError("t1", "failed", error_message=f"{KEY} " * 3000)
    assert KEY not in str(failed)
    assert len(str(failed)) < MESSAGE_LIMIT
