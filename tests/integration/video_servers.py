"""Loopback servers for the download tests: a large generated video, and a proxy that cuts answers short."""

from __future__ import annotations

import contextlib
import socket
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.loopback import ThreadedServer

PATTERN = bytes(range(256)) * 256  # 64 KiB, repeated to make videos of any size


def generated_video(size: int) -> bytes:
    """The bytes :class:`GeneratedVideoServer` serves for ``size`` (only for small sizes: it is all in memory)."""
    return (PATTERN * (size // len(PATTERN) + 1))[:size]


class GeneratedVideoServer(ThreadedServer):
    """Serves ``/video.mp4`` of ``size`` bytes, generated while sending: it holds no copy of the video.

    Honours ``Range: bytes=N-`` with a 206, and records each request's headers. With
    ``stall_after``, the first answer stops sending after that many bytes of the video and
    keeps its connection open, silent, until the client leaves or the server stops.
    """

    def __init__(self, size: int, *, stall_after: int | None = None) -> None:
        self.size = size
        self.stall_after = stall_after
        self.requests: list[dict[str, str]] = []
        super().__init__(self._handler_class())

    @property
    def url(self) -> str:
        return f"{self.base_url}/video.mp4"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(dict(self.headers))
                first = len(server.requests) == 1
                end = server.size if server.stall_after is None or not first else min(server.size, server.stall_after)
                start = 0
                ranged = self.headers.get("Range", "")
                if ranged.startswith("bytes=") and ranged.endswith("-"):
                    start = int(ranged[len("bytes=") : -1])
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("ETag", '"generated"')
                self.send_header("Content-Length", str(server.size - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{server.size - 1}/{server.size}")
                self.end_headers()
                view = memoryview(PATTERN)
                position = start
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    while position < end:
                        offset = position % len(PATTERN)
                        piece = view[offset : offset + min(len(PATTERN) - offset, end - position)]
                        self.wfile.write(piece)
                        position += len(piece)
                if end < server.size:
                    server.stopping.wait()
                    self.close_connection = True

        return Handler


class CuttingProxy:
    """A TCP proxy on 127.0.0.1 to ``target`` (host, port) that closes its first ``cuts`` connections
    after ``cut_after`` bytes of the answer, as a flaky network between a worker and a CDN would.
    """

    def __init__(self, target: tuple[str, int], *, cut_after: int, cuts: int = 1) -> None:
        self.target = target
        self.cut_after = cut_after
        self.cuts_left = cuts
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def __enter__(self) -> CuttingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Closing alone does not wake a thread blocked in accept() on Linux; a shutdown does.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed by __exit__
            upstream = socket.create_connection(self.target)
            self._open += [client, upstream]
            with self._lock:
                self.connections += 1
                limit = self.cut_after if self.cuts_left > 0 else None
                self.cuts_left -= 1
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, limit), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while limit is None or sent < limit:
                data = source.recv(65536 if limit is None else min(65536, limit - sent))
                if not data:
                    break
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
