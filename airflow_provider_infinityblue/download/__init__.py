"""Saving a finished video from its URL to a local file or to object storage, safely.

One file per concept:

- :mod:`.safety`: which URLs and addresses may be fetched (:class:`AddressPolicy`), and how a URL is quoted;
- :mod:`.transfer`: the resumable, deadline-bound HTTP transfer of one URL into one file;
- :mod:`.destinations`: the atomic rename into a local path, or the upload to object storage.

:func:`download_video` puts them together; it is what the download operator and the
batch operator call.
"""

from __future__ import annotations

import importlib
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_infinityblue.download.constants import (
    DEFAULT_ALLOWED_CONTENT_TYPES,
    DEFAULT_CHUNK_BYTES,
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    LOCAL_SCHEMES,
    MAX_REDIRECTS,
)
from airflow_provider_infinityblue.exceptions import InfinityBlueDownloadError, InfinityBlueDownloadRefusedError

if TYPE_CHECKING:
    from airflow_provider_infinityblue.download.destinations import DownloadedVideo
    from airflow_provider_infinityblue.download.safety import (
        ALLOWED_SCHEMES,
        AddressPolicy,
        address_category,
        redact_url,
    )
    from airflow_provider_infinityblue.download.transfer import DownloadSettings, Logger, content_type_allowed

__all__ = [
    "ALLOWED_SCHEMES",
    "DEFAULT_ALLOWED_CONTENT_TYPES",
    "DEFAULT_CHUNK_BYTES",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "LOCAL_SCHEMES",
    "MAX_REDIRECTS",
    "AddressPolicy",
    "DownloadSettings",
    "DownloadedVideo",
    "InfinityBlueDownloadError",
    "InfinityBlueDownloadRefusedError",
    "address_category",
    "content_type_allowed",
    "download_video",
    "redact_url",
]

# The engine's modules load on first use (a download, or one of these names looked up here), not with this
# package: the operators import it from DAG files, where they need the constants above only.
_ENGINE = {
    "ALLOWED_SCHEMES": "safety",
    "AddressPolicy": "safety",
    "address_category": "safety",
    "redact_url": "safety",
    "DownloadSettings": "transfer",
    "Logger": "transfer",
    "content_type_allowed": "transfer",
    "DownloadedVideo": "destinations",
}


def __getattr__(name: str) -> Any:
    if name not in _ENGINE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_ENGINE[name]}"), name)
    globals()[name] = value  # once imported, a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def download_video(
    url: str,
    destination: str,
    *,
    destination_conn_id: str | None = None,
    settings: DownloadSettings | None = None,
    policy: AddressPolicy | None = None,
    logger: Logger,
) -> DownloadedVideo:
    """Save the video at ``url`` to ``destination``, a local path or an object storage URL.

    ``destination`` names the file: a path (missing parent directories are created),
    a ``file://`` URL, or any URL that Airflow's ``ObjectStoragePath`` can write to with
    the filesystems installed (``s3://``, ``gs://``, ...), with ``destination_conn_id``
    as its connection. Raises :class:`InfinityBlueDownloadError` and leaves nothing at
    the destination when the video cannot be saved whole.

    ``policy`` says which hosts and addresses the download (every redirect included) may
    connect to. Without one it is the strictest: public addresses only, no trusted origin,
    so a video on the API's own private host is refused; build it with
    :meth:`AddressPolicy.build` from the connection's base URL (the download operator
    does). Given, it replaces ``settings.address_policy``.
    """
    from airflow_provider_infinityblue.download.destinations import (
        download_to_local_file,
        download_to_object_storage,
        local_path,
        object_storage_path,
    )
    from airflow_provider_infinityblue.download.safety import check_scheme
    from airflow_provider_infinityblue.download.transfer import DownloadSettings

    settings = settings or DownloadSettings()
    if policy is not None:
        settings = replace(settings, address_policy=policy)
    if not isinstance(url, str) or not url.strip():
        raise InfinityBlueDownloadRefusedError(f"The video URL must be a non-empty string, got {type(url).__name__}")
    if not isinstance(destination, str) or not destination.strip():
        raise InfinityBlueDownloadRefusedError(
            f"The destination must be a non-empty path or URL, got {type(destination).__name__}"
        )
    url, destination = url.strip(), destination.strip()
    check_scheme(url)
    scheme = urlsplit(destination).scheme.lower() if "://" in destination else ""
    if not scheme or scheme in LOCAL_SCHEMES:
        local = local_path(destination, scheme)
        saved = download_to_local_file(url, local, settings, logger)
        # A file:// URL is handed on as given; a plain path as an absolute one, since a relative
        # path means little to downstream tasks that run in another directory.
        return replace(saved, destination=destination) if scheme else saved
    target = object_storage_path(destination, destination_conn_id)
    return download_to_object_storage(url, target, destination, settings, logger)
