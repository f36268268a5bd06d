"""Keys, CSRs and certificates the simulated charger needs in the security cases (with `cryptography`)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["certificate_hash_data", "check_signed_chain", "make_csr", "self_signed_pem"]


def make_csr(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A new P-256 key and a PEM CSR for it with subject CN ``common_name`` (1.6 security whitepaper A02)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def self_signed_pem(common_name: str) -> str:
    """A self-signed CA certificate (PEM), e.g. a root to install on the charger."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def certificate_hash_data(pem: str) -> dict[str, Any]:
    """CertificateHashDataType of a certificate (SHA256 of the issuer name and key, serial in hex)."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    issuer_key = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": hashlib.sha256(cert.issuer.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.sha256(issuer_key).hexdigest(),
        "serialNumber": format(cert.serial_number, "x"),
    }


def check_signed_chain(chain_pem: str, key: ec.EllipticCurvePrivateKey, common_name: str) -> str:
    """Why a CertificateSigned chain is unusable for ``key`` and ``common_name`` ('' when it is fine).

    1.6 security whitepaper A02 / OCPP 2.0.1 A02: valid PEM, the leaf certifies the key of the CSR, the subject is
    the CSR's, and the leaf is signed by the next certificate of the chain (when there is one).
    """
    try:
        certs = x509.load_pem_x509_certificates(chain_pem.encode())
    except ValueError as exc:
        return f"the certificateChain is not valid PEM: {exc}"
    leaf = certs[0]
    ours = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    theirs = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if ours != theirs:
        return "the signed certificate is not for the key of the CSR"
    names = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [common_name]:
        return f"the signed certificate's commonName is {names}, the CSR asked for {common_name!r}"
    if len(certs) > 1:
        try:
            leaf.verify_directly_issued_by(certs[1])
        except (ValueError, TypeError, InvalidSignature) as exc:
            return f"the leaf is not signed by the next certificate of the chain: {exc!r}"
    return ""
