"""The operator that saves a finished video where it is needed: a local path or object storage."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_infinityblue.download import (
    DEFAULT_ALLOWED_CONTENT_TYPES,
    DEFAULT_CHUNK_BYTES,
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    DownloadSettings,
    download_video,
)
from airflow_provider_infinityblue.retry import RetryPolicy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

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
    """

    template_fields: Sequence[str] = ("url", "destination", "destination_conn_id")
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
        try:
            self.download_settings()
        except ValueError as error:
            raise ValueError(f"{self.task_id}: {error}") from None

    def download_settings(self) -> DownloadSettings:
        """The limits, timeouts and retry policy of this operator's download."""
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
        video = download_video(
            self.url,
            self.destination,
            # A template that renders to nothing means no connection.
            destination_conn_id=self.destination_conn_id or None,
            settings=self.download_settings(),
            logger=self.log,
        )
        context["ti"].xcom_push(key=SIZE_BYTES_XCOM_KEY, value=video.size_bytes)
        context["ti"].xcom_push(key=SHA256_XCOM_KEY, value=video.sha256)
        return video.destination
