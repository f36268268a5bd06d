"""Signed firmware checks (OCPP 1.6 Security whitepaper ed. 2 §4.4) on ``cryptography``: the signing certificate
against the ManufacturerRootCertificates, and the RSA or ECDSA SHA-256 signature over the file's digest.

A module of its own so that ``cryptography`` is imported when a signed update arrives, not at every agent start.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed


def untrusted_because(pem: str, root_bundles: list[str], now: datetime) -> str | None:
    """Why a firmware signing certificate is not trusted at ``now`` (None: it is): it must be valid then and
    issued directly by a CA certificate, valid then, among the PEM bundles of ManufacturerRootCertificates."""
    try:
        cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    except (ValueError, UnicodeError) as exc:
        return f"unreadable signing certificate: {exc}"[:200]
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        return "signing certificate is not valid now (expired or not yet valid)"
    roots: list[x509.Certificate] = []
    for bundle in root_bundles:
        with contextlib.suppress(ValueError, UnicodeError):
            roots.extend(x509.load_pem_x509_certificates(bundle.encode("ascii")))
    if not roots:
        return "no ManufacturerRootCertificate installed"
    for root in roots:
        if root.subject != cert.issuer:
            continue
        try:
            cert.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature):
            continue
        if not _is_ca(root):
            return "issuer is not a CA certificate"
        if not root.not_valid_before_utc <= now <= root.not_valid_after_utc:
            return "the manufacturer root certificate is not valid now"
        return None
    return "signing certificate was not issued by an installed ManufacturerRootCertificate"


def signature_verifies(digest: bytes, certificate_pem: str, signature_b64: str) -> bool:
    """True if ``signature_b64`` is the certificate key's RSA (PKCS#1 v1.5) or ECDSA signature over the SHA-256
    ``digest``."""
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
        signature = base64.b64decode(signature_b64, validate=True)
        key = cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
        else:
            return False
    except (InvalidSignature, ValueError, UnicodeError, binascii.Error):
        return False
    return True


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False
