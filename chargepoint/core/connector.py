"""A connector as a ``transitions`` state machine: states are an Enum, transitions one table.

Conditions are pure; the station does the I/O (relay, store, CSMS) around each trigger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from transitions import Machine

from chargepoint.core.model import (
    CONNECTOR_STATUS,
    WARNING_CODES,
    ConnectorState,
    ConnectorStatus,
    ErrorCode,
    OperationalStatus,
)

S = ConnectorState
_IN_TX = [S.CHARGING, S.SUSPENDED_EV, S.SUSPENDED_EVSE]

# trigger, source(s), destination. Every pair here is a legal StatusNotification transition (OCPP 1.6 §4.9),
# which tests/unit/test_connector.py checks against the spec's table.
TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "plug_in", "source": S.AVAILABLE, "dest": S.PREPARING},
    # Finishing -> Preparing: the driver presents a card again on the still-plugged cable (OCPP 1.6 §4.9, E2).
    # Reserved -> Preparing: the reservation's idTag (or one of its parent) is presented (OCPP 1.6 §4.9, D2).
    {"trigger": "identified", "source": [S.AVAILABLE, S.FINISHING, S.RESERVED], "dest": S.PREPARING},
    {"trigger": "start_charging", "source": S.PREPARING, "dest": S.CHARGING},
    {"trigger": "ev_suspend", "source": S.CHARGING, "dest": S.SUSPENDED_EV},
    {"trigger": "ev_resume", "source": S.SUSPENDED_EV, "dest": S.CHARGING},
    {"trigger": "evse_suspend", "source": [S.CHARGING, S.SUSPENDED_EV], "dest": S.SUSPENDED_EVSE},
    {"trigger": "evse_resume", "source": S.SUSPENDED_EVSE, "dest": S.CHARGING},
    {"trigger": "finish", "source": _IN_TX, "dest": S.FINISHING},
    {"trigger": "cable_gone", "source": [S.PREPARING, S.FINISHING, *_IN_TX], "dest": S.AVAILABLE},
    {"trigger": "abandon", "source": S.PREPARING, "dest": S.AVAILABLE},
    # A reservation is taken, or it ends without a transaction: expired, cancelled (OCPP 1.6 §3.11, A4/D1).
    {"trigger": "reserve", "source": S.AVAILABLE, "dest": S.RESERVED},
    {"trigger": "unreserve", "source": S.RESERVED, "dest": S.AVAILABLE},
    {"trigger": "disable", "source": [S.AVAILABLE, S.FINISHING, S.RESERVED], "dest": S.UNAVAILABLE},
    {"trigger": "enable", "source": S.UNAVAILABLE, "dest": S.AVAILABLE},
    {"trigger": "fail", "source": [s for s in S if s is not S.FAULTED], "dest": S.FAULTED},
]


# One machine for every connector in the process: it holds the states and the transition table, and each Connector
# carries only its own ``state``. A Machine per connector cost ~33 KB, and registering models with add_model still
# ~10 KB each (bound trigger partials); a fleet of thousands of agents in one process cannot afford either.
_MACHINE = Machine(
    model=[],
    states=ConnectorState,
    transitions=TRANSITIONS,
    initial=S.AVAILABLE,
    auto_transitions=False,
    ignore_invalid_triggers=False,
    after_state_change="_after_state_change",  # resolved on the model: Connector._after_state_change
)


def _trigger(name: str) -> Callable[[Connector], bool]:
    """A Connector method firing ``name`` on the shared machine (raises MachineError where it is illegal)."""

    def fire(self: Connector) -> bool:
        return bool(_MACHINE.events[name].trigger(self))

    fire.__name__ = fire.__qualname__ = name
    fire.__doc__ = f"Fire the {name!r} transition."
    return fire


@dataclass
class ActiveTransaction:
    """The transaction running on a connector (its durable twin is the store's row)."""

    local_id: int  # the storage port's handle
    transaction_id: str  # the station-generated id every OCPP version sees (mapped by the 1.6 adapter)
    id_tag: str
    parent_id_tag: str | None
    started_at: datetime
    meter_start_wh: int
    authorized: bool = True
    ends_on_unplug: bool = False  # its authorization ended under TxStopPoint EVConnected: the cable ends it


class Connector:
    """One connector's state, plug, transaction, faults and availability."""

    state: ConnectorState
    # Triggers, attached by ``transitions`` from TRANSITIONS; declared here for the type checker.
    plug_in: Callable[[], bool]
    identified: Callable[[], bool]
    start_charging: Callable[[], bool]
    ev_suspend: Callable[[], bool]
    ev_resume: Callable[[], bool]
    evse_suspend: Callable[[], bool]
    evse_resume: Callable[[], bool]
    finish: Callable[[], bool]
    cable_gone: Callable[[], bool]
    abandon: Callable[[], bool]
    disable: Callable[[], bool]
    reserve: Callable[[], bool]
    unreserve: Callable[[], bool]
    enable: Callable[[], bool]
    fail: Callable[[], bool]

    def __init__(self, connector_id: int, *, operative: bool = True) -> None:
        self.id = connector_id
        self.plugged = False
        self.transaction: ActiveTransaction | None = None
        self.pending_id_tag: str | None = None  # identified (or remote start) and waiting for the cable
        self.pending_parent: str | None = None
        self.faults: dict[ErrorCode, str | None] = {}
        self.state_before_fault: ConnectorState | None = None
        self.operative = operative
        self.scheduled_operative: bool | None = None
        self.state = S.AVAILABLE if operative else S.UNAVAILABLE
        self.on_state_change: Callable[[Connector], None] | None = None

    def _after_state_change(self) -> None:
        """Called by the shared machine after each transition of this connector."""
        if self.on_state_change is not None:
            self.on_state_change(self)

    # pure questions
    @property
    def in_transaction(self) -> bool:
        """True while a transaction runs here."""
        return self.transaction is not None

    @property
    def status(self) -> ConnectorStatus:
        """This connector's availability for a new user as of now (Occupied from Preparing to Finishing)."""
        return CONNECTOR_STATUS[self.state]

    @property
    def reported_status(self) -> ConnectorStatus:
        """The ConnectorStatus the connector reports (OCPP 2.0.1 StatusNotification, AvailabilityState): as
        ``status``, except that an authorization (or the transaction it started, TxStartPoint Authorized) waiting
        for the cable leaves it Available: Occupied is the connector's own state, reported at the plug-in (E03).
        Reservations and the EVSE still count such a connector as taken (``status``)."""
        if self.state is ConnectorState.PREPARING and not self.plugged:
            return ConnectorStatus.AVAILABLE
        return self.status

    @property
    def operational_status(self) -> OperationalStatus:
        """Operative or Inoperative as last set (a scheduled change applies after the transaction)."""
        return OperationalStatus.OPERATIVE if self.operative else OperationalStatus.INOPERATIVE

    @property
    def error_code(self) -> ErrorCode:
        """The first active fault (a critical one before a warning), or NO_ERROR."""
        return min(self.faults, key=lambda code: code in WARNING_CODES, default=ErrorCode.NO_ERROR)

    @property
    def fault_info(self) -> str | None:
        """Free text of the reported fault."""
        return self.faults.get(self.error_code)

    @property
    def critically_faulted(self) -> bool:
        """True while a fault that stops energy delivery is active."""
        return any(code not in WARNING_CODES for code in self.faults)

    def can(self, trigger: str) -> bool:
        """Whether ``trigger`` is legal from the current state."""
        return bool(_MACHINE.get_triggers(self.state).count(trigger))

    def resting_state(self) -> ConnectorState:
        """The state this connector belongs in when nothing else is happening (after a fault or enable)."""
        if not self.operative and self.transaction is None:
            return S.UNAVAILABLE
        if self.transaction is not None:
            return S.CHARGING if self.transaction.authorized and self.plugged else S.SUSPENDED_EVSE
        if self.plugged or self.pending_id_tag is not None:
            return S.PREPARING
        return S.AVAILABLE

    def settle(self, state: ConnectorState) -> None:
        """Jump to ``state`` directly: only for fault recovery and start-up, where the table has no edge."""
        _MACHINE.set_state(state, model=self)
        self.state = state


for _name in dict.fromkeys(t["trigger"] for t in TRANSITIONS):
    setattr(Connector, _name, _trigger(_name))
