"""G. Availability: ChangeAvailability of the station, an EVSE or a connector (OCPP 2.0.1 Part 2 §G03, G04).
StatusNotification per (evseId, connectorId) (G01) is built in ``base.py``; Heartbeat (G02) is the shared
session's."""

from __future__ import annotations

from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.core.model import OperationalStatus
from chargepoint.csms.v201 import mapping
from chargepoint.csms.v201.base import V201Base


class Availability(V201Base):
    """Operative and inoperative."""

    __slots__ = ()

    @on(Action.change_availability)
    def on_change_availability(
        self, operational_status: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> Any:
        """ChangeAvailability: without evse the station (G03), with evse.id an EVSE, with a connectorId one
        connector (G04); Scheduled while a transaction runs there, Rejected for an EVSE or connector that does not
        exist."""
        if evse is None:
            cid = 0
        else:
            found = self.cid_of(evse["id"], evse.get("connector_id"))
            if found is None:
                return call_result.ChangeAvailability(status="Rejected")
            cid = found
        operative = mapping.OPERATIONAL_IN[operational_status] is OperationalStatus.OPERATIVE
        result = self.station.change_availability(cid, operative)
        return call_result.ChangeAvailability(status=mapping.AVAILABILITY[result])
