"""Serving certificates: self-bootstrapped (CA + leaf in a Secret) or mounted files, reloaded live.

The API server only talks to webhooks over TLS it can verify. Two sources are supported:

* **files** (cert-manager or a user Secret mounted at ``/tls``): the files are re-read whenever
  their modification time or size changes, so a rotated certificate is served to new connections
  without a restart.
* **bootstrap** (default, no dependencies): the injector generates a CA and a serving certificate,
  stores both in a Secret in its own namespace (so every replica serves the same chain and a
  restart keeps it), and patches ``caBundle`` into its MutatingWebhookConfiguration. The CA lives
  ten years; the serving certificate is re-issued from it before it expires. Nothing random is in
  the chart, so ``helm template`` is deterministic and ArgoCD shows no drift.

The generation functions take ``now`` and return PEM bytes; the Kubernetes reads and writes live
in :mod:`injector.controller`.
"""

from __future__ import annotations

import datetime as _dt
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY_DAYS = 3650
SECRET_KEYS = ("ca.crt", "ca.key", "tls.crt", "tls.key")


@dataclass(frozen=True)
class Bundle:
    """A CA and a serving certificate issued by it, all PEM."""

    ca_cert: bytes
    ca_key: bytes
    cert: bytes
    key: bytes

    def as_secret_data(self) -> dict[str, bytes]:
        return {"ca.crt": self.ca_cert, "ca.key": self.ca_key, "tls.crt": self.cert, "tls.key": self.key}

    @classmethod
    def from_secret_data(cls, data: Mapping[str, bytes]) -> Bundle | None:
        if not all(data.get(k) for k in SECRET_KEYS):
            return None
        return cls(data["ca.crt"], data["ca.key"], data["tls.crt"], data["tls.key"])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_ca(now: _dt.datetime, validity_days: int = CA_VALIDITY_DAYS) -> tuple[bytes, bytes]:
    """A self-signed ECDSA P-256 CA: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lifeboat-injector-ca")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(now + _dt.timedelta(days=validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue(
    ca_cert_pem: bytes, ca_key_pem: bytes, dns_names: Sequence[str], now: _dt.datetime, validity_days: int
) -> tuple[bytes, bytes]:
    """A serving certificate for ``dns_names`` signed by the CA: (certificate PEM, key PEM)."""
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key in the TLS Secret is not an ECDSA key; delete the Secret's data")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _dt.timedelta(minutes=5))
        .not_valid_after(min(now + _dt.timedelta(days=validity_days), ca_cert.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def renewal_reason(
    bundle: Bundle | None, dns_names: Sequence[str], now: _dt.datetime, renew_before_days: int
) -> str | None:
    """Why the bundle must be (re)issued, or None when it is fine to keep serving it."""
    if bundle is None:
        return "no certificate yet"
    try:
        ca = x509.load_pem_x509_certificate(bundle.ca_cert)
        cert = x509.load_pem_x509_certificate(bundle.cert)
        serialization.load_pem_private_key(bundle.key, password=None)
    except ValueError:
        return "certificate data unreadable"
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return "serving certificate not issued by the stored CA"
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "serving certificate has no DNS names"
    if set(sans.get_values_for_type(x509.DNSName)) != set(dns_names):
        return "service DNS names changed"
    if cert.not_valid_after_utc - now < _dt.timedelta(days=renew_before_days):
        return "serving certificate expires soon"
    return None


def renew(
    bundle: Bundle | None,
    dns_names: Sequence[str],
    now: _dt.datetime,
    validity_days: int,
    ca_margin_days: int,
) -> Bundle:
    """A new serving certificate, reusing the CA unless it is missing, unreadable or near expiry.

    Keeping the CA means the ``caBundle`` the API server trusts does not change on renewal.
    """
    ca_cert, ca_key = (bundle.ca_cert, bundle.ca_key) if bundle else (b"", b"")
    try:
        ca = x509.load_pem_x509_certificate(ca_cert)
        serialization.load_pem_private_key(ca_key, password=None)
        if ca.not_valid_after_utc - now < _dt.timedelta(days=ca_margin_days + validity_days):
            raise ValueError("CA expires soon")
    except ValueError:
        ca_cert, ca_key = generate_ca(now)
    cert, key = issue(ca_cert, ca_key, dns_names, now, validity_days)
    return Bundle(ca_cert, ca_key, cert, key)


def not_after(cert_pem: bytes) -> _dt.datetime:
    return x509.load_pem_x509_certificate(cert_pem).not_valid_after_utc


def write_files(bundle: Bundle, directory: Path) -> tuple[Path, Path]:
    """Writes tls.crt/tls.key atomically (0600) when they changed, so the reloader never reads half a file."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in (("tls.crt", bundle.cert), ("tls.key", bundle.key)):
        target = directory / name
        if target.exists() and target.read_bytes() == content:
            paths.append(target)
            continue  # unchanged: keep the mtime, so the server does not reload for nothing
        tmp = directory / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        os.replace(tmp, target)
        paths.append(target)
    return paths[0], paths[1]


class ReloadingContext:
    """A server SSLContext whose certificate follows the files on disk.

    ``maybe_reload`` is cheap (two ``stat`` calls) and is called from the event loop thread, so
    the context is never changed while a handshake on the same thread uses it. New connections
    get the new certificate; established ones keep theirs, which is what TLS allows.
    """

    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])
        self._stamp: tuple[float, int, float, int] | None = None
        self.loads = 0
        self.maybe_reload()
        if self._stamp is None:
            raise FileNotFoundError(f"TLS files {cert_file} and {key_file} are not readable")

    def _current_stamp(self) -> tuple[float, int, float, int] | None:
        try:
            c, k = self.cert_file.stat(), self.key_file.stat()
        except OSError:
            return None
        return (c.st_mtime, c.st_size, k.st_mtime, k.st_size)

    def maybe_reload(self) -> bool:
        """Loads the files if they changed since the last load; True when a new chain is in force."""
        stamp = self._current_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        try:
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError):
            # A half-rotated pair (new cert, old key): keep serving the old one and retry later.
            return False
        self._stamp = stamp
        self.loads += 1
        return True
