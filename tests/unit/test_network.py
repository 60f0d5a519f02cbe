"""NetworkSettings: one answer to "which proxy, which certificates" for the worker, the triggerer and downloads."""

from __future__ import annotations

import logging
import ssl

import certifi
import pytest

from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError
from airflow_provider_infinityblue.network import NetworkSettings

API = "https://api.getinfinityblue.com/v1/video/generations"
CDN = "http://cdn.example.com/v.mp4"


def settings(extras: dict | None = None, **environ: str) -> NetworkSettings:
    return NetworkSettings.from_extras(extras or {}, conn_id="ib", environ=environ)


def test_nothing_set_means_direct_and_certifis_bundle() -> None:
    network = settings()
    assert network.proxy_for(API) is None
    assert network.requests_verify is True
    assert network.ssl_context().verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("case", ["upper", "lower"])
def test_environment_proxies_by_scheme_in_either_case(case: str) -> None:
    names = {"HTTPS_PROXY": "http://egress:3128", "HTTP_PROXY": "http://plain-egress:3128"}
    network = settings(**{(name if case == "upper" else name.lower()): value for name, value in names.items()})
    assert network.proxy_for(API) == "http://egress:3128"
    assert network.proxy_for(CDN) == "http://plain-egress:3128"
    assert network.requests_proxies(API) == {"https": "http://egress:3128"}


def test_all_proxy_is_the_fallback_and_a_bare_host_port_gets_http() -> None:
    assert settings(ALL_PROXY="egress:3128").proxy_for(API) == "http://egress:3128"


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("api.getinfinityblue.com", API, True),
        (".getinfinityblue.com", API, True),
        ("getinfinityblue.com", API, True),
        ("*", API, True),
        ("infinityblue.com", API, False),  # a suffix must end on a dot boundary
        ("10.0.0.0/8", "https://10.2.3.4/x", True),
        ("10.0.0.0/8", "https://11.2.3.4/x", False),
        ("api.getinfinityblue.com:8443", API, False),  # another port
        ("api.getinfinityblue.com:443", API, True),
        ("localhost, 127.0.0.1", "http://127.0.0.1:8089/x", True),
    ],
)
def test_no_proxy(no_proxy: str, url: str, direct: bool) -> None:
    network = settings(HTTPS_PROXY="http://egress:3128", HTTP_PROXY="http://egress:3128", NO_PROXY=no_proxy)
    assert (network.proxy_for(url) is None) is direct


def test_the_proxy_extra_wins_over_the_environment_and_direct_turns_proxies_off() -> None:
    environ = {"HTTPS_PROXY": "http://egress:3128"}
    assert settings({"proxy": "http://team-proxy:8080"}, **environ).proxy_for(API) == "http://team-proxy:8080"
    assert settings({"proxy": "direct"}, **environ).proxy_for(API) is None
    assert settings({"extra__infinityblue__proxy": "http://ui-form:8080"}).proxy_for(CDN) == "http://ui-form:8080"


def test_proxy_credentials_are_secrets_and_go_to_aiohttp_apart() -> None:
    network = settings({"proxy": "http://user:p%40ss@egress:3128"})
    assert network.secrets() == ["p@ss"]
    with pytest.raises(InfinityBlueConfigurationError) as refused:
        settings({"proxy": "ftp://user:p%40ss@egress:21"})
    assert "ftp://user:***@egress:21" in str(refused.value)
    assert "p%40ss" not in str(refused.value)
    proxy, auth = network.aiohttp_proxy(API)
    assert proxy == "http://egress:3128"
    assert (auth.login, auth.password) == ("user", "p@ss")


@pytest.mark.parametrize("bad", ["ftp://egress:21", "http://", "http://egress:port"])
def test_a_proxy_that_cannot_be_used_is_a_configuration_error(bad: str) -> None:
    with pytest.raises(InfinityBlueConfigurationError, match="'proxy'"):
        settings({"proxy": bad})


def test_ca_bundle_extra_then_the_usual_variables(tmp_path) -> None:
    extra_ca, requests_ca, ssl_file = (tmp_path / name for name in ("extra.pem", "requests.pem", "ssl.pem"))
    for path in (extra_ca, requests_ca, ssl_file):
        path.write_text(certifi.contents())
    both = {"REQUESTS_CA_BUNDLE": str(requests_ca), "SSL_CERT_FILE": str(ssl_file)}
    assert settings({"ca_bundle": str(extra_ca)}, **both).requests_verify == str(extra_ca)
    assert settings(**both).requests_verify == str(requests_ca)  # requests' own variable first
    assert settings(SSL_CERT_FILE=str(ssl_file)).requests_verify == str(ssl_file)  # which requests alone ignores
    assert settings(SSL_CERT_DIR=str(tmp_path)).ca_dir == str(tmp_path)
    # The async path trusts the same file: aiohttp alone would ignore REQUESTS_CA_BUNDLE.
    assert settings(REQUESTS_CA_BUNDLE=str(requests_ca)).ssl_context().get_ca_certs()


def test_a_ca_bundle_that_does_not_exist_is_a_configuration_error(tmp_path) -> None:
    with pytest.raises(InfinityBlueConfigurationError, match=r"'ca_bundle'.*neither a file nor a directory"):
        settings({"ca_bundle": str(tmp_path / "missing.pem")})
    with pytest.raises(InfinityBlueConfigurationError, match="REQUESTS_CA_BUNDLE"):
        settings(REQUESTS_CA_BUNDLE=str(tmp_path / "missing.pem"))


def test_verification_is_a_choice_with_two_values() -> None:
    assert settings({"tls_verification": "verify"}).verify is True
    assert settings({"tls_verification": "skip-insecure"}).requests_verify is False
    with pytest.raises(InfinityBlueConfigurationError, match="tls_verification"):
        settings({"tls_verification": "false"})  # not a switch that one save flips


def test_unverified_settings_warn_once_per_process_and_connection(caplog) -> None:
    network = NetworkSettings.from_extras({"tls_verification": "skip-insecure"}, conn_id="warn-once", environ={})
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            network.warn_if_unverified()
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert "CERTIFICATE CHECKS ARE OFF" in caplog.records[0].getMessage()
    assert len(caplog.records) == 1


def test_pool_limits() -> None:
    network = settings({"max_connections_per_host": "4", "max_requests_per_second": 50})
    assert (network.max_connections_per_host, network.max_requests_per_second) == (4, 50)
    assert settings().max_requests_per_second is None
    with pytest.raises(InfinityBlueConfigurationError, match="max_connections_per_host"):
        settings({"max_connections_per_host": 0})
