"""The fixed sample video, ``sample.mp4`` beside this module.

A finished generation points to it when its request asked for no other shape, with ``--video sample``,
or when the emulator cannot render (no ffmpeg); otherwise it gets a video rendered for it (videos.py).

It is a real, playable 3-second H.264 MP4 (320x180, 24 fps, no audio) with its ``moov``
box first (``-movflags +faststart``), so a player or ``ffprobe`` can start on the first
bytes of a ranged download. It was made once, with the ffmpeg binary that the
``imageio-ffmpeg`` package ships, by::

    ffmpeg -v error -y -f lavfi -i testsrc2=size=320x180:rate=24:duration=3 \\
        -c:v libx264 -profile:v baseline -pix_fmt yuv420p -crf 32 -preset veryslow \\
        -movflags +faststart -map_metadata -1 -fflags +bitexact -flags:v +bitexact -an sample.mp4

Re-make it with ``python -m airflow_provider_infinityblue.emulator.sample_video``, which
runs exactly :data:`FFMPEG_ARGUMENTS`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SAMPLE_VIDEO_PATH = Path(__file__).with_name("sample.mp4")

# What the file holds; the emulator reports these in a finished generation's metadata,
# and a test reads them back from the file's own boxes.
SAMPLE_VIDEO_SECONDS = 3
SAMPLE_VIDEO_WIDTH = 320
SAMPLE_VIDEO_HEIGHT = 180
SAMPLE_VIDEO_FPS = 24

FFMPEG_ARGUMENTS = (
    "-v",
    "error",
    "-y",
    "-f",
    "lavfi",
    "-i",
    f"testsrc2=size={SAMPLE_VIDEO_WIDTH}x{SAMPLE_VIDEO_HEIGHT}:rate={SAMPLE_VIDEO_FPS}:duration={SAMPLE_VIDEO_SECONDS}",
    "-c:v",
    "libx264",
    "-profile:v",
    "baseline",
    "-pix_fmt",
    "yuv420p",
    "-crf",
    "32",
    "-preset",
    "veryslow",
    "-movflags",
    "+faststart",
    "-map_metadata",
    "-1",
    "-fflags",
    "+bitexact",
    "-flags:v",
    "+bitexact",
    "-an",
)


def render_sample_video(destination: Path = SAMPLE_VIDEO_PATH) -> Path:
    """Encode the sample video again (needs the ``imageio-ffmpeg`` package)."""
    import imageio_ffmpeg

    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), *FFMPEG_ARGUMENTS, str(destination)], check=True)
    return destination


if __name__ == "__main__":
    print(render_sample_video())
