"""Which URLs a download may fetch, and how they appear in logs and errors.

A video URL comes from an API answer, so it is untrusted input: only http(s) URLs are
fetched, on the first request and on every redirect hop, and a URL is quoted in a log or
an error only without its query string, fragment and credentials (signed URLs carry
their signature there).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from airflow_provider_infinityblue.exceptions import InfinityBlueDownloadRefusedError

ALLOWED_SCHEMES = ("http", "https")
# Everything from a "?" to the next blank or quote: the query strings that requests and
# urllib3 put in their exception messages.
QUERY_IN_TEXT = re.compile(r"\?[^\s'\"<>)]*")


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


def check_scheme(url: str, *, redirected_from: str | None = None) -> None:
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
