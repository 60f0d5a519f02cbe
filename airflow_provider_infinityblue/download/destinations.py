"""Where a downloaded video goes: a local file by atomic rename, object storage by one upload.

Only a complete video reaches the destination. A local one is written to a temporary
file beside it and renamed into place; an object storage one is written to a local
temporary file and uploaded once complete, since object stores publish an object when
its upload completes.

Nothing is left behind. A temporary file is locked (``flock``) by the process writing
it, so the lock dies with a worker killed mid-download; each download first removes
the unlocked temporary files a killed attempt left for the same destination (and, for
object storage, in the temporary directory), leaving those still being written alone.
A failed download removes the directories it created for the destination.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

from airflow_provider_infinityblue.download.safety import redact_url
from airflow_provider_infinityblue.download.transfer import DownloadSettings, Logger, Transfer
from airflow_provider_infinityblue.exceptions import InfinityBlueDownloadError, InfinityBlueDownloadRefusedError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows, where Airflow workers do not run
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow.sdk import ObjectStoragePath

# Temporary files are <prefix><12 hex digits>.part; only those are ever swept.
_PART_SUFFIX = re.compile(r"[0-9a-f]{12}\.part")
_OBJECT_STORAGE_PREFIX = "infinityblue-video-"
# Where the filesystem for an object storage scheme comes from, for the error when it is missing.
_FILESYSTEM_PACKAGES = {
    "s3": "apache-airflow-providers-amazon[s3fs]",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "abfss": "apache-airflow-providers-microsoft-azure",
    "az": "apache-airflow-providers-microsoft-azure",
}


@dataclass(frozen=True)
class DownloadedVideo:
    """Where a video was saved, how large it is and its SHA-256 (hex)."""

    destination: str
    size_bytes: int
    sha256: str
    content_type: str


def local_path(destination: str, scheme: str) -> Path:
    if scheme:
        from airflow.sdk import ObjectStoragePath

        path = Path(ObjectStoragePath(destination).path)
    else:
        path = Path(destination).expanduser()
    if destination.endswith(("/", os.sep)) or path.is_dir():
        raise InfinityBlueDownloadRefusedError(
            f"The destination {destination!r} is a directory: name the file, e.g. {destination.rstrip('/')}/video.mp4"
        )
    return path.absolute()


def object_storage_path(destination: str, conn_id: str | None) -> ObjectStoragePath:
    from airflow.sdk import ObjectStoragePath

    scheme = urlsplit(destination).scheme.lower()
    try:
        path = ObjectStoragePath(destination, conn_id=conn_id)
        path.fs  # noqa: B018  # resolved now, so that a missing backend fails before a long download
    except (ValueError, ImportError) as error:
        package = _FILESYSTEM_PACKAGES.get(scheme)
        hint = f" Install {package} on the workers." if package else ""
        raise InfinityBlueDownloadError(
            f"Cannot write to {scheme}:// destinations in this Airflow: {error}.{hint}"
        ) from error
    if destination.endswith("/") or not path.key:
        raise InfinityBlueDownloadRefusedError(
            f"The destination {destination!r} names no file: give the full object name, "
            f"e.g. {destination.rstrip('/')}/video.mp4"
        )
    return path


def download_to_local_file(url: str, path: Path, settings: DownloadSettings, logger: Logger) -> DownloadedVideo:
    created = _make_parent_directories(path)
    # Beside the destination, so that the final rename stays on one filesystem and is atomic.
    prefix = f".{path.name[:180]}."
    try:
        _remove_stale_partial_files(path.parent, prefix, logger)
        logger.info("Downloading the video at %s to %s", redact_url(url), path)
        try:
            with _temporary_file(path.parent, prefix, mode=0o666) as (temporary, file):
                streamed = Transfer(url, file, settings, logger).run()
                file.flush()
                os.fsync(file.fileno())
                os.replace(temporary, path)
        except OSError as error:
            raise InfinityBlueDownloadError(f"Could not save the video to {path}: {error}") from error
    except BaseException:
        _remove_empty_directories(created)
        raise
    saved = DownloadedVideo(str(path), streamed.size_bytes, streamed.sha256, streamed.content_type)
    logger.info("Saved %s (%d bytes, sha256 %s)", path, saved.size_bytes, saved.sha256)
    return saved


def download_to_object_storage(
    url: str, target: ObjectStoragePath, destination: str, settings: DownloadSettings, logger: Logger
) -> DownloadedVideo:
    logger.info("Downloading the video at %s to %s (through a local temporary file)", redact_url(url), destination)
    fs, remote_path = target.fs, target.path
    directory = Path(tempfile.gettempdir())
    _remove_stale_partial_files(directory, _OBJECT_STORAGE_PREFIX, logger)
    try:
        with _temporary_file(directory, _OBJECT_STORAGE_PREFIX, mode=0o600) as (temporary, file):
            streamed = Transfer(url, file, settings, logger).run()
            # Flushed, not closed: closing would drop the lock that tells a sweep the file is in use.
            file.flush()
            # Uploaded in one call only now that the video is complete: object stores publish an
            # object when its upload completes, so a failure leaves no partial object behind.
            fs.put_file(str(temporary), remote_path)
            uploaded = fs.size(remote_path)
    except OSError as error:
        raise InfinityBlueDownloadError(f"Could not save the video to {destination}: {error}") from error
    if uploaded != streamed.size_bytes:
        _remove_quietly(fs, remote_path)
        raise InfinityBlueDownloadError(
            f"The upload to {destination} stored {uploaded} bytes instead of {streamed.size_bytes}; it was removed."
        )
    saved = DownloadedVideo(destination, streamed.size_bytes, streamed.sha256, streamed.content_type)
    logger.info("Saved %s (%d bytes, sha256 %s)", destination, saved.size_bytes, saved.sha256)
    return saved


def _remove_quietly(fs: Any, remote_path: str) -> None:
    # The error about the size mismatch is the one worth raising, not one from this clean-up.
    with suppress(OSError):
        fs.rm_file(remote_path)


@contextmanager
def _temporary_file(directory: Path, prefix: str, *, mode: int) -> Iterator[tuple[Path, BinaryIO]]:
    """A new, empty, locked file in ``directory``, removed on the way out unless it was renamed away.

    ``mode`` is filtered by the umask, so a video renamed into place gets the permissions
    of any other new file there, not the 0600 of ``tempfile``.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        path = directory / f"{prefix}{secrets.token_hex(6)}.part"
        try:
            descriptor = os.open(path, flags, mode)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(descriptor, "w+b") as file:
            _lock(file.fileno())
            yield path, file
    finally:
        path.unlink(missing_ok=True)


def _make_parent_directories(path: Path) -> list[Path]:
    """Create the missing directories above ``path``; return those this call created, outermost first."""
    missing = [parent for parent in reversed(path.parents) if not parent.exists()]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _remove_empty_directories(missing)
        raise InfinityBlueDownloadError(f"Cannot create the directory of {path}: {error}") from error
    return missing


def _remove_empty_directories(created: list[Path]) -> None:
    """Remove ``created`` (outermost first), innermost first; one another process wrote into stays."""
    for directory in reversed(created):
        try:
            directory.rmdir()
        except OSError:
            return


def _remove_stale_partial_files(directory: Path, prefix: str, logger: Logger) -> None:
    """Remove the temporary files named ``<prefix><hex>.part`` in ``directory`` that no process holds.

    A download holds its temporary file locked until it ends, and the lock dies with its
    process: an unlocked one was left by a killed attempt. Only where locks exist (POSIX).
    """
    if fcntl is None:  # pragma: no cover - Windows, where Airflow workers do not run
        return
    try:
        names = [entry.name for entry in os.scandir(directory) if entry.name.startswith(prefix)]
    except OSError:
        return
    for name in names:
        if not _PART_SUFFIX.fullmatch(name[len(prefix) :]):
            continue
        stale = directory / name
        try:
            descriptor = os.open(stale, os.O_RDWR)
        except OSError:
            continue  # gone already, or not ours to open
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(descriptor)
            continue  # locked: a download in progress
        try:
            # Still the file just locked (not one created under the same name since)?
            if os.path.samestat(os.fstat(descriptor), os.stat(stale)):
                stale.unlink()
                logger.info("Removed %s, a partial download left by an interrupted attempt", stale)
        except OSError:
            pass
        finally:
            os.close(descriptor)


def _lock(descriptor: int) -> None:
    if fcntl is None:  # pragma: no cover - Windows, where Airflow workers do not run
        return
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
