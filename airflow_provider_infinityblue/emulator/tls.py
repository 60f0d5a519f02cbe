"""HTTPS for the emulator: a throwaway private CA, made at startup, and the server certificate it signs.

Clients trust the emulator by trusting ``ca.pem`` (the connection's ``ca_bundle`` extra,
``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``). The CA's private key never leaves memory: once
the server certificate is signed it is dropped, so nobody can mint another certificate that
the clients of one emulator run would trust.

``cryptography`` is imported only by :func:`write_emulator_certificates`, so importing this
module stays cheap.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from cryptography.x509 import KeyUsage

CA_FILE_NAME = "ca.pem"
CERTIFICATE_FILE_NAME = "server.pem"
KEY_FILE_NAME = "server-key.pem"
# Every server certificate answers to these, whatever other names are asked for.
DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1", "::1")
CERTIFICATE_VALID_DAYS = 3
# Backdated a little, so a client whose clock is slightly behind still accepts a fresh certificate.
_CLOCK_SKEW_MINUTES = 60
_DNS_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(\*\.)?({_DNS_LABEL}\.)*{_DNS_LABEL}")


@dataclass(frozen=True)
class EmulatorCertificates:
    """Where one emulator's certificate files are: the CA to trust, and the server's certificate and key.

    >>> certificates = EmulatorCertificates.in_directory(Path("/tmp/emulator-tls"))
    >>> certificates.ca_path, certificates.key_path.name
    (PosixPath('/tmp/emulator-tls/ca.pem'), 'server-key.pem')
    """

    ca_path: Path
    certificate_path: Path
    key_path: Path

    @classmethod
    def in_directory(cls, directory: Path) -> EmulatorCertificates:
        """The paths :func:`write_emulator_certificates` uses in ``directory`` (nothing is read or written)."""
        return cls(
            ca_path=directory / CA_FILE_NAME,
            certificate_path=directory / CERTIFICATE_FILE_NAME,
            key_path=directory / KEY_FILE_NAME,
        )

    def announcement(self) -> str:
        """The line the emulator prints at startup, so that users know which file to trust."""
        return f"InfinityBlue emulator CA certificate: {self.ca_path} (pass it as the connection's ca_bundle extra)"


def is_valid_server_name(name: str) -> bool:
    """Whether ``name`` can go into a certificate: an IP address, or an ASCII DNS name (``*.`` allowed first).

    >>> [is_valid_server_name(name) for name in ("api.infinityblue.test", "10.0.0.5", "*.example", "a b", "")]
    [True, True, True, False, False]
    """
    return _ip_address(name) is not None or (len(name) <= 253 and _DNS_NAME.fullmatch(name) is not None)


def server_names(extra_names: Iterable[str] = ()) -> tuple[str, ...]:
    """The names a server certificate is for: :data:`DEFAULT_SERVER_NAMES`, then ``extra_names``, once each.

    >>> server_names(["api.infinityblue.test", "localhost"])
    ('localhost', '127.0.0.1', '::1', 'api.infinityblue.test')
    """
    return tuple(dict.fromkeys((*DEFAULT_SERVER_NAMES, *extra_names)))


def write_emulator_certificates(directory: Path | None = None, names: Iterable[str] = ()) -> EmulatorCertificates:
    """Make a new CA and a server certificate it signs, and write them to ``directory`` as PEM files.

    The server certificate is for :func:`server_names` of ``names`` and, like the CA, valid
    for :data:`CERTIFICATE_VALID_DAYS` days. Files already there are replaced, each in one
    step, so a reader never sees half a file. Without ``directory``, a new temporary
    directory is made and kept: the CA must stay readable for as long as clients need it.
    Keys are EC P-256: quick to make, and accepted by every TLS client.

    Example::

        certificates = write_emulator_certificates(Path("tls"), ["api.infinityblue.test"])
        requests.get("https://api.infinityblue.test:8443/", verify=certificates.ca_path)
    """
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    all_names = server_names(names)
    invalid = [name for name in all_names if not is_valid_server_name(name)]
    if invalid:
        raise ValueError(f"not a DNS name or IP address: {', '.join(map(repr, invalid))}")
    if directory is None:
        directory = Path(tempfile.mkdtemp(prefix="infinityblue-emulator-tls-"))
    directory.mkdir(parents=True, exist_ok=True)

    now = datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(minutes=_CLOCK_SKEW_MINUTES)
    not_after = now + datetime.timedelta(days=CERTIFICATE_VALID_DAYS)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    # A serial in the name keeps two runs' CAs apart in a trust store or an error message.
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "InfinityBlue emulator"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"InfinityBlue emulator throwaway CA {os.urandom(4).hex()}"),
        ]
    )
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        # path_length=0: this CA signs server certificates only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    alternative_names: list[x509.GeneralName] = []
    for name in all_names:
        address = _ip_address(name)
        alternative_names.append(x509.IPAddress(address) if address is not None else x509.DNSName(name))
    # The extensions strict verifiers (Python 3.13's VERIFY_X509_STRICT, browsers) insist on.
    server_certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, all_names[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    certificates = EmulatorCertificates.in_directory(directory)
    pem = serialization.Encoding.PEM
    _replace_file(certificates.ca_path, ca_certificate.public_bytes(pem), mode=0o644)
    _replace_file(certificates.certificate_path, server_certificate.public_bytes(pem), mode=0o644)
    key_pem = server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _replace_file(certificates.key_path, key_pem, mode=0o600)
    return certificates


def server_ssl_context(certificates: EmulatorCertificates) -> ssl.SSLContext:
    """The emulator's server-side TLS settings: its certificate and key, TLS 1.2 or newer.

    Example::

        context = server_ssl_context(write_emulator_certificates(Path("tls")))
        web.run_app(app, port=8443, ssl_context=context)
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificates.certificate_path, certificates.key_path)
    return context


def _key_usage(*, signs_certificates: bool) -> KeyUsage:
    """``KeyUsage`` for a CA (signs certificates) or an EC server key (signs its handshakes)."""
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _ip_address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def _replace_file(path: Path, content: bytes, *, mode: int) -> None:
    """Write ``content`` to ``path`` in one step: to a new file beside it, then renamed over it."""
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        # Created 0600 by mkstemp; the key stays so, the certificates are for everyone to read.
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "wb") as file:
            file.write(content)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
