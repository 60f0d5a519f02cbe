"""What a video file holds, read by the ffmpeg binary that imageio-ffmpeg ships (``ffmpeg -i`` and a decode)."""

from __future__ import annotations

import re
import struct
import subprocess
from dataclasses import dataclass
from typing import TYPE_CHECKING

import imageio_ffmpeg

if TYPE_CHECKING:
    from pathlib import Path

_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_VIDEO_STREAM = re.compile(r"Stream #0:\d+.*?: Video: (\w+).*?, (\w+)\(.*?, (\d+)x(\d+)[ ,].*?, ([\d.]+) fps")


@dataclass(frozen=True)
class ProbedVideo:
    seconds: float
    width: int
    height: int
    fps: float
    frames: int
    codec: str
    pixel_format: str


def probe_video(path: Path) -> ProbedVideo:
    """Duration, frame size, frame rate, codec and pixel format as ffmpeg reads them, and the frames decoded.

    Frames are counted by decoding, with ``-progress``: ffmpeg 7 reports no frame count for a stream copy.
    """
    listed = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path),
         "-map", "0:v:0", "-f", "null", "-progress", "pipe:1", "-nostats", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    duration = _DURATION.search(listed.stderr)
    stream = _VIDEO_STREAM.search(listed.stderr)
    frames = re.findall(r"^frame=(\d+)$", listed.stdout, re.MULTILINE)
    assert duration is not None, listed.stderr
    assert stream is not None, listed.stderr
    assert frames, listed.stdout
    hours, minutes, seconds = duration.groups()
    codec, pixel_format, width, height, fps = stream.groups()
    return ProbedVideo(
        seconds=int(hours) * 3600 + int(minutes) * 60 + float(seconds),
        width=int(width),
        height=int(height),
        fps=float(fps),
        frames=int(frames[-1]),
        codec=codec,
        pixel_format=pixel_format,
    )


def decoding_errors(path: Path) -> str:
    """What ffmpeg reports while decoding every frame: empty for a sound file."""
    decoded = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return decoded.stderr if decoded.returncode == 0 else f"exit {decoded.returncode}: {decoded.stderr}"


def top_level_boxes(data: bytes) -> list[str]:
    """The types of an MP4's top-level boxes, in file order."""
    found, start = [], 0
    while start < len(data):
        size, kind = struct.unpack(">I4s", data[start : start + 8])
        if size == 1:
            (size,) = struct.unpack(">Q", data[start + 8 : start + 16])
        elif size == 0:
            size = len(data) - start
        assert size >= 8, f"corrupt box {kind!r} at {start}"
        found.append(kind.decode("latin-1"))
        start += size
    return found
