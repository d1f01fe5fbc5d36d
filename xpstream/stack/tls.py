"""TLS material of the local broker's optional SASL_SSL listener (``XP_KAFKA_TLS_PORT``).

`xp stack up` writes, once per XP_HOME, under ``$XP_HOME/secrets/tls`` (directory 0700, keys 0600):

- ``ca.pem`` / ``ca.key``: a private certificate authority, valid 10 years, that signs the two below;
- ``broker.pem``: the broker's key and certificate in one PEM file (Kafka's PEM keystore), for
  ``127.0.0.1`` and ``localhost``;
- ``client.pem`` / ``client.key``: a client certificate for mutual TLS (the listener requires one).

They exist so that the production configuration (SASL_SSL with a CA and a client certificate,
docs/production.md) can be followed, and tested, against the local broker. A real cluster's
certificates come from its own CA (Strimzi's, cert-manager's), never from here.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TlsFiles", "ensure_tls_files"]

VALID_DAYS = 3650


@dataclass(frozen=True)
class TlsFiles:
    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def broker_pem(self) -> Path:
        return self.directory / "broker.pem"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    def complete(self) -> bool:
        return all(
            p.is_file()
            for p in (self.ca_cert, self.ca_key, self.broker_pem, self.client_cert, self.client_key)
        )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name | None,
    signer: ec.EllipticCurvePrivateKey,
    now: dt.datetime,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        purpose = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
    if server:
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer, hashes.SHA256())


def ensure_tls_files(directory: Path, *, now: dt.datetime | None = None) -> TlsFiles:
    """The TLS files under ``directory``, generated when any is missing (all of them, from a new CA)."""
    files = TlsFiles(directory)
    if files.complete():
        return files
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    now = now or dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("xpstream local CA", ca_key, None, ca_key, now, ca=True)
    broker_key = ec.generate_private_key(ec.SECP256R1())
    broker_cert = _certificate("localhost", broker_key, ca_cert.subject, ca_key, now, server=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client_cert = _certificate("xpstream client", client_key, ca_cert.subject, ca_key, now)
    pem = serialization.Encoding.PEM
    _write(files.ca_key, _key_pem(ca_key), 0o600)
    _write(files.ca_cert, ca_cert.public_bytes(pem), 0o644)
    _write(files.broker_pem, _key_pem(broker_key) + broker_cert.public_bytes(pem), 0o600)
    _write(files.client_key, _key_pem(client_key), 0o600)
    _write(files.client_cert, client_cert.public_bytes(pem), 0o644)
    return files
