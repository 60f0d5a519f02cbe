"""How requests reach the network: sessions and answer deadlines.

``requests`` and ``urllib3`` only know a timeout per socket operation: every byte that
arrives starts it again, while the status line and headers are read too. A server that
trickles an answer keeps a caller waiting forever, and one that accepts a connection and
never answers overshoots the caller's deadline by the whole read timeout. So every
request made here has an *answer deadline*, a ``time.monotonic()`` instant by which the
whole answer (connect, send, headers, body) must have arrived:

- synchronous code runs ``session.request(...)`` and the body read inside
  :func:`enforce_deadline` on a session from :func:`new_session`; a watchdog shuts down
  the sockets of that request when the instant comes, and the guard it yields tells the
  caller afterwards that the failure was the deadline;
- coroutines wrap the request and the body read in :func:`answer_timeout`.

DAG files import the provider on every parse, so nothing heavy is imported here until a
function needs it.
"""

from __future__ import annotations

import functools
import importlib
import logging
import socket
import threading
import time
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from airflow_provider_infinityblue import __version__

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Iterator
    from types import ModuleType

    import requests
    import urllib3

    from airflow_provider_infinityblue.network import NetworkSettings

USER_AGENT = f"airflow-provider-infinityblue/{__version__}"
"""Sent with every request the provider makes, to the API and to video hosts."""
REQUEST_ID_HEADER = "x-request-id"
"""The header in which the API names each answer, for InfinityBlue support."""

PoolClasses = dict[str, type["urllib3.HTTPConnectionPool"]]
"""urllib3 connection pool classes by scheme (``http``, ``https``)."""

LAST_LOOK_SECONDS = 1.0
"""The least time an answer gets, even when asked for at or after the caller's deadline.

A wait that starts past its deadline still looks once before timing out: that look needs
a chance to be answered.
"""

_MINIMUM_TIMEOUT = 0.001  # a timeout of 0 means "never block" to sockets, None means "forever"


def answer_deadline(*, read_timeout: float, caller_deadline: float | None, now: float | None = None) -> float:
    """The ``time.monotonic()`` instant by which a whole answer must have arrived.

    An answer gets ``read_timeout`` seconds, clipped to the caller's deadline, but never
    less than :data:`LAST_LOOK_SECONDS`: a request started at or after the caller's
    deadline is the wait's one last look.

    >>> answer_deadline(read_timeout=60, caller_deadline=None, now=100.0)
    160.0
    >>> answer_deadline(read_timeout=60, caller_deadline=130.0, now=100.0)
    130.0
    >>> answer_deadline(read_timeout=60, caller_deadline=90.0, now=100.0)
    101.0
    >>> answer_deadline(read_timeout=0.5, caller_deadline=90.0, now=100.0)
    100.5
    """
    start = time.monotonic() if now is None else now
    latest = start + read_timeout
    if caller_deadline is None:
        return latest
    return min(latest, max(caller_deadline, start + LAST_LOOK_SECONDS))


def request_timeouts(
    *, at: float, connect_timeout: float, read_timeout: float, now: float | None = None
) -> tuple[float, float]:
    """The ``(connect, read)`` socket timeouts of a request that must be answered by ``at``.

    Neither may outlast the time left: the connect phase is not watched by
    :func:`enforce_deadline` (there is no socket to shut down until it has connected).

    >>> request_timeouts(at=160.0, connect_timeout=10, read_timeout=60, now=100.0)
    (10, 60)
    >>> request_timeouts(at=101.0, connect_timeout=10, read_timeout=60, now=100.0)
    (1.0, 1.0)
    >>> request_timeouts(at=99.0, connect_timeout=10, read_timeout=60, now=100.0)
    (0.001, 0.001)
    """
    remaining = max(_MINIMUM_TIMEOUT, at - (time.monotonic() if now is None else now))
    return min(connect_timeout, remaining), min(read_timeout, remaining)


def answer_timeout(at: float) -> asyncio.Timeout:
    """An ``asyncio.timeout`` that cancels what it wraps at the ``time.monotonic()`` instant ``at``.

    Wrap both ``session.request(...)`` and the body read; ``.expired()`` tells afterwards
    whether it fired.
    """
    import asyncio

    return asyncio.timeout(max(_MINIMUM_TIMEOUT, at - time.monotonic()))


class DeadlineGuard:
    """Shuts down the connections of one request when its answer deadline comes.

    Created by :func:`enforce_deadline`. Connections of a session from
    :func:`new_session` register with the guard active on their thread each time they
    connect or send a request, kept-alive ones included; one that registers once the
    deadline has passed is shut down at once.
    """

    def __init__(self, at: float) -> None:
        self.at = at
        self._lock = threading.Lock()
        self._connections: list[Any] = []
        self._expired = False
        self._released = False
        self._timer = threading.Timer(max(0.0, at - time.monotonic()), self._expire)
        self._timer.name = "infinityblue-answer-deadline"
        self._timer.daemon = True

    @property
    def expired(self) -> bool:
        """Whether the deadline came while the guard was active, and its connections were shut down."""
        return self._expired

    def register(self, connection: Any) -> None:
        """Watch ``connection`` (a urllib3 connection) until the guard is released."""
        with self._lock:
            if self._released:
                return
            if not any(known is connection for known in self._connections):
                self._connections.append(connection)
            expired = self._expired
        if expired:
            _shut_down(connection)

    def _start(self) -> None:
        self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            if self._released:
                return
            self._expired = True
            # Under the lock: once released, the guard must not touch a connection back in its pool.
            for connection in self._connections:
                _shut_down(connection)

    def _release(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._released = True
            self._connections.clear()


_active = threading.local()


def _active_guard() -> DeadlineGuard | None:
    guard: DeadlineGuard | None = getattr(_active, "guard", None)
    return guard


@contextmanager
def enforce_deadline(*, at: float) -> Iterator[DeadlineGuard]:
    """Hold the requests made on this thread, on sessions from :func:`new_session`, to ``at``.

    ``at`` is a ``time.monotonic()`` instant. Put both ``session.request(...)`` and the
    reading of the body inside; pass the socket timeouts of :func:`request_timeouts`
    too, since the connect phase is bounded by them alone. When the instant comes, the
    sockets are shut down, so the request fails with a connection error (or, when the
    headers were cut short, returns a truncated answer): check ``guard.expired``
    afterwards in both cases.
    """
    guard = DeadlineGuard(at)
    previous = _active_guard()
    _active.guard = guard
    guard._start()
    try:
        yield guard
    finally:
        guard._release()
        _active.guard = previous


def new_session(network: NetworkSettings, pool_classes: PoolClasses | None = None) -> requests.Session:
    """A ``requests.Session`` whose connections obey :func:`enforce_deadline`, proxied ones included.

    It trusts the certificates ``network`` says and reads nothing from the environment (``trust_env``
    is off: it would also read ``~/.netrc``); pass each request ``proxies=network.requests_proxies(url)``.
    ``pool_classes`` (``{"http": ..., "https": ...}``) replaces the urllib3 pools of
    :func:`guarded_pool_classes` with subclasses of them that do more (the download's check of
    the address connected to). It has no headers or credentials of its own: callers add theirs.
    """
    import requests

    session = requests.Session()
    session.trust_env = False
    session.verify = network.requests_verify
    network.warn_if_unverified()
    adapter_class = _deadline_adapter_class()
    pools = pool_classes or guarded_pool_classes()
    session.mount("https://", adapter_class(pools))
    session.mount("http://", adapter_class(pools))
    return session


def _register_with_active_guard(connection: Any) -> None:
    guard = _active_guard()
    if guard is not None:
        guard.register(connection)


def _shut_down(connection: Any) -> None:
    """Shut down a connection's socket, which wakes a thread blocked reading it (it reads end of file)."""
    sock = getattr(connection, "sock", None)
    # TLS inside a TLS proxy tunnel wraps the socket in urllib3's SSLTransport.
    raw = sock if isinstance(sock, socket.socket) else getattr(sock, "socket", None)
    if isinstance(raw, socket.socket):
        with suppress(OSError):
            # The plain socket's method: SSLSocket.shutdown would also drop its TLS state, from another thread.
            socket.socket.shutdown(raw, socket.SHUT_RDWR)


class _CutHeadersFilter(logging.Filter):
    """Drops urllib3's warning about headers that the deadline cut short, on the thread whose guard cut them.

    That warning quotes the request URL whole, with the query string: a signed video URL's
    signature would reach the task log. Malformed headers a server really sent are still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        guard = _active_guard()
        cut_by_us = guard is not None and guard.expired
        return not (cut_by_us and str(record.msg).startswith("Failed to parse headers"))


@functools.cache
def guarded_pool_classes() -> PoolClasses:
    """urllib3 connection pools whose connections register with the active :class:`DeadlineGuard`.

    urllib3 2.x calls ``connect()`` for a new connection and ``request()`` for every request
    on a connection, reused ones included: registering in both covers the TLS handshake
    and every kept-alive request.
    """
    import ssl

    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    # The logger urllib3.connection logs with; named here so as not to reach into the module's globals.
    logging.getLogger("urllib3.connection").addFilter(_CutHeadersFilter())

    class GuardedHTTPConnection(HTTPConnection):
        def connect(self) -> None:
            _register_with_active_guard(self)
            super().connect()
            _register_with_active_guard(self)  # a deadline that passed while connecting shuts it now

        def request(self, *args: Any, **kwargs: Any) -> None:
            _register_with_active_guard(self)
            super().request(*args, **kwargs)

    class GuardedHTTPSConnection(GuardedHTTPConnection, HTTPSConnection):
        """TLS on top: the same registration, in front of HTTPSConnection's connect()."""

    class GuardedHTTPConnectionPool(HTTPConnectionPool):
        ConnectionCls = GuardedHTTPConnection

    class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
        ConnectionCls = GuardedHTTPSConnection

        def _validate_conn(self, conn: Any) -> None:
            if self.cert_reqs not in ("CERT_NONE", ssl.CERT_NONE):
                super()._validate_conn(conn)
                return
            # Checks turned off on purpose (tls_verification: skip-insecure), which NetworkSettings has
            # said once, loudly: not one more InsecureRequestWarning per request on top.
            HTTPConnectionPool._validate_conn(self, conn)
            if conn.is_closed:
                conn.connect()

    return {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}


@functools.cache
def _deadline_adapter_class() -> Callable[[PoolClasses], requests.adapters.HTTPAdapter]:
    from requests.adapters import DEFAULT_POOLBLOCK, HTTPAdapter
    from urllib3 import PoolManager, ProxyManager

    class DeadlineAdapter(HTTPAdapter):
        """An ``HTTPAdapter`` whose pools, direct and through HTTP(S) proxies, are of ``pool_classes``."""

        def __init__(self, pool_classes: PoolClasses, **kwargs: Any) -> None:
            self.pool_classes = pool_classes  # set first: the base class creates its pool manager
            super().__init__(**kwargs)

        def init_poolmanager(
            self, connections: int, maxsize: int, block: bool = DEFAULT_POOLBLOCK, **pool_kwargs: Any
        ) -> None:
            super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)
            self._use_pool_classes(self.poolmanager)

        def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
            manager = super().proxy_manager_for(proxy, **proxy_kwargs)
            # SOCKS proxies have connection classes of their own, left as they are.
            if isinstance(manager, ProxyManager):
                self._use_pool_classes(manager)
            return manager

        def _use_pool_classes(self, manager: PoolManager) -> None:
            # A copy: the class attribute is urllib3's module-level dict, shared by every other pool manager.
            manager.pool_classes_by_scheme = dict(self.pool_classes)

    return DeadlineAdapter


# Modules imported by import_off_the_loop, complete. sys.modules cannot tell: it holds a module from
# the moment its import starts, so a second trigger would get a half-initialised aiohttp.
_imported_off_the_loop: dict[str, ModuleType] = {}


async def import_off_the_loop(name: str) -> ModuleType:
    """Import a module in a worker thread the first time: importing aiohttp takes a few hundred
    milliseconds, which would stall every other trigger sharing the triggerer's event loop.

    Triggers starting together each wait in their own thread on the import lock, so every one of
    them gets the module only once it is fully initialised.
    """
    import asyncio

    module = _imported_off_the_loop.get(name)
    if module is None:
        module = await asyncio.to_thread(importlib.import_module, name)
        _imported_off_the_loop[name] = module
    return module
