"""A real Station on simulated hardware, driven by random plug/card/fault/availability/CSMS events.

Hypothesis rules are synchronous, so each machine owns one event loop and runs the station's coroutines on it.
The station is started (safe state, recovery) and its background loops are then cancelled: the rules call the
methods those loops would call, so every step is deterministic.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from chargepoint.core.events import OutboxKind, OutboxMessage, TransactionEnded, TransactionStarted
from chargepoint.core.model import (
    AuthStatus,
    AvailabilityResult,
    ConnectorState,
    ErrorCode,
    IdTagInfo,
    StopReason,
)
from chargepoint.core.reservations import Reservation, held
from chargepoint.core.settings import Settings
from chargepoint.core.station import Station, StationTiming
from chargepoint.csms.v16 import mapping
from chargepoint.ports import ConnectorPorts, CounterIds
from chargepoint.store import Store
from hardware.sim import SimMeter, SimPlug, SimRelay

S = ConnectorState
T = TypeVar("T")
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
TAGS = ("AA01", "BB02", "BLOCKED")
CONNECTOR = st.integers(min_value=1, max_value=2)  # folded onto the machine's connectors by _cid()


async def stop_hardware_watching(station: Station) -> None:
    """The tests drive plug, cards and meter reads by hand: the station's own watching (pushed plug and reader
    events, meter polls, any hardware loop) is stopped, so no event is handled twice."""
    station.sessions.halt()
    for duty in station.ctx.supervised_duties:
        duty.stop()
    tasks = list(station.ctx.tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class FixedClock:
    """Wall-clock time that only moves when a rule says so."""

    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime:
        return self.at


class Hardware:
    """One connector's simulated twins, on a monotonic clock the machine advances."""

    def __init__(self, monotonic: list[float]) -> None:
        self.relay = SimRelay()
        self.plug = SimPlug(ev_power_w=7400.0)
        self.meter = SimMeter(self.relay, self.plug, energy_wh=1000.0, monotonic=lambda: monotonic[0])

    def ports(self) -> ConnectorPorts:
        return ConnectorPorts(relay=self.relay, meter=self.meter, plug=self.plug, reader=None)


def legal(a: ConnectorState, b: ConnectorState) -> bool:
    return mapping.STATUS[b] in mapping.LEGAL_STATUS_TRANSITIONS[mapping.STATUS[a]]


class StationMachine(RuleBasedStateMachine):
    """Two connectors: station-wide availability and faults meet per-connector sessions."""

    n_connectors = 2

    def __init__(self) -> None:
        super().__init__()
        self.cids = tuple(range(1, self.n_connectors + 1))
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp(prefix="station-machine-"))
        self.store = Store(self.tmp / "agent.db", durable=False)
        self.store.local_list_update(1, True, {"BLOCKED": IdTagInfo(AuthStatus.BLOCKED)})
        self.settings = Settings(
            overrides={
                "allow_offline_tx_for_unknown_id": True,
                "local_authorize_offline": True,
                "connection_timeout_s": 3600,
            }
        )
        self.clock = FixedClock()
        self.monotonic = [0.0]
        self.hw = {cid: Hardware(self.monotonic) for cid in self.cids}
        self.changes: list[tuple[int, ConnectorState, ConnectorState]] = []
        self.confirmed: set[str] = set()
        self.tx_ids = CounterIds("TX-")  # one generator across reboots: ids stay unique
        self._boot()

    def _boot(self) -> None:
        self.station = Station(
            {cid: hw.ports() for cid, hw in self.hw.items()},
            self.store,
            self.settings,
            self.clock,
            transaction_ids=self.tx_ids,
            timing=StationTiming(meter_poll_s=3600),
        )
        # A boot is no status transition: the agent reports every connector afresh.
        self.seen = {cid: conn.state for cid, conn in self.station.connectors.items()}
        self.station.listeners.append(self._notified)
        self.loop.run_until_complete(self.station.start())
        self.loop.run_until_complete(self._cancel_background_loops())

    # plumbing
    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        result = self.loop.run_until_complete(coro)
        self.loop.run_until_complete(self._settle())
        return result

    async def _settle(self) -> None:
        """Let one-shot tasks the station spawned (remote stop, ...) finish; their crashes fail the test."""
        for _ in range(5):
            pending = list(self.station.ctx.tasks)
            if not pending:
                return
            await asyncio.gather(*pending)

    async def _cancel_background_loops(self) -> None:
        await stop_hardware_watching(self.station)

    async def _shutdown(self) -> None:
        await self.station.stop()
        leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def _cid(self, drawn: int) -> int:
        return min(drawn, self.n_connectors)

    def _notified(self, cid: int) -> None:
        if cid == 0:
            return
        state = self.station.connectors[cid].state
        if state is not self.seen[cid]:
            self.changes.append((cid, self.seen[cid], state))
            self.seen[cid] = state

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self._shutdown())
        finally:
            self.loop.close()
            self.store.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    # configuration chosen per run
    @initialize(
        stop_on_disconnect=st.booleans(),
        stop_on_invalid=st.booleans(),
    )
    def configure(self, stop_on_disconnect: bool, stop_on_invalid: bool) -> None:
        self.settings.set_text("stop_transaction_on_ev_side_disconnect", str(stop_on_disconnect).lower())
        self.settings.set_text("stop_transaction_on_invalid_id", str(stop_on_invalid).lower())

    # rules
    @rule(cid=CONNECTOR)
    def toggle_plug(self, cid: int) -> None:
        cid = self._cid(cid)
        plug = self.hw[cid].plug
        plug.set_plugged(not plug.plugged)
        self.run(self.station.on_plug(cid, plug.plugged))

    @rule(cid=CONNECTOR, tag=st.sampled_from(TAGS))
    def swipe(self, cid: int, tag: str) -> None:
        cid = self._cid(cid)
        self.run(self.station.on_token(cid, tag))

    @rule(cid=CONNECTOR, failing=st.booleans())
    def meter_fault(self, cid: int, failing: bool) -> None:
        cid = self._cid(cid)
        self.hw[cid].meter.failing = failing
        if failing:
            self.run(self.station.raise_fault(cid, ErrorCode.POWER_METER_FAILURE, "meter silent"))
        else:
            self.run(self.station.clear_fault(cid, ErrorCode.POWER_METER_FAILURE))

    @rule(cid=CONNECTOR, stuck=st.booleans())
    def relay_stuck(self, cid: int, stuck: bool) -> None:
        """A contactor that will not close; un-sticking it is the technician clearing the fault."""
        cid = self._cid(cid)
        self.hw[cid].relay.stuck = stuck
        if not stuck:
            self.run(self.station.clear_fault(cid, ErrorCode.POWER_SWITCH_FAILURE))

    @rule(cid=st.integers(min_value=0, max_value=2), operative=st.booleans())
    def change_availability(self, cid: int, operative: bool) -> None:
        cid = self._cid(cid) if cid else 0
        targets = self.cids if cid == 0 else (cid,)
        busy = any(self.station.connectors[c].transaction is not None for c in targets)
        result = self.station.change_availability(cid, operative)
        assert result is (AvailabilityResult.SCHEDULED if busy else AvailabilityResult.ACCEPTED)
        self.run(asyncio.sleep(0))

    @rule(
        cid=CONNECTOR,
        status=st.sampled_from(
            [AuthStatus.ACCEPTED, AuthStatus.ACCEPTED, AuthStatus.INVALID, AuthStatus.BLOCKED]
        ),
    )
    def csms_confirms_start(self, cid: int, status: AuthStatus) -> None:
        """The CSMS answers StartTransaction: a transaction id and the idTag's status."""
        cid = self._cid(cid)
        tx = self.station.connectors[cid].transaction
        if tx is None or tx.transaction_id in self.confirmed:
            return
        self.confirmed.add(tx.transaction_id)
        self.run(self.station.transaction_confirmed(tx.local_id, IdTagInfo(status), taken=True))

    @rule(cid=CONNECTOR)
    def remote_stop(self, cid: int) -> None:
        cid = self._cid(cid)
        tx = self.station.connectors[cid].transaction
        if tx is None:
            assert self.run(self.station.remote_stop("no-such-transaction")) is False
            return
        assert self.run(self.station.remote_stop(tx.transaction_id)) is True
        assert self.station.connectors[cid].transaction is None
        stored = self.store.transaction(tx.local_id)
        assert stored is not None and not stored.active

    @rule(resume=st.booleans())
    def power_cut(self, resume: bool) -> None:
        """The agent dies without ending anything and starts again on the same store and hardware."""
        self.loop.run_until_complete(self.station.stop())
        self.settings.set_text("resume_transactions_after_power_loss", str(resume).lower())
        self._boot()

    @rule(seconds=st.sampled_from([1, 60, 900]), ev_power_w=st.sampled_from([0.0, 3700.0, 7400.0]))
    def time_passes(self, seconds: int, ev_power_w: float) -> None:
        """Time passes, the EV draws what it wants, and every meter is polled once."""
        self.monotonic[0] += seconds
        self.clock.at += timedelta(seconds=seconds)
        for cid in self.cids:
            self.hw[cid].plug.ev_power_w = ev_power_w
            self.run(self.station.read_meter(cid))

    @rule(
        cid=st.integers(min_value=0, max_value=2),
        rid=st.integers(min_value=1, max_value=3),
        tag=st.sampled_from(TAGS),
        minutes=st.sampled_from([1, 30]),
    )
    def reserve(self, cid: int, rid: int, tag: str, minutes: int) -> None:
        """ReserveNow (connector 0: any connector); it expires as time_passes moves the clock."""
        cid = self._cid(cid) if cid else 0
        self.run(
            self.station.reserve_now(Reservation(rid, cid, tag, self.clock.at + timedelta(minutes=minutes)))
        )
        self.run(asyncio.sleep(0))  # the deferred Reserved check

    @rule(rid=st.integers(min_value=1, max_value=3))
    def cancel_reservation(self, rid: int) -> None:
        self.run(self.station.cancel_reservation(rid))
        self.run(asyncio.sleep(0))

    # invariants
    @invariant()
    def reserved_exactly_where_a_reservation_holds(self) -> None:
        """Reserved only on a connector a reservation holds; a connector reserved itself never sits Available;
        the store keeps the same reservations as the station."""
        self.run(asyncio.sleep(0))
        book = list(self.station.reservations.book)
        shown = held(book, self.station.reservations.free())
        for cid, conn in self.station.connectors.items():
            if conn.state is S.RESERVED:
                assert cid in shown, (cid, book)
        for reservation in book:
            if reservation.connector_id:
                conn = self.station.connectors[reservation.connector_id]
                assert conn.state is not S.AVAILABLE, (reservation, conn.state)
        assert {r.reservation_id for r in self.store.reservations()} == {r.reservation_id for r in book}

    @invariant()
    def relay_closed_only_while_charging_authorized(self) -> None:
        for cid, conn in self.station.connectors.items():
            if self.hw[cid].relay.closed:
                tx = conn.transaction
                assert conn.state in (S.CHARGING, S.SUSPENDED_EV), (cid, conn.state)
                assert tx is not None and tx.authorized, (cid, tx)

    @invariant()
    def transaction_states(self) -> None:
        for cid, conn in self.station.connectors.items():
            if conn.transaction is not None:
                assert conn.state not in (S.AVAILABLE, S.UNAVAILABLE, S.PREPARING), (cid, conn.state)

    @invariant()
    def every_status_change_is_legal_and_reported(self) -> None:
        for cid, a, b in self.changes:
            assert legal(a, b), f"connector {cid}: {a.name} -> {b.name} is not a legal OCPP 1.6 transition"
        self.changes.clear()
        for cid, conn in self.station.connectors.items():
            assert conn.state is self.seen[cid], f"connector {cid} changed to {conn.state.name} unreported"

    @invariant()
    def resting_states_describe_the_connector(self) -> None:
        for cid, conn in self.station.connectors.items():
            if conn.state is S.FAULTED:
                continue
            if not conn.operative and conn.transaction is None:
                assert conn.state is S.UNAVAILABLE, (cid, conn.state)
            if conn.state is S.PREPARING:
                assert conn.plugged or conn.pending_id_tag is not None, cid
            if conn.state is S.FINISHING:
                assert conn.plugged, cid

    @invariant()
    def store_matches_connectors(self) -> None:
        active = self.store.active_transactions()
        by_cid: dict[int, list[int]] = {}
        for row in active:
            by_cid.setdefault(row.connector_id, []).append(row.local_id)
        for cid, conn in self.station.connectors.items():
            expected = [conn.transaction.local_id] if conn.transaction is not None else []
            assert by_cid.get(cid, []) == expected, (cid, by_cid, expected)
        assert set(by_cid) <= set(self.cids)


class SingleConnectorMachine(StationMachine):
    """One connector: the same rules reach deep per-connector sequences in fewer steps."""

    n_connectors = 1


for machine, examples in ((StationMachine, 100), (SingleConnectorMachine, 150)):
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
TestStationMachine = StationMachine.TestCase
TestSingleConnectorMachine = SingleConnectorMachine.TestCase


# --- deterministic scenarios: regressions the machine and its authors found -------------------------------


class Rig:
    """One started station with one simulated connector, its background loops cancelled."""

    def __init__(self, tmp_path: Path, **overrides: Any) -> None:
        self.store = Store(tmp_path / "agent.db", durable=False)
        self.settings = Settings(
            overrides={"allow_offline_tx_for_unknown_id": True, "connection_timeout_s": 3600, **overrides}
        )
        self.monotonic = [0.0]
        self.hw = Hardware(self.monotonic)
        self.station = Station(
            {1: self.hw.ports()},
            self.store,
            self.settings,
            FixedClock(),
            transaction_ids=CounterIds("TX-"),
            timing=StationTiming(meter_poll_s=3600),
        )
        self.conn = self.station.connectors[1]

    async def start(self) -> Rig:
        await self.station.start()
        await stop_hardware_watching(self.station)
        return self

    async def close(self) -> None:
        await self.station.stop()
        self.store.close()

    async def plug(self, plugged: bool) -> None:
        self.hw.plug.set_plugged(plugged)
        await self.station.on_plug(1, plugged)

    async def charging(self, tag: str = "AA01") -> None:
        await self.plug(True)
        await self.station.on_token(1, tag)
        assert self.conn.state is S.CHARGING and self.hw.relay.closed


async def rig(tmp_path: Path, **overrides: Any) -> Rig:
    return await Rig(tmp_path, **overrides).start()


async def test_fault_while_charging_resumes_charging(tmp_path: Path) -> None:
    r = await rig(tmp_path)
    await r.charging()
    await r.station.raise_fault(1, ErrorCode.POWER_METER_FAILURE)
    assert r.conn.state is S.FAULTED and not r.hw.relay.closed and r.conn.transaction is not None
    await r.station.clear_fault(1, ErrorCode.POWER_METER_FAILURE)
    assert r.conn.state is S.CHARGING and r.hw.relay.closed
    await r.close()


async def test_deauthorized_during_fault_stays_open_after_it(tmp_path: Path) -> None:
    r = await rig(tmp_path, stop_transaction_on_invalid_id=False)
    await r.charging()
    await r.station.raise_fault(1, ErrorCode.POWER_METER_FAILURE)
    tx = r.conn.transaction
    assert tx is not None
    await r.station.transaction_confirmed(tx.local_id, IdTagInfo(AuthStatus.INVALID), taken=True)
    await r.station.clear_fault(1, ErrorCode.POWER_METER_FAILURE)
    assert r.conn.state is S.SUSPENDED_EVSE and not r.hw.relay.closed
    await r.close()


async def test_made_inoperative_during_fault_is_unavailable_after_it(tmp_path: Path) -> None:
    r = await rig(tmp_path)
    await r.station.raise_fault(1, ErrorCode.POWER_METER_FAILURE)
    assert r.station.change_availability(1, False) is AvailabilityResult.ACCEPTED
    await r.station.clear_fault(1, ErrorCode.POWER_METER_FAILURE)
    assert r.conn.state is S.UNAVAILABLE
    await r.plug(True)
    await r.station.on_token(1, "AA01")
    assert r.conn.transaction is None and not r.hw.relay.closed
    await r.close()


async def test_power_cut_ends_the_transaction_with_power_loss(tmp_path: Path) -> None:
    r = await rig(tmp_path)
    await r.charging()
    tx = r.conn.transaction
    assert tx is not None
    await r.station.stop()  # no reason: like a crash, the row stays active
    assert [t.local_id for t in r.store.active_transactions()] == [tx.local_id]
    again = Station(
        {1: r.hw.ports()},
        r.store,
        r.settings,
        FixedClock(),
        transaction_ids=r.station.transaction_ids,
        timing=StationTiming(meter_poll_s=3600),
    )
    await again.start()
    assert r.store.active_transactions() == []
    assert again.connectors[1].transaction is None and again.connectors[1].state is S.PREPARING
    assert not r.hw.relay.closed
    await again.stop()
    r.store.close()


async def test_meter_read_with_deauthorized_transaction_while_faulted(tmp_path: Path) -> None:
    """Found by the machine: _check_invalid_energy fired evse_suspend() from FAULTED (MachineError)."""
    r = await rig(tmp_path, stop_transaction_on_invalid_id=False)
    await r.plug(True)
    r.hw.relay.stuck = True
    await r.station.on_token(1, "AA01")  # the transaction starts, the contactor does not close
    tx = r.conn.transaction
    assert r.conn.state is S.FAULTED and tx is not None
    await r.station.transaction_confirmed(tx.local_id, IdTagInfo(AuthStatus.INVALID), taken=True)
    try:
        assert await r.station.read_meter(1) is not None
        assert r.conn.state is S.FAULTED and not r.hw.relay.closed
    finally:
        await r.close()


async def test_unplug_during_fault_stops_the_transaction(tmp_path: Path) -> None:
    """StopTransactionOnEVSideDisconnect applies while faulted too."""
    r = await rig(tmp_path, stop_transaction_on_ev_side_disconnect=True)
    await r.charging()
    await r.station.raise_fault(1, ErrorCode.POWER_METER_FAILURE)
    await r.plug(False)
    await r.station.clear_fault(1, ErrorCode.POWER_METER_FAILURE)
    try:
        assert r.conn.transaction is None
        assert r.store.active_transactions() == []
    finally:
        await r.close()


async def test_replug_after_unplug_during_fault_resumes_charging(tmp_path: Path) -> None:
    """Without StopTransactionOnEVSideDisconnect the session resumes when the EV comes back after a fault."""
    r = await rig(tmp_path, stop_transaction_on_ev_side_disconnect=False)
    await r.charging()
    await r.station.raise_fault(1, ErrorCode.POWER_METER_FAILURE)
    await r.plug(False)
    await r.station.clear_fault(1, ErrorCode.POWER_METER_FAILURE)
    await r.plug(True)
    try:
        assert r.conn.transaction is not None
        assert r.conn.state is S.CHARGING and r.hw.relay.closed
    finally:
        await r.close()


async def test_fault_with_info_absent_clears(tmp_path: Path) -> None:
    """clear_fault once used the string "absent" as its pop() sentinel."""
    r = await rig(tmp_path)
    await r.station.raise_fault(1, ErrorCode.OTHER_ERROR, "absent")
    await r.station.clear_fault(1, ErrorCode.OTHER_ERROR)
    try:
        assert r.conn.faults == {}
        assert r.conn.state is S.AVAILABLE
    finally:
        await r.close()


async def test_pending_authorization_dropped_when_made_unavailable_during_fault(tmp_path: Path) -> None:
    """Going inoperative drops a waiting card, also while faulted, so no session starts after recovery."""
    r = await rig(tmp_path)
    await r.station.on_token(1, "AA01")  # card first: Preparing, waiting for the cable
    assert r.conn.state is S.PREPARING and r.conn.pending_id_tag == "AA01"
    await r.station.raise_fault(1, ErrorCode.POWER_METER_FAILURE)
    r.station.change_availability(1, False)
    await r.station.clear_fault(1, ErrorCode.POWER_METER_FAILURE)
    try:
        assert r.conn.state is S.UNAVAILABLE
        assert r.conn.pending_id_tag is None
    finally:
        await r.close()


async def test_transaction_ids_come_from_the_injected_generator_and_survive_a_power_loss(
    tmp_path: Path,
) -> None:
    """The station names its transactions (OCPP 2.0.1 E01); the id is persisted, resumed and ends the session."""
    r = await rig(tmp_path, resume_transactions_after_power_loss=True)
    await r.charging()
    tx = r.conn.transaction
    assert tx is not None and tx.transaction_id == "TX-1"
    (stored,) = r.store.active_transactions()
    assert stored.transaction_id == "TX-1"
    head = r.store.outbox_head()
    # The rig has no central system: the start happened offline (OCPP 2.0.1 TransactionEvent.offline).
    assert head is not None and head.event() == TransactionStarted(
        "TX-1",
        1,
        "AA01",
        tx.meter_start_wh,
        tx.started_at,
        offline=True,
        charging_state=ConnectorState.PREPARING,  # plugged, authorized, the relay about to close
        phases=3,
    )
    await r.station.stop()  # like a crash: the row stays active
    again = Station(
        {1: r.hw.ports()},
        r.store,
        r.settings,
        FixedClock(),
        transaction_ids=r.station.transaction_ids,
        timing=StationTiming(meter_poll_s=3600),
    )
    await again.start()
    resumed = again.connectors[1].transaction
    assert resumed is not None and resumed.transaction_id == "TX-1"
    assert await again.remote_stop("TX-2") is False  # not a running transaction
    assert await again.remote_stop("TX-1") is True
    await until_idle(again)
    ends = [m.event() for m in _drain(r.store) if m.kind == OutboxKind.STOP]
    assert [(e.transaction_id, e.reason) for e in ends if isinstance(e, TransactionEnded)] == [
        ("TX-1", StopReason.REMOTE)
    ]
    await again.stop()
    r.store.close()


async def until_idle(station: Station) -> None:
    """Let a spawned remote stop finish (bounded: the test fails rather than hang)."""
    async with asyncio.timeout(5):
        while any(conn.transaction is not None for conn in station.connectors.values()):
            await asyncio.sleep(0.01)


def _drain(store: Store) -> list[OutboxMessage]:
    out = []
    while (head := store.outbox_head()) is not None:
        out.append(head)
        store.acknowledge(head.seq)
    return out
