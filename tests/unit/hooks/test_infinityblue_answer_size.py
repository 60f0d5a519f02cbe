"""API answers over MAX_ANSWER_BYTES are refused without being read whole, by the sync and the async client.

A real server on 127.0.0.1 sends a 50 MB answer, with or without its Content-Length, and counts what it
managed to send before the client hung up.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from dataclasses import dataclass, field

import pytest

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAmbiguousSubmitError,
    InfinityBlueAPIError,
    InfinityBlueResponseError,
)
from airflow_provider_infinityblue.hooks.infinityblue import MAX_ANSWER_BYTES, InfinityBlueHook
from airflow_provider_infinityblue.models import GenerationRequest
from tests.conftest import FAKE_API_KEY, set_connection

FIFTY_MB = 50 * 1024 * 1024
CHUNK = 256 * 1024


@dataclass
class BigAnswerServer:
    """Answers every request with ``status`` and a ``size``-byte body (a JSON string, padded), chunk by chunk."""

    status: int = 200
    size: int = FIFTY_MB
    declare_length: bool = True
    sent: int = 0
    methods: list[str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> BigAnswerServer:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.close()

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if
                           line.lower().startswith(b"content-length:")), 0)  # fmt: skip
            while len(body) < length:
                body += connection.recv(65536)
            self.methods.append(head.split(b" ")[0].decode())
            headers = f"HTTP/1.1 {self.status} X\r\nContent-Type: application/json\r\nConnection: close\r\n"
            if self.declare_length:
                headers += f"Content-Length: {self.size}\r\n"
            try:
                connection.sendall(headers.encode() + b"\r\n")
                payload = b'"' + b"x" * (CHUNK - 1)
                while self.sent < self.size:
                    connection.sendall(payload)
                    self.sent += len(payload)
            except OSError:
                pass  # the client hung up: what this test wants
            finally:
                self.done.set()


@pytest.fixture
def big_api(monkeypatch):
    def start(**settings) -> BigAnswerServer:
        server = BigAnswerServer(**settings).__enter__()
        set_connection(monkeypatch, host=server.url, password=FAKE_API_KEY, extra=json.dumps({"max_attempts": 1}))
        return server

    return start


def assert_hung_up_early(server: BigAnswerServer) -> None:
    assert server.done.wait(10)
    assert server.sent < FIFTY_MB // 2, server.sent  # the client closed the connection long before the end


@pytest.mark.parametrize("declare_length", [True, False], ids=["with Content-Length", "without"])
def test_a_50_mb_status_answer_is_refused_unread_sync(big_api, declare_length: bool) -> None:
    server = big_api(declare_length=declare_length)
    with InfinityBlueHook() as hook:
        answer = hook.poll_generation("t1")
    assert isinstance(answer, InfinityBlueResponseError)
    assert not answer.transient
    size = "a 52428800-byte answer" if declare_length else f"an answer of more than {MAX_ANSWER_BYTES} bytes"
    assert f"answered GET /v1/video/generations/t1 with {size}, over the {MAX_ANSWER_BYTES}-byte limit" in str(answer)
    assert_hung_up_early(server)


@pytest.mark.parametrize("declare_length", [True, False], ids=["with Content-Length", "without"])
def test_a_50_mb_status_answer_is_refused_unread_async(big_api, declare_length: bool) -> None:
    server = big_api(declare_length=declare_length)

    async def look() -> object:
        async with InfinityBlueHook() as hook:
            return await hook.apoll_generation("t1")

    answer = asyncio.run(look())
    assert isinstance(answer, InfinityBlueResponseError)
    assert f"over the {MAX_ANSWER_BYTES}-byte limit" in str(answer)
    assert_hung_up_early(server)


def test_a_too_large_answer_to_a_post_may_have_created_the_generation(big_api) -> None:
    server = big_api(declare_length=False)
    with InfinityBlueHook() as hook, pytest.raises(InfinityBlueAmbiguousSubmitError) as raised:
        hook.submit_generation(GenerationRequest(prompt="A kite", model="m"))
    assert "may have been created" in str(raised.value)
    assert f"over the {MAX_ANSWER_BYTES}-byte limit" in str(raised.value)
    assert server.methods == ["POST"]  # never sent again
    assert_hung_up_early(server)


def test_of_a_huge_error_answer_only_the_start_is_read_for_its_message(big_api) -> None:
    server = big_api(status=500)
    with InfinityBlueHook() as hook:
        answer = hook.poll_generation("t1")
    assert isinstance(answer, InfinityBlueAPIError)
    assert answer.status_code == 500
    assert len(str(answer)) < 1000
    assert_hung_up_early(server)
