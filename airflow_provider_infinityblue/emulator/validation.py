"""What the API accepts as a ``POST /v1/video/generations`` body, checked the way the API documents it.

The emulator checks JSON types strictly, as a typed gateway decoding into fixed fields
would: ``"5"`` is not a number and ``1280.0`` is not an integer. A ``null`` optional
field counts as absent; unknown fields are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

_POSITIVE_INTEGER_FIELDS = ("width", "height", "fps", "n")
_STRING_FIELDS = ("image", "response_format", "user")


class InvalidGenerationRequest(ValueError):
    """A body the API would refuse with HTTP 400. ``param`` names the field at fault, if one is.

    ``code`` is ``missing_required_parameter``, ``invalid_type``, ``invalid_value`` or
    ``invalid_request_body``.

    >>> try:
    ...     validate_generation_request({"prompt": "A fox"})
    ... except InvalidGenerationRequest as invalid:
    ...     print(invalid.param, invalid.code)
    model missing_required_parameter
    """

    def __init__(self, message: str, *, code: str, param: str | None) -> None:
        self.message = message
        self.code = code
        self.param = param
        super().__init__(message)


@dataclass(frozen=True)
class AcceptedGenerationRequest:
    """The parts of a valid body the emulator acts on; ``body`` keeps all of it.

    >>> validate_generation_request({"model": "veo_3_1", "prompt": "A fox", "seed": 7}).body["seed"]
    7
    """

    model: str
    prompt: str
    body: dict[str, Any]


def validate_generation_request(payload: object) -> AcceptedGenerationRequest:
    """Check a decoded JSON body; raise :class:`InvalidGenerationRequest` for the first problem.

    >>> validate_generation_request({"model": "veo_3_1", "prompt": "A fox", "duration": 5}).model
    'veo_3_1'
    >>> validate_generation_request({"model": "veo_3_1", "prompt": "A fox", "width": "1280"})
    Traceback (most recent call last):
    ...
    airflow_provider_infinityblue.emulator.validation.InvalidGenerationRequest: Invalid type for 'width': \
expected an integer, but got a string instead.
    """
    if not isinstance(payload, dict):
        raise InvalidGenerationRequest(
            f"The request body must be a JSON object, but got {_json_type(payload)} instead.",
            code="invalid_request_body",
            param=None,
        )
    model = _required_string(payload, "model")
    prompt = _required_string(payload, "prompt")
    duration = payload.get("duration")
    if duration is not None:
        if not _is_number(duration):
            raise _wrong_type("duration", "a number", duration)
        if not math.isfinite(duration) or duration <= 0:
            raise _bad_value("duration", f"it must be a number of seconds greater than 0, got {duration!r}")
    for name in _POSITIVE_INTEGER_FIELDS:
        value = payload.get(name)
        if value is not None:
            if not _is_integer(value):
                raise _wrong_type(name, "an integer", value)
            if value < 1:
                raise _bad_value(name, f"it must be at least 1, got {value!r}")
    seed = payload.get("seed")
    if seed is not None and not _is_integer(seed):
        raise _wrong_type("seed", "an integer", seed)
    for name in _STRING_FIELDS:
        value = payload.get(name)
        if value is not None and not isinstance(value, str):
            raise _wrong_type(name, "a string", value)
    metadata = payload.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _wrong_type("metadata", "an object", metadata)
    return AcceptedGenerationRequest(model=model, prompt=prompt, body=payload)


def _required_string(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if value is None:
        raise InvalidGenerationRequest(
            f"Missing required parameter: '{name}'.", code="missing_required_parameter", param=name
        )
    if not isinstance(value, str):
        raise _wrong_type(name, "a string", value)
    if not value.strip():
        raise _bad_value(name, "it must not be empty")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _wrong_type(name: str, expected: str, value: object) -> InvalidGenerationRequest:
    return InvalidGenerationRequest(
        f"Invalid type for '{name}': expected {expected}, but got {_json_type(value)} instead.",
        code="invalid_type",
        param=name,
    )


def _bad_value(name: str, problem: str) -> InvalidGenerationRequest:
    return InvalidGenerationRequest(f"Invalid value for '{name}': {problem}.", code="invalid_value", param=name)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
