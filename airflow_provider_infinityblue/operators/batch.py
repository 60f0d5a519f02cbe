"""The operator that generates a whole prompt dataset from one task instance."""

from __future__ import annotations

import asyncio
import math
import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_infinityblue.batch.ledger import BatchLedger
from airflow_provider_infinityblue.batch.manifest import (
    FAILED_STATUSES,
    ManifestEntry,
    read_manifest,
    utc_iso,
    write_manifest,
)
from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAmbiguousSubmitError,
    InfinityBlueAuthenticationError,
    InfinityBlueBatchError,
    InfinityBlueConfigurationError,
    InfinityBlueError,
    InfinityBlueInvalidRequestError,
    InfinityBluePermissionError,
    InfinityBlueValidationError,
)
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from airflow_provider_infinityblue.models import resolve_model
from airflow_provider_infinityblue.operators.download import check_address_allowance, download_connection_settings
from airflow_provider_infinityblue.pacing import DEFAULT_POLLS_PER_SECOND, RequestPace
from airflow_provider_infinityblue.version_compat import conf, default_deferrable
from airflow_provider_infinityblue.wait import (
    DEFAULT_NOT_FOUND_GRACE,
    POLL_JITTER,
    GenerationOutcome,
    check_poll_interval,
    check_positive_seconds,
    check_seconds,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from airflow_provider_infinityblue.batch.rows import BatchRow, ValidatedRows
    from airflow_provider_infinityblue.triggers.batch import InfinityBlueBatchTrigger

ON_INVALID_ROW = ("fail", "skip")
# How a wait's outcome is written in the manifest.
_ROW_STATUS = {"success": "succeeded", "failed": "failed", "cancelled": "cancelled", "timeout": "timeout"}
# A refill of 25 to 100 rows goes out in 1 to 4 s; 429s are handled (the rest waits for the next wave).
DEFAULT_SUBMISSIONS_PER_SECOND = 25.0
# When a submission is refused for a reason no single row causes (429, the API unreachable) and nothing is
# in flight, the worker waits and tries again this many times before it fails the try.
_SUBMIT_ATTEMPTS = 5


class InfinityBlueGenerateVideoBatchOperator(BaseOperator):
    """Generate a video for every row of a prompt dataset from one task instance, in waves.

    The rows come from ``requests`` (a list of dicts; templated, so an ``XComArg`` works) or from
    ``requests_path`` (a JSONL or CSV file, local or on object storage, streamed row by row). Each
    row holds the fields of :class:`InfinityBlueGenerateVideoOperator` (``prompt``, ``model``,
    ``image``, ``duration``, ``width``, ``height``, ``fps``, ``seed``, ``metadata``, ``user``) and an
    optional ``key``; ``defaults`` fill what a row leaves out. A row that names no model, in
    ``defaults`` either, uses the connection's ``default_model`` extra, else ``kling-v2-5-turbo``;
    the manifest records each row's. Every row is validated before the
    first POST: with ``on_invalid_row="fail"`` (the default) one bad row fails the task and lists
    every bad row with its number, and nothing is sent; with ``"skip"`` bad rows are ``invalid`` in
    the manifest.

    Waves: the worker submits rows until ``max_in_flight`` generations are at the API (at most
    ``max_submissions_per_second``), writes the manifest, and defers to one
    :class:`~airflow_provider_infinityblue.triggers.batch.InfinityBlueBatchTrigger`, which polls
    every in-flight row through the provider's wait engine. When ``refill_at`` rows have finished
    (a quarter of ``max_in_flight`` by default) the worker resumes, records them, submits the next
    rows and defers again, until every row has finished. With ``deferrable=False`` the same waves
    run on the worker.

    Never paying twice per row: on Airflow 3.3+ each row's submission is recorded in the task
    state store (one key per row: a ``submitting`` marker with the request's fingerprint before
    its POST, the generation id right after), so a retry re-attaches to every row already
    submitted. A row whose POST never recorded its answer (a worker killed mid-POST) is ``failed``
    with an error that says it may exist, and is not sent again. With ``skip_existing=True`` a new
    run reads the manifest already at ``manifest_path`` and skips every row whose request
    (fingerprint) already succeeded there.

    The manifest at ``manifest_path`` (JSONL, one object per input row: ``row``, ``key``,
    ``fingerprint``, ``generation_id``, ``status``, ``video_url``, ``error``, ``submitted_at``,
    ``finished_at``, ``model``, and with ``destination`` also ``destination``, ``size_bytes``, ``sha256``) is
    rewritten atomically after every wave. The return value is a summary: ``{"total",
    "succeeded", "failed", "skipped", "invalid", "manifest_path"}``. ``failed`` counts rows that
    ended ``failed``, ``cancelled`` or ``timeout``; up to ``max_failed_rows`` of them (a count, or a
    float below 1 for a fraction of the rows) the task succeeds; past it, nothing new is submitted,
    and the task fails once the rows in flight have finished, naming the first failures.

    Example::

        from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueGenerateVideoBatchOperator

        backfill = InfinityBlueGenerateVideoBatchOperator(
            task_id="backfill",
            requests_path="s3://my-bucket/prompts/{{ ds }}.jsonl",  # {"key": "fox", "prompt": "A red fox"} per line
            defaults={"model": "kling-v2-5-turbo", "duration": 5},
            manifest_path="s3://my-bucket/manifests/{{ ds }}.jsonl",
            destination="s3://my-bucket/videos/{{ ds }}/{key}.mp4",
            max_in_flight=100,
            max_failed_rows=0.01,
            deferrable=True,
        )

    :param requests: the rows, a list of dicts (templated).
    :param requests_path: or a ``.jsonl``/``.ndjson``/``.csv`` file: a path or an object storage URL
        (templated), read with ``requests_conn_id``.
    :param defaults: field values for every row that leaves them out (templated).
    :param manifest_path: where the manifest goes: a local path or an object storage URL (templated),
        written with ``manifest_conn_id``.
    :param max_in_flight: the most generations this task has at the API at once (templated: a
        template such as ``"{{ params.max_in_flight }}"`` must render to a positive integer).
    :param max_submissions_per_second: the most POSTs per second (default 25, the trigger's GET rate).
        The worker POSTs only between waits, so this should be well above ``max_in_flight`` divided by
        a generation's duration: a wave's refill then takes a moment, not the length of a generation.
    :param destination: optional per-row target of each finished video (templated; then formatted
        with the row's ``key``, ``row`` and ``generation_id``: ``s3://bucket/videos/{key}.mp4``),
        saved with the download engine, at most ``max_concurrent_downloads`` at a time. Those
        downloads reach the addresses :class:`InfinityBlueDownloadVideoOperator`'s do: public ones,
        the origin of ``infinityblue_conn_id``'s base URL, and what ``allowed_hosts`` and
        ``allow_private_addresses`` allow, given here or as extras of that connection.
    :param allowed_hosts: video hosts the downloads may reach although their address is not
        public, added to the connection's extra (as for :class:`InfinityBlueDownloadVideoOperator`).
    :param allow_private_addresses: ``True`` lets the downloads connect to any address; ``None``
        leaves it to the connection's extra.
    :param skip_existing: skip rows that already succeeded in the manifest at ``manifest_path``.
    :param max_failed_rows: how many failed rows the task tolerates (int), or which fraction of the
        rows (float below 1). Default 0.
    :param on_invalid_row: ``"fail"`` or ``"skip"``.
    :param infinityblue_conn_id: the Airflow connection to use.
    :param deferrable: wait in the triggerer between waves.
    :param poll_interval: seconds between looks at one row (at least 1).
    :param timeout: how long one row may take from its submission (seconds or a ``timedelta``).
    :param not_found_grace: seconds after a row's submission during which a 404 means "not visible yet".
    :param max_polls_per_second: the trigger's request rate.
    :param refill_at: wake the worker for the next wave once this many rows have finished
        (default: a quarter of ``max_in_flight``).
    :param refill_window: or this many seconds after the first row finished (default: three times
        ``poll_interval``, at least 15 s).
    :param min_wave_seconds: the shortest a deferred wave lasts before the worker is woken again
        (default: ``[workers] min_heartbeat_interval`` + 5 s, see :func:`resume_lag`; lower it only
        where Airflow runs triggers inline, as ``dag.test()`` does).
    :param durable: record each row's submission in the task state store (Airflow 3.3+).
    """

    template_fields: Sequence[str] = (
        "requests",
        "requests_path",
        "defaults",
        "manifest_path",
        "destination",
        "max_in_flight",
        "requests_conn_id",
        "manifest_conn_id",
        "destination_conn_id",
    )
    template_fields_renderers = {"requests": "json", "defaults": "json"}
    ui_color = "#1e3a8a"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        manifest_path: str,
        requests: list[dict[str, Any]] | str | None = None,
        requests_path: str | None = None,
        defaults: dict[str, Any] | None = None,
        max_in_flight: int | str = 50,
        max_submissions_per_second: float = DEFAULT_SUBMISSIONS_PER_SECOND,
        destination: str | None = None,
        skip_existing: bool = False,
        max_failed_rows: int | float = 0,
        on_invalid_row: str = "fail",
        infinityblue_conn_id: str = InfinityBlueHook.default_conn_name,
        deferrable: bool = default_deferrable(),
        poll_interval: float = 10.0,
        timeout: float | timedelta = 3600.0,
        not_found_grace: float | timedelta = DEFAULT_NOT_FOUND_GRACE,
        max_polls_per_second: float = DEFAULT_POLLS_PER_SECOND,
        refill_at: int | None = None,
        refill_window: float | None = None,
        requests_conn_id: str | None = None,
        manifest_conn_id: str | None = None,
        destination_conn_id: str | None = None,
        max_concurrent_downloads: int = 4,
        allowed_hosts: Sequence[str] | str | None = None,
        allow_private_addresses: bool | None = None,
        min_wave_seconds: float | None = None,
        durable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (requests is None) == (requests_path is None):
            raise ValueError(f"{self.task_id}: give exactly one of requests or requests_path")
        self.requests = requests
        self.requests_path = requests_path
        self.defaults = defaults
        self.manifest_path = manifest_path
        self.destination = destination
        self.skip_existing = skip_existing
        self.infinityblue_conn_id = infinityblue_conn_id
        self.deferrable = deferrable
        self.requests_conn_id = requests_conn_id
        self.manifest_conn_id = manifest_conn_id
        self.destination_conn_id = destination_conn_id
        self.allowed_hosts = allowed_hosts
        self.allow_private_addresses = allow_private_addresses
        self.durable = durable
        try:
            check_address_allowance(allowed_hosts, allow_private_addresses)
            # A template ("{{ params.max_in_flight }}") is checked once it is rendered, on the worker.
            self.max_in_flight: int | str = (
                max_in_flight if _is_template(max_in_flight) else _positive_int(max_in_flight, "max_in_flight")
            )
            self.max_concurrent_downloads = _positive_int(max_concurrent_downloads, "max_concurrent_downloads")
            self.max_submissions_per_second = check_positive_seconds(
                max_submissions_per_second, "max_submissions_per_second"
            )
            self.max_polls_per_second = check_positive_seconds(max_polls_per_second, "max_polls_per_second")
            self.poll_interval = check_poll_interval(poll_interval)
            self.timeout = check_positive_seconds(timeout, "timeout")
            self.not_found_grace = check_positive_seconds(not_found_grace, "not_found_grace")
            self._refill_at = None if refill_at is None else _positive_int(refill_at, "refill_at")
            self.refill_window = (
                max(15.0, 3 * self.poll_interval)
                if refill_window is None
                else check_positive_seconds(refill_window, "refill_window")
            )
            self.max_failed_rows = _failure_budget(max_failed_rows)
            self.min_wave_seconds = (
                resume_lag()
                if min_wave_seconds is None
                else check_seconds(min_wave_seconds, "min_wave_seconds", minimum=0)
            )
        except ValueError as error:
            raise ValueError(f"{self.task_id}: {error}") from None
        if on_invalid_row not in ON_INVALID_ROW:
            raise ValueError(f"{self.task_id}: on_invalid_row must be one of {ON_INVALID_ROW}, got {on_invalid_row!r}")
        self.on_invalid_row = on_invalid_row

    @property
    def in_flight_cap(self) -> int:
        """``max_in_flight`` as a number (rendered from its template, when it was one)."""
        value = self.max_in_flight
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise InfinityBlueConfigurationError(
                    f"{self.task_id}: max_in_flight must render to a positive integer, got {value!r}"
                ) from None
        try:
            return _positive_int(value, "max_in_flight")
        except ValueError as error:
            raise InfinityBlueConfigurationError(f"{self.task_id}: {error}") from None

    @property
    def refill_at(self) -> int:
        return max(1, self.in_flight_cap // 4) if self._refill_at is None else self._refill_at

    @cached_property
    def hook(self) -> InfinityBlueHook:
        return InfinityBlueHook(infinityblue_conn_id=self.infinityblue_conn_id)

    # -- entry points ---------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            rows = self._rows()
            ledger = self._ledger(context)
            if not ledger.durable and self.durable:
                self.log.warning(
                    "This Airflow has no task state store (it needs 3.3+): a retry of this task submits every "
                    "unfinished row anew instead of re-attaching to it."
                )
            entries, in_flight = self._start(rows, ledger)
            return self._waves(context, rows, ledger, entries, in_flight, finished=[])
        finally:
            self.hook.close()

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, manifest_sha256: str | None = None
    ) -> dict[str, Any]:
        """Called on the worker with the trigger's event: record the finished rows, submit the next wave."""
        if not (isinstance(event, dict) and isinstance(event.get("finished"), list)):
            raise InfinityBlueBatchError(f"Expected an InfinityBlue batch trigger event, got {event!r}")
        try:
            rows = self._rows()
            entries = read_manifest(
                self.manifest_path, conn_id=self.manifest_conn_id or None, expect_sha256=manifest_sha256
            )
            if entries is None:
                raise InfinityBlueBatchError(
                    f"The batch manifest at {self.manifest_path} changed while the batch ran (another task writes "
                    "there?). Stopping; a retry resumes from what each row's submission recorded."
                )
            in_flight = [dict(values) for values in event.get("in_flight") or []]
            ledger = self._ledger(context)
            return self._waves(context, rows, ledger, entries, in_flight, finished=event["finished"])
        finally:
            self.hook.close()

    # -- the waves ------------------------------------------------------------------------------

    def _waves(
        self,
        context: Context,
        rows: ValidatedRows,
        ledger: BatchLedger,
        entries: dict[int, ManifestEntry],
        in_flight: list[dict[str, Any]],
        finished: list[dict[str, Any]],
    ) -> dict[str, Any]:
        by_index = {row.index: row for row in rows.valid}
        while True:
            self._record_finished(entries, finished)
            self._save_videos(context, entries, [values["row"] for values in finished])
            over_budget = self._failed(entries) > self._allowed_failures(rows.total)
            stop = None
            if not over_budget:
                submitted, stop = self._submit(
                    entries, by_index, ledger, slots=self.in_flight_cap - len(in_flight), waiting=bool(in_flight)
                )
                in_flight += submitted
            sha256 = self._write_manifest(entries, ledger)
            if stop is not None:
                raise stop
            if not in_flight:
                return self._finish(entries, rows)
            trigger = self._trigger(in_flight, more_to_submit=not over_budget and self._pending(entries) > 0)
            self.log.info(
                "Wave: %d in flight, %d finished, %d to submit; waiting %s",
                len(in_flight),
                sum(entry.finished for entry in entries.values()),
                self._pending(entries),
                "in the triggerer" if self.deferrable else "on the worker",
            )
            if self.deferrable:
                from airflow_provider_infinityblue.triggers.infinityblue import DEFERRAL_GRACE

                self.defer(
                    trigger=trigger,
                    method_name="execute_complete",
                    kwargs={"manifest_sha256": sha256},
                    timeout=timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
                )
            event = asyncio.run(_first_event(trigger))
            finished, in_flight = event["finished"], [dict(values) for values in event["in_flight"]]

    def _start(self, rows: ValidatedRows, ledger: BatchLedger) -> tuple[dict[int, ManifestEntry], list[dict[str, Any]]]:
        """Every row's entry at the start of a try, and the rows an earlier try left in flight."""
        if rows.invalid:
            if self.on_invalid_row == "fail":
                raise InfinityBlueBatchError(
                    f"{len(rows.invalid)} of {rows.total} rows are invalid; nothing was sent "
                    f'(on_invalid_row="skip" sends the valid rows):\n{rows.describe_invalid()}'
                )
            self.log.warning("Skipping %d invalid rows:\n%s", len(rows.invalid), rows.describe_invalid())
        entries = {
            bad.index: ManifestEntry(bad.index, bad.key, status="invalid", error=bad.problem) for bad in rows.invalid
        }
        for row in rows.valid:
            entries[row.index] = ManifestEntry(row.index, row.key, fingerprint=row.fingerprint, model=row.request.model)
        earlier = self._earlier_manifest(ledger)
        for row in rows.valid:
            entry = earlier.get(row.index) if earlier else None
            if entry is not None and entry.finished and entry.fingerprint == row.fingerprint:
                entries[row.index] = entry
        if self.skip_existing:
            self._skip_existing(rows, entries)
        return entries, self._reattach(rows, entries, ledger)

    def _earlier_manifest(self, ledger: BatchLedger) -> dict[int, ManifestEntry] | None:
        """The manifest an earlier try of this task wrote, when it is still the one it wrote."""
        sha256 = ledger.manifest_sha256()
        if sha256 is None:
            return None
        return read_manifest(self.manifest_path, conn_id=self.manifest_conn_id or None, expect_sha256=sha256)

    def _skip_existing(self, rows: ValidatedRows, entries: dict[int, ManifestEntry]) -> None:
        previous = read_manifest(self.manifest_path, conn_id=self.manifest_conn_id or None) or {}
        done = {
            entry.fingerprint: entry
            for entry in previous.values()
            if entry.status in ("succeeded", "skipped") and entry.video_url and entry.fingerprint
        }
        skipped = 0
        for row in rows.valid:
            before = done.get(row.fingerprint)
            if before is not None and not entries[row.index].finished:
                entries[row.index] = ManifestEntry(
                    row.index, row.key, row.fingerprint, before.generation_id, "skipped", before.video_url,
                    None, before.submitted_at, before.finished_at, before.destination, before.size_bytes,
                    before.sha256, before.model,
                )  # fmt: skip
                skipped += 1
        self.log.info("skip_existing: %d rows already succeeded in %s", skipped, self.manifest_path)

    def _reattach(
        self, rows: ValidatedRows, entries: dict[int, ManifestEntry], ledger: BatchLedger
    ) -> list[dict[str, Any]]:
        """Re-attach to every row an earlier try submitted; rows are submitted in order, so stop at the first gap."""
        if not ledger.durable:
            return []
        in_flight: list[dict[str, Any]] = []
        unconfirmed = 0
        for row in rows.valid:
            entry = entries[row.index]
            if entry.finished:
                continue
            record = ledger.row(row.index)
            if record is None:
                break
            if record.get("fingerprint") != row.fingerprint:
                raise InfinityBlueBatchError(
                    f"Row {row.index} ({row.key!r}) is not the request an earlier try of this task submitted for it: "
                    "the input changed between tries. Clear the task's state, or run the changed input as a new run."
                )
            state = record.get("state")
            if state == "submitted":
                generation_id, submitted_at = str(record["generation_id"]), float(record["submitted_at"])
                entry.generation_id, entry.status, entry.submitted_at = generation_id, "running", utc_iso(submitted_at)
                in_flight.append(
                    {
                        "row": row.index,
                        "generation_id": generation_id,
                        "submitted_at": submitted_at,
                        "next_look_at": time.time() + random.uniform(0, POLL_JITTER * self.poll_interval),
                    }
                )
            elif state == "refused":
                self._fail(entry, str(record.get("error") or "the API refused the request"))
            else:  # "submitting": the worker died between the POST and the record of its answer
                started = datetime.fromtimestamp(float(record.get("started_at") or 0), tz=UTC)
                error = InfinityBlueAmbiguousSubmitError.unconfirmed(
                    started_at=started.isoformat(timespec="seconds"), fingerprint=row.fingerprint
                )
                self._fail(entry, str(error).split(" Check the InfinityBlue console")[0])
                unconfirmed += 1
        if in_flight or unconfirmed:
            self.log.warning(
                "Re-attached to %d rows an earlier try submitted (not sent again); %d rows whose submission never "
                "recorded its answer are marked failed, not sent again.",
                len(in_flight),
                unconfirmed,
            )
        return in_flight

    def _submit(
        self,
        entries: dict[int, ManifestEntry],
        by_index: dict[int, BatchRow],
        ledger: BatchLedger,
        *,
        slots: int,
        waiting: bool,
    ) -> tuple[list[dict[str, Any]], InfinityBlueError | None]:
        """POST the next pending rows, in input order, into ``slots`` free places at the API.

        Returns the rows submitted, and the refusal that ends the try (a bad key), which the caller raises
        once the manifest records the rows already in flight.
        """
        pending = sorted(index for index, entry in entries.items() if entry.status == "pending")
        pace = RequestPace(self.max_submissions_per_second)
        submitted: list[dict[str, Any]] = []
        stop: InfinityBlueError | None = None
        attempts = 0
        position = 0
        while position < len(pending) and len(submitted) < slots:
            row, entry = by_index[pending[position]], entries[pending[position]]
            pace.wait()
            ledger.submitting(row.index, row.fingerprint)  # before the POST: a worker killed mid-POST leaves it
            try:
                generation_id = self.hook.submit_generation(row.request)
            except InfinityBlueAmbiguousSubmitError as error:  # may exist, may be billed: the marker stays
                self._fail(entry, str(error))
            except (InfinityBlueInvalidRequestError, InfinityBlueValidationError) as error:  # this row's fault
                ledger.refused(row.index, row.fingerprint, str(error))
                self._fail(entry, str(error))
            except (
                InfinityBlueAuthenticationError,
                InfinityBluePermissionError,
                InfinityBlueConfigurationError,
            ) as error:
                ledger.forget(row.index)  # refused before any generation was made: no row is at fault
                stop = error
                break
            except InfinityBlueError as error:  # provably not taken (429, the API unreachable): try again later
                ledger.forget(row.index)
                if waiting or submitted:
                    self.log.warning("Submissions paused until the next wave: %s", error)
                    break
                attempts += 1
                if attempts >= _SUBMIT_ATTEMPTS:
                    raise
                delay = getattr(error, "retry_after", None) or self.hook.settings.retry.backoff(attempts)
                self.log.warning("Nothing in flight and the API refused a submission (%s); again in %.0f s", error,
                                 delay)  # fmt: skip
                time.sleep(delay)
                continue
            else:
                submitted_at = time.time()
                ledger.submitted(row.index, row.fingerprint, generation_id, submitted_at)
                entry.generation_id, entry.status, entry.submitted_at = generation_id, "running", utc_iso(submitted_at)
                submitted.append({"row": row.index, "generation_id": generation_id, "submitted_at": submitted_at})
            position += 1
            if self._failed(entries) > self._allowed_failures(len(entries)):
                break
        if submitted:
            self.log.info(
                "Submitted %d rows (rows %d to %d)", len(submitted), submitted[0]["row"], submitted[-1]["row"]
            )
        return submitted, stop

    def _record_finished(self, entries: dict[int, ManifestEntry], finished: list[dict[str, Any]]) -> None:
        now = utc_iso(time.time())
        for values in finished:
            entry = entries[int(values["row"])]
            outcome = GenerationOutcome.from_event({key: value for key, value in values.items() if key != "row"})
            entry.generation_id, entry.finished_at = outcome.generation_id, now
            if outcome.status == "success" and outcome.video_url:
                entry.status, entry.video_url, entry.error = "succeeded", outcome.video_url, None
            else:
                entry.status, entry.error = _ROW_STATUS.get(outcome.status, "failed"), outcome.message  # type: ignore[assignment]

    def _save_videos(self, context: Context, entries: dict[int, ManifestEntry], indexes: list[int]) -> None:
        """Stream each newly succeeded row's video to its ``destination``, a few at a time."""
        to_save = [entries[index] for index in indexes if entries[index].status == "succeeded"]
        if not self.destination or not to_save:
            return
        from airflow_provider_infinityblue.download import (  # loaded only by batches that save
            DownloadSettings,
            download_video,
        )

        # The connection's own origin, and what its extras allow: as for the download operator.
        policy, network = download_connection_settings(
            self.infinityblue_conn_id,
            allowed_hosts=self.allowed_hosts,
            allow_private_addresses=self.allow_private_addresses,
        )
        settings = DownloadSettings(address_policy=policy, network=network)

        def save(entry: ManifestEntry) -> None:
            target = self.destination.format(key=entry.key, row=entry.row, generation_id=entry.generation_id)  # type: ignore[union-attr]
            try:
                video = download_video(
                    entry.video_url,  # type: ignore[arg-type]
                    target,
                    destination_conn_id=self.destination_conn_id or None,
                    settings=settings,
                    logger=self.log,
                )
            except InfinityBlueError as error:
                self._fail(entry, f"The video was generated but could not be saved to {target}: {error}")
                return
            entry.destination, entry.size_bytes, entry.sha256 = video.destination, video.size_bytes, video.sha256

        with ThreadPoolExecutor(
            max_workers=self.max_concurrent_downloads, thread_name_prefix="infinityblue-save"
        ) as pool:
            list(pool.map(save, to_save))

    def _write_manifest(self, entries: dict[int, ManifestEntry], ledger: BatchLedger) -> str:
        sha256 = write_manifest(self.manifest_path, entries.values(), conn_id=self.manifest_conn_id or None)
        ledger.record_manifest(sha256)
        return sha256

    def _trigger(self, in_flight: list[dict[str, Any]], *, more_to_submit: bool) -> InfinityBlueBatchTrigger:
        # Imported here, as in the other operators: the trigger module loads Airflow's trigger base classes.
        from airflow_provider_infinityblue.triggers.batch import InfinityBlueBatchTrigger

        return InfinityBlueBatchTrigger(
            in_flight=in_flight,
            infinityblue_conn_id=self.infinityblue_conn_id,
            poll_interval=self.poll_interval,
            timeout=self.timeout,
            not_found_grace=self.not_found_grace,
            max_polls_per_second=self.max_polls_per_second,
            # With nothing left to submit, the worker is needed only once every row has finished.
            refill_at=self.refill_at if more_to_submit else 0,
            refill_window=self.refill_window,
            fire_not_before=time.time() + self.min_wave_seconds if self.deferrable else None,
        )

    def _finish(self, entries: dict[int, ManifestEntry], rows: ValidatedRows) -> dict[str, Any]:
        counts = {status: 0 for status in ("succeeded", "skipped", "invalid")}
        for entry in entries.values():
            if entry.status in counts:
                counts[entry.status] += 1
        summary: dict[str, Any] = {
            "total": rows.total,
            "succeeded": counts["succeeded"],
            "failed": self._failed(entries),
            "skipped": counts["skipped"],
            "invalid": counts["invalid"],
            "manifest_path": self.manifest_path,
        }
        self.log.info("Batch finished: %s", summary)
        allowed, failed = self._allowed_failures(rows.total), self._failed(entries)
        if failed > allowed:
            failures = sorted((entry for entry in entries.values() if entry.status in FAILED_STATUSES),
                              key=lambda entry: entry.row)  # fmt: skip
            listed = "\n".join(
                f"  - row {entry.row} ({entry.key!r}): {entry.status}: {entry.error}" for entry in failures[:5]
            )
            not_sent = self._pending(entries)
            raise InfinityBlueBatchError(
                f"{failed} of {rows.total} rows failed, more than max_failed_rows allows ({allowed})"
                + (f"; {not_sent} rows were not submitted" if not_sent else "")
                + f". The manifest at {self.manifest_path} has every row's outcome. The first failures:\n{listed}"
            )
        return summary

    # -- helpers --------------------------------------------------------------------------------

    def _rows(self) -> ValidatedRows:
        from airflow_provider_infinityblue.batch.rows import read_rows, validate_rows  # loaded by a run, not a parse

        requests = self.requests
        if isinstance(requests, str) and not requests.strip():
            requests = None
        settings = self.hook.settings
        rows = validate_rows(
            read_rows(requests, requests_path=self.requests_path or None, conn_id=self.requests_conn_id or None),
            defaults=self.defaults,
            max_prompt_chars=settings.max_prompt_chars,
            default_model=settings.default_model,
        )
        self._log_models(rows, settings.default_model)
        return rows

    def _log_models(self, rows: ValidatedRows, connection_model: str | None) -> None:
        """Say which models the rows use, and where the model of the rows that name none comes from."""
        try:
            fallback, source = resolve_model(
                ((self.defaults or {}).get("model"), "the batch's defaults"),
                (connection_model, f"the default_model of connection '{self.infinityblue_conn_id}'"),
            )
        except InfinityBlueValidationError:
            return  # a non-text model in defaults: every row says so as it is refused
        used = ", ".join(sorted({row.request.model for row in rows.valid})) or "none"
        self.log.info("Models of the rows: %s; a row that names none uses %s (%s)", used, fallback, source)

    def _ledger(self, context: Context) -> BatchLedger:
        return BatchLedger(context.get("task_state_store") if self.durable else None)

    def _allowed_failures(self, total: int) -> int:
        if isinstance(self.max_failed_rows, float):
            return math.floor(self.max_failed_rows * total)
        return self.max_failed_rows

    @staticmethod
    def _failed(entries: dict[int, ManifestEntry]) -> int:
        return sum(entry.status in FAILED_STATUSES for entry in entries.values())

    @staticmethod
    def _pending(entries: dict[int, ManifestEntry]) -> int:
        return sum(entry.status == "pending" for entry in entries.values())

    @staticmethod
    def _fail(entry: ManifestEntry, error: str) -> None:
        entry.status, entry.error, entry.finished_at = "failed", error, utc_iso(time.time())


async def _first_event(trigger: InfinityBlueBatchTrigger) -> dict[str, Any]:
    """The trigger's one event, when the wait runs on the worker (``deferrable=False``)."""
    async for event in trigger.run():
        return dict(event.payload)
    raise InfinityBlueBatchError("The batch trigger ended without an event")  # pragma: no cover


RESUME_MARGIN_SECONDS = 5.0


def resume_lag() -> float:
    """Seconds a batch trigger waits after a deferral before it may wake the worker again.

    After a task defers, Airflow's worker (3.x) reports the finished workload only up to
    ``[workers] min_heartbeat_interval`` seconds later. A trigger that fires sooner lets the scheduler
    start the next wave of the same try before that report arrives, and the late report then fails
    the running wave ("the task instance's state attribute is running"). Waiting this long, plus a
    margin for the scheduler's loop, keeps the two apart; a wave usually lasts longer anyway.
    """
    return conf.getfloat("workers", "min_heartbeat_interval", fallback=5.0) + RESUME_MARGIN_SECONDS


def _is_template(value: object) -> bool:
    return isinstance(value, str) and "{{" in value


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _failure_budget(value: object) -> int | float:
    """``max_failed_rows``: a count (int, at least 0) or a fraction of the rows (float, 0 to below 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"max_failed_rows must be a count (int) or a fraction (float below 1), got {value!r}")
    if isinstance(value, float):
        if not (math.isfinite(value) and 0 <= value < 1):
            raise ValueError(f"max_failed_rows as a float is a fraction of the rows, from 0 to below 1, got {value!r}")
        return value
    if value < 0:
        raise ValueError(f"max_failed_rows must not be negative, got {value!r}")
    return value
