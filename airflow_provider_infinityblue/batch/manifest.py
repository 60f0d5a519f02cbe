"""The batch manifest: one JSON object per input row, rewritten whole and atomically after every wave.

>>> import tempfile, pathlib
>>> path = str(pathlib.Path(tempfile.mkdtemp()) / "manifest.jsonl")
>>> entry = ManifestEntry(row=0, key="fox", fingerprint="ab12", status="succeeded", video_url="https://cdn/v.mp4")
>>> digest = write_manifest(path, [entry])
>>> read_manifest(path)[0].video_url, read_manifest(path, expect_sha256=digest) is not None
('https://cdn/v.mp4', True)
>>> read_manifest(path, expect_sha256="another run's") is None
True
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, get_args

from airflow_provider_infinityblue.batch.storage import local_path, storage_path
from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

RowStatus = Literal["pending", "running", "succeeded", "failed", "cancelled", "skipped", "invalid", "timeout"]
"""``pending`` and ``running`` appear only while the batch runs, or after it stopped early."""
FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "skipped", "invalid", "timeout"})
FAILED_STATUSES = frozenset({"failed", "cancelled", "timeout"})


@dataclass
class ManifestEntry:
    """One input row's line in the manifest. Times are ISO 8601 UTC strings."""

    row: int
    key: str
    fingerprint: str | None = None
    generation_id: str | None = None
    status: RowStatus = "pending"
    video_url: str | None = None
    error: str | None = None
    submitted_at: str | None = None
    finished_at: str | None = None
    destination: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    model: str | None = None
    """The model the row's request named, after the batch's defaults and the connection's ``default_model``."""

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ManifestEntry:
        known = {item.name for item in fields(cls)}
        entry = cls(**{name: value for name, value in values.items() if name in known})
        if entry.status not in get_args(RowStatus):
            raise ValueError(f"unknown status {entry.status!r}")
        return entry


def utc_iso(timestamp: float) -> str:
    """A UNIX time as the manifest writes it."""
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="milliseconds")


def render_manifest(entries: Iterable[ManifestEntry]) -> bytes:
    lines = (json.dumps(asdict(entry), separators=(",", ":"), ensure_ascii=False) for entry in entries)
    return "".join(f"{line}\n" for line in lines).encode()


def write_manifest(location: str, entries: Iterable[ManifestEntry], *, conn_id: str | None = None) -> str:
    """Write the whole manifest to ``location``; return the SHA-256 (hex) of what was written.

    A reader sees the old manifest or the new one, never a mix: a local file is written beside its
    destination and renamed over it; an object store publishes an object only once its upload completes.
    """
    content = render_manifest(sorted(entries, key=lambda entry: entry.row))
    try:
        local = local_path(location)
        if local is not None:
            _write_local(local, content)
        else:
            storage_path(location, conn_id).write_bytes(content)
    except (OSError, ValueError, ImportError) as error:
        raise InfinityBlueConfigurationError(f"Cannot write the batch manifest to {location}: {error}") from error
    return hashlib.sha256(content).hexdigest()


def read_manifest(
    location: str, *, conn_id: str | None = None, expect_sha256: str | None = None
) -> dict[int, ManifestEntry] | None:
    """The manifest at ``location`` by row, or ``None`` when there is none (or not the one ``expect_sha256`` names)."""
    try:
        path = storage_path(location, conn_id)
        if not path.exists():
            return None
        content = path.read_bytes()
    except (OSError, ValueError, ImportError) as error:
        raise InfinityBlueConfigurationError(f"Cannot read the batch manifest at {location}: {error}") from error
    if expect_sha256 is not None and hashlib.sha256(content).hexdigest() != expect_sha256:
        return None
    entries: dict[int, ManifestEntry] = {}
    for number, line in enumerate(content.decode().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = ManifestEntry.from_json(json.loads(line))
        except (ValueError, TypeError) as error:
            raise InfinityBlueConfigurationError(
                f"The batch manifest at {location} is not one this provider wrote (line {number}: {error})"
            ) from error
        entries[entry.row] = entry
    return entries


def _write_local(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    try:
        with temporary.open("wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
