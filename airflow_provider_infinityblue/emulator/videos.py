"""The video a finished generation points to: rendered at the length, size and frame rate its request asked for.

Downstream steps (probing, thumbnails, transcodes) are tested against what the emulator serves, so
each generation's video has the shape its request asked for, within caps that keep rendering cheap:

* at most :data:`MAX_SECONDS` long: a longer request gets a video of exactly that length;
* at most :data:`MAX_FPS` frames per second: a faster request gets exactly that rate;
* a frame of at most :data:`MAX_LONG_SIDE` x :data:`MAX_SHORT_SIDE` (landscape or portrait): a larger
  request is scaled down to fit, keeping its aspect ratio. Sides are rounded to even numbers, which
  H.264 in yuv420p requires.

A request without ``duration``, ``width``, ``height`` or ``fps`` gets the sample's (3 s, 320x180,
24 fps; with only one side, the other follows 16:9). The sample's own shape is served from the
sample file, without rendering.

Rendering uses ffmpeg (the ``video`` extra's ``imageio-ffmpeg``, else ``ffmpeg`` on the ``PATH``):
a moving ``testsrc2`` pattern, libx264 ``ultrafast``, yuv420p, ``+faststart``. It happens at the first
download of each shape, in a worker thread, never on the event loop nor at submission; the file is
kept in a temporary directory for the rest of the process (every emulator in the process shares it),
so each shape is rendered once, however many downloads ask for it at the same time. Without ffmpeg,
or when a render fails, the sample is served instead and one log line says why.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_infinityblue.emulator.sample_video import (
    SAMPLE_VIDEO_FPS,
    SAMPLE_VIDEO_HEIGHT,
    SAMPLE_VIDEO_PATH,
    SAMPLE_VIDEO_SECONDS,
    SAMPLE_VIDEO_WIDTH,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

logger = logging.getLogger("infinityblue.emulator")

MAX_SECONDS = 10.0
MAX_LONG_SIDE = 1280
MAX_SHORT_SIDE = 720
MAX_FPS = 30
# A capped render takes about 2 s on two cores; this only stops a wedged ffmpeg from holding a shape forever.
RENDER_TIMEOUT_SECONDS = 120.0
_RENDER_WORKERS = 2


@dataclass(frozen=True)
class VideoShape:
    """What a video file holds: length in seconds, frame size and frame rate.

    >>> VideoShape.requested({"duration": 5, "width": 1280, "height": 720, "fps": 24})
    VideoShape(seconds=5.0, width=1280, height=720, fps=24)
    >>> VideoShape.requested({"duration": 60, "width": 3840, "height": 2160, "fps": 60})  # over every cap
    VideoShape(seconds=10.0, width=1280, height=720, fps=30)
    >>> VideoShape.requested({"width": 1080, "height": 1920})  # portrait, scaled to fit 720x1280
    VideoShape(seconds=3.0, width=720, height=1280, fps=24)
    >>> VideoShape.requested({}) == SAMPLE_SHAPE
    True
    """

    seconds: float
    width: int
    height: int
    fps: int

    @classmethod
    def requested(cls, body: Mapping[str, Any]) -> VideoShape:
        """The shape served for a validated generation request: its own, with defaults and caps applied."""
        asked_width: int | None = body.get("width")
        asked_height: int | None = body.get("height")
        if asked_width is not None and asked_height is not None:
            width, height = asked_width, asked_height
        elif asked_width is not None:
            width, height = asked_width, round(asked_width * SAMPLE_VIDEO_HEIGHT / SAMPLE_VIDEO_WIDTH)
        elif asked_height is not None:
            width, height = round(asked_height * SAMPLE_VIDEO_WIDTH / SAMPLE_VIDEO_HEIGHT), asked_height
        else:
            width, height = SAMPLE_VIDEO_WIDTH, SAMPLE_VIDEO_HEIGHT
        duration: float | None = body.get("duration")
        fps: int | None = body.get("fps")
        return cls.capped(
            SAMPLE_VIDEO_SECONDS if duration is None else duration,
            width,
            height,
            SAMPLE_VIDEO_FPS if fps is None else fps,
        )

    @classmethod
    def capped(cls, seconds: float, width: int, height: int, fps: int) -> VideoShape:
        """This shape within the caps; sides rounded to even numbers (at least 2).

        >>> VideoShape.capped(2.5, 641, 359, 24)
        VideoShape(seconds=2.5, width=642, height=360, fps=24)
        """
        scale = min(1.0, MAX_LONG_SIDE / max(width, height), MAX_SHORT_SIDE / min(width, height))
        return cls(
            seconds=float(min(seconds, MAX_SECONDS)),
            width=_even(width * scale),
            height=_even(height * scale),
            fps=min(fps, MAX_FPS),
        )

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    def metadata(self) -> dict[str, float | int]:
        """The ``metadata`` of a completed generation's status answer.

        >>> SAMPLE_SHAPE.metadata()
        {'duration': 3, 'width': 320, 'height': 180, 'fps': 24}
        """
        duration = int(self.seconds) if self.seconds.is_integer() else self.seconds
        return {"duration": duration, "width": self.width, "height": self.height, "fps": self.fps}

    def __str__(self) -> str:
        return f"{self.seconds:g} s {self.width}x{self.height} {self.fps} fps"


SAMPLE_SHAPE = VideoShape(float(SAMPLE_VIDEO_SECONDS), SAMPLE_VIDEO_WIDTH, SAMPLE_VIDEO_HEIGHT, SAMPLE_VIDEO_FPS)


def render_arguments(shape: VideoShape, destination: Path) -> list[str]:
    """ffmpeg's arguments (after the executable) that render ``shape`` to ``destination``.

    A frame count rather than a duration, so that the file holds exactly ``shape.frames`` frames.
    """
    return [
        "-v", "error", "-nostdin", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={shape.width}x{shape.height}:rate={shape.fps}",
        "-frames:v", str(shape.frames),
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "32", "-pix_fmt", "yuv420p",
        "-movflags", "+faststart", "-map_metadata", "-1", "-an",
        "-f", "mp4", str(destination),
    ]  # fmt: skip


class VideoLibrary:
    """The rendered videos of one process, one file per shape, rendered at most once each.

    Thread-safe, and bound to no event loop: the emulators of one process (each in its own
    thread and loop) share it through :func:`shared_library`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._renders: dict[VideoShape, Future[Path]] = {}
        # Shapes whose render failed: the sample is served for them, and their metadata says so.
        self._failed: set[VideoShape] = set()
        self._executor = ThreadPoolExecutor(_RENDER_WORKERS, thread_name_prefix="infinityblue-emulator-render")
        self._ffmpeg: Future[FfmpegLookup] | None = None
        self._ffmpeg_missing_logged = False
        self._directory: Path | None = None

    def look_for_ffmpeg(self) -> None:
        """Start finding a working ffmpeg in the background (it runs ``ffmpeg -version``), once per process."""
        with self._lock:
            if self._ffmpeg is None:
                self._ffmpeg = self._executor.submit(_find_ffmpeg)

    def served_shape(self, requested: VideoShape) -> VideoShape:
        """The shape of the file a download of ``requested`` gets, as far as is known now."""
        if requested in self._failed:
            return SAMPLE_SHAPE
        ffmpeg = self._ffmpeg
        if ffmpeg is not None and ffmpeg.done() and ffmpeg.result().executable is None:
            return SAMPLE_SHAPE
        return requested

    def start_render(self, shape: VideoShape) -> tuple[Future[Path], bool]:
        """The render of ``shape`` (started now, or earlier) and whether this call started it."""
        self.look_for_ffmpeg()
        with self._lock:
            render = self._renders.get(shape)
            if render is not None:
                return render, False
            render = self._renders[shape] = self._executor.submit(self._render, shape)
            return render, True

    def _render(self, shape: VideoShape) -> Path:
        """In a worker thread: the rendered file, or the sample after logging why there is none."""
        assert self._ffmpeg is not None, "start_render looks for ffmpeg first"
        lookup = self._ffmpeg.result()
        ffmpeg = lookup.executable
        if ffmpeg is None:
            with self._lock:
                first = not self._ffmpeg_missing_logged
                self._ffmpeg_missing_logged = True
            if first:
                logger.warning(
                    "Serving the %s sample video for every generation instead of rendering: %s. Install "
                    "airflow-provider-infinityblue[video] (or put ffmpeg on the PATH) for videos of the requested "
                    "length, size and frame rate.",
                    SAMPLE_SHAPE,
                    lookup.problem,
                )
            return SAMPLE_VIDEO_PATH
        destination = self._output_directory() / f"{shape.seconds:g}s-{shape.width}x{shape.height}-{shape.fps}fps.mp4"
        partial = destination.with_suffix(".partial")
        started = time.perf_counter()
        try:
            subprocess.run(
                [ffmpeg, *render_arguments(shape, partial)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=RENDER_TIMEOUT_SECONDS,
                check=True,
            )
        except (OSError, subprocess.SubprocessError) as failure:
            self._failed.add(shape)
            partial.unlink(missing_ok=True)
            logger.warning("Serving the sample video for %s: rendering it failed (%s)", shape, _why(failure))
            return SAMPLE_VIDEO_PATH
        os.replace(partial, destination)
        logger.info("Rendered the %s video in %.2f s", shape, time.perf_counter() - started)
        return destination

    def _output_directory(self) -> Path:
        with self._lock:
            if self._directory is None:
                self._directory = Path(tempfile.mkdtemp(prefix="infinityblue-emulator-videos-"))
                atexit.register(shutil.rmtree, self._directory, ignore_errors=True)
            return self._directory


_shared: VideoLibrary | None = None
_shared_lock = threading.Lock()


def shared_library() -> VideoLibrary:
    """The process's :class:`VideoLibrary`, made at first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = VideoLibrary()
        return _shared


@dataclass(frozen=True)
class FfmpegLookup:
    """The ffmpeg found, or None and why there is none."""

    executable: str | None
    problem: str = ""


def _find_ffmpeg() -> FfmpegLookup:
    """An ffmpeg that answers ``-version``: imageio-ffmpeg's (``$IMAGEIO_FFMPEG_EXE`` first), else the PATH's."""
    try:
        import imageio_ffmpeg
    except ImportError:
        candidate = shutil.which("ffmpeg")
        if candidate is None:
            return FfmpegLookup(None, "imageio-ffmpeg is not installed and there is no ffmpeg on the PATH")
    else:
        try:
            candidate = imageio_ffmpeg.get_ffmpeg_exe()
        except RuntimeError as nothing_found:
            return FfmpegLookup(None, f"imageio-ffmpeg found no ffmpeg ({nothing_found})")
    try:
        subprocess.run([candidate, "-version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError) as failure:
        return FfmpegLookup(None, f"the ffmpeg at {candidate} does not run ({_why(failure)})")
    return FfmpegLookup(candidate)


def _why(failure: BaseException) -> str:
    if isinstance(failure, subprocess.CalledProcessError):
        stderr = (failure.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        return f"ffmpeg exited with {failure.returncode}: {stderr[-1] if stderr else 'no message'}"
    if isinstance(failure, subprocess.TimeoutExpired):
        return f"ffmpeg took more than {failure.timeout:g} s"
    return str(failure)


def _even(side: float) -> int:
    # Half up, not to even: 641 becomes 642, as a person would round it.
    return max(2, int(side / 2 + 0.5) * 2)
