"""OCPP 1.6 Reservation profile frames (§5.13 ReserveNow, §5.2 CancelReservation): the adapter's handlers call
these in one line; the rules are the core's (``core/reservations.py``).

A frame's values are hostile until checked: the schema (run by the ``ocpp`` package before the handler) bounds the
idTag to 20 characters and types the numbers, ``check_values`` rejects negative connector ids and numbers beyond
64 bits, and here an expiryDate that does not parse is a FormationViolation, an unknown connector, a past date or
one too far ahead are Rejected.
"""

from __future__ import annotations

from typing import Any

from ocpp.v16 import call_result

from chargepoint.core.reservations import Reservation, ReserveResult
from chargepoint.csms.session import StationCommands
from chargepoint.csms.times import check_times, parse_time
from chargepoint.csms.v16 import mapping


async def reserve_now(
    station: StationCommands,
    connector_id: int,
    expiry_date: Any,
    id_tag: str,
    reservation_id: int,
    parent_id_tag: str | None = None,
    **_: Any,
) -> call_result.ReserveNow:
    """ReserveNow.conf for a ReserveNow.req (snake_case fields, as the ``ocpp`` package routes them; the
    expiryDate was checked by ``check_reserve_now``)."""
    expiry = parse_time(expiry_date)
    if connector_id != 0 and connector_id not in station.connectors:
        return call_result.ReserveNow(status=mapping.RESERVE_RESULT[ReserveResult.REJECTED])
    reservation = Reservation(reservation_id, connector_id, id_tag, expiry, parent_id_tag or None)
    result = await station.reserve_now(reservation)
    return call_result.ReserveNow(status=mapping.RESERVE_RESULT[result])


def check_reserve_now(payload: dict[str, Any]) -> None:
    """Raise FormationViolation (OCPP-J 1.6 §4.2.3) for an expiryDate that is no date-time; the schema types it
    only as a string."""
    check_times(payload, ("expiryDate",))


async def cancel_reservation(station: StationCommands, reservation_id: int) -> call_result.CancelReservation:
    """CancelReservation.conf: Accepted if we held the reservation, which then ends."""
    result = await station.cancel_reservation(reservation_id)
    return call_result.CancelReservation(status=mapping.CANCEL_RESULT[result])
