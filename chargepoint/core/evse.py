"""The EVSE level: an EVSE owns one or more connectors, of which at most one delivers energy at a time.

OCPP 2.0.1 addresses a connector as (evseId, connectorId); OCPP 1.6 has no EVSE, so its adapter maps each 1.6
connectorId n onto EVSE n with one connector (``csms/v16/mapping.py``). The station numbers connectors
station-wide (1, 2, ...) and keeps the EVSE layout here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from chargepoint.core.connector import Connector
from chargepoint.core.model import ConnectorStatus, OperationalStatus

# The first status present wins for the EVSE as a whole: a session on any connector occupies the EVSE.
_EVSE_PRECEDENCE = (
    ConnectorStatus.OCCUPIED,
    ConnectorStatus.RESERVED,
    ConnectorStatus.AVAILABLE,
    ConnectorStatus.FAULTED,
    ConnectorStatus.UNAVAILABLE,
)


@dataclass(frozen=True, slots=True)
class Evse:
    """One EVSE: its id (1, 2, ...) and its connectors by EVSE-local connector id (1, 2, ...)."""

    evse_id: int
    connectors: Mapping[int, Connector]

    @property
    def operational_status(self) -> OperationalStatus:
        """Inoperative only when every connector is inoperative."""
        if any(c.operational_status is OperationalStatus.OPERATIVE for c in self.connectors.values()):
            return OperationalStatus.OPERATIVE
        return OperationalStatus.INOPERATIVE

    @property
    def status(self) -> ConnectorStatus:
        """The EVSE's availability: Occupied if any connector is, Faulted/Unavailable only if no connector is usable."""
        present = {c.status for c in self.connectors.values()}
        return next((s for s in _EVSE_PRECEDENCE if s in present), ConnectorStatus.UNAVAILABLE)


def one_connector_per_evse(connectors: Mapping[int, Connector]) -> dict[int, Evse]:
    """The layout of a station whose every connector is its own EVSE: EVSE n holds connector n as its connector 1."""
    return {cid: Evse(cid, {1: conn}) for cid, conn in sorted(connectors.items())}
