"""The download engine's defaults, and the destination schemes that name a local file.

Apart from the engine (:mod:`.transfer`, :mod:`.safety`, :mod:`.destinations`) because the operators need
them when their classes are defined, in every DAG file that imports them; the engine loads when a download
is configured or runs.
"""

from __future__ import annotations

DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_ALLOWED_CONTENT_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")
DEFAULT_CHUNK_BYTES = 1024 * 1024
DEFAULT_TIMEOUT = 3600.0
MAX_REDIRECTS = 10
LOCAL_SCHEMES = ("file", "local")
