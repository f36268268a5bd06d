"""Business rules a 2.0.1 CSMS's own CALLs must keep, beyond their schemas (OCPP 2.0.1 Part 2, blocks D, H, K, M).

Each judge takes the runner's context and the CALL's payload as it arrived (already schema-valid) and raises Fail
citing the clause. They are written down from the specification, not taken from the bundled central system: the
schemas leave versionNumber, stackLevel, startPeriod and the expiry unbounded, so a CSMS can send a SendLocalList
with version 0 or a profile that starts at 30 s and still be schema-valid.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from conformance.csms_runner import CsmsContext, parse_time
from conformance.model import Fail

__all__ = [
    "Judge",
    "all_of",
    "clear_profile_rules",
    "composite_rules",
    "deletes_a_reported_certificate",
    "get_profiles_rules",
    "local_list_rules",
    "profile_rules",
    "remote_start_profile_rules",
    "reservation_rules",
    "same_reservation",
    "set_profile_rules",
]

Judge = Callable[[CsmsContext, dict[str, Any]], None]
# The version the station reported in its last GetLocalListVersionResponse (a later SendLocalList must exceed it).
REPORTED_LIST_VERSION = "local_list_version"
# Purposes a CSMS may set (K01): ChargingStationExternalConstraints is set by an external system, never the CSMS.
CSMS_PURPOSES = ("ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile")


def all_of(*judges: Judge) -> Judge:
    """One judge applying each of ``judges`` in turn."""

    def judge(ctx: CsmsContext, payload: dict[str, Any]) -> None:
        for one in judges:
            one(ctx, payload)

    return judge


# ------------------------------------------------------------------------------------------- D local list


def local_list_rules(update: str, *, entries: str) -> Judge:
    """SendLocalListRequest of ``update`` (Full/Differential); ``entries``: "with_info", "without_info", "none".

    D01.FR.01 (updateType and versionNumber), D01.FR.18 (versionNumber > 0), D01.FR.06 (unique idTokens); a
    Differential list's version exceeds the one the station reported (the list after the update is newer); a Full
    list's entries carry idTokenInfo (an entry without one only means "remove" in a Differential update, D01.FR.17).
    """

    def judge(ctx: CsmsContext, payload: dict[str, Any]) -> None:
        version = payload["versionNumber"]
        if payload["updateType"] != update:
            raise Fail(
                f"SendLocalListRequest updateType {payload['updateType']}, expected {update} (D01.FR.01)"
            )
        if version <= 0:
            raise Fail(
                f"SendLocalListRequest versionNumber {version}: it SHALL be greater than 0 (OCPP 2.0.1 D01.FR.18; "
                "0 means 'no list installed')"
            )
        reported = ctx.vars.get(REPORTED_LIST_VERSION)
        if update == "Differential" and isinstance(reported, int) and version <= reported:
            raise Fail(
                f"a Differential SendLocalListRequest with versionNumber {version} after the station reported "
                f"version {reported}: the list after the update must have a higher version (D01.FR.01)"
            )
        items = payload.get("localAuthorizationList", [])
        keys = [(i["idToken"]["idToken"], i["idToken"]["type"]) for i in items]
        duplicates = sorted({k[0] for k in keys if keys.count(k) > 1})
        if duplicates:
            raise Fail(
                f"SendLocalListRequest lists idToken(s) {duplicates} twice (OCPP 2.0.1 D01.FR.06: unique)"
            )
        if entries == "none" and items:
            raise Fail(f"a Full SendLocalListRequest meant to empty the list carries {len(items)} entries")
        if entries != "none" and not items:
            raise Fail("SendLocalListRequest without localAuthorizationList entries, expected at least one")
        with_info = [i for i in items if "idTokenInfo" in i]
        if entries == "with_info" and len(with_info) != len(items):
            raise Fail(
                "a SendLocalListRequest entry without idTokenInfo: in a Full list every entry has one (an entry "
                "without it removes the token, D01.FR.17, which only a Differential update does)"
            )
        if entries == "without_info" and with_info:
            raise Fail(
                "a Differential remove lists entries with idTokenInfo: removal is an entry without it (D01.FR.17)"
            )

    return judge


# ------------------------------------------------------------------------------------------- H reservation


def reservation_rules(*, evse: int | None, connector_type: str | None = None, group: bool = False) -> Judge:
    """ReserveNowRequest (H01): expiryDateTime in the future, the asked evseId / connectorType / groupIdToken or
    none, and an idToken that is not empty; keeps the reservation id for CancelReservation and the status update."""

    def judge(ctx: CsmsContext, payload: dict[str, Any]) -> None:
        expiry = parse_time(payload["expiryDateTime"])
        now = datetime.now(UTC)
        if expiry <= now:
            raise Fail(
                f"ReserveNowRequest expiryDateTime {payload['expiryDateTime']} is not in the future "
                "(OCPP 2.0.1 H01: the reservation lasts until expiryDateTime)"
            )
        if payload.get("evseId") != evse:
            want = "omitted (any EVSE, H01.S1)" if evse is None else str(evse)
            raise Fail(f"ReserveNowRequest evseId {payload.get('evseId')}, expected {want}")
        if payload.get("connectorType") != connector_type:
            raise Fail(
                f"ReserveNowRequest connectorType {payload.get('connectorType')}, expected "
                f"{connector_type or 'omitted'} (H01)"
            )
        if group != ("groupIdToken" in payload):
            raise Fail(
                "ReserveNowRequest " + ("without" if group else "with") + " groupIdToken (OCPP 2.0.1 H01/H03)"
            )
        if not payload["idToken"]["idToken"]:
            raise Fail("ReserveNowRequest for an empty idToken")
        ctx.vars["reservation_id"] = payload["id"]

    return judge


def same_reservation(ctx: CsmsContext, payload: dict[str, Any]) -> None:
    """CancelReservationRequest names the reservation the CSMS made in this case (H02)."""
    made = ctx.vars.get("reservation_id")
    if made is not None and payload["reservationId"] != made:
        raise Fail(
            f"CancelReservationRequest reservationId {payload['reservationId']}, but the reservation made was "
            f"{made} (OCPP 2.0.1 H02)"
        )


# ------------------------------------------------------------------------------------------- K smart charging


def _periods_rules(schedule: dict[str, Any], what: str) -> None:
    periods = schedule["chargingSchedulePeriod"]
    if not periods:
        raise Fail(f"{what}: chargingSchedule {schedule.get('id')} has no chargingSchedulePeriod")
    if periods[0]["startPeriod"] != 0:
        raise Fail(
            f"{what}: the first chargingSchedulePeriod starts at {periods[0]['startPeriod']} s "
            "(OCPP 2.0.1 K01.FR.31: the startPeriod of the first period SHALL always be 0)"
        )
    starts = [p["startPeriod"] for p in periods]
    if any(b <= a for a, b in itertools.pairwise(starts)):
        raise Fail(
            f"{what}: chargingSchedulePeriod startPeriods {starts} do not increase (each startPeriod is the end "
            "of the previous period, OCPP 2.0.1 ChargingSchedulePeriodType)"
        )
    for p in periods:
        limit = p["limit"]
        if not math.isfinite(limit) or limit < 0:
            raise Fail(f"{what}: chargingSchedulePeriod limit {limit} is not a finite rate >= 0")
        if round(limit, 1) != limit:
            raise Fail(
                f"{what}: limit {limit} has more than one digit fraction (ChargingSchedulePeriodType.limit)"
            )
    if "duration" in schedule and schedule["duration"] <= 0:
        raise Fail(f"{what}: chargingSchedule duration {schedule['duration']} s, expected > 0")


def profile_rules(
    profile: dict[str, Any],
    what: str,
    *,
    purposes: tuple[str, ...] = CSMS_PURPOSES,
    unit: str | None = None,
) -> None:
    """A ChargingProfileType a CSMS sends (K01): stackLevel >= 0, a purpose it may set, kind and recurrency and
    startSchedule consistent, validFrom before validTo, periods from 0 increasing, the asked chargingRateUnit."""
    purpose, kind = profile["chargingProfilePurpose"], profile["chargingProfileKind"]
    if profile["stackLevel"] < 0:
        raise Fail(f"{what}: stackLevel {profile['stackLevel']} (the lowest level is 0)")
    if purpose not in purposes:
        raise Fail(f"{what}: chargingProfilePurpose {purpose}, expected {' or '.join(purposes)}")
    if purpose == "ChargingStationMaxProfile" and kind == "Relative":
        raise Fail(f"{what}: a ChargingStationMaxProfile of kind Relative (OCPP 2.0.1 K01.FR.38)")
    if (kind == "Recurring") != ("recurrencyKind" in profile):
        raise Fail(f"{what}: chargingProfileKind {kind} with recurrencyKind {profile.get('recurrencyKind')}")
    valid = "validFrom" in profile and "validTo" in profile
    if valid and parse_time(profile["validTo"]) <= parse_time(profile["validFrom"]):
        raise Fail(f"{what}: validTo {profile['validTo']} is not after validFrom {profile['validFrom']}")
    for schedule in profile["chargingSchedule"]:
        starts = "startSchedule" in schedule
        if kind == "Relative" and starts:
            raise Fail(f"{what}: a Relative profile with a startSchedule (it starts with the transaction)")
        if kind in ("Absolute", "Recurring") and not starts:
            raise Fail(f"{what}: an {kind} profile without startSchedule (nothing to count the periods from)")
        if unit is not None and schedule["chargingRateUnit"] != unit:
            raise Fail(f"{what}: chargingRateUnit {schedule['chargingRateUnit']}, expected {unit}")
        _periods_rules(schedule, what)


def set_profile_rules(
    purpose: str, *, evse: int, kind: str | None = None, tx: Callable[[CsmsContext], str] | None = None
) -> Judge:
    """SetChargingProfileRequest of ``purpose`` on ``evse``: the profile rules; a TxProfile names the running
    transaction (K01.FR.03), no other purpose names one; ChargingStationMaxProfile only on EVSE 0 (the grid
    connection). Keeps the profile (``vars['profile']``) for replace and clear checks."""

    def judge(ctx: CsmsContext, payload: dict[str, Any]) -> None:
        profile = payload["chargingProfile"]
        what = "SetChargingProfileRequest"
        profile_rules(profile, what, purposes=(purpose,))
        if payload["evseId"] != evse:
            raise Fail(f"{what}: evseId {payload['evseId']}, expected {evse}")
        if purpose == "ChargingStationMaxProfile" and payload["evseId"] != 0:
            raise Fail(f"{what}: a ChargingStationMaxProfile on EVSE {payload['evseId']} (it is for EVSE 0)")
        if kind is not None and profile["chargingProfileKind"] != kind:
            raise Fail(f"{what}: chargingProfileKind {profile['chargingProfileKind']}, expected {kind}")
        has_tx = "transactionId" in profile
        if purpose == "TxProfile" and not has_tx:
            raise Fail(f"{what}: a TxProfile without transactionId (OCPP 2.0.1 K01.FR.03)")
        if purpose != "TxProfile" and has_tx:
            raise Fail(
                f"{what}: a {purpose} with a transactionId (only a TxProfile belongs to a transaction)"
            )
        if tx is not None and profile.get("transactionId") != tx(ctx):
            raise Fail(
                f"{what}: transactionId {profile.get('transactionId')!r}, the running transaction is {tx(ctx)!r} "
                "(K01.FR.03)"
            )
        ctx.vars.setdefault("profiles", []).append(profile)

    return judge


def remote_start_profile_rules(ctx: CsmsContext, payload: dict[str, Any]) -> None:
    """A chargingProfile in RequestStartTransactionRequest is a TxProfile (F01.FR.09) without transactionId
    (F01.FR.11: the transaction does not exist yet), and a valid profile."""
    profile = payload.get("chargingProfile")
    what = "RequestStartTransactionRequest.chargingProfile"
    if payload.get("evseId", 1) <= 0:
        raise Fail(
            f"RequestStartTransactionRequest evseId {payload['evseId']} (OCPP 2.0.1 Part 2: SHALL be > 0)"
        )
    if profile is None:
        raise Fail(
            "RequestStartTransactionRequest without the chargingProfile this case is about (F01.FR.08)"
        )
    if profile["chargingProfilePurpose"] != "TxProfile":
        raise Fail(f"{what}: purpose {profile['chargingProfilePurpose']} (OCPP 2.0.1 F01.FR.09: TxProfile)")
    if "transactionId" in profile:
        raise Fail(f"{what}: transactionId set (OCPP 2.0.1 F01.FR.11: SHALL NOT be set)")
    profile_rules(profile, what, purposes=("TxProfile",))


def same_profile_replaced(ctx: CsmsContext, payload: dict[str, Any]) -> None:
    """A replacing SetChargingProfileRequest keeps id, purpose, kind and stackLevel of the first one (K01.FR.05),
    with another limit (TC_K_04)."""
    profiles = ctx.vars.get("profiles", [])
    if len(profiles) < 2:
        return
    first, second = profiles[-2], profiles[-1]
    for key in ("id", "chargingProfilePurpose", "chargingProfileKind", "stackLevel"):
        if first[key] != second[key]:
            raise Fail(f"the replacing profile has {key} {second[key]!r}, the replaced one {first[key]!r}")
    if first["chargingSchedule"] == second["chargingSchedule"]:
        raise Fail("the replacing profile has the same schedule as the one it replaces (another limit asked)")


def clear_profile_rules(ctx: CsmsContext, payload: dict[str, Any]) -> None:
    """ClearChargingProfileRequest names a chargingProfileId or criteria (K10.FR.02); an empty one clears
    everything, which no case asks for."""
    criteria = payload.get("chargingProfileCriteria", {})
    named = {k for k in ("evseId", "chargingProfilePurpose", "stackLevel") if k in criteria}
    if "chargingProfileId" not in payload and not named:
        raise Fail(
            "ClearChargingProfileRequest with neither chargingProfileId nor stackLevel, evseId or "
            "chargingProfilePurpose (OCPP 2.0.1 K10.FR.02)"
        )
    if criteria.get("chargingProfilePurpose") == "ChargingStationExternalConstraints":
        raise Fail(
            "ClearChargingProfileRequest of ChargingStationExternalConstraints (set by an external system)"
        )


def composite_rules(ctx: CsmsContext, payload: dict[str, Any]) -> None:
    """GetCompositeScheduleRequest (K08): a duration of at least one second, an EVSE id of 0 (the station) or more."""
    if payload["duration"] <= 0:
        raise Fail(f"GetCompositeScheduleRequest duration {payload['duration']} s: nothing to report (K08)")
    if payload["evseId"] < 0:
        raise Fail(f"GetCompositeScheduleRequest evseId {payload['evseId']} (0 is the station, EVSEs from 1)")


def get_profiles_rules(ctx: CsmsContext, payload: dict[str, Any]) -> None:
    """GetChargingProfilesRequest criteria: chargingProfileId(s), or stackLevel / chargingLimitSource /
    chargingProfilePurpose (K09.FR.03); keeps the requestId the report must carry."""
    criteria = payload["chargingProfile"]
    by_id = bool(criteria.get("chargingProfileId"))
    by_fields = any(k in criteria for k in ("stackLevel", "chargingLimitSource", "chargingProfilePurpose"))
    if not by_id and not by_fields:
        raise Fail(
            "GetChargingProfilesRequest criteria name no chargingProfileId, stackLevel, chargingLimitSource or "
            "chargingProfilePurpose (OCPP 2.0.1 K09.FR.03)"
        )


# ------------------------------------------------------------------------------------------- M certificates
# The certificateHashData the station reported in its last GetInstalledCertificateIdsResponse (a list).
REPORTED_HASHES = "reported_hashes"


def deletes_a_reported_certificate(ctx: CsmsContext, payload: dict[str, Any]) -> None:
    """DeleteCertificateRequest names a certificate as the station reported it: its hashAlgorithm and hashes
    (OCPP 2.0.1 M04.FR.07: the CSMS uses the hashAlgorithm the station uses)."""
    reported = ctx.vars.get(REPORTED_HASHES)
    if not reported:
        return
    data = payload["certificateHashData"]
    algorithms = sorted({r["hashAlgorithm"] for r in reported})
    if data["hashAlgorithm"] not in algorithms:
        raise Fail(
            f"DeleteCertificateRequest hashAlgorithm {data['hashAlgorithm']}, the station reported {algorithms} "
            "(OCPP 2.0.1 M04.FR.07)"
        )
    if data not in reported:
        raise Fail(
            f"DeleteCertificateRequest certificateHashData {data} is none the station reported in "
            "GetInstalledCertificateIdsResponse"
        )
