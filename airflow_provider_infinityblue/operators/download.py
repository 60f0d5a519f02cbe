"""The operator that saves a finished video where it is needed: a local path or object storage."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_infinityblue.download.constants import (
    DEFAULT_ALLOWED_CONTENT_TYPES,
    DEFAULT_CHUNK_BYTES,
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
)
from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError
from airflow_provider_infinityblue.network import NetworkSettings
from airflow_provider_infinityblue.redaction import protect_secrets
from airflow_provider_infinityblue.retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.openlineage.extractors import OperatorLineage
    from airflow.sdk import Context

    from airflow_provider_infinityblue.download.destinations import DownloadedVideo
    from airflow_provider_infinityblue.download.safety import AddressPolicy, AllowedHost
    from airflow_provider_infinityblue.download.transfer import DownloadSettings

# The download engine (download.safety, .transfer, .destinations) is imported by the functions that use it,
# when an operator is created or runs: DAG files that only import this module do not load it.

SIZE_BYTES_XCOM_KEY = "size_bytes"
SHA256_XCOM_KEY = "sha256"


class InfinityBlueDownloadVideoOperator(BaseOperator):
    """Save a video from its URL to a local path or to object storage; return where it went.

    The video is streamed in chunks of ``chunk_bytes`` (memory stays constant whatever its
    size) to a temporary file, and reaches ``destination`` only once complete: a failed or
    interrupted download leaves nothing there. ``destination`` names the file: a local path
    (missing directories are created), a ``file://`` URL, or any URL that Airflow's
    ``ObjectStoragePath`` can write with the filesystems installed on the workers
    (``s3://`` needs ``apache-airflow-providers-amazon[s3fs]``, ``gs://`` the Google
    provider, ...), using the connection ``destination_conn_id``.

    Video URLs usually point at a CDN, often signed, so the download sends no credentials
    at all (never the InfinityBlue API key), takes only http(s) URLs, checks every redirect
    hop itself, and keeps query strings out of logs and errors. Answers that are not a
    video are refused (an expired signed URL often answers with an HTML page), and so is a
    video larger than ``max_bytes``. Connection errors, stalls, 429 and 5xx answers are
    retried with capped backoff, resuming with an HTTP ``Range`` request where the server
    allows it, until ``timeout`` runs out: a host that trickles the video cannot hold the
    worker past it.

    The video URL comes from an API answer, so the download connects only to public
    addresses: a host (the first URL's or a redirect's) that resolves to a loopback,
    private (RFC 1918, IPv6 unique local), link-local (169.254.0.0/16, fe80::/10, where
    cloud metadata services answer), carrier-grade NAT, multicast, unspecified or reserved
    address is refused before any request is sent to it. The address is checked on the
    connection itself, so a DNS answer that changes in between cannot slip through; through
    an HTTP(S) proxy, the host's name is resolved and checked here. Two exceptions: the
    origin (scheme, host and port) of the InfinityBlue connection ``infinityblue_conn_id``,
    whose own videos are allowed (the local emulator and private gateways serve them there;
    another port on that host is not), and what ``allowed_hosts`` and
    ``allow_private_addresses`` allow, on the operator or as extras of that connection.

    Returns the destination (a relative local path made absolute) and pushes the video's
    size (XCom key ``size_bytes``) and SHA-256 in hex (key ``sha256``).

    Example, in a DAG file::

        import pendulum
        from airflow.sdk import DAG

        from airflow_provider_infinityblue.operators.infinityblue import (
            InfinityBlueDownloadVideoOperator,
            InfinityBlueGenerateVideoOperator,
        )

        with DAG("daily_video", schedule="@daily", start_date=pendulum.datetime(2026, 1, 1)):
            generate = InfinityBlueGenerateVideoOperator(task_id="generate", prompt="A paper boat, {{ ds }}")
            download = InfinityBlueDownloadVideoOperator(
                task_id="download",
                url="{{ ti.xcom_pull(task_ids='generate') }}",
                destination="s3://my-bucket/videos/{{ ds }}.mp4",  # or a local path: "/data/videos/{{ ds }}.mp4"
                destination_conn_id="aws_default",
                # Videos on a private host of your own (a public CDN needs nothing here):
                allowed_hosts=["videos.internal.example", "10.20.0.0/16"],
            )
            generate >> download

    :param url: the video's http(s) URL (templated), e.g. the return value of
        :class:`InfinityBlueGenerateVideoOperator`.
    :param destination: the file to write (templated): a local path or an object storage URL.
    :param destination_conn_id: the Airflow connection of the object storage (templated);
        unused for local paths.
    :param max_bytes: the largest video accepted, refused from its ``Content-Length`` when
        the server sends one, and stopped while streaming otherwise.
    :param allowed_content_types: the ``Content-Type`` values accepted; an entry ending in
        ``/`` accepts a whole family (``video/``), ``*`` accepts anything.
    :param chunk_bytes: how much is read and written at a time.
    :param connect_timeout: seconds to wait for a connection to the video host.
    :param read_timeout: the stall limit: when no byte arrives for ``read_timeout`` seconds
        (the answer's headers or the next bytes of the video), the attempt fails and is
        retried, resuming where it stopped when the host allows it.
    :param max_attempts: attempts, the first included, before a transient failure fails the task.
    :param timeout: the most the whole download may take (seconds or a ``timedelta``),
        every attempt and the waits between them included; when it runs out the task
        fails and nothing is saved. A positive, finite number.
    :param infinityblue_conn_id: the InfinityBlue connection (templated) whose base URL's
        origin downloads may reach whatever its address, and whose extras
        ``allowed_hosts`` and ``allow_private_addresses`` apply too. No API key is needed
        for this, and a connection that does not exist means no trusted origin.
    :param allowed_hosts: hosts that may be reached although their address is not public,
        added to the connection's: a host name (``videos.internal.example``), any name
        under a domain (``*.internal.example``), an IP address (``10.0.0.5``,
        ``[fd00::5]``) or a CIDR network (``10.20.0.0/16``); a name or an address may carry
        a ``:port`` it is then limited to. A name is reached whatever it resolves to; an
        address or network allows connecting to those addresses. A list, or a
        comma-separated string.
    :param allow_private_addresses: ``True`` to connect to any address at all, ``False``
        to refuse non-public ones even where the connection's extra allows them; ``None``
        (the default) leaves it to the connection's extra, else ``False``.
    """

    template_fields: Sequence[str] = ("url", "destination", "destination_conn_id", "infinityblue_conn_id")
    ui_color = "#0f766e"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        url: str,
        destination: str,
        destination_conn_id: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        allowed_content_types: Sequence[str] = DEFAULT_ALLOWED_CONTENT_TYPES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        max_attempts: int = 5,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        infinityblue_conn_id: str = "infinityblue_default",
        allowed_hosts: Sequence[str] | str | None = None,
        allow_private_addresses: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.destination = destination
        self.destination_conn_id = destination_conn_id
        self.max_bytes = max_bytes
        # A lone string would otherwise be read as a sequence of one-letter types.
        self.allowed_content_types = (
            (allowed_content_types,) if isinstance(allowed_content_types, str) else tuple(allowed_content_types)
        )
        self.chunk_bytes = chunk_bytes
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        # Anything else is left as given, for DownloadSettings to refuse with the parameter's name.
        self.timeout = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
        # Not "retry_policy": BaseOperator has its own, for retries of the whole task.
        self.download_retry_policy = RetryPolicy(max_attempts=max_attempts)
        self.infinityblue_conn_id = infinityblue_conn_id
        self.allowed_hosts = allowed_hosts
        self.allow_private_addresses = allow_private_addresses
        try:
            self.download_settings()
            check_address_allowance(allowed_hosts, allow_private_addresses)
        except ValueError as error:
            raise ValueError(f"{self.task_id}: {error}") from None
        self.saved_video: DownloadedVideo | None = None  # once saved: for the OpenLineage facets

    def download_settings(self) -> DownloadSettings:
        """The limits, timeouts and retry policy of this operator's download."""
        from airflow_provider_infinityblue.download.transfer import DownloadSettings

        return DownloadSettings(
            max_bytes=self.max_bytes,
            allowed_content_types=self.allowed_content_types,
            chunk_bytes=self.chunk_bytes,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            retry=self.download_retry_policy,
            timeout=self.timeout,
        )

    def execute(self, context: Context) -> str:
        policy, network = download_connection_settings(
            self.infinityblue_conn_id or None,
            allowed_hosts=self.allowed_hosts,
            allow_private_addresses=self.allow_private_addresses,
        )
        from airflow_provider_infinityblue.download import download_video

        video = download_video(
            self.url,
            self.destination,
            # A template that renders to nothing means no connection.
            destination_conn_id=self.destination_conn_id or None,
            settings=replace(self.download_settings(), address_policy=policy, network=network),
            logger=self.log,
        )
        self.saved_video = video
        context["ti"].xcom_push(key=SIZE_BYTES_XCOM_KEY, value=video.size_bytes)
        context["ti"].xcom_push(key=SHA256_XCOM_KEY, value=video.sha256)
        return video.destination

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """The lineage of a saved video: from its URL (without the query) to its destination.

        Called by the OpenLineage provider, when it is installed and configured. A local destination is
        in the ``file`` namespace; an object storage URL's namespace is its scheme and bucket.
        """
        from airflow_provider_infinityblue.operators.openlineage import download_lineage

        return download_lineage(self)


def check_address_allowance(allowed_hosts: object, allow_private_addresses: object) -> None:
    """Raise ``ValueError`` for an operator's ``allowed_hosts`` or ``allow_private_addresses`` that cannot be used."""
    from airflow_provider_infinityblue.download.safety import parse_allowed_hosts

    parse_allowed_hosts(allowed_hosts)
    if allow_private_addresses is not None and not isinstance(allow_private_addresses, bool):
        raise ValueError(f"allow_private_addresses must be True, False or None, got {allow_private_addresses!r}")


def download_connection_settings(
    conn_id: str | None,
    *,
    allowed_hosts: Sequence[str] | str | None = None,
    allow_private_addresses: bool | None = None,
) -> tuple[AddressPolicy, NetworkSettings]:
    """The addresses a download may reach, and its proxy and trust, from the InfinityBlue connection ``conn_id``.

    The network settings are the connection's ``proxy``, ``ca_bundle`` and ``tls_verification``
    extras with the environment's proxies and certificates (see
    :class:`~airflow_provider_infinityblue.network.NetworkSettings`): the same as the API's.

    The connection's base URL (host, port, schema: see ``resolve_base_url``) is the trusted
    origin; its extras ``allowed_hosts`` (a comma-separated string or a JSON list) and
    ``allow_private_addresses`` (a boolean, or ``"true"``/``"false"``) apply, also under the
    ``extra__infinityblue__`` prefix of the UI forms. ``allowed_hosts`` given here adds to
    the connection's; ``allow_private_addresses`` given here (not None) replaces it. A
    connection that does not exist, or ``conn_id=None``, gives no trusted origin and the
    environment's network settings.
    """
    from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

    from airflow_provider_infinityblue.download.safety import AddressPolicy, parse_allowed_hosts
    from airflow_provider_infinityblue.hooks.infinityblue import ConnectionExtras, resolve_base_url

    base_url: str | None = None
    connection_hosts: tuple[AllowedHost, ...] = ()
    private = False
    network = NetworkSettings.from_environment()
    if conn_id:
        try:
            conn = BaseHook.get_connection(conn_id)
        except AirflowNotFoundException:
            conn = None
        if conn is not None:
            base_url = resolve_base_url(conn.host, conn.port, conn.schema, conn_id=conn_id)
            extras = ConnectionExtras(conn_id, conn.extra_dejson)
            try:
                connection_hosts = parse_allowed_hosts(extras.get("allowed_hosts") or None)
            except ValueError as error:
                raise InfinityBlueConfigurationError(f"Airflow connection '{conn_id}': extra {error}") from None
            private = extras.boolean("allow_private_addresses")
            network = NetworkSettings.from_extras(conn.extra_dejson, conn_id=conn_id)
            protect_secrets(network.secrets())
    policy = AddressPolicy.build(
        base_url=base_url,
        allowed_hosts=connection_hosts + parse_allowed_hosts(allowed_hosts),
        allow_private_addresses=private if allow_private_addresses is None else allow_private_addresses,
    )
    return policy, network
