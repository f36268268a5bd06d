"""Availability block (OCPP 1.6 §5.2, §4.9): connectors and the station made (in)operative, persisted, and
Scheduled while a transaction runs (applied when it ends)."""

from __future__ import annotations

import logging

from chargepoint.core.blocks.context import FunctionalBlock, StationContext
from chargepoint.core.connector import Connector
from chargepoint.core.model import AvailabilityResult, ConnectorState
from chargepoint.errors import StorageError

log = logging.getLogger(__name__)

S = ConnectorState


class Availability(FunctionalBlock):
    """Operative and inoperative connectors."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: StationContext) -> None:
        self.ctx = ctx

    def change_availability(self, cid: int, operative: bool) -> AvailabilityResult:
        """Make a connector (0: the station) (in)operative; Scheduled while a transaction runs. Persisted."""
        ctx = self.ctx
        targets = list(ctx.connectors.values()) if cid == 0 else [ctx.connectors[cid]]
        try:
            ctx.store.put(f"operative.{cid}", "1" if operative else "0")
            if cid == 0:
                for conn in targets:
                    ctx.store.put(f"operative.{conn.id}", "1" if operative else "0")
        except StorageError:
            log.exception("cannot persist availability")
            return AvailabilityResult.REJECTED
        if cid == 0 and ctx.station_operative != operative:
            ctx.station_operative = operative
            ctx.notify(0)
        scheduled = False
        for conn in targets:
            if conn.transaction is not None:
                conn.scheduled_operative = operative
                scheduled = True
                continue
            conn.operative = operative
            self.apply_scheduled(conn)
        return AvailabilityResult.SCHEDULED if scheduled else AvailabilityResult.ACCEPTED

    def apply_scheduled(self, conn: Connector) -> None:
        """Apply a scheduled availability change once ``conn`` has no transaction."""
        if conn.transaction is not None:
            return
        if conn.scheduled_operative is not None:
            conn.operative, conn.scheduled_operative = conn.scheduled_operative, None
        if not conn.operative:
            conn.pending_id_tag = conn.pending_parent = None  # also while faulted: no session after recovery
        if not conn.operative and conn.state in (S.AVAILABLE, S.PREPARING, S.FINISHING, S.RESERVED):
            if conn.state is S.PREPARING:
                conn.abandon()  # OCPP 1.6 §4.9 has no Preparing -> Unavailable edge
            conn.disable()
        elif conn.operative and conn.state is S.UNAVAILABLE:
            conn.enable()
            if conn.plugged:
                conn.plug_in()
