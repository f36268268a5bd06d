"""The EVSE level of the core: a connector's neutral status and operational state, an EVSE's aggregate, and the
one-connector-per-EVSE layout a station builds (the only one OCPP 1.6 can describe)."""

from __future__ import annotations

import pytest

from chargepoint.core.connector import Connector
from chargepoint.core.evse import Evse, one_connector_per_evse
from chargepoint.core.model import ConnectorState, ConnectorStatus, OperationalStatus

S = ConnectorState


def _at(cid: int, state: ConnectorState, *, operative: bool = True) -> Connector:
    conn = Connector(cid, operative=operative)
    conn.state = state
    return conn


@pytest.mark.parametrize(
    ("state", "status"),
    [
        (S.AVAILABLE, ConnectorStatus.AVAILABLE),
        (S.PREPARING, ConnectorStatus.OCCUPIED),
        (S.CHARGING, ConnectorStatus.OCCUPIED),
        (S.SUSPENDED_EV, ConnectorStatus.OCCUPIED),
        (S.SUSPENDED_EVSE, ConnectorStatus.OCCUPIED),
        (S.FINISHING, ConnectorStatus.OCCUPIED),
        (S.RESERVED, ConnectorStatus.RESERVED),
        (S.UNAVAILABLE, ConnectorStatus.UNAVAILABLE),
        (S.FAULTED, ConnectorStatus.FAULTED),
    ],
)
def test_connector_status_follows_the_session_phase(state: ConnectorState, status: ConnectorStatus) -> None:
    assert _at(1, state).status is status


def test_connector_operational_status_follows_availability_and_transitions() -> None:
    conn = Connector(1)
    assert conn.operational_status is OperationalStatus.OPERATIVE
    conn.operative = False
    conn.disable()
    assert conn.operational_status is OperationalStatus.INOPERATIVE
    assert conn.status is ConnectorStatus.UNAVAILABLE
    assert Connector(2, operative=False).operational_status is OperationalStatus.INOPERATIVE


@pytest.mark.parametrize(
    ("states", "status"),
    [
        ([S.AVAILABLE, S.CHARGING], ConnectorStatus.OCCUPIED),
        ([S.FAULTED, S.PREPARING], ConnectorStatus.OCCUPIED),
        ([S.AVAILABLE, S.RESERVED], ConnectorStatus.RESERVED),
        ([S.AVAILABLE, S.FAULTED], ConnectorStatus.AVAILABLE),
        ([S.UNAVAILABLE, S.FAULTED], ConnectorStatus.FAULTED),
        ([S.UNAVAILABLE, S.UNAVAILABLE], ConnectorStatus.UNAVAILABLE),
    ],
)
def test_evse_status_with_two_connectors(states: list[ConnectorState], status: ConnectorStatus) -> None:
    evse = Evse(1, {i: _at(i, s) for i, s in enumerate(states, start=1)})
    assert evse.status is status


def test_evse_is_inoperative_only_when_every_connector_is() -> None:
    one_off = Evse(1, {1: Connector(1, operative=False), 2: Connector(2)})
    both_off = Evse(2, {1: Connector(3, operative=False), 2: Connector(4, operative=False)})
    assert one_off.operational_status is OperationalStatus.OPERATIVE
    assert both_off.operational_status is OperationalStatus.INOPERATIVE


def test_one_connector_per_evse_layout() -> None:
    connectors = {2: Connector(2), 1: Connector(1)}
    evses = one_connector_per_evse(connectors)
    assert list(evses) == [1, 2]
    for evse_id, evse in evses.items():
        assert evse.evse_id == evse_id
        assert dict(evse.connectors) == {1: connectors[evse_id]}
