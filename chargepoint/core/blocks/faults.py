"""Faults block: clearing faults and restoring the connector, closing and checking relays, and records that the
store refused (kept in memory, the connector faulted, until a storage probe finds the store writable again)."""

from __future__ import annotations

import logging

from chargepoint.core.blocks.context import STORAGE_FAULT, FunctionalBlock, StationContext
from chargepoint.core.blocks.smart_charging import SmartCharging
from chargepoint.core.connector import Connector
from chargepoint.core.events import TransactionEnded
from chargepoint.core.model import ConnectorState, ErrorCode
from chargepoint.errors import HardwareError

log = logging.getLogger(__name__)

S = ConnectorState


class Faults(FunctionalBlock):
    """Faults and the relay's health: a fault opens the relay (``StationContext.raise_fault``); this block clears
    them, closes relays only where that is safe, and watches for relays and storage that misbehave."""

    __slots__ = ("ctx", "smart_charging", "unsaved_stops")

    def __init__(self, ctx: StationContext, smart_charging: SmartCharging) -> None:
        self.ctx = ctx
        self.smart_charging = smart_charging
        self.unsaved_stops: dict[int, tuple[int, TransactionEnded]] = {}

    async def close_relay(self, cid: int) -> bool:
        """Close the relay if it may be closed; True if it is closed and stays so."""
        ctx = self.ctx
        conn = ctx.connectors[cid]
        if ctx.stopping or conn.critically_faulted or not conn.plugged:
            return False
        generation = ctx.open_generation(cid)
        try:
            await ctx.ports[cid].relay.close()
        except HardwareError as exc:
            log.error("relay %s did not close: %s", cid, exc)
            await ctx.open_relay(cid)
            ctx.add_fault(cid, ErrorCode.POWER_SWITCH_FAILURE, str(exc))
            return False
        # An open requested while the contactor was closing (fault, unplug, stop) wins.
        if (
            ctx.open_generation(cid) != generation
            or ctx.stopping
            or conn.critically_faulted
            or not conn.plugged
        ):
            await ctx.open_relay(cid)
            return False
        ctx.ports[cid].plug.offer_current(self.smart_charging.current_limit_a(cid))
        return True

    async def clear_fault(self, cid: int, code: ErrorCode) -> None:
        """Clear a fault; when none is left the connector returns to its state before the fault."""
        for target in self.ctx.connectors if cid == 0 else [cid]:
            conn = self.ctx.connectors[target]
            if code not in conn.faults:
                continue
            del conn.faults[code]
            if conn.state is not S.FAULTED or conn.critically_faulted:
                self.ctx.notify(target)
                continue
            async with self.ctx.locks[conn.id]:
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
        self.ctx.state_changed(conn)
        if target in (S.CHARGING, S.SUSPENDED_EV):
            await self.close_relay(conn.id)

    async def check_relay(self, cid: int) -> None:
        """A contactor that closed or dropped out by itself is a PowerSwitchFailure (cleared only by a restart:
        a contactor that did that once is not trusted again unattended)."""
        try:
            await self.ctx.ports[cid].relay.check()
        except HardwareError as exc:
            if ErrorCode.POWER_SWITCH_FAILURE not in self.ctx.connectors[cid].faults:
                log.error("connector %s: %s", cid, exc)
                await self.ctx.raise_fault(cid, ErrorCode.POWER_SWITCH_FAILURE, str(exc)[:50])

    async def record_stop(self, cid: int, stop: tuple[int, TransactionEnded]) -> None:
        """Persist a transaction's end (awaiting its commit, off the event loop); if the store refuses, keep it in
        memory and fault the connector until it is written (no new session may start over an unrecorded end)."""
        store = self.ctx.store
        # Any error (a StorageError, a bug): the end is kept, never lost, and the transaction is never left open.
        try:
            mark = store.mark()
            store.end_transaction(*stop)
            await store.flush(since=mark)
        except Exception:
            log.exception(
                "could not record the end of transaction %s; keeping it until storage recovers", stop[0]
            )
            if cid in self.ctx.connectors:
                self.unsaved_stops[cid] = stop
                self.ctx.add_fault(cid, ErrorCode.INTERNAL_ERROR, STORAGE_FAULT)
            return
        if store.low_space and cid in self.ctx.connectors:
            # Written on the store's reserve: the disk is full, so no new session until space returns.
            self.ctx.add_fault(cid, ErrorCode.INTERNAL_ERROR, STORAGE_FAULT)

    async def probe_storage(self, cid: int) -> None:
        """Clear a storage fault once the store takes writes again (space freed, disk remounted)."""
        if self.ctx.connectors[cid].faults.get(ErrorCode.INTERNAL_ERROR) != STORAGE_FAULT:
            return
        store = self.ctx.store
        pending = self.unsaved_stops.get(cid)
        if pending is not None:
            # An end of transaction is written even while the disk is low (it may use the store's reserve).
            try:
                mark = store.mark()
                store.end_transaction(*pending)
                await store.flush(since=mark)
            except Exception:  # StorageError, or a stop the store cannot take at all: it stays in memory
                return
            if self.unsaved_stops.get(cid) is pending:
                del self.unsaved_stops[cid]
            self.ctx.csms.outbox_changed()
        # An ordinary write only succeeds once the disk has room again (and the reserve is back).
        try:
            mark = store.mark()
            store.put("storage_probe", self.ctx.now().isoformat())
            await store.flush(since=mark)
        except Exception:  # StorageError, or a write the store cannot take at all
            return
        log.info("storage writable again; clearing the fault on connector %s", cid)
        await self.clear_fault(cid, ErrorCode.INTERNAL_ERROR)
