"""What each row's submission left in the task state store (Airflow 3.3+), so that a retry never pays twice.

One key per row (``infinityblue_batch_row_<index>``), never one growing value: Airflow caps a stored
value at 64 KB. A row's record goes through the single operator's states: ``submitting`` (with the
request's fingerprint) is written before its POST, ``submitted`` (with the generation id and time)
right after, and ``refused`` when the API provably did not take it. Rows are submitted in input
order, so a retry finds every submitted row by reading rows in order until the first valid row
without a record. One more key (``infinityblue_batch``) holds the SHA-256 of the manifest last
written, so that a retry can trust it for the rows that already finished.

Without a task state store (Airflow < 3.3) every method reads nothing and writes nothing.
"""

from __future__ import annotations

import time
from typing import Any

PROGRESS_KEY = "infinityblue_batch"
ROW_KEY_PREFIX = "infinityblue_batch_row_"


class BatchLedger:
    """The batch's records in ``store`` (``context["task_state_store"]``, or ``None``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    @property
    def durable(self) -> bool:
        return self.store is not None

    def manifest_sha256(self) -> str | None:
        progress = self.store.get(PROGRESS_KEY) if self.store is not None else None
        return progress.get("manifest_sha256") if isinstance(progress, dict) else None

    def record_manifest(self, sha256: str) -> None:
        if self.store is not None:
            self.store.set(PROGRESS_KEY, {"manifest_sha256": sha256, "written_at": time.time()})

    def row(self, index: int) -> dict[str, Any] | None:
        record = self.store.get(f"{ROW_KEY_PREFIX}{index}") if self.store is not None else None
        return record if isinstance(record, dict) else None

    def submitting(self, index: int, fingerprint: str) -> None:
        self._set(index, {"state": "submitting", "fingerprint": fingerprint, "started_at": time.time()})

    def submitted(self, index: int, fingerprint: str, generation_id: str, submitted_at: float) -> None:
        self._set(
            index,
            {
                "state": "submitted",
                "fingerprint": fingerprint,
                "generation_id": generation_id,
                "submitted_at": submitted_at,
            },
        )

    def refused(self, index: int, fingerprint: str, error: str) -> None:
        self._set(index, {"state": "refused", "fingerprint": fingerprint, "error": error[:2000]})

    def forget(self, index: int) -> None:
        if self.store is not None:
            self.store.delete(f"{ROW_KEY_PREFIX}{index}")

    def _set(self, index: int, record: dict[str, Any]) -> None:
        if self.store is not None:
            self.store.set(f"{ROW_KEY_PREFIX}{index}", record)
