"""One warm ``aiohttp`` session per event loop and connection settings, shared by every trigger.

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
  beyond those wait at the session's gate (:meth:`SharedSession.gate`), before any of them
  is built;
- requests share one :class:`~airflow_provider_infinityblue.pacing.RequestPace`: the
  connection's ``max_requests_per_second``, and a 429's ``Retry-After`` holds every trigger
  using the session, not only the one that got it.

Sessions are kept per event loop: a session belongs to the loop it was created in.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_infinityblue.pacing import RequestPace
from airflow_provider_infinityblue.transport import USER_AGENT, import_off_the_loop

if TYPE_CHECKING:
    import ssl

    import aiohttp

    from airflow_provider_infinityblue.network import NetworkSettings

LINGER_SECONDS = 10.0
"""How long a session nobody uses stays open for the next trigger."""
KEEPALIVE_SECONDS = 300.0
"""How long the client keeps an idle connection: longer than any usual poll interval, so the server decides."""
DNS_CACHE_SECONDS = 60


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
    _gates: dict[str, asyncio.Semaphore] = field(default_factory=dict, repr=False)

    def gate(self, base_url: str) -> asyncio.Semaphore:
        """Held around each request to ``base_url``: as many at once as the pool has connections for its host.

        The requests beyond them wait here, each a future, rather than in the connection pool, each with a
        whole request built (URL, headers, timers: kilobytes); thousands wait at once when a triggerer starts.
        """
        gate = self._gates.get(base_url)
        if gate is None:
            gate = self._gates[base_url] = asyncio.Semaphore(self.key[1].max_connections_per_host)
        return gate


_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, NetworkSettings], SharedSession]]
_sessions = weakref.WeakKeyDictionary()
# Sessions being made, per event loop: the triggers that ask meanwhile wait for the one being made.
_making: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, NetworkSettings], asyncio.Task[SharedSession]]
] = weakref.WeakKeyDictionary()


async def lease_session(api_key: str, network: NetworkSettings) -> SharedSession:
    """The shared session of this event loop for ``api_key`` and ``network``, counted as one more user.

    Give it back with :func:`release_session`, in a ``finally``.
    """
    loop = asyncio.get_running_loop()
    key = (api_key, network)
    # The session that exists is leased without awaiting anything: thousands of triggers lease it.
    shared = _sessions.get(loop, {}).get(key)
    while shared is None or shared.session.closed:
        shared = await _made_session(loop, key)
    shared.users += 1
    if shared._closer is not None:  # it was lingering: keep it
        closer, shared._closer = shared._closer, None
        closer.cancel()
    return shared


async def _made_session(loop: asyncio.AbstractEventLoop, key: tuple[str, NetworkSettings]) -> SharedSession:
    """This loop's session for ``key``, made once however many triggers ask for it while it is being made."""
    making = _making.setdefault(loop, {})
    made = making.get(key)
    if made is None:
        made = making[key] = loop.create_task(_make_session(key), name="infinityblue-session-make")
        made.add_done_callback(lambda _: making.pop(key, None))
    # Shielded: a trigger cancelled while it waits must not cancel the making for the others.
    return await asyncio.shield(made)


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
