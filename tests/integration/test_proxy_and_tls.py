"""Production networking in real Airflow: a CONNECT proxy and a private CA, on the worker, the trigger and the download.

The emulator serves HTTPS with a throwaway CA, under a name (``api.infinityblue.test``) that only the
proxy resolves: a request that does not go through the proxy cannot reach it at all.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from airflow_provider_infinityblue.emulator.runners import running_emulator
from airflow_provider_infinityblue.exceptions import InfinityBlueConnectionError
from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
from tests.conftest import FAKE_API_KEY
from tests.proxy import http_proxy

if TYPE_CHECKING:
    from pathlib import Path

PROXIED_NAME = "api.infinityblue.test"
CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
PROXY_USER, PROXY_PASSWORD = "egress-user", "proxy-pass-FAKE-9f3e"


@pytest.fixture
def tls_emulator():
    with running_emulator(generation_seconds=0.5, api_key=FAKE_API_KEY, tls=True, tls_names=(PROXIED_NAME,)) as handle:
        yield handle


def use_connection(monkeypatch, emulator, *, host: str | None = None, **extra: object) -> None:
    connection = json.loads(emulator.airflow_connection(FAKE_API_KEY, extra={"initial_backoff": 0.05, **extra}))
    if host is not None:
        connection["host"] = host
    monkeypatch.setenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", json.dumps(connection))


def client_connections(emulator) -> int:
    return emulator.stats()["connections"] - 1  # this stats call opens one too


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "worker"])
def test_generation_and_download_go_through_the_environments_proxy(
    tls_emulator, monkeypatch, run_dag, tmp_path: Path, deferrable: bool
) -> None:
    port = int(tls_emulator.url.rsplit(":", 1)[1])
    with http_proxy(resolve={PROXIED_NAME: ("127.0.0.1", port)}) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        use_connection(monkeypatch, tls_emulator, host=f"https://{PROXIED_NAME}:{port}")
        destination = tmp_path / "video.mp4"
        dag_id = "e2e_network_deferrable" if deferrable else "e2e_network_sync"
        result = run_dag(dag_id, {"destination": str(destination)})
        tunnels = proxy.tunnels
    assert result.state == "success", result.logs[-3000:]
    assert destination.stat().st_size > 0
    assert set(tunnels) == {f"{PROXIED_NAME}:{port}"}
    # The worker's POST, the wait (the trigger's session, or the worker's), the download: each through a tunnel,
    # and every connection the emulator accepted came from the proxy.
    assert len(tunnels) >= 2
    assert client_connections(tls_emulator) == len(tunnels)


def test_the_proxy_extra_with_credentials_is_used_and_its_password_never_logged(
    tls_emulator, monkeypatch, run_dag, tmp_path: Path
) -> None:
    port = int(tls_emulator.url.rsplit(":", 1)[1])
    with http_proxy(resolve={PROXIED_NAME: ("127.0.0.1", port)}, credentials=(PROXY_USER, PROXY_PASSWORD)) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # the extra wins over the environment
        proxy_url = proxy.url.replace("http://", f"http://{PROXY_USER}:{PROXY_PASSWORD}@")
        use_connection(monkeypatch, tls_emulator, host=f"https://{PROXIED_NAME}:{port}", proxy=proxy_url)
        destination = tmp_path / "video.mp4"
        result = run_dag("e2e_network_deferrable", {"destination": str(destination)})
        tunnels, refused = proxy.tunnels, proxy.refused
    assert result.state == "success", result.logs[-3000:]
    assert destination.exists()
    assert len(tunnels) >= 3  # POST, trigger, download
    assert refused == 0  # each one authenticated
    assert PROXY_PASSWORD not in result.logs


@pytest.mark.parametrize(
    ("variable", "deferrable"),
    [("REQUESTS_CA_BUNDLE", True), ("SSL_CERT_FILE", False)],
    ids=["requests-variable-in-the-trigger", "openssl-variable-on-the-worker"],
)
def test_a_private_ca_from_either_environment_variable_is_trusted_in_every_path(
    tls_emulator, monkeypatch, run_dag, tmp_path: Path, variable: str, deferrable: bool
) -> None:
    # aiohttp alone ignores REQUESTS_CA_BUNDLE and requests alone ignores SSL_CERT_FILE: here both work everywhere.
    for other in CA_VARIABLES:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(variable, str(tls_emulator.ca_bundle))
    use_connection(monkeypatch, tls_emulator, ca_bundle="")
    destination = tmp_path / "video.mp4"
    result = run_dag("e2e_network_deferrable" if deferrable else "e2e_network_sync", {"destination": str(destination)})
    assert result.state == "success", result.logs[-3000:]
    assert destination.stat().st_size > 0


@pytest.mark.asyncio
async def test_an_untrusted_certificate_fails_at_once_in_both_paths(tls_emulator, monkeypatch) -> None:
    for variable in CA_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    use_connection(monkeypatch, tls_emulator, ca_bundle="")
    with InfinityBlueHook() as hook, pytest.raises(InfinityBlueConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        hook.get_generation("t1")
    async with InfinityBlueHook() as hook:
        answer = await hook.apoll_generation("t1")
    assert isinstance(answer, InfinityBlueConnectionError)
    assert not answer.transient  # a wait ends on it, it does not poll an untrusted host for an hour
    assert "certificate" in str(answer).lower()


def test_skipping_verification_works_everywhere_and_says_so_once(
    tls_emulator, monkeypatch, run_dag, caplog, tmp_path: Path
) -> None:
    use_connection(monkeypatch, tls_emulator, ca_bundle="", tls_verification="skip-insecure")
    destination = tmp_path / "video.mp4"
    result = run_dag("e2e_network_deferrable", {"destination": str(destination)})
    assert result.state == "success", result.logs[-3000:]
    assert destination.exists()
    # Once in the process, for the worker's POST, the trigger's polls and the download together.
    warnings = [record for record in caplog.records if "TLS CERTIFICATE CHECKS ARE OFF" in record.getMessage()]
    assert len(warnings) == 1
    assert "InsecureRequestWarning" not in result.logs
