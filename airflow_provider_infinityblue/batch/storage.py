"""Where a batch reads its rows and writes its manifest: a local path, a ``file://`` URL, or object storage.

>>> storage_path("/data/prompts.jsonl", None)
PosixPath('/data/prompts.jsonl')
>>> storage_path("file:///data/prompts.jsonl", None)
PosixPath('/data/prompts.jsonl')
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow_provider_infinityblue.download import LOCAL_SCHEMES

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def storage_path(location: str, conn_id: str | None) -> Path | ObjectStoragePath:
    """``location`` as a local ``Path`` (absolute), or as an ``ObjectStoragePath`` read and written with ``conn_id``.

    Both answer ``exists``, ``open``, ``read_bytes`` and ``write_bytes``; a caller that writes a local file
    atomically tells the two apart with ``isinstance(path, Path)``.
    """
    scheme = urlsplit(location).scheme.lower() if "://" in location else ""
    if not scheme or scheme in LOCAL_SCHEMES:
        return Path(urlsplit(location).path if scheme else location).expanduser().absolute()
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(location, conn_id=conn_id)
