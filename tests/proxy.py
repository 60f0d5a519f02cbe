"""A small HTTP forward proxy on 127.0.0.1, for tests of clients configured to use one.

It tunnels ``CONNECT host:port`` (so HTTPS stays end to end: the client checks the
origin's certificate, not the proxy's), forwards plain-HTTP requests in absolute form
(``GET http://host:port/path``), can require Basic credentials, and can send a made-up
host name to a real address, so a test can reach a local server under a name that no
DNS knows. It records what it forwarded. Only asyncio streams, on a thread of its own.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import threading
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

LOOPBACK = "127.0.0.1"
# A request head larger than this is refused: a test proxy has no use for more.
_MAX_HEAD_BYTES = 64 * 1024
_PIPE_CHUNK_BYTES = 64 * 1024
_HOP_BY_HOP = frozenset({"proxy-authorization", "proxy-connection", "connection", "keep-alive"})
_START_TIMEOUT_SECONDS = 10.0
_STOP_TIMEOUT_SECONDS = 10.0


class _BadRequest(Exception):
    pass


class HttpProxy:
    """A forward proxy served from a daemon thread; use :func:`http_proxy` to run one.

    ``resolve`` maps host names to the ``(address, port)`` to connect to instead, whatever
    port the client asked for; other names are resolved as usual. With ``credentials``
    (user, password), requests without a matching ``Proxy-Authorization: Basic`` header are
    answered 407. ``tunnels`` ("host:port" of each CONNECT) and ``requests`` (the absolute
    URL of each forwarded plain-HTTP request) list what was forwarded, in order.

    Example::

        with http_proxy(resolve={"api.infinityblue.test": ("127.0.0.1", 8443)}) as proxy:
            requests.get("https://api.infinityblue.test/", proxies=proxy.proxies, verify="ca.pem")
        assert proxy.tunnels == ["api.infinityblue.test:443"]
    """

    def __init__(
        self,
        *,
        resolve: Mapping[str, tuple[str, int]] | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self._resolve = {name.lower(): address for name, address in (resolve or {}).items()}
        self._authorization = (
            "Basic " + base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            if credentials is not None
            else None
        )
        self._lock = threading.Lock()
        self._tunnels: list[str] = []
        self._requests: list[str] = []
        self._refused = 0
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-http-proxy", daemon=True)

    # -- what the tests read ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, without credentials."""
        if self._port is None:
            raise RuntimeError("the proxy is not running")
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def proxies(self) -> dict[str, str]:
        """``requests``' ``proxies`` argument sending both schemes through this proxy."""
        return {"http": self.url, "https": self.url}

    @property
    def tunnels(self) -> list[str]:
        with self._lock:
            return list(self._tunnels)

    @property
    def requests(self) -> list[str]:
        with self._lock:
            return list(self._requests)

    @property
    def refused(self) -> int:
        """How many requests were answered 407."""
        with self._lock:
            return self._refused

    # -- running --------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT_SECONDS) or self._port is None:
            raise RuntimeError(f"the test proxy did not start: {self._failure}") from self._failure

    def stop(self) -> None:
        """Close the listener and every connection still open, tunnels included; wait for the thread."""
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(_STOP_TIMEOUT_SECONDS)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as failure:  # reported by start(); a thread has nowhere else to put it
            self._failure = failure
        finally:
            self._started.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self._handle, LOOPBACK, 0, limit=_MAX_HEAD_BYTES)
        self._port = server.sockets[0].getsockname()[1]
        self._started.set()
        try:
            await self._stopping.wait()
        finally:
            server.close()
            for handler in list(self._handlers):
                handler.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await server.wait_closed()

    # -- one client connection ------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        upstream: asyncio.StreamWriter | None = None
        try:
            method, target, version, headers = await self._read_head(reader)
            if not self._authorized(headers):
                with self._lock:
                    self._refused += 1
                writer.write(
                    b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                    b'Proxy-Authenticate: Basic realm="test proxy"\r\n'
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                await writer.drain()
                return
            if method == "CONNECT":
                upstream = await self._tunnel(target, reader, writer)
            else:
                upstream = await self._forward(method, target, version, headers, reader, writer)
        except _BadRequest:
            with suppress(ConnectionError):
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
        except OSError:  # the origin cannot be reached: the usual proxy answer
            with suppress(ConnectionError):
                writer.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client went away
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()
            self._handlers.discard(task)

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[str, str, str, list[tuple[str, str]]]:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:  # no end of the head within _MAX_HEAD_BYTES
            raise _BadRequest from None
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = request_line.split(" ")
        if len(parts) != 3:
            raise _BadRequest
        method, target, version = parts
        headers = []
        for line in header_lines:
            if line:
                name, separator, value = line.partition(":")
                if not separator:
                    raise _BadRequest
                headers.append((name.strip(), value.strip()))
        return method, target, version, headers

    def _authorized(self, headers: list[tuple[str, str]]) -> bool:
        if self._authorization is None:
            return True
        sent = [value for name, value in headers if name.lower() == "proxy-authorization"]
        return len(sent) == 1 and hmac.compare_digest(sent[0].encode(), self._authorization.encode())

    async def _open(self, host: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        address, port = self._resolve.get(host.lower(), (host, port))
        return await asyncio.open_connection(address, port)

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> asyncio.StreamWriter:
        host, port = _host_and_port(target)
        upstream_reader, upstream_writer = await self._open(host, port)
        with self._lock:
            self._tunnels.append(target)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await _pipe_both_ways(reader, writer, upstream_reader, upstream_writer)
        return upstream_writer

    async def _forward(
        self,
        method: str,
        target: str,
        version: str,
        headers: list[tuple[str, str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> asyncio.StreamWriter:
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            raise _BadRequest
        upstream_reader, upstream_writer = await self._open(parts.hostname, parts.port or 80)
        with self._lock:
            self._requests.append(target)
        # Origin form, and one request per connection: the answer ends when the origin closes,
        # so it can be piped back without parsing it; the client connection closes after it.
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        lines = [f"{method} {path} {version}"]
        lines += [f"{name}: {value}" for name, value in headers if name.lower() not in _HOP_BY_HOP]
        lines.append("Connection: close")
        upstream_writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        await upstream_writer.drain()
        # The body, if any, follows the head as is (Content-Length or chunked) while the answer comes back.
        sending = asyncio.create_task(_pipe(reader, upstream_writer))
        try:
            await _pipe(upstream_reader, writer)
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)
        return upstream_writer


@contextmanager
def http_proxy(
    *,
    resolve: Mapping[str, tuple[str, int]] | None = None,
    credentials: tuple[str, str] | None = None,
) -> Iterator[HttpProxy]:
    """Run an :class:`HttpProxy` on 127.0.0.1 and a free port for the ``with`` block; stopped after it."""
    proxy = HttpProxy(resolve=resolve, credentials=credentials)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def _host_and_port(target: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` for IPv6) as the CONNECT method names its target."""
    host, separator, port = target.rpartition(":")
    if not separator or not host or not port.isdigit():
        raise _BadRequest
    return host.removeprefix("[").removesuffix("]"), int(port)


async def _pipe_both_ways(
    client_reader: asyncio.StreamReader,
    client_writer: asyncio.StreamWriter,
    upstream_reader: asyncio.StreamReader,
    upstream_writer: asyncio.StreamWriter,
) -> None:
    """Copy bytes both ways until both sides have finished sending; an end is passed on as a half close."""
    await asyncio.gather(_pipe(client_reader, upstream_writer), _pipe(upstream_reader, client_writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(_PIPE_CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        # One side reset: nothing more can be passed on in this direction; closing both ends the other.
        writer.close()
