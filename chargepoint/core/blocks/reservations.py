"""Reservation block (OCPP 1.6 §3.11, §5.2 CancelReservation, §5.13 ReserveNow, §4.9 Reserved; 2.0.1 H01-H04):
the book of reservations in force (rules in ``core/reservations.py``), shown as Reserved on the connectors they
hold, ended when they expire, are cancelled, are used by a transaction, or their connector (connector 0: the
station) turns Faulted or Unavailable. An expiry or such a removal is queued as ``ReservationEnded`` (2.0.1
ReservationStatusUpdate); a cancellation or a use is not: the CSMS asked for it or sees it in the transaction."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from chargepoint.core.blocks.context import FunctionalBlock, StationContext
from chargepoint.core.connector import Connector
from chargepoint.core.events import ReservationEnded
from chargepoint.core.model import ConnectorState, ConnectorStatus
from chargepoint.core.reservations import (
    CancelResult,
    Claim,
    Reservation,
    ReservationBook,
    ReserveResult,
    claim,
    held,
    parent_may_admit,
    reserve_answer,
)
from chargepoint.errors import StorageError

log = logging.getLogger(__name__)

S = ConnectorState
# Re-check expiries at least this often: the timer runs on the monotonic clock, expiries are wall-clock times.
RECHECK_S = 300.0


def unreserved_status(conn: Connector) -> ConnectorStatus:
    """A connector's availability as if it held no reservation: Available when idle and usable."""
    if conn.state in (S.AVAILABLE, S.RESERVED):
        idle = conn.pending_id_tag is None and conn.transaction is None
        return ConnectorStatus.AVAILABLE if idle else ConnectorStatus.OCCUPIED
    return conn.status


class Reservations(FunctionalBlock):
    """Reservations in force and the Reserved status they show."""

    __slots__ = ("_loop", "_sync", "_timer", "book", "ctx")

    def __init__(self, ctx: StationContext) -> None:
        self.ctx = ctx
        try:
            stored = ctx.store.reservations()
        except StorageError:
            log.exception("cannot read the stored reservations")
            stored = []
        self.book = ReservationBook(ctx.store, stored)
        self._timer: asyncio.TimerHandle | None = None
        self._sync: asyncio.Handle | None = None
        # Set by start(); commands may come from outside it (tests, tools).
        self._loop: asyncio.AbstractEventLoop | None = None
        ctx.listeners.append(self._status_changed)

    async def start(self) -> None:
        """End what expired while the agent was down; the rest show Reserved again (before a cable plugged
        meanwhile makes the connector Preparing: this block starts before the sessions)."""
        self._loop = asyncio.get_running_loop()
        self.changed()
        self.sync()

    def halt(self) -> list[asyncio.Task[Any]]:
        """Cancel the expiry timer and a pending Reserved re-check."""
        for handle in (self._timer, self._sync):
            if handle is not None:
                handle.cancel()
        return []

    # commands
    async def reserve_now(self, reservation: Reservation) -> ReserveResult:
        """Take (or replace, by id) a reservation if the connectors allow it; Accepted once it is on disk."""
        ctx = self.ctx
        self._end(self.book.expired(ctx.now()), "expired", expired=True)
        if not ctx.settings.get_bool("reservation_enabled"):
            return ReserveResult.REJECTED  # OCPP 2.0.1 ReservationCtrlr.Enabled false
        result = reserve_answer(
            self.book,
            reservation,
            {cid: unreserved_status(conn) for cid, conn in ctx.connectors.items()},
            ctx.now(),
            station=ConnectorStatus.AVAILABLE if ctx.station_operative else ConnectorStatus.UNAVAILABLE,
            zero_supported=ctx.settings.get_bool("reserve_connector_zero_supported"),
        )
        if result is not ReserveResult.ACCEPTED:
            return result
        replaced = self.book.by_id.get(reservation.reservation_id)
        mark = ctx.store.mark()
        try:
            self.book.put(reservation)
            await ctx.store.flush(since=mark)
        except StorageError:
            log.exception("cannot store reservation %s", reservation.reservation_id)
            self.book.remove([reservation.reservation_id], persist=False)
            if replaced is not None:
                self.book.by_id[replaced.reservation_id] = replaced  # still on disk
            return ReserveResult.REJECTED
        self.changed()
        return ReserveResult.ACCEPTED

    async def cancel(self, reservation_id: int) -> CancelResult:
        """End a reservation in force (OCPP 1.6 §5.2); Rejected for one we do not hold."""
        if reservation_id not in self.book.by_id:
            return CancelResult.REJECTED
        mark = self.ctx.store.mark()
        self._end([reservation_id], "cancelled")  # the CSMS asked: no ReservationEnded
        try:
            await self.ctx.store.flush(since=mark)
        except StorageError:
            log.exception("the cancellation of reservation %s is not on disk", reservation_id)
        return CancelResult.ACCEPTED

    # what the sessions ask
    def free(self) -> set[int]:
        """The idle, usable connectors, reserved or not (none while the station is Unavailable)."""
        if not self.ctx.station_operative:
            return set()
        return {
            c.id for c in self.ctx.connectors.values() if unreserved_status(c) is ConnectorStatus.AVAILABLE
        }

    def claim(self, cid: int, id_tag: str, parent_id_tag: str | None) -> Claim:
        """May ``id_tag`` start on ``cid``, and which reservation would it use (OCPP 1.6 §5.13)?"""
        # Expired ones end first: the timer may be late after a clock correction (SetClock, NTP at boot).
        self._end(self.book.expired(self.ctx.now()), "expired", expired=True)
        return claim(self.book, cid, id_tag, parent_id_tag, self.free())

    def parent_may_admit(self, cid: int) -> bool:
        """Whether a reservation holding ``cid`` has a parentIdTag another idTag could match (worth an Authorize)."""
        return parent_may_admit(self.book, cid)

    def used(self, reservation_id: int) -> None:
        """A transaction started on the reservation; the store removed it in the start's commit."""
        self.book.remove([reservation_id], persist=False)
        self.changed()

    # keeping the book and the connectors in step
    def _status_changed(self, cid: int) -> None:
        """A connector (0: the station) changed: a Faulted or Unavailable one ends its reservations (§3.11)."""
        if cid == 0:
            if not self.ctx.station_operative:
                self._end(self.book.on_connector(0), "charge point Unavailable", expired=False)
            return
        conn = self.ctx.connectors[cid]
        if conn.state in (S.FAULTED, S.UNAVAILABLE):
            self._end(self.book.on_connector(cid), f"connector {cid} {conn.state.name}", expired=False)
        if len(self.book) or conn.state is S.RESERVED:
            self._sync_soon()

    def _end(self, ids: list[int], why: str, *, expired: bool | None = None) -> None:
        """End reservations; ``expired`` True/False queues ReservationEnded (Expired/Removed), None (a
        cancellation) does not."""
        gone = self.book.remove(ids)
        for reservation in gone:
            log.info("reservation %s ended: %s", reservation.reservation_id, why)
        if expired is not None:
            self._report(gone, expired=expired)
        if ids:
            self.changed()

    def _report(self, gone: list[Reservation], *, expired: bool) -> None:
        """Queue a ReservationEnded per reservation that ended by itself (H01.FR.? ReservationStatusUpdate)."""
        for reservation in gone:
            try:
                self.ctx.store.queue(ReservationEnded(reservation.reservation_id, expired))
            except StorageError:
                log.exception("cannot queue the end of reservation %s", reservation.reservation_id)
        if gone:
            self.ctx.csms.outbox_changed()

    def changed(self) -> None:
        """End the expired reservations, re-check which connectors show Reserved, and arm a timer for the next
        expiry (re-checked at least every RECHECK_S, so a clock correction moves it by no more)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.ctx.stopping or self._loop is None:
            return  # not started: start() does this
        expired = self.book.remove(self.book.expired(self.ctx.now()))
        for gone in expired:
            log.info("reservation %s on connector %s expired", gone.reservation_id, gone.connector_id)
        self._report(expired, expired=True)
        self._sync_soon()  # deferred: this may run inside a connector's state-change callback
        due = self.book.next_expiry()
        if due is not None:
            delay = min(RECHECK_S, max(0.0, (due - self.ctx.now()).total_seconds()))
            self._timer = self._loop.call_later(delay, self.changed)

    def _sync_soon(self) -> None:
        if self._sync is None and not self.ctx.stopping and self._loop is not None:
            self._sync = self._loop.call_soon(self.sync)

    def sync(self) -> None:
        """Reserved on exactly the idle connectors the reservations hold (Available <-> Reserved, OCPP 1.6 §4.9)."""
        if self._sync is not None:
            self._sync.cancel()  # this is that check (or makes it unnecessary)
            self._sync = None
        if self.ctx.stopping:
            return
        shown = held(self.book, self.free())
        for cid, conn in self.ctx.connectors.items():
            if cid in shown and conn.state is S.AVAILABLE:
                conn.reserve()
            elif cid not in shown and conn.state is S.RESERVED:
                conn.unreserve()
                if conn.plugged and conn.can("plug_in"):
                    conn.plug_in()  # a cable plugged while it was reserved
