"""Saving a finished video from its URL to a local file or to object storage, safely.

A video URL usually points at a third-party CDN, often as a signed URL whose query
string is a secret. So the download uses a session of its own that never sends
credentials, accepts only http(s) (checked again on every redirect hop, which it
follows itself), refuses answers that are not videos or are too large, and never
logs or raises a URL with its query string.

The body is streamed in chunks to a temporary file, so memory stays constant whatever
the size; transient failures are retried with :class:`~airflow_provider_infinityblue.retry.RetryPolicy`,
resuming with a ``Range`` request when the server allows it. ``read_timeout`` bounds a stall
(no byte for that long fails the attempt), ``timeout`` the whole download: a host that
trickles bytes cannot hold a worker past it. Only a complete video
reaches the destination: a local one by an atomic rename of a temporary file beside it,
an object storage one by an upload that starts once the download is complete.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
import secrets
import tempfile
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urljoin, urlsplit

from airflow_provider_infinityblue.exceptions import InfinityBlueError, parse_error_body
from airflow_provider_infinityblue.hooks.infinityblue import USER_AGENT
from airflow_provider_infinityblue.retry import RetryPolicy, parse_retry_after
from airflow_provider_infinityblue.transport import enforce_deadline, new_session, request_timeouts

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import requests
    from airflow.sdk import ObjectStoragePath

DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_ALLOWED_CONTENT_TYPES = ("video/", "application/octet-stream", "binary/octet-stream")
DEFAULT_CHUNK_BYTES = 1024 * 1024
DEFAULT_TIMEOUT = 3600.0
MAX_REDIRECTS = 10
ALLOWED_SCHEMES = ("http", "https")
LOCAL_SCHEMES = ("file", "local")

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PROGRESS_LOG_SECONDS = 30.0
_ERROR_BODY_BYTES = 4096
# Everything from a "?" to the next blank or quote: the query strings that requests and
# urllib3 put in their exception messages, and that error pages sometimes echo.
_QUERY_IN_TEXT = re.compile(r"\?[^\s'\"<>)]*")
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)
# Where the filesystem for an object storage scheme comes from, for the error when it is missing.
_FILESYSTEM_PACKAGES = {
    "s3": "apache-airflow-providers-amazon[s3fs]",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "abfss": "apache-airflow-providers-microsoft-azure",
    "az": "apache-airflow-providers-microsoft-azure",
}


class InfinityBlueDownloadError(InfinityBlueError):
    """A video could not be downloaded or saved; ``transient`` ones are worth another attempt."""

    def __init__(
        self,
        message: str,
        *,
        transient: bool = False,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.transient = transient
        self.status_code = status_code
        self.retry_after = retry_after
        super().__init__(message)


class InfinityBlueDownloadRefusedError(InfinityBlueDownloadError):
    """The download was refused by this provider's checks: URL scheme, redirects, size or content type."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


def redact_url(url: str) -> str:
    """``url`` fit for a log or an error: no query string, fragment or credentials.

    Signed URLs carry their signature, and sometimes a token, in the query string.

    >>> redact_url("https://user:pw@cdn.example.com/v/1.mp4?X-Amz-Signature=abc#t=3")
    'https://cdn.example.com/v/1.mp4?…'
    >>> redact_url("http://127.0.0.1:8089/videos/t1.mp4")
    'http://127.0.0.1:8089/videos/t1.mp4'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparsable URL>"
    host = parts.netloc.rpartition("@")[2]
    hidden = "?…" if parts.query else ""
    return f"{parts.scheme}://{host}{parts.path}{hidden}" if parts.scheme else f"{host}{parts.path}{hidden}"


def content_type_allowed(content_type: str, allowed: Sequence[str]) -> bool:
    """Whether a ``Content-Type`` matches one of ``allowed``.

    An entry ending in ``/`` (or ``/*``) allows a whole family; ``*`` allows anything,
    a missing type included.

    >>> content_type_allowed("video/mp4; codecs=avc1", ("video/",))
    True
    >>> content_type_allowed("text/html; charset=utf-8", DEFAULT_ALLOWED_CONTENT_TYPES)
    False
    """
    media = content_type.split(";")[0].strip().lower()
    for entry in allowed:
        entry = entry.strip().lower()
        if entry in ("*", "*/*"):
            return True
        if entry.endswith("/*"):
            entry = entry[:-1]
        if media and (media == entry or (entry.endswith("/") and media.startswith(entry))):
            return True
    return False


@dataclass(frozen=True)
class DownloadSettings:
    """Limits and timeouts of one download; checked when created.

    ``read_timeout`` is the stall limit: an attempt fails when no byte arrives for that
    many seconds. ``timeout`` bounds the whole download, every attempt and the waits
    between them included.
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    allowed_content_types: tuple[str, ...] = DEFAULT_ALLOWED_CONTENT_TYPES
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_redirects: int = MAX_REDIRECTS
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("max_bytes", "chunk_bytes", "connect_timeout", "read_timeout", "timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.retry.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.retry.max_attempts!r}")
        if isinstance(self.allowed_content_types, str) or not self.allowed_content_types:
            raise ValueError(
                "allowed_content_types must be a non-empty sequence of types such as ('video/', 'video/mp4'), "
                f"got {self.allowed_content_types!r}"
            )


@dataclass(frozen=True)
class DownloadedVideo:
    """Where a video was saved, how large it is and its SHA-256 (hex)."""

    destination: str
    size_bytes: int
    sha256: str
    content_type: str


class _Logger(Protocol):
    def info(self, msg: str, /, *args: Any) -> Any: ...
    def warning(self, msg: str, /, *args: Any) -> Any: ...


def download_video(
    url: str,
    destination: str,
    *,
    destination_conn_id: str | None = None,
    settings: DownloadSettings | None = None,
    logger: _Logger,
) -> DownloadedVideo:
    """Save the video at ``url`` to ``destination``, a local path or an object storage URL.

    ``destination`` names the file: a path (missing parent directories are created),
    a ``file://`` URL, or any URL that Airflow's ``ObjectStoragePath`` can write to with
    the filesystems installed (``s3://``, ``gs://``, ...), with ``destination_conn_id``
    as its connection. Raises :class:`InfinityBlueDownloadError` and leaves nothing at
    the destination when the video cannot be saved whole.
    """
    settings = settings or DownloadSettings()
    if not isinstance(url, str) or not url.strip():
        raise InfinityBlueDownloadRefusedError(f"The video URL must be a non-empty string, got {type(url).__name__}")
    if not isinstance(destination, str) or not destination.strip():
        raise InfinityBlueDownloadRefusedError(
            f"The destination must be a non-empty path or URL, got {type(destination).__name__}"
        )
    url, destination = url.strip(), destination.strip()
    _check_scheme(url)
    scheme = urlsplit(destination).scheme.lower() if "://" in destination else ""
    if not scheme or scheme in LOCAL_SCHEMES:
        local = _local_path(destination, scheme)
        saved = _download_to_local_file(url, local, settings, logger)
        # A file:// URL is handed on as given; a plain path as an absolute one, since a relative
        # path means little to downstream tasks that run in another directory.
        return replace(saved, destination=destination) if scheme else saved
    target = _object_storage_path(destination, destination_conn_id)
    return _download_to_object_storage(url, target, destination, settings, logger)


# -- destinations ---------------------------------------------------------------------------


def _local_path(destination: str, scheme: str) -> Path:
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


def _object_storage_path(destination: str, conn_id: str | None) -> ObjectStoragePath:
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


def _download_to_local_file(url: str, path: Path, settings: DownloadSettings, logger: _Logger) -> DownloadedVideo:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InfinityBlueDownloadError(f"Cannot create the directory of {path}: {error}") from error
    logger.info("Downloading the video at %s to %s", redact_url(url), path)
    try:
        # Created beside the destination, so that the final rename stays on one filesystem and is atomic.
        with _temporary_file(path.parent, f".{path.name[:180]}.", mode=0o666) as (temporary, file):
            streamed = _Transfer(url, file, settings, logger).run()
            file.flush()
            os.fsync(file.fileno())
            os.replace(temporary, path)
    except OSError as error:
        raise InfinityBlueDownloadError(f"Could not save the video to {path}: {error}") from error
    saved = DownloadedVideo(str(path), streamed.size_bytes, streamed.sha256, streamed.content_type)
    logger.info("Saved %s (%d bytes, sha256 %s)", path, saved.size_bytes, saved.sha256)
    return saved


def _download_to_object_storage(
    url: str, target: ObjectStoragePath, destination: str, settings: DownloadSettings, logger: _Logger
) -> DownloadedVideo:
    logger.info("Downloading the video at %s to %s (through a local temporary file)", redact_url(url), destination)
    fs, remote_path = target.fs, target.path
    try:
        with _temporary_file(Path(tempfile.gettempdir()), "infinityblue-video-", mode=0o600) as (temporary, file):
            streamed = _Transfer(url, file, settings, logger).run()
            file.close()
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
    """A new, empty file in ``directory``, removed on the way out unless it was renamed away.

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
            yield path, file
    finally:
        path.unlink(missing_ok=True)


# -- HTTP -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Streamed:
    size_bytes: int
    sha256: str
    content_type: str


class _Transfer:
    """Streams one URL into one file, over as many attempts as the retry policy allows.

    Bytes already in the file are kept across attempts when the server honours a ``Range``
    request for the same version of the video; otherwise the file starts over.
    """

    def __init__(self, url: str, file: BinaryIO, settings: DownloadSettings, logger: _Logger) -> None:
        self.url = url
        self.file = file
        self.settings = settings
        self.log = logger
        self.written = 0
        self.hasher = hashlib.sha256()
        self.total: int | None = None  # the full size, when the server said it
        self.validator: str | None = None  # ETag or Last-Modified, for If-Range
        self.resumable = False
        self.content_type = ""
        self._last_progress = time.monotonic()
        self.deadline = self._last_progress + settings.timeout  # a time.monotonic() instant

    def run(self) -> _Streamed:
        policy = self.settings.retry
        session = _new_session()
        try:
            for attempt in itertools.count(1):
                try:
                    self._attempt(session)
                    return _Streamed(self.written, self.hasher.hexdigest(), self.content_type)
                except InfinityBlueDownloadError as error:
                    delay = policy.delay_before_retry(error, attempt)
                    if delay is not None and time.monotonic() + delay >= self.deadline:
                        # Another attempt was due, but its wait alone would end past the deadline.
                        raise self._out_of_time() from error
                    if delay is None:
                        if error.transient:
                            self.log.warning("Giving up on %s after %d attempt(s)", redact_url(self.url), attempt)
                        raise
                    resume = f", resuming at byte {self.written}" if self.written and self.resumable else ""
                    self.log.warning(
                        "Download of %s failed (attempt %d of %d), retrying in %.1f s%s: %s",
                        redact_url(self.url),
                        attempt,
                        policy.max_attempts,
                        delay,
                        resume,
                        error,
                    )
                time.sleep(delay)
        finally:
            session.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _attempt(self, session: requests.Session) -> None:
        offset = self.written if self.resumable else 0
        if self.written and not offset:
            self._start_over()
        with enforce_deadline(at=self.deadline) as guard:
            try:
                response, url = self._open(session, offset)
                with response:
                    self._accept(response, url, offset)
                    self._receive(response, url)
            except InfinityBlueDownloadError as error:
                # Whatever the cut-off answer looked like (a short body, headers without a type), it was the deadline.
                if guard.expired or time.monotonic() >= self.deadline:
                    raise self._out_of_time() from error
                raise
        if guard.expired:  # the body may have been cut where the server announced no length
            raise self._out_of_time()

    def _out_of_time(self) -> InfinityBlueDownloadError:
        return InfinityBlueDownloadError(
            f"The download of {redact_url(self.url)} did not complete within timeout={self.settings.timeout:g} s "
            f"(after {self.written} bytes); nothing was saved"
        )

    def _open(self, session: requests.Session, offset: int) -> tuple[requests.Response, str]:
        """GET the URL, following redirects by hand so that every hop's scheme is checked."""
        import requests

        headers: dict[str, str] = {}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if self.validator:
                headers["If-Range"] = self.validator
        url, previous, hops = self.url, None, 0
        while True:
            _check_scheme(url, redirected_from=previous)
            try:
                response = session.get(
                    url,
                    headers=headers,
                    stream=True,
                    allow_redirects=False,
                    timeout=request_timeouts(
                        at=self.deadline,
                        connect_timeout=self.settings.connect_timeout,
                        read_timeout=self.settings.read_timeout,
                    ),
                )
            except requests.RequestException as error:
                raise _network_error(error, url, "while connecting") from error
            if response.status_code in _REDIRECT_STATUSES:
                location = response.headers.get("Location")
                response.close()
                if not location:
                    raise InfinityBlueDownloadError(
                        f"{redact_url(url)} answered HTTP {response.status_code} without a Location to go to",
                        status_code=response.status_code,
                    )
                hops += 1
                if hops > self.settings.max_redirects:
                    raise InfinityBlueDownloadRefusedError(
                        f"Refusing to follow more than {self.settings.max_redirects} redirects from "
                        f"{redact_url(self.url)} (the last one went to {redact_url(urljoin(url, location))})"
                    )
                previous, url = url, urljoin(url, location)
                self.log.info("%s redirects to %s", redact_url(previous), redact_url(url))
                continue
            if response.status_code in (200, 206):
                return response, url
            with response:
                if response.status_code == 416 and offset:
                    # The server cannot serve the rest (the file changed or shrank): the next attempt starts over.
                    self.resumable = False
                    raise InfinityBlueDownloadError(
                        f"{redact_url(url)} refused to resume at byte {offset} (HTTP 416); starting over",
                        transient=True,
                        status_code=416,
                    )
                raise _status_error(response, url)

    def _accept(self, response: requests.Response, url: str, offset: int) -> None:
        """Check an answer's type and size before its body is read, and where in the video it starts."""
        headers = response.headers
        content_type = headers.get("Content-Type", "")
        if not content_type_allowed(content_type, self.settings.allowed_content_types):
            raise _content_type_refusal(response, url, content_type, self.settings.allowed_content_types)
        # With a content coding the byte counts on the wire are not the video's: no length check, no resuming.
        identity = headers.get("Content-Encoding", "identity").strip().lower() in ("", "identity")
        if response.status_code == 206:
            start, total = _content_range(headers.get("Content-Range"))
            if start != offset or not identity:
                self.resumable = False
                raise InfinityBlueDownloadError(
                    f"{redact_url(url)} answered a range that does not start at byte {offset} "
                    f"(Content-Range {headers.get('Content-Range')!r}); starting over",
                    transient=True,
                )
        else:
            start, total = 0, _int_header(headers.get("Content-Length")) if identity else None
            if self.written:
                self.log.info("%s sent the whole video again instead of the rest; starting over", redact_url(url))
                self._start_over()
        if total is not None and total > self.settings.max_bytes:
            raise InfinityBlueDownloadRefusedError(
                f"Refusing to download {redact_url(url)}: it is {total} bytes, more than "
                f"max_bytes={self.settings.max_bytes}"
            )
        if total is not None and self.total is not None and total != self.total and start:
            self.resumable = False
            raise InfinityBlueDownloadError(
                f"{redact_url(url)} changed size between attempts ({self.total} then {total} bytes); starting over",
                transient=True,
            )
        self.total = total
        self.content_type = content_type
        self.resumable = identity and total is not None and headers.get("Accept-Ranges", "").lower() != "none"
        etag = headers.get("ETag", "")
        # Only a strong validator may guard a byte range (RFC 9110, If-Range).
        self.validator = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified")

    def _receive(self, response: requests.Response, url: str) -> None:
        import requests

        chunks = response.iter_content(chunk_size=self.settings.chunk_bytes)
        while True:
            try:
                chunk = next(chunks, None)
            except requests.RequestException as error:
                raise _network_error(error, url, f"after {self.written} bytes of the body") from error
            if chunk is None:
                break
            if self.written + len(chunk) > self.settings.max_bytes:
                raise InfinityBlueDownloadRefusedError(
                    f"Stopped downloading {redact_url(url)}: it went past max_bytes={self.settings.max_bytes}"
                )
            self.file.write(chunk)
            self.hasher.update(chunk)
            self.written += len(chunk)
            self._report_progress()
        if self.total is not None and self.written != self.total:
            raise InfinityBlueDownloadError(
                f"The connection to {redact_url(url)} ended after {self.written} of {self.total} bytes",
                transient=True,
            )
        if not self.written:
            # No video is empty: a connection that closed before the body, or a broken host.
            raise InfinityBlueDownloadError(f"{redact_url(url)} answered with an empty body", transient=True)

    def _start_over(self) -> None:
        self.file.seek(0)
        self.file.truncate()
        self.hasher = hashlib.sha256()
        self.written = 0

    def _report_progress(self) -> None:
        now = time.monotonic()
        if now - self._last_progress >= _PROGRESS_LOG_SECONDS:
            self._last_progress = now
            of_total = f" of {self.total / 1024**2:.1f} MiB" if self.total else ""
            self.log.info("Downloaded %.1f MiB%s of %s", self.written / 1024**2, of_total, redact_url(self.url))


def _new_session() -> requests.Session:
    session = new_session()
    session.headers.update(
        {
            "User-Agent": USER_AGENT,
            "Accept": "video/*, application/octet-stream;q=0.9, */*;q=0.5",
            # Byte counts and ranges must be those of the video itself.
            "Accept-Encoding": "identity",
        }
    )
    # An auth of the session's own stops requests from adding credentials found in ~/.netrc.
    session.auth = _without_credentials
    return session


def _without_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    request.headers.pop("Authorization", None)
    return request


def _check_scheme(url: str, *, redirected_from: str | None = None) -> None:
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError:
        scheme, host = "", None
    if scheme in ALLOWED_SCHEMES and host:
        return
    if scheme in ALLOWED_SCHEMES:
        reason = "a URL without a host"
    else:
        reason = f"a {scheme}:// URL" if scheme else "not an absolute URL"
    if redirected_from:
        raise InfinityBlueDownloadRefusedError(
            f"Refusing to follow the redirect from {redact_url(redirected_from)} to {redact_url(url)}: "
            f"it is {reason}, and only http:// and https:// video URLs are downloaded"
        )
    raise InfinityBlueDownloadRefusedError(
        f"Refusing to download {redact_url(url)}: it is {reason}; only http:// and https:// video URLs are downloaded"
    )


def _status_error(response: requests.Response, url: str) -> InfinityBlueDownloadError:
    status = response.status_code
    detail = _error_detail(response)
    message = f"The video host answered HTTP {status} to GET {redact_url(url)}: {detail}"
    if status == 429 or status >= 500 or status == 408:
        # CDNs send Retry-After with 503s too, not only with 429s.
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        suffix = " (rate limited)" if status == 429 else ""
        return InfinityBlueDownloadError(message + suffix, transient=True, status_code=status, retry_after=retry_after)
    if status in (401, 403):
        hint = (
            "The link may have expired (signed URLs do) or be private. No credentials are sent to video "
            "hosts, so download from a fresh URL: run the generation or its sensor again."
        )
    elif status in (404, 410):
        hint = "The video is not there: it may have expired or been removed, or the URL is wrong."
    else:
        hint = "This is not a video download link this provider can use."
    return InfinityBlueDownloadError(f"{message}. {hint}", status_code=status)


def _content_type_refusal(
    response: requests.Response, url: str, content_type: str, allowed: Sequence[str]
) -> InfinityBlueDownloadRefusedError:
    media = content_type.split(";")[0].strip().lower()
    if media == "text/html":
        return InfinityBlueDownloadRefusedError(
            f"Refusing to save the answer of {redact_url(url)}: it is an HTML page (text/html), not a video. "
            f"An expired signed URL, or a link to a web page instead of the file, answers like this "
            f"({_error_detail(response)})."
        )
    detail = f" ({_error_detail(response)})" if media.startswith("text/") or media.endswith(("json", "xml")) else ""
    return InfinityBlueDownloadRefusedError(
        f"Refusing to save the answer of {redact_url(url)}: its Content-Type is "
        f"{media or 'missing'!r}, not one of allowed_content_types {tuple(allowed)!r}{detail}"
    )


def _error_detail(response: requests.Response) -> str:
    """A short, readable excerpt of an answer that is not the video, with no query strings in it."""
    import requests

    try:
        body = next(response.iter_content(chunk_size=_ERROR_BODY_BYTES), b"")
    except requests.RequestException:
        body = b""
    code, message = parse_error_body(body[:_ERROR_BODY_BYTES], response.headers.get("Content-Type", ""))
    text = f"{message} (code {code!r})" if code else message or "(empty body)"
    return _QUERY_IN_TEXT.sub("?…", text)


def _network_error(error: requests.RequestException, url: str, when: str) -> InfinityBlueDownloadError:
    import requests

    permanent = isinstance(
        error,
        (
            requests.exceptions.SSLError,
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidHeader,
            requests.exceptions.ContentDecodingError,
        ),
    )
    detail = _QUERY_IN_TEXT.sub("?…", f"{type(error).__name__}: {error}")
    return InfinityBlueDownloadError(
        f"Could not download {redact_url(url)} ({when}): {detail}", transient=not permanent
    )


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """The first byte and the full size in a ``Content-Range`` header (``None`` where unknown).

    >>> _content_range("bytes 100-199/1000"), _content_range("bytes 0-9/*"), _content_range(None)
    ((100, 1000), (0, None), (None, None))
    """
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None, None
    total = match.group(3)
    return int(match.group(1)), None if total == "*" else int(total)


def _int_header(value: str | None) -> int | None:
    try:
        number = int(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number >= 0 else None
