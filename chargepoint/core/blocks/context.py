"""What every functional block of the station shares (in the spirit of libocpp's ``functional_block_context``).

The connectors and their hardware ports, the settings, the storage port, the clock, the station's timing, the
CSMS port, task spawning and supervision, the per-connector session locks, and the safety primitives that any
block may need at once: opening a relay and adding a fault. Opening a relay lives here, below every block, so it
never waits behind a block, the station lock, the store or a queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from chargepoint.core.connector import Connector
from chargepoint.core.evse import Evse, one_connector_per_evse
from chargepoint.core.model import WARNING_CODES, ConnectorState, ErrorCode, IdTagInfo
from chargepoint.core.scheduler import Duty, Mutex, Scheduler, loop_scheduler
from chargepoint.core.security import SecurityEvents
from chargepoint.core.settings import Settings
from chargepoint.core.storage import Storage
from chargepoint.errors import CsmsUnavailable
from chargepoint.ports import Clock, ConnectorPorts, MeterReading, safe_now

log = logging.getLogger(__name__)

S = ConnectorState
T = TypeVar("T")
STORAGE_FAULT = "storage full or unwritable"
MAX_STOP_DATA = 100  # samples in StopTransaction.transactionData: the newest ones, so the frame stays small


def log_crash(task: asyncio.Task[Any]) -> None:
    """Done-callback of a background task: log its crash, if any.

    A cancelled task is not logged: cancelling is how the station stops its one-shot tasks (a remote start, a
    timer). The long-lived hardware loops do not rely on this: ``StationContext.supervise`` makes their connector
    safe however they end."""
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

    @property
    def reports_charging_state(self) -> bool:
        """True if a version the link may speak tells a running transaction's charging-state changes as
        transaction messages (OCPP 2.0.1 TransactionEvent ChargingStateChanged; 1.6 has StatusNotification only),
        so they are worth queueing."""
        ...


class OfflineCsms:
    """The CSMS port before any link is attached: always offline."""

    __slots__ = ()

    online = False
    reports_charging_state = False

    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Never online."""
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
    # The scheduler of periodic duties; None: the running loop's, shared by every agent of the process.
    scheduler: Scheduler | None = None


class Feed(Generic[T]):
    """What a push driver (``PlugWatch``, ``TokenWatch``) delivers for one connector, handled in order, one at a
    time, by ``handle``: called by the driver, it holds a task only while events wait (no task per connector
    waiting for hardware that rarely changes). A crash of the handler is handled as a crashed hardware loop: the
    connector faults (its relay opens) and the next event is handled. Handling ended any other way while the
    station runs (its task cancelled by a bug, a BaseException) faults the connector and ends the feed for good,
    as a supervised loop ended that way: ``loops_alive()`` turns false and the systemd watchdog restarts the
    agent."""

    __slots__ = ("_cid", "_ctx", "_dead", "_handle", "_loop", "_name", "_task", "_waiting")

    def __init__(
        self,
        ctx: StationContext,
        cid: int,
        name: str,
        handle: Callable[[int, T], Coroutine[Any, Any, None]],
    ) -> None:
        self._ctx = ctx
        self._cid = cid
        self._name = name
        self._handle = handle
        self._loop = asyncio.get_running_loop()  # made by a block's start(), on the station's loop
        self._waiting: list[T] = []
        self._task: asyncio.Task[Any] | None = None
        self._dead = False
        ctx.supervised_feeds.append(self)

    @property
    def name(self) -> str:
        """What it handles and for which connector ("plug-1")."""
        return f"{self._name}-{self._cid}"

    @property
    def alive(self) -> bool:
        """False once its handling ended for good (cancelled by a bug, or a BaseException)."""
        return not self._dead

    def __call__(self, event: T) -> None:
        if self._dead:
            return
        self._waiting.append(event)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # told between two runs of the loop (a test driving the hardware from outside)
            self._loop.call_soon(self._wake)
            return
        self._wake()

    def _wake(self) -> None:
        if self._task is None and self._waiting and not self._dead:
            task = self._task = self._ctx.spawn(self._drain(), self.name)
            task.add_done_callback(self._drained)

    async def _drain(self) -> None:
        while self._waiting:
            event = self._waiting.pop(0)
            try:
                await self._handle(self._cid, event)
            except Exception as exc:
                log.exception("connector %s: %s handler crashed", self._cid, self._name)
                await self._ctx.raise_fault(
                    self._cid, ErrorCode.INTERNAL_ERROR, f"{self._name}: {type(exc).__name__}"[:50]
                )

    def _drained(self, task: asyncio.Task[Any]) -> None:
        """The handling task ended: by a cancellation (even before it ran) or a BaseException, for good (an event
        was lost half-handled: nothing more is trusted to this feed); else the events told since are handled."""
        self._task = None
        ended: BaseException | None = asyncio.CancelledError() if task.cancelled() else task.exception()
        if ended is None:
            self._wake()
        elif not self._ctx.stopping:
            self._dead = True
            self._waiting.clear()
            self._ctx.spawn(self._ctx.loop_ended(self._cid, self._name, ended), f"{self.name}-ended")


class FunctionalBlock:
    """One functional block of the station: the hooks ``Station`` calls on each block it wires, in order."""

    __slots__ = ()

    async def start(self) -> None:
        """Called once by ``Station.start`` (relays open, plugs and meters read), in wiring order."""

    def halt(self) -> list[asyncio.Task[Any]]:
        """Called by ``Station.stop`` before the tasks are cancelled: cancel timers, return the block's own tasks."""
        return []


class StationContext:
    """The state and primitives the functional blocks share; it holds no block and knows none."""

    __slots__ = (
        "_scheduler",
        "clock",
        "connectors",
        "csms",
        "last_reading",
        "listeners",
        "locks",
        "notices",
        "ports",
        "security_events",
        "sessions_held",
        "settings",
        "station_operative",
        "stopping",
        "store",
        "supervised",
        "supervised_duties",
        "supervised_feeds",
        "tasks",
        "timing",
    )

    def __init__(
        self,
        ports: dict[int, ConnectorPorts],
        store: Storage,
        settings: Settings,
        clock: Clock,
        timing: StationTiming,
    ) -> None:
        self.ports = ports
        # Periodic duties (clock-aligned and periodic samples) are callbacks on the process's scheduler, not a
        # sleeping task each; injected so tests drive it, resolved lazily because a station may be built off-loop.
        self._scheduler = timing.scheduler
        self.store = store
        self.settings = settings
        self.clock = clock
        self.timing = timing
        self.csms: CsmsPort = OfflineCsms()
        # Every security event of the station, whichever block or link raises it, goes through this one bound.
        self.security_events = SecurityEvents(store, clock, self.outbox_changed)
        self.connectors: dict[int, Connector] = {}
        for cid in sorted(ports):
            conn = Connector(cid, operative=store.get(f"operative.{cid}", "1") == "1")
            conn.on_state_change = self.state_changed
            self.connectors[cid] = conn
        self.station_operative = store.get("operative.0", "1") == "1"
        self.last_reading: dict[int, MeterReading] = {}
        # One lock per connector serializes its session changes; opening a relay never takes it.
        self.locks: dict[int, Mutex] = {cid: Mutex() for cid in ports}
        # What the operator must hear of on a connector without a fault (StatusNotification info, ``ctl status``):
        # a transaction the CSMS never accepted. Cleared when the CSMS accepts the connector's next transaction.
        self.notices: dict[int, str] = {}
        self.stopping = False
        # Why no new session may start right now (a firmware install, which ends in a reboot), or None.
        self.sessions_held: str | None = None
        self.supervised: list[asyncio.Task[Any]] = []  # hardware loops (pull drivers)
        self.supervised_duties: list[Duty[Any]] = []  # hardware duties (meter polls)
        self.supervised_feeds: list[Feed[Any]] = []  # push drivers' events (plugs, readers)
        # Running background tasks, kept by reference: a dict used as a set (an empty set is 216 B, a dict 64 B).
        self.tasks: dict[asyncio.Task[Any], None] = {}
        self.listeners: list[Callable[[int], None]] = []

    @property
    def evses(self) -> dict[int, Evse]:
        """The EVSEs by id. Today every connector is its own EVSE (the only layout OCPP 1.6 can describe)."""
        # Derived when asked (a 2.0.1 session at connect, a command naming an EVSE), not kept: an Evse and its
        # connector map per connector are ~0.5 KB per charger in a fleet.
        return one_connector_per_evse(self.connectors)

    def outbox_changed(self) -> None:
        """Something was queued in the outbox: wake the sender of the link attached now (if any)."""
        # A bound method where blocks need this as a callback: a lambda each would cost ~0.2 KB per charger.
        self.csms.outbox_changed()

    @property
    def scheduler(self) -> Scheduler:
        """The scheduler of the station's periodic duties (the running loop's, unless one was injected)."""
        if self._scheduler is None:
            self._scheduler = loop_scheduler()
        return self._scheduler

    def duty(
        self,
        plan: Callable[[], tuple[float, T] | None],
        action: Callable[[T], Coroutine[Any, Any, None] | None],
        name: str,
        *,
        inline: bool = False,
    ) -> Duty[T]:
        """A periodic duty whose runs are spawned (kept, crash logged) like any station task (``inline``: stepped
        in the scheduler's callback first, a task only if the run has to wait; see ``Duty``)."""
        return Duty(self.scheduler, plan, action, self.spawn, name, inline=inline)

    def now(self) -> datetime:
        """The station's time; the system's UTC time if the injected clock fails (a session must still end)."""
        return safe_now(self.clock)

    # status
    def state_changed(self, conn: Connector) -> None:
        """A connector's state machine moved: report it."""
        log.info("connector %s -> %s", conn.id, conn.state.name)
        self.notify(conn.id)

    def notify(self, cid: int) -> None:
        """Tell the CSMS link and the listeners that connector ``cid``'s status changed."""
        self.csms.status_changed(cid)
        for listener in self.listeners:
            listener(cid)

    # tasks
    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, kept by reference until done; a crash is logged."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks[task] = None
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.pop(task, None)
        if not self.tasks:
            self.tasks = {}  # a dict keeps its grown table once emptied (~0.1 KB per idle charger); {} has none
        log_crash(task)

    def alive(self) -> bool:
        """True while every hardware loop runs and every hardware duty has a run planned or under way."""
        return (
            all(not task.done() for task in self.supervised)
            and all(duty.alive for duty in self.supervised_duties)
            and all(feed.alive for feed in self.supervised_feeds)
        )

    async def loop_ended(self, cid: int, name: str, exc: BaseException) -> None:
        """A connector's hardware loop, feed or duty ends for good by ``exc`` (a cancellation or a BaseException):
        unless the station is stopping (Station.stop cancels them itself, after opening the relays), fault the
        connector, which opens its relay and reports Faulted/InternalError naming it."""
        if self.stopping:
            return
        log.critical("connector %s: %s loop ended by %s; connector faulted", cid, name, type(exc).__name__)
        await self.raise_fault(cid, ErrorCode.INTERNAL_ERROR, f"{name} loop ended: {type(exc).__name__}"[:50])

    def supervise(self, loop: Callable[[int], Coroutine[Any, Any, None]], cid: int, name: str) -> None:
        """Run a connector's hardware loop (plug, reader, meter and relay watchdog) for the station's life.

        An ``Exception`` (a bug or an unexpected driver error) faults the connector, which opens its relay, and
        the loop starts again. Anything else ends the loop for good, but never silently while the station runs:
        an unexpected cancellation or a ``BaseException`` (``KeyboardInterrupt``, ``SystemExit``, a library's own)
        first faults the connector (relay open, Faulted/InternalError reported), then goes on up. The cancellation
        is honoured (``asyncio.run`` cancels every task at exit and waits for them), ``KeyboardInterrupt`` and
        ``SystemExit`` stop the event loop as asyncio intends, and a dead loop stops ``loops_alive()``, so the
        systemd watchdog restarts the agent."""

        async def supervised() -> None:
            try:
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
            except BaseException as exc:  # also while faulting or waiting to restart after an Exception
                await self.loop_ended(cid, name, exc)
                raise

        self.supervised.append(self.spawn(supervised(), f"{name}-{cid}"))

    # safety primitives: opening a relay never waits behind a lock, the store or a queue
    async def open_relay(self, cid: int) -> None:
        """Open a connector's relay now; a relay that does not open is a PowerSwitchFailure."""
        self.connectors[cid].open_generation += 1
        relay = self.ports[cid].relay
        try:
            await relay.open()
        except Exception as exc:  # the driver boundary: whatever it raises, the caller's stop must go on
            log.error("relay %s did not open: %s", cid, exc)
            self.add_fault(cid, ErrorCode.POWER_SWITCH_FAILURE, str(exc)[:50])
        try:
            self.ports[cid].plug.offer_current(None)  # after the relay: nothing may delay the open
        except Exception:
            log.exception("connector %s: withdrawing the current offer failed", cid)

    def open_generation(self, cid: int) -> int:
        """How many opens connector ``cid``'s relay has seen (a close compares it before and after)."""
        return self.connectors[cid].open_generation

    async def raise_fault(self, cid: int, code: ErrorCode, info: str | None = None) -> None:
        """Add a fault to a connector (0: every connector): the relay opens at once (warnings only report)."""
        for target in self.connectors if cid == 0 else [cid]:
            if code not in WARNING_CODES:
                await self.open_relay(target)
            self.add_fault(target, code, info)

    def add_fault(self, cid: int, code: ErrorCode, info: str | None) -> None:
        """Record a fault on a connector (its relay already open for a non-warning code)."""
        conn = self.connectors[cid]
        already = code in conn.faults
        conn.faults[code] = info
        if conn.state is not S.FAULTED and code not in WARNING_CODES:
            conn.state_before_fault = conn.state
            conn.fail()
        elif not already:
            self.notify(cid)

    def storage_faulted(self, conn: Connector) -> bool:
        """True while the connector is faulted because the store cannot take its records."""
        return conn.faults.get(ErrorCode.INTERNAL_ERROR) == STORAGE_FAULT
