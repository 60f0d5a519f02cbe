"""InfinityBlueDownloadVideoOperator called directly, with the video host mocked by requests-mock."""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
import requests
from fsspec.implementations.memory import MemoryFileSystem

from airflow_provider_infinityblue.download import (
    InfinityBlueDownloadError,
    InfinityBlueDownloadRefusedError,
    redact_url,
)
from airflow_provider_infinityblue.exceptions import InfinityBlueError
from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueDownloadVideoOperator
from airflow_provider_infinityblue.retry import RetryPolicy
from tests.conftest import FAKE_API_KEY, set_connection
from tests.unit.fakes import task_context

if TYPE_CHECKING:
    from pathlib import Path

VIDEO_URL = "https://cdn.example.com/videos/t1.mp4"
SIGNATURE = "SIGNATUREnotforlogs1234"
SIGNED_URL = f"{VIDEO_URL}?X-Amz-Expires=600&X-Amz-Signature={SIGNATURE}"
VIDEO = bytes(range(256)) * 40  # 10 240 bytes
MP4 = {"Content-Type": "video/mp4"}


def operator(destination: Path | str, *, url: str = VIDEO_URL, max_attempts: int = 3, **kwargs):
    op = InfinityBlueDownloadVideoOperator(task_id="download", url=url, destination=str(destination), **kwargs)
    # Same policy, without the seconds-long waits between attempts.
    op.download_retry_policy = RetryPolicy(max_attempts=max_attempts, initial_backoff=0.001, max_backoff=0.002)
    return op


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


class BreakingBody(io.RawIOBase):
    """A response body whose connection is reset after ``fail_after`` bytes."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        self.data = data
        self.position = 0
        self.fail_after = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.position >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        size = min(len(buffer), self.fail_after - self.position)
        buffer[:size] = self.data[self.position : self.position + size]
        self.position += size
        return size


class TestSuccess:
    def test_saves_the_video_returns_the_destination_and_pushes_size_and_sha256(self, tmp_path, requests_mock):
        requests_mock.get(VIDEO_URL, content=VIDEO, headers={**MP4, "Content-Length": str(len(VIDEO))})
        destination = tmp_path / "videos" / "2026-01-01" / "t1.mp4"  # missing parents are created
        context = task_context()

        result = operator(destination, chunk_bytes=1000).execute(context)

        assert result == str(destination)
        assert destination.read_bytes() == VIDEO
        assert context["ti"].xcom == {"size_bytes": len(VIDEO), "sha256": sha256(VIDEO)}
        assert files_in(tmp_path) == ["videos", "videos/2026-01-01", "videos/2026-01-01/t1.mp4"]

    def test_replaces_an_existing_file(self, tmp_path, requests_mock):
        requests_mock.get(VIDEO_URL, content=VIDEO, headers=MP4)
        destination = tmp_path / "t1.mp4"
        destination.write_bytes(b"an older video")
        operator(destination).execute(task_context())
        assert destination.read_bytes() == VIDEO

    def test_a_relative_path_is_returned_absolute(self, tmp_path, requests_mock, monkeypatch):
        monkeypatch.chdir(tmp_path)
        requests_mock.get(VIDEO_URL, content=VIDEO, headers=MP4)
        assert operator("out/t1.mp4").execute(task_context()) == str(tmp_path / "out" / "t1.mp4")
        assert (tmp_path / "out" / "t1.mp4").read_bytes() == VIDEO

    def test_a_file_url_destination_is_written_locally(self, tmp_path, requests_mock):
        requests_mock.get(VIDEO_URL, content=VIDEO, headers=MP4)
        destination = f"file://{tmp_path}/t1.mp4"
        assert operator(destination).execute(task_context()) == destination
        assert (tmp_path / "t1.mp4").read_bytes() == VIDEO

    @pytest.mark.parametrize(
        "content_type", ["video/mp4", "video/webm; codecs=vp9", "application/octet-stream", "binary/octet-stream"]
    )
    def test_default_content_types(self, tmp_path, requests_mock, content_type):
        requests_mock.get(VIDEO_URL, content=VIDEO, headers={"Content-Type": content_type})
        operator(tmp_path / "t1.mp4").execute(task_context())
        assert (tmp_path / "t1.mp4").read_bytes() == VIDEO

    def test_follows_relative_and_cross_host_redirects(self, tmp_path, requests_mock):
        requests_mock.get(VIDEO_URL, status_code=302, headers={"Location": "/signed/t1.mp4?sig=abc"})
        requests_mock.get(
            "https://cdn.example.com/signed/t1.mp4?sig=abc",
            status_code=307,
            headers={"Location": "http://edge.example.net/t1.mp4"},
        )
        requests_mock.get("http://edge.example.net/t1.mp4", content=VIDEO, headers=MP4)
        operator(tmp_path / "t1.mp4").execute(task_context())
        assert (tmp_path / "t1.mp4").read_bytes() == VIDEO
        assert [r.url for r in requests_mock.request_history][-1] == "http://edge.example.net/t1.mp4"


class TestRefusedSources:
    @pytest.mark.parametrize(
        "url",
        [
            "file:///etc/passwd",
            "ftp://ftp.example.com/video.mp4",
            "s3://bucket/video.mp4",
            "javascript:alert(1)",
            "/local/video.mp4",
            "https:///no-host.mp4",
        ],
    )
    def test_only_http_and_https(self, tmp_path, requests_mock, url):
        with pytest.raises(InfinityBlueDownloadRefusedError, match=r"only http:// and https://"):
            operator(tmp_path / "t1.mp4", url=url).execute(task_context())
        assert not requests_mock.called
        assert files_in(tmp_path) == []

    @pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://ftp.example.com/t1.mp4", "gopher://x/1"])
    def test_a_redirect_to_another_scheme_is_refused(self, tmp_path, requests_mock, target):
        requests_mock.get(VIDEO_URL, status_code=302, headers={"Location": target})
        with pytest.raises(InfinityBlueDownloadRefusedError) as refused:
            operator(tmp_path / "t1.mp4").execute(task_context())
        assert f"Refusing to follow the redirect from {VIDEO_URL} to {target}" in str(refused.value)
        assert requests_mock.call_count == 1  # refused, not retried
        assert files_in(tmp_path) == []

    def test_redirect_hop_limit(self, tmp_path, requests_mock):
        for hop in range(20):
            requests_mock.get(f"https://cdn.example.com/hop/{hop}", status_code=301, headers={"Location": str(hop + 1)})
        with pytest.raises(InfinityBlueDownloadRefusedError, match="more than 10 redirects"):
            operator(tmp_path / "t1.mp4", url="https://cdn.example.com/hop/0").execute(task_context())
        assert requests_mock.call_count == 11
        assert files_in(tmp_path) == []

    def test_a_redirect_loop_ends_at_the_limit_too(self, tmp_path, requests_mock):
        requests_mock.get(VIDEO_URL, status_code=302, headers={"Location": VIDEO_URL})
        with pytest.raises(InfinityBlueDownloadRefusedError, match="more than 10 redirects"):
            operator(tmp_path / "t1.mp4").execute(task_context())


class TestSizeCap:
    def test_refused_from_content_length_before_reading(self, tmp_path, requests_mock):
        requests_mock.get(VIDEO_URL, content=VIDEO, headers={**MP4, "Content-Length": str(len(VIDEO))})
        with pytest.raises(InfinityBlueDownloadRefusedError) as refused:
            operator(tmp_path / "t1.mp4", max_bytes=4096).execute(task_context())
        assert f"it is {len(VIDEO)} bytes, more than max_bytes=4096" in str(refused.value)
        assert requests_mock.call_count == 1
        assert files_in(tmp_path) == []

    def test_aborted_while_streaming_when_the_size_was_not_announced(self, tmp_path, requests_mock):
        requests_mock.get(VIDEO_URL, body=io.BytesIO(VIDEO), headers=MP4)  # no Content-Length
        destination = tmp_path / "t1.mp4"
        with pytest.raises(InfinityBlueDownloadRefusedError, match="went past max_bytes=4096"):
            operator(destination, max_bytes=4096, chunk_bytes=1024).execute(task_context())
        assert requests_mock.call_count == 1
        assert files_in(tmp_path) == []

    def test_exactly_at_the_cap_is_fine(self, tmp_path, requests_mock):
        requests_mock.get(VIDEO_URL, content=VIDEO, headers=MP4)
        operator(tmp_path / "t1.mp4", max_bytes=len(VIDEO)).execute(task_context())
        assert (tmp_path / "t1.mp4").stat().st_size == len(VIDEO)


class TestContentType:
    def test_an_html_page_is_refused_and_said_so(self, tmp_path, requests_mock):
        page = (
            "<html><head><title>Request has expired</title></head><body>"
            f"<p>AccessDenied for {SIGNED_URL}</p></body></html>"
        )
        requests_mock.get(SIGNED_URL, text=page, headers={"Content-Type": "text/html; charset=utf-8"})
        with pytest.raises(InfinityBlueDownloadRefusedError) as refused:
            operator(tmp_path / "t1.mp4", url=SIGNED_URL).execute(task_context())
        message = str(refused.value)
        assert "it is an HTML page (HTTP 200, text/html, " in message
        assert "expired signed URL" in message
        assert "Request has expired" not in message  # no body from a video host is quoted
        assert SIGNATURE not in message
        assert requests_mock.call_count == 1
        assert files_in(tmp_path) == []

    @pytest.mark.parametrize("content_type", ["application/json", "image/png", ""])
    def test_other_types_are_refused_with_the_allowed_list(self, tmp_path, requests_mock, content_type):
        requests_mock.get(VIDEO_URL, content=b"{}", headers={"Content-Type": content_type} if content_type else {})
        with pytest.raises(InfinityBlueDownloadRefusedError, match="not one of allowed_content_types"):
            operator(tmp_path / "t1.mp4").execute(task_context())
        assert files_in(tmp_path) == []

    def test_allowed_types_are_configurable(self, tmp_path, requests_mock):
        requests_mock.get(VIDEO_URL, content=VIDEO, headers={"Content-Type": "image/gif"})
        operator(tmp_path / "a.gif", allowed_content_types=["image/gif"]).execute(task_context())
        with pytest.raises(InfinityBlueDownloadRefusedError, match=r"image/gif, .*: its Content-Type is not one"):
            operator(tmp_path / "b.gif", allowed_content_types="video/mp4").execute(task_context())
        operator(tmp_path / "c.gif", allowed_content_types=("*",)).execute(task_context())
        assert files_in(tmp_path) == ["a.gif", "c.gif"]


class TestRetries:
    def test_503_then_success(self, tmp_path, requests_mock, capsys):
        requests_mock.get(
            VIDEO_URL,
            [
                {"status_code": 503, "text": "busy", "headers": {"Content-Type": "text/plain"}},
                {"status_code": 502, "text": "bad gateway"},
                {"content": VIDEO, "headers": MP4},
            ],
        )
        context = task_context()
        operator(tmp_path / "t1.mp4").execute(context)
        assert requests_mock.call_count == 3
        assert context["ti"].xcom["sha256"] == sha256(VIDEO)
        assert "failed (attempt 1 of 3), retrying" in capsys.readouterr().out

    def test_connection_error_and_timeout_then_success(self, tmp_path, requests_mock):
        requests_mock.get(
            VIDEO_URL,
            [
                {"exc": requests.exceptions.ConnectionError("connection refused")},
                {"exc": requests.exceptions.ReadTimeout("read timed out")},
                {"content": VIDEO, "headers": MP4},
            ],
        )
        operator(tmp_path / "t1.mp4").execute(task_context())
        assert (tmp_path / "t1.mp4").read_bytes() == VIDEO

    @pytest.mark.parametrize("status", [429, 503])
    def test_retry_after_is_honoured(self, tmp_path, requests_mock, monkeypatch, status):
        waits: list[float] = []
        monkeypatch.setattr("airflow_provider_infinityblue.download.transfer.time.sleep", waits.append)
        requests_mock.get(
            VIDEO_URL, [{"status_code": status, "headers": {"Retry-After": "7"}}, {"content": VIDEO, "headers": MP4}]
        )
        operator(tmp_path / "t1.mp4").execute(task_context())
        assert waits == [7.0]
        assert (tmp_path / "t1.mp4").read_bytes() == VIDEO

    def test_a_retry_after_beyond_reason_is_not_waited_for(self, tmp_path, requests_mock, monkeypatch):
        monkeypatch.setattr("airflow_provider_infinityblue.download.transfer.time.sleep", pytest.fail)
        requests_mock.get(VIDEO_URL, status_code=429, headers={"Retry-After": "3600"})
        with pytest.raises(InfinityBlueDownloadError, match=r"HTTP 429 .*\(rate limited\)"):
            operator(tmp_path / "t1.mp4").execute(task_context())
        assert requests_mock.call_count == 1

    def test_no_wait_ends_past_the_timeout(self, tmp_path, requests_mock, monkeypatch):
        monkeypatch.setattr("airflow_provider_infinityblue.download.transfer.time.sleep", pytest.fail)
        requests_mock.get(VIDEO_URL, [{"status_code": 503, "headers": {"Retry-After": "7"}}, {"content": VIDEO}])
        with pytest.raises(
            InfinityBlueDownloadError, match=r"did not complete within timeout=5 s \(after 0 bytes\); nothing was saved"
        ) as caught:
            operator(tmp_path / "t1.mp4", timeout=5).execute(task_context())
        assert "HTTP 503" in str(caught.value.__cause__)
        assert requests_mock.call_count == 1
        assert files_in(tmp_path) == []

    def test_gives_up_after_max_attempts_with_the_last_error(self, tmp_path, requests_mock):
        requests_mock.get(VIDEO_URL, status_code=500, text="oops")
        with pytest.raises(
            InfinityBlueDownloadError,
            match=r"HTTP 500 \(no Content-Type, size unknown\) to GET https://cdn.example.com/videos/t1.mp4",
        ):
            operator(tmp_path / "t1.mp4", max_attempts=2).execute(task_context())
        assert requests_mock.call_count == 2
        assert files_in(tmp_path) == []

    @pytest.mark.parametrize(("status", "hint"), [(404, "The video is not there"), (410, "The video is not there")])
    def test_not_found_is_not_retried_and_says_so(self, tmp_path, requests_mock, status, hint):
        requests_mock.get(
            SIGNED_URL,
            status_code=status,
            json={"error": {"message": "no such object"}},
            headers={"Content-Type": "application/json", "Content-Length": "42"},
        )
        with pytest.raises(InfinityBlueDownloadError) as failed:
            operator(tmp_path / "t1.mp4", url=SIGNED_URL).execute(task_context())
        message = str(failed.value)
        assert f"The video host answered HTTP {status} (application/json, 42 bytes)" in message
        assert f"to GET {VIDEO_URL}?…" in message
        assert "no such object" not in message  # no body from a video host is quoted
        assert hint in message
        assert SIGNATURE not in message
        assert failed.value.status_code == status
        assert requests_mock.call_count == 1

    def test_forbidden_says_the_link_may_have_expired(self, tmp_path, requests_mock):
        requests_mock.get(VIDEO_URL, status_code=403, text="<Error><Code>AccessDenied</Code></Error>")
        with pytest.raises(InfinityBlueDownloadError, match="The link may have expired"):
            operator(tmp_path / "t1.mp4").execute(task_context())
        assert requests_mock.call_count == 1


class TestResume:
    def test_resumes_with_a_range_request_after_a_reset(self, tmp_path, requests_mock):
        seen: list[dict[str, str]] = []

        def rest(request, context):
            seen.append(dict(request.headers))
            context.status_code = 206
            context.headers = {**MP4, "Content-Range": f"bytes 4000-{len(VIDEO) - 1}/{len(VIDEO)}"}
            return VIDEO[4000:]

        full = {**MP4, "Content-Length": str(len(VIDEO)), "Accept-Ranges": "bytes", "ETag": '"v1"'}
        requests_mock.get(
            VIDEO_URL, [{"body": BreakingBody(VIDEO, fail_after=4000), "headers": full}, {"content": rest}]
        )
        context = task_context()
        operator(tmp_path / "t1.mp4", chunk_bytes=1000).execute(context)
        assert (tmp_path / "t1.mp4").read_bytes() == VIDEO
        assert context["ti"].xcom == {"size_bytes": len(VIDEO), "sha256": sha256(VIDEO)}
        assert seen[0]["Range"] == "bytes=4000-"
        assert seen[0]["If-Range"] == '"v1"'

    def test_starts_over_when_the_server_sends_the_whole_video_again(self, tmp_path, requests_mock):
        full = {**MP4, "Content-Length": str(len(VIDEO)), "Accept-Ranges": "bytes"}
        requests_mock.get(
            VIDEO_URL,
            [{"body": BreakingBody(VIDEO, fail_after=4000), "headers": full}, {"content": VIDEO, "headers": full}],
        )
        context = task_context()
        operator(tmp_path / "t1.mp4", chunk_bytes=1000).execute(context)
        assert (tmp_path / "t1.mp4").read_bytes() == VIDEO
        assert context["ti"].xcom["sha256"] == sha256(VIDEO)

    def test_a_short_body_is_retried(self, tmp_path, requests_mock):
        announced = {**MP4, "Content-Length": str(len(VIDEO)), "Accept-Ranges": "none"}
        requests_mock.get(
            VIDEO_URL,
            [{"body": io.BytesIO(VIDEO[:100]), "headers": announced}, {"content": VIDEO, "headers": announced}],
        )
        operator(tmp_path / "t1.mp4").execute(task_context())
        assert (tmp_path / "t1.mp4").read_bytes() == VIDEO
        assert "Range" not in requests_mock.request_history[1].headers  # the server said it has no ranges


class TestAtomicity:
    def test_a_failure_mid_stream_leaves_no_file_and_no_temporary_file(self, tmp_path, requests_mock):
        requests_mock.get(
            VIDEO_URL,
            body=BreakingBody(VIDEO, fail_after=5000),
            headers={**MP4, "Content-Length": str(len(VIDEO))},
        )
        with pytest.raises(InfinityBlueDownloadError, match="after 5000 bytes of the body") as failed:
            operator(tmp_path / "videos" / "t1.mp4", max_attempts=1, chunk_bytes=1000).execute(task_context())
        assert failed.value.transient
        assert files_in(tmp_path) == []  # nor the directory it created for the video

    def test_a_failure_keeps_the_previous_video(self, tmp_path, requests_mock):
        destination = tmp_path / "t1.mp4"
        destination.write_bytes(b"yesterday's video")
        requests_mock.get(VIDEO_URL, [{"body": BreakingBody(VIDEO, fail_after=5000), "headers": MP4} for _ in range(2)])
        with pytest.raises(InfinityBlueDownloadError):
            operator(destination, max_attempts=2, chunk_bytes=1000).execute(task_context())
        assert destination.read_bytes() == b"yesterday's video"
        assert files_in(tmp_path) == ["t1.mp4"]

    def test_an_interruption_leaves_nothing_either(self, tmp_path, requests_mock):
        class Interrupted(BaseException):
            """Stands for Airflow stopping the task mid-read (SIGTERM, execution timeout)."""

        class InterruptedBody(BreakingBody):
            def readinto(self, buffer) -> int:
                if self.position >= self.fail_after:
                    assert next(tmp_path.iterdir()).name.startswith(".t1.mp4.")  # mid-download
                    raise Interrupted
                return super().readinto(buffer)

        requests_mock.get(VIDEO_URL, body=InterruptedBody(VIDEO, fail_after=3000), headers=MP4)
        with pytest.raises(Interrupted):
            operator(tmp_path / "t1.mp4", chunk_bytes=1000).execute(task_context())
        assert files_in(tmp_path) == []


class TestNoCredentials:
    def test_no_authorization_header_ever(self, tmp_path, requests_mock, monkeypatch):
        # The InfinityBlue connection exists and ~/.netrc has credentials for the video host:
        # requests would send them, this operator must not.
        set_connection(monkeypatch, host="https://api.example.com", password=FAKE_API_KEY)
        netrc = tmp_path / "netrc"
        netrc.write_text("machine cdn.example.com login someone password netrc-secret\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        requests_mock.get("https://user:pw@cdn.example.com/videos/t1.mp4", content=VIDEO, headers=MP4)
        requests_mock.get(VIDEO_URL, status_code=302, headers={"Location": "https://other.example.org/t1.mp4"})
        requests_mock.get("https://other.example.org/t1.mp4", content=VIDEO, headers=MP4)

        # The control: plain requests does add the netrc credentials.
        assert "Authorization" in requests.get(VIDEO_URL, allow_redirects=False).request.headers
        requests_mock.reset_mock()

        operator(tmp_path / "a.mp4").execute(task_context())
        operator(tmp_path / "b.mp4", url="https://user:pw@cdn.example.com/videos/t1.mp4").execute(task_context())

        assert requests_mock.call_count == 3
        for request in requests_mock.request_history:
            assert "Authorization" not in request.headers
            assert FAKE_API_KEY not in str(request.headers)
            assert request.headers["User-Agent"].startswith("airflow-provider-infinityblue/")
            assert request.headers["Accept-Encoding"] == "identity"
            assert request.timeout == (10, 60)


class TestSecretsStayOut:
    def test_signed_query_strings_appear_in_no_log_and_no_error(self, tmp_path, requests_mock, capfd, caplog):
        # INFO and up, as Airflow logs by default: at DEBUG, urllib3 (and requests-mock, its stand-in
        # here) log each request line, query string included.
        caplog.set_level(logging.INFO)
        requests_mock.get(
            SIGNED_URL,
            [
                {"exc": requests.exceptions.ConnectionError(f"Max retries exceeded with url: {SIGNED_URL}")},
                {"status_code": 302, "headers": {"Location": f"https://edge.example.net/t1.mp4?token={SIGNATURE}"}},
            ],
        )
        requests_mock.get(f"https://edge.example.net/t1.mp4?token={SIGNATURE}", status_code=500, text=SIGNED_URL)
        with pytest.raises(InfinityBlueDownloadError) as failed:
            operator(tmp_path / "t1.mp4", url=SIGNED_URL, max_attempts=3).execute(task_context())
        logged = capfd.readouterr().out + caplog.text
        assert SIGNATURE not in str(failed.value)
        assert SIGNATURE not in logged
        assert "https://cdn.example.com/videos/t1.mp4?… redirects to https://edge.example.net/t1.mp4?…" in logged
        assert "failed (attempt 2 of 3)" in logged

    def test_redact_url(self):
        assert redact_url(SIGNED_URL) == f"{VIDEO_URL}?…"
        assert redact_url("https://u:p@h.example:8443/a.mp4#frag") == "https://h.example:8443/a.mp4"


class TestObjectStorage:
    """The upload branch, on fsspec's in-memory filesystem attached under a connection id of its own."""

    @pytest.fixture
    def memory(self):
        from airflow.sdk.io import attach

        fs = MemoryFileSystem()
        attach("memory", conn_id="download_test_memory", fs=fs)
        yield fs
        if fs.exists("/bucket"):
            fs.rm("/bucket", recursive=True)

    def test_uploads_the_complete_video(self, tmp_path, requests_mock, memory, monkeypatch):
        monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
        requests_mock.get(VIDEO_URL, content=VIDEO, headers=MP4)
        context = task_context()
        destination = "memory://bucket/videos/t1.mp4"
        result = operator(destination, destination_conn_id="download_test_memory").execute(context)
        assert result == destination
        assert memory.cat_file("/bucket/videos/t1.mp4") == VIDEO
        assert context["ti"].xcom == {"size_bytes": len(VIDEO), "sha256": sha256(VIDEO)}
        assert files_in(tmp_path) == []  # the local temporary file is gone

    def test_a_failed_download_uploads_nothing(self, tmp_path, requests_mock, memory, monkeypatch):
        monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
        requests_mock.get(VIDEO_URL, body=BreakingBody(VIDEO, fail_after=5000), headers=MP4)
        with pytest.raises(InfinityBlueDownloadError):
            operator(
                "memory://bucket/videos/t1.mp4", destination_conn_id="download_test_memory", max_attempts=1
            ).execute(task_context())
        assert not memory.exists("/bucket/videos/t1.mp4")
        assert files_in(tmp_path) == []

    def test_an_upload_failure_is_an_infinityblue_error(self, tmp_path, requests_mock, monkeypatch):
        from airflow.sdk.io import attach

        class FullStore(MemoryFileSystem):
            cachable = False

            def put_file(self, lpath, rpath, **kwargs):
                raise PermissionError("quota exceeded")

        attach("memory", conn_id="download_test_full", fs=FullStore())
        monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
        requests_mock.get(VIDEO_URL, content=VIDEO, headers=MP4)
        with pytest.raises(InfinityBlueDownloadError, match=r"Could not save the video to memory://bucket/t1.mp4"):
            operator("memory://bucket/t1.mp4", destination_conn_id="download_test_full").execute(task_context())
        assert files_in(tmp_path) == []

    def test_a_scheme_without_a_filesystem_fails_before_downloading(self, tmp_path, requests_mock):
        with pytest.raises(InfinityBlueDownloadError, match=r"Install apache-airflow-providers-google") as failed:
            operator("gs://bucket/t1.mp4").execute(task_context())
        assert "Cannot write to gs:// destinations" in str(failed.value)
        assert not requests_mock.called

    # A bucket alone (s3://bucket) is refused too: tests/integration/test_download_s3.py, on a real S3 API.
    # The memory filesystem has no buckets on every Airflow (universal-pathlib 0.2, which Airflow 3.0 needs,
    # reads memory://bucket as a file named "bucket"), so only a folder is tested here.
    def test_the_destination_must_name_an_object(self, requests_mock, memory):
        with pytest.raises(InfinityBlueDownloadRefusedError, match="names no file"):
            operator("memory://bucket/videos/", destination_conn_id="download_test_memory").execute(task_context())
        assert not requests_mock.called


class TestParameters:
    def test_template_fields(self):
        assert InfinityBlueDownloadVideoOperator.template_fields == (
            "url",
            "destination",
            "destination_conn_id",
            "infinityblue_conn_id",
        )

    def test_templates_are_rendered(self, tmp_path, requests_mock):
        requests_mock.get("https://cdn.example.com/videos/t42.mp4", content=VIDEO, headers=MP4)
        op = operator(
            str(tmp_path) + "/{{ ds }}/{{ params.name }}.mp4",
            url="https://cdn.example.com/videos/{{ params.name }}.mp4",
            destination_conn_id="{{ params.conn }}",
        )
        op.render_template_fields({"ds": "2026-01-01", "params": {"name": "t42", "conn": ""}})
        assert op.url == "https://cdn.example.com/videos/t42.mp4"
        assert op.destination == f"{tmp_path}/2026-01-01/t42.mp4"
        assert op.execute(task_context()) == f"{tmp_path}/2026-01-01/t42.mp4"

    @pytest.mark.parametrize(
        "bad",
        [
            {"max_bytes": 0},
            {"chunk_bytes": -1},
            {"read_timeout": 0},
            {"max_attempts": 0},
            {"allowed_content_types": []},
        ],
    )
    def test_bad_limits_fail_at_parse_time(self, bad):
        with pytest.raises(ValueError, match=r"^download: "):
            InfinityBlueDownloadVideoOperator(task_id="download", url=VIDEO_URL, destination="/x.mp4", **bad)

    @pytest.mark.parametrize("timeout", [0, -1, float("nan"), float("inf"), "x", timedelta(0), True])
    def test_timeout_must_be_a_positive_finite_number(self, timeout):
        with pytest.raises(ValueError, match=r"^download: timeout must be a positive finite number, got "):
            InfinityBlueDownloadVideoOperator(task_id="download", url=VIDEO_URL, destination="/x.mp4", timeout=timeout)

    @pytest.mark.parametrize(("timeout", "seconds"), [(90, 90), (2.5, 2.5), (timedelta(minutes=5), 300.0)])
    def test_timeout_in_seconds_or_as_a_timedelta(self, timeout, seconds):
        op = InfinityBlueDownloadVideoOperator(task_id="download", url=VIDEO_URL, destination="/x.mp4", timeout=timeout)
        assert op.download_settings().timeout == seconds

    def test_the_default_timeout_is_an_hour(self):
        op = InfinityBlueDownloadVideoOperator(task_id="download", url=VIDEO_URL, destination="/x.mp4")
        assert op.download_settings().timeout == 3600

    def test_a_directory_destination_is_refused(self, tmp_path, requests_mock):
        with pytest.raises(InfinityBlueDownloadRefusedError, match="is a directory: name the file"):
            operator(tmp_path).execute(task_context())
        with pytest.raises(InfinityBlueDownloadRefusedError, match="is a directory"):
            operator(f"{tmp_path}/new/").execute(task_context())
        assert not requests_mock.called

    def test_errors_are_infinityblue_errors(self):
        assert issubclass(InfinityBlueDownloadRefusedError, InfinityBlueDownloadError)
        assert issubclass(InfinityBlueDownloadError, InfinityBlueError)


@pytest.mark.parametrize(
    "module", ["airflow_provider_infinityblue.download", "airflow_provider_infinityblue.operators.infinityblue"]
)
def test_importing_stays_light(module: str) -> None:
    forbidden = ["requests", "aiohttp", "s3fs", "boto3", "botocore"]
    code = f"import sys, {module}; print([m for m in {forbidden!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
