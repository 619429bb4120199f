"""The API's TLS material: a lab CA and a server certificate for 127.0.0.1 and localhost.

Generated once into $SCALESET_HOME/api (0700) with `cryptography`, ECDSA P-256 keys written
0600 from the start. Later calls reuse the files; the server certificate alone is issued again
when it is missing, unreadable, expires within 30 days or was not issued by the CA; everything
is made again when the CA is missing, unreadable or near its end. An flock on api/.lock makes
two processes that call `ensure_certs` at once agree on one set of files.
"""
from __future__ import annotations

import fcntl
import ipaddress
import os
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.core.errors import LabError, from_os_error
from controller.core.files import atomic_write
from controller.core.settings import LabPaths, private

CA_DAYS = 3650
SERVER_DAYS = 397
RENEW_BEFORE = timedelta(days=30)
SKEW = timedelta(minutes=5)  # not-before a little in the past: a clock a bit behind still accepts it
SERVER_IP = ipaddress.IPv4Address("127.0.0.1")
SERVER_DNS = "localhost"


@dataclass(frozen=True)
class Certs:
    """Where the lab CA's certificate and the server's certificate and key are."""

    ca: Path
    cert: Path
    key: Path

    @property
    def ca_key(self) -> Path:
        return self.ca.with_name("ca-key.pem")


def api_dir(paths: LabPaths) -> Path:
    """$SCALESET_HOME/api, created private (0700)."""
    folder = paths.home / "api"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    private(folder)
    return folder


def _certs(folder: Path) -> Certs:
    return Certs(ca=folder / "ca.pem", cert=folder / "server.pem", key=folder / "server-key.pem")


@contextmanager
def _locked(folder: Path, exclusive: bool) -> Iterator[None]:
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def _now() -> datetime:
    return datetime.now(UTC)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "scaleset-lab"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new self-signed CA (ten years) that may sign server certificates only."""
    key = _new_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    serial = x509.random_serial_number()
    name = _name(f"scaleset-lab CA {serial:x}"[:64])  # one name per lab: labs' CAs are told apart
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - SKEW).not_valid_after(now + timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_server(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, now: datetime,
                days: float = SERVER_DAYS) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate signed by `ca` for IP 127.0.0.1 and DNS localhost, serverAuth only,
    valid `days` (never past the CA's own end)."""
    key = _new_key()
    end = min(now + timedelta(days=days), ca.not_valid_after_utc)
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (x509.CertificateBuilder().subject_name(_name("scaleset-lab API")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - SKEW).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(SERVER_IP), x509.DNSName(SERVER_DNS)]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _read_pair(cert_path: Path, key_path: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    """The certificate and its key, or None when either is missing, unreadable or they do not match."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        return None
    return cert, key


def _usable_ca(pair, now: datetime) -> bool:
    if pair is None:
        return False
    cert = pair[0]
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return False
    return is_ca and cert.not_valid_after_utc - now > RENEW_BEFORE


def _usable_server(pair, ca: x509.Certificate, now: datetime) -> bool:
    if pair is None:
        return False
    cert = pair[0]
    try:
        cert.verify_directly_issued_by(ca)  # issuer name and signature both
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    wanted = (sans.get_values_for_type(x509.IPAddress) == [SERVER_IP]
              and sans.get_values_for_type(x509.DNSName) == [SERVER_DNS])
    return wanted and cert.not_valid_after_utc - now > RENEW_BEFORE and cert.not_valid_before_utc <= now


def _write_pair(cert_path: Path, key_path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    atomic_write(key_path, _key_pem(key), 0o600)  # the key first: a cert never names a key not yet written
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def ensure_certs(paths: LabPaths) -> Certs:
    """The lab's CA and server certificate, made or renewed as needed (see the module's docstring)."""
    try:
        folder = api_dir(paths)
        certs = _certs(folder)
        with _locked(folder, exclusive=True):
            now = _now()
            ca_pair = _read_pair(certs.ca, certs.ca_key)
            if not _usable_ca(ca_pair, now):
                ca_pair = make_ca(now)
                _write_pair(certs.ca, certs.ca_key, *ca_pair)
            if not _usable_server(_read_pair(certs.cert, certs.key), ca_pair[0], now):
                _write_pair(certs.cert, certs.key, *make_server(*ca_pair, now))
    except OSError as exc:
        raise from_os_error(exc) from None
    return certs


def _context(protocol: int, load: Callable[[ssl.SSLContext], None], path: Path, what: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        load(ctx)
    except ssl.SSLError as exc:
        raise LabError(str(path), f"{what} does not load ({exc.reason}); run `scaleset api env` to renew it",
                       "InternalError") from None
    except OSError as exc:
        raise from_os_error(exc) from None
    return ctx


def server_context(certs: Certs) -> ssl.SSLContext:
    """TLS server context (TLS 1.2 at least) with the lab's server certificate and key."""
    def load(ctx: ssl.SSLContext) -> None:
        with _locked(certs.cert.parent, exclusive=False):  # not mid-renewal: cert and key belong together
            ctx.load_cert_chain(certs.cert, certs.key)
    return _context(ssl.PROTOCOL_TLS_SERVER, load, certs.cert, "the server certificate or its key")


def client_context(certs: Certs) -> ssl.SSLContext:
    """TLS client context that trusts the lab CA and nothing else, host names checked."""
    return _context(ssl.PROTOCOL_TLS_CLIENT, lambda ctx: ctx.load_verify_locations(cafile=str(certs.ca)),
                    certs.ca, "the lab CA")
