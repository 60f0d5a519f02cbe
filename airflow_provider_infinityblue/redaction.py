"""The one scrubbing rule: every text built from an answer loses the API key and is clipped.

The hook registers a connection's API key here (:func:`register_secret`) as soon as it reads the
connection; from then on :func:`scrub` removes it, in this process, from any text, whichever caller
holds the text. Every string that comes from the API (an error code, a message, a request id, a
failure reason, a status word, a quoted body) passes through :func:`scrub` before it reaches an
exception, a log line, an XCom or a trigger event, and decoded JSON answers through
:func:`scrub_json` where the hook reads them.

>>> register_secret("sk-fake-DOCTEST-0123456789")
>>> scrub("echo: Bearer sk-fake-DOCTEST-0123456789")
'echo: Bearer ***'
>>> len(scrub("x" * 5000))  # QUOTE_LIMIT characters and an ellipsis
301
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, overload
from urllib.parse import quote, quote_plus

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

QUOTE_LIMIT = 300
"""Most characters of one quoted text (a code, a message, a request id, a status), before its ``…``."""
DETAIL_LIMIT = 1000
"""Most characters of an HTTP library's own description of a failure (it names hosts, URLs and causes)."""
MESSAGE_LIMIT = 2000
"""Most characters of any provider error's whole message, before its ``…``."""
REDACTED = "***"
"""What a secret is replaced with."""
MIN_SECRET_CHARS = 5
"""Shorter secrets are not registered: replacing them would mangle every text, and no API key is that short."""

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register_secret(secret: str | None) -> None:
    """Remove ``secret`` from every text :func:`scrub` sees in this process, as given and percent-encoded.

    Its ``Bearer <key>`` form needs nothing more: the key in it is removed.
    """
    global _secrets
    if not secret or len(secret) < MIN_SECRET_CHARS:
        return
    forms = {secret, quote(secret, safe=""), quote_plus(secret, safe="")}
    with _lock:
        known = set(_secrets)
        if forms <= known:
            return
        # Longest first, so that an encoded form is replaced whole before the plain key inside it could be.
        _secrets = tuple(sorted(known | forms, key=len, reverse=True))


def protect_secrets(secrets: Iterable[str], *, in_airflow_logs: bool = True) -> None:
    """Keep ``secrets`` out of this process's texts (:func:`register_secret`) and out of Airflow's logs.

    Airflow's ``mask_secret`` may ask a supervisor (a triggerer's, a task's): a coroutine passes
    ``in_airflow_logs=False`` and masks them through ``sync_to_async`` itself.
    """
    secrets = [secret for secret in secrets if secret]
    for secret in secrets:
        register_secret(secret)
    if not in_airflow_logs:
        return
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # Airflow 3.0
        from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
    for secret in secrets:
        mask_secret(secret)


@overload
def scrub(text: str, limit: int | None = QUOTE_LIMIT) -> str: ...
@overload
def scrub(text: None, limit: int | None = QUOTE_LIMIT) -> None: ...
def scrub(text: str | None, limit: int | None = QUOTE_LIMIT) -> str | None:
    """``text`` without any registered secret, clipped to ``limit`` characters (``None``: not clipped).

    A clipped text ends in ``…``, so it is at most ``limit + 1`` characters long. The secrets are
    removed first, so clipping never leaves part of one.

    >>> scrub(None) is None, scrub("short")
    (True, 'short')
    >>> scrub("abcdef", limit=3)
    'abc…'
    """
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return text


def scrub_answer(content: bytes, headers: Mapping[str, str]) -> tuple[bytes, dict[str, str]]:
    """An answer's raw body and headers with every registered secret removed, before anything reads them.

    Done first, so that no variable holds the key while the answer is read: tracebacks that show
    local variables (Airflow 3.0's console logs do) would print it. The body stays valid JSON: the key
    only ever sits inside a string, and becomes ``***`` there.

    >>> register_secret("sk-fake-DOCTEST-0123456789")
    >>> scrub_answer(b'{"echo": "Bearer sk-fake-DOCTEST-0123456789"}', {"x-request-id": "sk-fake-DOCTEST-0123456789"})
    (b'{"echo": "Bearer ***"}', {'x-request-id': '***'})
    """
    clean = dict(headers.items())
    if not _secrets:
        return content, clean
    for secret in _secrets:
        content = content.replace(secret.encode(), REDACTED.encode())
    return content, {name: scrub(value, limit=None) for name, value in clean.items()}


def scrub_json(value: Any) -> Any:
    """A decoded JSON value with every registered secret removed from its strings and keys, not clipped.

    Video URLs can be long signed URLs: they must survive whole.

    >>> register_secret("sk-fake-DOCTEST-0123456789")
    >>> scrub_json({"error": ["sk-fake-DOCTEST-0123456789", 3], "sk-fake-DOCTEST-0123456789": None})
    {'error': ['***', 3], '***': None}
    """
    if not _secrets:
        return value
    if isinstance(value, str):
        return scrub(value, limit=None)
    if isinstance(value, dict):
        return {scrub(str(key), limit=None): scrub_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub_json(item) for item in value]
    return value
