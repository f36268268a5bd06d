"""OCTT OCPP 1.6 charge-point cases of the Reservation profile (TC_046-TC_053), against the scripted central
system over loopback, plus hostile ReserveNow frames (OCPP 1.6 §3.11, §5.2, §5.13, §4.9)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend_stub.ocpp.server import CallErrorReply
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.core.model import ErrorCode
from chargepoint.core.reservations import MAX_RESERVATION
from tests.integration.conftest import RunningAgent, StartAgent, until
from tests.integration.octt_support import CP, incoming_calls, index, mark, quiet, statuses, wait_status


def expiry(seconds: float = 600) -> str:
    """An expiryDate ``seconds`` from now."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def reserve(
    cs: CentralSystem, connector_id: int, id_tag: str, reservation_id: int, **extra: Any
) -> str:
    payload = {
        "connectorId": connector_id,
        "expiryDate": extra.pop("expiry_date", None) or expiry(),
        "idTag": id_tag,
        "reservationId": reservation_id,
        **extra,
    }
    return str((await cs.call(CP, "ReserveNow", payload))["status"])


async def cancel(cs: CentralSystem, reservation_id: int) -> str:
    return str((await cs.call(CP, "CancelReservation", {"reservationId": reservation_id}))["status"])


async def reserved(
    a: RunningAgent, cs: CentralSystem, cid: int = 1, *, after: int = 0, timeout: float = 5.0
) -> int:
    """Wait until connector ``cid`` reports Reserved; the log position just after that report."""
    frame = await wait_status(cs, cid, "Reserved", after=after, timeout=timeout)
    await a.wait_state("RESERVED", cid)
    return index(cs, frame) + 1


def stored_reservations(a: RunningAgent) -> list[int]:
    assert a.agent.store is not None
    return [r.reservation_id for r in a.agent.store.reservations()]


async def started_with(cs: CentralSystem, id_tag: str, *, after: int) -> dict[str, Any]:
    start = await cs.wait_for_call("StartTransaction", after=after, where=lambda p: p["idTag"] == id_tag)
    return start.payload


async def test_tc_046_1_reservation_local_start(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_046_1_CS: Reserved; another card gets no Authorize and no session; the reserved card starts the
    transaction with the reservationId, which ends the reservation."""
    a = await start_agent()
    m = mark(cs)
    assert await reserve(cs, 1, "TAG1", 11) == "Accepted"
    await reserved(a, cs, after=m)
    a.swipe("STRANGER")
    await quiet(0.3)
    assert not [f for f in incoming_calls(cs, m) if f.action == "Authorize"]  # step 5: no Authorize.req
    assert a.state() == "RESERVED"
    a.swipe("TAG1")
    await wait_status(cs, 1, "Preparing", after=m)
    a.plug()
    start = await started_with(cs, "TAG1", after=m)
    assert start["reservationId"] == 11 and start["connectorId"] == 1
    await wait_status(cs, 1, "Charging", after=m)
    assert stored_reservations(a) == []
    reported = statuses(cs, 1, m)  # after the boot's Available
    assert reported[reported.index("Reserved") :] == ["Reserved", "Preparing", "Charging"]


async def test_tc_046_2_reservation_remote_start(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_046_2_CS: a remote start for another idTag is Rejected; the reserved idTag's is Accepted and its
    StartTransaction carries the reservationId."""
    a = await start_agent()
    m = mark(cs)
    assert await reserve(cs, 1, "TAG1", 12) == "Accepted"
    await reserved(a, cs, after=m)
    other = await cs.call(CP, "RemoteStartTransaction", {"idTag": "OTHER", "connectorId": 1})
    assert other["status"] == "Rejected"
    ok = await cs.call(CP, "RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 1})
    assert ok["status"] == "Accepted"
    a.plug()
    start = await started_with(cs, "TAG1", after=m)
    assert start["reservationId"] == 12
    await a.wait_state("CHARGING")


async def test_tc_047_reservation_expires(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_047_CS: unused, the reservation expires: Available again, and another idTag charges without it."""
    a = await start_agent()
    m = mark(cs)
    assert await reserve(cs, 1, "TAG1", 13, expiry_date=expiry(1.0)) == "Accepted"
    after_reserved = await reserved(a, cs, after=m)
    await wait_status(cs, 1, "Available", after=after_reserved, timeout=5)
    assert stored_reservations(a) == []
    a.plug()
    a.swipe("OTHER")
    start = await started_with(cs, "OTHER", after=m)
    assert "reservationId" not in start


async def test_tc_048_1_reservation_connector_faulted(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_048_1_CS: a Faulted connector answers Faulted."""
    a = await start_agent()
    await a.station.raise_fault(1, ErrorCode.GROUND_FAILURE, "test")
    await a.wait_state("FAULTED")
    assert await reserve(cs, 1, "TAG1", 14) == "Faulted"


async def test_tc_048_2_reservation_connector_occupied(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_048_2_CS: a connector with a cable in (Preparing) answers Occupied."""
    a = await start_agent()
    a.plug()
    await a.wait_state("PREPARING")
    assert await reserve(cs, 1, "TAG1", 15) == "Occupied"
    assert stored_reservations(a) == []


async def test_tc_048_3_reservation_connector_unavailable(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_048_3_CS: an Inoperative connector answers Unavailable."""
    a = await start_agent()
    answer = await cs.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert answer["status"] == "Accepted"
    await a.wait_state("UNAVAILABLE")
    assert await reserve(cs, 1, "TAG1", 16) == "Unavailable"


async def test_tc_048_4_reservation_rejected(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_048_4_CS: a reservation the charger will not take is Rejected (here: one that has already expired, or
    one for longer than MAX_RESERVATION), and a reserved connector answers Occupied to another reservation."""
    a = await start_agent()
    assert await reserve(cs, 1, "TAG1", 17, expiry_date=expiry(-1)) == "Rejected"
    days = MAX_RESERVATION.days + 1
    assert await reserve(cs, 1, "TAG1", 17, expiry_date=expiry(days * 86400)) == "Rejected"
    assert await reserve(cs, 1, "TAG1", 18) == "Accepted"
    assert await reserve(cs, 1, "TAG2", 19) == "Occupied"  # §5.13: reserved for another idTag
    assert stored_reservations(a) == [18]


async def test_tc_049_reservation_of_a_charge_point(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_049_CS: connector 0 reserved: on a one-connector charger that connector shows Reserved, only the
    reserved idTag charges there, with the reservationId."""
    a = await start_agent()
    m = mark(cs)
    assert await reserve(cs, 0, "TAG1", 20) == "Accepted"
    await reserved(a, cs, after=m)
    a.plug()
    a.swipe("OTHER")
    await quiet(0.3)
    assert a.state() == "RESERVED"
    a.swipe("TAG1")
    start = await started_with(cs, "TAG1", after=m)
    assert start["reservationId"] == 20


async def test_connector_zero_keeps_one_connector_free(cs: CentralSystem, start_agent: StartAgent) -> None:
    """OCPP 1.6 §5.13: with two connectors a connector-0 reservation lets a stranger take one, then holds
    (shows Reserved) the last one for its idTag."""
    a = await start_agent(connectors=2)
    m = mark(cs)
    assert await reserve(cs, 0, "TAG1", 21) == "Accepted"
    await quiet(0.2)
    assert a.state(1) == "AVAILABLE" and a.state(2) == "AVAILABLE"
    a.plug(1)
    a.swipe("OTHER", 1)
    await started_with(cs, "OTHER", after=m)
    await reserved(a, cs, 2, after=m)
    a.swipe("STRANGER", 2)
    await quiet(0.3)
    assert a.state(2) == "RESERVED"
    a.swipe("TAG1", 2)
    a.plug(2)
    start = await started_with(cs, "TAG1", after=m)
    assert start["reservationId"] == 21 and start["connectorId"] == 2


@pytest.mark.parametrize(
    ("case", "expected"), [("050_1", "Faulted"), ("050_2", "Occupied"), ("050_3", "Unavailable")]
)
async def test_tc_050_reservation_of_a_charge_point_refused(
    cs: CentralSystem, start_agent: StartAgent, case: str, expected: str
) -> None:
    """TC_050_1/2/3_CS: connector 0 cannot be reserved while every connector is Faulted / Occupied / the
    charge point is Unavailable."""
    a = await start_agent()
    if case == "050_1":
        await a.station.raise_fault(1, ErrorCode.GROUND_FAILURE, "test")
        await a.wait_state("FAULTED")
    elif case == "050_2":
        a.plug()
        await a.wait_state("PREPARING")
    else:
        await cs.call(CP, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
        await a.wait_state("UNAVAILABLE")
    assert await reserve(cs, 0, "TAG1", 22) == expected


async def test_tc_051_cancel_reservation(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_051_CS: CancelReservation of the reservation in force: Accepted, the connector is Available."""
    a = await start_agent()
    m = mark(cs)
    assert await reserve(cs, 1, "TAG1", 23) == "Accepted"
    after_reserved = await reserved(a, cs, after=m)
    assert await cancel(cs, 23) == "Accepted"
    await wait_status(cs, 1, "Available", after=after_reserved)
    assert stored_reservations(a) == []
    assert await cancel(cs, 23) == "Rejected"  # it is gone


async def test_tc_052_cancel_reservation_rejected(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_052_CS: CancelReservation of an unknown id: Rejected, the reservation in force stays."""
    a = await start_agent()
    assert await reserve(cs, 1, "TAG1", 24) == "Accepted"
    await a.wait_state("RESERVED")
    assert await cancel(cs, 999) == "Rejected"
    assert a.state() == "RESERVED" and stored_reservations(a) == [24]


async def test_tc_053_reserved_connector_used_with_parent_id_tag(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_053_CS: another card of the reservation's parentIdTag (learnt by Authorize) uses the reservation."""
    group = {"TAG2": "FLEET", "TAG3": "OTHERFLEET"}
    cs.handlers["Authorize"] = lambda cp, p: {  # type: ignore[assignment]
        "idTagInfo": {
            "status": "Accepted",
            **({"parentIdTag": group[p["idTag"]]} if p["idTag"] in group else {}),
        }
    }
    a = await start_agent()
    m = mark(cs)
    assert await reserve(cs, 1, "TAG1", 25, parentIdTag="FLEET") == "Accepted"
    await reserved(a, cs, after=m)
    a.swipe("TAG3")  # another group: asked about (it might have matched), refused
    await cs.wait_for_call("Authorize", after=m, where=lambda p: p["idTag"] == "TAG3")
    await quiet(0.2)
    assert a.state() == "RESERVED"
    a.swipe("TAG2")
    await wait_status(cs, 1, "Preparing", after=m)
    a.plug()
    start = await started_with(cs, "TAG2", after=m)
    assert start["reservationId"] == 25


async def test_same_reservation_id_replaces_the_reservation(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """OCPP 1.6 §5.13: a ReserveNow with the id of a reservation in force replaces it (here: moves it)."""
    a = await start_agent(connectors=2)
    m = mark(cs)
    assert await reserve(cs, 1, "TAG1", 26) == "Accepted"
    after_reserved = await reserved(a, cs, 1, after=m)
    assert await reserve(cs, 2, "TAG9", 26) == "Accepted"
    await reserved(a, cs, 2, after=m)
    await wait_status(cs, 1, "Available", after=after_reserved)
    assert stored_reservations(a) == [26]
    assert a.station.reservations.book.by_id[26].id_tag == "TAG9"


async def test_reservation_profile_and_config_key(cs: CentralSystem, start_agent: StartAgent) -> None:
    """SupportedFeatureProfiles lists Reservation; ReserveConnectorZeroSupported is a read-only key (§9.5)."""
    await start_agent()
    answer = await cs.call(
        CP, "GetConfiguration", {"key": ["SupportedFeatureProfiles", "ReserveConnectorZeroSupported"]}
    )
    keys = {k["key"]: k for k in answer["configurationKey"]}
    assert "Reservation" in keys["SupportedFeatureProfiles"]["value"].split(",")
    assert keys["ReserveConnectorZeroSupported"] == {
        "key": "ReserveConnectorZeroSupported",
        "readonly": True,
        "value": "true",
    }
    change = await cs.call(
        CP, "ChangeConfiguration", {"key": "ReserveConnectorZeroSupported", "value": "false"}
    )
    assert change["status"] == "Rejected"


async def test_hostile_reserve_now_frames(cs: CentralSystem, start_agent: StartAgent) -> None:
    """Bad ReserveNow input gets Rejected or the right CallError, nothing is reserved, and the link stays up."""
    a = await start_agent()
    rejected = [
        {"connectorId": 99},  # no such connector
        {"connectorId": 2**62},  # huge, still an integer
        {"expiryDate": expiry(-60)},  # already expired
        {"expiryDate": "9999-12-31T23:59:59Z"},  # holds the connector for ever
    ]
    for extra in rejected:
        payload = {"connectorId": 1, "expiryDate": expiry(), "idTag": "TAG1", "reservationId": 30, **extra}
        assert (await cs.call(CP, "ReserveNow", payload))["status"] == "Rejected", extra
    errors = [
        ({"connectorId": -1}, "PropertyConstraintViolation"),
        ({"connectorId": 2**64}, "PropertyConstraintViolation"),
        ({"reservationId": 2**63}, "PropertyConstraintViolation"),
        ({"idTag": "X" * 21}, None),  # CiString20Type: a schema violation
        ({"expiryDate": "tomorrow"}, "FormationViolation"),
    ]
    for extra, code in errors:
        payload = {"connectorId": 1, "expiryDate": expiry(), "idTag": "TAG1", "reservationId": 31, **extra}
        with pytest.raises(CallErrorReply) as error:
            await cs.call(CP, "ReserveNow", payload)
        if code is not None:
            assert error.value.code == code, extra
        else:
            assert error.value.code in (
                "FormationViolation",
                "PropertyConstraintViolation",
                "TypeConstraintViolation",
            )
    with pytest.raises(CallErrorReply):
        await cs.call(CP, "CancelReservation", {"reservationId": 2**64})
    assert stored_reservations(a) == [] and a.state() == "AVAILABLE"
    # A negative reservationId is still an integer id (the schema allows it): taken, and cancelled by it.
    assert await reserve(cs, 1, "TAG1", -5) == "Accepted"
    assert await cancel(cs, -5) == "Accepted"
    m = mark(cs)
    assert await cs.call(CP, "TriggerMessage", {"requestedMessage": "Heartbeat"}) == {"status": "Accepted"}
    await cs.wait_for_call("Heartbeat", after=m)
    await until(lambda: a.state() == "AVAILABLE", 5, "not Available after the cancellation")


async def test_reserved_idtag_that_never_plugs_in_leaves_the_reservation_in_force(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """The reserved card presented but no cable within ConnectionTimeOut: Preparing -> Available -> Reserved (the
    only legal way back, OCPP 1.6 §4.9), and the reservation still takes its card."""
    a = await start_agent(settings={"connection_timeout_s": "1"})
    m = mark(cs)
    assert await reserve(cs, 1, "TAG1", 40) == "Accepted"
    after_reserved = await reserved(a, cs, after=m)
    a.swipe("TAG1")
    await wait_status(cs, 1, "Preparing", after=after_reserved)
    await reserved(a, cs, after=after_reserved, timeout=5)
    reported = statuses(cs, 1, after_reserved)
    assert reported == ["Preparing", "Available", "Reserved"]
    assert stored_reservations(a) == [40]
    a.swipe("TAG1")
    a.plug()
    assert (await started_with(cs, "TAG1", after=after_reserved))["reservationId"] == 40


async def test_fault_ends_the_reservation(cs: CentralSystem, start_agent: StartAgent) -> None:
    """OCPP 1.6 §3.11: a connector that becomes Faulted ends its reservation; after the fault it is Available."""
    a = await start_agent()
    m = mark(cs)
    assert await reserve(cs, 1, "TAG1", 41) == "Accepted"
    after_reserved = await reserved(a, cs, after=m)
    await a.station.raise_fault(1, ErrorCode.GROUND_FAILURE, "test")
    await wait_status(cs, 1, "Faulted", after=after_reserved)
    assert stored_reservations(a) == []
    await a.station.clear_fault(1, ErrorCode.GROUND_FAILURE)
    await wait_status(cs, 1, "Available", after=after_reserved)
    assert await cancel(cs, 41) == "Rejected"
