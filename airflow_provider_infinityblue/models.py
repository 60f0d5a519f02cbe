"""What is sent to and read from the InfinityBlue API.

:class:`GenerationRequest` validates a submission before anything leaves the worker.
:class:`Generation` reads a status answer in every shape the OpenAI-compatible gateway
is known to use, and :class:`GenerationState` folds its many status spellings into five
states.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from airflow_provider_infinityblue.exceptions import (
    InfinityBlueResponseError,
    InfinityBlueValidationError,
)
from airflow_provider_infinityblue.redaction import scrub

DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PROMPT_CHARS = 10_000
"""The longest prompt sent (in characters), unless the connection's ``max_prompt_chars`` extra says otherwise."""
MAX_METADATA_DEPTH = 32
"""How deep ``metadata`` may nest (objects and lists)."""


class GenerationState(StrEnum):
    """Where a generation stands, whatever word the API used for it."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def is_finished(self) -> bool:
        return self in (GenerationState.SUCCEEDED, GenerationState.FAILED, GenerationState.CANCELLED)

    @classmethod
    def from_status(cls, status: object) -> GenerationState:
        """Map a raw status in any case or spelling; words never seen before are UNKNOWN.

        >>> GenerationState.from_status("IN_PROGRESS"), GenerationState.from_status("Succeeded")
        (<GenerationState.RUNNING: 'running'>, <GenerationState.SUCCEEDED: 'succeeded'>)
        >>> GenerationState.from_status("warming-up")
        <GenerationState.UNKNOWN: 'unknown'>
        """
        if not isinstance(status, str):
            return cls.UNKNOWN
        word = re.sub(r"[\s-]+", "_", status.strip().lower())
        return _STATE_BY_STATUS.get(word, cls.UNKNOWN)


_STATE_BY_STATUS = {
    **dict.fromkeys(("queued", "pending", "submitted", "not_start"), GenerationState.PENDING),
    **dict.fromkeys(("in_progress", "processing", "running"), GenerationState.RUNNING),
    **dict.fromkeys(("completed", "succeeded", "success"), GenerationState.SUCCEEDED),
    **dict.fromkeys(("failed", "failure", "error"), GenerationState.FAILED),
    **dict.fromkeys(("cancelled", "canceled"), GenerationState.CANCELLED),
}


@dataclass(frozen=True)
class Generation:
    """One status answer for a generation, read from whichever shape the API used.

    ``raw`` keeps the whole answer (after unwrapping), extra fields included. The texts read from it
    (status, error code and message) are scrubbed of the API key and clipped
    (:func:`~airflow_provider_infinityblue.redaction.scrub`); the video URL is kept whole.

    >>> g = Generation.from_payload({"code": "success", "message": "", "data": {
    ...     "id": "t1", "status": "SUCCESS", "progress": "100%", "result_url": "https://cdn/x.mp4"}})
    >>> g.id, g.state.value, g.progress, g.video_url
    ('t1', 'succeeded', 100, 'https://cdn/x.mp4')
    """

    id: str
    state: GenerationState
    status: str
    progress: int | None = None
    video_url: str | None = None
    video_format: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: object, *, generation_id: str | None = None) -> Generation:
        """Read a decoded JSON answer. ``generation_id`` fills in an id the answer left out."""
        data = unwrap_payload(payload)
        task_id = data.get("task_id") or data.get("id") or generation_id
        if not isinstance(task_id, (str, int)) or task_id == "":
            raise InfinityBlueResponseError(f"The InfinityBlue answer has no task id: {_preview(data)}")
        status = data.get("status")
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            metadata = {}
        url = next(
            (
                value
                for value in (data.get("url"), data.get("video_url"), data.get("result_url"), metadata.get("url"))
                if isinstance(value, str) and value
            ),
            None,
        )
        error_code, error_message = _read_error(data)
        video_format = data.get("format")
        return cls(
            id=str(task_id),
            state=GenerationState.from_status(status),
            status=scrub(str(status)) if status is not None else "",
            progress=_read_progress(data.get("progress")),
            video_url=url,
            video_format=scrub(video_format) if isinstance(video_format, str) else None,
            error_code=scrub(error_code),
            error_message=scrub(error_message),
            raw=data,
        )

    @property
    def is_finished(self) -> bool:
        return self.state.is_finished


def unwrap_payload(payload: object) -> dict[str, Any]:
    """The generation object of an answer, inside a ``{"code", "message", "data"}`` wrapper or not."""
    if not isinstance(payload, dict):
        raise InfinityBlueResponseError(f"The InfinityBlue answer is not a JSON object: {_preview(payload)}")
    data = payload.get("data")
    if "code" in payload and "data" in payload and "status" not in payload:
        if isinstance(data, dict):
            return data
        raise InfinityBlueResponseError(
            f"The InfinityBlue answer has code {scrub(str(payload.get('code')))!r} and no data: "
            f"{scrub(str(payload.get('message') or '')) or _preview(payload)}"
        )
    return payload


def _read_progress(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = value.strip().rstrip("%").strip()
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return max(0, min(100, round(number)))


def _read_error(data: dict[str, Any]) -> tuple[str | None, str | None]:
    error = data.get("error")
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        return (str(code) if code else None), (str(message) if message else None)
    if isinstance(error, str) and error:
        return None, error
    reason = data.get("fail_reason")
    if isinstance(reason, str) and reason:
        return None, reason
    return None, None


def _preview(value: object) -> str:
    """A short, scrubbed view of an answer for an error message: the fields it has, never their values whole."""
    if isinstance(value, dict):
        return describe_fields(value)
    return scrub(json.dumps(value, default=str) if not isinstance(value, str) else value, limit=200)


def describe_fields(data: dict[str, Any]) -> str:
    """The names of an answer's fields, scrubbed and clipped, for an error that must not quote their values.

    >>> describe_fields({"task_id": "t1", "status": "completed", "padding": "x" * 10**6})
    "fields 'task_id', 'status', 'padding'"
    """
    if not data:
        return "no fields"
    return scrub("fields " + ", ".join(repr(str(name)[:80]) for name in list(data)[:50]))


def check_prompt_length(prompt: str, max_chars: int) -> None:
    """Refuse a prompt longer than ``max_chars`` characters, before anything is sent.

    >>> try:
    ...     check_prompt_length("A fox" * 3, 10)
    ... except InfinityBlueValidationError as error:
    ...     print(error)
    Invalid generation request: 'prompt' is 15 characters long, over the limit of 10 (max_prompt_chars)
    """
    if len(prompt) > max_chars:
        raise InfinityBlueValidationError(
            "prompt", f"is {len(prompt)} characters long, over the limit of {max_chars} (max_prompt_chars)"
        )


def check_json(value: object, path: str, depth: int = 0) -> None:
    """Refuse anything in ``value`` that is not strict JSON: the error names its ``path`` and the problem.

    Allowed: None, bools, ints, finite floats, strings, lists (and tuples) and dicts with string keys.

    >>> def problem(value):
    ...     try:
    ...         check_json(value, "metadata")
    ...     except InfinityBlueValidationError as error:
    ...         return f"{error.field}: {error.problem}"
    >>> problem({"style": {"when": __import__("datetime").date(2026, 1, 1)}})
    'metadata.style.when: must be JSON (a string, number, bool, null, list or object), got a date'
    >>> problem({"scores": [1.0, float("nan")]})
    'metadata.scores[1]: must be a finite number, got nan'
    """
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InfinityBlueValidationError(path, f"must be a finite number, got {value!r}")
        return
    if depth >= MAX_METADATA_DEPTH:
        raise InfinityBlueValidationError(path, f"nests deeper than {MAX_METADATA_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InfinityBlueValidationError(
                    path, f"has the key {scrub(repr(key), limit=80)} ({type(key).__name__}): JSON keys must be strings"
                )
            check_json(item, f"{path}.{key[:80]}", depth + 1)
        return
    if isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_json(item, f"{path}[{index}]", depth + 1)
        return
    raise InfinityBlueValidationError(
        path, f"must be JSON (a string, number, bool, null, list or object), got a {type(value).__name__}"
    )


# Magic numbers of the image formats video models accept.
_IMAGE_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"WEBP", 8, "image/webp"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
)
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_DATA_URI = re.compile(r"^data:(image/[A-Za-z0-9.+-]+);base64,", re.IGNORECASE)


def sniff_image_type(head: bytes) -> str | None:
    """The MIME type of an image from its first bytes, or None if it is no image we know.

    >>> sniff_image_type(b"\\x89PNG\\r\\n\\x1a\\n...."), sniff_image_type(b"%PDF-1.7")
    ('image/png', None)
    """
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    for signature, offset, mime in _IMAGE_SIGNATURES:
        if signature != b"WEBP" and head[offset : offset + len(signature)] == signature:
            return mime
    return None


def encode_image(image: str, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> str:
    """What to send as ``image``: URLs and data URIs as given, a local file as a base64 data URI.

    Raises :class:`InfinityBlueValidationError` for a missing file, a directory, a file
    that is not an image or is larger than ``max_bytes``, and for non-http URLs.
    """
    if image.startswith(("http://", "https://")):
        return image
    if image.startswith("data:"):
        match = _DATA_URI.match(image)
        if not match:
            raise InfinityBlueValidationError(
                "image", "is a data URI but not a base64 image one (data:image/<type>;base64,...)"
            )
        if (len(image) - match.end()) * 3 // 4 > max_bytes:
            raise InfinityBlueValidationError("image", f"data URI holds more than {max_bytes} bytes")
        return image
    if _URL_SCHEME.match(image):
        raise InfinityBlueValidationError(
            "image", f"must be an http(s) URL, a data URI or a local file path, got a {image.split(':')[0]}:// URL"
        )
    path = Path(image).expanduser()
    if not path.exists():
        raise InfinityBlueValidationError("image", f"file {str(path)!r} does not exist")
    if not path.is_file():
        raise InfinityBlueValidationError("image", f"path {str(path)!r} is not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise InfinityBlueValidationError(
            "image", f"file {str(path)!r} is {size} bytes, over the {max_bytes}-byte limit"
        )
    content = path.read_bytes()
    mime = sniff_image_type(content[:16])
    if mime is None:
        raise InfinityBlueValidationError(
            "image", f"file {str(path)!r} is not a PNG, JPEG, GIF, WEBP, BMP or TIFF image"
        )
    return f"data:{mime};base64,{base64.b64encode(content).decode('ascii')}"


def describe_image(image: str | None) -> str | None:
    """A loggable stand-in for an image value: data URIs are shortened to their type and size."""
    if image is None:
        return None
    match = _DATA_URI.match(image)
    if match:
        return f"<{match.group(1)} data URI, {len(image) - match.end()} base64 chars>"
    return image if len(image) <= 200 else image[:200] + "…"


DEFAULT_MODEL = "kling-v2-5-turbo"
"""The model a request uses when neither it nor its connection's ``default_model`` extra names one."""


def resolve_model(*choices: tuple[object, str]) -> tuple[str, str]:
    """The first of ``choices`` (``(value, where it is from)`` pairs) that names a model, and where it is from.

    The operators pass the model they were given, then their connection's ``default_model``; with none
    named, :data:`DEFAULT_MODEL`. A None or blank value (a template that rendered to nothing, an empty
    extra) names none.

    >>> resolve_model(("veo_3_1", "the argument"), ("sora-2", "the connection"))
    ('veo_3_1', 'the argument')
    >>> resolve_model((" ", "the argument"), (None, "the connection"))
    ('kling-v2-5-turbo', "the provider's default")
    """
    for value, source in choices:
        if value is not None and not isinstance(value, str):
            raise InfinityBlueValidationError("model", f"must be a string, got {type(value).__name__}")
        if value is not None and value.strip():
            return value.strip(), source
    return DEFAULT_MODEL, "the provider's default"


@dataclass(frozen=True, repr=False)
class GenerationRequest:
    """A validated ``POST /v1/video/generations`` body. Invalid values raise at construction.

    Numbers may be given as strings (what Jinja templates render): ``"5"`` becomes ``5``.
    Fields left as None are not sent.

    >>> request = GenerationRequest(prompt="A red fox in snow", model="kling-v2-5-turbo", duration="5")
    >>> request.to_body()
    {'prompt': 'A red fox in snow', 'model': 'kling-v2-5-turbo', 'duration': 5}
    """

    prompt: str
    model: str
    image: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    fps: int | None = None
    seed: int | None = None
    n: int | None = None
    response_format: str | None = None
    user: str | None = None
    metadata: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are written once, here
        for name in ("prompt", "model"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InfinityBlueValidationError(name, f"must be a non-empty string, got {value!r}")
        for name in ("image", "response_format", "user"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise InfinityBlueValidationError(name, f"must be a string, got {type(value).__name__}")
        if self.image is not None and not self.image.strip():
            raise InfinityBlueValidationError("image", "must not be empty (leave it unset for text-to-video)")
        set_(self, "duration", _number("duration", self.duration, integer=False, minimum=0, exclusive=True))
        for name in ("width", "height", "fps"):
            set_(self, name, _number(name, getattr(self, name), integer=True, minimum=0, exclusive=True))
        set_(self, "n", _number("n", self.n, integer=True, minimum=1, exclusive=False))
        set_(self, "seed", _number("seed", self.seed, integer=True))
        if self.metadata is not None and not isinstance(self.metadata, dict):
            raise InfinityBlueValidationError(
                "metadata",
                f"must be a dict, got {type(self.metadata).__name__} "
                "(a templated dict renders to a string unless the DAG sets render_template_as_native_obj)",
            )
        if self.metadata is not None:
            check_json(self.metadata, "metadata")

    def to_body(self, *, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES) -> dict[str, Any]:
        """The JSON body to send; a local image file is read and encoded here."""
        body: dict[str, Any] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is not None:
                body[item.name] = value
        if self.image is not None:
            body["image"] = encode_image(self.image, max_bytes=max_image_bytes)
        return body

    def fingerprint(self) -> str:
        """A SHA-256 (hex) of the request as given, the same for the same fields in any process.

        It identifies a logical submission (an image path counts as given, not its bytes).

        >>> a = GenerationRequest(prompt="A fox", model="m", duration="5")
        >>> a.fingerprint() == GenerationRequest(prompt="A fox", model="m", duration=5).fingerprint()
        True
        """
        fields_given = {item.name: getattr(self, item.name) for item in fields(self)}
        canonical = json.dumps(fields_given, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()

    def __repr__(self) -> str:
        shown = []
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            if item.name == "image":
                value = describe_image(value)
            elif item.name == "prompt" and len(value) > 120:
                value = value[:120] + "…"
            shown.append(f"{item.name}={value!r}")
        return f"GenerationRequest({', '.join(shown)})"


def _number(name: str, value: object, *, integer: bool, minimum: float | None = None, exclusive: bool = True) -> Any:
    if value is None:
        return None
    kind = "an integer" if integer else "a number"
    parsed: float | int | None = None
    if isinstance(value, bool):
        parsed = None
    elif isinstance(value, int):
        parsed = value
    elif isinstance(value, float) and not integer and math.isfinite(value):
        parsed = int(value) if value.is_integer() else value
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            parsed = int(text)
        elif not integer and re.fullmatch(r"[+-]?(\d+\.\d*|\.\d+)", text):
            number = float(text)
            parsed = int(number) if number.is_integer() else number
    if parsed is None:
        raise InfinityBlueValidationError(name, f"must be {kind}, got {value!r}")
    if minimum is not None and (parsed <= minimum if exclusive else parsed < minimum):
        noun = kind.split()[1]
        wanted = f"a positive {noun}" if exclusive and minimum == 0 else f"{kind} of at least {minimum:g}"
        raise InfinityBlueValidationError(name, f"must be {wanted}, got {value!r}")
    return parsed
