"""Which URLs a download may fetch, and how they appear in logs and errors.

A video URL comes from an API answer, so it is untrusted input: only http(s) URLs are
fetched, on the first request and on every redirect hop, and a URL is quoted in a log or
an error only without its query string, fragment and credentials (signed URLs carry
their signature there).

Nor may it reach into the worker's network: :class:`AddressPolicy` says which addresses
a download may connect to (public ones by default, the InfinityBlue connection's own
origin, and what ``allowed_hosts`` / ``allow_private_addresses`` allow), and
:func:`address_checked_pool_classes` enforces it on every connection the download opens,
on the address actually connected to. :func:`resolve_addresses` is the one place a
download resolves host names; :func:`check_proxied_host` checks a host that a proxy is
to reach for us.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import socket
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_infinityblue.exceptions import InfinityBlueDownloadRefusedError
from airflow_provider_infinityblue.transport import PoolClasses, guarded_pool_classes

ALLOWED_SCHEMES = ("http", "https")
# Everything from a "?" to the next blank or quote: the query strings that requests and
# urllib3 put in their exception messages.
QUERY_IN_TEXT = re.compile(r"\?[^\s'\"<>)]*")


def redact_url(url: str) -> str:
    """``url`` fit for a log or an error: no query string, fragment or credentials.

    Signed URLs carry their signature, and sometimes a token, in the query string.

    >>> redact_url("https://user:pw@cdn.example.com/v/1.mp4?X-Amz-Signature=abc#t=3")
    'https://cdn.example.com/v/1.mp4?…'
    >>> redact_url("http://127.0.0.1:8089/videos/t1.mp4")
    'http://127.0.0.1:8089/videos/t1.mp4'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<an unparsable URL>"
    host = parts.netloc.rpartition("@")[2]
    hidden = "?…" if parts.query else ""
    return f"{parts.scheme}://{host}{parts.path}{hidden}" if parts.scheme else f"{host}{parts.path}{hidden}"


def check_scheme(url: str, *, redirected_from: str | None = None) -> None:
    try:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
    except ValueError:
        scheme, host = "", None
    if scheme in ALLOWED_SCHEMES and host:
        return
    if scheme in ALLOWED_SCHEMES:
        reason = "a URL without a host"
    else:
        reason = f"a {scheme}:// URL" if scheme else "not an absolute URL"
    if redirected_from:
        raise InfinityBlueDownloadRefusedError(
            f"Refusing to follow the redirect from {redact_url(redirected_from)} to {redact_url(url)}: "
            f"it is {reason}, and only http:// and https:// video URLs are downloaded"
        )
    raise InfinityBlueDownloadRefusedError(
        f"Refusing to download {redact_url(url)}: it is {reason}; only http:// and https:// video URLs are downloaded"
    )


# -- addresses ---------------------------------------------------------------------------------

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Origin = tuple[str, str, int]
"""A URL's scheme, host (lower case, without brackets or a trailing dot) and port (the default one applied)."""

DEFAULT_PORTS = {"http": 80, "https": 443}

# Checked in this order; the first that holds names why an address is refused.
_CATEGORIES: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("unspecified", (ipaddress.ip_network("0.0.0.0/32"), ipaddress.ip_network("::/128"))),
    ("loopback", (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))),
    ("link-local", (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))),
    (
        "private",
        (
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("172.16.0.0/12"),
            ipaddress.ip_network("192.168.0.0/16"),
            ipaddress.ip_network("fc00::/7"),
        ),
    ),
    ("carrier-grade NAT", (ipaddress.ip_network("100.64.0.0/10"),)),
    ("multicast", (ipaddress.ip_network("224.0.0.0/4"), ipaddress.ip_network("ff00::/8"))),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

REFUSED_CATEGORIES = (*(name for name, _ in _CATEGORIES), "reserved")
"""Every reason :func:`address_category` gives, in the order it checks them."""


def address_category(address: IPAddress) -> str | None:
    """Why a download refuses to connect to ``address``, or None for a global unicast address.

    ``loopback``, ``private`` (RFC 1918, IPv6 unique local fc00::/7), ``link-local``
    (169.254.0.0/16, fe80::/10: cloud metadata services live there), ``carrier-grade NAT``
    (100.64.0.0/10), ``multicast``, ``unspecified``, and ``reserved`` for every other
    address that is not globally reachable (documentation, benchmarking, broadcast, ...).
    An IPv6 address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, 6to4, NAT64)
    is judged by the IPv4 address too.

    >>> [address_category(ipaddress.ip_address(a)) for a in ("127.0.0.1", "169.254.169.254", "::ffff:10.0.0.1")]
    ['loopback', 'link-local', 'private']
    >>> address_category(ipaddress.ip_address("93.184.215.14")) is None
    True
    """
    if isinstance(address, ipaddress.IPv6Address):
        address = ipaddress.IPv6Address(int(address))  # without a %scope
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = address_category(embedded)
            if inner is not None or address.ipv4_mapped is not None:
                return inner
    for name, networks in _CATEGORIES:
        if any(address.version == network.version and address in network for network in networks):
            return name
    return None if address.is_global else "reserved"


def _host_of(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def origin_of(url: str) -> Origin | None:
    """The origin of an http(s) URL, or None when it has none.

    >>> origin_of("HTTP://LocalHost/v1"), origin_of("https://gw.example.com:8443/p")
    (('http', 'localhost', 80), ('https', 'gw.example.com', 8443))
    """
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), parts.hostname, parts.port
    except ValueError:
        return None
    if scheme not in DEFAULT_PORTS or not host:
        return None
    return scheme, _host_of(host), port or DEFAULT_PORTS[scheme]


_NAME = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


@dataclass(frozen=True)
class AllowedHost:
    """One entry of ``allowed_hosts``: a host name pattern or an address network, and maybe a port."""

    name: str | None = None  # "cdn.internal" or "*.internal.example"
    network: IPNetwork | None = None
    port: int | None = None

    @classmethod
    def parse(cls, entry: str) -> AllowedHost:
        """Parse ``host``, ``*.domain``, ``host:port``, an IP address (``[v6]:port`` with a port) or a CIDR network.

        >>> AllowedHost.parse("*.Internal.Example:8443")
        AllowedHost(name='*.internal.example', network=None, port=8443)
        >>> AllowedHost.parse("10.0.0.0/8").network, AllowedHost.parse("[fd00::1]:80").port
        (IPv4Network('10.0.0.0/8'), 80)
        """
        text = entry.strip().lower() if isinstance(entry, str) else ""
        if not text:
            raise ValueError(f"an allowed_hosts entry must be a non-empty string, got {entry!r}")
        host, port_text = text, ""
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest and not rest.startswith(":"):
                raise ValueError(_bad_entry(entry))
            port_text = rest[1:]
        elif text.count(":") == 1:
            host, port_text = text.split(":")
        port: int | None = None
        if port_text or text.endswith(":"):
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ValueError(_bad_entry(entry))
            port = int(port_text)
        try:
            network = ipaddress.ip_network(host, strict=False)
        except ValueError:
            network = None
        if network is not None:
            if port is not None and network.num_addresses > 1:
                raise ValueError(f"{_bad_entry(entry)}: a network takes no port")
            return cls(network=network, port=port)
        host = host.rstrip(".")
        if "/" in host or not _NAME.match(host):
            raise ValueError(_bad_entry(entry))
        return cls(name=host, port=port)

    def matches_name(self, host: str, port: int) -> bool:
        if self.name is None or (self.port is not None and self.port != port):
            return False
        if self.name.startswith("*."):
            return host.endswith(self.name[1:])
        return host == self.name

    def matches_address(self, address: IPAddress, port: int) -> bool:
        if self.network is None or (self.port is not None and self.port != port):
            return False
        if isinstance(address, ipaddress.IPv6Address):
            address = address.ipv4_mapped or ipaddress.IPv6Address(int(address))
        return address.version == self.network.version and address in self.network


def _bad_entry(entry: object) -> str:
    return (
        f"allowed_hosts entry {entry!r} is not a host name (cdn.internal, *.internal.example), "
        "an IP address (10.0.0.5, [fd00::5]) or a CIDR network (10.0.0.0/8), with an optional :port"
    )


def parse_allowed_hosts(value: object) -> tuple[AllowedHost, ...]:
    """``allowed_hosts`` as given to the operator or in a connection extra, parsed.

    A list of entries (parsed ones are kept as they are), a comma-separated string, or a string
    holding a JSON list; None and ``""`` mean none. Raises ``ValueError`` naming the entry that is not understood.

    >>> [h.name or str(h.network) for h in parse_allowed_hosts('cdn.internal, 10.0.0.0/8')]
    ['cdn.internal', '10.0.0.0/8']
    >>> [h.name for h in parse_allowed_hosts('["a.example"]')]
    ['a.example']
    """
    if value is None:
        return ()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError(f"allowed_hosts {value!r} is not a valid JSON list") from None
        else:
            value = [part for part in text.split(",") if part.strip()]
    if not isinstance(value, (list, tuple, set, frozenset)):
        raise ValueError(
            f"allowed_hosts must be a list of host names, addresses or networks, got {type(value).__name__}"
        )
    return tuple(entry if isinstance(entry, AllowedHost) else AllowedHost.parse(entry) for entry in value)


@dataclass(frozen=True)
class AddressPolicy:
    """Which hosts and addresses a download may connect to.

    By default (``AddressPolicy()``) only global unicast addresses: the strictest policy.

    - ``trusted_origins``: origins (see :func:`origin_of`) reached whatever their address:
      the InfinityBlue connection's own base URL, whose videos the local emulator and
      private gateways serve. Another port or scheme on the same host is not trusted.
    - ``allowed_hosts``: host names (exact, or ``*.domain`` for any name under it) that are
      reached whatever their address; IP addresses and CIDR networks whose addresses may
      be connected to. Either may carry a ``:port`` that it is then limited to.
    - ``allow_private_addresses``: connect to any address at all.
    """

    trusted_origins: tuple[Origin, ...] = ()
    allowed_hosts: tuple[AllowedHost, ...] = ()
    allow_private_addresses: bool = False

    @classmethod
    def build(
        cls,
        *,
        base_url: str | None = None,
        allowed_hosts: object = None,
        allow_private_addresses: bool = False,
    ) -> AddressPolicy:
        """A policy trusting ``base_url``'s origin, with ``allowed_hosts`` parsed by :func:`parse_allowed_hosts`."""
        origin = origin_of(base_url) if base_url else None
        return cls(
            trusted_origins=(origin,) if origin else (),
            allowed_hosts=parse_allowed_hosts(allowed_hosts),
            allow_private_addresses=bool(allow_private_addresses),
        )

    def trusts_host(self, scheme: str, host: str, port: int) -> bool:
        """Whether connections to ``host`` skip the address check: a trusted origin, or an allowed host name."""
        host = _host_of(host)
        if (scheme, host, port) in self.trusted_origins:
            return True
        return any(entry.matches_name(host, port) for entry in self.allowed_hosts)

    def refusal(self, address: IPAddress, port: int) -> str | None:
        """Why connecting to ``address`` on ``port`` is refused (see :func:`address_category`), or None."""
        if self.allow_private_addresses:
            return None
        category = address_category(address)
        if category is None or any(entry.matches_address(address, port) for entry in self.allowed_hosts):
            return None
        return category


def resolve_addresses(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` resolves to: the one place where downloads resolve host names.

    An IP address is returned as it is, without a lookup. Raises ``socket.gaierror`` when
    the name does not resolve.
    """
    host = _host_of(host)
    with suppress(ValueError):
        return [ipaddress.ip_address(host)]
    found: list[IPAddress] = []
    for family, _type, _proto, _canonname, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


def _refused(host: str, address: IPAddress, port: int, category: str, *, through_proxy: bool = False) -> str:
    how = "it is to be fetched through a proxy, and " if through_proxy else ""
    article = "an" if category[0] in "aeiou" else "a"
    what = f"{host} is" if host == str(address) else f"{host} resolves to {address},"
    return (
        f"{how}{what} {article} {category} address: downloads reach only public addresses, "
        "besides the InfinityBlue connection's own origin. If this host is yours, allow it with the operator's "
        f"allowed_hosts=[{_entry_for(host, port)!r}] (or allow_private_addresses=True), or with the "
        "extra allowed_hosts (or allow_private_addresses: true) of the InfinityBlue connection"
    )


def _entry_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}"


def check_proxied_host(url: str, policy: AddressPolicy) -> None:
    """Refuse ``url`` when a proxy is to fetch it and its host resolves, here, to a refused address.

    The proxy resolves the name itself, so the connection made here (to the proxy) says
    nothing about the video host: its name is resolved locally with
    :func:`resolve_addresses` instead, and every address it has must be allowed. A name
    that does not resolve here is refused too, unless listed in ``allowed_hosts``.
    Raises :class:`InfinityBlueDownloadRefusedError` (without the URL: the caller adds it).
    """
    origin = origin_of(url)
    if origin is None:
        return
    scheme, host, port = origin
    if policy.trusts_host(scheme, host, port) or policy.allow_private_addresses:
        return
    try:
        addresses = resolve_addresses(host, port)
    except OSError:
        addresses = []
    if not addresses:
        raise InfinityBlueDownloadRefusedError(
            f"it is to be fetched through a proxy, and {host} does not resolve here, so its address cannot be "
            f"checked; if it is a host you trust, list it in allowed_hosts (e.g. allowed_hosts=[{host!r}] on the "
            "operator, or the extra allowed_hosts of the InfinityBlue connection)"
        )
    for address in addresses:
        category = policy.refusal(address, port)
        if category is not None:
            raise InfinityBlueDownloadRefusedError(_refused(host, address, port, category, through_proxy=True))


# -- connections -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def address_checked_pool_classes(policy: AddressPolicy) -> PoolClasses:
    """urllib3 pools (for :func:`~airflow_provider_infinityblue.transport.new_session`) whose direct
    connections go only to addresses ``policy`` allows.

    Their connections resolve the host with :func:`resolve_addresses`, refuse the whole host
    when any of its addresses is refused, connect to the address itself (the ``Host``
    header, TLS SNI and the certificate check keep the host name) and check the address
    actually connected to once more: a DNS answer that changes between the check and the
    connection cannot slip through. Connections to a proxy are left alone (see
    :func:`check_proxied_host`). They obey the answer deadlines of
    :mod:`~airflow_provider_infinityblue.transport` like any other.
    """
    import sys

    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
    from urllib3.util import connection as urllib3_connection

    guarded = guarded_pool_classes()
    # Any: the base classes are built at run time, which mypy cannot follow.
    http_pool: Any = guarded["http"]
    https_pool: Any = guarded["https"]

    def new_checked_socket(conn: Any, scheme: str) -> socket.socket:
        host, port = _host_of(conn._dns_host), conn.port or DEFAULT_PORTS[scheme]
        try:
            addresses = resolve_addresses(host, port)
        except socket.gaierror as error:
            raise NameResolutionError(conn.host, conn, error) from error
        except OSError as error:
            raise NewConnectionError(conn, f"Failed to resolve {host}: {error}") from error
        trusted = policy.trusts_host(scheme, host, port)
        if not trusted:
            for address in addresses:
                category = policy.refusal(address, port)
                if category is not None:
                    raise InfinityBlueDownloadRefusedError(_refused(host, address, port, category))
        last_error: OSError = OSError(f"{host} resolves to no address")
        for address in addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (str(address), port),
                    conn.timeout,
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except OSError as error:
                last_error = error
                continue
            try:
                peer = ipaddress.ip_address(sock.getpeername()[0])
            except (OSError, ValueError) as error:
                sock.close()
                last_error = OSError(f"cannot tell the address connected to: {error}")
                continue
            category = None if trusted else policy.refusal(peer, port)
            if category is not None:
                sock.close()
                raise InfinityBlueDownloadRefusedError(_refused(host, peer, port, category))
            sys.audit("http.client.connect", conn, conn.host, conn.port)
            return sock
        if isinstance(last_error, TimeoutError):
            raise ConnectTimeoutError(
                conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
            ) from last_error
        raise NewConnectionError(conn, f"Failed to establish a new connection: {last_error}") from last_error

    class AddressCheckedHTTPConnection(http_pool.ConnectionCls):  # type: ignore[misc]
        def _new_conn(self) -> socket.socket:
            if self.proxy is not None:  # a connection to the proxy: the video host was checked before
                return super()._new_conn()  # type: ignore[no-any-return]
            return new_checked_socket(self, "http")

    class AddressCheckedHTTPSConnection(https_pool.ConnectionCls):  # type: ignore[misc]
        def _new_conn(self) -> socket.socket:
            if self.proxy is not None:
                return super()._new_conn()  # type: ignore[no-any-return]
            return new_checked_socket(self, "https")

    class AddressCheckedHTTPConnectionPool(http_pool):  # type: ignore[misc]
        ConnectionCls = AddressCheckedHTTPConnection

    class AddressCheckedHTTPSConnectionPool(https_pool):  # type: ignore[misc]
        ConnectionCls = AddressCheckedHTTPSConnection

    return {"http": AddressCheckedHTTPConnectionPool, "https": AddressCheckedHTTPSConnectionPool}
