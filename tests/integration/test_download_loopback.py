"""InfinityBlueDownloadVideoOperator against real HTTP servers on 127.0.0.1: the emulator, and loopback helpers."""

from __future__ import annotations

import hashlib
import re
import time
import tracemalloc
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_infinityblue.download import InfinityBlueDownloadError
from airflow_provider_infinityblue.emulator.sample_video import SAMPLE_VIDEO_PATH
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import GenerationRequest
from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueDownloadVideoOperator
from airflow_provider_infinityblue.retry import RetryPolicy
from airflow_provider_infinityblue.testing import DEFAULT_FAKE_API_KEY, EmulatorHandle, running_emulator
from tests.integration.video_servers import CuttingProxy, GeneratedVideoServer, generated_video
from tests.loopback import LoopbackServer, Reply
from tests.unit.fakes import task_context

SAMPLE = Path(SAMPLE_VIDEO_PATH).read_bytes()
VIDEO_ROUTE = "GET /videos/{task_id}.mp4"


def operator(
    url: str,
    destination: Path | str,
    *,
    max_attempts: int = 3,
    allow_private_addresses: bool | None = True,
    **kwargs,
) -> InfinityBlueDownloadVideoOperator:
    """The operator under test. These tests are about the transfer, from loopback servers on ports other than
    the connection's: private addresses are allowed unless asked (test_download_addresses.py tests the policy)."""
    op = InfinityBlueDownloadVideoOperator(
        task_id="download",
        url=url,
        destination=str(destination),
        allow_private_addresses=allow_private_addresses,
        **kwargs,
    )
    op.download_retry_policy = RetryPolicy(max_attempts=max_attempts, initial_backoff=0.01, max_backoff=0.02)
    return op


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> EmulatorHandle:
    # The fixed sample, so that every transfer can be checked byte for byte against a file known in advance.
    with running_emulator(generation_seconds=0.2, video="sample") as handle:
        monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", handle.airflow_connection())
        yield handle


def finished_video_url(emulator: EmulatorHandle) -> str:
    """Generate a video on the emulator with the real hook and return the URL it finished with."""
    with InfinityBlueHook() as hook:
        generation_id = hook.submit_generation(GenerationRequest(prompt="A heron at dawn", model="kling-v2-5-turbo"))
        url = hook.wait_for_generation(generation_id, poll_interval=0.05, timeout=30).video_url
    assert url == f"{emulator.url}/videos/{generation_id}.mp4"
    return url


def video_answers(emulator: EmulatorHandle) -> dict[str, int]:
    return emulator.stats()["requests"].get(VIDEO_ROUTE, {})


class TestFromTheEmulator:
    def test_saves_the_sample_video_byte_for_byte(self, emulator, tmp_path) -> None:
        url = finished_video_url(emulator)
        destination = tmp_path / "videos" / "heron.mp4"
        context = task_context()

        # The emulator's own origin, which is the connection's: allowed without asking.
        result = operator(url, destination, chunk_bytes=4096, allow_private_addresses=None).execute(context)

        assert result == str(destination)
        assert destination.read_bytes() == SAMPLE
        assert context["ti"].xcom == {"size_bytes": len(SAMPLE), "sha256": hashlib.sha256(SAMPLE).hexdigest()}
        assert [p.name for p in destination.parent.iterdir()] == ["heron.mp4"]
        assert video_answers(emulator) == {"200": 1}

    def test_resumes_with_a_range_request_when_the_connection_drops(self, emulator, tmp_path) -> None:
        url = finished_video_url(emulator)
        target = urlsplit(url)
        assert target.hostname is not None
        assert target.port is not None
        with CuttingProxy((target.hostname, target.port), cut_after=12_000) as proxy:
            proxied = target._replace(netloc=proxy.address).geturl()
            context = task_context()
            operator(proxied, tmp_path / "heron.mp4", chunk_bytes=1024).execute(context)

        assert (tmp_path / "heron.mp4").read_bytes() == SAMPLE
        assert context["ti"].xcom["sha256"] == hashlib.sha256(SAMPLE).hexdigest()
        assert proxy.connections == 2
        # The second request asked for the rest only, and the emulator served it as a range.
        assert video_answers(emulator) == {"200": 1, "206": 1}

    def test_a_drop_with_no_attempt_left_leaves_nothing(self, emulator, tmp_path) -> None:
        url = finished_video_url(emulator)
        target = urlsplit(url)
        assert target.hostname is not None
        assert target.port is not None
        with (
            CuttingProxy((target.hostname, target.port), cut_after=12_000) as proxy,
            pytest.raises(InfinityBlueDownloadError, match="Could not download"),
        ):
            operator(target._replace(netloc=proxy.address).geturl(), tmp_path / "heron.mp4", max_attempts=1).execute(
                task_context()
            )
        assert list(tmp_path.iterdir()) == []

    def test_a_video_that_is_not_finished_is_a_clear_404(self, emulator, tmp_path) -> None:
        with pytest.raises(InfinityBlueDownloadError, match=r"HTTP 404 .*The video is not there"):
            operator(
                f"{emulator.url}/videos/never-generated.mp4", tmp_path / "x.mp4", allow_private_addresses=None
            ).execute(task_context())
        assert video_answers(emulator) == {"404": 1}  # not retried
        assert list(tmp_path.iterdir()) == []

    def test_the_api_key_is_not_sent_to_the_video_host(self, emulator, tmp_path) -> None:
        # The fixture set up the InfinityBlue connection with its key, and the hook used it.
        finished_video_url(emulator)
        with GeneratedVideoServer(size=1000) as host:
            operator(host.url, tmp_path / "a.mp4").execute(task_context())
        assert len(host.requests) == 1
        assert "Authorization" not in host.requests[0]
        assert DEFAULT_FAKE_API_KEY not in str(host.requests[0])
        assert host.requests[0]["User-Agent"].startswith("airflow-provider-infinityblue/")


class TestConstantMemory:
    SIZE = 24 * 1024 * 1024
    CHUNK = 64 * 1024

    def test_memory_peak_stays_far_below_the_video_size(self, tmp_path) -> None:
        with GeneratedVideoServer(size=self.SIZE) as server:
            operator(server.url, tmp_path / "warm-up.mp4").execute(task_context())  # imports and first-use caches

            # The control: reading the body in one piece is seen by this measure.
            tracemalloc.start()
            try:
                assert len(requests.get(server.url, timeout=30).content) == self.SIZE
                _, whole_body_peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()

            tracemalloc.start()
            try:
                context = task_context()
                operator(server.url, tmp_path / "big.mp4", chunk_bytes=self.CHUNK).execute(context)
                _, streaming_peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()

        assert whole_body_peak >= self.SIZE
        assert streaming_peak < self.SIZE / 16, f"peak {streaming_peak} bytes for a {self.SIZE}-byte video"
        assert (tmp_path / "big.mp4").stat().st_size == self.SIZE
        assert context["ti"].xcom["size_bytes"] == self.SIZE

    def test_resumes_a_large_video_where_it_stopped(self, tmp_path) -> None:
        size = 3 * 1024 * 1024
        with GeneratedVideoServer(size=size) as server:
            address = urlsplit(server.url)
            assert address.hostname is not None
            assert address.port is not None
            with CuttingProxy((address.hostname, address.port), cut_after=size // 2) as proxy:
                context = task_context()
                proxied = address._replace(netloc=proxy.address).geturl()
                operator(proxied, tmp_path / "v.mp4", chunk_bytes=64 * 1024).execute(context)
        assert context["ti"].xcom["sha256"] == hashlib.sha256(generated_video(size)).hexdigest()
        assert len(server.requests) == 2
        resumed_at = int(server.requests[1]["Range"].removeprefix("bytes=").removesuffix("-"))
        # All that arrived before the cut, but the last chunk in flight (and the headers).
        assert size // 2 - 2 * 64 * 1024 < resumed_at < size // 2
        assert server.requests[1]["If-Range"] == '"generated"'


class TestDeadlines:
    """A host that trickles or stalls cannot hold the worker: ``timeout`` bounds the whole download."""

    SIGNATURE = "SIGNATUREnotforerrors42"

    @pytest.mark.parametrize(
        ("headers", "delay", "received"),
        [
            # 50 bytes a second: the headers arrive, then the body, never a stall of read_timeout.
            (False, 0.02, "[1-9][0-9]*"),
            # 20 bytes a second: the status line and headers take longer than the timeout.
            (True, 0.05, "0"),
        ],
        ids=["trickled-body", "trickled-headers"],
    )
    def test_a_trickling_host_fails_at_the_timeout_and_leaves_nothing(
        self, tmp_path, caplog, headers, delay, received
    ) -> None:
        video = Reply(
            body=generated_video(2000),
            headers={"Content-Type": "video/mp4"},
            action="trickle",
            delay=delay,
            trickle_headers=headers,
        )
        with LoopbackServer([video, video]) as host:
            url = f"{host.url}/v.mp4?X-Amz-Signature={self.SIGNATURE}"
            started = time.monotonic()
            with pytest.raises(InfinityBlueDownloadError) as caught:
                # Small chunks: the bytes counted are those written, chunk by chunk.
                operator(url, tmp_path / "v.mp4", timeout=3, read_timeout=2, chunk_bytes=16).execute(task_context())
            elapsed = time.monotonic() - started
        assert 3 <= elapsed < 3 + 1
        head, tail = f"The download of {host.url}/v.mp4?… did not complete within timeout=3 s (after ", " bytes)"
        assert re.fullmatch(f"{re.escape(head)}{received}{re.escape(tail)}; nothing was saved", str(caught.value))
        assert self.SIGNATURE not in str(caught.value)
        assert self.SIGNATURE not in caplog.text
        assert not caught.value.transient
        assert len(host.received) == 1  # not retried: the time is up
        assert list(tmp_path.iterdir()) == []  # neither the video nor its temporary file

    def test_a_stall_fails_the_attempt_and_the_next_one_resumes(self, tmp_path) -> None:
        size = 50_000
        with GeneratedVideoServer(size=size, stall_after=20_000) as host:
            started = time.monotonic()
            context = task_context()
            operator(host.url, tmp_path / "v.mp4", read_timeout=0.5, chunk_bytes=1024).execute(context)
            elapsed = time.monotonic() - started
        assert elapsed < 0.5 + 1
        assert (tmp_path / "v.mp4").read_bytes() == generated_video(size)
        assert len(host.requests) == 2
        resumed_at = int(host.requests[1]["Range"].removeprefix("bytes=").removesuffix("-"))
        assert 0 < resumed_at <= 20_000

    def test_the_timeout_spans_every_attempt_and_wait(self, tmp_path) -> None:
        with LoopbackServer([Reply(action="silent")] * 10) as host:
            started = time.monotonic()
            with pytest.raises(
                InfinityBlueDownloadError, match=r"did not complete within timeout=2.5 s \(after 0 bytes\)"
            ):
                operator(f"{host.url}/v.mp4", tmp_path / "v.mp4", timeout=2.5, read_timeout=1, max_attempts=10).execute(
                    task_context()
                )
            elapsed = time.monotonic() - started
        assert 2.5 <= elapsed < 2.5 + 1
        assert len(host.received) == 3  # stalls of 1 s, 1 s, then half a second to the timeout
        assert list(tmp_path.iterdir()) == []
