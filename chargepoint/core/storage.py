"""The storage port: what the core needs persisted, as small Protocols by aggregate.

``chargepoint.store.Store`` (SQLite) implements all of them. Writes are queued and return at once (a
``concurrent.futures.Future``); ``mark()`` + ``await flush(since=...)`` wait for durability without blocking the
event loop, so the loop never waits on fsync. Reads see every write queued before them.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from chargepoint.core.events import (
    FileEvent,
    StationEvent,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
)
from chargepoint.core.model import IdTagInfo, Sample
from chargepoint.core.reservations import Reservation
from chargepoint.core.smart_charging import ChargingProfile


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    """A transaction as persisted: enough to resume or end it after a power loss."""

    local_id: int
    transaction_id: str
    connector_id: int
    id_tag: str
    started_at: datetime
    meter_start_wh: int
    active: bool
    last_meter_wh: int
    last_meter_at: datetime
    stop_data: tuple[Sample, ...]  # samples kept for the end event's transaction data, oldest first
    parent_id_tag: str | None = None
    authorized: bool = True


class Durability(Protocol):
    """Ordering and durability of queued writes."""

    @property
    def low_space(self) -> bool:
        """The disk is full: only writes that record running transactions are taken."""
        ...

    def mark(self) -> int:
        """A position in the queued writes, for ``flush(since=...)``."""
        ...

    async def flush(self, since: int | None = None) -> None:
        """Wait until every queued write is committed; StorageError if one queued at or after ``since`` failed."""
        ...


class KeyValueStorage(Protocol):
    """Small persisted values (availability, counters)."""

    def get(self, key: str, default: str | None = None) -> str | None:
        """A small persisted value."""
        ...

    def put(self, key: str, value: str) -> Future[Any]:
        """Persist a small value (queued)."""
        ...


class TransactionStorage(Durability, Protocol):
    """Transactions and the outbox of events the central system must hear about, in order.

    Each transaction's events get their sequence numbers (``OutboxMessage.seq_no``) from the outbox as they are
    acknowledged, so no gap can come from a write that failed, a dead letter or an overflow."""

    def begin_transaction(self, started: TransactionStarted, parent_id_tag: str | None = None) -> int:
        """Record a transaction and queue its start event atomically (queued); the local id at once."""
        ...

    def update_authorization(
        self, local_id: int, authorized: bool, parent_id_tag: str | None, *, id_tag: str | None = None
    ) -> Future[Any]:
        """Remember what the CSMS said about a transaction's idTag (queued)."""
        ...

    def record_meter(
        self,
        local_id: int,
        energy_wh: int,
        at: datetime,
        *,
        message: TransactionUpdated | None = None,
        stop_data: Sample | None = None,
    ) -> Future[Any]:
        """Persist a transaction's last register, with an optional queued sample and stop-data entry (queued)."""
        ...

    def end_transaction(self, local_id: int, ended: TransactionEnded) -> Future[bool]:
        """Mark a transaction ended and queue its end event atomically; False if it had already ended."""
        ...

    def queue(self, event: StationEvent) -> Future[Any]:
        """Queue an event that belongs to no transaction."""
        ...

    def active_transactions(self) -> list[StoredTransaction]:
        """Transactions that have not ended."""
        ...

    def transaction(self, local_id: int) -> StoredTransaction | None:
        """One transaction by local id."""
        ...


class AuthStorage(Protocol):
    """The authorization cache and the local authorization list."""

    def cache_get(self, id_tag: str) -> IdTagInfo | None:
        """An authorization-cache entry."""
        ...

    def cache_put(self, id_tag: str, info: IdTagInfo) -> Future[Any]:
        """Add or update a cache entry (queued)."""
        ...

    def cache_clear(self) -> Future[Any]:
        """Empty the authorization cache (queued)."""
        ...

    def local_get(self, id_tag: str) -> IdTagInfo | None:
        """A local-list entry."""
        ...

    def local_list_version(self) -> int:
        """The version of the local list (0: none)."""
        ...

    def local_list_size(self) -> int:
        """Entries in the local list."""
        ...

    def local_list_bytes(self) -> int:
        """The bytes the local list's entries take (OCPP 2.0.1 LocalAuthListCtrlr.Storage)."""
        ...

    def local_list_update(
        self, version: int, full: bool, entries: dict[str, IdTagInfo | None], max_size: int | None = None
    ) -> bool:
        """Apply a full or differential update atomically (queued); False, changing nothing, if too long."""
        ...


class ProfileStorage(Protocol):
    """Installed charging profiles."""

    def charging_profiles(self) -> list[ChargingProfile]:
        """Every installed charging profile."""
        ...

    def install_charging_profile(self, profile: ChargingProfile, replaces: list[int]) -> Future[Any]:
        """Add a profile and remove the ones it replaces, atomically (queued)."""
        ...

    def delete_charging_profiles(self, ids: list[int]) -> Future[Any]:
        """Remove profiles by id (queued)."""
        ...


class CertificateUse(StrEnum):
    """What an installed certificate is for (OCPP 1.6 Security whitepaper, CertificateUseEnumType + own chain)."""

    CENTRAL_SYSTEM_ROOT = (
        "CentralSystemRootCertificate"  # verifies the central system's TLS server certificate
    )
    MANUFACTURER_ROOT = "ManufacturerRootCertificate"  # verifies signed firmware (SignedUpdateFirmware)
    # OCPP 2.0.1 M05: roots of ISO 15118 (V2G) and of mobility operators' contract certificates, kept for the CSMS
    # (this station does no ISO 15118 itself).
    V2G_ROOT = "V2GRootCertificate"
    MO_ROOT = "MORootCertificate"
    CHARGE_POINT = "ChargePointCertificate"  # the charge point's own chain, leaf first (security profile 3)


@dataclass(frozen=True, slots=True)
class CertificateHashData:
    """A certificate's identity as OCPP names it (whitepaper CertificateHashDataType): hex hashes and serial."""

    issuer_name_hash: str  # hash of the issuer's DER-encoded distinguished name, lowercase hex
    issuer_key_hash: str  # hash of the issuer's public key (the subjectPublicKey bits), lowercase hex
    serial_number: str  # the serial number, lowercase hex without leading zeros
    hash_algorithm: str = "SHA256"  # SHA256 | SHA384 | SHA512

    def normalized(self) -> CertificateHashData:
        """The same identity in one spelling: lowercase hex, serial without leading zeros (peers differ)."""
        return CertificateHashData(
            issuer_name_hash=self.issuer_name_hash.lower(),
            issuer_key_hash=self.issuer_key_hash.lower(),
            serial_number=self.serial_number.lower().lstrip("0") or "0",
            hash_algorithm=self.hash_algorithm.upper(),
        )


@dataclass(frozen=True, slots=True)
class InstalledCertificate:
    """A certificate as persisted: PEM text, its hash data, and for the own chain where its private key lives."""

    use: CertificateUse
    pem: str  # one certificate; for CHARGE_POINT the whole chain, leaf first
    hash_data: CertificateHashData  # of the (leaf) certificate
    installed_at: datetime
    key_ref: str | None = None  # CHARGE_POINT only: a reference (file path) to the private key, never the key


class CertificateStorage(Protocol):
    """Installed certificates: central-system and manufacturer roots, and the charge point's own chain."""

    def installed_certificates(self, use: CertificateUse | None = None) -> list[InstalledCertificate]:
        """Installed certificates of one use (every use if None), oldest first."""
        ...

    def install_certificate(self, certificate: InstalledCertificate) -> Future[Any]:
        """Add a certificate (the same use and hash data replaces it; a CHARGE_POINT chain replaces the previous
        chain) (queued)."""
        ...

    def delete_certificate(self, hash_data: CertificateHashData) -> Future[bool]:
        """Remove the certificates with this hash data, of any use (queued); the future says False if none."""
        ...


class ReservationStorage(Protocol):
    """Reservations in force (OCPP 1.6 §3.11); one a transaction uses is removed in that transaction's start
    commit (``TransactionStarted.reservation_id``), so a crash can neither keep nor lose it half-way."""

    def reservations(self) -> list[Reservation]:
        """Every stored reservation (expired ones too: the book ends those at start-up)."""
        ...

    def put_reservation(self, reservation: Reservation) -> Future[Any]:
        """Add a reservation or replace the one with its id (queued)."""
        ...

    def delete_reservations(self, ids: list[int]) -> Future[Any]:
        """Remove reservations by id (queued)."""
        ...


class FileJobStorage(Durability, Protocol):
    """The file jobs in progress (one firmware update, one upload), so that a restart resumes or reports them."""

    def file_job(self, kind: str) -> dict[str, Any] | None:
        """The persisted job of ``kind`` ("firmware", "upload"), None if there is none."""
        ...

    def put_file_job(
        self, kind: str, job: dict[str, Any] | None, event: FileEvent | None = None
    ) -> Future[Any]:
        """Replace (None: remove) the job of ``kind`` and queue its status event, atomically (queued)."""
        ...


class Storage(
    KeyValueStorage,
    TransactionStorage,
    AuthStorage,
    ProfileStorage,
    ReservationStorage,
    FileJobStorage,
    CertificateStorage,
    Protocol,
):
    """Everything the core persists: what a Station is given."""
