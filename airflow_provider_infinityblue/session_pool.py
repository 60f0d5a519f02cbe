"""What the triggers of one process share: a connection read, and one warm ``aiohttp`` session per loop.

A triggerer runs thousands of triggers in one event loop. Each one owning a session would
mean a connection pool, a keep-alive socket and, over TLS, a ~300 KB read buffer per
waiting generation. Instead the hook's coroutines lease a :class:`SharedSession`:

- leases are counted; when the last one is returned, the session lingers for
  :data:`LINGER_SECONDS` (a trigger that ends and the next deferral of the same task reuse
  the pool), then closes. If the event loop is shut down first (``asyncio.run`` cancels
  what is left, as ``dag.test()`` does for each trigger), it closes then: no session is
  ever left unclosed;
- connections are kept alive across polls whatever the poll interval (the server's idle
  timeout still ends them), at most ``max_connections_per_host`` to one host; the requests
  beyond those wait at the gate of their :class:`Route`, before any of them is built;
- requests share one :class:`~airflow_provider_infinityblue.pacing.RequestPace`: the
  connection's ``max_requests_per_second``, and a 429's ``Retry-After`` holds every trigger
  using the session, not only the one that got it.

Sessions are kept per event loop: a session belongs to the loop it was created in.

A connection is read once for all of them too (:func:`read_connection_once`): thousands of
triggers starting together in a triggerer make one read, reused for :data:`CONNECTION_REUSE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_infinityblue.pacing import RequestPace
from airflow_provider_infinityblue.transport import USER_AGENT, import_off_the_loop

if TYPE_CHECKING:
    import ssl
    from collections.abc import Awaitable, Callable, Hashable

    import aiohttp

    from airflow_provider_infinityblue.network import NetworkSettings

LINGER_SECONDS = 10.0
"""How long a session nobody uses stays open for the next trigger."""
KEEPALIVE_SECONDS = 300.0
"""How long the client keeps an idle connection: longer than any usual poll interval, so the server decides."""
DNS_CACHE_SECONDS = 60
CONNECTION_REUSE_SECONDS = 10.0
"""How long the coroutines of one process reuse a connection read.

A change to the connection's ``AIRFLOW_CONN_*`` environment variable is seen at once; one in the
metadata database or a secrets backend within this many seconds."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Route:
    """How a session's requests to one base URL go: through which proxy, and the gate they wait at.

    The gate lets as many requests at once as the pool has connections for the host; the requests
    beyond them wait there, each a future, rather than in the connection pool, each with a whole
    request built (URL, headers, timers: kilobytes): thousands wait at once when a triggerer starts.
    """

    proxy: str | None
    proxy_auth: Any  # aiohttp.BasicAuth | None
    gate: asyncio.Semaphore


@dataclass(eq=False)
class SharedSession:
    """A session, its request pace and how many hooks use it; see :func:`lease_session`.

    Example::

        shared = await lease_session(api_key, network)
        try:
            await shared.pace.await_slot()
            async with shared.session.get(url) as response:
                ...
        finally:
            release_session(shared)
    """

    key: tuple[str, NetworkSettings]
    session: aiohttp.ClientSession
    pace: RequestPace
    users: int = 0
    _closer: asyncio.Task[None] | None = field(default=None, repr=False)
    _routes: dict[str, Route] = field(default_factory=dict, repr=False)

    def route(self, base_url: str) -> Route:
        """The :class:`Route` of requests to ``base_url``, worked out once (a path never changes it)."""
        route = self._routes.get(base_url)
        if route is None:
            network = self.key[1]
            proxy, proxy_auth = network.aiohttp_proxy(base_url + "/")
            gate = asyncio.Semaphore(network.max_connections_per_host)
            route = self._routes[base_url] = Route(proxy, proxy_auth, gate)
        return route


_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, NetworkSettings], SharedSession]]
_sessions = weakref.WeakKeyDictionary()
# Work under way per event loop, by key: the coroutines that ask meanwhile wait for the same task.
_under_way: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, asyncio.Task[Any]]]
_under_way = weakref.WeakKeyDictionary()
# Connection reads shared by the coroutines of this process: (expires at, its AIRFLOW_CONN_* value, what was read).
_connection_reads: dict[str, tuple[float, str | None, Any]] = {}


async def _once(key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
    """``await make()``, done once for all the coroutines of this event loop that ask for ``key`` meanwhile."""
    loop = asyncio.get_running_loop()
    under_way = _under_way.setdefault(loop, {})
    task = under_way.get(key)
    if task is None:
        task = under_way[key] = loop.create_task(make())  # type: ignore[arg-type]
        task.add_done_callback(lambda _: under_way.pop(key, None))
    # Shielded: a caller cancelled while it waits must not cancel the work for the others.
    result: T = await asyncio.shield(task)
    return result


async def read_connection_once(conn_id: str, read: Callable[[], Awaitable[T]]) -> T:
    """What ``read`` makes of connection ``conn_id``, or what another coroutine of this process read moments ago.

    See :data:`CONNECTION_REUSE_SECONDS`. A read that fails is not kept: the next caller reads again.
    """
    environment_value = os.environ.get(f"AIRFLOW_CONN_{conn_id.upper()}")
    cached = _connection_reads.get(conn_id)
    if cached is not None and cached[0] > time.monotonic() and cached[1] == environment_value:
        read_before: T = cached[2]
        return read_before
    settings = await _once(("connection", conn_id), read)
    _connection_reads[conn_id] = (time.monotonic() + CONNECTION_REUSE_SECONDS, environment_value, settings)
    return settings


def forget_connection_reads() -> None:
    """Forget the connection reads coroutines share, so that the next one reads the connection again.

    For tests that change a connection in the metadata database between triggers of one process.
    """
    _connection_reads.clear()


async def lease_session(api_key: str, network: NetworkSettings) -> SharedSession:
    """The shared session of this event loop for ``api_key`` and ``network``, counted as one more user.

    Give it back with :func:`release_session`, in a ``finally``.
    """
    loop = asyncio.get_running_loop()
    key = (api_key, network)
    # The session that exists is leased without awaiting anything: thousands of triggers lease it.
    shared = _sessions.get(loop, {}).get(key)
    while shared is None or shared.session.closed:
        shared = await _once(("session", key), lambda: _make_session(key))
    shared.users += 1
    if shared._closer is not None:  # it was lingering: keep it
        closer, shared._closer = shared._closer, None
        closer.cancel()
    return shared


async def _make_session(key: tuple[str, NetworkSettings]) -> SharedSession:
    api_key, network = key
    # What may take time (importing aiohttp, loading certificates) is done off the loop; from here on
    # nothing awaits, so the session is made once.
    aiohttp = await import_off_the_loop("aiohttp")
    ssl_context = await asyncio.to_thread(network.ssl_context)
    by_key = _sessions.setdefault(asyncio.get_running_loop(), {})
    shared = by_key.get(key)
    if shared is None or shared.session.closed:
        session = _new_session(aiohttp, ssl_context, api_key, network)
        shared = by_key[key] = SharedSession(key, session, RequestPace(network.max_requests_per_second))
    return shared


def release_session(shared: SharedSession) -> None:
    """One user fewer; the last one leaves the session to linger, then close."""
    shared.users -= 1
    if shared.users > 0 or shared.session.closed:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # released outside the loop (a hook closed late): nothing can linger
        return
    shared._closer = loop.create_task(_linger_then_close(shared), name="infinityblue-session-linger")


async def _linger_then_close(shared: SharedSession) -> None:
    try:
        await asyncio.sleep(LINGER_SECONDS)
    finally:
        # Cancelled by a new lease (which cleared _closer): keep it. Ended, or cancelled by the loop's
        # shutdown: close, awaited here so the loop does not end with the session open.
        if shared._closer is asyncio.current_task() and shared.users == 0:
            shared._closer = None
            by_key = _sessions.get(asyncio.get_running_loop(), {})
            if by_key.get(shared.key) is shared:
                del by_key[shared.key]
            await shared.session.close()


def users_of(session: aiohttp.ClientSession) -> int:
    """How many hooks of this event loop hold ``session`` (0 once all have given it back, or if it is not shared)."""
    by_key = _sessions.get(asyncio.get_running_loop(), {})
    return next((shared.users for shared in by_key.values() if shared.session is session), 0)


async def close_idle_sessions() -> None:
    """Close this event loop's shared sessions that no hook holds, without waiting for them to linger out.

    For programs that run hooks in a loop they keep open; ``asyncio.run`` and the triggerer need not call it.
    """
    by_key = _sessions.get(asyncio.get_running_loop(), {})
    for key, shared in list(by_key.items()):
        if shared.users == 0:
            del by_key[key]
            if shared._closer is not None:
                closer, shared._closer = shared._closer, None
                closer.cancel()
            await shared.session.close()


def _new_session(aiohttp: Any, ssl_context: ssl.SSLContext, api_key: str, network: NetworkSettings) -> Any:
    network.warn_if_unverified()
    connector = aiohttp.TCPConnector(
        limit=0,  # the per-host cap is the one that matters: one API host per session
        limit_per_host=network.max_connections_per_host,
        keepalive_timeout=KEEPALIVE_SECONDS,
        ttl_dns_cache=DNS_CACHE_SECONDS,
        ssl=ssl_context,
    )
    return aiohttp.ClientSession(
        connector=connector,
        headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT, "Accept": "application/json"},
        # Proxies and certificates come from NetworkSettings; the environment would also bring ~/.netrc.
        trust_env=False,
        # Cookies one trigger got must not ride along with another's requests.
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
    )
