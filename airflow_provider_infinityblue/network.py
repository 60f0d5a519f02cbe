"""Which proxy a request goes through and which certificates it trusts: decided here, for every path.

The worker's ``requests`` session, the triggerer's ``aiohttp`` session and the video
download all ask one :class:`NetworkSettings` value, read from the InfinityBlue
connection's extras and the process environment when the connection is read:

- **proxy**: the ``proxy`` extra (a URL, or ``direct`` for none) or else ``HTTPS_PROXY``
  / ``HTTP_PROXY`` / ``ALL_PROXY`` by the request's scheme, in either case; ``NO_PROXY``
  (host names, ``.domain`` suffixes, IPs, CIDR networks, ``*``) sends a host direct;
- **trust**: the ``ca_bundle`` extra (a PEM file or a directory of them), or else
  ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, ``SSL_CERT_FILE``, ``SSL_CERT_DIR``, or else
  ``certifi``'s bundle, the one ``requests`` uses by default; the ``tls_verification``
  extra set to ``skip-insecure`` turns certificate checks off, with one loud warning per
  process and connection.

Neither library reads the environment itself (``trust_env`` stays off): that would also
read ``~/.netrc`` and send the credentials it holds to whichever host matches, an API or a
video host. Proxy credentials, in the proxy URL, go to the proxy alone.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError

if TYPE_CHECKING:
    import ssl
    from collections.abc import Mapping

VERIFY = "verify"
SKIP_VERIFICATION = "skip-insecure"
TLS_VERIFICATION_CHOICES = (VERIFY, SKIP_VERIFICATION)
"""The values of the ``tls_verification`` extra: a choice to make, not a switch to flip."""
DIRECT = "direct"
"""The ``proxy`` extra's value for "no proxy for this connection, whatever the environment says"."""
DEFAULT_MAX_CONNECTIONS_PER_HOST = 16
"""The triggerer's shared pool opens at most this many connections to one host (per connection settings).

Over TLS each open connection holds about 300 KB (the event loop's read buffer), so 16 cost
about 5 MB however many generations wait; on loopback one connection answers about a
thousand polls a second, and a distant API with 100 ms round trips still gets 160 a second.
"""

_PROXY_VARIABLES = {"https": ("https_proxy", "all_proxy"), "http": ("http_proxy", "all_proxy")}
_CA_FILE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NetworkSettings:
    """Proxy, trust and pool limits for one InfinityBlue connection, from its extras and the environment.

    Build it with :meth:`from_extras` (the hook and the download operator do); every request
    then asks :meth:`proxy_for` and uses :attr:`ca_file`/:attr:`ca_dir`/:attr:`verify`.

    Example::

        settings = NetworkSettings.from_extras({"proxy": "http://egress.corp:3128", "ca_bundle": "/etc/corp-ca.pem"})
        settings.proxy_for("https://api.getinfinityblue.com/v1/video/generations")  # 'http://egress.corp:3128'
        requests.get(url, proxies=settings.requests_proxies(url), verify=settings.requests_verify)

    :param https_proxy: the proxy for ``https://`` URLs, or None.
    :param http_proxy: the proxy for ``http://`` URLs, or None.
    :param no_proxy: the ``NO_PROXY`` entries: hosts reached directly.
    :param ca_file: a PEM bundle to trust instead of the default one.
    :param ca_dir: a directory of hashed PEM certificates to trust (``SSL_CERT_DIR``).
    :param verify: False when certificate checks are off (``tls_verification: skip-insecure``).
    :param max_connections_per_host: the triggerer pool's cap of open connections to one host.
    :param max_requests_per_second: the shared request rate cap of the triggerer's pool, or None.
    :param label: what the warnings name: the connection id.
    """

    https_proxy: str | None = None
    http_proxy: str | None = None
    no_proxy: tuple[str, ...] = ()
    ca_file: str | None = None
    ca_dir: str | None = None
    verify: bool = True
    max_connections_per_host: int = DEFAULT_MAX_CONNECTIONS_PER_HOST
    max_requests_per_second: float | None = None
    label: str = "?"

    @classmethod
    def from_extras(
        cls,
        extras: Mapping[str, Any],
        *,
        conn_id: str = "?",
        environ: Mapping[str, str] | None = None,
    ) -> NetworkSettings:
        """The settings for a connection's extras (``proxy``, ``ca_bundle``, ``tls_verification``,
        ``max_connections_per_host``, ``max_requests_per_second``), with the environment filling the rest.

        The UI's ``extra__infinityblue__`` prefixed names are read too.
        """
        from airflow_provider_infinityblue.hooks.infinityblue import ConnectionExtras

        values = ConnectionExtras(conn_id, extras)
        environ = os.environ if environ is None else environ
        lowered = {name.lower(): value for name, value in environ.items() if value and name.lower().endswith("proxy")}

        proxy_extra = _text(values.get("proxy"))
        if proxy_extra and proxy_extra.lower() == DIRECT:
            https_proxy = http_proxy = None
        elif proxy_extra:
            https_proxy = http_proxy = _check_proxy_url(proxy_extra, f"Airflow connection '{conn_id}': extra 'proxy'")
        else:
            https_proxy, http_proxy = (
                _environment_proxy(lowered, _PROXY_VARIABLES[scheme]) for scheme in ("https", "http")
            )
        no_proxy = tuple(entry.strip() for entry in lowered.get("no_proxy", "").split(",") if entry.strip())

        ca_file = ca_dir = None
        ca_bundle = _text(values.get("ca_bundle"))
        if ca_bundle:
            ca_file, ca_dir = _check_ca_path(ca_bundle, f"Airflow connection '{conn_id}': extra 'ca_bundle'")
        else:
            for name in _CA_FILE_VARIABLES:
                if environ.get(name):
                    ca_file, ca_dir = _check_ca_path(environ[name], f"${name}")
                    break
            else:
                if environ.get("SSL_CERT_DIR"):
                    ca_file, ca_dir = _check_ca_path(environ["SSL_CERT_DIR"], "$SSL_CERT_DIR")

        verification = _text(values.get("tls_verification")) or VERIFY
        if verification not in TLS_VERIFICATION_CHOICES:
            raise InfinityBlueConfigurationError(
                f"Airflow connection '{conn_id}': extra 'tls_verification' must be one of "
                f"{', '.join(TLS_VERIFICATION_CHOICES)}, got {verification!r}"
            )
        rate = values.number("max_requests_per_second", 0, minimum=0)
        return cls(
            https_proxy=https_proxy,
            http_proxy=http_proxy,
            no_proxy=no_proxy,
            ca_file=ca_file,
            ca_dir=ca_dir,
            verify=verification == VERIFY,
            max_connections_per_host=int(
                values.number("max_connections_per_host", DEFAULT_MAX_CONNECTIONS_PER_HOST, minimum=1, integer=True)
            ),
            max_requests_per_second=rate or None,
            label=conn_id,
        )

    @classmethod
    def from_environment(cls) -> NetworkSettings:
        """The settings without a connection: the environment's proxies and certificates only."""
        return cls.from_extras({}, conn_id="(no connection)")

    # -- proxies ------------------------------------------------------------------------------

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL that ``url`` is fetched through, or None for a direct connection."""
        parts = urlsplit(url)
        proxy = self.https_proxy if parts.scheme == "https" else self.http_proxy if parts.scheme == "http" else None
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if proxy is None or _bypasses_proxy(parts.hostname or "", port, self.no_proxy):
            return None
        return proxy

    def requests_proxies(self, url: str) -> dict[str, str]:
        """``proxies=`` for a ``requests`` call on ``url`` (empty: direct)."""
        proxy = self.proxy_for(url)
        return {} if proxy is None else {urlsplit(url).scheme: proxy}

    def aiohttp_proxy(self, url: str) -> tuple[str | None, Any]:
        """``(proxy, proxy_auth)`` for an ``aiohttp`` request on ``url``: the URL without, and the credentials apart."""
        proxy = self.proxy_for(url)
        if proxy is None:
            return None, None
        return _split_proxy_credentials(proxy)

    # -- trust ----------------------------------------------------------------------------------

    @property
    def requests_verify(self) -> bool | str:
        """``verify=`` for ``requests``: the CA file or directory, True for certifi's bundle, or False."""
        if not self.verify:
            return False
        return self.ca_file or self.ca_dir or True

    def ssl_context(self) -> ssl.SSLContext:
        """The ``ssl.SSLContext`` for ``aiohttp``: the same trust as :attr:`requests_verify`, one per process."""
        return _ssl_context(self.ca_file, self.ca_dir, self.verify)

    def warn_if_unverified(self) -> None:
        """Log, once per process and connection, that certificates are not checked."""
        if self.verify:
            return
        with _warned_lock:
            if self.label in _warned:
                return
            _warned.add(self.label)
        _log.warning(
            "TLS CERTIFICATE CHECKS ARE OFF for Airflow connection '%s' (extra tls_verification=%s): any host "
            "on the network path can read and change its requests, the API key included. Point the "
            "ca_bundle extra at your CA instead.",
            self.label,
            SKIP_VERIFICATION,
        )

    def secrets(self) -> list[str]:
        """The proxy passwords these settings hold, to mask in logs."""
        secrets = []
        for proxy in {self.https_proxy, self.http_proxy} - {None}:
            password = urlsplit(proxy).password
            if password:
                secrets.append(unquote(password))
        return secrets


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value).strip() or None


def _environment_proxy(lowered: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if lowered.get(name):
            return _check_proxy_url(lowered[name], f"${name.upper()}")
    return None


def _check_proxy_url(value: str, where: str) -> str:
    """A proxy URL as ``scheme://[user:password@]host:port``; a bare ``host:port`` gets ``http://``."""
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InfinityBlueConfigurationError(
            f"{where} must be an http:// or https:// proxy URL, got {_redact_proxy(value)!r}"
        )
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here, not at the first request
    except ValueError:
        raise InfinityBlueConfigurationError(
            f"{where} has a port that is not a number: {_redact_proxy(value)!r}"
        ) from None
    return text


def _redact_proxy(proxy: str | None) -> str | None:
    if proxy is None:
        return None
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    if parts.password is None:
        return proxy
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _split_proxy_credentials(proxy: str) -> tuple[str, Any]:
    parts = urlsplit(proxy)
    if parts.username is None:
        return proxy, None
    import aiohttp

    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    auth = aiohttp.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")), auth


def _check_ca_path(value: str, where: str) -> tuple[str | None, str | None]:
    path = os.path.expanduser(value.strip())
    if os.path.isdir(path):
        return None, path
    if os.path.isfile(path):
        return path, None
    raise InfinityBlueConfigurationError(f"{where} names {path!r}, which is neither a file nor a directory")


def _bypasses_proxy(host: str, port: int | None, no_proxy: tuple[str, ...]) -> bool:
    """Whether ``NO_PROXY`` sends ``host`` direct: ``*``, an equal name or a ``.suffix``, an IP, a CIDR network.

    >>> _bypasses_proxy("api.corp.example", None, (".corp.example",))
    True
    >>> _bypasses_proxy("10.1.2.3", None, ("10.0.0.0/8",)), _bypasses_proxy("example.com", 443, ("example.com:80",))
    (True, False)
    """
    host = host.lower().rstrip(".")
    address = _ip(host)
    for entry in no_proxy:
        entry = entry.lower().strip()
        if entry == "*":
            return True
        entry_port: int | None = None
        if entry.count(":") == 1 and not entry.endswith("]"):  # name:port or ipv4:port, not a bare IPv6
            entry, _, port_text = entry.partition(":")
            entry_port = int(port_text) if port_text.isdigit() else None
            if entry_port is not None and port is not None and entry_port != port:
                continue
        entry = entry.strip("[]").rstrip(".")
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        bare = entry.lstrip("*").lstrip(".")
        if bare and (host == bare or host.endswith("." + bare)):
            return True
    return False


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@functools.lru_cache(maxsize=16)
def _ssl_context(ca_file: str | None, ca_dir: str | None, verify: bool) -> ssl.SSLContext:
    import ssl

    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is None and ca_dir is None:
        import certifi  # requests' own default bundle: the same trust as the worker's requests

        ca_file = certifi.where()
    return ssl.create_default_context(cafile=ca_file, capath=ca_dir)
