"""Sessions and transactions block (OCPP 1.6 §3.6, §4.3, §4.8, §5.11, §5.12): plug and card events, starting and
stopping transactions (the relay opens first, the record is durable before the relay closes), remote start and
stop, unlock, and the CSMS's answers about a transaction's start."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargepoint.core.blocks.authorization import Authorization
from chargepoint.core.blocks.availability import Availability
from chargepoint.core.blocks.context import (
    MAX_STOP_DATA,
    STORAGE_FAULT,
    FunctionalBlock,
    StationContext,
    log_crash,
)
from chargepoint.core.blocks.faults import Faults
from chargepoint.core.blocks.metering import Metering
from chargepoint.core.blocks.reservations import Reservations
from chargepoint.core.blocks.smart_charging import SmartCharging
from chargepoint.core.connector import ActiveTransaction, Connector
from chargepoint.core.events import TransactionEnded, TransactionStarted, TransactionUpdated
from chargepoint.core.model import (
    AuthStatus,
    ConnectorState,
    ErrorCode,
    IdTagInfo,
    Sample,
    StopReason,
    TxUpdateTrigger,
    UnlockResult,
)
from chargepoint.core.smart_charging import ChargingProfile
from chargepoint.errors import HardwareError, StorageError
from chargepoint.ports import IdGenerator

log = logging.getLogger(__name__)

S = ConnectorState
REREAD_GRACE_S = 1.0  # a transaction's own card seen this soon after its reader (re)appeared is a re-read
MAX_ID_TAG_LENGTH = 20  # the shortest idTag any supported OCPP version takes (1.6 CiString20Type)
# Where a new authorization may start a session (on a Reserved connector: only the reservation's, §5.13).
_READY_STATES = (S.AVAILABLE, S.PREPARING, S.FINISHING, S.RESERVED)
# TxStopPoint members under which the end of the authorization ends the transaction (OCPP 2.0.1 §E intro:
# PowerPathClosed ends when either the EV or the authorization goes; EVConnected alone waits for the cable).
_ENDS_ON_DEAUTHORIZE = frozenset({"Authorized", "PowerPathClosed"})


@dataclass(frozen=True, slots=True)
class RemoteStartInfo:
    """What a remote start said beyond its idTag, kept until its transaction starts (then in its Started event)."""

    id_tag: str
    token_type: str | None
    remote_start_id: int | None


def charging_state(conn: Connector) -> ConnectorState:
    """The connector's state as a transaction reports it: Preparing without a cable is a transaction that waits
    for the EV (started on authorization), which is Available (2.0.1 Idle) to the EV, not connected."""
    if conn.state is S.PREPARING and not conn.plugged:
        return S.AVAILABLE
    return conn.state


class Sessions(FunctionalBlock):
    """Who charges where: sessions from authorization to the end of their transaction."""

    def __init__(
        self,
        ctx: StationContext,
        *,
        faults: Faults,
        metering: Metering,
        smart_charging: SmartCharging,
        availability: Availability,
        authorization: Authorization,
        reservations: Reservations,
        transaction_ids: IdGenerator,
        unlock_supported: bool,
    ) -> None:
        self.ctx = ctx
        self.faults = faults
        self.metering = metering
        self.smart_charging = smart_charging
        self.availability = availability
        self.authorization = authorization
        self.reservations = reservations
        # Transaction ids: strings unique across restarts, made outside the core (OCPP 2.0.1 E01: station-made).
        self.transaction_ids = transaction_ids
        self.unlock_supported = unlock_supported
        self._reader_ready_at: dict[int, datetime] = {}
        self._timeouts: dict[int, asyncio.Task[Any]] = {}
        self._remote: dict[int, RemoteStartInfo] = {}  # per connector, until its transaction starts
        # The charging state each running transaction last told (an Updated event goes out when it changes).
        self._told_state: dict[int, ConnectorState] = {}
        ctx.listeners.append(self._connector_changed)

    def _points(self, setting: str) -> frozenset[str]:
        """TxStartPoint or TxStopPoint members (validated when set: ``settings.TX_POINTS``)."""
        return frozenset(self.ctx.settings.text(setting).split(","))

    def _connector_changed(self, cid: int) -> None:
        """A running transaction tells each change of its connector's charging state (OCPP 2.0.1 E: Updated with
        triggerReason ChargingStateChanged); queued like its samples, so it survives offline and a crash."""
        conn = self.ctx.connectors.get(cid)
        tx = conn.transaction if conn is not None else None
        if conn is None or tx is None:
            self._told_state.pop(cid, None)
            return
        if not self.ctx.csms.reports_charging_state:
            return  # 1.6 only: StatusNotification tells it; an outbox row per change would be wasted
        if self._told_state.get(cid) is not charging_state(conn):
            self._queue_update(conn, tx, TxUpdateTrigger.CHARGING_STATE)

    def _queue_update(
        self, conn: Connector, tx: ActiveTransaction, trigger: TxUpdateTrigger, id_tag: str | None = None
    ) -> None:
        """Queue an Updated event about the transaction's state or authorization (no readings)."""
        state = charging_state(conn)
        self._told_state[conn.id] = state
        ctx = self.ctx
        now = ctx.now()
        update = TransactionUpdated(
            tx.transaction_id,
            conn.id,
            (),
            offline=not ctx.csms.online,
            trigger=trigger,
            charging_state=state,
            id_tag=id_tag,
            timestamp=now,
        )
        try:
            ctx.store.record_meter(tx.local_id, self.metering.current_energy_wh(conn.id), now, message=update)
        except StorageError:
            log.exception("transaction %s: its %s update was not queued", tx.local_id, trigger.value)
            return
        ctx.csms.outbox_changed()

    async def start(self) -> None:
        """Watch every plug and reader."""
        for cid, conn in self.ctx.connectors.items():
            if conn.state is S.AVAILABLE and conn.plugged:
                conn.plug_in()
            self.ctx.supervise(self._watch_plug, cid, "plug")
            if self.ctx.ports[cid].reader is not None:
                self.ctx.supervise(self._watch_reader, cid, "reader")

    def halt(self) -> list[asyncio.Task[Any]]:
        """The ConnectionTimeOut timers."""
        return list(self._timeouts.values())

    # hardware loops
    async def _watch_plug(self, cid: int) -> None:
        async for plugged in self.ctx.ports[cid].plug.changes():
            await self.on_plug(cid, plugged)

    async def _watch_reader(self, cid: int) -> None:
        reader = self.ctx.ports[cid].reader
        assert reader is not None
        while True:
            try:
                async for id_tag in reader.tokens():
                    if ErrorCode.READER_FAILURE in self.ctx.connectors[cid].faults:
                        await self.faults.clear_fault(cid, ErrorCode.READER_FAILURE)
                    if id_tag is None:  # None only says the reader is (back) in working order
                        self._reader_ready_at[cid] = self.ctx.now()
                    else:
                        self.ctx.spawn(self.on_token(cid, id_tag), f"token-{cid}")
            except HardwareError as exc:
                if ErrorCode.READER_FAILURE not in self.ctx.connectors[cid].faults:
                    await self.ctx.raise_fault(cid, ErrorCode.READER_FAILURE, str(exc))
            await asyncio.sleep(self.ctx.timing.meter_poll_s)

    async def on_plug(self, cid: int, plugged: bool) -> None:
        """The EV was plugged in or out."""
        conn = self.ctx.connectors[cid]
        conn.plugged = plugged
        if conn.state is S.PREPARING:
            self.ctx.notify(
                cid
            )  # an authorized connector becomes Occupied with the cable (2.0.1), not before
        if not plugged:
            # Safety first: no EV, no power; this does not wait for a session change in progress.
            await self.ctx.open_relay(cid)
        async with self.ctx.locks[cid]:
            stop_on_unplug = self.ctx.settings.get_bool("stop_transaction_on_ev_side_disconnect")
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
                if tx is not None and conn.state is S.PREPARING:
                    # The cable for a transaction that started on authorization (TxStartPoint Authorized, E04).
                    self._cancel_timeout(cid)
                    self._queue_update(conn, tx, TxUpdateTrigger.CABLE_PLUGGED)
                    if (
                        tx.id_tag
                        and tx.authorized
                        and await self.faults.close_relay(cid)
                        and conn.can("start_charging")
                    ):
                        conn.start_charging()
                    return
                if tx is not None:
                    # The EV came back while the transaction stayed open (StopTransactionOnEVSideDisconnect off).
                    if (
                        tx.authorized
                        and conn.state in (S.SUSPENDED_EV, S.SUSPENDED_EVSE)
                        and await self.faults.close_relay(cid)
                        and conn.state is S.SUSPENDED_EVSE
                    ):
                        conn.evse_resume()
                    return
                if conn.pending_id_tag is not None:
                    await self._start_transaction(conn, conn.pending_id_tag, conn.pending_parent)
                elif conn.can("plug_in"):
                    conn.plug_in()
                    if (
                        "EVConnected" in self._points("tx_start_point")
                        and self.ctx.station_operative
                        and self.ctx.sessions_held is None
                    ):
                        # TxStartPoint EVConnected (E09): the cable starts it; a card authorizes it later.
                        await self._start_transaction(conn, "", None)
                return
            # unplugged
            tx = conn.transaction
            if tx is not None:
                # A transaction nobody authorized (started by the cable) or whose authorization ended under
                # TxStopPoint EVConnected has nothing to suspend for: it ends with the cable.
                if stop_on_unplug or tx.ends_on_unplug or not tx.id_tag:
                    await self._stop_transaction(conn, StopReason.EV_DISCONNECTED)
                else:
                    await self.ctx.open_relay(cid)
                    if conn.state is S.CHARGING:
                        conn.ev_suspend()
                return
            if conn.state in (S.PREPARING, S.FINISHING) and conn.pending_id_tag is None:
                conn.cable_gone()
                self.availability.apply_scheduled(conn)

    async def on_token(self, cid: int, id_tag: str) -> None:
        """A card was presented at a connector's reader."""
        if not 0 < len(id_tag) <= MAX_ID_TAG_LENGTH:
            log.warning("card %r ignored: an idTag has 1 to %s characters", id_tag, MAX_ID_TAG_LENGTH)
            return
        conn = self.ctx.connectors[cid]
        tx = conn.transaction
        if tx is not None and not tx.id_tag:
            await self._authorize_running(conn, tx, id_tag)
            return
        if tx is not None and tx.ends_on_unplug:
            log.info(
                "card %s: transaction %s already deauthorized; it ends with the cable", id_tag, tx.local_id
            )
            return
        if tx is not None:
            if id_tag == tx.id_tag:
                ready_at = self._reader_ready_at.get(cid)
                if (
                    ready_at is not None
                    and tx.started_at < ready_at
                    and (self.ctx.now() - ready_at).total_seconds() < REREAD_GRACE_S
                ):
                    # A card left on the reader is read again when the reader comes back (USB glitch, pcscd
                    # restart, agent restart with a resumed session): that is not the driver asking to stop.
                    log.info("card %s re-read as the reader came back; not a stop request", id_tag)
                    return
                async with self.ctx.locks[conn.id]:
                    if conn.transaction is tx:
                        await self._end_authorization(conn, StopReason.LOCAL, id_tag)
                return
            # A different card stops the session only if it shares the parent id (OCPP 1.6 §3.5.3); without a
            # parent id on the transaction no other card can, so nothing is asked.
            if tx.parent_id_tag is None:
                log.info("card %s cannot stop transaction of %s on connector %s", id_tag, tx.id_tag, cid)
                return
            info = await self.authorization.authorizer.authorize(id_tag)
            if (
                info.status is AuthStatus.ACCEPTED
                and tx.parent_id_tag is not None
                and info.parent_id_tag == tx.parent_id_tag
            ):
                async with self.ctx.locks[conn.id]:
                    if conn.transaction is tx:
                        await self._end_authorization(conn, StopReason.LOCAL, id_tag)
            else:
                log.info("card %s cannot stop transaction of %s on connector %s", id_tag, tx.id_tag, cid)
            return
        if conn.state not in _READY_STATES or not self.ctx.station_operative:
            log.info("card %s ignored: connector %s is %s", id_tag, cid, conn.state.name)
            return
        if not self.reservations.claim(cid, id_tag, None).allowed and not self.reservations.parent_may_admit(
            cid
        ):
            # Reserved for another idTag and no parent could match: refused without an Authorize (§5.13).
            log.info("card %s refused: connector %s is reserved", id_tag, cid)
            return
        info = await self.authorization.authorizer.authorize(id_tag)
        if info.status is not AuthStatus.ACCEPTED:
            log.info("card %s refused: %s", id_tag, info.status.name)
            return
        if not self.reservations.claim(cid, id_tag, info.parent_id_tag).allowed:
            log.info("card %s refused: connector %s is reserved for another idTag", id_tag, cid)
            return
        await self._begin_when_plugged(conn, id_tag, info.parent_id_tag)

    async def _authorize_running(self, conn: Connector, tx: ActiveTransaction, id_tag: str) -> None:
        """A card for a transaction the cable started (TxStartPoint EVConnected): once accepted it is the
        transaction's idTag, told in an Updated event (triggerReason Authorized), and the relay closes."""
        info = await self.authorization.authorizer.authorize(id_tag)
        if info.status is not AuthStatus.ACCEPTED:
            log.info("card %s refused for transaction %s: %s", id_tag, tx.local_id, info.status.name)
            return
        async with self.ctx.locks[conn.id]:
            if conn.transaction is not tx or tx.id_tag:
                return
            tx.id_tag, tx.parent_id_tag, tx.authorized = id_tag, info.parent_id_tag, True
            try:
                self.ctx.store.update_authorization(tx.local_id, True, info.parent_id_tag, id_tag=id_tag)
            except StorageError:
                log.exception("could not record the idTag of transaction %s", tx.local_id)
            self._queue_update(conn, tx, TxUpdateTrigger.AUTHORIZED, id_tag)
            if conn.plugged and await self.faults.close_relay(conn.id) and conn.can("start_charging"):
                conn.start_charging()
            self.smart_charging.transaction_started(conn.id, id_tag)

    async def _end_authorization(
        self, conn: Connector, reason: StopReason, id_tag: str | None = None
    ) -> None:
        """The driver (LOCAL) or the CSMS (REMOTE) ends the authorization (caller holds the lock): the transaction
        ends now, unless TxStopPoint waits for the cable alone; then the relay opens and it ends on unplug."""
        tx = conn.transaction
        assert tx is not None
        if self._points("tx_stop_point") & _ENDS_ON_DEAUTHORIZE or not conn.plugged:
            await self._stop_transaction(conn, reason, id_tag)
            return
        await self.ctx.open_relay(conn.id)
        tx.authorized, tx.ends_on_unplug = False, True
        trigger = (
            TxUpdateTrigger.REMOTE_STOP if reason is StopReason.REMOTE else TxUpdateTrigger.STOP_AUTHORIZED
        )
        self._queue_update(conn, tx, trigger, id_tag)
        if conn.can("evse_suspend"):
            conn.evse_suspend()

    def _cancel_timeout(self, cid: int) -> None:
        timeout = self._timeouts.pop(cid, None)
        if timeout is not None:
            timeout.cancel()

    async def _begin_when_plugged(self, conn: Connector, id_tag: str, parent: str | None) -> None:
        async with self.ctx.locks[conn.id]:
            if conn.transaction is not None or conn.state not in _READY_STATES or self.ctx.stopping:
                return
            if self.ctx.sessions_held is not None:
                log.info("card %s ignored on connector %s: %s", id_tag, conn.id, self.ctx.sessions_held)
                return
            if conn.plugged:
                await self._start_transaction(conn, id_tag, parent)
                return
            if "Authorized" in self._points("tx_start_point"):
                # TxStartPoint Authorized (E10, E13): the transaction starts now; the relay waits for the cable,
                # which must come within EVConnectionTimeOut.
                await self._start_transaction(conn, id_tag, parent, cable_required=False)
                if conn.transaction is not None:
                    self._arm_connection_timeout(conn)
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
        task.add_done_callback(log_crash)
        self._timeouts[conn.id] = task

    async def _connection_timeout(self, conn: Connector) -> None:
        await asyncio.sleep(self.ctx.settings.get_int("connection_timeout_s"))
        async with self.ctx.locks[conn.id]:
            self._timeouts.pop(conn.id, None)
            if conn.transaction is not None and conn.state is S.PREPARING and not conn.plugged:
                # Started on authorization, and the cable never came (E05: stoppedReason Timeout).
                log.info("connector %s: no cable within EVConnectionTimeOut; transaction ended", conn.id)
                await self._stop_transaction(conn, StopReason.EV_CONNECT_TIMEOUT)
                return
            if conn.transaction is None and conn.pending_id_tag is not None and not conn.plugged:
                log.info("connector %s: no cable within ConnectionTimeOut; authorization dropped", conn.id)
                conn.pending_id_tag = conn.pending_parent = None
                self._remote.pop(conn.id, None)
                self.smart_charging.forget_remote_profile(conn.id)  # a remote start's TxProfile goes with it
                if conn.state is S.PREPARING:
                    conn.abandon()

    async def _start_transaction(
        self, conn: Connector, id_tag: str, parent: str | None, *, cable_required: bool = True
    ) -> None:
        """Start a transaction (caller holds the lock) on a plugged, authorized connector; on a plugged one that
        nobody authorized yet (``id_tag`` "": TxStartPoint EVConnected), or on an authorized one without a cable
        (``cable_required`` False: TxStartPoint Authorized). The relay closes only with both."""
        ctx = self.ctx
        conn.pending_id_tag = conn.pending_parent = None
        self._cancel_timeout(conn.id)
        if conn.state in (S.AVAILABLE, S.FINISHING, S.RESERVED):
            conn.identified()
        reading = await self.metering.read_meter(conn.id)
        if conn.state is S.FAULTED or ctx.stopping:
            return
        if not conn.plugged and cable_required:  # the cable went while the meter was read
            if conn.state is S.PREPARING:
                conn.abandon()
            return
        if reading is None and conn.id not in ctx.last_reading:
            # No register was ever read: a transaction needs a true meterStart, so none starts.
            log.error("connector %s: no meter reading yet; not starting a transaction", conn.id)
            return
        meter_start = round(reading.energy_wh) if reading else self.metering.current_energy_wh(conn.id)
        now = ctx.now()
        transaction_id = self.transaction_ids()
        remote = self._remote.pop(conn.id, None)
        if remote is not None and remote.id_tag != id_tag:
            remote = None  # another driver's card won the connector: not the remote start's transaction
        reservation = self.reservations.claim(
            conn.id, id_tag, parent
        ).reservation  # ended in the start's commit
        reservation_id = reservation.reservation_id if reservation is not None else None
        mark = ctx.store.mark()
        try:
            local_id = ctx.store.begin_transaction(
                TransactionStarted(
                    transaction_id,
                    conn.id,
                    id_tag,
                    meter_start,
                    now,
                    reservation_id,
                    offline=not ctx.csms.online,
                    token_type=remote.token_type if remote is not None else None,
                    remote_start_id=remote.remote_start_id if remote is not None else None,
                    charging_state=charging_state(conn),
                    phases=ctx.ports[conn.id].phases,
                ),
                parent,
            )
            # The transaction is on disk before the relay closes (the commit is awaited off the event loop).
            await ctx.store.flush(since=mark)
        except StorageError as exc:
            # Without a durable record there is no transaction: refuse rather than charge unrecorded.
            log.error("cannot record a transaction on connector %s: %s", conn.id, exc)
            await ctx.raise_fault(conn.id, ErrorCode.INTERNAL_ERROR, STORAGE_FAULT)
            return
        conn.transaction = ActiveTransaction(
            local_id, transaction_id, id_tag, parent, now, meter_start, authorized=bool(id_tag)
        )
        self._told_state[conn.id] = charging_state(conn)
        self.metering.transaction_recorded(conn.id, meter_start)
        if reservation_id is not None:
            self.reservations.used(reservation_id)
        if id_tag:
            self.smart_charging.transaction_started(conn.id, id_tag)
        ctx.csms.outbox_changed()
        if id_tag and conn.plugged and await self.faults.close_relay(conn.id) and conn.can("start_charging"):
            conn.start_charging()
        self.metering.start_sampling(conn)

    async def _stop_transaction(self, conn: Connector, reason: StopReason, id_tag: str | None = None) -> None:
        """End the running transaction (caller holds the lock): relay first, then the durable record.

        Nothing after the relay opened may leave the transaction open: a failing meter, clock or store only makes
        the record less complete (a best-effort time, the last good register), and a record the store refuses
        is kept in memory until it can be written (``Faults.record_stop``)."""
        ctx = self.ctx
        tx = conn.transaction
        assert tx is not None
        await ctx.open_relay(conn.id)
        self.metering.stop_sampling(conn.id)
        if conn.state is not S.FAULTED:
            try:
                await self.metering.read_meter(conn.id)
            except Exception:
                log.exception("connector %s: the final meter read failed; using the last good one", conn.id)
        # Never before the start: a CSMS that set the clock back mid-session must not make the session negative.
        now = max(ctx.now(), tx.started_at)
        meter_stop = max(self.metering.current_energy_wh(conn.id), tx.meter_start_wh)
        data: tuple[Sample, ...] = ()
        try:
            end_values = self.metering.end_values(conn.id, now)
            await ctx.store.flush()  # the stop data queued so far, without blocking the loop on the read
            stored = ctx.store.transaction(tx.local_id)
            data = (stored.stop_data if stored else ()) + ((end_values,) if end_values else ())
        except Exception:
            log.exception("transaction %s: no transaction data for its stop", tx.local_id)
        ended = TransactionEnded(
            tx.transaction_id,
            conn.id,
            meter_stop,
            now,
            reason,
            id_tag,
            data[-MAX_STOP_DATA:],
            offline=not ctx.csms.online,
        )
        await self.faults.record_stop(conn.id, (tx.local_id, ended))
        conn.transaction = None
        self._told_state.pop(conn.id, None)
        self._cancel_timeout(conn.id)
        try:
            self.smart_charging.drop_tx_profiles([conn.id])
        except Exception:
            log.exception("connector %s: dropping the TxProfiles failed", conn.id)
        ctx.csms.outbox_changed()
        if conn.state is S.FAULTED:
            conn.state_before_fault = S.FINISHING if conn.plugged else S.AVAILABLE
        elif conn.plugged:
            conn.finish()
        else:
            conn.cable_gone()
        self.availability.apply_scheduled(conn)

    # answers from the CSMS about transactions
    async def transaction_confirmed(self, local_id: int, info: IdTagInfo, *, taken: bool) -> None:
        """The start of a transaction was answered: act on the idTag's status.

        ``taken`` is False when the answer was malformed but its status readable: a non-Accepted status is acted
        on all the same (the session must not charge on while the start is retried)."""
        ctx = self.ctx
        for conn in ctx.connectors.values():
            tx = conn.transaction
            if tx is None or tx.local_id != local_id:
                continue
            if taken:
                ctx.notices.pop(conn.id, None)  # the CSMS takes this connector's transactions again
            tx.parent_id_tag = info.parent_id_tag or tx.parent_id_tag
            accepted = info.status is AuthStatus.ACCEPTED
            try:
                ctx.store.update_authorization(local_id, accepted, info.parent_id_tag)
            except StorageError:
                log.exception("could not record the authorization of transaction %s", local_id)
            if accepted:
                return
            tx.authorized = False
            log.warning("transaction %s: idTag %s is %s", local_id, tx.id_tag, info.status.name)
            async with ctx.locks[conn.id]:
                if conn.transaction is not tx:
                    return
                if ctx.settings.get_bool("stop_transaction_on_invalid_id"):
                    await self._stop_transaction(conn, StopReason.DEAUTHORIZED)
                elif ctx.settings.get_int("max_energy_on_invalid_id_wh") <= 0:
                    await ctx.open_relay(conn.id)
                    if conn.can("evse_suspend"):
                        conn.evse_suspend()
            return

    async def transaction_not_started(self, local_id: int, why: str) -> None:
        """The CSMS never took this transaction's StartTransaction (it is a dead letter): stop the session if it
        still runs (relay open) and tell the operator through the connector's status info.

        Its later messages (MeterValues, StopTransaction) follow it into the dead letters, never sent with an id
        the CSMS does not know (see OrphanedTransaction)."""
        ctx = self.ctx
        log.error("transaction %s: StartTransaction was never accepted (%s); stopping it", local_id, why)
        cid: int | None = None
        for conn in ctx.connectors.values():
            tx = conn.transaction
            if tx is None or tx.local_id != local_id:
                continue
            cid = conn.id
            async with ctx.locks[conn.id]:
                if conn.transaction is tx:
                    await self._stop_transaction(conn, StopReason.DEAUTHORIZED)
        if cid is None:
            try:
                stored = ctx.store.transaction(local_id)
            except Exception:
                stored = None
            cid = stored.connector_id if stored is not None else None
        if cid in ctx.connectors:
            ctx.notices[cid] = f"transaction {local_id} not accepted by CSMS"[:50]
            ctx.notify(cid)

    # commands from the CSMS
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
        """Check a remote start; if accepted, carry it out in the background (``tx_profile`` becomes the new
        transaction's TxProfile; ``token_type`` and ``remote_start_id`` go into its Started event). Returns the
        answer."""
        if not self.ctx.station_operative:
            return False
        if connector_id is None:
            candidates = [
                c
                for c in self.ctx.connectors.values()
                if c.state in (S.AVAILABLE, S.PREPARING, S.RESERVED)
                and c.transaction is None
                and c.pending_id_tag is None
                and self.reservations.claim(c.id, id_tag, None).allowed
            ]
            # The connector reserved for this idTag first, then one with a cable, then any.
            candidates.sort(
                key=lambda c: (self.reservations.claim(c.id, id_tag, None).reservation is None, not c.plugged)
            )
            conn = candidates[0] if candidates else None
        else:
            conn = self.ctx.connectors.get(connector_id)
        if conn is None or conn.transaction is not None or conn.state not in _READY_STATES:
            return False
        if not self.reservations.claim(conn.id, id_tag, None).allowed:
            if not self.reservations.parent_may_admit(conn.id):
                return False  # reserved for another idTag (OCPP 1.6 §5.13)
            authorize_first = True  # only the idTag's parent, learnt by authorizing it, can match
        if not self.smart_charging.hold_remote_profile(conn.id, id_tag, tx_profile):
            return False
        self._remote[conn.id] = RemoteStartInfo(id_tag, token_type, remote_start_id)
        self.ctx.spawn(self._remote_start(conn, id_tag, authorize_first), f"remote-start-{conn.id}")
        return True

    async def _remote_start(self, conn: Connector, id_tag: str, authorize_first: bool) -> None:
        parent = None
        if authorize_first:
            info = await self.authorization.authorizer.authorize(id_tag)
            if info.status is not AuthStatus.ACCEPTED:
                log.info("remote start for %s refused: %s", id_tag, info.status.name)
                self._remote.pop(conn.id, None)
                self.smart_charging.forget_remote_profile(conn.id)  # must not meet a later local start
                return
            parent = info.parent_id_tag
            if not self.reservations.claim(conn.id, id_tag, parent).allowed:
                log.info("remote start for %s refused: connector %s is reserved", id_tag, conn.id)
                self._remote.pop(conn.id, None)
                self.smart_charging.forget_remote_profile(conn.id)
                return
        await self._begin_when_plugged(conn, id_tag, parent)

    async def remote_stop(self, transaction_id: str) -> bool:
        """Stop the running transaction ``transaction_id``; False if there is none."""
        for conn in self.ctx.connectors.values():
            if conn.transaction is not None and conn.transaction.transaction_id == transaction_id:
                self.ctx.spawn(self._remote_stop(conn), f"remote-stop-{conn.id}")
                return True
        return False

    async def _remote_stop(self, conn: Connector) -> None:
        async with self.ctx.locks[conn.id]:
            tx = conn.transaction
            if tx is not None and not tx.ends_on_unplug:
                await self._end_authorization(conn, StopReason.REMOTE)

    async def stop_locked(self, conn: Connector, reason: StopReason, id_tag: str | None = None) -> None:
        """End ``conn``'s transaction, if one runs, under its lock."""
        async with self.ctx.locks[conn.id]:
            if conn.transaction is not None:
                await self._stop_transaction(conn, reason, id_tag)

    async def stop_all(self, reason: StopReason) -> None:
        """End every running transaction with ``reason``; one connector's failure does not spare the others."""
        for conn in self.ctx.connectors.values():
            try:
                await self.stop_locked(conn, reason)
            except Exception:
                log.exception("connector %s: ending its transaction failed", conn.id)

    async def unlock(self, cid: int) -> UnlockResult:
        """Unlock a connector's cable; a running transaction ends first (OCPP 1.6 §5.18)."""
        conn = self.ctx.connectors[cid]
        if not self.unlock_supported:
            return UnlockResult.NOT_SUPPORTED
        await self.stop_locked(conn, StopReason.UNLOCK_COMMAND)
        return UnlockResult.UNLOCKED
