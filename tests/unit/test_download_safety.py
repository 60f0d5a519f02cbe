"""download/safety.py without a network: why an address is refused, and what an address policy allows."""

from __future__ import annotations

import ipaddress

import pytest

from airflow_provider_infinityblue.download.safety import (
    REFUSED_CATEGORIES,
    AddressPolicy,
    address_category,
    origin_of,
    parse_allowed_hosts,
    resolve_addresses,
)


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("fc00::1", "private"),
        ("::ffff:192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%1", "link-local"),
        ("::ffff:169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:0.0.0.0", "unspecified"),
        ("0.1.2.3", "reserved"),  # "this network"
        ("192.0.2.10", "reserved"),  # documentation
        ("198.18.0.1", "reserved"),  # benchmarking
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("2001:db8::1", "reserved"),  # documentation
        ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
        ("2002:a00:1::1", "private"),  # 6to4 of 10.0.0.1
    ],
)
def test_refused_addresses_and_why(address: str, category: str) -> None:
    assert address_category(ipaddress.ip_address(address)) == category
    assert category in REFUSED_CATEGORIES


@pytest.mark.parametrize(
    "address", ["93.184.215.14", "8.8.8.8", "172.32.0.1", "100.128.0.1", "2606:4700::6810:85e5", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_fine(address: str) -> None:
    assert address_category(ipaddress.ip_address(address)) is None


def test_origins_apply_default_ports_and_ignore_case() -> None:
    assert origin_of("HTTP://LOCALHOST/v") == ("http", "localhost", 80)
    assert origin_of("https://[::1]:8443/v") == ("https", "::1", 8443)
    assert origin_of("ftp://x/") is None


def test_the_trusted_origin_is_scheme_host_and_port() -> None:
    policy = AddressPolicy.build(base_url="http://127.0.0.1:8089")
    assert policy.trusts_host("http", "127.0.0.1", 8089)
    assert not policy.trusts_host("http", "127.0.0.1", 8090)
    assert not policy.trusts_host("https", "127.0.0.1", 8089)
    assert AddressPolicy.build(base_url="https://GW.example.com").trusts_host("https", "gw.example.com", 443)


def test_allowed_host_names_exact_wildcard_and_port() -> None:
    policy = AddressPolicy.build(allowed_hosts=["cdn.internal", "*.videos.example:8443"])
    assert policy.trusts_host("https", "cdn.internal", 443)
    assert policy.trusts_host("http", "CDN.internal.", 8080)
    assert policy.trusts_host("https", "a.b.videos.example", 8443)
    assert not policy.trusts_host("https", "a.videos.example", 443)
    assert not policy.trusts_host("https", "videos.example", 8443)
    assert not policy.trusts_host("https", "evilvideos.example", 8443)
    assert not policy.trusts_host("https", "cdn.internal.evil.com", 443)


def test_allowed_addresses_and_networks() -> None:
    policy = AddressPolicy.build(allowed_hosts="10.0.0.0/8, 127.0.0.1:9000, [fd00::5]")
    ip = ipaddress.ip_address
    assert policy.refusal(ip("10.20.30.40"), 443) is None
    assert policy.refusal(ip("::ffff:10.20.30.40"), 443) is None
    assert policy.refusal(ip("127.0.0.1"), 9000) is None
    assert policy.refusal(ip("127.0.0.1"), 9001) == "loopback"
    assert policy.refusal(ip("fd00::5"), 80) is None
    assert policy.refusal(ip("fd00::6"), 80) == "private"
    assert policy.refusal(ip("169.254.169.254"), 80) == "link-local"
    assert AddressPolicy(allow_private_addresses=True).refusal(ip("169.254.169.254"), 80) is None
    assert AddressPolicy().refusal(ip("93.184.215.14"), 443) is None


@pytest.mark.parametrize(
    "entry", ["http://cdn.example.com", "cdn example", "10.0.0.0/8:80", "host:0", "host:99999", "*", "a/b", ""]
)
def test_entries_that_are_not_understood(entry: str) -> None:
    with pytest.raises(ValueError, match="allowed_hosts entry"):
        parse_allowed_hosts([entry])


def test_allowed_hosts_forms() -> None:
    assert parse_allowed_hosts(None) == parse_allowed_hosts("") == ()
    assert parse_allowed_hosts('["a.example", "10.0.0.1"]') == parse_allowed_hosts("a.example,10.0.0.1")
    with pytest.raises(ValueError, match="must be a list"):
        parse_allowed_hosts(42)


def test_an_ip_address_is_not_looked_up() -> None:
    assert resolve_addresses("[::1]", 80) == [ipaddress.ip_address("::1")]
    assert resolve_addresses("127.0.0.1", 80) == [ipaddress.ip_address("127.0.0.1")]
