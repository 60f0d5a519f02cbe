"""A batch's input: rows from a list of dicts, or streamed from a JSONL or CSV file, each validated.

Every row holds the single operator's fields (``prompt``, ``model``, ``image``, ``duration``,
``width``, ``height``, ``fps``, ``seed``, ``metadata``, ``user``) and an optional ``key``, the
row's name in the manifest and in ``destination`` templates (default: the row's index). The
batch's ``defaults`` fill every field a row leaves out (in a CSV, an empty cell is left out). A row's
model is its own, else the one in ``defaults``, else the connection's ``default_model``, else
:data:`~airflow_provider_infinityblue.models.DEFAULT_MODEL` (a blank one names none).

>>> rows = validate_rows(
...     read_rows([{"prompt": "A fox"}, {"prompt": "", "key": "b"}, {"prompt": "An owl", "key": "c", "fps": 24}]),
...     defaults={"duration": 5},
... )
>>> [(row.index, row.key) for row in rows.valid], [(bad.index, bad.key) for bad in rows.invalid]
([(0, '0'), (2, 'c')], [(1, 'b')])
>>> rows.invalid[0].problem
"'prompt' must be a non-empty string, got ''"
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_infinityblue.batch.storage import local_path, storage_path
from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError, InfinityBlueValidationError
from airflow_provider_infinityblue.models import (
    DEFAULT_MAX_PROMPT_CHARS,
    GenerationRequest,
    check_prompt_length,
    resolve_model,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

REQUEST_FIELDS = ("prompt", "model", "image", "duration", "width", "height", "fps", "seed", "metadata", "user")
"""The fields a row may set: the single operator's."""
ROW_FIELDS = (*REQUEST_FIELDS, "key")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)


@dataclass(frozen=True)
class RawRow:
    """One input row as read, before validation; ``problem`` says why it could not even be read."""

    index: int
    line: int | None
    values: dict[str, Any]
    problem: str | None = None


@dataclass(frozen=True)
class BatchRow:
    """A valid row: its index in the input, its key, the request it sends and that request's fingerprint."""

    index: int
    key: str
    request: GenerationRequest
    fingerprint: str


@dataclass(frozen=True)
class InvalidRow:
    """A row that cannot be sent, and why."""

    index: int
    key: str
    line: int | None
    problem: str

    def describe(self) -> str:
        where = f"row {self.index}" + (f" (line {self.line})" if self.line is not None else "")
        return f"{where}: {self.problem}"


@dataclass
class ValidatedRows:
    """Every row of the input, valid or not, in input order."""

    valid: list[BatchRow] = field(default_factory=list)
    invalid: list[InvalidRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.valid) + len(self.invalid)

    def describe_invalid(self, limit: int = 20) -> str:
        shown = "\n".join(f"  - {bad.describe()}" for bad in self.invalid[:limit])
        more = len(self.invalid) - limit
        return shown + (f"\n  - ... and {more} more" if more > 0 else "")


def read_rows(
    requests: Iterable[Any] | None = None, *, requests_path: str | None = None, conn_id: str | None = None
) -> Iterator[RawRow]:
    """The input rows, from ``requests`` (a list of dicts) or streamed from ``requests_path``.

    ``requests_path`` is a JSONL (``.jsonl``, ``.ndjson``: one JSON object per line) or CSV (``.csv``,
    with a header line) file: a local path, a ``file://`` URL or any URL Airflow's ``ObjectStoragePath``
    reads (``s3://``, ``gs://``, ...) with ``conn_id``.
    """
    if (requests is None) == (requests_path is None):
        raise InfinityBlueConfigurationError("Give exactly one of requests (a list of dicts) or requests_path")
    if requests is not None:
        if isinstance(requests, (str, bytes, dict)):
            raise InfinityBlueConfigurationError(
                f"requests must be a list of dicts, got {type(requests).__name__} (a templated list renders to a "
                "string unless the DAG sets render_template_as_native_obj=True; or use requests_path)"
            )
        for index, values in enumerate(requests):
            if isinstance(values, dict):
                yield RawRow(index, None, dict(values))
            else:
                yield RawRow(index, None, {}, f"a row must be a dict, got {type(values).__name__}")
        return
    assert requests_path is not None
    suffix = Path(urlsplit(requests_path).path).suffix.lower()
    if suffix not in (*JSONL_SUFFIXES, *CSV_SUFFIXES):
        raise InfinityBlueConfigurationError(
            f"requests_path must name a .jsonl, .ndjson or .csv file, got {requests_path!r}"
        )
    with _open_text(requests_path, conn_id) as text:
        # Line by line through readline: Airflow 3.0 wraps object storage files in a class that is not iterable.
        lines = iter(text.readline, "")
        yield from (_jsonl_rows(lines) if suffix in JSONL_SUFFIXES else _csv_rows(lines))


def _open_text(location: str, conn_id: str | None) -> IO[str]:
    """``location`` opened for reading as UTF-8 text: a local path, a ``file://`` URL, or an object storage URL."""
    try:
        local = local_path(location)
        if local is not None:
            return local.open(encoding="utf-8", newline="")  # newline="": the csv module reads line ends itself
        return storage_path(location, conn_id).open("r", encoding="utf-8")  # type: ignore[no-any-return]
    except (OSError, ValueError, ImportError) as error:
        raise InfinityBlueConfigurationError(f"Cannot open {location}: {error}") from error


def _jsonl_rows(text: Iterable[str]) -> Iterator[RawRow]:
    index = 0
    for line_number, line in enumerate(text, start=1):
        if not line.strip():
            continue
        try:
            values = json.loads(line)
        except json.JSONDecodeError as error:
            yield RawRow(index, line_number, {}, f"not JSON: {error.msg} at column {error.colno}")
        else:
            if isinstance(values, dict):
                yield RawRow(index, line_number, values)
            else:
                yield RawRow(index, line_number, {}, f"a line must hold a JSON object, got {type(values).__name__}")
        index += 1


def _csv_rows(text: Iterable[str]) -> Iterator[RawRow]:
    reader = csv.DictReader(text)
    for index, record in enumerate(reader):
        extra = record.pop(None, None)  # type: ignore[call-overload]
        values = {name: value for name, value in record.items() if value not in ("", None)}
        columns = len(reader.fieldnames or ())
        problem = f"{columns + len(extra)} cells where the header has {columns} columns" if extra else None
        if problem is None and isinstance(values.get("metadata"), str):
            try:
                values["metadata"] = json.loads(values["metadata"])
            except json.JSONDecodeError as error:
                problem = f"'metadata' must be a JSON object, got {values['metadata'][:80]!r} ({error.msg})"
        yield RawRow(index, reader.line_num, values, problem)


def validate_rows(
    rows: Iterable[RawRow],
    *,
    defaults: Mapping[str, Any] | None = None,
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS,
    default_model: str | None = None,
) -> ValidatedRows:
    """Every row checked the way the single operator checks its request, before anything is sent.

    A row is invalid when it cannot be read, names a field the API request does not have, fails
    the request's own checks (``metadata`` strict JSON, the prompt at most ``max_prompt_chars``
    characters: the connection's), or reuses another row's ``key``. ``default_model`` is the connection's
    ``default_model`` extra, for the rows that name no model, in ``defaults`` either.
    """
    defaults = dict(defaults or {})
    unknown = sorted(set(defaults) - set(REQUEST_FIELDS))
    if unknown:
        raise InfinityBlueConfigurationError(f"defaults may set {', '.join(REQUEST_FIELDS)}; not {', '.join(unknown)}")
    result = ValidatedRows()
    keys: dict[str, int] = {}
    for raw in rows:
        key = str(raw.values.get("key", raw.index))
        problem = raw.problem or _unknown_fields(raw.values)
        request: GenerationRequest | None = None
        fields = {**defaults, **{k: v for k, v in raw.values.items() if k != "key"}}
        if problem is None and "prompt" not in fields:
            problem = "'prompt' is required (in the row, or in defaults)"
        if problem is None:
            try:
                fields["model"], _ = resolve_model(
                    (raw.values.get("model"), "row"), (defaults.get("model"), "defaults"), (default_model, "connection")
                )
                request = GenerationRequest(**fields)
                check_prompt_length(request.prompt, max_prompt_chars)
            except InfinityBlueValidationError as error:
                problem = f"{error.field!r} {error.problem}"
        if problem is None and key in keys:
            problem = f"key {key!r} is already the key of row {keys[key]}"
        if problem is not None or request is None:
            result.invalid.append(InvalidRow(raw.index, key, raw.line, problem or "invalid"))
            continue
        keys[key] = raw.index
        result.valid.append(BatchRow(raw.index, key, request, request.fingerprint()))
    return result


def _unknown_fields(values: Mapping[str, Any]) -> str | None:
    unknown = sorted(str(name) for name in values if name not in ROW_FIELDS)
    if not unknown:
        return None
    names = ", ".join(map(repr, unknown))
    return f"unknown field{'s' if len(unknown) > 1 else ''} {names} (a row may set {', '.join(ROW_FIELDS)})"
