"""Counts of what the emulator saw: answers per route and HTTP status, and connections."""

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


class ConnectionCounts:
    """The connections the emulator's listener saw, counted per connection, never per request.

    ``connections``: TCP connections accepted; ``tls_handshakes``: TLS handshakes completed
    (0 for plain HTTP; fewer than ``connections`` when clients gave up on the certificate);
    ``open_connections``: connections open now that passed their handshake (every accepted
    one, for plain HTTP). :meth:`clear` zeroes the first two; connections still open stay counted.

    >>> counts = ConnectionCounts()
    >>> counts.accepted(); counts.established(tls=True); counts.accepted(); counts.established(tls=True)
    >>> counts.closed(); counts.accepted()  # the third never completes its handshake
    >>> counts.as_dict()
    {'connections': 3, 'tls_handshakes': 2, 'open_connections': 1}
    """

    def __init__(self) -> None:
        self.connections = 0
        self.tls_handshakes = 0
        self.open_connections = 0

    def accepted(self) -> None:
        self.connections += 1

    def established(self, *, tls: bool) -> None:
        """The connection is ready for HTTP: at once for plain HTTP, after its handshake for TLS."""
        self.open_connections += 1
        if tls:
            self.tls_handshakes += 1

    def closed(self) -> None:
        self.open_connections -= 1

    def as_dict(self) -> dict[str, int]:
        return {
            "connections": self.connections,
            "tls_handshakes": self.tls_handshakes,
            "open_connections": self.open_connections,
        }

    def clear(self) -> None:
        self.connections = 0
        self.tls_handshakes = 0
