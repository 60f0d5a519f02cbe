"""HTTPS: ``--tls``, its throwaway CA and certificates, the runners over TLS, and the connection counts."""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from airflow_provider_infinityblue.emulator import (
    EmulatorControlError,
    EmulatorSettings,
    emulator_process,
    running_emulator,
)
from airflow_provider_infinityblue.emulator.cli import build_parser, command_line_arguments, parse_settings
from airflow_provider_infinityblue.emulator.tls import write_emulator_certificates
from tests.emulator.conftest import ApiClient

if TYPE_CHECKING:
    from airflow_provider_infinityblue.emulator import EmulatorHandle

MADE_UP_NAME = "api.infinityblue.test"
CA_LINE = re.compile(r"InfinityBlue emulator CA certificate: (\S+) \(pass it as the connection's ca_bundle extra\)")


def port_of(emulator: EmulatorHandle) -> int:
    return int(emulator.url.rsplit(":", 1)[1])


def session(verify: Path | bool | None = None) -> requests.Session:
    client = requests.Session()
    client.trust_env = False  # loopback only, whatever proxy or CA bundle the environment names
    if verify is not None:
        client.verify = str(verify) if isinstance(verify, Path) else verify
    return client


def certificate_names(certificate_path: Path) -> tuple[set[str], set[str]]:
    """The DNS names and IP addresses a PEM certificate is for."""
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(names.get_values_for_type(x509.DNSName)), {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}


def strict_handshake(emulator: EmulatorHandle, server_hostname: str) -> str:
    """Complete a TLS handshake the way the strictest Python clients do; the TLS version used."""
    assert emulator.ca_bundle is not None
    context = ssl.create_default_context(cafile=emulator.ca_bundle)
    context.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on
    with (
        socket.create_connection(("127.0.0.1", port_of(emulator)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        version = tls.version()
        assert version is not None
        return version


# -- the command line ---------------------------------------------------------------------------


def test_tls_flags_parse_and_survive_a_round_trip(tmp_path: Path) -> None:
    flags = ["--tls", "--tls-name", MADE_UP_NAME, "--tls-name", "10.0.0.5", "--tls-dir", str(tmp_path)]
    settings = parse_settings(flags)[0]
    assert (settings.tls, settings.tls_names, settings.tls_dir) == (True, (MADE_UP_NAME, "10.0.0.5"), tmp_path)
    assert parse_settings(command_line_arguments(settings))[0] == settings
    assert parse_settings([])[0].tls is False
    help_text = " ".join(build_parser().format_help().split())
    assert "--tls-name NAME" in help_text
    assert "kept after exit" in help_text


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tls-name", MADE_UP_NAME], "--tls-name: only applies with tls=True (--tls)"),
        (["--tls-dir", "/tmp/x"], "--tls-dir: only applies with tls=True (--tls)"),
        (["--tls", "--tls-name", "not a name"], "--tls-name: must hold DNS names or IP addresses"),
    ],
)
def test_bad_tls_flags_exit_with_a_usage_error(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(flags)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_the_command_line_serves_https_and_prints_where_its_ca_is(tmp_path: Path) -> None:
    stdout, stderr = tmp_path / "stdout", tmp_path / "stderr"
    command = [str(Path(sys.executable).parent / "infinityblue-emulator"), "--host", "127.0.0.1", "--port", "0"]
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen([*command, "--tls", "--tls-name", MADE_UP_NAME], stdout=out, stderr=err)
    ca_dir: Path | None = None
    try:
        url = wait_for(r"listening on (https://127\.0\.0\.1:\d+)", stderr)
        ca_path = Path(wait_for(CA_LINE.pattern, stdout))
        ca_dir = ca_path.parent
        assert CA_LINE.search(stderr.read_text())  # logged at INFO too
        with session(verify=ca_path) as client:
            assert client.get(f"{url}/_emulator/config", timeout=10).json()["shape"] == "documented"
        with session() as client, pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            client.get(f"{url}/_emulator/config", timeout=10)
        dns_names, addresses = certificate_names(ca_dir / "server.pem")
        assert dns_names == {"localhost", MADE_UP_NAME}
        assert addresses == {"127.0.0.1", "::1"}
    finally:
        process.terminate()
        assert process.wait(10) == 0
        try:
            # Kept after exit: clients started from the printed path may still need it.
            assert ca_dir is not None
            assert (ca_dir / "ca.pem").is_file()
            assert ca_dir.name.startswith("infinityblue-emulator-tls-")
        finally:
            if ca_dir is not None:
                shutil.rmtree(ca_dir)


def wait_for(pattern: str, path: Path) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text())
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"{pattern!r} never appeared in {path.name}: {path.read_text()}")


# -- the certificates ---------------------------------------------------------------------------


def test_certificates_are_for_the_loopback_names_and_the_extra_ones(tmp_path: Path) -> None:
    from cryptography import x509

    certificates = write_emulator_certificates(tmp_path, [MADE_UP_NAME, "10.1.2.3", "localhost"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ca.pem", "server-key.pem", "server.pem"]
    assert certificates.ca_path == tmp_path / "ca.pem"
    assert certificate_names(certificates.certificate_path) == (
        {"localhost", MADE_UP_NAME},
        {"127.0.0.1", "::1", "10.1.2.3"},
    )
    assert certificates.key_path.stat().st_mode & 0o777 == 0o600  # the only private key written
    ca = x509.load_pem_x509_certificate(certificates.ca_path.read_bytes())
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert (constraints.ca, constraints.path_length) == (True, 0)
    server = x509.load_pem_x509_certificate(certificates.certificate_path.read_bytes())
    assert server.issuer == ca.subject
    now = datetime.now(UTC)
    assert server.not_valid_before_utc < now < server.not_valid_after_utc < now + timedelta(days=4)

    again = write_emulator_certificates(tmp_path)
    assert again == certificates
    assert x509.load_pem_x509_certificate(again.ca_path.read_bytes()).subject != ca.subject  # a new CA each time
    with pytest.raises(ValueError, match="not a DNS name or IP address: 'a b'"):
        write_emulator_certificates(tmp_path, ["a b"])


# -- the runners --------------------------------------------------------------------------------


def test_the_thread_runner_serves_https_that_strict_clients_verify() -> None:
    with running_emulator(tls=True, tls_names=(MADE_UP_NAME,), generation_seconds=0.1) as emulator:
        assert emulator.url.startswith("https://127.0.0.1:")
        assert emulator.ca_bundle is not None
        assert emulator.ca_bundle.is_file()
        assert strict_handshake(emulator, "localhost") in ("TLSv1.2", "TLSv1.3")
        strict_handshake(emulator, "127.0.0.1")
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            strict_handshake(emulator, "elsewhere.test")

        api = ApiClient(emulator.url)
        api.session.verify = str(emulator.ca_bundle)
        assert api.wait_until_finished(api.submit_id())["status"] == "completed"
        api.session.close()
        # The extra name is in the certificate (tests/integration/test_proxy_helper.py reaches it through a proxy).
        strict_handshake(emulator, MADE_UP_NAME)

        assert emulator.stats()["submissions"] == 1
        with pytest.raises(EmulatorControlError, match="fixed once the emulator listens"):
            emulator.configure(tls=False)
        ca_bundle = emulator.ca_bundle
    assert not ca_bundle.exists()  # the temporary directory goes with the emulator


def test_the_process_runner_serves_https_and_its_controls_work_over_it() -> None:
    with emulator_process(tls=True, tls_names=(MADE_UP_NAME,), generation_seconds=0.1) as emulator:
        assert emulator.url.startswith("https://127.0.0.1:")
        assert emulator.ca_bundle is not None
        assert emulator.configure(shape="wrapped")["shape"] == "wrapped"
        api = ApiClient(emulator.url)
        api.session.verify = str(emulator.ca_bundle)
        assert api.submit().status_code == 200
        api.session.close()
        assert emulator.stats()["submissions"] == 1
        emulator.reset()
        assert emulator.stats()["submissions"] == 0
        assert "listening on https://127.0.0.1:" in emulator.log_path.read_text()  # type: ignore[union-attr]
        connection = json.loads(emulator.airflow_connection())
        assert connection["host"] == emulator.url
        assert json.loads(connection["extra"]) == {"ca_bundle": str(emulator.ca_bundle)}
        assert certificate_names(emulator.ca_bundle.with_name("server.pem"))[0] == {"localhost", MADE_UP_NAME}
        ca_bundle = emulator.ca_bundle
    assert not ca_bundle.exists()


def test_the_tls_fixture_yields_an_https_emulator_and_its_ca(infinityblue_tls_emulator: EmulatorHandle) -> None:
    assert infinityblue_tls_emulator.url.startswith("https://")
    assert infinityblue_tls_emulator.configure()["generation_seconds"] == 0.5
    with session(verify=infinityblue_tls_emulator.ca_bundle) as client:
        assert client.get(f"{infinityblue_tls_emulator.url}/_emulator/config", timeout=10).status_code == 200


def test_a_plain_emulator_has_no_ca_and_no_ca_extra(infinityblue_emulator: EmulatorHandle) -> None:
    assert infinityblue_emulator.ca_bundle is None
    assert "extra" not in json.loads(infinityblue_emulator.airflow_connection())


# -- connection counts --------------------------------------------------------------------------

# Each stats() answer counts its own connection (and, over TLS, its handshake) once: see EmulatorHandle.stats.
OWN = 1
REQUESTS = 5


def status_get(client: requests.Session, emulator: EmulatorHandle) -> None:
    answer = client.get(
        f"{emulator.url}/v1/video/generations/nope", headers={"Authorization": "Bearer sk-count"}, timeout=10
    )
    assert answer.status_code == 404


def settled_stats(emulator: EmulatorHandle, open_connections: int) -> dict[str, Any]:
    """stats() once the server has seen ``open_connections`` (its own included) open: closing takes a moment."""
    deadline = time.monotonic() + 10
    while (stats := emulator.stats())["open_connections"] != open_connections:
        assert time.monotonic() < deadline, stats
        time.sleep(0.02)
    return stats


def test_keep_alive_requests_share_one_connection_and_one_handshake(
    infinityblue_tls_emulator: EmulatorHandle,
) -> None:
    emulator = infinityblue_tls_emulator
    emulator.reset()
    with session(verify=emulator.ca_bundle) as client:
        for _ in range(REQUESTS):
            status_get(client, emulator)
        stats = settled_stats(emulator, open_connections=1 + OWN)
        assert (stats["connections"], stats["tls_handshakes"]) == (1 + OWN, 1 + OWN)
        assert stats["requests"] == {"GET /v1/video/generations/{task_id}": {"404": REQUESTS}}
    # Closed by the client: only the stats() call's own connection is open.
    settled_stats(emulator, open_connections=OWN)


def test_a_session_per_request_opens_a_connection_and_a_handshake_each(
    infinityblue_tls_emulator: EmulatorHandle,
) -> None:
    emulator = infinityblue_tls_emulator
    emulator.reset()
    for _ in range(REQUESTS):
        with session(verify=emulator.ca_bundle) as client:
            status_get(client, emulator)
    stats = settled_stats(emulator, open_connections=OWN)
    assert (stats["connections"], stats["tls_handshakes"]) == (REQUESTS + OWN, REQUESTS + OWN)


def test_a_client_that_rejects_the_certificate_counts_a_connection_without_a_handshake(
    infinityblue_tls_emulator: EmulatorHandle,
) -> None:
    emulator = infinityblue_tls_emulator
    emulator.reset()
    with session() as client, pytest.raises(requests.exceptions.SSLError):
        status_get(client, emulator)
    stats = settled_stats(emulator, open_connections=OWN)
    assert (stats["connections"], stats["tls_handshakes"]) == (1 + OWN, OWN)
    assert stats["requests"] == {}


def test_plain_http_counts_connections_and_no_handshakes(infinityblue_emulator: EmulatorHandle) -> None:
    emulator = infinityblue_emulator
    emulator.reset()
    with session() as client:
        for _ in range(REQUESTS):
            status_get(client, emulator)
        stats = settled_stats(emulator, open_connections=1 + OWN)
    assert (stats["connections"], stats["tls_handshakes"]) == (1 + OWN, 0)
    settled_stats(emulator, open_connections=OWN)


def test_tls_settings_are_startup_only() -> None:
    settings = EmulatorSettings(tls=True)
    assert "tls" not in settings.knobs()
    with pytest.raises(ValueError, match="fixed once the emulator listens"):
        settings.with_knobs({"tls_names": ("x.test",)})
