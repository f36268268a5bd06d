"""The station: wires the functional blocks (``core/blocks/``) over one shared context, independent of OCPP.

The OCPP adapters call the command methods (remote start, reset, ...) and implement ``CsmsPort``; the hardware
drivers sit behind the ports. Safety rule: the relay opens first, and opening it never waits behind a lock
(``StationContext.open_relay`` sits below every block).

A new functional block is a ``FunctionalBlock`` subclass in ``core/blocks/`` that takes the context (and the
blocks it needs) in its constructor; ``Station.__init__`` builds it and appends it to ``blocks``, whose ``start``
and ``halt`` hooks run in that order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from chargepoint.core.blocks.authorization import Authorization
from chargepoint.core.blocks.availability import Availability
from chargepoint.core.blocks.context import (
    CsmsPort,
    FunctionalBlock,
    OfflineCsms,
    StationContext,
    StationTiming,
)
from chargepoint.core.blocks.diagnostics import Diagnostics
from chargepoint.core.blocks.faults import Faults
from chargepoint.core.blocks.firmware import Firmware
from chargepoint.core.blocks.metering import Metering
from chargepoint.core.blocks.recovery import Recovery
from chargepoint.core.blocks.reservations import Reservations
from chargepoint.core.blocks.resets import Resets
from chargepoint.core.blocks.sessions import Sessions
from chargepoint.core.blocks.smart_charging import SmartCharging
from chargepoint.core.connector import Connector
from chargepoint.core.events import (
    CsmsAnswer,
    IdTagInfoReceived,
    StatusChanged,
    TransactionNotStarted,
    TransactionStartAnswered,
)
from chargepoint.core.evse import Evse
from chargepoint.core.model import (
    AvailabilityResult,
    BootReason,
    ConnectorState,
    ErrorCode,
    IdTagInfo,
    LocalListResult,
    ResetKind,
    ResetResult,
    Sample,
    StopReason,
    UnlockResult,
)
from chargepoint.core.reservations import CancelResult, Reservation, ReserveResult
from chargepoint.core.settings import Settings
from chargepoint.core.smart_charging import (
    ChargingProfile,
    ClearResult,
    CompositeSchedule,
    ProfilePurpose,
    ProfileResult,
    RateUnit,
)
from chargepoint.core.storage import Storage
from chargepoint.errors import MeterError
from chargepoint.ports import Clock, ConnectorPorts, FilePort, IdGenerator, MeterReading

__all__ = ["CsmsPort", "OfflineCsms", "Station", "StationTiming"]

S = ConnectorState


class Station:
    """All connectors of one charge point: the functional blocks, wired; the commands delegate to them."""

    def __init__(
        self,
        ports: dict[int, ConnectorPorts],
        store: Storage,
        settings: Settings,
        clock: Clock,
        *,
        transaction_ids: IdGenerator,
        timing: StationTiming | None = None,
        unlock_supported: bool = False,
        files: FilePort | None = None,
        station_id: str = "",
        firmware_version: str = "",
    ) -> None:
        ctx = self.ctx = StationContext(ports, store, settings, clock, timing or StationTiming())
        self.smart_charging = SmartCharging(ctx)
        self.faults = Faults(ctx, self.smart_charging)
        self.metering = Metering(ctx, self.faults)
        self.availability = Availability(ctx)
        self.authorization = Authorization(ctx)
        self.reservations = Reservations(ctx)
        self.sessions = Sessions(
            ctx,
            faults=self.faults,
            metering=self.metering,
            smart_charging=self.smart_charging,
            availability=self.availability,
            authorization=self.authorization,
            reservations=self.reservations,
            transaction_ids=transaction_ids,
            unlock_supported=unlock_supported,
        )
        self.recovery = Recovery(ctx, self.faults, self.metering)
        self.resets = Resets(ctx, self.sessions, self.availability)
        # Start order: recover the last run's transactions, watch plugs and readers, poll meters, apply limits.
        self.blocks: list[FunctionalBlock] = [
            self.recovery,
            self.authorization,
            self.availability,
            self.faults,
            self.reservations,  # before the sessions: a reserved connector with a cable in stays Reserved
            self.sessions,
            self.resets,  # after recovery and the sessions: a resumed transaction keeps its OnIdle reset waiting
            self.metering,
            self.smart_charging,
        ]
        # Firmware management and diagnostics: only with a FilePort (chargepoint/files.py), after the others.
        self.firmware: Firmware | None = None
        self.diagnostics: Diagnostics | None = None
        if files is not None:
            self.firmware = Firmware(
                ctx, files, configured_version=firmware_version, reboot=self.resets.restart_into_firmware
            )
            self.diagnostics = Diagnostics(ctx, files, station_id=station_id)
            self.blocks += [self.firmware, self.diagnostics]

    # the shared state, as before the split
    @property
    def ports(self) -> dict[int, ConnectorPorts]:
        """The hardware ports by connector id."""
        return self.ctx.ports

    @property
    def store(self) -> Storage:
        """The storage port."""
        return self.ctx.store

    @property
    def settings(self) -> Settings:
        """The OCPP-changeable settings."""
        return self.ctx.settings

    @property
    def connectors(self) -> dict[int, Connector]:
        """The connectors by station-wide id."""
        return self.ctx.connectors

    @property
    def evses(self) -> dict[int, Evse]:
        """The EVSEs by id."""
        return self.ctx.evses

    @property
    def listeners(self) -> list[Callable[[int], None]]:
        """Called with a connector id whenever its status changes."""
        return self.ctx.listeners

    @property
    def profiles(self) -> list[ChargingProfile]:
        """The installed charging profiles."""
        return self.smart_charging.profiles

    @property
    def transaction_ids(self) -> IdGenerator:
        """Makes the station's transaction ids."""
        return self.sessions.transaction_ids

    def attach(self, csms: CsmsPort) -> None:
        """Connect the station to a CSMS link."""
        self.ctx.csms = csms

    # life cycle
    async def start(self) -> None:
        """Open every relay (safe state), read plugs and meters, then start each block in order."""
        ctx = self.ctx
        self.resets.requested = asyncio.get_running_loop().create_future()
        for cid, p in ctx.ports.items():
            await ctx.open_relay(cid)
            ctx.connectors[cid].plugged = p.plug.plugged
            try:
                ctx.last_reading[cid] = await p.meter.read()
            except MeterError:
                ctx.connectors[cid].meter_failures = 1
        for block in self.blocks:
            await block.start()

    async def stop(self, reason: StopReason | None = None) -> None:
        """Open every relay, refuse new sessions, end running transactions with ``reason``, stop the loops."""
        ctx = self.ctx
        ctx.stopping = True
        for cid in ctx.ports:
            await ctx.open_relay(cid)
        if reason is not None:
            await self.sessions.stop_all(reason)
        tasks = [*ctx.tasks]
        for block in self.blocks:
            tasks.extend(block.halt())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for cid in ctx.ports:
            await ctx.open_relay(cid)

    def loops_alive(self) -> bool:
        """True while every hardware loop runs (the watchdog stops being fed when one has ended)."""
        return self.ctx.stopping or self.ctx.alive()

    def request_reset(self, kind: ResetKind, reason: BootReason = BootReason.REMOTE_RESET) -> None:
        """Ask the agent to restart (transactions end first, by the agent); the next boot tells ``reason``."""
        self.resets.request_restart(kind, reason)

    @property
    def reset_requested(self) -> asyncio.Future[ResetKind] | None:
        return self.resets.requested  # done with the kind of restart asked for; the agent waits on it

    @property
    def boot_reason(self) -> BootReason:
        """Why this start happened (stored before a planned restart)."""
        return self.resets.boot_reason

    def reset_answer(self, kind: ResetKind, cid: int | None) -> ResetResult:
        """What a reset of the station (``cid`` None) or of connector ``cid`` would do now."""
        return self.resets.answer(kind, cid)

    def reset(self, kind: ResetKind, cid: int | None) -> ResetResult:
        """Reset the station or one connector: now, or (soft, with a transaction running) once it has ended."""
        return self.resets.reset(kind, cid)

    # status
    def status(self, cid: int) -> StatusChanged:
        """A connector's state, error code and info as of now; connector 0 is the station as a whole."""
        ctx = self.ctx
        if cid == 0:
            state = S.AVAILABLE if ctx.station_operative else S.UNAVAILABLE
            return StatusChanged(0, state, ErrorCode.NO_ERROR, None, ctx.now())
        conn = ctx.connectors[cid]
        info = conn.fault_info or ctx.notices.get(cid)
        return StatusChanged(cid, conn.state, conn.error_code, info, ctx.now())

    def snapshot(self) -> dict[str, Any]:
        """Every connector's state, transaction and meter, for the control interface."""
        ctx = self.ctx
        out: dict[str, Any] = {}
        for cid, conn in ctx.connectors.items():
            tx = conn.transaction
            reading = ctx.last_reading.get(cid)
            out[str(cid)] = {
                "state": conn.state.name,
                "error": conn.error_code.name,
                "plugged": conn.plugged,
                "relay_closed": ctx.ports[cid].relay.closed,
                "transaction_id": tx.transaction_id if tx else None,
                "id_tag": tx.id_tag if tx else None,
                "meter_wh": round(reading.energy_wh) if reading else None,
                "operative": conn.operative,
                "notice": ctx.notices.get(cid),
            }
        return out

    async def csms_answered(self, answer: CsmsAnswer) -> None:
        """The central system answered an outbox event (``OutboxSender`` reports it, whatever the version)."""
        match answer:
            case IdTagInfoReceived(id_tag, info):
                self.authorization.id_tag_info(id_tag, info)
            case TransactionStartAnswered(local_tx_id, info, taken):
                await self.sessions.transaction_confirmed(local_tx_id, info, taken=taken)
            case TransactionNotStarted(local_tx_id, why):
                await self.sessions.transaction_not_started(local_tx_id, why)

    # faults
    async def raise_fault(self, cid: int, code: ErrorCode, info: str | None = None) -> None:
        """Add a fault to a connector (0: every connector): the relay opens at once (warnings only report)."""
        await self.ctx.raise_fault(cid, code, info)

    async def clear_fault(self, cid: int, code: ErrorCode) -> None:
        """Clear a fault; when none is left the connector returns to its state before the fault."""
        await self.faults.clear_fault(cid, code)

    # metering
    async def read_meter(self, cid: int) -> MeterReading | None:
        """Read one connector's meter, tracking failures; None if it failed."""
        return await self.metering.read_meter(cid)

    def sample_now(self, cid: int) -> tuple[Sample | None, int | None]:
        """A triggered sample of a connector's sampled measurands and its transaction's local id."""
        return self.metering.sample_now(cid)

    async def trigger_update(self, cid: int) -> bool:
        """Queue a triggered Updated event of the transaction on ``cid`` (False: none runs)."""
        return await self.metering.trigger_update(cid)

    # sessions
    async def on_plug(self, cid: int, plugged: bool) -> None:
        """The EV was plugged in or out."""
        await self.sessions.on_plug(cid, plugged)

    async def on_token(self, cid: int, id_tag: str) -> None:
        """A card was presented at a connector's reader."""
        await self.sessions.on_token(cid, id_tag)

    async def transaction_confirmed(self, local_id: int, info: IdTagInfo, *, taken: bool) -> None:
        """The start of a transaction was answered: act on the idTag's status."""
        await self.sessions.transaction_confirmed(local_id, info, taken=taken)

    async def transaction_not_started(self, local_id: int, why: str) -> None:
        """The CSMS never took this transaction's StartTransaction: stop the session, tell the operator."""
        await self.sessions.transaction_not_started(local_id, why)

    def remote_start(self, id_tag: str, connector_id: int | None, **options: Any) -> bool:
        """Check a remote start and carry it out in the background (``Sessions.remote_start``'s options:
        authorize_first, tx_profile, token_type, remote_start_id); returns the answer."""
        return self.sessions.remote_start(id_tag, connector_id, **options)

    async def remote_stop(self, transaction_id: str) -> bool:
        """Stop the running transaction ``transaction_id``; False if there is none."""
        return await self.sessions.remote_stop(transaction_id)

    async def stop_all(self, reason: StopReason) -> None:
        """End every running transaction with ``reason``."""
        await self.sessions.stop_all(reason)

    async def unlock(self, cid: int) -> UnlockResult:
        """Unlock a connector's cable; a running transaction ends first (OCPP 1.6 §5.18)."""
        return await self.sessions.unlock(cid)

    # availability
    def change_availability(self, cid: int, operative: bool) -> AvailabilityResult:
        """Make a connector (0: the station) (in)operative; Scheduled while a transaction runs. Persisted."""
        return self.availability.change_availability(cid, operative)

    # authorization
    def clear_cache(self) -> bool:
        """Empty the authorization cache."""
        return self.authorization.clear_cache()

    def update_local_list(
        self, version: int, full: bool, entries: dict[str, IdTagInfo | None]
    ) -> LocalListResult:
        """Apply a local-list update (full or differential, versioned)."""
        return self.authorization.update_local_list(version, full, entries)

    def local_list_version(self) -> int:
        """The local list's version, -1 when the feature is off."""
        return self.authorization.local_list_version()

    def id_tag_info(self, id_tag: str, info: IdTagInfo) -> None:
        """The CSMS told us about an idTag in a transaction answer: update the cache."""
        self.authorization.id_tag_info(id_tag, info)

    # reservations
    async def reserve_now(self, reservation: Reservation) -> ReserveResult:
        """ReserveNow (OCPP 1.6 §5.13): take or replace a reservation; Accepted once it is on disk."""
        return await self.reservations.reserve_now(reservation)

    async def cancel_reservation(self, reservation_id: int) -> CancelResult:
        """CancelReservation (OCPP 1.6 §5.2)."""
        return await self.reservations.cancel(reservation_id)

    # smart charging
    def current_limit_a(self, cid: int, at: datetime | None = None) -> float:
        """The current (A per phase) connector ``cid`` may offer now."""
        return self.smart_charging.current_limit_a(cid, at)

    def set_charging_profile(self, cid: int, profile: ChargingProfile) -> ProfileResult:
        """Install a profile on connector ``cid`` (0: the charge point)."""
        return self.smart_charging.set_charging_profile(cid, profile)

    def clear_charging_profiles(
        self,
        profile_id: int | None = None,
        cid: int | None = None,
        purpose: ProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> ClearResult:
        """Remove the profiles the criteria select; UNKNOWN if none does."""
        return self.smart_charging.clear_charging_profiles(profile_id, cid, purpose, stack_level)

    def composite_schedule(
        self, cid: int, duration_s: int, unit: RateUnit | None
    ) -> CompositeSchedule | None:
        """The limits of ``cid`` (0: the charge point) from now for ``duration_s``; None for an unknown one."""
        return self.smart_charging.composite_schedule(cid, duration_s, unit)
