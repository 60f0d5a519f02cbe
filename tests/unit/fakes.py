"""Just enough of an Airflow task context to call operators directly in unit tests."""

from __future__ import annotations

from typing import Any


class RecordingTaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}
        self.stats_tags: dict[str, str] = {}

    map_index = -1

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def xcom_pull(self, task_ids: str, key: str, map_indexes: int | None = None) -> Any:
        """What this task instance pushed itself (an operator pulls its own XComs back after a deferral)."""
        return self.xcom.get(key)


class MemoryTaskStateStore:
    """Behaves like ``context["task_state_store"]``: kept across tries of one task instance."""

    def __init__(self, **values: Any) -> None:
        self.values = dict(values)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def task_context(store: MemoryTaskStateStore | None = None, *, with_store: bool = True) -> dict[str, Any]:
    context: dict[str, Any] = {"ti": RecordingTaskInstance()}
    if with_store:
        context["task_state_store"] = store if store is not None else MemoryTaskStateStore()
    return context
