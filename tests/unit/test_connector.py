"""The connector state machine: every edge is a legal OCPP 1.6 status transition, triggers behave as tabled."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from transitions.core import MachineError

from chargepoint.core.connector import TRANSITIONS, ActiveTransaction, Connector
from chargepoint.core.model import ConnectorState, ErrorCode
from chargepoint.csms.v16 import mapping

S = ConnectorState


def _pairs() -> list[tuple[str, ConnectorState, ConnectorState]]:
    pairs = []
    for t in TRANSITIONS:
        sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
        pairs.extend((t["trigger"], src, t["dest"]) for src in sources)
    return pairs


@pytest.mark.parametrize(("trigger", "source", "dest"), _pairs(), ids=lambda v: getattr(v, "name", str(v)))
def test_every_table_edge_is_a_legal_status_transition(
    trigger: str, source: ConnectorState, dest: ConnectorState
) -> None:
    assert mapping.STATUS[dest] in mapping.LEGAL_STATUS_TRANSITIONS[mapping.STATUS[source]]


@pytest.mark.parametrize(("trigger", "source", "dest"), _pairs(), ids=lambda v: getattr(v, "name", str(v)))
def test_every_table_edge_fires(trigger: str, source: ConnectorState, dest: ConnectorState) -> None:
    conn = Connector(1)
    conn.settle(source)
    assert conn.can(trigger)
    getattr(conn, trigger)()
    assert conn.state is dest


SEQUENCES: list[tuple[str, bool, list[str], ConnectorState]] = [
    (
        "plug, start, EV pauses and resumes, finish, unplug",
        True,
        ["plug_in", "start_charging", "ev_suspend", "ev_resume", "finish", "cable_gone"],
        S.AVAILABLE,
    ),
    ("card first, then cable", True, ["identified", "start_charging"], S.CHARGING),
    (
        "EVSE suspends from SuspendedEV and resumes",
        True,
        ["plug_in", "start_charging", "ev_suspend", "evse_suspend", "evse_resume"],
        S.CHARGING,
    ),
    ("cable pulled mid-charge", True, ["plug_in", "start_charging", "cable_gone"], S.AVAILABLE),
    ("abandoned preparation", True, ["plug_in", "abandon"], S.AVAILABLE),
    ("disabled after finishing", True, ["plug_in", "start_charging", "finish", "disable"], S.UNAVAILABLE),
    ("enable an inoperative connector", False, ["enable", "plug_in"], S.PREPARING),
    ("fault from unavailable", False, ["fail"], S.FAULTED),
    ("fault while charging", True, ["plug_in", "start_charging", "fail"], S.FAULTED),
]


@pytest.mark.parametrize(("name", "operative", "triggers", "final"), SEQUENCES, ids=[s[0] for s in SEQUENCES])
def test_trigger_sequences(name: str, operative: bool, triggers: list[str], final: ConnectorState) -> None:
    conn = Connector(1, operative=operative)
    seen = [conn.state]
    for trigger in triggers:
        assert getattr(conn, trigger)() is True
        seen.append(conn.state)
    assert conn.state is final
    for a, b in itertools.pairwise(seen):
        assert mapping.STATUS[b] in mapping.LEGAL_STATUS_TRANSITIONS[mapping.STATUS[a]]


INVALID: list[tuple[ConnectorState, str]] = [
    (S.AVAILABLE, "start_charging"),
    (S.AVAILABLE, "finish"),
    (S.AVAILABLE, "enable"),
    (S.PREPARING, "disable"),  # OCPP 1.6 has no Preparing -> Unavailable edge
    (S.CHARGING, "plug_in"),
    (S.CHARGING, "disable"),
    (S.SUSPENDED_EVSE, "ev_resume"),
    (S.FINISHING, "start_charging"),
    (S.UNAVAILABLE, "plug_in"),
    (S.FAULTED, "fail"),
    (S.FAULTED, "enable"),
]


@pytest.mark.parametrize(("state", "trigger"), INVALID, ids=lambda v: getattr(v, "name", str(v)))
def test_invalid_trigger_raises_machine_error(state: ConnectorState, trigger: str) -> None:
    conn = Connector(1)
    conn.settle(state)
    assert not conn.can(trigger)
    with pytest.raises(MachineError):
        getattr(conn, trigger)()
    assert conn.state is state


def test_initial_state_follows_operative() -> None:
    assert Connector(1).state is S.AVAILABLE
    assert Connector(2, operative=False).state is S.UNAVAILABLE


def test_every_state_can_fault_except_faulted() -> None:
    for state in S:
        conn = Connector(1)
        conn.settle(state)
        assert conn.can("fail") is (state is not S.FAULTED)


def test_error_code_is_first_critical_fault() -> None:
    conn = Connector(1)
    assert conn.error_code is ErrorCode.NO_ERROR and conn.fault_info is None
    conn.faults[ErrorCode.READER_FAILURE] = "gone"  # a warning
    assert conn.error_code is ErrorCode.READER_FAILURE and conn.fault_info == "gone"
    conn.faults[ErrorCode.POWER_METER_FAILURE] = "silent"
    conn.faults[ErrorCode.GROUND_FAILURE] = "leak"
    assert conn.error_code is ErrorCode.POWER_METER_FAILURE
    assert conn.fault_info == "silent"


@pytest.mark.parametrize(
    ("operative", "plugged", "pending", "tx_authorized", "expected"),
    [
        (True, False, False, None, S.AVAILABLE),
        (True, True, False, None, S.PREPARING),
        (True, False, True, None, S.PREPARING),
        (False, True, False, None, S.UNAVAILABLE),
        (True, True, False, True, S.CHARGING),
        (True, False, False, True, S.SUSPENDED_EVSE),
        (True, True, False, False, S.SUSPENDED_EVSE),
        (False, True, False, True, S.CHARGING),  # a transaction outranks a scheduled Unavailable
    ],
)
def test_resting_state(
    operative: bool, plugged: bool, pending: bool, tx_authorized: bool | None, expected: ConnectorState
) -> None:
    conn = Connector(1, operative=operative)
    conn.plugged = plugged
    conn.pending_id_tag = "TAG" if pending else None
    if tx_authorized is not None:
        conn.transaction = ActiveTransaction(
            1, "TX-1", "TAG", None, datetime(2024, 1, 1, tzinfo=UTC), 0, tx_authorized
        )
    assert conn.resting_state() is expected


def test_connectors_share_one_machine_but_not_state_or_callbacks() -> None:
    """One transitions Machine serves every connector: each keeps its own state and state-change callback."""
    seen: list[tuple[str, int, ConnectorState]] = []
    one, two, quiet = Connector(1), Connector(2), Connector(3)
    one.on_state_change = lambda c: seen.append(("one", c.id, c.state))
    two.on_state_change = lambda c: seen.append(("two", c.id, c.state))
    one.plug_in()
    quiet.plug_in()
    two.fail()
    one.start_charging()
    assert (one.state, two.state, quiet.state) == (S.CHARGING, S.FAULTED, S.PREPARING)
    assert seen == [("one", 1, S.PREPARING), ("two", 2, S.FAULTED), ("one", 1, S.CHARGING)]
    two.settle(S.AVAILABLE)  # a jump, not a transition: no callback
    assert two.state is S.AVAILABLE and len(seen) == 3
    with pytest.raises(MachineError):
        two.start_charging()
    assert two.state is S.AVAILABLE and one.state is S.CHARGING
