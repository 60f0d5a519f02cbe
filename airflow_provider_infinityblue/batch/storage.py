"""Where a batch reads its rows and writes its manifest: a local path, a ``file://`` URL, or object storage.

>>> local_path("/data/prompts.jsonl"), local_path("file:///data/prompts.jsonl"), local_path("s3://bucket/p.jsonl")
(PosixPath('/data/prompts.jsonl'), PosixPath('/data/prompts.jsonl'), None)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from airflow_provider_infinityblue.download.constants import LOCAL_SCHEMES

if TYPE_CHECKING:
    from airflow.sdk import ObjectStoragePath


def local_path(location: str) -> Path | None:
    """``location`` as an absolute local ``Path`` when it names a local file (a path or a ``file://`` URL), else None.

    A separate question from "is it a ``Path``": on Airflow 3.0 an ``ObjectStoragePath`` is a ``Path`` subclass.
    """
    scheme = urlsplit(location).scheme.lower() if "://" in location else ""
    if scheme and scheme not in LOCAL_SCHEMES:
        return None
    return Path(urlsplit(location).path if scheme else location).expanduser().absolute()


def storage_path(location: str, conn_id: str | None) -> Path | ObjectStoragePath:
    """``location`` as a local ``Path``, or as an ``ObjectStoragePath`` read and written with ``conn_id``.

    Both answer ``exists``, ``open``, ``read_bytes`` and ``write_bytes``.
    """
    local = local_path(location)
    if local is not None:
        return local
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(location, conn_id=conn_id)
