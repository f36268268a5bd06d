"""The station: connectors, their hardware ports, sessions, metering and recovery, independent of OCPP.

The OCPP adapters call the command methods (remote start, reset, ...) and implement ``CsmsPort``; the hardware
drivers sit behind the ports. Safety rule: the relay opens first, and opening it never waits behind a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chargepoint.core.auth import Authorizer
from chargepoint.core.connector import ActiveTransaction, Connector
from chargepoint.core.diagnostics import DiagnosticsBlock
from chargepoint.core.events import (
    MeterReadings,
    StatusChanged,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
)
from chargepoint.core.evse import Evse, one_connector_per_evse
from chargepoint.core.firmware import FirmwareBlock
from chargepoint.core.metering import finite, next_aligned, next_periodic, sample
from chargepoint.core.model import (
    WARNING_CODES,
    AuthStatus,
    AvailabilityResult,
    ConnectorState,
    ErrorCode,
    IdTagInfo,
    LocalListResult,
    ReadingContext,
    ResetKind,
    Sample,
    StopReason,
    UnlockResult,
)
from chargepoint.core.settings import Settings
from chargepoint.core.smart_charging import (
    MAX_SECONDS,
    ChargingProfile,
    ClearResult,
    CompositeSchedule,
    ConnectorLimits,
    ProfilePurpose,
    ProfileResult,
    ProfileRules,
    RateUnit,
    composite,
    limit_a,
    matches_clear,
    next_change,
    problem,
    replaced_by,
)
from chargepoint.core.storage import Storage
from chargepoint.errors import HardwareError, MeterError, StorageError
from chargepoint.ports import Clock, ConnectorPorts, FilePort, IdGenerator, MeterReading, safe_now

log = logging.getLogger(__name__)

LIMIT_RECHECK_S = 300.0  # longest wait between two evaluations of the smart-charging limits
S = ConnectorState
_TX_STATES = (S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE)
STORAGE_FAULT = "storage full or unwritable"
REREAD_GRACE_S = 1.0  # a transaction's own card seen this soon after its reader (re)appeared is a re-read
MAX_ID_TAG_LENGTH = 20  # the shortest idTag any supported OCPP version takes (1.6 CiString20Type)
MAX_STOP_DATA = 100  # samples in StopTransaction.transactionData: the newest ones, so the frame stays small
_READY_STATES = (S.AVAILABLE, S.PREPARING, S.FINISHING)  # where a new authorization may start a session


def _log_crash(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("station task %s crashed", task.get_name(), exc_info=task.exception())


class CsmsPort(Protocol):
    """What the core needs from the central-system link, whatever the OCPP version."""

    @property
    def online(self) -> bool:
        """True when a CALL can be sent right now (connected and boot accepted)."""
        ...

    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Authorize online; raises CsmsUnavailable when the CSMS cannot be asked."""
        ...

    def status_changed(self, connector_id: int) -> None:
        """A connector's status (or error code) changed; the link reports it when it can."""
        ...

    def outbox_changed(self) -> None:
        """Something was queued in the outbox."""
        ...


class OfflineCsms:
    """The CSMS port before any link is attached: always offline."""

    online = False

    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Never online."""
        from chargepoint.errors import CsmsUnavailable

        raise CsmsUnavailable("no CSMS link")

    def status_changed(self, connector_id: int) -> None:
        """Nothing to tell."""

    def outbox_changed(self) -> None:
        """Nothing to wake."""


@dataclass(frozen=True)
class StationTiming:
    """Intervals of the station's own loops (not OCPP settings)."""

    meter_poll_s: float = 1.0
    meter_failures_for_fault: int = 2
    persist_meter_s: float = 15.0
    ev_suspend_threshold_w: float = 1.0


class Station:
    """All connectors of one charge point and the rules that drive them."""

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
        self.ports = ports
        self.store = store
        self.settings = settings
        self.clock = clock
        self.timing = timing or StationTiming()
        self.unlock_supported = unlock_supported
        # Transaction ids: strings unique across restarts, made outside the core (OCPP 2.0.1 E01: station-made).
        self.transaction_ids = transaction_ids
        self.csms: CsmsPort = OfflineCsms()
        self.authorizer = Authorizer(store, settings, self, clock)
        self.connectors: dict[int, Connector] = {}
        for cid in sorted(ports):
            operative = store.get(f"operative.{cid}", "1") == "1"
            conn = Connector(cid, operative=operative)
            conn.on_state_change = self._state_changed
            self.connectors[cid] = conn
        # Today every connector is its own EVSE (the only layout OCPP 1.6 can describe).
        self.evses: dict[int, Evse] = one_connector_per_evse(self.connectors)
        self.station_operative = store.get("operative.0", "1") == "1"
        self.last_reading: dict[int, MeterReading] = {}
        self._meter_failures: dict[int, int] = dict.fromkeys(ports, 0)
        # One lock per connector serializes its session changes; opening a relay never takes it.
        self._locks: dict[int, asyncio.Lock] = {cid: asyncio.Lock() for cid in ports}
        self._open_generation: dict[int, int] = dict.fromkeys(ports, 0)
        self._unsaved_stops: dict[int, tuple[int, TransactionEnded]] = {}
        # What the operator must hear of on a connector without a fault (StatusNotification info, ``ctl status``):
        # a transaction the CSMS never accepted. Cleared when the CSMS accepts the connector's next transaction.
        self.notices: dict[int, str] = {}
        self.stopping = False
        self._reader_ready_at: dict[int, datetime] = {}
        self._supervised: list[asyncio.Task[Any]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tx_tasks: dict[int, asyncio.Task[Any]] = {}
        self._timeouts: dict[int, asyncio.Task[Any]] = {}
        self._last_persist: dict[int, float] = {}
        # The last register committed for each connector's transaction.
        self._persisted_wh: dict[int, int] = {}
        self.reset_requested: asyncio.Future[ResetKind] | None = None
        self.listeners: list[Callable[[int], None]] = []
        # Smart charging: installed profiles, a TxProfile waiting for a remote start's transaction, and the timer
        # that re-applies the limits at the next period boundary (a TimerHandle, not a task: fleets hold thousands).
        try:
            self.profiles: list[ChargingProfile] = store.charging_profiles()
        except StorageError:
            log.exception("cannot read the installed charging profiles")
            self.profiles = []
        self._remote_profiles: dict[int, tuple[str, ChargingProfile]] = {}
        self._limit_timer: asyncio.TimerHandle | None = None
        # Firmware management and diagnostics (core/firmware.py, core/diagnostics.py): only with a FilePort.
        self.firmware: FirmwareBlock | None = None
        self.diagnostics: DiagnosticsBlock | None = None
        if files is not None:
            self.firmware = FirmwareBlock(
                store,
                clock,
                files,
                configured_version=firmware_version,
                busy=lambda: any(c.transaction is not None for c in self.connectors.values()),
                reboot=lambda: self.request_reset(ResetKind.SOFT),
                wake=lambda: self.csms.outbox_changed(),
            )
            self.listeners.append(self.firmware.connector_changed)
            self.diagnostics = DiagnosticsBlock(
                store, clock, files, station_id=station_id, wake=lambda: self.csms.outbox_changed()
            )

    def _now(self) -> datetime:
        """The station's time; the system's UTC time if the injected clock fails (a session must still end)."""
        return safe_now(self.clock)

    # The online-authorizer view of the CSMS port, so the Authorizer sees the currently attached link.
    @property
    def online(self) -> bool:
        """True when the CSMS link can take a CALL."""
        return self.csms.online

    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Online authorization through the attached link."""
        return await self.csms.authorize(id_tag)

    def attach(self, csms: CsmsPort) -> None:
        """Connect the station to a CSMS link."""
        self.csms = csms

    # life cycle
    async def start(self) -> None:
        """Open every relay (safe state), recover transactions left by a crash, and start the loops."""
        loop = asyncio.get_running_loop()
        self.reset_requested = loop.create_future()
        for cid, p in self.ports.items():
            await self._open_relay(cid)
            self.connectors[cid].plugged = p.plug.plugged
            try:
                self.last_reading[cid] = await p.meter.read()
            except MeterError:
                self._meter_failures[cid] = 1
        await self._recover()
        # A TxProfile lives as long as its transaction (OCPP 1.6 §3.13.1): drop those of ended ones.
        self._drop_tx_profiles([c.id for c in self.connectors.values() if c.transaction is None])
        for cid, conn in self.connectors.items():
            if conn.state is S.AVAILABLE and conn.plugged:
                conn.plug_in()
            self._supervise(self._watch_plug, cid, "plug")
            self._supervise(self._poll_meter, cid, "meter")
            if self.ports[cid].reader is not None:
                self._supervise(self._watch_reader, cid, "reader")
        self._spawn(self._clock_aligned(), "clock-aligned")
        self._apply_limits()
        for block in (self.firmware, self.diagnostics):
            if block is not None:
                block.resume()

    async def stop(self, reason: StopReason | None = None) -> None:
        """Open every relay, refuse new sessions, end running transactions with ``reason``, stop the loops."""
        self.stopping = True
        if self._limit_timer is not None:
            self._limit_timer.cancel()
        for cid in self.ports:
            await self._open_relay(cid)
        if reason is not None:
            await self.stop_all(reason)
        for block in (self.firmware, self.diagnostics):
            if block is not None:
                await block.stop()
        for task in [*self._tasks, *self._tx_tasks.values(), *self._timeouts.values()]:
            task.cancel()
        for task in [*self._tasks, *self._tx_tasks.values(), *self._timeouts.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for cid in self.ports:
            await self._open_relay(cid)

    def _supervise(self, loop: Callable[[int], Coroutine[Any, Any, None]], cid: int, name: str) -> None:
        """Run a connector's hardware loop; if it crashes (a bug or an unexpected driver error), fault the
        connector, which opens its relay, and start the loop again."""

        async def supervised() -> None:
            while True:
                try:
                    await loop(cid)
                    return
                except Exception as exc:
                    log.exception("connector %s: %s loop crashed; restarting it", cid, name)
                    await self.raise_fault(
                        cid, ErrorCode.INTERNAL_ERROR, f"{name}: {type(exc).__name__}"[:50]
                    )
                    await asyncio.sleep(self.timing.meter_poll_s)

        self._supervised.append(self._spawn(supervised(), f"{name}-{cid}"))

    def loops_alive(self) -> bool:
        """True while every hardware loop runs (the watchdog stops being fed when one has ended)."""
        return self.stopping or all(not task.done() for task in self._supervised)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        _log_crash(task)

    async def _recover(self) -> None:
        """End (or resume) transactions that were running when the agent last died (EVerest/libocpp style)."""
        resume = self.settings.get_bool("resume_transactions_after_power_loss")
        for tx in self.store.active_transactions():
            conn = self.connectors.get(tx.connector_id)
            if resume and conn is not None and conn.plugged and conn.operative:
                log.warning("resuming transaction %s on connector %s after power loss", tx.local_id, conn.id)
                conn.transaction = ActiveTransaction(
                    tx.local_id,
                    tx.transaction_id,
                    tx.id_tag,
                    tx.parent_id_tag,
                    tx.started_at,
                    tx.meter_start_wh,
                    tx.authorized,
                )
                conn.settle(conn.resting_state())
                self._state_changed(conn)
                if tx.authorized:
                    await self._close_relay(conn.id)
                self._start_sampling(conn)
                continue
            # The register read at start-up stopped counting when the power went; it beats the last persisted
            # value (up to persist_meter_s old) whenever it is larger (a replaced or simulated meter may be lower).
            fresh = self.last_reading.get(tx.connector_id)
            meter_stop = max(tx.last_meter_wh, round(fresh.energy_wh) if fresh else 0)
            log.warning("ending transaction %s after power loss at %s Wh", tx.local_id, meter_stop)
            ended = TransactionEnded(
                tx.transaction_id,
                tx.connector_id,
                meter_stop,
                tx.last_meter_at,
                StopReason.POWER_LOSS,
                tx.id_tag,
                tx.stop_data[-MAX_STOP_DATA:],
            )
            await self._record_stop(tx.connector_id, (tx.local_id, ended))
        self.csms.outbox_changed()

    # status
    def _state_changed(self, conn: Connector) -> None:
        log.info("connector %s -> %s", conn.id, conn.state.name)
        self._notify(conn.id)

    def _notify(self, cid: int) -> None:
        self.csms.status_changed(cid)
        for listener in self.listeners:
            listener(cid)

    def status(self, cid: int) -> StatusChanged:
        """A connector's state, error code and info as of now; connector 0 is the station as a whole."""
        if cid == 0:
            state = S.AVAILABLE if self.station_operative else S.UNAVAILABLE
            return StatusChanged(0, state, ErrorCode.NO_ERROR, None, self._now())
        conn = self.connectors[cid]
        info = conn.fault_info or self.notices.get(cid)
        return StatusChanged(cid, conn.state, conn.error_code, info, self._now())

    def snapshot(self) -> dict[str, Any]:
        """Every connector's state, transaction and meter, for the control interface."""
        out: dict[str, Any] = {}
        for cid, conn in self.connectors.items():
            tx = conn.transaction
            reading = self.last_reading.get(cid)
            out[str(cid)] = {
                "state": conn.state.name,
                "error": conn.error_code.name,
                "plugged": conn.plugged,
                "relay_closed": self.ports[cid].relay.closed,
                "transaction_id": tx.transaction_id if tx else None,
                "id_tag": tx.id_tag if tx else None,
                "meter_wh": round(reading.energy_wh) if reading else None,
                "operative": conn.operative,
                "notice": self.notices.get(cid),
            }
        return out

    # relay, never behind the lock when opening
    async def _open_relay(self, cid: int) -> None:
        self._open_generation[cid] += 1
        relay = self.ports[cid].relay
        try:
            await relay.open()
        except Exception as exc:  # the driver boundary: whatever it raises, the caller's stop must go on
            log.error("relay %s did not open: %s", cid, exc)
            self._add_fault(cid, ErrorCode.POWER_SWITCH_FAILURE, str(exc)[:50])
        try:
            self.ports[cid].plug.offer_current(None)  # after the relay: nothing may delay the open
        except Exception:
            log.exception("connector %s: withdrawing the current offer failed", cid)

    async def _close_relay(self, cid: int) -> bool:
        """Close the relay if it may be closed; True if it is closed and stays so."""
        conn = self.connectors[cid]
        if self.stopping or conn.critically_faulted or not conn.plugged:
            return False
        generation = self._open_generation[cid]
        try:
            await self.ports[cid].relay.close()
        except HardwareError as exc:
            log.error("relay %s did not close: %s", cid, exc)
            await self._open_relay(cid)
            self._add_fault(cid, ErrorCode.POWER_SWITCH_FAILURE, str(exc))
            return False
        # An open requested while the contactor was closing (fault, unplug, stop) wins.
        if (
            self._open_generation[cid] != generation
            or self.stopping
            or conn.critically_faulted
            or not conn.plugged
        ):
            await self._open_relay(cid)
            return False
        self.ports[cid].plug.offer_current(self.current_limit_a(cid))
        return True

    # faults
    async def raise_fault(self, cid: int, code: ErrorCode, info: str | None = None) -> None:
        """Add a fault to a connector (0: every connector): the relay opens at once (warnings only report)."""
        for target in self.connectors if cid == 0 else [cid]:
            if code not in WARNING_CODES:
                await self._open_relay(target)
            self._add_fault(target, code, info)

    def _add_fault(self, cid: int, code: ErrorCode, info: str | None) -> None:
        conn = self.connectors[cid]
        already = code in conn.faults
        conn.faults[code] = info
        if conn.state is not S.FAULTED and code not in WARNING_CODES:
            conn.state_before_fault = conn.state
            conn.fail()
        elif not already:
            self._notify(cid)

    async def clear_fault(self, cid: int, code: ErrorCode) -> None:
        """Clear a fault; when none is left the connector returns to its state before the fault."""
        for target in self.connectors if cid == 0 else [cid]:
            conn = self.connectors[target]
            if code not in conn.faults:
                continue
            del conn.faults[code]
            if conn.state is not S.FAULTED or conn.critically_faulted:
                self._notify(target)
                continue
            async with self._locks[conn.id]:
                await self._restore_after_fault(conn)

    async def _restore_after_fault(self, conn: Connector) -> None:
        prev = conn.state_before_fault or S.AVAILABLE
        rest = conn.resting_state()
        # Back to the previous state if it still describes the connector; otherwise to where it belongs now.
        consistent = (
            prev == rest
            or (prev in (S.CHARGING, S.SUSPENDED_EV) and rest is S.CHARGING)
            or (prev is S.FINISHING and rest is S.PREPARING and conn.pending_id_tag is None)
        )
        target = prev if consistent else rest
        conn.settle(target)
        self._state_changed(conn)
        if target in (S.CHARGING, S.SUSPENDED_EV):
            await self._close_relay(conn.id)

    # hardware loops
    async def _watch_plug(self, cid: int) -> None:
        async for plugged in self.ports[cid].plug.changes():
            await self.on_plug(cid, plugged)

    async def _watch_reader(self, cid: int) -> None:
        reader = self.ports[cid].reader
        assert reader is not None
        while True:
            try:
                async for id_tag in reader.tokens():
                    if ErrorCode.READER_FAILURE in self.connectors[cid].faults:
                        await self.clear_fault(cid, ErrorCode.READER_FAILURE)
                    if id_tag is None:  # None only says the reader is (back) in working order
                        self._reader_ready_at[cid] = self._now()
                    else:
                        self._spawn(self.on_token(cid, id_tag), f"token-{cid}")
            except HardwareError as exc:
                if ErrorCode.READER_FAILURE not in self.connectors[cid].faults:
                    await self.raise_fault(cid, ErrorCode.READER_FAILURE, str(exc))
            await asyncio.sleep(self.timing.meter_poll_s)

    async def _poll_meter(self, cid: int) -> None:
        while True:
            await self.read_meter(cid)
            await self._check_relay(cid)
            if self.connectors[cid].faults.get(ErrorCode.INTERNAL_ERROR) == STORAGE_FAULT:
                await self._probe_storage(cid)
            await asyncio.sleep(self.timing.meter_poll_s)

    async def _record_stop(self, cid: int, stop: tuple[int, TransactionEnded]) -> None:
        """Persist a transaction's end (awaiting its commit, off the event loop); if the store refuses, keep it in
        memory and fault the connector until it is written (no new session may start over an unrecorded end)."""
        # Any error (a StorageError, a bug): the end is kept, never lost, and the transaction is never left open.
        try:
            mark = self.store.mark()
            self.store.end_transaction(*stop)
            await self.store.flush(since=mark)
        except Exception:
            log.exception(
                "could not record the end of transaction %s; keeping it until storage recovers", stop[0]
            )
            if cid in self.connectors:
                self._unsaved_stops[cid] = stop
                self._add_fault(cid, ErrorCode.INTERNAL_ERROR, STORAGE_FAULT)
            return
        if self.store.low_space and cid in self.connectors:
            # Written on the store's reserve: the disk is full, so no new session until space returns.
            self._add_fault(cid, ErrorCode.INTERNAL_ERROR, STORAGE_FAULT)

    async def _check_relay(self, cid: int) -> None:
        """A contactor that closed or dropped out by itself is a PowerSwitchFailure (cleared only by a restart:
        a contactor that did that once is not trusted again unattended)."""
        try:
            await self.ports[cid].relay.check()
        except HardwareError as exc:
            if ErrorCode.POWER_SWITCH_FAILURE not in self.connectors[cid].faults:
                log.error("connector %s: %s", cid, exc)
                await self.raise_fault(cid, ErrorCode.POWER_SWITCH_FAILURE, str(exc)[:50])

    async def _probe_storage(self, cid: int) -> None:
        """Clear a storage fault once the store takes writes again (space freed, disk remounted)."""
        pending = self._unsaved_stops.get(cid)
        if pending is not None:
            # An end of transaction is written even while the disk is low (it may use the store's reserve).
            try:
                mark = self.store.mark()
                self.store.end_transaction(*pending)
                await self.store.flush(since=mark)
            except Exception:  # StorageError, or a stop the store cannot take at all: it stays in memory
                return
            if self._unsaved_stops.get(cid) is pending:
                del self._unsaved_stops[cid]
            self.csms.outbox_changed()
        # An ordinary write only succeeds once the disk has room again (and the reserve is back).
        try:
            mark = self.store.mark()
            self.store.put("storage_probe", self._now().isoformat())
            await self.store.flush(since=mark)
        except Exception:  # StorageError, or a write the store cannot take at all
            return
        log.info("storage writable again; clearing the fault on connector %s", cid)
        await self.clear_fault(cid, ErrorCode.INTERNAL_ERROR)

    async def read_meter(self, cid: int) -> MeterReading | None:
        """Read one connector's meter, tracking failures; None if it failed."""
        conn = self.connectors[cid]
        try:
            reading = await self.ports[cid].meter.read()
            if not math.isfinite(reading.energy_wh) or reading.energy_wh < 0:
                raise MeterError(f"implausible energy register {reading.energy_wh!r}")
            reading = finite(reading)
        except Exception as exc:  # the driver boundary: any failure to read counts as a failed cycle
            self._meter_failures[cid] += 1
            if (
                self._meter_failures[cid] >= self.timing.meter_failures_for_fault
                and ErrorCode.POWER_METER_FAILURE not in conn.faults
            ):
                log.error("meter %s failed %s read cycles: %s", cid, self._meter_failures[cid], exc)
                await self.raise_fault(cid, ErrorCode.POWER_METER_FAILURE, str(exc)[:50])
            return None
        previous = self.last_reading.get(cid)
        if previous is not None and reading.energy_wh < previous.energy_wh and conn.transaction is not None:
            # The register never goes backwards within a session: keep the larger value.
            reading = MeterReading(
                previous.energy_wh,
                reading.power_w,
                reading.voltage_v,
                reading.current_a,
                reading.frequency_hz,
                reading.soc_percent,
            )
        self.last_reading[cid] = reading
        self._meter_failures[cid] = 0
        if ErrorCode.POWER_METER_FAILURE in conn.faults:
            await self.clear_fault(cid, ErrorCode.POWER_METER_FAILURE)
        await self._track_ev_draw(conn, reading)
        await self._persist_meter(conn, reading)
        await self._check_invalid_energy(conn, reading)
        return reading

    async def _track_ev_draw(self, conn: Connector, reading: MeterReading) -> None:
        # No power through an open relay says nothing about the EV.
        if reading.power_w is None or not self.ports[conn.id].relay.closed:
            return
        drawing = reading.power_w > self.timing.ev_suspend_threshold_w
        if conn.state is S.CHARGING and not drawing:
            conn.ev_suspend()
        elif conn.state is S.SUSPENDED_EV and drawing:
            conn.ev_resume()

    async def _persist_meter(self, conn: Connector, reading: MeterReading) -> None:
        tx = conn.transaction
        if tx is None:
            return
        if self.store.low_space and not self._storage_faulted(conn):
            # Another write found the disk full: this session stops too, at once rather than at its next record.
            await self._stop_charging_unrecorded(conn)
            return
        loop_now = asyncio.get_running_loop().time()
        if loop_now - self._last_persist.get(conn.id, 0.0) < self.timing.persist_meter_s:
            return
        energy_wh = round(reading.energy_wh)
        if self._storage_faulted(conn) and energy_wh <= self._persisted_wh.get(conn.id, -1):
            return  # relay open for a full disk: nothing new to record, keep the reserve
        self._last_persist[conn.id] = loop_now
        await self._record_meter(conn, tx, energy_wh, self._now())

    def _storage_faulted(self, conn: Connector) -> bool:
        return conn.faults.get(ErrorCode.INTERNAL_ERROR) == STORAGE_FAULT

    async def _record_meter(
        self,
        conn: Connector,
        tx: ActiveTransaction,
        energy_wh: int,
        at: datetime,
        *,
        message: TransactionUpdated | None = None,
        stop_data: Sample | None = None,
    ) -> bool:
        """Persist a running transaction's register (and a sample), awaiting the commit off the event loop.

        A session never charges unrecorded: if the store cannot take the record, or took it only on its reserve
        because the disk is full, the connector faults (InternalError, relay open) until space returns; the
        register after the open is written on the reserve, so even a crash then ends the transaction with a
        meterStop no lower than the energy delivered. Returns True if the record was committed.
        """
        mark = self.store.mark()
        self.store.record_meter(tx.local_id, energy_wh, at, message=message, stop_data=stop_data)
        committed = True
        try:
            await self.store.flush(since=mark)
            self._persisted_wh[conn.id] = max(energy_wh, self._persisted_wh.get(conn.id, 0))
        except StorageError:
            log.exception("could not record the meter of transaction %s", tx.local_id)
            committed = False
        if (not committed or self.store.low_space) and not self._storage_faulted(conn):
            await self._stop_charging_unrecorded(conn)
        return committed

    async def _stop_charging_unrecorded(self, conn: Connector) -> None:
        """The disk is full under a running session: open the relay (fault InternalError, cleared by itself when
        space returns, which resumes charging) and persist the register as it stands after the open."""
        log.error(
            "connector %s: the store cannot record this session; relay opened until space returns", conn.id
        )
        await self.raise_fault(conn.id, ErrorCode.INTERNAL_ERROR, STORAGE_FAULT)
        tx = conn.transaction
        if tx is None:
            return
        await self.read_meter(conn.id)
        energy_wh = self.current_energy_wh(conn.id)
        if energy_wh > self._persisted_wh.get(conn.id, -1):
            mark = self.store.mark()
            self.store.record_meter(tx.local_id, energy_wh, self._now())
            try:
                await self.store.flush(since=mark)
                self._persisted_wh[conn.id] = energy_wh
            except StorageError:
                log.error(
                    "transaction %s: register %s Wh could not be written either", tx.local_id, energy_wh
                )

    async def _check_invalid_energy(self, conn: Connector, reading: MeterReading) -> None:
        tx = conn.transaction
        if tx is None or tx.authorized or conn.state is S.SUSPENDED_EVSE:
            return
        # MaxEnergyOnInvalidId: an id found invalid after start may charge up to this much, then is suspended.
        limit = self.settings.get_int("max_energy_on_invalid_id_wh")
        if reading.energy_wh - tx.meter_start_wh >= limit and conn.can("evse_suspend"):
            await self._open_relay(conn.id)
            conn.evse_suspend()

    def current_energy_wh(self, cid: int) -> int:
        """The last good meter register of a connector, in Wh."""
        reading = self.last_reading.get(cid)
        return round(reading.energy_wh) if reading else 0

    # sessions
    async def on_plug(self, cid: int, plugged: bool) -> None:
        """The EV was plugged in or out."""
        conn = self.connectors[cid]
        conn.plugged = plugged
        if not plugged:
            # Safety first: no EV, no power; this does not wait for a session change in progress.
            await self._open_relay(cid)
        async with self._locks[cid]:
            stop_on_unplug = self.settings.get_bool("stop_transaction_on_ev_side_disconnect")
            if conn.state is S.FAULTED:
                # The relay is already open; an unplug still ends the transaction (the fault recovery then
                # finds the connector Available).
                if not plugged and conn.transaction is not None and stop_on_unplug:
                    await self._stop_transaction(conn, StopReason.EV_DISCONNECTED)
                return
            if conn.state is S.UNAVAILABLE and not conn.in_transaction:
                return
            if plugged:
                tx = conn.transaction
                if tx is not None:
                    # The EV came back while the transaction stayed open (StopTransactionOnEVSideDisconnect off).
                    if (
                        tx.authorized
                        and conn.state in (S.SUSPENDED_EV, S.SUSPENDED_EVSE)
                        and await self._close_relay(cid)
                        and conn.state is S.SUSPENDED_EVSE
                    ):
                        conn.evse_resume()
                    return
                if conn.pending_id_tag is not None:
                    await self._start_transaction(conn, conn.pending_id_tag, conn.pending_parent)
                elif conn.can("plug_in"):
                    conn.plug_in()
                return
            # unplugged
            if conn.transaction is not None:
                if stop_on_unplug:
                    await self._stop_transaction(conn, StopReason.EV_DISCONNECTED)
                else:
                    await self._open_relay(cid)
                    if conn.state is S.CHARGING:
                        conn.ev_suspend()
                return
            if conn.state in (S.PREPARING, S.FINISHING) and conn.pending_id_tag is None:
                conn.cable_gone()
                self._apply_scheduled_availability(conn)

    async def on_token(self, cid: int, id_tag: str) -> None:
        """A card was presented at a connector's reader."""
        if not 0 < len(id_tag) <= MAX_ID_TAG_LENGTH:
            log.warning("card %r ignored: an idTag has 1 to %s characters", id_tag, MAX_ID_TAG_LENGTH)
            return
        conn = self.connectors[cid]
        tx = conn.transaction
        if tx is not None:
            if id_tag == tx.id_tag:
                ready_at = self._reader_ready_at.get(cid)
                if (
                    ready_at is not None
                    and tx.started_at < ready_at
                    and (self._now() - ready_at).total_seconds() < REREAD_GRACE_S
                ):
                    # A card left on the reader is read again when the reader comes back (USB glitch, pcscd
                    # restart, agent restart with a resumed session): that is not the driver asking to stop.
                    log.info("card %s re-read as the reader came back; not a stop request", id_tag)
                    return
                async with self._locks[conn.id]:
                    if conn.transaction is tx:
                        await self._stop_transaction(conn, StopReason.LOCAL, id_tag)
                return
            # A different card stops the session only if it shares the parent id (OCPP 1.6 §3.5.3); without a
            # parent id on the transaction no other card can, so nothing is asked.
            if tx.parent_id_tag is None:
                log.info("card %s cannot stop transaction of %s on connector %s", id_tag, tx.id_tag, cid)
                return
            info = await self.authorizer.authorize(id_tag)
            if (
                info.status is AuthStatus.ACCEPTED
                and tx.parent_id_tag is not None
                and info.parent_id_tag == tx.parent_id_tag
            ):
                async with self._locks[conn.id]:
                    if conn.transaction is tx:
                        await self._stop_transaction(conn, StopReason.LOCAL, id_tag)
            else:
                log.info("card %s cannot stop transaction of %s on connector %s", id_tag, tx.id_tag, cid)
            return
        if conn.state not in _READY_STATES or not self.station_operative:
            log.info("card %s ignored: connector %s is %s", id_tag, cid, conn.state.name)
            return
        info = await self.authorizer.authorize(id_tag)
        if info.status is not AuthStatus.ACCEPTED:
            log.info("card %s refused: %s", id_tag, info.status.name)
            return
        await self._begin_when_plugged(conn, id_tag, info.parent_id_tag)

    async def _begin_when_plugged(self, conn: Connector, id_tag: str, parent: str | None) -> None:
        async with self._locks[conn.id]:
            if conn.transaction is not None or conn.state not in _READY_STATES or self.stopping:
                return
            if self.firmware is not None and self.firmware.installing:
                # The install ends in a reboot: a session begun now would be cut off by it.
                log.info("card %s ignored on connector %s: firmware is being installed", id_tag, conn.id)
                return
            if conn.plugged:
                await self._start_transaction(conn, id_tag, parent)
                return
            conn.pending_id_tag, conn.pending_parent = id_tag, parent
            if conn.can("identified"):
                conn.identified()
            self._arm_connection_timeout(conn)

    def _arm_connection_timeout(self, conn: Connector) -> None:
        old = self._timeouts.pop(conn.id, None)
        if old is not None:
            old.cancel()
        task = asyncio.get_running_loop().create_task(
            self._connection_timeout(conn), name=f"timeout-{conn.id}"
        )
        task.add_done_callback(_log_crash)
        self._timeouts[conn.id] = task

    async def _connection_timeout(self, conn: Connector) -> None:
        await asyncio.sleep(self.settings.get_int("connection_timeout_s"))
        async with self._locks[conn.id]:
            self._timeouts.pop(conn.id, None)
            if conn.transaction is None and conn.pending_id_tag is not None and not conn.plugged:
                log.info("connector %s: no cable within ConnectionTimeOut; authorization dropped", conn.id)
                conn.pending_id_tag = conn.pending_parent = None
                self._remote_profiles.pop(conn.id, None)  # a remote start's TxProfile goes with it
                if conn.state is S.PREPARING:
                    conn.abandon()

    async def _start_transaction(self, conn: Connector, id_tag: str, parent: str | None) -> None:
        """Start a transaction on a plugged, authorized connector (caller holds the lock)."""
        conn.pending_id_tag = conn.pending_parent = None
        timeout = self._timeouts.pop(conn.id, None)
        if timeout is not None:
            timeout.cancel()
        if conn.state in (S.AVAILABLE, S.FINISHING):
            conn.identified()
        reading = await self.read_meter(conn.id)
        if conn.state is S.FAULTED or self.stopping:
            return
        if not conn.plugged:  # the cable went while the meter was read
            if conn.state is S.PREPARING:
                conn.abandon()
            return
        if reading is None and conn.id not in self.last_reading:
            # No register was ever read: a transaction needs a true meterStart, so none starts.
            log.error("connector %s: no meter reading yet; not starting a transaction", conn.id)
            return
        meter_start = round(reading.energy_wh) if reading else self.current_energy_wh(conn.id)
        now = self._now()
        transaction_id = self.transaction_ids()
        mark = self.store.mark()
        try:
            local_id = self.store.begin_transaction(
                TransactionStarted(transaction_id, conn.id, id_tag, meter_start, now), parent
            )
            # The transaction is on disk before the relay closes (the commit is awaited off the event loop).
            await self.store.flush(since=mark)
        except StorageError as exc:
            # Without a durable record there is no transaction: refuse rather than charge unrecorded.
            log.error("cannot record a transaction on connector %s: %s", conn.id, exc)
            await self.raise_fault(conn.id, ErrorCode.INTERNAL_ERROR, STORAGE_FAULT)
            return
        conn.transaction = ActiveTransaction(local_id, transaction_id, id_tag, parent, now, meter_start)
        self._persisted_wh[conn.id] = meter_start
        remote = self._remote_profiles.pop(conn.id, None)
        if remote is not None and remote[0] == id_tag:
            # RemoteStartTransaction's chargingProfile is this transaction's TxProfile (OCPP 1.6 §5.11).
            self._install(remote[1])
        self._apply_limits()
        self._last_persist[conn.id] = asyncio.get_running_loop().time()
        self.csms.outbox_changed()
        if await self._close_relay(conn.id) and conn.can("start_charging"):
            conn.start_charging()
        self._start_sampling(conn)

    async def _stop_transaction(self, conn: Connector, reason: StopReason, id_tag: str | None = None) -> None:
        """End the running transaction (caller holds the lock): relay first, then the durable record.

        Nothing after the relay opened may leave the transaction open: a failing meter, clock or store only makes
        the record less complete (a best-effort time, the last good register), and a record the store refuses
        is kept in memory until it can be written (``_record_stop``)."""
        tx = conn.transaction
        assert tx is not None
        await self._open_relay(conn.id)
        sampler = self._tx_tasks.pop(conn.id, None)
        if sampler is not None:
            sampler.cancel()
        if conn.state is not S.FAULTED:
            try:
                await self.read_meter(conn.id)
            except Exception:
                log.exception("connector %s: the final meter read failed; using the last good one", conn.id)
        # Never before the start: a CSMS that set the clock back mid-session must not make the session negative.
        now = max(self._now(), tx.started_at)
        meter_stop = max(self.current_energy_wh(conn.id), tx.meter_start_wh)
        data: tuple[Sample, ...] = ()
        try:
            end_values = self._stop_txn_end_values(conn.id, now)
            await self.store.flush()  # the stop data queued so far, without blocking the loop on the read
            stored = self.store.transaction(tx.local_id)
            data = (stored.stop_data if stored else ()) + ((end_values,) if end_values else ())
        except Exception:
            log.exception("transaction %s: no transaction data for its stop", tx.local_id)
        ended = TransactionEnded(
            tx.transaction_id, conn.id, meter_stop, now, reason, id_tag, data[-MAX_STOP_DATA:]
        )
        await self._record_stop(conn.id, (tx.local_id, ended))
        conn.transaction = None
        try:
            self._drop_tx_profiles([conn.id])
        except Exception:
            log.exception("connector %s: dropping the TxProfiles failed", conn.id)
        self.csms.outbox_changed()
        if conn.state is S.FAULTED:
            conn.state_before_fault = S.FINISHING if conn.plugged else S.AVAILABLE
        elif conn.plugged:
            conn.finish()
        else:
            conn.cable_gone()
        self._apply_scheduled_availability(conn)

    def _stop_txn_end_values(self, cid: int, now: datetime) -> Sample | None:
        measurands = self.settings.measurands("stop_txn_sampled_data")
        reading = self.last_reading.get(cid)
        if not measurands or reading is None:
            return None
        return sample(reading, measurands, ReadingContext.TRANSACTION_END, now)

    def _start_sampling(self, conn: Connector) -> None:
        tx = conn.transaction
        assert tx is not None
        task = asyncio.get_running_loop().create_task(
            self._sample_periodically(conn, tx), name=f"sampler-{conn.id}"
        )
        task.add_done_callback(_log_crash)
        self._tx_tasks[conn.id] = task

    async def _sample_periodically(self, conn: Connector, tx: ActiveTransaction) -> None:
        """MeterValueSampleInterval counts from the transaction start (OCPP 1.6 §3.16.1)."""
        while conn.transaction is tx:
            interval = self.settings.get_int("meter_value_sample_interval_s")
            due = next_periodic(tx.started_at, self._now(), interval) if interval > 0 else None
            if not await self._wait_until(due, "meter_value_sample_interval_s") or due is None:
                continue
            if conn.transaction is not tx:
                return
            reading = self.last_reading.get(conn.id)
            if reading is None or self._meter_failures[conn.id] >= self.timing.meter_failures_for_fault:
                continue  # no stale values while the meter is failing
            await self._record_sample(
                conn,
                tx,
                reading,
                due,
                ReadingContext.SAMPLE_PERIODIC,
                "meter_values_sampled_data",
                "stop_txn_sampled_data",
            )

    async def _record_sample(
        self,
        conn: Connector,
        tx: ActiveTransaction,
        reading: MeterReading,
        at: datetime,
        context: ReadingContext,
        sampled_key: str,
        stop_key: str,
    ) -> None:
        measurands = self.settings.measurands(sampled_key)
        stop_measurands = self.settings.measurands(stop_key)
        message = None
        if measurands:
            message = TransactionUpdated(
                tx.transaction_id, conn.id, (sample(reading, measurands, context, at),)
            )
        stop_data = sample(reading, stop_measurands, context, at) if stop_measurands else None
        if self._storage_faulted(conn):
            # The disk is full and the relay open, so no energy flows: the register at the open is on disk (on the
            # store's reserve), and samples wait for space rather than use that reserve up.
            log.info(
                "connector %s: sample at %s not recorded while the disk is full", conn.id, at.isoformat()
            )
            return
        if not await self._record_meter(
            conn, tx, round(reading.energy_wh), at, message=message, stop_data=stop_data
        ):
            return
        self._last_persist[conn.id] = asyncio.get_running_loop().time()
        if message is not None:
            self.csms.outbox_changed()

    async def _clock_aligned(self) -> None:
        """Clock-aligned samples at boundaries counted from midnight, stamped exactly on the boundary."""
        while True:
            interval = self.settings.get_int("clock_aligned_data_interval_s")
            due = next_aligned(self._now(), interval) if interval > 0 else None
            if not await self._wait_until(due, "clock_aligned_data_interval_s") or due is None:
                continue
            for cid, conn in self.connectors.items():
                reading = self.last_reading.get(cid)
                if reading is None or self._meter_failures[cid] >= self.timing.meter_failures_for_fault:
                    continue
                tx = conn.transaction
                if tx is not None:
                    await self._record_sample(
                        conn,
                        tx,
                        reading,
                        due,
                        ReadingContext.SAMPLE_CLOCK,
                        "meter_values_aligned_data",
                        "stop_txn_aligned_data",
                    )
                    continue
                measurands = self.settings.measurands("meter_values_aligned_data")
                if not measurands:
                    continue
                try:
                    self.store.queue(
                        MeterReadings(cid, (sample(reading, measurands, ReadingContext.SAMPLE_CLOCK, due),))
                    )
                except StorageError:
                    log.exception("could not queue clock-aligned values of connector %s", cid)
                    continue
                self.csms.outbox_changed()

    async def _wait_until(self, due: datetime | None, setting: str) -> bool:
        """Sleep until ``due`` (forever if None); False if ``setting`` changed first, so the caller recomputes."""
        changed = asyncio.Event()

        def listener(name: str) -> None:
            if name == setting:
                changed.set()

        self.settings.listeners.append(listener)
        try:
            delay = None if due is None else max(0.0, (due - self._now()).total_seconds())
            async with asyncio.timeout(delay):
                await changed.wait()
            return False
        except TimeoutError:
            return True
        finally:
            self.settings.listeners.remove(listener)

    def sample_now(self, cid: int) -> tuple[Sample | None, int | None]:
        """A triggered sample of a connector's sampled measurands and its transaction's local id."""
        reading = self.last_reading.get(cid)
        if reading is None:
            return None, None
        measurands = self.settings.measurands("meter_values_sampled_data")
        tx = self.connectors[cid].transaction
        return sample(reading, measurands, ReadingContext.TRIGGER, self._now()), (tx.local_id if tx else None)

    # answers from the CSMS about transactions
    async def transaction_confirmed(self, local_id: int, info: IdTagInfo, *, taken: bool) -> None:
        """The start of a transaction was answered: act on the idTag's status.

        ``taken`` is False when the answer was malformed but its status readable: a non-Accepted status is acted
        on all the same (the session must not charge on while the start is retried)."""
        for conn in self.connectors.values():
            tx = conn.transaction
            if tx is None or tx.local_id != local_id:
                continue
            if taken:
                self.notices.pop(conn.id, None)  # the CSMS takes this connector's transactions again
            tx.parent_id_tag = info.parent_id_tag or tx.parent_id_tag
            accepted = info.status is AuthStatus.ACCEPTED
            try:
                self.store.update_authorization(local_id, accepted, info.parent_id_tag)
            except StorageError:
                log.exception("could not record the authorization of transaction %s", local_id)
            if accepted:
                return
            tx.authorized = False
            log.warning("transaction %s: idTag %s is %s", local_id, tx.id_tag, info.status.name)
            async with self._locks[conn.id]:
                if conn.transaction is not tx:
                    return
                if self.settings.get_bool("stop_transaction_on_invalid_id"):
                    await self._stop_transaction(conn, StopReason.DEAUTHORIZED)
                elif self.settings.get_int("max_energy_on_invalid_id_wh") <= 0:
                    await self._open_relay(conn.id)
                    if conn.can("evse_suspend"):
                        conn.evse_suspend()
            return

    async def transaction_not_started(self, local_id: int, why: str) -> None:
        """The CSMS never took this transaction's StartTransaction (it is a dead letter): stop the session if it
        still runs (relay open) and tell the operator through the connector's status info.

        Its later messages (MeterValues, StopTransaction) follow it into the dead letters, never sent with an id
        the CSMS does not know (see OrphanedTransaction)."""
        log.error("transaction %s: StartTransaction was never accepted (%s); stopping it", local_id, why)
        cid: int | None = None
        for conn in self.connectors.values():
            tx = conn.transaction
            if tx is None or tx.local_id != local_id:
                continue
            cid = conn.id
            async with self._locks[conn.id]:
                if conn.transaction is tx:
                    await self._stop_transaction(conn, StopReason.DEAUTHORIZED)
        if cid is None:
            try:
                stored = self.store.transaction(local_id)
            except Exception:
                stored = None
            cid = stored.connector_id if stored is not None else None
        if cid in self.connectors:
            self.notices[cid] = f"transaction {local_id} not accepted by CSMS"[:50]
            self._notify(cid)

    # commands from the CSMS
    def remote_start(
        self,
        id_tag: str,
        connector_id: int | None,
        *,
        authorize_first: bool,
        tx_profile: ChargingProfile | None = None,
    ) -> bool:
        """Check a remote start; if accepted, carry it out in the background (``tx_profile`` becomes the new
        transaction's TxProfile). Returns the answer."""
        if not self.station_operative:
            return False
        if connector_id is None:
            candidates = [
                c
                for c in self.connectors.values()
                if c.state in (S.AVAILABLE, S.PREPARING)
                and c.transaction is None
                and c.pending_id_tag is None
            ]
            conn = next((c for c in candidates if c.plugged), candidates[0] if candidates else None)
        else:
            conn = self.connectors.get(connector_id)
        if conn is None or conn.transaction is not None or conn.state not in _READY_STATES:
            return False
        if tx_profile is not None:
            tx_profile = _on_connector(tx_profile, conn.id)
            if (
                tx_profile.purpose is not ProfilePurpose.TX
                or tx_profile.transaction_id is not None
                or problem(tx_profile, self._profile_rules()) is not None
            ):
                return False  # OCPP 1.6 §5.11: purpose TxProfile, transactionId not set
            self._remote_profiles[conn.id] = (id_tag, tx_profile)
        else:
            self._remote_profiles.pop(conn.id, None)
        self._spawn(self._remote_start(conn, id_tag, authorize_first), f"remote-start-{conn.id}")
        return True

    async def _remote_start(self, conn: Connector, id_tag: str, authorize_first: bool) -> None:
        parent = None
        if authorize_first:
            info = await self.authorizer.authorize(id_tag)
            if info.status is not AuthStatus.ACCEPTED:
                log.info("remote start for %s refused: %s", id_tag, info.status.name)
                self._remote_profiles.pop(conn.id, None)  # its TxProfile must not meet a later local start
                return
            parent = info.parent_id_tag
        await self._begin_when_plugged(conn, id_tag, parent)

    async def remote_stop(self, transaction_id: str) -> bool:
        """Stop the running transaction ``transaction_id``; False if there is none."""
        for conn in self.connectors.values():
            if conn.transaction is not None and conn.transaction.transaction_id == transaction_id:
                self._spawn(self._stop_locked(conn, StopReason.REMOTE), f"remote-stop-{conn.id}")
                return True
        return False

    async def _stop_locked(self, conn: Connector, reason: StopReason, id_tag: str | None = None) -> None:
        async with self._locks[conn.id]:
            if conn.transaction is not None:
                await self._stop_transaction(conn, reason, id_tag)

    async def stop_all(self, reason: StopReason) -> None:
        """End every running transaction with ``reason``; one connector's failure does not spare the others."""
        for conn in self.connectors.values():
            try:
                await self._stop_locked(conn, reason)
            except Exception:
                log.exception("connector %s: ending its transaction failed", conn.id)

    async def unlock(self, cid: int) -> UnlockResult:
        """Unlock a connector's cable; a running transaction ends first (OCPP 1.6 §5.18)."""
        conn = self.connectors[cid]
        if not self.unlock_supported:
            return UnlockResult.NOT_SUPPORTED
        await self._stop_locked(conn, StopReason.UNLOCK_COMMAND)
        return UnlockResult.UNLOCKED

    def change_availability(self, cid: int, operative: bool) -> AvailabilityResult:
        """Make a connector (0: the station) (in)operative; Scheduled while a transaction runs. Persisted."""
        targets = list(self.connectors.values()) if cid == 0 else [self.connectors[cid]]
        try:
            self.store.put(f"operative.{cid}", "1" if operative else "0")
            if cid == 0:
                for conn in targets:
                    self.store.put(f"operative.{conn.id}", "1" if operative else "0")
        except StorageError:
            log.exception("cannot persist availability")
            return AvailabilityResult.REJECTED
        if cid == 0 and self.station_operative != operative:
            self.station_operative = operative
            self._notify(0)
        scheduled = False
        for conn in targets:
            if conn.transaction is not None:
                conn.scheduled_operative = operative
                scheduled = True
                continue
            conn.operative = operative
            self._apply_scheduled_availability(conn)
        return AvailabilityResult.SCHEDULED if scheduled else AvailabilityResult.ACCEPTED

    def _apply_scheduled_availability(self, conn: Connector) -> None:
        if conn.transaction is not None:
            return
        if conn.scheduled_operative is not None:
            conn.operative, conn.scheduled_operative = conn.scheduled_operative, None
        if not conn.operative:
            conn.pending_id_tag = conn.pending_parent = None  # also while faulted: no session after recovery
        if not conn.operative and conn.state in (S.AVAILABLE, S.PREPARING, S.FINISHING):
            if conn.state is S.PREPARING:
                conn.abandon()  # OCPP 1.6 §4.9 has no Preparing -> Unavailable edge
            conn.disable()
        elif conn.operative and conn.state is S.UNAVAILABLE:
            conn.enable()
            if conn.plugged:
                conn.plug_in()

    def clear_cache(self) -> bool:
        """Empty the authorization cache."""
        try:
            self.store.cache_clear()
        except StorageError:
            log.exception("cannot clear the authorization cache")
            return False
        return True

    def update_local_list(
        self, version: int, full: bool, entries: dict[str, IdTagInfo | None]
    ) -> LocalListResult:
        """Apply a local-list update (full or differential, versioned)."""
        if not self.settings.get_bool("local_auth_list_enabled"):
            return LocalListResult.NOT_SUPPORTED
        if len(entries) > self.settings.get_int("send_local_list_max_length"):
            return LocalListResult.FAILED
        if not full and version <= self.store.local_list_version():
            return LocalListResult.VERSION_MISMATCH
        try:
            fits = self.store.local_list_update(
                version, full, entries, max_size=self.settings.get_int("local_auth_list_max_length")
            )
        except StorageError:
            log.exception("cannot store the local list")
            return LocalListResult.FAILED
        if not fits:
            log.warning("local list update refused: it would exceed LocalAuthListMaxLength")
            return LocalListResult.FAILED
        return LocalListResult.ACCEPTED

    def local_list_version(self) -> int:
        """The local list's version, -1 when the feature is off."""
        if not self.settings.get_bool("local_auth_list_enabled"):
            return -1
        # OCPP 1.6 §5.10: version 0 means the list is empty.
        return self.store.local_list_version() if self.store.local_list_size() else 0

    def request_reset(self, kind: ResetKind) -> None:
        """Ask the agent to restart; transactions end with SoftReset/HardReset first (done by the agent)."""
        if self.reset_requested is not None and not self.reset_requested.done():
            self.reset_requested.set_result(kind)

    def id_tag_info(self, id_tag: str, info: IdTagInfo) -> None:
        """The CSMS told us about an idTag in a transaction answer: update the cache."""
        self.authorizer.remember(id_tag, info)

    # smart charging (OCPP 1.6 §3.13)
    def _profile_rules(self) -> ProfileRules:
        return ProfileRules(
            max_stack_level=self.settings.get_int("charge_profile_max_stack_level"),
            max_periods=self.settings.get_int("charging_schedule_max_periods"),
            max_installed=self.settings.get_int("max_charging_profiles_installed"),
        )

    def _limits(self, cid: int) -> ConnectorLimits:
        if cid == 0:
            # The charge point as a whole (GetCompositeSchedule for connector 0): its maximum is the sum of the
            # connectors' power, expressed as amps at the first connector's voltage over the most phases any has,
            # so a mix of 1- and 3-phase connectors is not counted as all 3-phase.
            ports = list(self.ports.values())
            if not ports:
                return ConnectorLimits(0.0)
            voltage_v, phases = ports[0].voltage_v, max(p.phases for p in ports)
            total_w = sum(p.max_current_a * p.voltage_v * p.phases for p in ports)
            return ConnectorLimits(total_w / (voltage_v * phases), voltage_v, phases)
        p = self.ports[cid]
        return ConnectorLimits(p.max_current_a, p.voltage_v, p.phases)

    def _tx_start(self, cid: int) -> datetime | None:
        conn = self.connectors.get(cid)
        tx = conn.transaction if conn is not None else None
        return tx.started_at if tx is not None else None

    def current_limit_a(self, cid: int, at: datetime | None = None) -> float:
        """The current (A per phase) connector ``cid`` may offer now: its maximum under the profiles in force."""
        at = at or self._now()
        return limit_a(
            self.profiles,
            cid,
            at,
            self._limits(cid),
            tx_start=self._tx_start(cid),
            cp_share=self._cp_share(cid),
        )

    def _cp_share(self, cid: int) -> int:
        """How many connectors share the ChargePointMaxProfile with ``cid`` (OCPP 1.6 §3.13.1): ``cid`` and every
        other one in a transaction or with its relay closed (a stuck relay still draws)."""
        if cid == 0:
            return 1
        return 1 + sum(
            1
            for other, conn in self.connectors.items()
            if other != cid and (conn.transaction is not None or self.ports[other].relay.closed)
        )

    def set_charging_profile(self, cid: int, profile: ChargingProfile) -> ProfileResult:
        """Install a profile on connector ``cid`` (0: the charge point), replacing the ones it supersedes."""
        profile = _on_connector(profile, cid)
        why = problem(profile, self._profile_rules())
        if why is None and cid != 0 and cid not in self.connectors:
            why = f"no connector {cid}"
        if why is None and profile.purpose is ProfilePurpose.TX:
            tx = self.connectors[cid].transaction
            if tx is None:
                why = "a TxProfile needs a transaction on its connector"  # OCPP 1.6 §3.13.1
            elif profile.transaction_id is not None and profile.transaction_id != tx.transaction_id:
                why = f"transaction {profile.transaction_id} is not running on connector {cid}"
            else:
                profile = _with_transaction(profile, tx.transaction_id)
        if why is None:
            replaced = replaced_by(profile, self.profiles)
            if len(self.profiles) - len(replaced) >= self._profile_rules().max_installed:
                why = "MaxChargingProfilesInstalled reached"
        if why is not None:
            log.info("charging profile %s rejected: %s", profile.id, why)
            return ProfileResult.REJECTED
        if not self._install(profile):
            return ProfileResult.REJECTED
        return ProfileResult.ACCEPTED

    def _install(self, profile: ChargingProfile) -> bool:
        replaced = replaced_by(profile, self.profiles)
        try:
            self.store.install_charging_profile(profile, replaced)
        except StorageError:
            log.exception("cannot store charging profile %s", profile.id)
            return False
        self.profiles = [p for p in self.profiles if p.id not in replaced] + [profile]
        self._apply_limits()
        return True

    def clear_charging_profiles(
        self,
        profile_id: int | None = None,
        cid: int | None = None,
        purpose: ProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> ClearResult:
        """Remove the profiles the criteria select; UNKNOWN if none does."""
        ids = [p.id for p in self.profiles if matches_clear(p, profile_id, cid, purpose, stack_level)]
        if not ids:
            return ClearResult.UNKNOWN
        try:
            self.store.delete_charging_profiles(ids)
        except StorageError:
            log.exception("cannot remove charging profiles %s", ids)
            return ClearResult.UNKNOWN
        self.profiles = [p for p in self.profiles if p.id not in ids]
        self._apply_limits()
        return ClearResult.ACCEPTED

    def _drop_tx_profiles(self, cids: list[int]) -> None:
        ids = [p.id for p in self.profiles if p.purpose is ProfilePurpose.TX and p.connector_id in cids]
        if ids:
            with contextlib.suppress(StorageError):
                self.store.delete_charging_profiles(ids)
            self.profiles = [p for p in self.profiles if p.id not in ids]
        self._apply_limits()

    def composite_schedule(
        self, cid: int, duration_s: int, unit: RateUnit | None
    ) -> CompositeSchedule | None:
        """The limits of ``cid`` (0: the charge point) from now for ``duration_s``; None for an unknown one."""
        if (cid != 0 and cid not in self.connectors) or not 0 <= duration_s <= MAX_SECONDS:
            return None
        now = self._now()
        # Without a transaction, relative schedules are shown as if one started now.
        return composite(
            self.profiles,
            cid,
            now,
            duration_s,
            unit or RateUnit.AMPERE,
            self._limits(cid),
            tx_start=self._tx_start(cid) or now,
            cp_share=self._cp_share(cid),
        )

    def _apply_limits(self) -> None:
        """Offer each closed connector its current limit now, and arm a timer for the next boundary of any
        profile; called again whenever profiles or transactions change (a timer, not a poll)."""
        if self._limit_timer is not None:
            self._limit_timer.cancel()
            self._limit_timer = None
        if self.stopping:
            return
        now = self._now()
        due: datetime | None = None
        for cid, conn in self.connectors.items():
            if self.ports[cid].relay.closed and conn.plugged:
                try:
                    self.ports[cid].plug.offer_current(self.current_limit_a(cid, now))
                except Exception:
                    log.exception("connector %s: changing the current offer failed", cid)
            edge = next_change(self.profiles, now, tx_start=self._tx_start(cid))
            if edge is not None and (due is None or edge < due):
                due = edge
        if due is not None:
            # The boundary is a wall-clock time and the timer runs on the monotonic clock: re-check at least every
            # LIMIT_RECHECK_S, so that a clock correction (NTP at boot, SetClock) moves a period change by no more.
            delay = min(LIMIT_RECHECK_S, max(0.0, (due - self._now()).total_seconds()))
            self._limit_timer = asyncio.get_running_loop().call_later(delay, self._apply_limits)


def _on_connector(profile: ChargingProfile, cid: int) -> ChargingProfile:
    return dataclasses.replace(profile, connector_id=cid)


def _with_transaction(profile: ChargingProfile, transaction_id: str) -> ChargingProfile:
    return dataclasses.replace(profile, transaction_id=transaction_id)
