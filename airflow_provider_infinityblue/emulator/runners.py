"""Start an emulator for a test, in a thread or in its own process, and talk to it.

Only the standard library is imported here; the thread runner imports aiohttp when it
starts. :class:`EmulatorHandle` talks HTTP to ``/_emulator/*``, so it works the same
for both kinds of emulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_provider_infinityblue.emulator.cli import API_KEY_ENVIRONMENT_VARIABLE, command_line_arguments
from airflow_provider_infinityblue.emulator.settings import EmulatorSettings
from airflow_provider_infinityblue.emulator.tls import EmulatorCertificates

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

DEFAULT_FAKE_API_KEY = "sk-emulator-fake-key-0000"
LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
_CONTROL_TIMEOUT_SECONDS = 10.0
# The emulator is on loopback: an HTTP(S)_PROXY from the environment must not be used to reach it.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmulatorControlError(RuntimeError):
    """The emulator refused a control request (an unknown knob, a bad value) or did not answer.

    Example::

        with pytest.raises(EmulatorControlError, match="not a knob"):
            emulator.configure(colour="blue")
    """


@dataclass(frozen=True)
class EmulatorHandle:
    """A running emulator: where it is, what key it wants, and its ``/_emulator`` controls.

    Example::

        with running_emulator(generation_seconds=0.2) as emulator:
            os.environ["AIRFLOW_CONN_INFINITYBLUE_DEFAULT"] = emulator.airflow_connection()
            emulator.configure(unavailable_polls=2)   # the next two status GETs answer 503
            ...
            assert emulator.stats()["submissions"] == 1

        with running_emulator(tls=True) as emulator:   # https://127.0.0.1:PORT
            requests.get(f"{emulator.url}/_emulator/config", verify=emulator.ca_bundle)
    """

    url: str
    api_key: str | None = field(default=None, repr=False)
    # For a process started by emulator_process(): its log file and its PID.
    log_path: Path | None = None
    pid: int | None = None
    # With tls=True: the CA certificate that signed the emulator's; None for plain HTTP.
    ca_bundle: Path | None = None

    def stats(self) -> dict[str, Any]:
        """What the emulator saw since it started or was last reset.

        ``{"requests": {route: {status: n}}, "tasks": {status: n}, "submissions": n,
        "connections": n, "tls_handshakes": n, "open_connections": n}``. ``requests``
        leaves out the ``/_emulator`` routes; the connection counts do not, and every
        control call (this one, :meth:`reset`, :meth:`configure`) opens a connection of its
        own (one TLS handshake too, over TLS). So an answer counts its own connection once in
        each of the three: after :meth:`reset`, a client's connections are ``connections - 1``.
        """
        stats: dict[str, Any] = self._control("GET", "/_emulator/stats")
        return stats

    def generations(self) -> list[dict[str, Any]]:
        """Each generation submitted since the start or the last reset, oldest first:
        ``{"id", "model", "prompt", "status"}``. What a test asserts a DAG asked for."""
        generations: list[dict[str, Any]] = self._control("GET", "/_emulator/generations")
        return generations

    def reset(self) -> None:
        """Forget all generations and counts; knobs stay as they are."""
        self._control("POST", "/_emulator/reset")

    def configure(self, **knobs: Any) -> dict[str, Any]:
        """Change knobs (``EmulatorSettings`` field names) and return all of them as they now are."""
        current: dict[str, Any] = self._control("POST", "/_emulator/config", knobs)
        return current

    def airflow_connection(self, api_key: str | None = None, *, extra: Mapping[str, Any] | None = None) -> str:
        """The JSON for ``AIRFLOW_CONN_<ID>`` that points an ``infinityblue`` connection here.

        ``api_key`` defaults to the key the emulator requires, or to :data:`DEFAULT_FAKE_API_KEY`
        when it accepts any ``sk-`` key. ``extra`` holds connection extras, such as short
        retry delays for tests (``{"initial_backoff": 0.01}``).

        Over TLS, the extras also name the emulator's CA as ``ca_bundle``, unless ``extra`` does.

        >>> EmulatorHandle("http://127.0.0.1:8089").airflow_connection()
        '{"conn_type": "infinityblue", "host": "http://127.0.0.1:8089", "password": "sk-emulator-fake-key-0000"}'
        >>> json.loads(EmulatorHandle("https://127.0.0.1:8443", ca_bundle=Path("/tmp/ca.pem")).airflow_connection())
        {'conn_type': 'infinityblue', 'host': 'https://127.0.0.1:8443', 'password': 'sk-emulator-fake-key-0000', \
'extra': '{"ca_bundle": "/tmp/ca.pem"}'}
        """
        connection = {
            "conn_type": "infinityblue",
            "host": self.url,
            "password": api_key or self.api_key or DEFAULT_FAKE_API_KEY,
        }
        extras = {"ca_bundle": str(self.ca_bundle)} if self.ca_bundle is not None else {}
        extras.update(extra or {})
        if extras:
            connection["extra"] = json.dumps(extras)
        return json.dumps(connection)

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with _direct_opener(self.ca_bundle).open(request, timeout=_CONTROL_TIMEOUT_SECONDS) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as refusal:
            detail = refusal.read().decode("utf-8", "replace")
            with suppress(ValueError, KeyError, TypeError):
                detail = json.loads(detail)["error"]["message"]
            raise EmulatorControlError(f"{method} {path} answered HTTP {refusal.code}: {detail}") from None
        except OSError as failure:
            raise EmulatorControlError(
                f"The emulator at {self.url} did not answer {method} {path}: {failure}"
            ) from None


@contextmanager
def running_emulator(**settings: Any) -> Iterator[EmulatorHandle]:
    """Run an emulator in a daemon thread with its own event loop, on 127.0.0.1 and a free port.

    ``settings`` are :class:`~.settings.EmulatorSettings` fields. The emulator stops, and
    its thread is joined, when the ``with`` block ends. With ``tls=True`` and no ``tls_dir``,
    its certificates are written to a temporary directory, removed when the block ends.

    Example::

        with running_emulator(generation_seconds=0.2, shape="wrapped") as emulator:
            requests.get(f"{emulator.url}/v1/video/generations/nope", headers={"Authorization": "Bearer sk-x"})

        with running_emulator(tls=True, tls_names=("api.infinityblue.test",)) as emulator:
            requests.get(f"{emulator.url}/_emulator/config", verify=emulator.ca_bundle)
    """
    config = EmulatorSettings(**{"host": LOOPBACK, "port": 0, **settings})
    with ExitStack() as cleanup:
        if config.tls and config.tls_dir is None:
            tls_dir = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="infinityblue-emulator-tls-"))
            config = replace(config, tls_dir=Path(tls_dir))
        thread = _EmulatorThread(config)
        thread.start()
        url = thread.wait_until_listening()
        try:
            yield EmulatorHandle(url=url, api_key=config.api_key, ca_bundle=_ca_bundle(config))
        finally:
            thread.stop()


@contextmanager
def emulator_process(**settings: Any) -> Iterator[EmulatorHandle]:
    """Run an emulator as a subprocess (``python -m airflow_provider_infinityblue.emulator``).

    It listens on 127.0.0.1 and a free port; the ``with`` block starts once it answers,
    and the process is terminated by its PID when the block ends, also on an error.
    Its log (one line per request) goes to ``handle.log_path``, deleted afterwards.
    Use it where several processes (an Airflow scheduler, a triggerer) must share it.
    With ``tls=True`` and no ``tls_dir``, its certificates go to that temporary directory too.

    Example::

        with emulator_process(generation_seconds=1, seed=42) as emulator:
            subprocess.run(["airflow", "dags", "test", "my_dag"], env={**os.environ,
                           "AIRFLOW_CONN_INFINITYBLUE_DEFAULT": emulator.airflow_connection()})
    """
    requested_port = settings.pop("port", None)
    environment = dict(os.environ)
    api_key = settings.get("api_key")
    if api_key is not None:
        environment[API_KEY_ENVIRONMENT_VARIABLE] = api_key
    else:
        environment.pop(API_KEY_ENVIRONMENT_VARIABLE, None)
    with tempfile.TemporaryDirectory(prefix="infinityblue-emulator-") as workdir:
        log_path = Path(workdir) / "emulator.log"
        if settings.get("tls") and settings.get("tls_dir") is None:
            settings["tls_dir"] = Path(workdir) / "tls"
        # A free port can be taken by someone else before the emulator binds it: try another.
        for attempt in range(1, 4):
            port = requested_port if requested_port is not None else _free_port()
            config = EmulatorSettings(**{"host": LOOPBACK, **settings, "port": port})
            process = _start_process(config, environment, log_path)
            try:
                url = f"{'https' if config.tls else 'http'}://{config.host}:{port}"
                ca_bundle = _ca_bundle(config)
                if _wait_until_answering(process, url, ca_bundle):
                    yield EmulatorHandle(
                        url=url, api_key=config.api_key, log_path=log_path, pid=process.pid, ca_bundle=ca_bundle
                    )
                    return
            finally:
                _stop_process(process)
            log = log_path.read_text(errors="replace")
            if "already in use" not in log.lower() or requested_port is not None or attempt == 3:
                raise RuntimeError(
                    f"The emulator process did not start (exit code {process.returncode}). Its log:\n{log[-4000:]}"
                )


class _EmulatorThread(threading.Thread):
    def __init__(self, settings: EmulatorSettings) -> None:
        super().__init__(name="infinityblue-emulator", daemon=True)
        self._settings = settings
        self._listening = threading.Event()
        self._url: str | None = None
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_serving: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except OSError as failure:  # the port could not be bound
            self._failure = failure
        finally:
            self._listening.set()

    async def _serve(self) -> None:
        from airflow_provider_infinityblue.emulator.app import serve

        self._loop = asyncio.get_running_loop()
        self._stop_serving = asyncio.Event()
        await serve(self._settings, ready=self._on_ready, stop=self._stop_serving)

    def _on_ready(self, url: str) -> None:
        self._url = url
        self._listening.set()

    def wait_until_listening(self) -> str:
        if not self._listening.wait(STARTUP_TIMEOUT_SECONDS):
            self.stop()
            raise RuntimeError(f"The emulator thread did not start within {STARTUP_TIMEOUT_SECONDS:g} s")
        if self._url is None:
            raise RuntimeError(f"The emulator thread could not start: {self._failure}") from self._failure
        return self._url

    def stop(self) -> None:
        if self._loop is not None and self._stop_serving is not None and self.is_alive():
            self._loop.call_soon_threadsafe(self._stop_serving.set)
        self.join(STOP_TIMEOUT_SECONDS)


def _start_process(settings: EmulatorSettings, environment: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "airflow_provider_infinityblue.emulator", *command_line_arguments(settings)]
    with log_path.open("wb") as log:
        # The log goes to a file, not a pipe: nobody reads a pipe while tests run, and a full one blocks the server.
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=environment
        )


def _wait_until_answering(process: subprocess.Popen[bytes], url: str, ca_bundle: Path | None) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            # A new opener each time: the process writes its CA only as it starts (or replaces an old one).
            with _direct_opener(ca_bundle).open(f"{url}/_emulator/config", timeout=1.0):
                return True
        except OSError:  # also a CA not written yet (FileNotFoundError) and a failed handshake (URLError)
            time.sleep(0.05)
    return False


def _ca_bundle(settings: EmulatorSettings) -> Path | None:
    if not settings.tls or settings.tls_dir is None:
        return None
    return EmulatorCertificates.in_directory(settings.tls_dir).ca_path


def _direct_opener(ca_bundle: Path | None) -> urllib.request.OpenerDirector:
    """The no-proxy opener; over TLS, one that trusts the emulator's CA and nothing else."""
    if ca_bundle is None:
        return _DIRECT
    context = ssl.create_default_context(cafile=str(ca_bundle))
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port
