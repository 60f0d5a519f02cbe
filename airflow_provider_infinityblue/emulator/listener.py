"""The emulator's listening socket: an aiohttp site that counts connections where they happen.

Requests cannot tell how many connections or TLS handshakes a client needed for them,
so the counts come from the transport: the protocol factory runs once per accepted TCP
connection, and asyncio calls a protocol's ``connection_made`` once the connection is
ready for HTTP, which for TLS is after the handshake completed.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    import ssl

    from airflow_provider_infinityblue.emulator.stats import ConnectionCounts


class CountingTCPSite(web.BaseSite):
    """Like aiohttp's ``web.TCPSite``, with every connection counted in ``counts``.

    Example::

        runner = web.AppRunner(app)
        await runner.setup()
        counts = ConnectionCounts()
        site = CountingTCPSite(runner, "127.0.0.1", 8089, counts=counts, ssl_context=context)
        await site.start()
        ...
        await runner.cleanup()  # stops the site with the runner, as for any aiohttp site
    """

    __slots__ = ("_counts", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        counts: ConnectionCounts,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context)
        self._host = host
        self._port = port
        self._counts = counts

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None, "the runner is set up before its sites start"
        counts = self._counts

        def accept() -> asyncio.Protocol:
            counts.accepted()
            return _CountedProtocol(server(), counts)

        self._server = await asyncio.get_running_loop().create_server(
            accept, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog
        )


class _CountedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind a stand-in that notes when it opens and closes."""

    __slots__ = ("_counts", "_inner")

    def __init__(self, inner: asyncio.Protocol, counts: ConnectionCounts) -> None:
        self._inner = inner
        self._counts = counts

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._counts.established(tls=transport.get_extra_info("ssl_object") is not None)
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._counts.closed()
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
