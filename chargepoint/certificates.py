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
import logging
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

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


class CertificateRejected(ValueError):
    """A certificate or chain that is not installed: unreadable, expired, not a CA, not ours, too long."""


# The X.509 work lives in chargepoint.x509_checks (``cryptography``), loaded on first use and re-exported here.
HASH_ALGORITHMS = frozenset({"SHA256", "SHA384", "SHA512"})  # the keys of x509_checks.HASHES
if TYPE_CHECKING:
    pass
_LAZY = frozenset(
    {
        "HASHES",
        "KeyRequest",
        "check_root",
        "check_signed_chain",
        "hash_data",
        "new_key_and_csr",
        "pem_hash_data",
        "pem_of",
    }
)


def __getattr__(name: str) -> Any:
    """The X.509 helpers, importing ``cryptography`` only when one is first asked for (PEP 562)."""
    if name in _LAZY:
        from chargepoint import x509_checks

        return getattr(x509_checks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
ROOTS = (
    CertificateUse.CENTRAL_SYSTEM_ROOT,
    CertificateUse.MANUFACTURER_ROOT,
    CertificateUse.V2G_ROOT,
    CertificateUse.MO_ROOT,
)


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
        from chargepoint import x509_checks  # cryptography, loaded on first use

        if use not in ROOTS:
            return InstallResult.REJECTED
        try:
            hashes_ = x509_checks.check_root(pem, self.clock.now())
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
        from chargepoint import x509_checks  # cryptography, loaded on first use

        wanted = wanted.normalized()
        if wanted.hash_algorithm not in HASH_ALGORITHMS:
            return DeleteResult.NOT_FOUND
        matches = [
            c
            for c in self.store.installed_certificates()
            if c.use in ROOTS
            and x509_checks.pem_hash_data(c.pem, wanted.hash_algorithm).normalized() == wanted
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
        from chargepoint import x509_checks  # cryptography, loaded on first use

        name = f"{self.cp_id}-{self.clock.now():%Y%m%dT%H%M%S%f}.key"
        organization = self.settings.text("cpo_name")
        loop = asyncio.get_running_loop()
        request = await loop.run_in_executor(
            None, x509_checks.new_key_and_csr, self.directory, name, self.cp_id, organization
        )
        self.store.put(PENDING_KEY, str(request.key_path))
        return request.csr_pem

    async def accept_chain(self, chain_pem: str) -> bool:
        """CertificateSigned: install the chain if it is valid for our pending key and id (used from the next
        connection); an invalid one is a security event (InvalidChargePointCertificate)."""
        from chargepoint import x509_checks  # cryptography, loaded on first use

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
                    x509_checks.check_signed_chain,
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
