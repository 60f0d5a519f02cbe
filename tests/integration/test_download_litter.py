"""A download leaves nothing behind: not a killed attempt's partial file, not the directories of a failed one."""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from airflow_provider_infinityblue.download import (
    AddressPolicy,
    DownloadSettings,
    InfinityBlueDownloadError,
    download_video,
)
from airflow_provider_infinityblue.retry import RetryPolicy
from tests.integration.video_servers import GeneratedVideoServer, generated_video
from tests.loopback import LoopbackServer, Reply

LOG = logging.getLogger("test-download-litter")
# The video servers are on loopback: allowed for these tests, which are about what is left on disk.
SETTINGS = DownloadSettings(
    retry=RetryPolicy(max_attempts=1), timeout=30, address_policy=AddressPolicy(allow_private_addresses=True)
)
SIZE = 3 * 1024 * 1024


def partial_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir() if path.name.endswith(".part"))


def wait_for(condition, *, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_killed_download_leaves_only_the_video_after_a_retry(tmp_path: Path) -> None:
    destination = tmp_path / "videos" / "clip.mp4"
    # The first answer stops after 1 MiB and stays silent: the worker is killed mid-download.
    with GeneratedVideoServer(size=SIZE, stall_after=1024 * 1024) as host:
        script = textwrap.dedent(
            f"""
            import logging
            from airflow_provider_infinityblue.download import AddressPolicy, DownloadSettings, download_video
            download_video({host.url!r}, {str(destination)!r}, settings=DownloadSettings(timeout=60),
                           policy=AddressPolicy(allow_private_addresses=True),
                           logger=logging.getLogger("killed"))
            """
        )
        worker = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
        try:
            wait_for(
                lambda: (
                    destination.parent.exists() and any(p.stat().st_size > 0 for p in partial_files(destination.parent))
                )
            )
            wait_for(lambda: partial_files(destination.parent)[0].stat().st_size >= 1024 * 1024)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
        assert worker.returncode == -signal.SIGKILL
        assert len(partial_files(destination.parent)) == 1  # what a killed worker leaves

        # The retry (the server's second answer is the whole video).
        saved = download_video(host.url, str(destination), settings=SETTINGS, logger=LOG)

    assert sorted(path.name for path in destination.parent.iterdir()) == ["clip.mp4"]
    assert destination.read_bytes() == generated_video(SIZE)
    assert saved.size_bytes == SIZE


def test_a_partial_file_still_being_written_is_left_alone(tmp_path: Path) -> None:
    destination = tmp_path / "clip.mp4"
    live = tmp_path / ".clip.mp4.0123456789ab.part"
    other = tmp_path / ".other.mp4.0123456789ab.part"  # another destination's: never touched
    with open(live, "wb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # as a download in progress holds it
        other.write_bytes(b"x")
        with GeneratedVideoServer(size=1000) as host:
            download_video(host.url, str(destination), settings=SETTINGS, logger=LOG)
        assert live.exists()
    assert other.exists()
    assert destination.read_bytes() == generated_video(1000)


def test_a_failed_download_removes_the_directories_it_created(tmp_path: Path) -> None:
    (tmp_path / "existing").mkdir()
    destination = tmp_path / "existing" / "new" / "deeper" / "clip.mp4"
    with (
        LoopbackServer([Reply(404, {"error": "gone"})]) as host,
        pytest.raises(InfinityBlueDownloadError, match="HTTP 404"),
    ):
        download_video(f"{host.url}/clip.mp4", str(destination), settings=SETTINGS, logger=LOG)
    assert [path.name for path in tmp_path.iterdir()] == ["existing"]
    assert list((tmp_path / "existing").iterdir()) == []
    assert not os.path.exists(destination.parent)
