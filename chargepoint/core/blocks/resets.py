"""Resets block (OCPP 2.0.1 B11/B12, 1.6 §5.14): a reset of the station or of one EVSE (here: one connector),
OnIdle resets that wait for their transactions to end, and the boot reason told after the restart.

A pending OnIdle reset is stored, so it survives a reconnect (it lives in the station, not in a CSMS session) and a
restart of the agent with a resumed transaction; the reason of a planned restart is stored before the restart, so
the next BootNotification can give it (RemoteReset, ScheduledReset, FirmwareUpdate; else PowerUp)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from chargepoint.core.blocks.availability import Availability
from chargepoint.core.blocks.context import FunctionalBlock, StationContext
from chargepoint.core.blocks.sessions import Sessions
from chargepoint.core.model import BootReason, ResetKind, ResetResult, StopReason
from chargepoint.errors import StorageError

log = logging.getLogger(__name__)

PENDING_KEY = (
    "reset.pending"  # comma-separated targets of OnIdle resets waiting: 0 the station, n connector n
)
BOOT_REASON_KEY = "boot.reason"  # why the next start happens, written just before a planned restart
STATION = 0
# How long a reset EVSE stays Unavailable before it is back as it was (2.0.1 B12, OCTT TC_B_25_CS: Unavailable, then
# Available).
EVSE_RESET_S = 1.0
_STOP_REASON = {ResetKind.SOFT: StopReason.SOFT_RESET, ResetKind.HARD: StopReason.HARD_RESET}
NO_TARGETS: frozenset[int] = frozenset()


def _frozen(targets: Iterable[int]) -> frozenset[int]:
    """``targets`` as a frozenset; the shared empty one when there are none."""
    return frozenset(targets) or NO_TARGETS


def _targets(text: str | None) -> set[int]:
    """The stored pending targets; anything unreadable is dropped (a reset is not worth a crash at start)."""
    out = set()
    for part in (text or "").split(","):
        if part.strip().isdigit():
            out.add(int(part))
    return out


class Resets(FunctionalBlock):
    """Resets of the station or of one connector, now or once idle, and the reason of the last planned restart."""

    __slots__ = ("_started", "availability", "boot_reason", "ctx", "pending", "requested", "sessions")

    def __init__(self, ctx: StationContext, sessions: Sessions, availability: Availability) -> None:
        self.ctx = ctx
        self.sessions = sessions
        self.availability = availability
        self.requested: asyncio.Future[ResetKind] | None = None  # the agent restarts once it is done
        # Recovery ends the last run's transactions before ``start``: that does not make an EVSE idle for a reset.
        self._started = False
        # Frozen, replaced as a whole: the stations without a pending reset (nearly all) share one empty set (an
        # empty set() is ~0.2 KB each).
        self.pending: frozenset[int] = NO_TARGETS
        self.boot_reason = BootReason.POWER_UP
        try:
            self.pending = _frozen(
                t for t in _targets(ctx.store.get(PENDING_KEY)) if t == STATION or t in ctx.connectors
            )
            self.boot_reason = BootReason(ctx.store.get(BOOT_REASON_KEY) or BootReason.POWER_UP.value)
        except (StorageError, ValueError):
            log.exception("cannot read the pending resets and the boot reason")
        ctx.listeners.append(self._status_changed)

    async def start(self) -> None:
        """This start is the restart an idle target was waiting for; targets still busy (a transaction resumed
        after a power loss) keep waiting. A later unplanned start is a PowerUp."""
        still = {t for t in self.pending if self.busy(t)}
        if still != self.pending:
            self._persist(still)
        if (
            self.boot_reason is not BootReason.POWER_UP
        ):  # written once, not at every start (fleets share a file)
            self._put(BOOT_REASON_KEY, BootReason.POWER_UP.value)
        self._started = True

    def busy(self, target: int) -> bool:
        """A transaction runs on connector ``target`` (0: on any connector)."""
        conns = self.ctx.connectors
        if target == STATION:
            return any(c.transaction is not None for c in conns.values())
        conn = conns.get(target)
        return conn is not None and conn.transaction is not None

    def answer(self, kind: ResetKind, cid: int | None) -> ResetResult:
        """What a reset of the station (``cid`` None) or of connector ``cid`` will do; nothing happens yet."""
        target = STATION if cid is None else cid
        if target != STATION and target not in self.ctx.connectors:
            return ResetResult.REJECTED
        if kind is ResetKind.SOFT and self.busy(target):
            return ResetResult.SCHEDULED  # OCPP 2.0.1 B11.FR.?/B12.FR.01: OnIdle waits for the transaction
        return ResetResult.ACCEPTED

    def reset(self, kind: ResetKind, cid: int | None) -> ResetResult:
        """Carry out a reset after its answer went out: now, or (OnIdle with a transaction) once idle."""
        result = self.answer(kind, cid)
        target = STATION if cid is None else cid
        if result is ResetResult.SCHEDULED:
            self._persist(self.pending | {target})
        elif result is ResetResult.ACCEPTED:
            self._carry_out(kind, target, BootReason.REMOTE_RESET)
        return result

    def restart_into_firmware(self) -> None:
        """After a firmware install: a soft restart whose next boot says FirmwareUpdate (a bound method for the
        firmware block, not a partial per station)."""
        self.request_restart(ResetKind.SOFT, BootReason.FIRMWARE_UPDATE)

    def request_restart(self, kind: ResetKind, reason: BootReason) -> None:
        """Restart the agent, the next boot telling ``reason``."""
        self._put(BOOT_REASON_KEY, reason.value)
        if self.requested is not None and not self.requested.done():
            self.requested.set_result(kind)

    def _carry_out(self, kind: ResetKind, target: int, reason: BootReason) -> None:
        if target == STATION:
            self.request_restart(kind, reason)
            return
        # One EVSE: its transaction ends (Immediate: reason ImmediateReset, B12.FR.08), the relay opens and the
        # connector starts over; the rest of the station is not touched.
        self.ctx.spawn(self._reset_connector(target, kind), f"reset-{target}")

    async def _reset_connector(self, cid: int, kind: ResetKind) -> None:
        conn = self.ctx.connectors[cid]
        await self.sessions.stop_locked(conn, _STOP_REASON[kind])
        async with self.ctx.locks[cid]:
            if conn.transaction is not None:
                return
            await self.ctx.open_relay(cid)
            log.warning("connector %s reset (%s)", cid, kind.name.lower())
            if not conn.operative:
                return
            # Unavailable while it resets; not persisted, so the availability the CSMS set is what comes back.
            conn.operative = False
            self.availability.apply_scheduled(conn)
        await asyncio.sleep(EVSE_RESET_S)
        async with self.ctx.locks[cid]:
            try:  # back to operative unless a ChangeAvailability came meanwhile
                wanted = self.ctx.store.get(f"operative.{cid}") != "0"
            except StorageError:
                wanted = True  # the stored wish is unreadable: an EVSE that resets comes back, as it was
            if wanted and not conn.operative and conn.transaction is None:
                conn.operative = True
                self.availability.apply_scheduled(conn)

    def _status_changed(self, cid: int) -> None:
        """A transaction's end is a status change: carry out the OnIdle resets whose target is now idle."""
        if not self.pending or self.ctx.stopping or not self._started:
            return
        done = {t for t in self.pending if not self.busy(t)}
        if not done:
            return
        self._persist(self.pending - done)
        for target in sorted(done, reverse=True):  # the connectors before the station
            self._carry_out(ResetKind.SOFT, target, BootReason.SCHEDULED_RESET)

    def _persist(self, pending: Iterable[int]) -> None:
        self.pending = _frozen(pending)
        pending = self.pending
        self._put(PENDING_KEY, ",".join(str(t) for t in sorted(pending)))

    def _put(self, key: str, value: str) -> None:
        try:
            self.ctx.store.put(key, value)
        except StorageError:
            log.exception("cannot store %s", key)
