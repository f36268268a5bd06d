"""A test firmware-signing chain made with ``cryptography``: a manufacturer root CA and signing certificates."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

NOW = datetime.now(UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(
    subject: str,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    ca: bool | None,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=365),
) -> x509.Certificate:
    """A certificate for ``key`` signed by ``issuer_key`` (``ca`` None: no BasicConstraints at all)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def sign(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, data: bytes) -> str:
    """The whitepaper's firmware signature: RSA PKCS#1 v1.5 or ECDSA over SHA-256, base64."""
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(raw).decode()


@dataclass
class Chain:
    """A manufacturer root and signing certificates, good and bad."""

    root_key: rsa.RSAPrivateKey
    root: x509.Certificate
    signer_key: ec.EllipticCurvePrivateKey
    signer: x509.Certificate
    rsa_signer_key: rsa.RSAPrivateKey
    rsa_signer: x509.Certificate
    expired_signer: x509.Certificate
    untrusted_signer: x509.Certificate
    non_ca_root: x509.Certificate  # a "root" without CA rights
    signed_by_non_ca: x509.Certificate


def make_chain() -> Chain:
    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = certificate("Test Manufacturer Root", root_key, "Test Manufacturer Root", root_key, ca=True)
    signer_key = ec.generate_private_key(ec.SECP256R1())
    rsa_signer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    non_ca_key = ec.generate_private_key(ec.SECP256R1())
    non_ca_root = certificate("Not A CA", non_ca_key, "Not A CA", non_ca_key, ca=False)
    return Chain(
        root_key=root_key,
        root=root,
        signer_key=signer_key,
        signer=certificate("Firmware Signer", signer_key, "Test Manufacturer Root", root_key, ca=False),
        rsa_signer_key=rsa_signer_key,
        rsa_signer=certificate("RSA Signer", rsa_signer_key, "Test Manufacturer Root", root_key, ca=False),
        expired_signer=certificate(
            "Expired Signer",
            signer_key,
            "Test Manufacturer Root",
            root_key,
            ca=False,
            not_before=NOW - timedelta(days=30),
            not_after=NOW - timedelta(days=1),
        ),
        untrusted_signer=certificate("Rogue Signer", signer_key, "Rogue Root", other_key, ca=False),
        non_ca_root=non_ca_root,
        signed_by_non_ca=certificate("Signer under non-CA", signer_key, "Not A CA", non_ca_key, ca=False),
    )
