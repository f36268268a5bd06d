"""X.509 work on the ``cryptography`` package, imported only when a certificate is first handled.

``chargepoint.certificates`` loads this module on first use, so an agent that never sees a certificate does not
pay for ``cryptography`` at start (about 10 MB of RSS per process).
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from chargepoint.certificates import MAX_CERTIFICATE_CHARS, MAX_CHAIN_CERTIFICATES, CertificateRejected
from chargepoint.core.storage import CertificateHashData

HASHES: dict[str, hashes.HashAlgorithm] = {
    "SHA256": hashes.SHA256(),
    "SHA384": hashes.SHA384(),
    "SHA512": hashes.SHA512(),
}


def _load(pem: str, most: int) -> list[x509.Certificate]:
    """The certificates of a PEM text (1 to ``most``); CertificateRejected for anything else."""
    if not isinstance(pem, str) or "-----BEGIN CERTIFICATE-----" not in pem:
        raise CertificateRejected("not a PEM certificate")
    if pem.count("-----BEGIN") > most:
        raise CertificateRejected(f"more than {most} certificates")
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode())
    except (ValueError, UnicodeError) as exc:
        raise CertificateRejected(f"unreadable certificate: {str(exc)[:100]}") from None
    if not 1 <= len(certificates) <= most:
        raise CertificateRejected(f"{len(certificates)} certificates where 1 to {most} are expected")
    return certificates


def _valid_at(certificate: x509.Certificate, now: datetime) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise CertificateRejected(
            f"not valid now (valid {certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d})"
        )


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def hash_data(
    certificate: x509.Certificate, issuer: x509.Certificate, algorithm: str = "SHA256"
) -> CertificateHashData:
    """A certificate's CertificateHashData (whitepaper CertificateHashDataType, computed as RFC 6960 CertID)."""
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, HASHES[algorithm]).build()
    return CertificateHashData(
        issuer_name_hash=request.issuer_name_hash.hex(),
        issuer_key_hash=request.issuer_key_hash.hex(),
        serial_number=format(request.serial_number, "x"),
        hash_algorithm=algorithm,
    )


def pem_hash_data(pem: str, algorithm: str = "SHA256") -> CertificateHashData:
    """The hash data of the first certificate of a stored PEM text (its issuer: the next one, or itself)."""
    certificates = x509.load_pem_x509_certificates(pem.encode())
    issuer = certificates[1] if len(certificates) > 1 else certificates[0]
    return hash_data(certificates[0], issuer, algorithm)


def check_root(pem: str, now: datetime) -> CertificateHashData:
    """Check a root certificate to install (one PEM certificate, a CA, valid now); its hash data."""
    if len(pem) > MAX_CERTIFICATE_CHARS:
        raise CertificateRejected(f"longer than {MAX_CERTIFICATE_CHARS} characters")
    (certificate,) = _load(pem, 1)
    _valid_at(certificate, now)
    if not _is_ca(certificate):
        raise CertificateRejected("not a CA certificate (basicConstraints cA is not set)")
    try:
        issuer = certificate if certificate.issuer == certificate.subject else None
        if issuer is not None:
            certificate.verify_directly_issued_by(issuer)  # a self-signed root must verify itself
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateRejected(f"self-signature does not verify: {type(exc).__name__}") from None
    return hash_data(certificate, certificate)


def pem_of(certificate: x509.Certificate) -> str:
    """One certificate as PEM text."""
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True, slots=True)
class KeyRequest:
    """A new private key (in its 0600 file) and the CSR for it."""

    key_path: Path
    csr_pem: str


def new_key_and_csr(directory: Path, name: str, cp_id: str, organization: str) -> KeyRequest:
    """Generate an EC P-256 key into ``directory/name`` (mode 0600, never readable by others) and a CSR with
    CN = the charge point id and O = ``organization`` (whitepaper A02; O only when the CpoName is set).
    Blocking (file I/O): run it in an executor."""
    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, cp_id)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization[:64]))
    csr = (
        x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes)).sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / name
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # 0600 from the first byte
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return KeyRequest(path, csr.public_bytes(serialization.Encoding.PEM).decode())


def _public_der(key: x509.Certificate | PrivateKeyTypes) -> bytes:
    public = key.public_key()
    if public is None or isinstance(public, bytes):  # unreachable for certificate and PEM private keys
        raise CertificateRejected("no public key")
    der: bytes = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def check_signed_chain(
    chain_pem: str, *, cp_id: str, key_path: Path, roots: list[str], now: datetime, max_chars: int
) -> CertificateHashData:
    """Check a CertificateSigned chain (leaf first) before installing it: at most ``max_chars`` characters, every
    certificate valid now, each issued by the next, the last issued by (or being) one of ``roots``, the leaf's key
    the one in ``key_path``, its CN the charge point id and no CA. Returns the leaf's hash data.
    Blocking (reads the key file): run it in an executor."""
    if len(chain_pem) > max_chars:
        raise CertificateRejected(f"chain longer than CertificateSignedMaxChainSize ({max_chars})")
    chain = _load(chain_pem, MAX_CHAIN_CERTIFICATES)
    leaf = chain[0]
    for certificate in chain:
        _valid_at(certificate, now)
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(names) != 1 or names[0].value != cp_id:
        raise CertificateRejected(f"the leaf's CN {[str(n.value)[:64] for n in names[:2]]} is not {cp_id!r}")
    if _is_ca(leaf):
        raise CertificateRejected("the leaf is a CA certificate")
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise CertificateRejected(f"no pending key to match: {type(exc).__name__}") from None
    if _public_der(leaf) != _public_der(key):
        raise CertificateRejected("the leaf's public key is not the key of our CSR")
    anchors = [c for pem in roots for c in x509.load_pem_x509_certificates(pem.encode())]
    try:
        for child, parent in itertools.pairwise(chain):
            if not _is_ca(parent):
                raise CertificateRejected("an issuer in the chain is not a CA")
            child.verify_directly_issued_by(parent)
        last = chain[-1]
        if not any(_issued_by(last, anchor) for anchor in anchors):
            raise CertificateRejected("the chain does not lead to an installed CentralSystemRootCertificate")
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        if isinstance(exc, CertificateRejected):
            raise
        raise CertificateRejected(f"a signature in the chain does not verify: {type(exc).__name__}") from None
    issuer = chain[1] if len(chain) > 1 else next(a for a in anchors if _issued_by(leaf, a))
    return hash_data(leaf, issuer)


def _issued_by(certificate: x509.Certificate, anchor: x509.Certificate) -> bool:
    """``certificate`` is ``anchor`` itself, or was signed by it."""
    if certificate == anchor:
        return True
    try:
        certificate.verify_directly_issued_by(anchor)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True
