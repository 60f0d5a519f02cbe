"""The test proxy (tests/proxy.py) itself: tunnels, plain forwarding, credentials, made-up names, stopping."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING

import pytest
import requests

from airflow_provider_infinityblue.emulator import running_emulator
from tests.proxy import http_proxy

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_infinityblue.emulator import EmulatorHandle

MADE_UP_NAME = "api.infinityblue.test"


@pytest.fixture(scope="module")
def tls_emulator() -> Iterator[EmulatorHandle]:
    with running_emulator(tls=True, tls_names=(MADE_UP_NAME,)) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def plain_emulator() -> Iterator[EmulatorHandle]:
    with running_emulator(generation_seconds=0.1) as emulator:
        yield emulator


def port_of(emulator: EmulatorHandle) -> int:
    return int(emulator.url.rsplit(":", 1)[1])


def session() -> requests.Session:
    client = requests.Session()
    client.trust_env = False  # only the proxies a test names
    return client


def test_https_goes_through_a_connect_tunnel_to_the_made_up_name(tls_emulator: EmulatorHandle) -> None:
    with http_proxy(resolve={MADE_UP_NAME: ("127.0.0.1", port_of(tls_emulator))}) as proxy, session() as client:
        answer = client.get(
            f"https://{MADE_UP_NAME}/_emulator/config", proxies=proxy.proxies, verify=tls_emulator.ca_bundle, timeout=10
        )
        assert answer.status_code == 200
        assert answer.json()["shape"] == "documented"
        assert (proxy.tunnels, proxy.requests) == ([f"{MADE_UP_NAME}:443"], [])


def test_the_made_up_name_resolves_only_through_the_proxy(tls_emulator: EmulatorHandle) -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo(MADE_UP_NAME, 443)
    with session() as client, pytest.raises(requests.ConnectionError):
        client.get(f"https://{MADE_UP_NAME}:{port_of(tls_emulator)}/", verify=tls_emulator.ca_bundle, timeout=10)


def test_plain_http_is_forwarded_in_origin_form_with_its_body(plain_emulator: EmulatorHandle) -> None:
    with http_proxy(resolve={MADE_UP_NAME: ("127.0.0.1", port_of(plain_emulator))}) as proxy, session() as client:
        url = f"http://{MADE_UP_NAME}/v1/video/generations"
        submitted = client.post(
            url,
            json={"model": "kling-v2-5-turbo", "prompt": "A fox in snow"},
            headers={"Authorization": "Bearer sk-proxy-test"},
            proxies=proxy.proxies,
            timeout=10,
        )
        assert submitted.status_code == 200, submitted.text
        task_id = submitted.json()["task_id"]
        polled = client.get(
            f"{url}/{task_id}?verbose=1",
            headers={"Authorization": "Bearer sk-proxy-test"},
            proxies=proxy.proxies,
            timeout=10,
        )
        assert polled.json()["task_id"] == task_id
        assert proxy.requests == [url, f"{url}/{task_id}?verbose=1"]
        assert proxy.tunnels == []


def test_credentials_are_required_when_set(tls_emulator: EmulatorHandle, plain_emulator: EmulatorHandle) -> None:
    resolve = {"tls.test": ("127.0.0.1", port_of(tls_emulator)), "plain.test": ("127.0.0.1", port_of(plain_emulator))}
    with http_proxy(resolve=resolve, credentials=("user", "s3cret")) as proxy, session() as client:
        refused = client.get("http://plain.test/_emulator/config", proxies=proxy.proxies, timeout=10)
        assert refused.status_code == 407
        assert refused.headers["Proxy-Authenticate"].startswith("Basic ")
        with pytest.raises(requests.exceptions.ProxyError, match="407"):
            client.get("https://localhost/_emulator/config", proxies=proxy.proxies, timeout=10)
        wrong = proxy.url.replace("://", "://user:wrong@")
        assert client.get("http://plain.test/", proxies={"http": wrong}, timeout=10).status_code == 407
        assert (proxy.refused, proxy.tunnels, proxy.requests) == (3, [], [])

        authenticated = proxy.url.replace("://", "://user:s3cret@")
        proxies = {"http": authenticated, "https": authenticated}
        assert client.get("http://plain.test/_emulator/config", proxies=proxies, timeout=10).status_code == 200
        tunnelled = client.get(
            f"https://localhost:{port_of(tls_emulator)}/_emulator/config",
            proxies=proxies,
            verify=tls_emulator.ca_bundle,
            timeout=10,
        )
        assert tunnelled.status_code == 200
        assert proxy.requests == ["http://plain.test/_emulator/config"]
        assert proxy.tunnels == [f"localhost:{port_of(tls_emulator)}"]


def test_an_unreachable_origin_is_answered_502() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound but not listening: connections are refused
        with http_proxy() as proxy, session() as client:
            assert client.get(f"http://127.0.0.1:{port}/", proxies=proxy.proxies, timeout=10).status_code == 502
            with pytest.raises(requests.exceptions.ProxyError, match="502"):
                client.get(f"https://127.0.0.1:{port}/", proxies=proxy.proxies, timeout=10)


def test_stopping_closes_open_tunnels(plain_emulator: EmulatorHandle) -> None:
    with http_proxy() as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        tunnel = socket.create_connection((host, int(port)), timeout=10)
        with tunnel:
            target = f"127.0.0.1:{port_of(plain_emulator)}"
            tunnel.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            assert tunnel.recv(1024).startswith(b"HTTP/1.1 200 Connection established")
            tunnel.sendall(b"GET /_emulator/config HTTP/1.1\r\nHost: x\r\n\r\n")
            assert tunnel.recv(65536).startswith(b"HTTP/1.1 200 OK")
            proxy.stop()
            assert tunnel.recv(1024) == b""  # closed by the proxy, not by the emulator
    assert proxy.tunnels == [f"127.0.0.1:{port_of(plain_emulator)}"]
