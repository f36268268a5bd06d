"""Keys, CSRs and certificates the simulated charger needs in the security cases (with `cryptography`)."""

from __future__ import annotations

import base64
import ipaddress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

__all__ = [
    "certificate_hash_data",
    "check_signed_chain",
    "issue",
    "make_ca",
    "make_csr",
    "pem_of",
    "self_signed_pem",
    "sign_data",
    "write_server_pki",
]


def make_csr(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A new P-256 key and a PEM CSR for it with subject CN ``common_name`` (1.6 security whitepaper A02)."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def make_ca(common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A new P-256 key and a self-signed CA certificate for it (a root to install, or to sign with)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return key, _build(name, name, key.public_key(), key, ca=True)


def self_signed_pem(common_name: str) -> str:
    """A self-signed CA certificate (PEM), e.g. a root to install on the charger."""
    return pem_of(make_ca(common_name)[1])


def pem_of(cert: x509.Certificate) -> str:
    """A certificate as PEM text."""
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def issue(
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    *,
    csr_pem: str | None = None,
    common_name: str = "",
) -> tuple[ec.EllipticCurvePrivateKey | None, x509.Certificate]:
    """A leaf certificate signed by ``ca``: for the key and subject of ``csr_pem`` (CertificateSigned), or for a
    new key with CN ``common_name`` (a firmware signing certificate, whose key is returned)."""
    if csr_pem is not None:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise ValueError(f"unsupported CSR key type {type(public).__name__}")
        return None, _build(csr.subject, ca.subject, public, ca_key, ca=False)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return key, _build(name, ca.subject, key.public_key(), ca_key, ca=False)


def sign_data(key: ec.EllipticCurvePrivateKey, data: bytes) -> str:
    """The base64 ECDSA/SHA-256 signature of ``data`` (SignedUpdateFirmware.firmware.signature)."""
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def _build(
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    alt: x509.GeneralName | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if alt is not None:
        builder = builder.add_extension(x509.SubjectAlternativeName([alt]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def certificate_hash_data(pem: str) -> dict[str, Any]:
    """CertificateHashDataType of a self-signed certificate (a root), computed as an RFC 6960 CertID: SHA-256 of
    the issuer name (DER) and of the issuer's public key bits (without the algorithm), serial number in hex."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    cert_id = ocsp.OCSPRequestBuilder().add_certificate(cert, cert, hashes.SHA256()).build()
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": cert_id.issuer_name_hash.hex(),
        "issuerKeyHash": cert_id.issuer_key_hash.hex(),
        "serialNumber": format(cert_id.serial_number, "x"),
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


def write_server_pki(directory: str | Path, host: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for ``host`` (commonName and subjectAltName, an IP address or a
    DNS name, as TLS hostname checks need) written to ``directory``: (server.pem, server.key, ca.pem)."""
    ca_key, ca = make_ca("Conformance runner throwaway CA")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        alt = x509.DNSName(host)
    cert = _build(name, ca.subject, key.public_key(), ca_key, ca=False, alt=alt)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = out / "server.pem", out / "server.key", out / "ca.pem"
    paths[0].write_text(pem_of(cert))
    paths[1].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    paths[1].chmod(0o600)
    paths[2].write_text(pem_of(ca))
    return paths
