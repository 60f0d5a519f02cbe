"""Which addresses a download reaches: real loopback servers, and one replaced name resolver for made-up names.

By default a download connects only to public addresses, the InfinityBlue connection's own
origin excepted; ``allowed_hosts`` and ``allow_private_addresses`` (operator or connection
extras) open more. Every refusal comes before a single byte is sent to the refused address.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
from typing import TYPE_CHECKING

import pytest
import urllib3.util.connection

from airflow_provider_infinityblue.download import InfinityBlueDownloadError, InfinityBlueDownloadRefusedError, safety
from airflow_provider_infinityblue.exceptions import InfinityBlueConfigurationError
from airflow_provider_infinityblue.operators.infinityblue import InfinityBlueDownloadVideoOperator
from airflow_provider_infinityblue.retry import RetryPolicy
from tests.conftest import set_connection
from tests.integration.video_servers import generated_video
from tests.loopback import LoopbackServer, Reply, free_port
from tests.unit.fakes import task_context

if TYPE_CHECKING:
    from pathlib import Path

VIDEO = generated_video(4096)
MP4 = {"Content-Type": "video/mp4"}


def video_reply() -> Reply:
    return Reply(body=VIDEO, headers=MP4)


def download(url: str, destination: Path, *, max_attempts: int = 3, **kwargs) -> str:
    op = InfinityBlueDownloadVideoOperator(task_id="download", url=url, destination=str(destination), **kwargs)
    op.download_retry_policy = RetryPolicy(max_attempts=max_attempts, initial_backoff=0.01, max_backoff=0.02)
    return op.execute(task_context())


def port_of(server: LoopbackServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


@pytest.fixture(autouse=True)
def no_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
def connection_elsewhere(monkeypatch: pytest.MonkeyPatch) -> str:
    """``infinityblue_default`` on 127.0.0.1, on a port no test server uses; its base URL."""
    base_url = f"http://127.0.0.1:{free_port()}"
    set_connection(monkeypatch, host=base_url)  # no API key: the download does not need one
    return base_url


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every (address, port) the download opens a socket to."""
    made: list[tuple[str, int]] = []
    real = urllib3.util.connection.create_connection

    def recording(address: tuple[str, int], *args, **kwargs):
        made.append(address)
        return real(address, *args, **kwargs)

    monkeypatch.setattr(urllib3.util.connection, "create_connection", recording)
    return made


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Made-up host names and the addresses they resolve to, through the download's one resolver."""
    table: dict[str, list[str]] = {}
    real = safety.resolve_addresses

    def resolve(host: str, port: int):
        if host in table:
            return [ipaddress.ip_address(address) for address in table[host]]
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port)

    monkeypatch.setattr(safety, "resolve_addresses", resolve)
    return table


class TestLoopback:
    def test_refused_by_default_before_any_request(self, connection_elsewhere, connects, tmp_path) -> None:
        with LoopbackServer([video_reply()]) as host:
            url = f"{host.url}/v.mp4?token=SECRETtoken"
            with pytest.raises(InfinityBlueDownloadRefusedError) as caught:
                download(url, tmp_path / "v.mp4")
        message = str(caught.value)
        assert message.startswith(f"Refusing to download {host.url}/v.mp4?…: 127.0.0.1 is a loopback address")
        assert f"allowed_hosts=['127.0.0.1:{port_of(host)}']" in message
        assert "allow_private_addresses=True" in message
        assert "SECRETtoken" not in message
        assert host.connections == 0
        assert host.received == []
        assert connects == []
        assert list(tmp_path.iterdir()) == []

    def test_refused_without_a_connection_too(self, monkeypatch, tmp_path) -> None:
        monkeypatch.delenv("AIRFLOW_CONN_INFINITYBLUE_DEFAULT", raising=False)
        with (
            LoopbackServer([video_reply()]) as host,
            pytest.raises(InfinityBlueDownloadRefusedError, match="a loopback address"),
        ):
            download(f"{host.url}/v.mp4", tmp_path / "v.mp4", infinityblue_conn_id="no_such_connection")
        assert host.connections == 0

    @pytest.mark.parametrize(
        "allowance",
        [
            pytest.param(lambda port: {"allowed_hosts": [f"127.0.0.1:{port}"]}, id="allowed_hosts-address-port"),
            pytest.param(lambda port: {"allowed_hosts": "10.0.0.0/8, 127.0.0.0/8"}, id="allowed_hosts-network"),
            pytest.param(lambda port: {"allow_private_addresses": True}, id="allow_private_addresses"),
        ],
    )
    def test_allowed_by_the_operator(self, connection_elsewhere, tmp_path, allowance) -> None:
        with LoopbackServer([video_reply()]) as host:
            assert download(f"{host.url}/v.mp4", tmp_path / "v.mp4", **allowance(port_of(host)))
        assert (tmp_path / "v.mp4").read_bytes() == VIDEO

    def test_an_allowed_address_is_limited_to_its_port(self, connection_elsewhere, tmp_path) -> None:
        with (
            LoopbackServer([video_reply()]) as host,
            pytest.raises(InfinityBlueDownloadRefusedError, match="a loopback address"),
        ):
            download(f"{host.url}/v.mp4", tmp_path / "v.mp4", allowed_hosts=[f"127.0.0.1:{port_of(host) + 1}"])
        assert host.connections == 0

    @pytest.mark.parametrize(
        "extra",
        [
            pytest.param(lambda port: {"allowed_hosts": f"cdn.example.com, 127.0.0.1:{port}"}, id="comma-separated"),
            pytest.param(lambda port: {"allowed_hosts": json.dumps([f"127.0.0.1:{port}"])}, id="json-string"),
            pytest.param(lambda port: {"allowed_hosts": [f"127.0.0.1:{port}"]}, id="json-list"),
            pytest.param(lambda port: {"extra__infinityblue__allowed_hosts": "127.0.0.1"}, id="form-prefix"),
            pytest.param(lambda port: {"allow_private_addresses": True}, id="private-bool"),
            pytest.param(lambda port: {"allow_private_addresses": "True"}, id="private-string"),
        ],
    )
    def test_allowed_by_the_connection_extras(self, monkeypatch, tmp_path, extra) -> None:
        with LoopbackServer([video_reply()]) as host:
            extras = extra(port_of(host))
            set_connection(monkeypatch, host=f"http://127.0.0.1:{free_port()}", extra=json.dumps(extras))
            assert download(f"{host.url}/v.mp4", tmp_path / "v.mp4")
        assert (tmp_path / "v.mp4").read_bytes() == VIDEO

    def test_the_operator_overrides_the_connections_allow_private_addresses(self, monkeypatch, tmp_path) -> None:
        set_connection(monkeypatch, host="http://127.0.0.1:1", extra=json.dumps({"allow_private_addresses": "true"}))
        with (
            LoopbackServer([video_reply()]) as host,
            pytest.raises(InfinityBlueDownloadRefusedError, match="a loopback address"),
        ):
            download(f"{host.url}/v.mp4", tmp_path / "v.mp4", allow_private_addresses=False)
        assert host.connections == 0

    def test_a_bad_extra_names_the_connection(self, monkeypatch, tmp_path) -> None:
        set_connection(monkeypatch, host="http://127.0.0.1:1", extra=json.dumps({"allow_private_addresses": "yes!"}))
        with pytest.raises(InfinityBlueConfigurationError, match=r"'infinityblue_default': extra 'allow_private"):
            download("http://127.0.0.1:1/v.mp4", tmp_path / "v.mp4")
        set_connection(monkeypatch, host="http://127.0.0.1:1", extra=json.dumps({"allowed_hosts": "a b"}))
        with pytest.raises(InfinityBlueConfigurationError, match=r"'infinityblue_default': extra allowed_hosts entry"):
            download("http://127.0.0.1:1/v.mp4", tmp_path / "v.mp4")

    def test_a_bad_allowed_hosts_entry_fails_when_the_dag_is_parsed(self) -> None:
        with pytest.raises(ValueError, match=r"^download: allowed_hosts entry 'http://x/' is not a host name"):
            InfinityBlueDownloadVideoOperator(
                task_id="download", url="u", destination="/x.mp4", allowed_hosts=["http://x/"]
            )

    def test_a_redirect_into_a_port_that_is_not_allowed_is_refused(self, connection_elsewhere, tmp_path) -> None:
        with LoopbackServer([video_reply()]) as target:
            redirect = Reply(status=302, headers={"Location": f"{target.url}/secret?sig=abc"})
            with (
                LoopbackServer([redirect]) as allowed,
                pytest.raises(InfinityBlueDownloadRefusedError) as caught,
            ):
                download(f"{allowed.url}/v.mp4", tmp_path / "v.mp4", allowed_hosts=[f"127.0.0.1:{port_of(allowed)}"])
        assert str(caught.value).startswith(
            f"Refusing to follow the redirect from {allowed.url}/v.mp4 to {target.url}/secret?…: "
            "127.0.0.1 is a loopback address"
        )
        assert len(allowed.received) == 1  # refused, not retried
        assert target.connections == 0
        assert target.received == []


class TestTheConnectionsOrigin:
    def test_the_emulators_origin_is_trusted_another_port_is_not(self, emulator, tmp_path) -> None:
        # The fixture points infinityblue_default at the emulator: its videos are on the same origin.
        from airflow_provider_infinityblue.hooks.infinityblue import InfinityBlueHook
        from airflow_provider_infinityblue.models import GenerationRequest

        with InfinityBlueHook() as hook:
            generation_id = hook.submit_generation(GenerationRequest(prompt="A heron", model="kling-v2-5-turbo"))
            url = hook.wait_for_generation(generation_id, poll_interval=0.05, timeout=30).video_url
        assert url is not None
        assert url.startswith(emulator.url)
        assert download(url, tmp_path / "heron.mp4")
        assert (tmp_path / "heron.mp4").stat().st_size > 0

        with (
            LoopbackServer([video_reply()]) as other,
            pytest.raises(InfinityBlueDownloadRefusedError, match=r"127\.0\.0\.1 is a loopback address"),
        ):
            download(f"{other.url}/videos/{generation_id}.mp4", tmp_path / "other.mp4")
        assert other.connections == 0


class TestNames:
    def test_a_name_resolving_to_a_link_local_address_is_refused_before_connecting(
        self, connection_elsewhere, names, connects, tmp_path
    ) -> None:
        names["metadata.example.com"] = ["169.254.169.254"]
        with pytest.raises(InfinityBlueDownloadRefusedError) as caught:
            download("http://metadata.example.com/latest/meta-data/", tmp_path / "v.mp4")
        assert str(caught.value).startswith(
            "Refusing to download http://metadata.example.com/latest/meta-data/: metadata.example.com resolves to "
            "169.254.169.254, a link-local address"
        )
        assert "allowed_hosts=['metadata.example.com:80']" in str(caught.value)
        assert connects == []

    def test_one_refused_address_among_public_ones_refuses_the_host(
        self, connection_elsewhere, names, connects, tmp_path
    ) -> None:
        names["mixed.example.com"] = ["93.184.215.14", "::ffff:10.1.2.3"]
        with pytest.raises(
            InfinityBlueDownloadRefusedError, match=r"resolves to ::ffff:(10\.1\.2\.3|a01:203), a private"
        ):
            download("https://mixed.example.com/v.mp4", tmp_path / "v.mp4")
        assert connects == []

    def test_an_allowed_name_is_connected_to_by_the_address_it_resolved_to(
        self, connection_elsewhere, names, connects, tmp_path
    ) -> None:
        with LoopbackServer([video_reply()]) as host:
            names["videos.internal.example"] = ["127.0.0.1"]
            url = f"http://videos.internal.example:{port_of(host)}/v.mp4"
            with pytest.raises(InfinityBlueDownloadRefusedError, match=r"resolves to 127\.0\.0\.1, a loopback address"):
                download(url, tmp_path / "v.mp4")
            assert host.connections == 0

            assert download(url, tmp_path / "v.mp4", allowed_hosts=["*.internal.example"])
        assert (tmp_path / "v.mp4").read_bytes() == VIDEO
        # Connected to the address the one resolver gave; the request still names the host.
        assert connects == [("127.0.0.1", port_of(host))]
        assert host.received[0].headers["Host"] == f"videos.internal.example:{port_of(host)}"


class TestThroughAProxy:
    """``HTTP_PROXY`` points at a loopback server playing a forward proxy (it answers the video itself)."""

    @pytest.fixture
    def proxy(self, monkeypatch: pytest.MonkeyPatch, connection_elsewhere: str):
        with LoopbackServer([video_reply()]) as server:
            monkeypatch.setenv("HTTP_PROXY", server.url)
            yield server

    def test_the_proxy_is_exempt_and_a_public_host_goes_through_it(self, proxy, names, tmp_path) -> None:
        names["cdn.example.com"] = ["93.184.215.14"]
        assert download("http://cdn.example.com/v.mp4", tmp_path / "v.mp4")
        assert (tmp_path / "v.mp4").read_bytes() == VIDEO
        assert [r.path for r in proxy.received] == ["http://cdn.example.com/v.mp4"]

    def test_a_host_resolving_here_to_a_private_address_is_refused_before_the_proxy_is_asked(
        self, proxy, names, tmp_path
    ) -> None:
        names["cdn.example.com"] = ["10.0.0.8"]
        with pytest.raises(InfinityBlueDownloadRefusedError) as caught:
            download("http://cdn.example.com/v.mp4", tmp_path / "v.mp4")
        assert str(caught.value).startswith(
            "Refusing to download http://cdn.example.com/v.mp4: it is to be fetched through a proxy, and "
            "cdn.example.com resolves to 10.0.0.8, a private address"
        )
        assert proxy.connections == 0

    def test_a_name_that_does_not_resolve_here_must_be_allowed(self, proxy, names, tmp_path) -> None:
        with pytest.raises(InfinityBlueDownloadRefusedError, match=r"does not resolve here.*allowed_hosts"):
            download("http://cdn.invalid/v.mp4", tmp_path / "v.mp4")
        assert proxy.connections == 0
        assert download("http://cdn.invalid/v.mp4", tmp_path / "v.mp4", allowed_hosts=["cdn.invalid"])
        assert [r.path for r in proxy.received] == ["http://cdn.invalid/v.mp4"]


class TestTheBatch:
    """The batch operator's downloads follow the same policy, from its own InfinityBlue connection."""

    def save(self, url: str, tmp_path: Path, **allowance):
        from airflow_provider_infinityblue.batch.manifest import ManifestEntry
        from airflow_provider_infinityblue.operators.batch import InfinityBlueGenerateVideoBatchOperator

        op = InfinityBlueGenerateVideoBatchOperator(
            task_id="generate",
            requests=[{"prompt": "A heron"}],
            manifest_path=str(tmp_path / "manifest.jsonl"),
            destination=str(tmp_path / "{key}.mp4"),
            infinityblue_conn_id="batch_conn",
            **allowance,
        )
        entry = ManifestEntry(row=0, key="heron", generation_id="g1", status="succeeded", video_url=url)
        op._save_videos(task_context(), {0: entry}, [0])
        return entry

    def test_refused_unless_the_connection_allows_it(self, monkeypatch, tmp_path) -> None:
        with LoopbackServer([video_reply()]) as host:
            set_connection(monkeypatch, "batch_conn", host=f"http://127.0.0.1:{free_port()}", password="sk-x")
            refused = self.save(f"{host.url}/v.mp4", tmp_path)
            assert refused.status == "failed"
            assert "could not be saved" in (refused.error or "")
            assert "127.0.0.1 is a loopback address" in (refused.error or "")
            assert host.connections == 0

            extra = json.dumps({"allowed_hosts": f"127.0.0.1:{port_of(host)}"})
            set_connection(
                monkeypatch, "batch_conn", host=f"http://127.0.0.1:{free_port()}", password="sk-x", extra=extra
            )
            saved = self.save(f"{host.url}/v.mp4", tmp_path)
        assert saved.status == "succeeded", saved.error
        assert (tmp_path / "heron.mp4").read_bytes() == VIDEO

    def test_allowed_by_the_operator(self, monkeypatch, tmp_path) -> None:
        with LoopbackServer([video_reply()]) as host:
            set_connection(monkeypatch, "batch_conn", host=f"http://127.0.0.1:{free_port()}", password="sk-x")
            saved = self.save(f"{host.url}/v.mp4", tmp_path, allowed_hosts=[f"127.0.0.1:{port_of(host)}"])
        assert saved.status == "succeeded", saved.error
        assert (tmp_path / "heron.mp4").read_bytes() == VIDEO

    def test_a_bad_allowance_fails_when_the_dag_is_parsed(self, tmp_path) -> None:
        with pytest.raises(ValueError, match="allowed_hosts entry 'http://x/'"):
            self.save("http://x/v.mp4", tmp_path, allowed_hosts=["http://x/"])
        with pytest.raises(ValueError, match="allow_private_addresses must be True, False or None"):
            self.save("http://x/v.mp4", tmp_path, allow_private_addresses="yes")


def self_signed(name: str, folder: Path) -> tuple[Path, Path]:
    """A certificate for ``name`` and its key, as PEM files."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class TestTLS:
    def test_connecting_by_address_keeps_the_name_for_sni_and_the_certificate(
        self, connection_elsewhere, names, monkeypatch, tmp_path
    ) -> None:
        cert, key = self_signed("videos.internal.example", tmp_path)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server_names: list[str | None] = []
        context.sni_callback = lambda _sock, name, _context: server_names.append(name)
        with LoopbackServer([video_reply()]) as host:
            host._server.socket = context.wrap_socket(host._server.socket, server_side=True)
            names["videos.internal.example"] = names["other.internal.example"] = ["127.0.0.1"]
            url = f"https://videos.internal.example:{port_of(host)}/v.mp4"
            assert download(url, tmp_path / "v.mp4", allowed_hosts=["*.internal.example"])
            # The certificate is for videos.internal.example only: checked against the name, not the address.
            with pytest.raises(InfinityBlueDownloadError, match="CERTIFICATE_VERIFY_FAILED"):
                download(
                    f"https://other.internal.example:{port_of(host)}/v.mp4",
                    tmp_path / "other.mp4",
                    allowed_hosts=["*.internal.example"],
                    max_attempts=1,
                )
        assert (tmp_path / "v.mp4").read_bytes() == VIDEO
        assert server_names[0] == "videos.internal.example"
        assert host.received[0].headers["Host"] == f"videos.internal.example:{port_of(host)}"
