"""H. Reservation: ReserveNow and CancelReservation (OCPP 2.0.1 Part 2 §H01, H02), over the core's reservation
book (``core/blocks/reservations.py``); ReservationStatusUpdate (H01.FR.?: Expired, Removed) goes out of the
durable outbox (``transactions.py``), and a Started TransactionEvent names the reservation it ends (H03).

An EVSE is reserved through its first connector (the station's EVSEs have one connector each; the core reserves
connectors). Without evseId the reservation is the core's connector 0 one: any EVSE, one kept free for it
(ReservationCtrlr.NonEvseSpecific). The station does not know its connectors' types, so a connectorType is not
checked (logged). groupIdToken is the core's parent id.
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.core.reservations import Reservation, ReserveResult
from chargepoint.csms.times import check_times, parse_time
from chargepoint.csms.v201 import mapping
from chargepoint.csms.v201.base import V201Base

log = logging.getLogger(__name__)


def check_reserve_now(payload: dict[str, Any]) -> None:
    """FormatViolation for an expiryDateTime that is no date-time (the schema types it only as a string)."""
    check_times(payload, ("expiryDateTime",))


class Reservations(V201Base):
    """Reservations the CSMS makes and cancels."""

    __slots__ = ()

    @on(Action.reserve_now)
    async def on_reserve_now(
        self,
        id: int,
        expiry_date_time: str,
        id_token: dict[str, Any],
        evse_id: int | None = None,
        connector_type: str | None = None,
        group_id_token: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        """ReserveNow (H01): Accepted once the reservation is on disk; Rejected for an EVSE that does not exist,
        an expiry in the past or too far ahead, or while ReservationCtrlr.Enabled is false; Occupied, Faulted or
        Unavailable as the EVSE (all EVSEs, without evseId) is."""
        cid = 0
        if evse_id is not None:
            found = self.cid_of(evse_id, None)
            if found is None:
                return call_result.ReserveNow(status=mapping.RESERVE_RESULT[ReserveResult.REJECTED])
            cid = found
        if connector_type is not None:
            log.info("ReserveNow %s: connectorType %s is not checked (types unknown)", id, connector_type)
        token = id_token["id_token"]
        group = group_id_token["id_token"] if group_id_token else None
        reservation = Reservation(id, cid, token, parse_time(expiry_date_time), group)
        result = await self.station.reserve_now(reservation)
        if result is ReserveResult.ACCEPTED:
            self.remember_token(token, id_token["type"])  # its transaction's events carry the token as given
        return call_result.ReserveNow(status=mapping.RESERVE_RESULT[result])

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        """CancelReservation (H02): Accepted if the station held the reservation, which then ends (and its EVSE
        shows Available again); Rejected for an id it does not know."""
        result = await self.station.cancel_reservation(reservation_id)
        return call_result.CancelReservation(status=mapping.CANCEL_RESULT[result])
