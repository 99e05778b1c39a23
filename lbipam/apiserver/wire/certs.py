"""Certificates for the embedded server: an EC P-256 CA and a server certificate it signs.

The server certificate names the listening host plus 127.0.0.1, ::1 and localhost; both are valid
for a year. Uses the `cryptography` package. Called by `tls.make` (only when no kept material fits).
"""

from __future__ import annotations

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _names(host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [
        x509.DNSName("localhost"),
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    try:
        address = ipaddress.ip_address(host)
        if str(address) not in ("127.0.0.1", "::1"):
            names.append(x509.IPAddress(address))
    except ValueError:
        if host != "localhost":
            names.append(x509.DNSName(host))
    return names


def _certificate(
    subject: str,
    issuer: x509.Name | None,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    ca: bool,
    host: str,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName(_names(host)), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def make(host: str) -> tuple[str, str, str, str]:
    """A fresh CA and a server certificate for `host` signed by it: the PEMs of the CA
    certificate, the server certificate and its key, and when the certificate expires."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _certificate("lbipam-embedded-ca", None, ca_key, ca_key, True, host)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate("lbipam-apiserver", ca_cert.subject, key, ca_key, False, host)
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return (
        ca_cert.public_bytes(pem).decode(),
        cert.public_bytes(pem).decode(),
        key_pem.decode(),
        cert.not_valid_after_utc.isoformat(),
    )
