"""Counts of the answers the emulator gave, per route template and HTTP status."""

from __future__ import annotations

from collections import defaultdict


class RequestCounts:
    """``{"GET /v1/video/generations/{task_id}": {"200": 10, "503": 2}}``, for ``/_emulator/stats``.

    >>> counts = RequestCounts()
    >>> counts.record("POST /v1/video/generations", 200); counts.record("POST /v1/video/generations", 429)
    >>> counts.as_dict()
    {'POST /v1/video/generations': {'200': 1, '429': 1}}
    """

    def __init__(self) -> None:
        self._counts: defaultdict[str, defaultdict[str, int]] = defaultdict(lambda: defaultdict(int))

    def record(self, route: str, status: int) -> None:
        self._counts[route][str(status)] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {route: dict(sorted(by_status.items())) for route, by_status in sorted(self._counts.items())}

    def clear(self) -> None:
        self._counts.clear()
