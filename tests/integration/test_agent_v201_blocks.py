"""The agent over OCPP 2.0.1, blocks D (local authorization list), H (reservation), L (firmware) and N (GetLog),
against the bundled central system's real 2.0.1 side (every frame of the charger checked against the 2.0.1
schemas) with real HTTP file servers on 127.0.0.1; named after the OCA 2.0.1 charging-station test cases
(TC_<block>_<nn>_CS) each covers."""

from __future__ import annotations

import asyncio
import io
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from backend_stub.app import Csms
from chargepoint.core.storage import CertificateHashData, CertificateUse, InstalledCertificate
from chargepoint.csms.times import ocpp_time
from tests.integration.conftest import RunningAgent, until
from tests.integration.file_servers import HttpFiles, http_files
from tests.integration.signing import make_chain, pem, sign
from tests.integration.v201_support import (
    CP,
    StartAgent,
    call_error,
    calls,
    csms,
    get_value,
    mark,
    set_value,
    start_agent,
    start_session,
    still_connected,
    wait_call,
)

__all__ = ["csms", "http_files", "start_agent"]  # fixtures

IMAGE = b"FIRMWARE 2.0.0\n" + bytes(range(256)) * 64  # the simulated installer reports version 2.0.0


# D. Local authorization list -------------------------------------------------------------------------------------


def entry(tag: str, status: str | None = "Accepted", **info: Any) -> dict[str, Any]:
    """An AuthorizationData element (without idTokenInfo when ``status`` is None: a removal)."""
    data: dict[str, Any] = {"idToken": {"idToken": tag, "type": "ISO14443"}}
    if status is not None:
        data["idTokenInfo"] = {"status": status, **info}
    return data


async def send_list(csms: Csms, version: int, update: str, entries: list[dict[str, Any]]) -> str:
    payload: dict[str, Any] = {"versionNumber": version, "updateType": update}
    if entries:
        payload["localAuthorizationList"] = entries
    answer = await csms.server.call(CP, "SendLocalList", payload)
    status: str = answer["status"]
    return status


async def list_version(csms: Csms) -> int:
    version: int = (await csms.server.call(CP, "GetLocalListVersion", {}))["versionNumber"]
    return version


async def test_tc_d_01_tc_d_02_tc_d_03_tc_d_08_cs_full_then_differential_update_and_remove(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent()
    assert await list_version(csms) == 0  # no list yet
    expiry = ocpp_time(datetime.now(UTC) + timedelta(days=1))
    full = [
        entry("LOCAL1", cacheExpiryDateTime=expiry, groupIdToken={"idToken": "FLEET", "type": "Central"}),
        entry("BLOCKED1", "Blocked"),
        entry("NOCREDIT1", "NoCredit"),  # a 2.0.1 status the core has no word for: a refusal
    ]
    assert await send_list(csms, 5, "Full", full) == "Accepted"
    assert await list_version(csms) == 5
    store = a.agent.store
    assert store is not None
    local1 = store.local_get("LOCAL1")
    assert local1 is not None and local1.status.name == "ACCEPTED" and local1.parent_id_tag == "FLEET"
    assert local1.expiry is not None
    blocked, no_credit = store.local_get("BLOCKED1"), store.local_get("NOCREDIT1")
    assert blocked is not None and blocked.status.name == "BLOCKED"
    assert no_credit is not None and no_credit.status.name == "INVALID"
    entries = await get_value(csms, "LocalAuthListCtrlr", "Entries")
    assert entries["attributeValue"] == "3"
    assert int((await get_value(csms, "LocalAuthListCtrlr", "Storage"))["attributeValue"]) > 0
    # TC_D_02: a differential update adds and changes; TC_D_03: an entry without idTokenInfo is removed.
    assert (
        await send_list(csms, 6, "Differential", [entry("LOCAL2"), entry("BLOCKED1", "Accepted")])
        == "Accepted"
    )
    assert await send_list(csms, 7, "Differential", [entry("NOCREDIT1", None)]) == "Accepted"
    assert await list_version(csms) == 7
    assert store.local_get("NOCREDIT1") is None
    blocked = store.local_get("BLOCKED1")
    assert blocked is not None and blocked.status.name == "ACCEPTED"
    assert (await get_value(csms, "LocalAuthListCtrlr", "Entries"))["attributeValue"] == "3"


async def test_tc_d_04_tc_d_05_tc_d_06_cs_empty_lists_and_version_mismatch(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent()
    assert await send_list(csms, 3, "Full", [entry("LOCAL1"), entry("LOCAL2")]) == "Accepted"
    # TC_D_06: a differential update that is not newer than the list is VersionMismatch, and changes nothing.
    assert await send_list(csms, 3, "Differential", [entry("LOCAL3")]) == "VersionMismatch"
    assert await send_list(csms, 2, "Differential", [entry("LOCAL3")]) == "VersionMismatch"
    store = a.agent.store
    assert store is not None and store.local_get("LOCAL3") is None
    # TC_D_05: a differential update without entries only moves the version.
    assert await send_list(csms, 4, "Differential", []) == "Accepted"
    assert await list_version(csms) == 4
    assert store.local_list_size() == 2
    # TC_D_04: a full update without entries empties the list.
    assert await send_list(csms, 5, "Full", []) == "Accepted"
    assert store.local_list_size() == 0
    assert (await get_value(csms, "LocalAuthListCtrlr", "Entries"))["attributeValue"] == "0"


async def test_tc_d_07_cs_the_local_list_persists_over_a_reboot(
    csms: Csms, start_agent: StartAgent, tmp_path: Path
) -> None:
    a = await start_agent()
    assert await send_list(csms, 9, "Full", [entry("LOCAL1")]) == "Accepted"
    await a.stop()
    after = mark(csms)
    b = await start_agent(db=tmp_path / "agent.db")
    await wait_call(csms, "BootNotification", after=after)
    assert await list_version(csms) == 9
    assert b.agent.store is not None and b.agent.store.local_get("LOCAL1") is not None


async def test_tc_d_10_cs_get_local_list_version_function_disabled(
    csms: Csms, start_agent: StartAgent
) -> None:
    await start_agent()
    assert await send_list(csms, 2, "Full", [entry("LOCAL1")]) == "Accepted"
    assert (await set_value(csms, "LocalAuthListCtrlr", "Enabled", "false"))["attributeStatus"] == "Accepted"
    assert await list_version(csms) == 0  # 2.0.1 has no -1
    assert await send_list(csms, 3, "Full", [entry("LOCAL2")]) == "Failed"


async def test_local_list_controller_variables_and_their_mutability(
    csms: Csms, start_agent: StartAgent
) -> None:
    await start_agent()
    for variable in ("Entries", "ItemsPerMessage", "BytesPerMessage", "Storage"):
        assert (await set_value(csms, "LocalAuthListCtrlr", variable, "1"))[
            "attributeStatus"
        ] == "Rejected", variable
    assert (await get_value(csms, "LocalAuthListCtrlr", "ItemsPerMessage"))["attributeValue"] == "1000"
    assert (await get_value(csms, "LocalAuthListCtrlr", "BytesPerMessage"))["attributeValue"] == "256000"
    after = mark(csms)
    answer = await csms.server.call(CP, "GetBaseReport", {"requestId": 3, "reportBase": "FullInventory"})
    assert answer["status"] == "Accepted"
    await wait_call(csms, "NotifyReport", after=after, where=lambda p: not p.get("tbc"))
    reported = {
        (d["component"]["name"], d["variable"]["name"]): d
        for p in calls(csms, "NotifyReport", after)
        for d in p["reportData"]
    }
    entries = reported[("LocalAuthListCtrlr", "Entries")]
    assert entries["variableAttribute"][0]["value"] == "0"
    assert entries["variableAttribute"][0]["mutability"] == "ReadOnly"
    assert entries["variableCharacteristics"]["maxLimit"] == 10_000  # the most it may hold
    assert reported[("LocalAuthListCtrlr", "Enabled")]["variableAttribute"][0]["mutability"] == "ReadWrite"
    assert reported[("ReservationCtrlr", "Enabled")]["variableAttribute"][0]["mutability"] == "ReadWrite"
    assert (
        reported[("ReservationCtrlr", "NonEvseSpecific")]["variableAttribute"][0]["mutability"] == "ReadOnly"
    )


async def test_send_local_list_bad_input(csms: Csms, start_agent: StartAgent) -> None:
    a = await start_agent()
    # A negative version is no version: PropertyConstraintViolation, nothing stored.
    code = await call_error(
        csms,
        "SendLocalList",
        {"versionNumber": -1, "updateType": "Full", "localAuthorizationList": [entry("X")]},
    )
    assert code == "PropertyConstraintViolation"
    assert await list_version(csms) == 0
    # More entries than ItemsPerMessage: Failed, nothing stored.
    many = [entry(f"T{i}") for i in range(1001)]
    assert await send_list(csms, 1, "Full", many) == "Failed"
    assert a.agent.store is not None and a.agent.store.local_list_size() == 0
    still_connected(a)


# H. Reservation --------------------------------------------------------------------------------------------------


def reserve(
    reservation_id: int, tag: str, *, in_s: float = 600, evse_id: int | None = 1, **extra: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": reservation_id,
        "expiryDateTime": ocpp_time(datetime.now(UTC) + timedelta(seconds=in_s)),
        "idToken": {"idToken": tag, "type": "ISO14443"},
        **extra,
    }
    if evse_id is not None:
        payload["evseId"] = evse_id
    return payload


async def reserve_now(csms: Csms, payload: dict[str, Any]) -> str:
    status: str = (await csms.server.call(CP, "ReserveNow", payload))["status"]
    return status


async def wait_status(csms: Csms, status: str, after: int, evse_id: int = 1) -> None:
    await wait_call(
        csms,
        "StatusNotification",
        after=after,
        where=lambda p: p["connectorStatus"] == status and p["evseId"] == evse_id,
    )


async def test_tc_h_01_cs_reserve_a_specific_evse_and_the_reserved_token_starts(
    csms: Csms, start_agent: StartAgent
) -> None:
    csms.store.add_card("CARD1", user_id=csms.store.add_user("Ada").id, mode="personal")
    a = await start_agent()
    after = mark(csms)
    assert await reserve_now(csms, reserve(11, "CARD1")) == "Accepted"
    await wait_status(csms, "Reserved", after)
    assert a.state() == "RESERVED"
    a.swipe("CARD1")
    a.plug()
    started = (
        await wait_call(csms, "TransactionEvent", after=after, where=lambda p: p["eventType"] == "Started")
    ).payload
    assert started["reservationId"] == 11  # H03: the transaction ends the reservation
    assert started["idToken"] == {"idToken": "CARD1", "type": "ISO14443"}
    store = a.agent.store
    assert store is not None and store.reservations() == []
    assert calls(csms, "ReservationStatusUpdate", after) == []  # used, not expired or removed


async def test_tc_h_02_h_03_h_23_cs_another_token_is_refused_and_a_reservation_is_replaced_by_id(
    csms: Csms, start_agent: StartAgent
) -> None:
    user = csms.store.add_user("Ada").id
    csms.store.add_card("CARD1", user_id=user, mode="personal")
    csms.store.add_card("CARD2", user_id=user, mode="personal")
    a = await start_agent()
    assert await reserve_now(csms, reserve(12, "CARD1")) == "Accepted"
    # TC_H_03: the EVSE is reserved (by another id): Occupied.
    assert await reserve_now(csms, reserve(13, "CARD2")) == "Occupied"
    # TC_H_23: the same id replaces the reservation.
    assert await reserve_now(csms, reserve(12, "CARD2")) == "Accepted"
    store = a.agent.store
    assert store is not None and [r.id_tag for r in store.reservations()] == ["CARD2"]
    # TC_H_02: a card other than the reserved one does not start on the reserved EVSE.
    after = mark(csms)
    a.swipe("CARD1")
    a.plug()
    a.swipe("CARD2")  # the reserved card starts: the first did not
    started = await wait_call(
        csms, "TransactionEvent", after=after, where=lambda p: p["eventType"] == "Started"
    )
    assert started.payload["idToken"]["idToken"] == "CARD2" and started.payload["reservationId"] == 12
    assert len([p for p in calls(csms, "TransactionEvent", after) if p["eventType"] == "Started"]) == 1


async def test_tc_h_07_cs_reservation_ended_not_used_is_reported_expired(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent()
    after = mark(csms)
    assert await reserve_now(csms, reserve(21, "CARD1", in_s=1.5)) == "Accepted"
    update = await wait_call(csms, "ReservationStatusUpdate", after=after, timeout=10)
    assert update.payload == {"reservationId": 21, "reservationUpdateStatus": "Expired"}
    await wait_status(csms, "Available", after)
    assert a.state() == "AVAILABLE"


async def test_a_reservation_that_expired_while_the_station_was_down_is_reported_after_the_restart(
    csms: Csms, start_agent: StartAgent, tmp_path: Path
) -> None:
    """The ReservationStatusUpdate goes through the durable outbox: an expiry the CSMS could not be told of
    (the agent was down) is reported once the station is back, exactly once."""
    a = await start_agent()
    payload = reserve(22, "CARD1", in_s=1.5)
    assert await reserve_now(csms, payload) == "Accepted"
    await a.stop()
    expiry = datetime.fromisoformat(payload["expiryDateTime"].replace("Z", "+00:00"))
    while datetime.now(UTC) <= expiry:  # the reservation expires while no agent runs
        await asyncio.sleep(0.1)
    after = mark(csms)
    b = await start_agent(db=tmp_path / "agent.db")
    update = await wait_call(csms, "ReservationStatusUpdate", after=after, timeout=10)
    assert update.payload == {"reservationId": 22, "reservationUpdateStatus": "Expired"}
    assert b.agent.store is not None and b.agent.store.reservations() == []
    await wait_status(csms, "Available", after)
    assert len(calls(csms, "ReservationStatusUpdate", after)) == 1


async def test_tc_h_08_h_14_cs_reserve_an_unspecified_evse(csms: Csms, start_agent: StartAgent) -> None:
    a = await start_agent()
    after = mark(csms)
    assert await reserve_now(csms, reserve(31, "CARD1", evse_id=None)) == "Accepted"
    # TC_H_14: one EVSE, one reservation: the EVSE shows Reserved, and no second one fits.
    await wait_status(csms, "Reserved", after)
    assert await reserve_now(csms, reserve(32, "CARD2", evse_id=None)) == "Occupied"
    assert a.state() == "RESERVED"


async def test_tc_h_17_h_18_cs_cancel_a_reservation_and_an_unknown_one(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent()
    assert await reserve_now(csms, reserve(41, "CARD1")) == "Accepted"
    after = mark(csms)
    assert await csms.server.call(CP, "CancelReservation", {"reservationId": 41}) == {"status": "Accepted"}
    await wait_status(csms, "Available", after)
    # TC_H_18: an id the station does not hold (any more) is Rejected.
    assert await csms.server.call(CP, "CancelReservation", {"reservationId": 41}) == {"status": "Rejected"}
    assert await csms.server.call(CP, "CancelReservation", {"reservationId": 999}) == {"status": "Rejected"}
    assert (
        await call_error(csms, "CancelReservation", {"reservationId": -41}) == "PropertyConstraintViolation"
    )
    assert calls(csms, "ReservationStatusUpdate", after) == []  # the CSMS asked: nothing to report
    still_connected(a)


async def test_tc_h_21_cs_station_removes_the_reservation_when_the_evse_turns_unavailable(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent()
    assert await reserve_now(csms, reserve(51, "CARD1")) == "Accepted"
    after = mark(csms)
    answer = await csms.server.call(
        CP, "ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}}
    )
    assert answer["status"] == "Accepted"
    update = await wait_call(csms, "ReservationStatusUpdate", after=after)
    assert update.payload == {"reservationId": 51, "reservationUpdateStatus": "Removed"}
    # TC_H_06: an Unavailable EVSE cannot be reserved.
    assert await reserve_now(csms, reserve(52, "CARD1")) == "Unavailable"
    assert a.agent.store is not None and a.agent.store.reservations() == []


async def test_tc_h_22_cs_reserve_a_specific_evse_configured_to_reject(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent()
    assert (await set_value(csms, "ReservationCtrlr", "Enabled", "false"))["attributeStatus"] == "Accepted"
    assert await reserve_now(csms, reserve(61, "CARD1")) == "Rejected"
    assert a.state() == "AVAILABLE"


async def test_reserve_now_bad_input(csms: Csms, start_agent: StartAgent) -> None:
    a = await start_agent()
    assert await reserve_now(csms, reserve(71, "CARD1", evse_id=9)) == "Rejected"  # no such EVSE
    assert await reserve_now(csms, reserve(72, "CARD1", in_s=-60)) == "Rejected"  # already expired
    assert await reserve_now(csms, reserve(73, "CARD1", in_s=400 * 86400)) == "Rejected"  # too far ahead
    bad_date = {**reserve(74, "CARD1"), "expiryDateTime": "tomorrow"}
    assert await call_error(csms, "ReserveNow", bad_date) == "FormatViolation"
    assert await call_error(csms, "ReserveNow", reserve(-5, "CARD1")) == "PropertyConstraintViolation"
    assert a.agent.store is not None and a.agent.store.reservations() == []
    assert a.state() == "AVAILABLE"
    still_connected(a)


# L. Firmware management ------------------------------------------------------------------------------------------


def _install_root(a: RunningAgent, root_pem: str) -> None:
    """A ManufacturerRootCertificate, as InstallCertificate would leave it."""
    store = a.agent.store
    assert store is not None
    hashes = CertificateHashData("aa", "bb", "1")
    store.install_certificate(
        InstalledCertificate(CertificateUse.MANUFACTURER_ROOT, root_pem, hashes, datetime.now(UTC))
    )


def update_firmware(
    request_id: int, location: str, *, cert: str | None = None, signature: str | None = None, **firmware: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "location": location,
        "retrieveDateTime": ocpp_time(datetime.now(UTC)),
        **firmware,
    }
    if cert is not None:
        body["signingCertificate"] = cert
    if signature is not None:
        body["signature"] = signature
    return {"requestId": request_id, "retries": 0, "retryInterval": 0, "firmware": body}


def firmware_statuses(csms: Csms, after: int) -> list[tuple[str, int | None]]:
    return [(p["status"], p.get("requestId")) for p in calls(csms, "FirmwareStatusNotification", after)]


async def wait_firmware(csms: Csms, status: str, after: int, timeout: float = 20) -> Any:
    return await wait_call(
        csms,
        "FirmwareStatusNotification",
        after=after,
        timeout=timeout,
        where=lambda p: p["status"] == status,
    )


async def test_tc_l_01_cs_secure_firmware_update_installed_after_the_reboot(
    csms: Csms, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    chain = make_chain()
    a = await start_agent()
    _install_root(a, pem(chain.root))
    http_files.files["/fw/2.0.0.bin"] = IMAGE
    url = f"{http_files.url}/fw/2.0.0.bin"
    after = mark(csms)
    payload = update_firmware(7, url, cert=pem(chain.signer), signature=sign(chain.signer_key, IMAGE))
    assert await csms.server.call(CP, "UpdateFirmware", payload) == {"status": "Accepted"}
    installed = await wait_firmware(csms, "Installed", after)
    assert installed.payload == {"status": "Installed", "requestId": 7}
    assert firmware_statuses(csms, after) == [
        ("Downloading", 7),
        ("Downloaded", 7),
        ("SignatureVerified", 7),
        ("Installing", 7),
        ("InstallRebooting", 7),
        ("Installed", 7),
    ]
    # The reboot into the new firmware came between InstallRebooting and Installed (the status survived it).
    boots = [f for f in csms.server.log[after:] if f.direction == "in" and f.action == "BootNotification"]
    assert boots and boots[0].payload["chargingStation"]["firmwareVersion"] == "2.0.0"
    log = csms.server.log
    rebooting = await wait_firmware(csms, "InstallRebooting", after)
    assert log.index(rebooting) < log.index(boots[0]) < log.index(installed)
    assert a.agent.resets and a.agent.store is not None and a.agent.store.file_job("firmware") is None


async def test_tc_l_02_l_10_cs_install_scheduled_then_replaced_accepted_canceled(
    csms: Csms, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    """TC_L_02 (installDateTime ahead: InstallScheduled), then TC_L_10 (a new request cancels it)."""
    csms.store.add_card("CARD1", user_id=csms.store.add_user("Ada").id, mode="personal")
    a = await start_agent()
    await start_session(a, csms, "CARD1")  # the install waits for the transaction too
    http_files.files["/fw/a.bin"] = IMAGE
    after = mark(csms)
    later = ocpp_time(datetime.now(UTC) + timedelta(hours=1))
    payload = update_firmware(8, f"{http_files.url}/fw/a.bin", installDateTime=later)
    assert await csms.server.call(CP, "UpdateFirmware", payload) == {"status": "Accepted"}
    await wait_firmware(csms, "InstallScheduled", after)
    assert firmware_statuses(csms, after) == [("Downloading", 8), ("Downloaded", 8), ("InstallScheduled", 8)]
    assert a.state() == "CHARGING" and a.agent.resets == []
    # TC_L_10: a new request replaces the one that has not begun installing.
    after = mark(csms)
    answer = await csms.server.call(CP, "UpdateFirmware", update_firmware(9, f"{http_files.url}/missing.bin"))
    assert answer == {"status": "AcceptedCanceled"}
    await wait_firmware(csms, "DownloadFailed", after)
    assert firmware_statuses(csms, after) == [("Downloading", 9), ("DownloadFailed", 9)]


async def test_tc_l_05_l_06_cs_invalid_certificate_and_invalid_signature(
    csms: Csms, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    chain = make_chain()
    a = await start_agent()
    _install_root(a, pem(chain.root))
    http_files.files["/fw/s.bin"] = IMAGE
    url = f"{http_files.url}/fw/s.bin"
    # TC_L_05: a signing certificate the manufacturer root did not issue: InvalidCertificate and a security event.
    after = mark(csms)
    bad_cert = update_firmware(
        10, url, cert=pem(chain.untrusted_signer), signature=sign(chain.signer_key, IMAGE)
    )
    assert await csms.server.call(CP, "UpdateFirmware", bad_cert) == {"status": "InvalidCertificate"}
    await wait_call(
        csms,
        "SecurityEventNotification",
        after=after,
        where=lambda p: p["type"] == "InvalidFirmwareSigningCertificate",
    )
    assert calls(csms, "FirmwareStatusNotification", after) == []
    # TC_L_06: a signature over other bytes: InvalidSignature, a security event, nothing installed.
    after = mark(csms)
    bad_sig = update_firmware(11, url, cert=pem(chain.signer), signature=sign(chain.signer_key, IMAGE + b"x"))
    assert await csms.server.call(CP, "UpdateFirmware", bad_sig) == {"status": "Accepted"}
    await wait_firmware(csms, "InvalidSignature", after)
    assert firmware_statuses(csms, after) == [
        ("Downloading", 11),
        ("Downloaded", 11),
        ("InvalidSignature", 11),
    ]
    await wait_call(
        csms,
        "SecurityEventNotification",
        after=after,
        where=lambda p: p["type"] == "InvalidFirmwareSignature",
    )
    assert a.agent.resets == []


async def test_tc_l_07_cs_download_failed_for_an_unreachable_location(
    csms: Csms, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    a = await start_agent()
    after = mark(csms)
    # Nothing listens on port 9 of 127.0.0.1 (discard): the connection is refused.
    payload = {**update_firmware(12, "http://127.0.0.1:9/fw.bin"), "retries": 1, "retryInterval": 0}
    assert await csms.server.call(CP, "UpdateFirmware", payload) == {"status": "Accepted"}
    await wait_firmware(csms, "DownloadFailed", after)
    assert firmware_statuses(csms, after) == [("Downloading", 12), ("DownloadFailed", 12)]  # two attempts
    assert a.agent.store is not None and a.agent.store.file_job("firmware") is None
    # A location of a scheme the station cannot fetch fails the same way.
    after = mark(csms)
    assert await csms.server.call(CP, "UpdateFirmware", update_firmware(13, "gopher://x/fw")) == {
        "status": "Accepted"
    }
    await wait_firmware(csms, "DownloadFailed", after)
    assert a.agent.resets == []
    still_connected(a)


async def test_update_firmware_bad_input_and_triggered_status(
    csms: Csms, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    a = await start_agent()
    bad = update_firmware(14, f"{http_files.url}/fw.bin")
    bad["firmware"]["retrieveDateTime"] = "soon"
    assert await call_error(csms, "UpdateFirmware", bad) == "FormatViolation"
    far = update_firmware(15, f"{http_files.url}/fw.bin")
    far["firmware"]["installDateTime"] = (
        "9999-12-31T23:59:59Z"  # far ahead: taken as the longest wait we allow
    )
    negative = {**update_firmware(16, f"{http_files.url}/fw.bin"), "requestId": -1}
    assert await call_error(csms, "UpdateFirmware", negative) == "PropertyConstraintViolation"
    # F06: a triggered FirmwareStatusNotification with nothing in progress is Idle, without requestId.
    after = mark(csms)
    answer = await csms.server.call(CP, "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
    assert answer == {"status": "Accepted"}
    triggered = await wait_call(csms, "FirmwareStatusNotification", after=after)
    assert triggered.payload == {"status": "Idle"}
    # While an update waits for its install time, the trigger reports it with its requestId.
    http_files.files["/fw.bin"] = IMAGE
    assert await csms.server.call(CP, "UpdateFirmware", far) == {"status": "Accepted"}
    await wait_firmware(csms, "InstallScheduled", after)
    after = mark(csms)
    await csms.server.call(CP, "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"})
    triggered = await wait_call(csms, "FirmwareStatusNotification", after=after)
    assert triggered.payload == {"status": "InstallScheduled", "requestId": 15}
    still_connected(a)


# N. Diagnostics: GetLog ------------------------------------------------------------------------------------------


def get_log(request_id: int, location: str, log_type: str = "DiagnosticsLog", **extra: Any) -> dict[str, Any]:
    return {
        "logType": log_type,
        "requestId": request_id,
        "retries": 0,
        "retryInterval": 0,
        "log": {"remoteLocation": location, **extra},
    }


def log_statuses(csms: Csms, after: int) -> list[tuple[str, int | None]]:
    return [(p["status"], p.get("requestId")) for p in calls(csms, "LogStatusNotification", after)]


async def wait_log(csms: Csms, status: str, after: int) -> Any:
    return await wait_call(
        csms, "LogStatusNotification", after=after, timeout=10, where=lambda p: p["status"] == status
    )


def archive_members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: (tar.extractfile(m) or io.BytesIO()).read() for m in tar.getmembers() if m.isfile()}


async def test_tc_n_25_cs_diagnostics_log_uploaded(
    csms: Csms, start_agent: StartAgent, http_files: HttpFiles, tmp_path: Path
) -> None:
    logfile = tmp_path / "agent.log"
    logfile.write_text("2026-01-02 10:00:00,000 INFO charging started\n")
    a = await start_agent(firmware={"log_files": [str(logfile)]})
    after = mark(csms)
    oldest = "2026-01-01T00:00:00Z"  # the line logged on 2026-01-02 is in the interval
    answer = await csms.server.call(
        CP, "GetLog", get_log(21, f"{http_files.url}/logs/", oldestTimestamp=oldest)
    )
    assert answer["status"] == "Accepted" and answer["filename"].endswith(".tar.gz")
    await wait_log(csms, "Uploaded", after)
    assert log_statuses(csms, after) == [("Uploading", 21), ("Uploaded", 21)]
    uploaded = http_files.uploads[f"/logs/{answer['filename']}"]
    assert any(b"charging started" in body for body in archive_members(uploaded).values())
    still_connected(a)


async def test_tc_n_26_cs_diagnostics_log_upload_failed(
    csms: Csms, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    await start_agent()
    http_files.fail_uploads = 10
    after = mark(csms)
    answer = await csms.server.call(CP, "GetLog", {**get_log(22, f"{http_files.url}/logs/"), "retries": 1})
    assert answer["status"] == "Accepted"
    await wait_log(csms, "UploadFailure", after)
    assert log_statuses(csms, after) == [("Uploading", 22), ("UploadFailure", 22)]
    assert [m for m, _ in http_files.requests] == ["PUT", "PUT"]  # the first attempt and its one retry


async def test_tc_n_35_tc_n_36_cs_security_log_and_a_second_request(
    csms: Csms, start_agent: StartAgent, http_files: HttpFiles, tmp_path: Path
) -> None:
    """TC_N_35 (SecurityLog uploaded), TC_N_36 (a second request while one runs: AcceptedCanceled)."""
    seclog = tmp_path / "security.log"
    seclog.write_text("2026-01-02 10:00:00,000 WARNING FailedToAuthenticateAtCsms\n")
    await start_agent(firmware={"security_log_files": [str(seclog)]})
    http_files.fail_uploads = 1  # the first attempt fails; its retry waits (retryInterval) and is canceled
    after = mark(csms)
    first = {**get_log(31, f"{http_files.url}/sec/", "SecurityLog"), "retries": 3, "retryInterval": 3600}
    assert (await csms.server.call(CP, "GetLog", first))["status"] == "Accepted"
    await until(lambda: len(http_files.requests) >= 1, 10, "the first upload was never tried")
    second = await csms.server.call(CP, "GetLog", get_log(32, f"{http_files.url}/sec/", "SecurityLog"))
    assert second["status"] == "AcceptedCanceled"
    await wait_log(csms, "Uploaded", after)
    assert log_statuses(csms, after)[-2:] == [("Uploading", 32), ("Uploaded", 32)]
    uploaded = http_files.uploads[f"/sec/{second['filename']}"]
    assert any(b"FailedToAuthenticateAtCsms" in body for body in archive_members(uploaded).values())


async def test_get_log_bad_input_and_triggered_log_status(
    csms: Csms, start_agent: StartAgent, http_files: HttpFiles
) -> None:
    a = await start_agent()
    after = mark(csms)
    # A location the station cannot upload to: Rejected, and no upload starts.
    assert (await csms.server.call(CP, "GetLog", get_log(41, "gopher://x/logs")))["status"] == "Rejected"
    bad = get_log(42, f"{http_files.url}/logs/", latestTimestamp="yesterday")
    assert await call_error(csms, "GetLog", bad) == "FormatViolation"
    assert (
        await call_error(csms, "GetLog", get_log(42, f"{http_files.url}/logs/", "AuditLog"))
        == "FormatViolation"
    )
    assert calls(csms, "LogStatusNotification", after) == []
    # F06: a triggered LogStatusNotification with no upload running is Idle, without requestId.
    answer = await csms.server.call(CP, "TriggerMessage", {"requestedMessage": "LogStatusNotification"})
    assert answer == {"status": "Accepted"}
    triggered = await wait_call(csms, "LogStatusNotification", after=after)
    assert triggered.payload == {"status": "Idle"}
    still_connected(a)
