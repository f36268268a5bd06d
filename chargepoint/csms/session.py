"""The contract between the link and a version adapter: what a session offers the link, and what the link hands
each new session explicitly (the station's commands, the storage it reads, the settings, the link's own state).

A version adapter is registered in ``link.ADAPTERS`` under its subprotocol as a ``SessionFactory``: called with a
``SessionDeps`` and the connection, it returns a ``Session``. It reaches nothing else through the link.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chargepoint.certificates import CertificateManager
from chargepoint.config import CsmsConfig, StationIdentity
from chargepoint.core.blocks.diagnostics import Diagnostics
from chargepoint.core.blocks.firmware import Firmware
from chargepoint.core.connector import Connector
from chargepoint.core.events import StatusChanged
from chargepoint.core.evse import Evse
from chargepoint.core.model import (
    AvailabilityResult,
    BootReason,
    IdTagInfo,
    LocalListResult,
    ResetKind,
    ResetResult,
    Sample,
    UnlockResult,
)
from chargepoint.core.network_profiles import NetworkProfiles
from chargepoint.core.reservations import CancelResult, Reservation, ReserveResult
from chargepoint.core.scheduler import Scheduler
from chargepoint.core.security import SecurityEvents, SecurityProfiles
from chargepoint.core.settings import Settings
from chargepoint.core.smart_charging import (
    ChargingProfile,
    ClearResult,
    CompositeSchedule,
    ProfilePurpose,
    ProfileResult,
    RateUnit,
)
from chargepoint.core.storage import Durability, StoredTransaction
from chargepoint.ports import IdGenerator


class Session(Protocol):
    """What a version adapter offers the link."""

    accepted: asyncio.Event
    ever_accepted: bool
    boot_status: str | None  # the last BootNotification answer on this connection (None: not answered yet)

    async def run(self) -> None:
        """Boot and serve until the connection closes."""
        ...

    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Online Authorize."""
        ...

    def status_changed(self, cid: int) -> None:
        """Report a connector status change."""
        ...


class StationCommands(Protocol):
    """The station as an adapter sees it: its connectors and status, and the commands the CSMS may give
    (``core.station.Station`` implements it)."""

    @property
    def connectors(self) -> Mapping[int, Connector]:
        """The connectors by station-wide id."""
        ...

    @property
    def evses(self) -> Mapping[int, Evse]:
        """The EVSEs by id, each with its connectors by EVSE-local id."""
        ...

    def status(self, cid: int) -> StatusChanged:
        """A connector's status as of now (0: the station)."""
        ...

    @property
    def firmware(self) -> Firmware | None:
        """The firmware block: UpdateFirmware, SignedUpdateFirmware (None: the agent has no FilePort)."""
        ...

    @property
    def diagnostics(self) -> Diagnostics | None:
        """The diagnostics block: GetDiagnostics, GetLog (None: the agent has no FilePort)."""
        ...

    def remote_start(
        self,
        id_tag: str,
        connector_id: int | None,
        *,
        authorize_first: bool,
        tx_profile: ChargingProfile | None = None,
        token_type: str | None = None,
        remote_start_id: int | None = None,
    ) -> bool:
        """Check a remote start and carry it out in the background; the answer."""
        ...

    async def remote_stop(self, transaction_id: str) -> bool:
        """Stop the running transaction with the station's id ``transaction_id``."""
        ...

    async def unlock(self, cid: int) -> UnlockResult:
        """Unlock a connector's cable."""
        ...

    def change_availability(self, cid: int, operative: bool) -> AvailabilityResult:
        """Make a connector (0: the station) (in)operative."""
        ...

    def request_reset(self, kind: ResetKind) -> None:
        """Ask the agent to restart."""
        ...

    @property
    def boot_reason(self) -> BootReason:
        """Why this start happened."""
        ...

    @property
    def reset_requested(self) -> asyncio.Future[ResetKind] | None:
        """Done once the station restarts (a Reset or a firmware reboot was accepted)."""
        ...

    def reset_answer(self, kind: ResetKind, cid: int | None) -> ResetResult:
        """What a reset of the station (``cid`` None) or of one connector would do now."""
        ...

    def reset(self, kind: ResetKind, cid: int | None) -> ResetResult:
        """Reset the station or one connector, now or once idle."""
        ...

    def clear_cache(self) -> bool:
        """Empty the authorization cache."""
        ...

    def local_list_version(self) -> int:
        """The local list's version, -1 when the feature is off."""
        ...

    def update_local_list(
        self, version: int, full: bool, entries: dict[str, IdTagInfo | None]
    ) -> LocalListResult:
        """Apply a local-list update."""
        ...

    def sample_now(self, cid: int) -> tuple[Sample | None, int | None]:
        """A triggered sample and its transaction's local id."""
        ...

    async def trigger_update(self, cid: int) -> bool:
        """Queue a triggered Updated event of the transaction on ``cid``; False when none runs there."""
        ...

    def set_charging_profile(self, cid: int, profile: ChargingProfile) -> ProfileResult:
        """Install a charging profile."""
        ...

    @property
    def profiles(self) -> list[ChargingProfile]:
        """The installed charging profiles."""
        ...

    async def reserve_now(self, reservation: Reservation) -> ReserveResult:
        """Take or replace a reservation (OCPP 1.6 §5.13)."""
        ...

    async def cancel_reservation(self, reservation_id: int) -> CancelResult:
        """End a reservation in force (OCPP 1.6 §5.2)."""
        ...

    def clear_charging_profiles(
        self,
        profile_id: int | None = None,
        cid: int | None = None,
        purpose: ProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> ClearResult:
        """Remove the selected charging profiles."""
        ...

    def composite_schedule(
        self, cid: int, duration_s: int, unit: RateUnit | None
    ) -> CompositeSchedule | None:
        """The limits of a connector from now."""
        ...


class SessionStorage(Durability, Protocol):
    """What an adapter reads from the store: the mapping of the station's transactions to the CSMS's ids, and the
    local list's size."""

    def csms_transaction_id(self, local_id: int) -> int | None:
        """The CSMS's id of a transaction (from its start's answer); None if it has none."""
        ...

    def transaction_by_csms_id(self, csms_id: int) -> StoredTransaction | None:
        """The transaction the CSMS knows by ``csms_id``."""
        ...

    def transaction_by_id(self, transaction_id: str) -> StoredTransaction | None:
        """The transaction the station named ``transaction_id``."""
        ...

    def queued_transaction_messages(self, transaction_id: str | None = None) -> int:
        """How many messages of the transaction ``transaction_id`` (None: of any transaction) wait in the outbox."""
        ...

    def local_list_size(self) -> int:
        """Entries in the local list (OCPP 2.0.1 LocalAuthListCtrlr.Entries)."""
        ...

    def local_list_bytes(self) -> int:
        """The bytes the local list's entries take (OCPP 2.0.1 LocalAuthListCtrlr.Storage)."""
        ...


class OutboxRunner(Protocol):
    """The outbox sender, as a session starts it."""

    async def run(self, session: Any) -> None:
        """Deliver through ``session`` until it ends."""
        ...


class CallObserver(Protocol):
    """Told of every CALL this charge point sent: its action, seconds to the answer, and the CallError code or
    ``Timeout``/``ConnectionClosed`` (None for a CALLRESULT). For metrics only; it must not raise or block."""

    def __call__(self, action: str, latency_s: float, error: str | None) -> None: ...


class LinkState(Protocol):
    """The link's own state a session uses (identity, timing, registration); not a way to the station or store."""

    boot_accepted: bool  # BootNotification accepted since this agent (re)started

    @property
    def identity(self) -> StationIdentity:
        """The charge point's identity."""
        ...

    @property
    def csms_config(self) -> CsmsConfig:
        """How to reach the CSMS (response timeout, boot retry)."""
        ...

    def message_timeout_s(self) -> float:
        """How long to wait for an answer: the network profile's messageTimeout (OCPP 2.0.1 B09), else the
        configured response timeout."""
        ...

    @property
    def ids(self) -> IdGenerator:
        """Makes message ids."""
        ...

    @property
    def call_observer(self) -> CallObserver | None:
        """Told of every CALL sent, for metrics."""
        ...

    @property
    def outbox(self) -> OutboxRunner:
        """The outbox sender a booted session runs."""
        ...

    @property
    def scheduler(self) -> Scheduler:
        """The process's scheduler of periodic duties (the heartbeat)."""
        ...

    def touch(self) -> None:
        """Any traffic counts as activity for the heartbeat."""
        ...

    def idle_s(self) -> float:
        """Seconds since the last frame either way."""
        ...

    def boot_retry_jitter_s(self) -> float:
        """A random extra wait before a BootNotification retry, so that a crowd told the same interval spreads."""
        ...

    def set_time(self, when: datetime) -> None:
        """Adopt the CSMS's time if the clock allows it."""
        ...


class SecurityControls(Protocol):
    """The link's security state a session uses (Security whitepaper): installed certificates, the profile
    migration, security events, the Basic-auth password, and a reconnect to apply a changed security key."""

    changed_security: bool  # a security key changed: reconnect once its answer is out

    @property
    def certificates(self) -> CertificateManager:
        """Installed roots and the charge point's own key and chain."""
        ...

    @property
    def profiles(self) -> SecurityProfiles:
        """The security profile in use and a move to a higher one."""
        ...

    @property
    def security_events(self) -> SecurityEvents:
        """Queues SecurityEventNotifications."""
        ...

    @property
    def network(self) -> NetworkProfiles:
        """The network connection profiles (OCPP 2.0.1 B09/B10) and the slot in use."""
        ...

    def connecting_profile(self) -> int:
        """The security profile of the connection in use (and of the next one)."""
        ...

    def password(self) -> str | None:
        """The Basic-auth password in use."""
        ...

    def has_client_certificate(self) -> bool:
        """A client certificate for profile 3 is there."""
        ...

    async def reconnect(self) -> None:
        """Close the connection; the next one uses the current profile and password."""
        ...


@dataclass(frozen=True, slots=True)
class SessionDeps:
    """Everything a version adapter is given, explicitly: the constructor contract of ``ADAPTERS``."""

    link: LinkState
    station: StationCommands
    store: SessionStorage
    settings: Settings
    security: SecurityControls


class SessionFactory(Protocol):
    """A version adapter's constructor."""

    def __call__(self, deps: SessionDeps, connection: Any) -> Session: ...
