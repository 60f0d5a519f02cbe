"""A scripted HTTP server on 127.0.0.1 for tests where real sockets matter.

Each request takes the next scripted reply; the server counts TCP connections and
records every request it received (method, path, headers, body).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from typing import Self


@dataclass
class Reply:
    """What the server does with one request.

    ``action`` is ``respond`` (send status/body), ``drop`` (read the request, then close
    the connection without answering), ``stall`` (read it, then wait ``delay`` seconds
    before answering), ``trickle`` (answer at once, but send the body one byte every
    ``delay`` seconds, and the status line and headers too with ``trickle_headers``) or
    ``silent`` (read it, then never answer: the connection stays open until the server stops).
    """

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "respond"
    delay: float = 0.0
    trickle_headers: bool = False


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when the request was read


class ThreadedServer:
    """An HTTP server on 127.0.0.1, on a free port, served from a daemon thread while in ``with``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        # Set on the way out, so that handlers waiting for a client (silent, trickling) end at once.
        self.stopping = threading.Event()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class LoopbackServer(ThreadedServer):
    def __init__(self, replies: list[Reply] | None = None) -> None:
        self.replies: deque[Reply] = deque(replies or [])
        self.received: list[Received] = []
        self.connections = 0
        self._lock = threading.Lock()
        super().__init__(self._handler_class())

    @property
    def url(self) -> str:
        return self.base_url

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.connections += 1

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server._lock:
                    server.received.append(Received(self.command, self.path, dict(self.headers), body))
                    reply = (
                        server.replies.popleft() if server.replies else Reply(status=500, body={"error": "unscripted"})
                    )
                if reply.action == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if reply.action == "silent":
                    server.stopping.wait()
                    self.close_connection = True
                    return
                if reply.action == "stall":
                    time.sleep(reply.delay)
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                headers = {"Content-Type": "application/json", **reply.headers, "Content-Length": str(len(payload))}
                try:
                    if reply.action == "trickle":
                        self._trickle_answer(reply, headers, payload)
                        return
                    self.send_response(reply.status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _trickle_answer(self, reply: Reply, headers: dict[str, str], payload: bytes) -> None:
                head = f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}\r\n"
                head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
                if reply.trickle_headers:
                    self._trickle(head.encode() + payload, reply.delay)
                else:
                    self.wfile.write(head.encode())
                    self._trickle(payload, reply.delay)

            def _trickle(self, data: bytes, delay: float) -> None:
                for index in range(len(data)):
                    if index and server.stopping.wait(delay):
                        self.close_connection = True
                        return
                    self.wfile.write(data[index : index + 1])

            do_GET = do_POST = _handle

        return Handler


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
