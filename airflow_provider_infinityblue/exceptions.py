"""Every error the InfinityBlue provider raises, and how an HTTP error answer becomes one.

All derive from :class:`InfinityBlueError` (an ``AirflowException``). Errors answered by
the API carry the HTTP status, the API's error code and message and the ``x-request-id``
in their text, which is what InfinityBlue support asks for. No message ever contains the
API key, and none is unbounded: every text quoted from an answer goes through
:func:`~airflow_provider_infinityblue.redaction.scrub` (the key removed, clipped to
:data:`~airflow_provider_infinityblue.redaction.QUOTE_LIMIT` characters), and every error's whole
message once more, clipped to :data:`~airflow_provider_infinityblue.redaction.MESSAGE_LIMIT`.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.exceptions import AirflowException

from airflow_provider_infinityblue.redaction import MESSAGE_LIMIT, scrub
from airflow_provider_infinityblue.retry import parse_retry_after
from airflow_provider_infinityblue.transport import REQUEST_ID_HEADER

if TYPE_CHECKING:
    from collections.abc import Mapping

_SNIPPET_CHARS = 200


class InfinityBlueError(AirflowException):
    """Base class of every error raised by the InfinityBlue provider.

    ``transient`` tells whether sending the same request again may succeed. The message is scrubbed
    of the API key and clipped to :data:`~airflow_provider_infinityblue.redaction.MESSAGE_LIMIT`
    characters here, whatever built it.

    >>> len(str(InfinityBlueError("x" * 10_000)))
    2001
    """

    transient: bool = False
    # AirflowException types this as the status Airflow's own REST API would answer with;
    # here it is the status the InfinityBlue API answered, when there was one.
    status_code: int | None = None  # type: ignore[assignment]

    def __init__(self, *args: object) -> None:
        if args and isinstance(args[0], str):
            args = (scrub(args[0], limit=MESSAGE_LIMIT), *args[1:])
        super().__init__(*args)


class InfinityBlueConfigurationError(InfinityBlueError):
    """The Airflow connection cannot be used as configured (no API key, a bad extra, a bad URL)."""


class InfinityBlueValidationError(InfinityBlueError, ValueError):
    """A generation request was refused before anything was sent.

    >>> str(InfinityBlueValidationError("width", "must be a positive integer, got -1"))
    "Invalid generation request: 'width' must be a positive integer, got -1"
    """

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"Invalid generation request: {field!r} {problem}")


class InfinityBlueConnectionError(InfinityBlueError):
    """The API could not be reached, or stopped answering.

    ``request_sent`` tells whether the request may have reached the server (a read
    timeout, a dropped connection) or provably did not (refused, unresolvable, connect
    timeout). ``permanent`` marks failures that repeating will not fix (TLS errors).
    """

    def __init__(self, message: str, *, request_sent: bool, permanent: bool = False) -> None:
        self.request_sent = request_sent
        self.transient = not permanent
        super().__init__(message)


class InfinityBlueResponseError(InfinityBlueError):
    """The API answered success but with a body this provider cannot read."""

    def __init__(self, message: str, *, status_code: int | None = None, request_id: str | None = None):
        self.status_code = status_code
        self.request_id = request_id = scrub(request_id)
        suffix = f" [HTTP {status_code}, request id {request_id or 'none'}]" if status_code else ""
        super().__init__(message + suffix)


class InfinityBlueAPIError(InfinityBlueError):
    """The API answered with an error status. Subclasses say which kind.

    >>> err = InfinityBlueAPIError(status_code=418, error_code="teapot", api_message="Short and stout",
    ...                            request_id="req_1", method="GET", path="/v1/video/generations/x")
    >>> str(err)
    "The InfinityBlue API returned an error: Short and stout [HTTP 418, code 'teapot', request id req_1, \
GET /v1/video/generations/x]"
    """

    summary: ClassVar[str] = "The InfinityBlue API returned an error"

    def __init__(
        self,
        *,
        status_code: int,
        error_code: str | None = None,
        api_message: str | None = None,
        request_id: str | None = None,
        method: str | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.status_code = status_code
        # The API's own texts, scrubbed of the key and clipped.
        self.error_code = error_code = scrub(error_code)
        self.api_message = api_message = scrub(api_message)
        self.request_id = request_id = scrub(request_id)
        self.method = method
        self.path = path
        self.hint = hint
        details = [f"HTTP {status_code}"]
        if error_code:
            details.append(f"code {error_code!r}")
        details.append(f"request id {request_id or 'none'}")
        if method and path:
            details.append(f"{method} {path}")
        text = f"{self.summary}: {api_message or '(no message)'} [{', '.join(details)}]"
        super().__init__(f"{text}. {hint}" if hint else text)

    @staticmethod
    def from_response(
        *,
        status_code: int,
        headers: Mapping[str, str],
        body: bytes,
        method: str,
        path: str,
        conn_id: str,
    ) -> InfinityBlueAPIError:
        """Build the error matching an HTTP error answer (its code, message and request id are scrubbed and clipped)."""
        error_code, api_message = parse_error_body(body, headers.get("Content-Type", ""))
        common: dict[str, Any] = {
            "status_code": status_code,
            "error_code": error_code,
            "api_message": api_message,
            "request_id": headers.get(REQUEST_ID_HEADER),
            "method": method,
            "path": path,
        }
        if status_code == 401:
            return InfinityBlueAuthenticationError(
                **common, hint=f"Check the API key in the password field of Airflow connection '{conn_id}'."
            )
        if status_code == 403:
            return InfinityBluePermissionError(
                **common,
                hint="The key may not use this model or endpoint, or the account is out of quota: "
                "check the InfinityBlue console.",
            )
        if status_code == 404 or error_code == "task_not_exist":
            return InfinityBlueNotFoundError(
                **common, hint="The API does not know this generation id: check where the id came from."
            )
        if status_code == 429:
            retry_after = parse_retry_after(headers.get("Retry-After"))
            return InfinityBlueRateLimitError(
                **common,
                retry_after=retry_after,
                hint="Rate limited" + (f"; the API asked to wait {retry_after:g} s." if retry_after else "."),
            )
        if status_code == 413:
            return InfinityBlueInvalidRequestError(
                **common,
                hint="The request body is too large: send a smaller image, or an image URL instead of a file.",
            )
        if 400 <= status_code < 500:
            return InfinityBlueInvalidRequestError(**common, hint="Fix the request as the API says.")
        if status_code >= 500:
            return InfinityBlueServerError(**common, hint="The API failed on its side; this is usually brief.")
        return InfinityBlueAPIError(**common, hint="This provider did not expect this status.")


class InfinityBlueAuthenticationError(InfinityBlueAPIError):
    """HTTP 401: the API key is missing, wrong or revoked."""

    summary = "The InfinityBlue API rejected the API key"


class InfinityBluePermissionError(InfinityBlueAPIError):
    """HTTP 403: the key may not do this, or the account is out of quota."""

    summary = "The InfinityBlue API refused the request (permission or quota)"


class InfinityBlueNotFoundError(InfinityBlueAPIError):
    """HTTP 404, or 400 with code ``task_not_exist``: the generation id is unknown."""

    summary = "The InfinityBlue API does not know this generation"


class InfinityBlueInvalidRequestError(InfinityBlueAPIError):
    """HTTP 400, 413, 422 and other 4xx: the API refused the request as sent."""

    summary = "The InfinityBlue API rejected the request"


class InfinityBlueRateLimitError(InfinityBlueAPIError):
    """HTTP 429. ``retry_after`` holds the seconds the API asked to wait, when it said."""

    summary = "The InfinityBlue API is rate limiting this key"
    transient = True

    def __init__(self, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(**kwargs)


class InfinityBlueServerError(InfinityBlueAPIError):
    """HTTP 5xx: the API or a proxy in front of it failed."""

    summary = "The InfinityBlue API failed"
    transient = True


class InfinityBlueAmbiguousSubmitError(InfinityBlueError):
    """A submission failed after its body was sent: the generation may exist and may be billed.

    The hook never sends such a submission again on its own, since that could pay twice
    for one video; nor does a retry of the task, unless ``on_lost_generation="resubmit"``.
    """

    def __init__(self, cause: InfinityBlueError | None = None, *, message: str | None = None) -> None:
        self.cause = cause
        self.request_id = getattr(cause, "request_id", None)
        super().__init__(
            message
            or "The generation may have been created: the submission reached or may have reached the "
            f"InfinityBlue API before it failed ({cause}). It was not sent again, so that one video is "
            "not paid for twice; check the InfinityBlue console before submitting it again."
        )

    @classmethod
    def unconfirmed(cls, *, started_at: str, fingerprint: str) -> InfinityBlueAmbiguousSubmitError:
        """An earlier try began a submission at ``started_at`` and never recorded its answer."""
        return cls(
            message=f"An earlier try of this task began submitting this generation at {started_at} (request "
            f"fingerprint {fingerprint[:16]}) and never recorded the API's answer: the worker may have died "
            "between the POST and its answer, so the generation may exist and may be billed. Not submitting "
            "it again, so that one video is not paid for twice. Check the InfinityBlue console; to submit "
            'anew on such a retry, set on_lost_generation="resubmit" on the operator.'
        )


class InfinityBlueGenerationLostError(InfinityBlueError):
    """A generation this task submitted is unknown to the API past the grace for it to become visible.

    It may still be billed. The operator's ``on_lost_generation`` says whether a retry fails
    with this error (``"fail"``, the default) or submits anew (``"resubmit"``).
    """

    def __init__(self, generation_id: str, *, age: float, grace: float, request_id: str | None = None) -> None:
        self.generation_id = generation_id
        self.age = age
        self.grace = grace
        self.request_id = request_id = scrub(request_id)
        self.status_code = 404
        super().__init__(
            f"InfinityBlue generation {generation_id} was submitted {age:.0f} s ago and the API still does not "
            f"know it (404, past the {grace:g} s grace for a new generation to become visible; request id "
            f"{request_id or 'none'}). It may still be billed: check the InfinityBlue console. To submit anew "
            'on a retry instead of failing, set on_lost_generation="resubmit" on the operator.'
        )


class InfinityBlueGenerationFailedError(InfinityBlueError):
    """A generation ended failed or cancelled; carries the API's reason."""

    def __init__(
        self,
        generation_id: str,
        status: str,
        *,
        error_code: str | None = None,
        error_message: str | None = None,
    ) -> None:
        self.generation_id = generation_id
        self.status = status = scrub(status)
        self.error_code = error_code = scrub(error_code)
        self.error_message = error_message = scrub(error_message)
        code = f" (code {error_code!r})" if error_code else ""
        super().__init__(
            f"InfinityBlue generation {generation_id} ended with status {status!r}: "
            f"{error_message or 'the API gave no reason'}{code}"
        )


class InfinityBlueWaitTimeoutError(InfinityBlueError):
    """Waiting for a generation ran out of time; the generation itself may still finish."""

    def __init__(self, generation_id: str, message: str) -> None:
        self.generation_id = generation_id
        super().__init__(message)

    @classmethod
    def after(cls, generation_id: str, last_status: str | None, *, when: str) -> InfinityBlueWaitTimeoutError:
        """The error for a wait that ended ``when`` (``"after 600 s"``) on status ``last_status``."""
        return cls(
            generation_id,
            f"Stopped waiting for InfinityBlue generation {generation_id} {when} "
            f"(last status {last_status or 'unknown'!r}). The generation may still finish: "
            f"look it up by its id {generation_id}.",
        )


class InfinityBlueBatchError(InfinityBlueError):
    """A batch cannot run as given, or more of its rows failed than ``max_failed_rows`` allows.

    The manifest is written before it is raised, so every row's outcome can be read there.
    """


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
    """The download was refused by this provider's checks: URL scheme, address, redirects, size or content type."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


def restore_error(
    error_type: str | None,
    message: str,
    *,
    status_code: int | None = None,
    error_code: str | None = None,
    request_id: str | None = None,
) -> InfinityBlueError:
    """Rebuild an error that crossed a process boundary (a trigger event) as its own class.

    Only classes of this module are rebuilt; any other name gives a plain :class:`InfinityBlueError`.

    >>> error = restore_error("InfinityBlueAuthenticationError", "bad key [HTTP 401]", status_code=401)
    >>> type(error).__name__, str(error), error.status_code
    ('InfinityBlueAuthenticationError', 'bad key [HTTP 401]', 401)
    """
    cls = globals().get(error_type or "")
    if not (isinstance(cls, type) and issubclass(cls, InfinityBlueError)):
        cls = InfinityBlueError
    # The classes' constructors build messages from parts; the message here is already built.
    error = cls.__new__(cls)
    InfinityBlueError.__init__(error, message)  # scrubbed and clipped, as every message
    error.status_code = status_code
    for name, value in (("error_code", error_code), ("request_id", request_id)):
        setattr(error, name, scrub(value))
    return error


def parse_error_body(body: bytes, content_type: str = "") -> tuple[str | None, str | None]:
    """The ``(code, message)`` of an error answer in any shape the gateway is known to send.

    >>> parse_error_body(b'{"error": {"message": "bad prompt", "type": "invalid_request_error", "code": "x"}}')
    ('x', 'bad prompt')
    >>> parse_error_body(b'{"code": "task_not_exist", "message": "no such task", "data": null}')
    ('task_not_exist', 'no such task')
    >>> parse_error_body(b"<html><title>502 Bad Gateway</title></html>", "text/html")
    (None, 'non-JSON text/html answer: 502 Bad Gateway')
    """
    text = body.decode("utf-8", errors="replace")
    try:
        payload = json.loads(text)
    except ValueError:
        return None, _describe_non_json(text, content_type)
    if not isinstance(payload, dict):
        return None, _clip(text)
    error = payload.get("error")
    if isinstance(error, dict):
        return _text(error.get("code") or error.get("type")), _text(error.get("message"))
    if isinstance(error, str) and error:
        return _text(payload.get("code")), error
    message = payload.get("message") or payload.get("detail") or payload.get("msg")
    return _text(payload.get("code")), _text(message) if message else _clip(text)


def _describe_non_json(text: str, content_type: str) -> str:
    kind = content_type.split(";")[0].strip() or "unknown content type"
    title = re.search(r"<title[^>]*>(.*?)</title>", text, flags=re.IGNORECASE | re.DOTALL)
    readable = title.group(1) if title else re.sub(r"<[^>]+>", " ", text)
    readable = " ".join(readable.split())
    return f"non-JSON {kind} answer: {_clip(readable) or '(empty body)'}"


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "…"


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value)
