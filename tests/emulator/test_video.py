"""The sample MP4: a real, decodable H.264 file, served with the right headers and byte ranges."""

from __future__ import annotations

import shutil
import struct
import subprocess

import imageio_ffmpeg
import pytest

from airflow_provider_infinityblue.emulator import running_emulator
from airflow_provider_infinityblue.emulator.sample_video import (
    SAMPLE_VIDEO_FPS,
    SAMPLE_VIDEO_HEIGHT,
    SAMPLE_VIDEO_PATH,
    SAMPLE_VIDEO_SECONDS,
    SAMPLE_VIDEO_WIDTH,
)
from tests.emulator.conftest import ApiClient
from tests.emulator.video_probe import probe_video

SAMPLE = SAMPLE_VIDEO_PATH.read_bytes()


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[str, int, int]]:
    """The ISO-BMFF boxes between ``start`` and ``end``: (type, payload start, box end)."""
    end = len(data) if end is None else end
    found = []
    while start < end:
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", data[start + 8 : start + 16])
            header = 16
        elif size == 0:
            size = end - start
        assert size >= header, f"corrupt box {kind!r} at {start}"
        found.append((kind.decode("latin-1"), start + header, start + size))
        start += size
    assert start == end, "boxes overrun their parent"
    return found


def child(data: bytes, parent: tuple[str, int, int], kind: str) -> tuple[str, int, int]:
    return next(box for box in boxes(data, parent[1], parent[2]) if box[0] == kind)


def test_the_sample_is_a_small_faststart_mp4() -> None:
    top = [kind for kind, _, _ in boxes(SAMPLE)]
    assert top[0] == "ftyp"
    assert "moov" in top
    assert "mdat" in top
    assert top.index("moov") < top.index("mdat"), "moov must come first (-movflags +faststart)"
    assert len(SAMPLE) < 200 * 1024


def test_the_sample_holds_what_the_emulator_reports_about_it() -> None:
    moov = next(box for box in boxes(SAMPLE) if box[0] == "moov")
    _, mvhd_at, _ = child(SAMPLE, moov, "mvhd")
    assert SAMPLE[mvhd_at] == 0, "mvhd version 0 expected"
    timescale, duration = struct.unpack(">II", SAMPLE[mvhd_at + 12 : mvhd_at + 20])
    assert duration / timescale == pytest.approx(SAMPLE_VIDEO_SECONDS, abs=0.1)
    _, _, tkhd_end = child(SAMPLE, child(SAMPLE, moov, "trak"), "tkhd")
    width, height = struct.unpack(">II", SAMPLE[tkhd_end - 8 : tkhd_end])
    assert (width >> 16, height >> 16) == (SAMPLE_VIDEO_WIDTH, SAMPLE_VIDEO_HEIGHT)


def test_the_sample_decodes_fully_without_errors() -> None:
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    decoded = subprocess.run(
        [ffmpeg, "-v", "error", "-i", str(SAMPLE_VIDEO_PATH), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert decoded.returncode == 0
    assert decoded.stderr == ""
    probed = probe_video(SAMPLE_VIDEO_PATH)
    assert probed.frames == SAMPLE_VIDEO_SECONDS * SAMPLE_VIDEO_FPS
    assert (probed.codec, probed.width, probed.height, probed.fps) == (
        "h264",
        SAMPLE_VIDEO_WIDTH,
        SAMPLE_VIDEO_HEIGHT,
        SAMPLE_VIDEO_FPS,
    )
    ffprobe = shutil.which("ffprobe")
    if ffprobe:  # not every machine has it; ffmpeg above already decoded every frame
        probed = subprocess.run(
            [ffprobe, "-v", "error", "-show_entries", "stream=codec_name,width,height", "-of", "csv=p=0",
             str(SAMPLE_VIDEO_PATH)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert probed.returncode == 0
        assert probed.stderr == ""
        assert probed.stdout.strip() == f"h264,{SAMPLE_VIDEO_WIDTH},{SAMPLE_VIDEO_HEIGHT}"


@pytest.fixture
def video_url():
    with running_emulator(generation_seconds=0) as emulator:
        api = ApiClient(emulator.url)
        yield api, api.wait_until_finished(api.submit_id())["url"]


def test_the_video_is_served_whole_with_type_and_length(video_url) -> None:
    api, url = video_url
    response = api.session.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "video/mp4"
    assert int(response.headers["Content-Length"]) == len(SAMPLE)
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["x-request-id"].startswith("req_")
    assert response.content == SAMPLE


def test_head_gives_the_length_without_the_body(video_url) -> None:
    api, url = video_url
    response = api.session.head(url, timeout=10)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(SAMPLE)
    assert response.content == b""


@pytest.mark.parametrize(
    ("range_header", "first", "last"),
    [("bytes=0-99", 0, 99), ("bytes=1000-1999", 1000, 1999), ("bytes=-500", len(SAMPLE) - 500, len(SAMPLE) - 1)],
)
def test_a_range_request_gets_206_and_exactly_those_bytes(video_url, range_header, first, last) -> None:
    api, url = video_url
    response = api.session.get(url, headers={"Range": range_header}, timeout=10)
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes {first}-{last}/{len(SAMPLE)}"
    assert int(response.headers["Content-Length"]) == last - first + 1
    assert response.content == SAMPLE[first : last + 1]


def test_a_range_past_the_end_is_416(video_url) -> None:
    api, url = video_url
    response = api.session.get(url, headers={"Range": f"bytes={len(SAMPLE) + 10}-"}, timeout=10)
    assert response.status_code == 416
    assert response.headers["x-request-id"].startswith("req_")
