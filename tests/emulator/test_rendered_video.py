"""Rendered videos: the length, size and frame rate a request asked for, within caps, once per shape.

Renders are shared by every emulator of a process, so each test that counts renders asks for a
shape of its own that no other test asks for.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import pytest

from airflow_provider_infinityblue.emulator import running_emulator
from airflow_provider_infinityblue.emulator.sample_video import SAMPLE_VIDEO_PATH
from airflow_provider_infinityblue.emulator.videos import VideoShape
from airflow_provider_infinityblue.testing import emulator_process
from tests.emulator.conftest import ApiClient
from tests.emulator.video_probe import decoding_errors, probe_video, top_level_boxes

if TYPE_CHECKING:
    from pathlib import Path

SAMPLE = SAMPLE_VIDEO_PATH.read_bytes()
SAMPLE_METADATA = {"duration": 3, "width": 320, "height": 180, "fps": 24}


def finished(api: ApiClient, **shape: object) -> dict:
    """A completed generation's status answer, for a request asking for ``shape``."""
    body = api.wait_until_finished(api.submit_id(**shape), timeout=30)
    assert body["status"] == "completed", body
    return body


def download(api: ApiClient, url: str, destination: Path) -> Path:
    response = api.session.get(url, timeout=120)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "video/mp4"
    destination.write_bytes(response.content)
    return destination


def test_the_video_has_the_requested_duration_size_and_frame_rate(tmp_path: Path) -> None:
    with running_emulator(generation_seconds=0) as emulator:
        api = ApiClient(emulator.url)
        body = finished(api, duration=2, width=640, height=360, fps=24)
        video = download(api, body["url"], tmp_path / "fox.mp4")
        ranged = api.session.get(body["url"], headers={"Range": "bytes=100-199"}, timeout=30)

    assert body["metadata"] == {"duration": 2, "width": 640, "height": 360, "fps": 24}
    probed = probe_video(video)
    assert (probed.width, probed.height, probed.fps, probed.frames) == (640, 360, 24, 48)
    assert probed.seconds == pytest.approx(2.0, abs=0.05)
    assert (probed.codec, probed.pixel_format) == ("h264", "yuv420p")
    assert decoding_errors(video) == ""
    boxes = top_level_boxes(video.read_bytes())
    assert boxes.index("moov") < boxes.index("mdat"), "moov first (+faststart), so players can stream it"
    assert ranged.status_code == 206
    assert ranged.content == video.read_bytes()[100:200]


def test_a_request_over_the_caps_gets_the_capped_video_without_blocking_the_emulator(tmp_path: Path) -> None:
    """60 s of 4K at 60 fps becomes 10 s of 1280x720 at 30 fps, the largest render; the API answers meanwhile."""
    with running_emulator(generation_seconds=0) as emulator:
        api = ApiClient(emulator.url)
        body = finished(api, duration=60, width=3840, height=2160, fps=60)
        status_url = f"{emulator.url}/v1/video/generations/{body['task_id']}"
        big = tmp_path / "big.mp4"
        downloader = threading.Thread(target=download, args=(ApiClient(emulator.url), body["url"], big))
        downloader.start()
        deadline = time.monotonic() + 30
        while emulator.stats()["video_renders"] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        # The render has started and takes seconds: the event loop still answers the API.
        status = api.session.get(status_url, timeout=30)
        rendering_still = downloader.is_alive()
        downloader.join(120)

    assert status.status_code == 200
    assert rendering_still, "the status answer came after the render: the event loop was blocked"
    assert body["metadata"] == {"duration": 10, "width": 1280, "height": 720, "fps": 30}
    probed = probe_video(big)
    assert (probed.width, probed.height, probed.fps, probed.frames) == (1280, 720, 30, 300)
    assert probed.seconds == pytest.approx(10.0, abs=0.05)


@pytest.mark.parametrize(
    ("request_fields", "served"),
    [
        ({}, VideoShape(3.0, 320, 180, 24)),
        ({"duration": 5, "width": 1280, "height": 720, "fps": 24}, VideoShape(5.0, 1280, 720, 24)),
        ({"duration": 10.5}, VideoShape(10.0, 320, 180, 24)),
        ({"fps": 120}, VideoShape(3.0, 320, 180, 30)),
        ({"width": 1920, "height": 1080}, VideoShape(3.0, 1280, 720, 24)),
        ({"width": 1080, "height": 1920}, VideoShape(3.0, 720, 1280, 24)),
        ({"width": 4000, "height": 1000}, VideoShape(3.0, 1280, 320, 24)),
        ({"width": 641, "height": 361}, VideoShape(3.0, 642, 362, 24)),
        ({"width": 1280}, VideoShape(3.0, 1280, 720, 24)),
        ({"height": 360, "duration": 0.5}, VideoShape(0.5, 640, 360, 24)),
    ],
)
def test_the_served_shape_applies_defaults_and_caps(request_fields: dict, served: VideoShape) -> None:
    assert VideoShape.requested(request_fields) == served


def test_concurrent_downloads_of_one_shape_render_it_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="infinityblue.emulator")
    shape = {"duration": 3, "width": 960, "height": 540, "fps": 25}
    with running_emulator(generation_seconds=0) as emulator:
        urls = [finished(ApiClient(emulator.url), **shape)["url"] for _ in range(2)]
        assert emulator.stats()["video_renders"] == 0, "nothing is rendered before a download asks for it"
        start_together = threading.Barrier(2)
        downloaded: list[bytes] = []

        def fetch(url: str) -> None:
            client = ApiClient(emulator.url)
            start_together.wait(30)
            downloaded.append(client.session.get(url, timeout=120).content)

        fetchers = [threading.Thread(target=fetch, args=(url,)) for url in urls]
        for fetcher in fetchers:
            fetcher.start()
        for fetcher in fetchers:
            fetcher.join(120)
        later = ApiClient(emulator.url).session.get(urls[0], timeout=60).content
        renders = emulator.stats()["video_renders"]
    with running_emulator(generation_seconds=0) as another:
        api = ApiClient(another.url)
        elsewhere = api.session.get(finished(api, **shape)["url"], timeout=60).content
        renders_elsewhere = another.stats()["video_renders"]

    assert renders == 1
    assert renders_elsewhere == 0, "the emulators of one process share their renders"
    assert len(downloaded) == 2
    assert downloaded[0] == downloaded[1] == later == elsewhere != SAMPLE
    rendered_lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Rendered the ")]
    assert len(rendered_lines) == 1
    assert rendered_lines[0].startswith("Rendered the 3 s 960x540 25 fps video in ")
    (tmp_path / "one.mp4").write_bytes(later)
    assert probe_video(tmp_path / "one.mp4").frames == 75


def test_the_sample_knob_serves_the_sample_byte_for_byte_until_switched_back() -> None:
    with running_emulator(generation_seconds=0, video="sample") as emulator:
        api = ApiClient(emulator.url)
        body = finished(api, duration=1, width=256, height=144, fps=12)
        as_sample = api.session.get(body["url"], timeout=60).content
        renders_as_sample = emulator.stats()["video_renders"]
        emulator.configure(video="rendered")
        rendered_body = api.status(body["task_id"]).json()
        rendered = api.session.get(body["url"], timeout=60).content

    assert body["metadata"] == SAMPLE_METADATA
    assert as_sample == SAMPLE
    assert renders_as_sample == 0
    assert rendered_body["metadata"] == {"duration": 1, "width": 256, "height": 144, "fps": 12}
    assert rendered != SAMPLE
    assert rendered[4:8] == b"ftyp"


def test_without_a_working_ffmpeg_the_sample_is_served_and_one_line_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # imageio-ffmpeg takes $IMAGEIO_FFMPEG_EXE as given: here it names nothing that can run.
    missing = tmp_path / "no-ffmpeg-here"
    monkeypatch.setenv("IMAGEIO_FFMPEG_EXE", str(missing))
    with emulator_process(generation_seconds=0) as emulator:
        monkeypatch.delenv("IMAGEIO_FFMPEG_EXE")
        api = ApiClient(emulator.url)
        downloads = []
        for shape in ({"duration": 2, "width": 640, "height": 360}, {"duration": 1, "fps": 30}):
            body = finished(api, **shape)
            downloads.append(api.session.get(body["url"], timeout=60).content)
        metadata = api.status(body["task_id"]).json()["metadata"]
        assert emulator.log_path is not None
        log = emulator.log_path.read_text()

    assert downloads == [SAMPLE, SAMPLE]
    assert metadata == SAMPLE_METADATA, "once the emulator knows, the metadata describes the sample it serves"
    why = [line for line in log.splitlines() if "sample video" in line]
    assert len(why) == 1, log
    assert f"the ffmpeg at {missing} does not run" in why[0]
    assert "airflow-provider-infinityblue[video]" in why[0]
