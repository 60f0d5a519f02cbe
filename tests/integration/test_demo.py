"""`make demo`, the README's first command, from this checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_provider_infinityblue.testing import running_emulator
from tests.conftest import without_airflow_30_mask_messages
from tests.emulator.video_probe import probe_video

REPO = Path(__file__).parents[2]


def demo_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "INFINITYBLUE_"))}
    return {**env, **extra}


@pytest.mark.timeout(300)
def test_make_demo_generates_and_downloads_a_playable_mp4() -> None:
    started = time.monotonic()
    result = subprocess.run(
        ["make", "-s", "demo"], cwd=REPO, env=demo_env(), capture_output=True, text=True, timeout=300
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert elapsed < 90
    for number in range(1, 6):
        assert f"[{number}/5]" in result.stdout
    url = re.search(r"^Video URL:  (http://127\.0\.0\.1:\d+/videos/\w+\.mp4)$", result.stdout, re.MULTILINE)
    file = re.search(r"^Video file: (\S+\.mp4) \(", result.stdout, re.MULTILINE)
    assert url is not None, result.stdout
    assert file is not None, result.stdout
    video = Path(file.group(1))
    assert video.read_bytes()[4:8] == b"ftyp"
    # The example DAG asks for 5 s at 1280x720: the emulator renders exactly that.
    probed = probe_video(video)
    assert (probed.width, probed.height, probed.seconds) == (1280, 720, pytest.approx(5.0, abs=0.05))


@pytest.mark.timeout(300)
def test_a_failing_step_says_which_and_why(tmp_path) -> None:
    """The real-API path, pointed at an emulator that refuses the key: step 4 fails with the API's answer."""
    with running_emulator(api_key="sk-the-only-accepted-key-000000") as emulator:
        env = demo_env(INFINITYBLUE_API_KEY="sk-wrong-key-for-this-test-0000", INFINITYBLUE_BASE_URL=emulator.url)
        result = subprocess.run(
            [sys.executable, "scripts/demo.py", "--workdir", str(tmp_path)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert result.returncode == 1
    assert "Using the real InfinityBlue API" in result.stdout
    assert "Demo failed at step 4/5 (Running the DAG example_infinityblue_text_to_video" in result.stderr
    assert "the DAG run ended failed" in result.stderr
    assert "InfinityBlueAuthenticationError: The InfinityBlue API rejected the API key" in result.stderr
    everything = result.stdout + result.stderr + (tmp_path / "demo.log").read_text()
    assert "sk-wrong-key-for-this-test-0000" not in without_airflow_30_mask_messages(everything)
