"""X.509 work for the OCPP 1.6 Security whitepaper (ed. 2), on the ``cryptography`` package (outside the core).

Root certificates a central system installs are checked here (one PEM certificate, a CA, valid now); their
CertificateHashData is computed the way OCSP's CertID is (RFC 6960: hashes of the issuer's DER name and of its
public key bits, the serial in hex), which is what the whitepaper's CertificateHashDataType reuses, through
``cryptography``'s OCSP request builder. The charge point's own key and CSR are made here, and the chain that the
central system sends back (CertificateSigned) is verified before it is installed.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from chargepoint.core.security import SecurityEvents, SecurityEventType, may_store_certificate
from chargepoint.core.settings import Settings
from chargepoint.core.storage import (
    CertificateHashData,
    CertificateStorage,
    CertificateUse,
    Durability,
    InstalledCertificate,
    KeyValueStorage,
)
from chargepoint.errors import StorageError
from chargepoint.ports import Clock

log = logging.getLogger(__name__)

MAX_CERTIFICATE_CHARS = 5500  # InstallCertificate.req certificate: string[0..5500]
MAX_CHAIN_CERTIFICATES = 5  # a leaf, at most three intermediates and a root; deeper chains are refused
HASHES: dict[str, hashes.HashAlgorithm] = {
    "SHA256": hashes.SHA256(),
    "SHA384": hashes.SHA384(),
    "SHA512": hashes.SHA512(),
}


class CertificateRejected(ValueError):
    """A certificate or chain that is not installed: unreadable, expired, not a CA, not ours, too long."""


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


class InstallResult(Enum):
    """The answer to installing a root certificate (whitepaper InstallCertificateStatusEnumType)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"  # not a valid CA certificate now, or the store is full
    FAILED = "failed"  # valid, but it could not be stored


class DeleteResult(Enum):
    """The answer to deleting a certificate (whitepaper DeleteCertificateStatusEnumType)."""

    ACCEPTED = "accepted"
    FAILED = "failed"  # it is the last CentralSystemRootCertificate in use, or the store failed
    NOT_FOUND = "not_found"


class CertificateStore(CertificateStorage, KeyValueStorage, Durability, Protocol):
    """What the certificate manager persists."""


PENDING_KEY = "client_key_pending"  # kv: the key file of the last CSR, until its certificate is installed
ROOTS = (CertificateUse.CENTRAL_SYSTEM_ROOT, CertificateUse.MANUFACTURER_ROOT)


class CertificateManager:
    """Installed root certificates and the charge point's own key and certificate chain, for every OCPP version.

    Blocking work (key generation, key files, reading the key back) runs in the default executor."""

    __slots__ = ("clock", "configured_roots", "cp_id", "directory", "events", "settings", "store")

    def __init__(
        self,
        store: CertificateStore,
        settings: Settings,
        clock: Clock,
        cp_id: str,
        directory: Path,
        events: SecurityEvents,
        *,
        configured_roots: str | None = None,
    ) -> None:
        """Persist in ``store``, keep key files in ``directory``; ``configured_roots`` is the config's CA file."""
        self.store = store
        self.settings = settings
        self.clock = clock
        self.cp_id = cp_id
        self.directory = directory
        self.events = events
        self.configured_roots = configured_roots

    # root certificates
    async def install(self, use: CertificateUse, pem: str) -> InstallResult:
        """InstallCertificate: a valid CA certificate of ``use``, within CertificateStoreMaxLength."""
        if use not in ROOTS:
            return InstallResult.REJECTED
        try:
            hashes_ = check_root(pem, self.clock.now())
        except CertificateRejected as exc:
            log.warning("InstallCertificate %s rejected: %s", use.value, exc)
            return InstallResult.REJECTED
        installed = [c for c in self.store.installed_certificates() if c.use in ROOTS]
        already = any(c.use is use and c.hash_data == hashes_.normalized() for c in installed)
        limit = self.settings.get_int("certificate_store_max_length")
        if not already and not may_store_certificate(len(installed), limit):
            log.warning("InstallCertificate rejected: %s certificates installed already (the most)", limit)
            return InstallResult.REJECTED
        mark = self.store.mark()
        self.store.install_certificate(InstalledCertificate(use, pem, hashes_, self.clock.now()))
        try:
            await self.store.flush(since=mark)
        except StorageError:
            return InstallResult.FAILED
        log.info("installed a %s (serial %s)", use.value, hashes_.serial_number)
        return InstallResult.ACCEPTED

    def installed(self, use: CertificateUse) -> list[CertificateHashData]:
        """GetInstalledCertificateIds: the hash data of the certificates of ``use``."""
        return [c.hash_data for c in self.store.installed_certificates(use)]

    async def delete(self, wanted: CertificateHashData, *, in_use_profile: int) -> DeleteResult:
        """DeleteCertificate of a root certificate (its hash data in any of the whitepaper's algorithms); the last
        CentralSystemRootCertificate is kept while a TLS profile (2, 3) relies on it without a configured CA."""
        wanted = wanted.normalized()
        if wanted.hash_algorithm not in HASHES:
            return DeleteResult.NOT_FOUND
        matches = [
            c
            for c in self.store.installed_certificates()
            if c.use in ROOTS and pem_hash_data(c.pem, wanted.hash_algorithm).normalized() == wanted
        ]
        if not matches:
            return DeleteResult.NOT_FOUND
        csms_roots = self.store.installed_certificates(CertificateUse.CENTRAL_SYSTEM_ROOT)
        removing = [c for c in matches if c.use is CertificateUse.CENTRAL_SYSTEM_ROOT]
        if (
            removing
            and len(removing) == len(csms_roots)
            and in_use_profile >= 2
            and self.configured_roots is None
        ):
            log.warning("DeleteCertificate refused: it is the last CentralSystemRootCertificate in use")
            return DeleteResult.FAILED
        mark = self.store.mark()
        for certificate in matches:
            self.store.delete_certificate(certificate.hash_data)
        try:
            await self.store.flush(since=mark)
        except StorageError:
            return DeleteResult.FAILED
        return DeleteResult.ACCEPTED

    def csms_roots_pem(self) -> str:
        """The installed CentralSystemRootCertificates, concatenated ('' if none)."""
        return "".join(c.pem for c in self.store.installed_certificates(CertificateUse.CENTRAL_SYSTEM_ROOT))

    def has_csms_root(self) -> bool:
        """A CentralSystemRootCertificate is installed or configured."""
        return self.configured_roots is not None or bool(self.csms_roots_pem())

    # the charge point's own certificate
    def client_files(self) -> tuple[str, str] | None:
        """The installed ChargePointCertificate chain and key files, if any (for a profile 3 connection)."""
        own = self.store.installed_certificates(CertificateUse.CHARGE_POINT)
        if not own or own[0].key_ref is None:
            return None
        key = Path(own[0].key_ref)
        return str(key.with_suffix(".crt")), str(key)

    async def new_csr(self) -> str:
        """A new key (file mode 0600) and its CSR for SignCertificate; the key waits for its certificate."""
        name = f"{self.cp_id}-{self.clock.now():%Y%m%dT%H%M%S%f}.key"
        organization = self.settings.text("cpo_name")
        loop = asyncio.get_running_loop()
        request = await loop.run_in_executor(
            None, new_key_and_csr, self.directory, name, self.cp_id, organization
        )
        self.store.put(PENDING_KEY, str(request.key_path))
        return request.csr_pem

    async def accept_chain(self, chain_pem: str) -> bool:
        """CertificateSigned: install the chain if it is valid for our pending key and id (used from the next
        connection); an invalid one is a security event (InvalidChargePointCertificate)."""
        pending = self.store.get(PENDING_KEY)
        roots = [self.csms_roots_pem()] if self.csms_roots_pem() else []
        loop = asyncio.get_running_loop()
        try:
            if not pending:
                raise CertificateRejected("no certificate was requested (no pending key)")
            if self.configured_roots is not None:
                roots.append(await loop.run_in_executor(None, Path(self.configured_roots).read_text))
            hashes_ = await loop.run_in_executor(
                None,
                functools.partial(
                    check_signed_chain,
                    chain_pem,
                    cp_id=self.cp_id,
                    key_path=Path(pending),
                    roots=roots,
                    now=self.clock.now(),
                    max_chars=self.settings.get_int("certificate_signed_max_chain_size"),
                ),
            )
            await loop.run_in_executor(None, Path(pending).with_suffix(".crt").write_text, chain_pem)
        except (CertificateRejected, OSError) as exc:
            log.warning("CertificateSigned rejected: %s", exc)
            self.events.record(SecurityEventType.INVALID_CHARGE_POINT_CERTIFICATE, str(exc))
            return False
        mark = self.store.mark()
        self.store.install_certificate(
            InstalledCertificate(CertificateUse.CHARGE_POINT, chain_pem, hashes_, self.clock.now(), pending)
        )
        self.store.put(PENDING_KEY, "")
        try:
            await self.store.flush(since=mark)
        except StorageError:
            return False
        log.info(
            "installed a new ChargePointCertificate (serial %s); used from the next connection",
            hashes_.serial_number,
        )
        return True
