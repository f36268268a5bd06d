"""The 2.0.1 CSMS business-rule judges on payloads (no network): what a schema-valid CALL of a CSMS may still get
wrong in a local list, a reservation or a charging profile, each failing with its clause."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conformance.csms_runner import CsmsContext, ocpp_time
from conformance.model import Fail
from conformance.v201.csms_judges import (
    REPORTED_HASHES,
    REPORTED_LIST_VERSION,
    Judge,
    clear_profile_rules,
    composite_rules,
    deletes_a_reported_certificate,
    get_profiles_rules,
    local_list_rules,
    remote_start_profile_rules,
    reservation_rules,
    same_reservation,
    set_profile_rules,
)

TOKEN = {"idToken": "TAG-1", "type": "Central"}


def profile(**changes: Any) -> dict[str, Any]:
    """A valid TxDefaultProfile (Absolute, from now, 0 s: 16 A, 600 s: 8 A) with ``changes`` applied."""
    body: dict[str, Any] = {
        "id": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": 1,
                "startSchedule": ocpp_time(),
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 16.0},
                    {"startPeriod": 600, "limit": 8.0},
                ],
            }
        ],
    }
    body.update(changes)
    return body


def with_periods(*periods: tuple[int, float]) -> dict[str, Any]:
    body = profile()
    body["chargingSchedule"][0]["chargingSchedulePeriod"] = [
        {"startPeriod": s, "limit": x} for s, x in periods
    ]
    return body


def judged(judge: Judge, payload: dict[str, Any], **known: Any) -> str:
    """The judge's reason ('' when the payload keeps the rules)."""
    ctx = CsmsContext()
    ctx.vars.update(known)
    try:
        judge(ctx, copy.deepcopy(payload))
    except Fail as exc:
        return exc.reason
    return ""


def local_list(version: int, update: str, *items: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"versionNumber": version, "updateType": update}
    if items:
        body["localAuthorizationList"] = list(items)
    return body


ACCEPTED_ENTRY = {"idToken": TOKEN, "idTokenInfo": {"status": "Accepted"}}
FULL, DIFF, REMOVE, EMPTY = (
    local_list_rules("Full", entries="with_info"),
    local_list_rules("Differential", entries="with_info"),
    local_list_rules("Differential", entries="without_info"),
    local_list_rules("Full", entries="none"),
)


@pytest.mark.parametrize(
    ("judge", "payload", "known", "why"),
    [
        (FULL, local_list(1, "Full", ACCEPTED_ENTRY), {}, ""),
        (FULL, local_list(0, "Full", ACCEPTED_ENTRY), {}, "D01.FR.18"),
        (FULL, local_list(-3, "Full", ACCEPTED_ENTRY), {}, "D01.FR.18"),
        (FULL, local_list(2, "Differential", ACCEPTED_ENTRY), {}, "updateType Differential"),
        (FULL, local_list(2, "Full", ACCEPTED_ENTRY, ACCEPTED_ENTRY), {}, "D01.FR.06"),
        (FULL, local_list(2, "Full", {"idToken": TOKEN}), {}, "without idTokenInfo"),
        (DIFF, local_list(4, "Differential", ACCEPTED_ENTRY), {REPORTED_LIST_VERSION: 3}, ""),
        (DIFF, local_list(3, "Differential", ACCEPTED_ENTRY), {REPORTED_LIST_VERSION: 3}, "higher version"),
        (REMOVE, local_list(5, "Differential", {"idToken": TOKEN}), {REPORTED_LIST_VERSION: 4}, ""),
        (REMOVE, local_list(5, "Differential", ACCEPTED_ENTRY), {}, "D01.FR.17"),
        (EMPTY, local_list(6, "Full"), {}, ""),
        (EMPTY, local_list(6, "Full", ACCEPTED_ENTRY), {}, "meant to empty"),
    ],
)
def test_local_list_rules(judge: Judge, payload: dict[str, Any], known: dict[str, Any], why: str) -> None:
    got = judged(judge, payload, **known)
    assert (why in got) if why else got == "", got


def reservation(minutes: float = 30, **extra: Any) -> dict[str, Any]:
    expiry = ocpp_time(datetime.now(UTC) + timedelta(minutes=minutes))
    return {"id": 7, "expiryDateTime": expiry, "idToken": TOKEN, **extra}


@pytest.mark.parametrize(
    ("judge", "payload", "why"),
    [
        (reservation_rules(evse=1), reservation(evseId=1), ""),
        (reservation_rules(evse=1), reservation(-5, evseId=1), "not in the future"),
        (reservation_rules(evse=1), reservation(evseId=2), "evseId 2"),
        (reservation_rules(evse=None), reservation(evseId=1), "omitted"),
        (reservation_rules(evse=None, connector_type="cType2"), reservation(), "connectorType None"),
        (reservation_rules(evse=1, group=True), reservation(evseId=1), "without groupIdToken"),
        (
            reservation_rules(evse=1),
            reservation(evseId=1, idToken={"idToken": "", "type": "Central"}),
            "empty",
        ),
    ],
)
def test_reservation_rules(judge: Judge, payload: dict[str, Any], why: str) -> None:
    got = judged(judge, payload)
    assert (why in got) if why else got == "", got


def test_cancel_reservation_names_the_reservation_made() -> None:
    assert judged(same_reservation, {"reservationId": 7}, reservation_id=7) == ""
    assert "H02" in judged(same_reservation, {"reservationId": 8}, reservation_id=7)


TX_DEFAULT = set_profile_rules("TxDefaultProfile", evse=1)
MAX = set_profile_rules("ChargingStationMaxProfile", evse=0)
TX = set_profile_rules("TxProfile", evse=1, tx=lambda ctx: "T-1")


@pytest.mark.parametrize(
    ("judge", "evse", "body", "why"),
    [
        (TX_DEFAULT, 1, profile(), ""),
        (TX_DEFAULT, 1, with_periods((30, 16.0)), "K01.FR.31"),
        (TX_DEFAULT, 1, with_periods((0, 16.0), (600, 8.0), (600, 6.0)), "do not increase"),
        (TX_DEFAULT, 1, with_periods((0, float("nan"))), "not a finite rate"),
        (TX_DEFAULT, 1, with_periods((0, float("inf"))), "not a finite rate"),
        (TX_DEFAULT, 1, with_periods((0, -1.0)), "not a finite rate"),
        (TX_DEFAULT, 1, with_periods((0, 6.25)), "one digit fraction"),
        (TX_DEFAULT, 1, profile(stackLevel=-1), "stackLevel -1"),
        (TX_DEFAULT, 1, profile(chargingProfilePurpose="ChargingStationExternalConstraints"), "expected"),
        (TX_DEFAULT, 2, profile(), "evseId 2"),
        (TX_DEFAULT, 1, profile(chargingProfileKind="Recurring"), "recurrencyKind None"),
        (TX_DEFAULT, 1, profile(transactionId="T-1"), "with a transactionId"),
        (TX_DEFAULT, 1, profile(validFrom="2030-01-02T00:00:00Z", validTo="2030-01-01T00:00:00Z"), "validTo"),
        (MAX, 0, profile(chargingProfilePurpose="ChargingStationMaxProfile"), ""),
        (
            MAX,
            0,
            profile(chargingProfilePurpose="ChargingStationMaxProfile", chargingProfileKind="Relative"),
            "K01.FR.38",
        ),
        (TX, 1, profile(chargingProfilePurpose="TxProfile", transactionId="T-1"), ""),
        (TX, 1, profile(chargingProfilePurpose="TxProfile"), "K01.FR.03"),
        (TX, 1, profile(chargingProfilePurpose="TxProfile", transactionId="T-2"), "running transaction"),
    ],
)
def test_set_profile_rules(judge: Judge, evse: int, body: dict[str, Any], why: str) -> None:
    got = judged(judge, {"evseId": evse, "chargingProfile": body})
    assert (why in got) if why else got == "", got


def test_a_relative_profile_has_no_start_and_an_absolute_one_has_one() -> None:
    relative = profile(chargingProfileKind="Relative")
    assert "Relative profile with a startSchedule" in judged(
        TX_DEFAULT, {"evseId": 1, "chargingProfile": relative}
    )
    absolute = profile()
    del absolute["chargingSchedule"][0]["startSchedule"]
    assert "without startSchedule" in judged(TX_DEFAULT, {"evseId": 1, "chargingProfile": absolute})


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (profile(chargingProfilePurpose="TxProfile"), ""),
        (profile(chargingProfilePurpose="TxDefaultProfile"), "F01.FR.09"),
        (profile(chargingProfilePurpose="TxProfile", transactionId="T-1"), "F01.FR.11"),
        (None, "F01.FR.08"),
    ],
)
def test_remote_start_profile_rules(body: dict[str, Any] | None, why: str) -> None:
    payload: dict[str, Any] = {"idToken": TOKEN, "remoteStartId": 1, "evseId": 1}
    if body is not None:
        payload["chargingProfile"] = body
    got = judged(remote_start_profile_rules, payload)
    assert (why in got) if why else got == "", got


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"chargingProfileId": 3}, ""),
        ({"chargingProfileCriteria": {"evseId": 1}}, ""),
        ({}, "K10.FR.02"),
        ({"chargingProfileCriteria": {}}, "K10.FR.02"),
        (
            {"chargingProfileCriteria": {"chargingProfilePurpose": "ChargingStationExternalConstraints"}},
            "external",
        ),
    ],
)
def test_clear_profile_rules(payload: dict[str, Any], why: str) -> None:
    got = judged(clear_profile_rules, payload)
    assert (why in got) if why else got == "", got


@pytest.mark.parametrize(
    ("criteria", "why"),
    [
        ({"chargingProfileId": [1]}, ""),
        ({"stackLevel": 0}, ""),
        ({"chargingLimitSource": ["CSO"]}, ""),
        ({}, "K09.FR.03"),
        ({"chargingProfileId": []}, "K09.FR.03"),
    ],
)
def test_get_profiles_rules(criteria: dict[str, Any], why: str) -> None:
    got = judged(get_profiles_rules, {"requestId": 1, "chargingProfile": criteria})
    assert (why in got) if why else got == "", got


def test_a_deleted_certificate_is_named_as_the_station_reported_it() -> None:
    """M04.FR.07: the hashAlgorithm (and hashes) the station reported in GetInstalledCertificateIdsResponse."""
    reported = {"hashAlgorithm": "SHA256", "issuerNameHash": "a1", "issuerKeyHash": "b2", "serialNumber": "1"}
    known = {REPORTED_HASHES: [reported]}
    assert judged(deletes_a_reported_certificate, {"certificateHashData": reported}, **known) == ""
    other_algorithm = {**reported, "hashAlgorithm": "SHA512"}
    got = judged(deletes_a_reported_certificate, {"certificateHashData": other_algorithm}, **known)
    assert "M04.FR.07" in got
    other_serial = {**reported, "serialNumber": "2"}
    assert "none the station reported" in judged(
        deletes_a_reported_certificate, {"certificateHashData": other_serial}, **known
    )


def test_a_remote_start_on_evse_0_and_an_empty_composite_schedule_are_wrong() -> None:
    payload = {"idToken": TOKEN, "remoteStartId": 1, "evseId": 0, "chargingProfile": profile()}
    assert "SHALL be > 0" in judged(remote_start_profile_rules, payload)
    assert judged(composite_rules, {"duration": 300, "evseId": 0}) == ""
    assert "nothing to report" in judged(composite_rules, {"duration": 0, "evseId": 1})
    assert "evseId -1" in judged(composite_rules, {"duration": 300, "evseId": -1})
