"""X.509 checks for the Security whitepaper (chargepoint/certificates.py) with a test PKI made by `cryptography`."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from chargepoint.certificates import (
    CertificateRejected,
    check_root,
    check_signed_chain,
    hash_data,
    new_key_and_csr,
    pem_hash_data,
)
from tests.pki import issue

NOW = datetime.now(UTC)


def test_a_root_is_accepted_with_its_hash_data_computed_as_ocsp_cert_id() -> None:
    root = issue("Test Root", NOW, ca=True)
    data = check_root(root.pem, NOW)
    # Computed independently: SHA-256 of the issuer's DER name and of its public key bits (RFC 6960 CertID).
    key_bits = root.key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert data.issuer_name_hash == hashlib.sha256(root.certificate.issuer.public_bytes()).hexdigest()
    assert data.issuer_key_hash == hashlib.sha256(key_bits).hexdigest()
    assert data.serial_number == format(root.certificate.serial_number, "x")
    assert data.hash_algorithm == "SHA256"
    assert (
        pem_hash_data(root.pem, "SHA384").issuer_name_hash
        == hashlib.sha384(root.certificate.issuer.public_bytes()).hexdigest()
    )


@pytest.mark.parametrize(
    "case",
    ["expired", "not-yet-valid", "not-a-ca", "garbage", "bad-base64", "two", "huge", "empty"],
)
def test_bad_roots_are_rejected(case: str) -> None:
    root = issue("Root", NOW, ca=True)
    pem = {
        "expired": lambda: issue("Old", NOW - timedelta(days=10), ca=True, days=1).pem,
        "not-yet-valid": lambda: issue("Soon", NOW, ca=True, not_before=NOW + timedelta(days=1)).pem,
        "not-a-ca": lambda: issue("Leaf", NOW).pem,
        "garbage": lambda: "not a certificate",
        "bad-base64": lambda: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "two": lambda: root.pem + issue("Other", NOW, ca=True).pem,
        "huge": lambda: root.pem + "\n" * 6000,
        "empty": lambda: "",
    }[case]()
    with pytest.raises(CertificateRejected):
        check_root(pem, NOW)


def test_the_key_file_is_0600_and_the_csr_names_the_charge_point(tmp_path: Path) -> None:
    request = new_key_and_csr(tmp_path / "certs", "CP-1.key", "CP-1", "Example CPO")
    assert stat.S_IMODE(os.stat(request.key_path).st_mode) == 0o600
    csr = x509.load_pem_x509_csr(request.csr_pem.encode())
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-1"
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example CPO"
    assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
    without = new_key_and_csr(tmp_path / "certs", "CP-2.key", "CP-1", "")
    assert not x509.load_pem_x509_csr(without.csr_pem.encode()).subject.get_attributes_for_oid(
        NameOID.ORGANIZATION_NAME
    )


class _Chain:
    """A CSMS CA, the charger's pending key (in a file) and a leaf for it."""

    def __init__(self, tmp_path: Path) -> None:
        self.ca = issue("CSMS CA", NOW, ca=True, days=30)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.key_path = tmp_path / "pending.key"
        self.key_path.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def leaf(self, cn: str = "CP-1", **kw: object) -> str:
        return issue(cn, NOW, issuer=self.ca, key=kw.pop("key", self.key), client=True, **kw).pem  # type: ignore[arg-type]

    def check(self, chain: str, max_chars: int = 10_000, roots: list[str] | None = None) -> object:
        return check_signed_chain(
            chain,
            cp_id="CP-1",
            key_path=self.key_path,
            roots=[self.ca.pem] if roots is None else roots,
            now=NOW,
            max_chars=max_chars,
        )


def test_a_signed_chain_for_our_key_and_id_is_accepted(tmp_path: Path) -> None:
    c = _Chain(tmp_path)
    leaf = c.leaf()
    data = c.check(leaf + c.ca.pem)
    assert data == hash_data(x509.load_pem_x509_certificate(leaf.encode()), c.ca.certificate)
    assert c.check(leaf) == data  # the leaf alone, issued by an installed root


@pytest.mark.parametrize(
    "case", ["other-cn", "other-key", "expired", "untrusted", "too-long", "garbage", "ca-leaf", "no-roots"]
)
def test_bad_signed_chains_are_rejected(tmp_path: Path, case: str) -> None:
    c = _Chain(tmp_path)
    other_ca = issue("Other CA", NOW, ca=True)
    with pytest.raises(CertificateRejected):
        if case == "other-cn":
            c.check(c.leaf("CP-2") + c.ca.pem)
        elif case == "other-key":
            c.check(c.leaf(key=ec.generate_private_key(ec.SECP256R1())) + c.ca.pem)
        elif case == "expired":
            c.check(c.leaf(days=-1, not_before=NOW - timedelta(days=3)) + c.ca.pem)
        elif case == "untrusted":
            c.check(c.leaf() + c.ca.pem, roots=[other_ca.pem])
        elif case == "too-long":
            c.check(c.leaf() + c.ca.pem, max_chars=500)
        elif case == "garbage":
            c.check("-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n")
        elif case == "ca-leaf":
            c.check(c.leaf(ca=True) + c.ca.pem)
        else:
            c.check(c.leaf() + c.ca.pem, roots=[])
