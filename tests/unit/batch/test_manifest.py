"""The batch manifest: written whole and atomically, read back only when it is the one expected."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from airflow_provider_infinityblue.batch.manifest import ManifestEntry, read_manifest, write_manifest
from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError

if TYPE_CHECKING:
    from pathlib import Path


def test_entries_are_written_in_row_order_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "manifest.jsonl"
    write_manifest(str(path), [ManifestEntry(2, "c"), ManifestEntry(0, "a", status="invalid", error="bad")])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["row"] for line in lines] == [0, 2]
    assert set(lines[0]) == {
        "row", "key", "fingerprint", "generation_id", "status", "video_url", "error", "submitted_at", "finished_at",
        "destination", "size_bytes", "sha256", "model",
    }  # fmt: skip
    assert list(tmp_path.rglob("*.part")) == []


def test_a_failed_write_leaves_the_previous_manifest_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "manifest.jsonl"
    write_manifest(str(path), [ManifestEntry(0, "a", status="succeeded")])
    before = path.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("airflow_provider_infinityblue.batch.manifest.os.fsync", no_space)
    with pytest.raises(InfinityBlueConfigurationError, match="No space left on device"):
        write_manifest(str(path), [ManifestEntry(0, "a", status="failed")])
    assert path.read_bytes() == before
    assert [item.name for item in tmp_path.iterdir()] == ["manifest.jsonl"]


def test_a_manifest_is_trusted_only_when_it_is_the_one_expected(tmp_path: Path) -> None:
    path = str(tmp_path / "manifest.jsonl")
    digest = write_manifest(path, [ManifestEntry(0, "a")])
    assert read_manifest(path, expect_sha256=digest) is not None
    write_manifest(path, [ManifestEntry(0, "a", status="succeeded")])
    assert read_manifest(path, expect_sha256=digest) is None
    assert read_manifest(str(tmp_path / "missing.jsonl")) is None


def test_a_file_this_provider_did_not_write_is_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"row": 0, "key": "a", "status": "succeeded"}\n{"row": 1, "key": "b", "status": "great"}\n')
    with pytest.raises(InfinityBlueConfigurationError, match="line 2: unknown status 'great'"):
        read_manifest(str(path))
