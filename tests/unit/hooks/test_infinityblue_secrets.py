"""The API key appears in no log line, exception text or repr, even when the server echoes it."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from airflow_provider_infinityblue.exceptions import InfinityBlueError
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import GenerationRequest
from tests.conftest import FAKE_API_KEY, set_connection
from tests.loopback import LoopbackServer, Reply

ECHO = {"error": {"message": f"Incorrect API key provided: {FAKE_API_KEY}", "code": "invalid_api_key"}}


def error_texts(error: BaseException) -> list[str]:
    """The text of an error and of every error it was raised from."""
    texts = []
    current: BaseException | None = error
    while current is not None:
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return texts


def test_key_absent_from_errors_and_logs(monkeypatch, capfd, caplog) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 and aiohttp debug lines included
    replies = [
        Reply(status=429, body=ECHO, headers={"Retry-After": "0"}),  # submit: rate limited, then
        Reply(status=500, body=ECHO),  # ... a 500: ambiguous
        Reply(status=503, body=f"<html>{FAKE_API_KEY}</html>".encode(), headers={"Content-Type": "text/html"}),
        Reply(status=401, body=ECHO),  # get: retried 503, then 401
        Reply(status=200, body=f"not json {FAKE_API_KEY}".encode()),  # unreadable success
        Reply(status=401, body=ECHO),  # async get
    ]
    errors: list[BaseException] = []
    with LoopbackServer(replies) as server:
        extra = json.dumps({"initial_backoff": 0.01, "max_attempts": 3})
        set_connection(monkeypatch, host=server.url, password=FAKE_API_KEY, extra=extra)
        hook = InfinityBlueHook()
        for call in (
            lambda: hook.submit_generation(GenerationRequest(prompt="p", model="m")),
            lambda: hook.get_generation("t1"),
            lambda: hook.get_generation("t1"),
        ):
            with pytest.raises(InfinityBlueError) as caught:
                call()
            errors.append(caught.value)

        async def async_call() -> None:
            async with InfinityBlueHook() as async_hook:
                await async_hook.aget_generation("t1")

        with pytest.raises(InfinityBlueError) as caught:
            asyncio.run(async_call())
        errors.append(caught.value)
        ok, message = hook.test_connection()  # unscripted: the server answers 500
    assert len(server.received) == 7
    assert all(r.headers["Authorization"] == f"Bearer {FAKE_API_KEY}" for r in server.received)
    assert not ok
    texts = [message] + [text for error in errors for text in error_texts(error)]
    assert all(FAKE_API_KEY not in text for text in texts)
    assert any("Incorrect API key provided: ***" in text for text in texts)  # scrubbed, not dropped
    captured = capfd.readouterr()
    logged = captured.out + captured.err + caplog.text
    assert "retrying" in logged  # the log was really captured
    assert FAKE_API_KEY not in logged
