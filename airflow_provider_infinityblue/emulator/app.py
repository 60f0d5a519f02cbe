"""The emulator as an ``aiohttp.web`` application, and how to serve it.

Every answer gets an ``x-request-id`` header, one INFO line on the ``infinityblue.emulator``
logger and, for the API routes, a count in ``/_emulator/stats``, all at the moment its
headers are sent, so the status counted is the one the client saw (206 for a range).
Connections and TLS handshakes are counted by the listening site (listener.py), per connection.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from airflow_provider_infinityblue.emulator import errors
from airflow_provider_infinityblue.emulator.api import add_api_routes
from airflow_provider_infinityblue.emulator.control import CONTROL_PREFIX, add_control_routes
from airflow_provider_infinityblue.emulator.keys import EMULATOR_STATE, REQUEST_ID, STARTED_AT
from airflow_provider_infinityblue.emulator.listener import CountingTCPSite
from airflow_provider_infinityblue.emulator.settings import EmulatorSettings
from airflow_provider_infinityblue.emulator.state import EmulatorState
from airflow_provider_infinityblue.transport import REQUEST_ID_HEADER

logger = logging.getLogger("infinityblue.emulator")

# Bodies are read by the handlers with the emulator's own limit (--max-body-mb) so that a
# too-large body gets the API's JSON 413; aiohttp's own limit must never come first.
_NO_AIOHTTP_BODY_LIMIT = 2**62

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CannotListenError(OSError):
    """The emulator could not bind its address: the port is taken, or the host is not this machine's.

    ``str()`` is one line for a person, naming the address and what to do.
    """

    def __init__(self, host: str, port: int, failure: OSError) -> None:
        super().__init__(failure.errno, failure.strerror)
        self.host = host
        self.port = port
        if failure.errno == errno.EADDRINUSE:
            self.message = (
                f"port {port} on {host} is already in use: stop whatever listens there, "
                "or choose another port with --port (--port 0 picks a free one)"
            )
        else:
            # asyncio's own message repeats the address in a tuple; the system's reason is enough.
            reason = os.strerror(failure.errno) if failure.errno else str(failure)
            self.message = f"cannot listen on {host}:{port} ({reason}): check --host and --port"

    def __str__(self) -> str:
        return self.message


def create_app(settings: EmulatorSettings | None = None) -> web.Application:
    """The emulator app; serve it with any aiohttp runner.

    Example::

        from aiohttp import web
        from airflow_provider_infinityblue.emulator import EmulatorSettings
        from airflow_provider_infinityblue.emulator.app import create_app

        web.run_app(create_app(EmulatorSettings(generation_seconds=5, shape="wrapped")), port=8089)
    """
    app = web.Application(middlewares=[_request_context], client_max_size=_NO_AIOHTTP_BODY_LIMIT)
    app[EMULATOR_STATE] = EmulatorState(settings or EmulatorSettings())
    add_api_routes(app)
    add_control_routes(app)
    app.on_response_prepare.append(_account_for_response)
    app.on_startup.append(_look_for_ffmpeg)
    return app


async def _look_for_ffmpeg(app: web.Application) -> None:
    # In the background, so that a status answer already knows whether downloads will be rendered or the sample.
    state = app[EMULATOR_STATE]
    if state.settings.video == "rendered":
        state.videos.look_for_ffmpeg()


@web.middleware
async def _request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID] = request.app[EMULATOR_STATE].next_request_id()
    request[STARTED_AT] = time.perf_counter()
    try:
        return await handler(request)
    except web.HTTPException as refusal:  # aiohttp's routing: no such route, method not allowed
        return errors.from_http_exception(refusal, request)


async def _account_for_response(request: web.Request, response: web.StreamResponse) -> None:
    state = request.app[EMULATOR_STATE]
    request_id = request.get(REQUEST_ID) or state.next_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else None
    if template is not None and not template.startswith(CONTROL_PREFIX):
        state.requests.record(f"{request.method} {template}", response.status)
    started = request.get(STARTED_AT)
    elapsed_ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    # The path only: headers (the API key) and query strings are never logged.
    logger.info("%s %s %d %.1fms %s", request.method, request.path, response.status, elapsed_ms, request_id)


async def serve(
    settings: EmulatorSettings,
    *,
    ready: Callable[[str], None] | None = None,
    stop: asyncio.Event | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve until ``stop`` is set, or, without one, until SIGINT or SIGTERM.

    ``ready`` gets the base URL once the port is bound (useful with port 0). With
    ``settings.tls``, a new CA and server certificate are written to ``settings.tls_dir``
    (or a new temporary directory, kept) before the port is bound, and the line saying
    where the CA certificate is goes to the log and to ``announce`` (the command line prints it).
    """
    app = create_app(settings)
    ssl_context = None
    if settings.tls:
        from airflow_provider_infinityblue.emulator.tls import server_ssl_context, write_emulator_certificates

        certificates = write_emulator_certificates(settings.tls_dir, settings.tls_names)
        ssl_context = server_ssl_context(certificates)
        logger.info("%s", certificates.announcement())
        if announce is not None:
            announce(certificates.announcement())
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = CountingTCPSite(
            runner, settings.host, settings.port, counts=app[EMULATOR_STATE].connections, ssl_context=ssl_context
        )
        try:
            await site.start()
        except OSError as failure:
            raise CannotListenError(settings.host, settings.port, failure) from failure
        host, port = runner.addresses[0][:2]
        scheme = "https" if settings.tls else "http"
        url = f"{scheme}://{host}:{port}" if ":" not in host else f"{scheme}://[{host}]:{port}"
        logger.info("InfinityBlue emulator listening on %s", url)
        if ready is not None:
            ready(url)
        if stop is None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        logger.info("InfinityBlue emulator stopping")
    finally:
        await runner.cleanup()
