"""The hook that talks to the InfinityBlue API: connection, submission, status, waiting.

Workers use the synchronous methods (one keep-alive ``requests.Session`` per hook);
triggers use the ``a``-prefixed coroutines on one ``aiohttp.ClientSession`` that lives
as long as the hook and is closed by ``async with`` or :meth:`InfinityBlueHook.aclose`.
Neither HTTP library is imported until the first call, so DAG files parse fast.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from airflow.providers.common.compat.sdk import AirflowNotFoundException, BaseHook

from airflow_provider_infinityblue import DEFAULT_BASE_URL, get_provider_info
from airflow_provider_infinityblue.exceptions import (
    InfinityBlueAmbiguousSubmitError,
    InfinityBlueAPIError,
    InfinityBlueAuthenticationError,
    InfinityBlueConfigurationError,
    InfinityBlueConnectionError,
    InfinityBlueError,
    InfinityBlueNotFoundError,
    InfinityBlueRateLimitError,
    InfinityBlueResponseError,
    InfinityBlueServerError,
    InfinityBlueValidationError,
)
from airflow_provider_infinityblue.models import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_PROMPT_CHARS,
    Generation,
    GenerationRequest,
    check_prompt_length,
)
from airflow_provider_infinityblue.network import NetworkSettings
from airflow_provider_infinityblue.redaction import DETAIL_LIMIT, protect_secrets, scrub, scrub_answer, scrub_json
from airflow_provider_infinityblue.retry import RetryPolicy
from airflow_provider_infinityblue.session_pool import (
    SharedSession,
    lease_session,
    read_connection_once,
    release_session,
)
from airflow_provider_infinityblue.transport import (
    REQUEST_ID_HEADER,
    USER_AGENT,
    answer_deadline,
    answer_timeout,
    enforce_deadline,
    new_session,
    request_timeouts,
)
from airflow_provider_infinityblue.wait import DEFAULT_NOT_FOUND_GRACE, GenerationWait, check_positive_seconds

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from types import TracebackType

    import aiohttp
    import requests
    from airflow.sdk import Connection

GENERATIONS_PATH = "/v1/video/generations"
_SINGLE_LOOK = RetryPolicy(max_attempts=1)
MAX_ANSWER_BYTES = 4 * 1024 * 1024
"""The largest API answer read (4 MiB). A larger one is refused without being read whole: to a ``POST`` it
is an :class:`InfinityBlueAmbiguousSubmitError` (the generation may exist), to a ``GET`` a non-transient
:class:`InfinityBlueResponseError` that says its size."""
MAX_ERROR_ANSWER_BYTES = 64 * 1024
"""Of an answer with an error status, only this much (64 KiB) is read, for its code and message."""
_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class InfinityBlueConnectionSettings:
    """Everything the hook reads from an Airflow connection, checked once.

    The API key is kept out of ``repr``.
    """

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES
    max_prompt_chars: int = DEFAULT_MAX_PROMPT_CHARS
    network: NetworkSettings = field(default_factory=NetworkSettings)
    default_model: str | None = None
    """The ``default_model`` extra: the model of a request that names none (None when unset or empty)."""

    @classmethod
    def from_connection(cls, conn: Connection) -> InfinityBlueConnectionSettings:
        conn_id = conn.conn_id
        api_key = (conn.password or "").strip()
        if not api_key:
            raise InfinityBlueConfigurationError(
                f"Airflow connection '{conn_id}' has no InfinityBlue API key: put it in the connection's "
                "password field (labelled 'API Key' in the UI)."
            )
        extras = ConnectionExtras(conn_id, conn.extra_dejson)
        defaults = RetryPolicy()
        return cls(
            conn_id=conn_id,
            base_url=resolve_base_url(conn.host, conn.port, conn.schema, conn_id=conn_id),
            api_key=api_key,
            connect_timeout=extras.number("connect_timeout", 10.0, minimum=0.001),
            read_timeout=extras.number("read_timeout", 60.0, minimum=0.001),
            retry=RetryPolicy(
                max_attempts=int(extras.number("max_attempts", defaults.max_attempts, minimum=1, integer=True)),
                initial_backoff=extras.number("initial_backoff", defaults.initial_backoff, minimum=0),
                max_backoff=extras.number("max_backoff", defaults.max_backoff, minimum=0),
                max_retry_after=extras.number("max_retry_after", defaults.max_retry_after, minimum=0),
            ),
            max_image_bytes=int(
                extras.number("max_image_mb", DEFAULT_MAX_IMAGE_BYTES / 1024 / 1024, minimum=0.000001) * 1024 * 1024
            ),
            max_prompt_chars=int(extras.number("max_prompt_chars", DEFAULT_MAX_PROMPT_CHARS, minimum=1, integer=True)),
            network=NetworkSettings.from_extras(conn.extra_dejson, conn_id=conn_id),
            default_model=extras.text("default_model"),
        )

    def secrets(self) -> list[str]:
        """What must never show in a log: the API key, and the password of a proxy URL."""
        return [self.api_key, *self.network.secrets()]


@dataclass(frozen=True)
class ConnectionExtras:
    """The extras of an ``infinityblue`` connection, read and checked; errors name the connection and the extra."""

    conn_id: str
    values: Mapping[str, Any]

    def get(self, name: str) -> Any:
        """The extra's raw value, or None; the UI of some Airflow versions stores form fields under a prefixed name."""
        return self.values.get(name, self.values.get(f"extra__infinityblue__{name}"))

    def boolean(self, name: str) -> bool:
        """A boolean extra (``true``/``false`` in any case as text); unset means False."""
        value = self.get(name)
        if value is None or value == "":
            return False
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise InfinityBlueConfigurationError(
            f"Airflow connection '{self.conn_id}': extra {name!r} must be true or false, got {value!r}"
        )

    def text(self, name: str) -> str | None:
        """A text extra, stripped; unset, empty or blank means None."""
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise InfinityBlueConfigurationError(
                f"Airflow connection '{self.conn_id}': extra {name!r} must be a string, got {value!r}"
            )
        return value.strip() or None

    def number(self, name: str, default: float, *, minimum: float, integer: bool = False) -> float:
        value = self.get(name)
        if value is None or value == "":
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
            if integer and not number.is_integer():
                raise ValueError
        except (TypeError, ValueError):
            kind = "an integer" if integer else "a number"
            raise InfinityBlueConfigurationError(
                f"Airflow connection '{self.conn_id}': extra {name!r} must be {kind}, got {value!r}"
            ) from None
        if number < minimum:
            raise InfinityBlueConfigurationError(
                f"Airflow connection '{self.conn_id}': extra {name!r} must be at least {minimum:g}, got {value!r}"
            )
        return number


def resolve_base_url(
    host: str | None, port: int | None = None, schema: str | None = None, *, conn_id: str = "?"
) -> str:
    """The API base URL for a connection's host, port and schema.

    A full URL is used as given, a bare host name gets ``https://``, an empty host means
    the public API; a port is added when the URL has none, and ``schema`` (the path of a
    connection URI) becomes a path prefix when the URL has none.

    >>> resolve_base_url("http://127.0.0.1:8089"), resolve_base_url("gw.example.com", 8443)
    ('http://127.0.0.1:8089', 'https://gw.example.com:8443')
    >>> resolve_base_url(None), resolve_base_url("https://gw.example.com/prefix/")
    ('https://api.getinfinityblue.com', 'https://gw.example.com/prefix')
    """
    text = (host or "").strip()
    if not text:
        text = DEFAULT_BASE_URL
    elif "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InfinityBlueConfigurationError(
            f"Airflow connection '{conn_id}': host {host!r} is not an http(s) URL or a host name"
        )
    netloc, path = parts.netloc, parts.path.rstrip("/")
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    if schema and schema.strip("/") and not path:
        path = "/" + schema.strip("/")
    return urlunsplit((parts.scheme, netloc, path, "", ""))


class InfinityBlueHook(BaseHook):
    """Submit video generations to InfinityBlue and follow them.

    The connection (type ``infinityblue``) holds the API key in its password field and
    the base URL in its host field; extras tune timeouts and retries (see the README).

    Example::

        from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
        from airflow_provider_infinityblue.models import GenerationRequest

        with InfinityBlueHook("infinityblue_default") as hook:
            task_id = hook.submit_generation(GenerationRequest(prompt="A fox in snow", model="kling-v2-5-turbo"))
            video = hook.wait_for_generation(task_id, poll_interval=5, timeout=900)
            print(video.video_url)

    In a trigger, use the coroutines inside ``async with``::

        async with InfinityBlueHook("infinityblue_default") as hook:
            generation = await hook.aget_generation(task_id)

    :param infinityblue_conn_id: the Airflow connection to use.
    """

    conn_name_attr = "infinityblue_conn_id"
    default_conn_name = "infinityblue_default"
    conn_type = "infinityblue"
    hook_name = "InfinityBlue"

    def __init__(self, infinityblue_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.infinityblue_conn_id = infinityblue_conn_id
        self._settings: InfinityBlueConnectionSettings | None = None
        self._session: requests.Session | None = None
        self._lease: SharedSession | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form's standard fields, for Airflow 3.0 and 3.1 (3.2+ reads the provider info)."""
        behaviour = _connection_type_info()["ui-field-behaviour"]
        return {key.replace("-", "_"): value for key, value in behaviour.items()}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The connection form's extra fields, for Airflow 3.0 and 3.1 (3.2+ reads ``conn-fields``).

        Those versions build the form from WTForms fields, and only where ``wtforms`` is installed
        (it comes with the FAB provider); the same ``conn-fields`` of the provider info describe them.
        """
        from wtforms import BooleanField, IntegerField, StringField
        from wtforms.validators import Optional

        widgets: dict[str, Any] = {}
        for name, spec in _connection_type_info()["conn-fields"].items():
            schema = spec["schema"]
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            # Every extra may be left empty (its default); without Optional() an empty IntegerField is an error.
            validators = [Optional()]
            if "enum" in schema:  # these versions' forms take no select field: the choices go in the description
                choices = " or ".join(repr(choice) for choice in schema["enum"] if choice is not None)
                description = f"{spec['description']} One of {choices}."
                widgets[name] = StringField(spec["label"], validators=validators, description=description)
                continue
            # WTForms has no float field that these Airflow versions accept: numbers go in as text.
            field_class = BooleanField if "boolean" in types else IntegerField if "integer" in types else StringField
            widgets[name] = field_class(spec["label"], validators=validators, description=spec["description"])
        return widgets

    # -- connection -------------------------------------------------------------------------

    @property
    def settings(self) -> InfinityBlueConnectionSettings:
        """The connection's settings, read once per hook."""
        if self._settings is None:
            with explaining_a_missing_connection(self.infinityblue_conn_id):
                self._settings = self._remember(self.get_connection(self.infinityblue_conn_id))
        return self._settings

    async def asettings(self) -> InfinityBlueConnectionSettings:
        """:attr:`settings` for coroutines: reads the connection without blocking the event loop.

        Coroutines of one process share a read for a few seconds (see
        :func:`~airflow_provider_infinityblue.session_pool.read_connection_once`): thousands of triggers
        starting together in a triggerer read their connection once.
        """
        if self._settings is None:
            with explaining_a_missing_connection(self.infinityblue_conn_id):
                self._settings = await read_connection_once(self.infinityblue_conn_id, self._aread_settings)
        return self._settings

    async def _aread_settings(self) -> InfinityBlueConnectionSettings:
        # A sync call to the triggerer's supervisor (Airflow 3.0's connection lookup, and masking before
        # 3.3) hands its request back to the event loop: only asgiref's sync_to_async threads can do that.
        # On the loop's own thread it raises, and a plain worker thread would start a second loop and
        # break the triggerer's channel.
        from asgiref.sync import sync_to_async

        if not hasattr(BaseHook, "aget_connection"):  # Airflow 3.0: the sync lookup, all of it there
            return await sync_to_async(lambda: self._remember(self.get_connection(self.infinityblue_conn_id)))()
        conn = await self.aget_connection(self.infinityblue_conn_id)
        settings = InfinityBlueConnectionSettings.from_connection(conn)
        # aget_connection has masked the password (the API key) in Airflow's logs already, not a proxy
        # password in the extras: only that one needs the masker's (synchronous) call.
        protect_secrets([settings.api_key], in_airflow_logs=False)
        if settings.network.secrets():
            await sync_to_async(protect_secrets)(settings.network.secrets())
        return settings

    @staticmethod
    def _remember(conn: Connection) -> InfinityBlueConnectionSettings:
        settings = InfinityBlueConnectionSettings.from_connection(conn)
        protect_secrets(settings.secrets())
        return settings

    def _headers(self, settings: InfinityBlueConnectionSettings) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {settings.api_key}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }

    def get_conn(self) -> requests.Session:
        """The hook's ``requests.Session``, authenticated and kept alive between calls.

        Its connections obey the answer deadlines of :mod:`~airflow_provider_infinityblue.transport`.
        """
        if self._session is None:
            settings = self.settings
            session = new_session(settings.network)
            session.headers.update(self._headers(settings))
            self._session = session
        return self._session

    def close(self) -> None:
        """Close the synchronous session. The hook opens a new one if used again."""
        if self._session is not None:
            self._session.close()
            self._session = None

    def __enter__(self) -> InfinityBlueHook:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    async def aget_conn(self) -> aiohttp.ClientSession:
        """The ``aiohttp.ClientSession`` the hook's coroutines use, leased until :meth:`aclose`.

        It is shared with every other hook of this event loop on the same API key and network
        settings (see :mod:`~airflow_provider_infinityblue.session_pool`): do not close it; call
        :meth:`aclose`, or use the hook in ``async with``.
        """
        return (await self._alease()).session

    async def _alease(self) -> SharedSession:
        if self._lease is None or self._lease.session.closed:
            settings = await self.asettings()
            self._lease = await lease_session(settings.api_key, settings.network)
        return self._lease

    async def aclose(self) -> None:
        """Give back the shared session, if one was leased; it closes once no hook uses it."""
        if self._lease is not None:
            lease, self._lease = self._lease, None
            release_session(lease)

    async def __aenter__(self) -> InfinityBlueHook:
        await self.aget_conn()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- the API ----------------------------------------------------------------------------

    def submit_generation(self, request: GenerationRequest) -> str:
        """Send one ``POST /v1/video/generations`` and return the remote task id.

        The POST is sent again only when the API provably did not take it (the connection
        never opened, or a 429). After a timeout, a dropped connection, a 5xx or an
        unreadable answer it raises :class:`InfinityBlueAmbiguousSubmitError` instead.
        A request this connection refuses (see :meth:`check_request`) raises
        :class:`InfinityBlueValidationError` before anything is sent.
        """
        self.check_request(request)
        body = request.to_body(max_image_bytes=self.settings.max_image_bytes)
        self.log.info("Submitting InfinityBlue generation %r", request)
        payload = self._request("POST", GENERATIONS_PATH, body=body)
        try:
            generation = Generation.from_payload(payload)
        except InfinityBlueResponseError as error:
            raise InfinityBlueAmbiguousSubmitError(error) from error
        self.log.info("InfinityBlue accepted generation %s (status %r)", scrub(generation.id), generation.status)
        return generation.id

    def check_request(self, request: GenerationRequest) -> None:
        """Refuse, with :class:`InfinityBlueValidationError`, a request this connection will not send.

        Its prompt may not be longer than the connection's ``max_prompt_chars`` extra
        (:data:`~airflow_provider_infinityblue.models.DEFAULT_MAX_PROMPT_CHARS` when unset).
        """
        check_prompt_length(request.prompt, self.settings.max_prompt_chars)

    def get_generation(self, generation_id: str, *, deadline: float | None = None) -> Generation:
        """One ``GET`` of a generation's status, retried on transient failures.

        :param deadline: a ``time.monotonic()`` instant that retries may not wait past.
        """
        payload = self._request("GET", generation_path(generation_id), deadline=deadline)
        return Generation.from_payload(payload, generation_id=generation_id)

    def wait_for_generation(
        self,
        generation_id: str,
        *,
        poll_interval: float = 10.0,
        timeout: float = 3600.0,
        submitted_at: float | None = None,
        not_found_grace: float = DEFAULT_NOT_FOUND_GRACE,
    ) -> Generation:
        """Poll until the generation finishes and return it, with its video URL.

        The wait goes through the provider's one wait engine (:mod:`~airflow_provider_infinityblue.wait`):
        transient failures are waited through until ``timeout``, and a 404 within ``not_found_grace``
        seconds of ``submitted_at`` (a UNIX time; default: now) means the generation is not visible yet.

        Raises :class:`InfinityBlueGenerationFailedError` if it ends failed or cancelled,
        :class:`InfinityBlueWaitTimeoutError` when ``timeout`` seconds run out (after one last
        look), and the API's error for anything that cannot get better by waiting (a revoked key).
        """
        now = time.time()
        wait = GenerationWait(
            generation_id,
            deadline=now + check_positive_seconds(timeout, "timeout"),
            poll_interval=poll_interval,
            submitted_at=now if submitted_at is None else submitted_at,
            not_found_grace=not_found_grace,
            retry=self.settings.retry,
            logger=self.log,
        )
        wait.run(self).video_url_or_raise()
        assert wait.last_generation is not None  # a success has seen the finished generation
        return wait.last_generation

    def poll_generation(self, generation_id: str, *, deadline: float | None = None) -> Generation | InfinityBlueError:
        """One look at a generation for a wait: its status, or the error the single ``GET`` ended with.

        Not retried: between looks, the wait engine decides what an error means and when to look again.
        """
        try:
            payload = self._request("GET", generation_path(generation_id), deadline=deadline, policy=_SINGLE_LOOK)
            return Generation.from_payload(payload, generation_id=generation_id)
        except InfinityBlueError as error:
            return error

    async def apoll_generation(
        self, generation_id: str, *, deadline: float | None = None
    ) -> Generation | InfinityBlueError:
        """:meth:`poll_generation` for coroutines, on the hook's ``aiohttp`` session."""
        try:
            payload = await self._arequest(
                "GET", generation_path(generation_id), deadline=deadline, policy=_SINGLE_LOOK
            )
            return Generation.from_payload(payload, generation_id=generation_id)
        except InfinityBlueError as error:
            return error

    async def aget_generation(self, generation_id: str, *, deadline: float | None = None) -> Generation:
        """:meth:`get_generation` for coroutines, on the hook's ``aiohttp`` session."""
        payload = await self._arequest("GET", generation_path(generation_id), deadline=deadline)
        return Generation.from_payload(payload, generation_id=generation_id)

    def test_connection(self) -> tuple[bool, str]:
        """Check the base URL and the key with a GET of a generation id that cannot exist.

        Only documented endpoints are called and nothing is created: a 401 means the key
        is wrong; the API's own 404 (or ``task_not_exist``) means the key was accepted.
        """
        probe = generation_path(f"airflow-connection-test-{uuid.uuid4().hex}")
        try:
            base_url = self.settings.base_url
            self._request("GET", probe, policy=RetryPolicy(max_attempts=1))
        except InfinityBlueNotFoundError as error:
            if error.error_code is None and error.api_message and error.api_message.startswith("non-JSON"):
                return False, f"{base_url} answered 404 with a page that is not the InfinityBlue API: {error}"
            return True, f"Connected to {base_url}: the API key was accepted."
        except InfinityBlueAuthenticationError as error:
            # Not str(error): it names the connection id, and the UI and REST tests run under a random one.
            detail = f"HTTP {error.status_code}: {error.api_message or 'no message'}"
            return False, f"Invalid API key: {base_url} rejected it ({detail}). Check the API Key (password) field."
        except InfinityBlueError as error:
            return False, str(error)
        return True, f"Connected to {base_url}: the API key was accepted."

    # -- HTTP -------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        body: dict[str, Any] | None = None,
        deadline: float | None = None,
        policy: RetryPolicy | None = None,
    ) -> Any:
        import requests

        settings = self.settings
        session = self.get_conn()
        data = None if body is None else _json_body(body)
        url = settings.base_url + path
        proxies = settings.network.requests_proxies(url)
        for attempt in itertools.count(1):
            # Each attempt gets the whole of read_timeout for its whole answer, clipped to the caller's deadline.
            now = time.monotonic()
            at = answer_deadline(read_timeout=settings.read_timeout, caller_deadline=deadline, now=now)
            try:
                with enforce_deadline(at=at) as guard:
                    try:
                        # Streamed, and the body read inside the guard too, up to its size limit.
                        response = session.request(
                            method,
                            url,
                            data=data,
                            proxies=proxies,
                            headers=None if data is None else {"Content-Type": "application/json"},
                            timeout=request_timeouts(
                                at=at,
                                connect_timeout=settings.connect_timeout,
                                read_timeout=settings.read_timeout,
                                now=now,
                            ),
                            allow_redirects=method == "GET",
                            stream=True,
                        )
                        with response:
                            content = _read_capped(response.status_code, response.headers, response.iter_content(
                                _CHUNK_BYTES))  # fmt: skip
                    except requests.RequestException as exc:
                        failure = self._requests_failure(exc, method, path)
                        # A connection that never opened stays that: a submission that provably did not go out.
                        if failure.request_sent and (guard.expired or _requests_read_timeout(exc)):
                            raise self._answer_too_late(method, path, started=now, at=at) from exc
                        raise failure from exc
                # Headers cut short by the deadline can still parse into an answer: a truncated one.
                if guard.expired:
                    raise self._answer_too_late(method, path, started=now, at=at)
                content, headers = _without_secrets(content, response.headers)
                return self._read_answer(method, path, response.status_code, headers, content)
            except InfinityBlueError as error:
                delay = self._delay_before_retry(error, method, path, attempt, deadline, policy)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _arequest(
        self, method: str, path: str, *, deadline: float | None = None, policy: RetryPolicy | None = None
    ) -> Any:
        import aiohttp

        settings = await self.asettings()
        lease = await self._alease()
        url = settings.base_url + path
        route = lease.route(settings.base_url)
        for attempt in itertools.count(1):
            await lease.pace.await_slot(latest=deadline)
            now = time.monotonic()
            at = answer_deadline(read_timeout=settings.read_timeout, caller_deadline=deadline, now=now)
            connect_timeout, _ = request_timeouts(
                at=at, connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout, now=now
            )
            # No sock_read: the answer deadline is the read timeout here, for the whole answer. A sock_read of the
            # same length, started later, would never fire first, and aiohttp would schedule and cancel a timer
            # for it on every read of every poll: thousands a second in a triggerer, each kept by the event loop
            # until its time comes.
            timeouts = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout)
            whole_answer = answer_timeout(at)
            try:
                try:
                    async with (
                        whole_answer,
                        route.gate,
                        lease.session.request(
                            method, url, timeout=timeouts, proxy=route.proxy, proxy_auth=route.proxy_auth
                        ) as response,
                    ):
                        content = await _aread_capped(response)
                except (TimeoutError, aiohttp.ClientError) as exc:
                    failure = self._aiohttp_failure(exc, method, path)
                    # Past a connect timeout, any timeout is the answer deadline's.
                    if failure.request_sent and (whole_answer.expired() or isinstance(exc, TimeoutError)):
                        raise self._answer_too_late(method, path, started=now, at=at) from exc
                    raise failure from exc
                content, headers = _without_secrets(content, response.headers)
                return self._read_answer(method, path, response.status, headers, content)
            except InfinityBlueError as error:
                if isinstance(error, InfinityBlueRateLimitError) and error.retry_after:
                    lease.pace.hold(error.retry_after)  # every trigger on this session waits, not only this one
                delay = self._delay_before_retry(error, method, path, attempt, deadline, policy)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_answer(
        self, method: str, path: str, status: int, headers: Mapping[str, str], content: bytes | _TooLarge
    ) -> Any:
        """The decoded JSON of an answer, scrubbed of the API key (not clipped: video URLs stay whole)."""
        settings = self._settings
        assert settings is not None
        if isinstance(content, _TooLarge):
            raise InfinityBlueResponseError(
                f"The InfinityBlue API answered {method} {path} with {content.describe()}, over the "
                f"{MAX_ANSWER_BYTES}-byte limit of an answer: refused without reading it",
                status_code=status,
                request_id=headers.get(REQUEST_ID_HEADER),
            )
        if not 200 <= status < 300:
            raise InfinityBlueAPIError.from_response(
                status_code=status,
                headers=headers,
                body=content,
                method=method,
                path=path,
                conn_id=settings.conn_id,
            )
        try:
            return scrub_json(json.loads(content))
        except ValueError:
            raise InfinityBlueResponseError(
                f"The InfinityBlue API answered {method} {path} with a body that is not JSON: "
                f"{scrub(content[:200].decode('utf-8', 'replace'))!r}",
                status_code=status,
                request_id=headers.get(REQUEST_ID_HEADER),
            ) from None

    def _delay_before_retry(
        self,
        error: InfinityBlueError,
        method: str,
        path: str,
        attempt: int,
        deadline: float | None,
        policy: RetryPolicy | None,
    ) -> float:
        """Seconds to wait before the next attempt; re-raises ``error`` when there is none."""
        if method == "POST" and _may_have_been_created(error):
            raise InfinityBlueAmbiguousSubmitError(error) from error
        policy = policy or (self._settings.retry if self._settings else RetryPolicy())
        delay = policy.delay_before_retry(error, attempt, deadline=deadline)
        if delay is None:
            raise error
        self.log.warning(
            "InfinityBlue %s %s failed (attempt %d of %d), retrying in %.1f s: %s",
            method,
            path,
            attempt,
            policy.max_attempts,
            delay,
            error,
        )
        return delay

    def _connection_failure(
        self, exc: BaseException, method: str, path: str, *, request_sent: bool, permanent: bool = False
    ) -> InfinityBlueConnectionError:
        settings = self._settings
        assert settings is not None
        detail = scrub(f"{type(exc).__name__}: {exc}", limit=DETAIL_LIMIT)
        return InfinityBlueConnectionError(
            f"Could not get an answer from the InfinityBlue API at {settings.base_url} for {method} {path} ({detail})",
            request_sent=request_sent,
            permanent=permanent,
        )

    def _answer_too_late(self, method: str, path: str, *, started: float, at: float) -> InfinityBlueConnectionError:
        """The error for an answer that was not complete at its answer deadline ``at``.

        The request went out, so a submission may have been taken: it becomes ambiguous, never resent.
        """
        settings = self._settings
        assert settings is not None
        # The same sum answer_deadline made: equal when read_timeout, not the caller's deadline, set the limit.
        limit = "read_timeout" if at == started + settings.read_timeout else "the caller's deadline"
        message = (
            f"No complete answer arrived from the InfinityBlue API at {settings.base_url} to {method} {path} "
            f"within {at - started:.3g} s ({limit}); the connection was closed"
        )
        return InfinityBlueConnectionError(message, request_sent=True)

    def _requests_failure(self, exc: requests.RequestException, method: str, path: str) -> InfinityBlueConnectionError:
        import requests
        import urllib3

        if isinstance(exc, requests.exceptions.SSLError):
            return self._connection_failure(exc, method, path, request_sent=False, permanent=True)
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return self._connection_failure(exc, method, path, request_sent=False)
        if isinstance(exc, requests.exceptions.ConnectionError):
            reason = exc.args[0] if exc.args else None
            reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
            never_opened = isinstance(
                reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
            )
            return self._connection_failure(exc, method, path, request_sent=not never_opened)
        if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema)):
            return self._connection_failure(exc, method, path, request_sent=False, permanent=True)
        return self._connection_failure(exc, method, path, request_sent=True)

    def _aiohttp_failure(self, exc: BaseException, method: str, path: str) -> InfinityBlueConnectionError:
        import aiohttp

        if isinstance(exc, (aiohttp.ClientSSLError, aiohttp.InvalidURL)):
            return self._connection_failure(exc, method, path, request_sent=False, permanent=True)
        never_opened = isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))
        return self._connection_failure(exc, method, path, request_sent=not never_opened)


def _connection_type_info() -> dict[str, Any]:
    """The ``infinityblue`` connection type as the provider info describes it (form fields included)."""
    return get_provider_info()["connection-types"][0]


def generation_path(generation_id: str) -> str:
    """The status path of a generation, with its id escaped."""
    if not isinstance(generation_id, str) or not generation_id.strip():
        raise InfinityBlueConfigurationError(f"A generation id must be a non-empty string, got {generation_id!r}")
    return f"{GENERATIONS_PATH}/{quote(generation_id.strip(), safe='')}"


def _requests_read_timeout(exc: BaseException) -> bool:
    """Whether ``requests`` failed on its read timeout, before headers or in the body.

    The read timeout never outlasts the answer deadline, so either one means the deadline passed.
    """
    import requests
    import urllib3

    if isinstance(exc, requests.exceptions.ReadTimeout):
        return True
    # A body read that timed out comes as a ConnectionError wrapping urllib3's ReadTimeoutError.
    return isinstance(exc, requests.exceptions.ConnectionError) and any(
        isinstance(arg, urllib3.exceptions.ReadTimeoutError) for arg in exc.args
    )


def _json_body(body: dict[str, Any]) -> bytes:
    """A request body as JSON: strict JSON only (no NaN or Infinity), or a validation error before sending."""
    try:
        return json.dumps(body, allow_nan=False).encode()
    except (TypeError, ValueError) as error:
        raise InfinityBlueValidationError("request", f"cannot be sent as JSON: {error}") from None


@dataclass(frozen=True)
class _TooLarge:
    """An answer over :data:`MAX_ANSWER_BYTES`, left unread: what is known of its size."""

    declared: int | None  # its Content-Length, when it gave one

    def describe(self) -> str:
        if self.declared is not None:
            return f"a {self.declared}-byte answer"
        return f"an answer of more than {MAX_ANSWER_BYTES} bytes"


def _without_secrets(
    content: bytes | _TooLarge, headers: Mapping[str, str]
) -> tuple[bytes | _TooLarge, dict[str, str]]:
    """An answer's body and headers scrubbed before they are read: no local variable then holds the key.

    Tracebacks that print local variables (Airflow 3.0's console logs, ``dag.test()`` among them) would
    otherwise show an echoed key in the raw body or headers of the frame that raised.
    """
    if isinstance(content, _TooLarge):
        return content, scrub_answer(b"", headers)[1]
    return scrub_answer(content, headers)


def _answer_limit(status: int) -> int:
    return MAX_ANSWER_BYTES if 200 <= status < 300 else MAX_ERROR_ANSWER_BYTES


def _declared_length(headers: Mapping[str, str]) -> int | None:
    try:
        return int(headers.get("Content-Length", ""))
    except ValueError:
        return None


def _read_capped(status: int, headers: Mapping[str, str], chunks: Iterator[bytes]) -> bytes | _TooLarge:
    """An answer's body, read chunk by chunk up to its limit (:func:`_answer_limit`).

    A success answer over the limit is :class:`_TooLarge`, known from its Content-Length before any of it is
    read, or as soon as the limit is passed; of an error answer, the first bytes up to its limit are kept.
    The caller closes the answer, which drops a connection with unread bytes.
    """
    limit = _answer_limit(status)
    declared = _declared_length(headers)
    success = 200 <= status < 300
    if success and declared is not None and declared > limit:
        return _TooLarge(declared)
    content = bytearray()
    for chunk in chunks:
        content += chunk
        if len(content) > limit:
            if success:
                return _TooLarge(declared)
            return bytes(content[:limit])
    return bytes(content)


async def _aread_capped(response: aiohttp.ClientResponse) -> bytes | _TooLarge:
    """:func:`_read_capped` for ``aiohttp``; an answer left unread is closed, with its connection."""
    limit = _answer_limit(response.status)
    declared = response.content_length
    if 200 <= response.status < 300 and declared is not None and declared > limit:
        response.close()
        return _TooLarge(declared)
    content = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        content += chunk
        if len(content) > limit:
            response.close()
            return _TooLarge(declared) if 200 <= response.status < 300 else bytes(content[:limit])
    return bytes(content)


def _may_have_been_created(error: InfinityBlueError) -> bool:
    if isinstance(error, InfinityBlueConnectionError):
        return error.request_sent
    return isinstance(error, (InfinityBlueServerError, InfinityBlueResponseError))


@contextmanager
def explaining_a_missing_connection(conn_id: str) -> Iterator[None]:
    """Re-raise Airflow's "isn't defined" with where Airflow looked, and where it did not.

    Outside a task (a script, a notebook), Airflow 3 reads connections from environment variables and
    secrets backends only: the metadata database, where the UI and ``airflow connections add`` store
    them, is read through the API server by tasks alone. Airflow's own message says none of that.
    """
    try:
        yield
    except AirflowNotFoundException as error:
        variable = f"AIRFLOW_CONN_{conn_id.upper()}"
        raise type(error)(
            f"The connection {conn_id!r} isn't defined where this process looks. In a task, add it in the UI "
            f"(Admin → Connections), with `airflow connections add {conn_id} --conn-type infinityblue ...`, as "
            f"the environment variable {variable} or in a secrets backend. Outside a task (a script, a notebook), "
            f"Airflow 3 reads only environment variables and secrets backends, not the metadata database those "
            f'commands write to: export {variable}=\'{{"conn_type": "infinityblue", "host": "...", '
            f'"password": "sk-..."}}\'.'
        ) from error
