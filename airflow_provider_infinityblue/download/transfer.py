"""The resumable HTTP transfer of one video URL into one open file.

The body is streamed in chunks, so memory stays constant whatever the size; transient
failures are retried with :class:`~airflow_provider_infinityblue.retry.RetryPolicy`,
resuming with a ``Range`` request when the server allows it. ``read_timeout`` bounds a
stall (no byte for that long fails the attempt), ``timeout`` the whole transfer: a host
that trickles bytes cannot hold a worker past it. The session sends no credentials, and
redirects are followed here, hop by hop, so that each one is checked: its scheme, and the
addresses it reaches (see :class:`~airflow_provider_infinityblue.download.safety.AddressPolicy`).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol
from urllib.parse import urljoin

from airflow_provider_infinityblue.download.constants import (
    DEFAULT_ALLOWED_CONTENT_TYPES,
    DEFAULT_CHUNK_BYTES,
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    MAX_REDIRECTS,
)
from airflow_provider_infinityblue.download.safety import (
    QUERY_IN_TEXT,
    AddressPolicy,
    address_checked_pool_classes,
    check_proxied_host,
    check_scheme,
    redact_url,
)
from airflow_provider_infinityblue.exceptions import InfinityBlueDownloadError, InfinityBlueDownloadRefusedError
from airflow_provider_infinityblue.network import NetworkSettings
from airflow_provider_infinityblue.retry import RetryPolicy, parse_retry_after
from airflow_provider_infinityblue.transport import USER_AGENT, enforce_deadline, new_session, request_timeouts

if TYPE_CHECKING:
    from collections.abc import Sequence

    import requests

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_PROGRESS_LOG_SECONDS = 30.0
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


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
    between them included. ``address_policy`` says which hosts and addresses may be
    connected to; the default allows public addresses only. ``network`` says which proxy and
    certificates are used (see :class:`~airflow_provider_infinityblue.network.NetworkSettings`); the
    default reads the environment's ``HTTPS_PROXY``, ``NO_PROXY``, ``REQUESTS_CA_BUNDLE``, ...
    """

    max_bytes: int = DEFAULT_MAX_BYTES
    allowed_content_types: tuple[str, ...] = DEFAULT_ALLOWED_CONTENT_TYPES
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_redirects: int = MAX_REDIRECTS
    timeout: float = DEFAULT_TIMEOUT
    address_policy: AddressPolicy = field(default_factory=AddressPolicy)
    network: NetworkSettings = field(default_factory=NetworkSettings.from_environment)

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


class Logger(Protocol):
    def info(self, msg: str, /, *args: Any) -> Any: ...
    def warning(self, msg: str, /, *args: Any) -> Any: ...


@dataclass(frozen=True)
class Streamed:
    size_bytes: int
    sha256: str
    content_type: str


class Transfer:
    """Streams one URL into one file, over as many attempts as the retry policy allows.

    Bytes already in the file are kept across attempts when the server honours a ``Range``
    request for the same version of the video; otherwise the file starts over.
    """

    def __init__(self, url: str, file: BinaryIO, settings: DownloadSettings, logger: Logger) -> None:
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

    def run(self) -> Streamed:
        policy = self.settings.retry
        session = _new_session(self.settings.address_policy, self.settings.network)
        try:
            for attempt in itertools.count(1):
                try:
                    self._attempt(session)
                    return Streamed(self.written, self.hasher.hexdigest(), self.content_type)
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
            check_scheme(url, redirected_from=previous)
            try:
                proxies = self.settings.network.requests_proxies(url)
                if proxies:
                    check_proxied_host(url, self.settings.address_policy)
                response = session.get(
                    url,
                    proxies=proxies,
                    headers=headers,
                    stream=True,
                    allow_redirects=False,
                    timeout=request_timeouts(
                        at=self.deadline,
                        connect_timeout=self.settings.connect_timeout,
                        read_timeout=self.settings.read_timeout,
                    ),
                )
            except InfinityBlueDownloadRefusedError as error:  # an address refused, before any request to it
                raise _address_refusal(error, url, previous) from None
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


def _new_session(policy: AddressPolicy, network: NetworkSettings) -> requests.Session:
    # new_session reads nothing from the environment: no ~/.netrc credentials ever reach a video host.
    session = new_session(network, pool_classes=address_checked_pool_classes(policy))
    session.headers.update(
        {
            "User-Agent": USER_AGENT,
            "Accept": "video/*, application/octet-stream;q=0.9, */*;q=0.5",
            # Byte counts and ranges must be those of the video itself.
            "Accept-Encoding": "identity",
        }
    )
    # An auth of the session's own: no credentials of any kind are added to a request.
    session.auth = _without_credentials
    return session


def _address_refusal(
    error: InfinityBlueDownloadRefusedError, url: str, previous: str | None
) -> InfinityBlueDownloadRefusedError:
    if previous:
        return InfinityBlueDownloadRefusedError(
            f"Refusing to follow the redirect from {redact_url(previous)} to {redact_url(url)}: {error}"
        )
    return InfinityBlueDownloadRefusedError(f"Refusing to download {redact_url(url)}: {error}")


def _without_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    request.headers.pop("Authorization", None)
    return request


def _status_error(response: requests.Response, url: str) -> InfinityBlueDownloadError:
    status = response.status_code
    message = f"The video host answered HTTP {status} ({_describe(response)}) to GET {redact_url(url)}"
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
    described = f"HTTP {response.status_code}, {_describe(response)}"
    if media == "text/html":
        return InfinityBlueDownloadRefusedError(
            f"Refusing to save the answer of {redact_url(url)}: it is an HTML page ({described}), not a video. "
            "An expired signed URL, or a link to a web page instead of the file, answers like this."
        )
    return InfinityBlueDownloadRefusedError(
        f"Refusing to save the answer of {redact_url(url)} ({described}): its Content-Type is not one of "
        f"allowed_content_types {tuple(allowed)!r}"
    )


def _describe(response: requests.Response) -> str:
    """An answer that is not the video, by its type and size only (its status is quoted beside).

    Its body is never read: a host that answers with something other than the video may be
    an internal service, and its body (credentials, a metadata document) must not reach a log.
    """
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    size = _int_header(response.headers.get("Content-Length"))
    shown_type = media[:80] if media else "no Content-Type"
    return f"{shown_type}, " + (f"{size} bytes" if size is not None else "size unknown")


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
    detail = QUERY_IN_TEXT.sub("?…", f"{type(error).__name__}: {error}")
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
