"""The emulator's knobs: one frozen, validated value object shared by the CLI, Python and ``/_emulator/config``.

Nothing here imports aiohttp, so the pytest plugin can import it at collection time.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_infinityblue.emulator.tls import is_valid_server_name

if TYPE_CHECKING:
    from collections.abc import Mapping

SHAPES = ("documented", "wrapped")
# What a finished generation's video is: rendered at the shape it asked for (emulator/videos.py), or the sample.
VIDEO_SOURCES = ("rendered", "sample")
DEFAULT_FAIL_MARKER = "[content-policy]"
# Where the server listens, and whether it speaks TLS with which certificate, is decided once, when it starts.
STARTUP_ONLY_SETTINGS = frozenset({"host", "port", "tls", "tls_names", "tls_dir"})


class InvalidSettingError(ValueError):
    """A knob got a value it cannot take, or a name that is no knob. ``name`` says which.

    >>> try:
    ...     EmulatorSettings().with_knobs({"colour": "blue"})
    ... except InvalidSettingError as invalid:
    ...     print(invalid.name)
    colour
    """

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"{name!r} {problem}")


@dataclass(frozen=True)
class EmulatorSettings:
    """How the InfinityBlue emulator behaves. Invalid values raise :class:`InvalidSettingError`.

    Every field except the startup-only ones (``host``, ``port``, ``tls``, ``tls_names``,
    ``tls_dir``) can also be changed while the emulator runs (``POST /_emulator/config``).
    ``reject_submissions``, ``unavailable_polls`` and ``invisible_polls`` are countdowns:
    each request they affect lowers them by one.

    >>> settings = EmulatorSettings(generation_seconds=0.5, failure_rate=0.1, shape="wrapped")
    >>> settings.with_knobs({"failure_rate": 0}).failure_rate
    0.0
    >>> EmulatorSettings(shape="xml")
    Traceback (most recent call last):
    ...
    airflow_provider_infinityblue.emulator.settings.InvalidSettingError: 'shape' must be one of \
'documented', 'wrapped', got 'xml'
    >>> EmulatorSettings(tls=True, tls_names=["api.infinityblue.test"]).tls_names
    ('api.infinityblue.test',)
    """

    host: str = "127.0.0.1"
    port: int = 8089
    # None: any ``sk-`` key is accepted. Set: only this key is.
    api_key: str | None = field(default=None, repr=False)
    # A generation takes this long; with ``generation_seconds_max``, a uniform draw in between.
    generation_seconds: float = 2.0
    generation_seconds_max: float | None = None
    failure_rate: float = 0.0
    # A prompt containing this text fails with ``content_policy_violation``; "" turns it off.
    fail_marker: str = DEFAULT_FAIL_MARKER
    # Requests per second over the API routes (token bucket); None: unlimited.
    rate_limit: float | None = None
    # Share of status GETs answered 503 with an HTML page, as a failing proxy would.
    error_rate: float = 0.0
    shape: str = "documented"
    seed: int | None = None
    max_body_mb: float = 32.0
    reject_submissions: int = 0
    unavailable_polls: int = 0
    # The next N status GETs of a generation that exists answer as if it did not (404, or
    # task_not_exist when wrapped): a replica of an eventually consistent gateway that has not seen it yet.
    invisible_polls: int = 0
    # The answer to a submission comes this long after the generation was created (and billed): a
    # client that dies meanwhile has paid without learning the id.
    submission_answer_seconds: float = 0.0
    # HTTPS, with a certificate from a throwaway CA made at startup (emulator/tls.py), for
    # localhost, 127.0.0.1, ::1 and ``tls_names``; its files go to ``tls_dir`` (None: a new
    # temporary directory, kept after the emulator stops).
    tls: bool = False
    tls_names: tuple[str, ...] = ()
    tls_dir: Path | None = None
    # "rendered": each video has the length, size and frame rate its request asked for (within caps), when
    # ffmpeg is there; "sample": every video is the fixed 3 s 320x180 sample, byte for byte.
    video: str = "rendered"

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are written once, here
        if not isinstance(self.host, str) or not self.host.strip():
            raise InvalidSettingError("host", f"must be a host name or address, got {self.host!r}")
        set_(self, "port", _integer("port", self.port, minimum=0))
        if self.port > 65535:
            raise InvalidSettingError("port", f"must be at most 65535, got {self.port}")
        if self.api_key is not None and (not isinstance(self.api_key, str) or not self.api_key.strip()):
            raise InvalidSettingError("api_key", "must be a non-empty string, or None to accept any sk- key")
        set_(self, "generation_seconds", _number("generation_seconds", self.generation_seconds, minimum=0))
        if self.generation_seconds_max is not None:
            set_(self, "generation_seconds_max", _number("generation_seconds_max", self.generation_seconds_max))
            if self.generation_seconds_max < self.generation_seconds:
                raise InvalidSettingError(
                    "generation_seconds_max",
                    f"must be at least generation_seconds ({self.generation_seconds:g}), "
                    f"got {self.generation_seconds_max:g}",
                )
        for name in ("failure_rate", "error_rate"):
            value = _number(name, getattr(self, name), minimum=0)
            if value > 1:
                raise InvalidSettingError(name, f"must be a fraction between 0 and 1, got {value:g}")
            set_(self, name, value)
        if not isinstance(self.fail_marker, str):
            raise InvalidSettingError("fail_marker", f"must be a string, got {self.fail_marker!r}")
        if self.rate_limit is not None:
            set_(self, "rate_limit", _number("rate_limit", self.rate_limit, minimum=0, exclusive=True))
        if self.shape not in SHAPES:
            raise InvalidSettingError("shape", f"must be one of {', '.join(map(repr, SHAPES))}, got {self.shape!r}")
        if self.video not in VIDEO_SOURCES:
            raise InvalidSettingError(
                "video", f"must be one of {', '.join(map(repr, VIDEO_SOURCES))}, got {self.video!r}"
            )
        if self.seed is not None:
            set_(self, "seed", _integer("seed", self.seed))
        set_(self, "max_body_mb", _number("max_body_mb", self.max_body_mb, minimum=0, exclusive=True))
        set_(
            self,
            "submission_answer_seconds",
            _number("submission_answer_seconds", self.submission_answer_seconds, minimum=0),
        )
        for name in ("reject_submissions", "unavailable_polls", "invisible_polls"):
            set_(self, name, _integer(name, getattr(self, name), minimum=0))
        self._check_tls()

    def _check_tls(self) -> None:
        set_ = object.__setattr__
        if not isinstance(self.tls, bool):
            raise InvalidSettingError("tls", f"must be True or False, got {self.tls!r}")
        if isinstance(self.tls_names, str) or not isinstance(self.tls_names, (tuple, list)):
            raise InvalidSettingError("tls_names", f"must be a list of host names, got {self.tls_names!r}")
        # A tuple, so that the settings stay hashable and compare equal however the names were given.
        set_(self, "tls_names", tuple(self.tls_names))
        for name in self.tls_names:
            if not isinstance(name, str) or not is_valid_server_name(name):
                raise InvalidSettingError("tls_names", f"must hold DNS names or IP addresses, got {name!r}")
        if self.tls_dir is not None:
            if not isinstance(self.tls_dir, (str, Path)) or not str(self.tls_dir).strip():
                raise InvalidSettingError("tls_dir", f"must be a directory path, got {self.tls_dir!r}")
            set_(self, "tls_dir", Path(self.tls_dir))
        if not self.tls:
            # Without TLS they would be silently ignored: more likely a forgotten tls=True than intended.
            for name in ("tls_names", "tls_dir"):
                if getattr(self, name):
                    raise InvalidSettingError(name, "only applies with tls=True (--tls)")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def with_knobs(self, knobs: Mapping[str, object]) -> EmulatorSettings:
        """A copy with ``knobs`` changed; names that are not runtime knobs raise :class:`InvalidSettingError`."""
        for name in knobs:
            if name in STARTUP_ONLY_SETTINGS:
                raise InvalidSettingError(name, "is fixed once the emulator listens; restart it to change it")
            if name not in KNOB_NAMES:
                raise InvalidSettingError(name, f"is not a knob; knobs are: {', '.join(sorted(KNOB_NAMES))}")
        return replace(self, **knobs)  # type: ignore[arg-type]

    def knobs(self) -> dict[str, Any]:
        """The runtime knobs and their values; the API key only as whether one is required."""
        values = {name: value for name, value in asdict(self).items() if name in KNOB_NAMES and name != "api_key"}
        values["api_key_required"] = self.api_key is not None
        return values


KNOB_NAMES = frozenset(item.name for item in fields(EmulatorSettings)) - STARTUP_ONLY_SETTINGS


def _number(name: str, value: object, *, minimum: float | None = None, exclusive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidSettingError(name, f"must be a finite number, got {value!r}")
    if minimum is not None and (value <= minimum if exclusive else value < minimum):
        relation = "greater than" if exclusive else "at least"
        raise InvalidSettingError(name, f"must be {relation} {minimum:g}, got {value!r}")
    return float(value)


def _integer(name: str, value: object, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSettingError(name, f"must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidSettingError(name, f"must be at least {minimum}, got {value!r}")
    return value
