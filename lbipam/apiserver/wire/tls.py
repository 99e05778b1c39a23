"""TLS for the embedded server: a CA and a server certificate, made once and kept with the data.

    make(host) -> Material                    # a fresh EC P-256 CA and server certificate
    Material.from_json(text) / .to_json()     # kept in the database (see server.py)
    Material.fits(host, now)                  # made for this host, and valid for 30 days more
    server_context(directory, material) -> ssl.SSLContext

The server certificate names the listening host plus 127.0.0.1, ::1 and localhost, and is valid
for a year. The server keeps the material in its database (mode 0600, beside the Secrets it
already holds), as a cluster keeps its PKI: a restart serves the same CA, so kubeconfigs stay
valid, and starts without making keys. The key is written to a private temporary directory only
for `load_cert_chain`. `certs.py` makes the material (with `cryptography`, imported only then).
"""

from __future__ import annotations

import datetime
import json
import ssl
from dataclasses import asdict, dataclass
from pathlib import Path

RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class Material:
    host: str
    ca_pem: str
    cert_pem: str
    key_pem: str
    not_after: str  # ISO 8601, UTC

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> Material | None:
        """The kept material, or None if there is none (or it is not readable)."""
        if not text:
            return None
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError):
            return None

    def fits(self, host: str, now: datetime.datetime | None = None) -> bool:
        current = now or datetime.datetime.now(datetime.UTC)
        try:
            expiry = datetime.datetime.fromisoformat(self.not_after)
        except ValueError:
            return False
        return self.host == host and expiry - RENEW_BEFORE > current


def make(host: str) -> Material:
    """A fresh CA and a server certificate for `host` signed by it."""
    # Imported here: `cryptography` takes longer to import than the rest of a restart that
    # reuses the kept material needs.
    from lbipam.apiserver.wire import certs  # noqa: PLC0415

    ca_pem, cert_pem, key_pem, not_after = certs.make(host)
    return Material(host=host, ca_pem=ca_pem, cert_pem=cert_pem, key_pem=key_pem, not_after=not_after)


def server_context(directory: Path, material: Material) -> ssl.SSLContext:
    """An SSL context serving `material`'s certificate (no client certificates asked for, so no
    CA store is read: create_default_context would spend tens of milliseconds of every start)."""
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_text(material.cert_pem)
    key_path.touch(mode=0o600)
    key_path.write_text(material.key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context
