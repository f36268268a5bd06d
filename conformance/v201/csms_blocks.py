"""OCPP 2.0.1 central-system cases of the conditional blocks D (local list), H (reservation), K (smart charging)
and the rest of M (certificates): TC_X_NN_CSMS of the OCTT 2.0.1 catalogue, for CSMS features the bundled
central system offers.

Ids and titles are the public OCTT 2.0.1 catalogue's, as the tzi-OCTT 2.0.1 suite (tzi-app/tzi-OCTT, folders
2.0.1/D, H, K, M) names them. Every CALL the CSMS is triggered to send is schema-checked by the context, judged by
the business rules of `conformance.v201.csms_judges` (versionNumber > 0 and rising, reservations expiring in the
future, profiles whose periods start at 0 and rise, the purpose each message allows) and must carry what the
trigger asked. Without a trigger the case is inconclusive.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from conformance.csms_runner import CsmsContext, ocpp_time
from conformance.csms_steps import StepFn, offered
from conformance.model import Case, Fail, Step
from conformance.pki import certificate_hash_data, self_signed_pem
from conformance.v201.csms_cases import (
    BOOT,
    SESSION,
    STOP_LOCAL,
    call,
    ev,
    st,
)
from conformance.v201.csms_judges import (
    REPORTED_LIST_VERSION,
    Judge,
    all_of,
    clear_profile_rules,
    composite_rules,
    get_profiles_rules,
    local_list_rules,
    remote_start_profile_rules,
    reservation_rules,
    same_profile_replaced,
    same_reservation,
    set_profile_rules,
)
from conformance.v201.station import current_tx, heartbeat, id_token, status

__all__ = ["CASES"]

S = Step[CsmsContext]
CASES: list[Case[CsmsContext]] = []

LOCAL_LIST, RESERVATION, SMART, CERTIFICATES = (
    "D LocalAuthorizationListManagement",
    "H Reservation",
    "K SmartCharging",
    "M CertificateManagement",
)
# Conditional blocks: not applicable unless --profiles names them (default: all offered). The names are the 1.6
# feature profiles' (and M's as in the 2.0.1 catalogue module), so one --profiles list serves both versions.
PROFILE_OF_BLOCK = {
    LOCAL_LIST: "LocalAuthListManagement",
    RESERVATION: "Reservation",
    SMART: "SmartCharging",
    CERTIFICATES: "CertificateManagement",
}
TRIG = frozenset({"trigger"})
TRIG_ACCEPTED = frozenset({"id_tag_accepted", "trigger"})
Payload = dict[str, Any] | Callable[[CsmsContext], dict[str, Any]]
Answer = dict[str, Any] | Callable[[CsmsContext], dict[str, Any]]


def case(
    id: str,
    title: str,
    block: str,
    *steps: tuple[str, StepFn],
    needs: frozenset[str] = TRIG,
) -> None:
    """Add a case of a conditional block; every case starts from nothing and opens its own connections."""
    steps = (offered(PROFILE_OF_BLOCK[block]), *steps)
    CASES.append(Case(id, title, block, tuple(S(t, f) for t, f in steps), needs))


def sends(
    action: str,
    payload: Payload,
    answer: Answer,
    *,
    judge: Judge | None = None,
    error: tuple[str, str] | None = None,
    note: str = "",
) -> tuple[str, StepFn]:
    """A step: the CSMS (triggered) sends ``action`` keeping ``judge``'s rules; the station answers ``answer`` (or
    the CALLERROR ``error``). The CALL is kept in ``vars[action]``."""

    async def run(ctx: CsmsContext) -> None:
        body = payload(ctx) if callable(payload) else payload
        reply = answer(ctx) if callable(answer) else answer
        ctx.vars[action] = await ctx.csms_sends(action, body, reply, judge=judge, error=error)

    said = f"CALLERROR {error[0]}" if error else (note or ("the answer" if callable(answer) else str(answer)))
    return (f"central system sends {action}; the station answers {said}", run)


def in_minutes(minutes: float) -> str:
    """An OCPP dateTime ``minutes`` from now."""
    return ocpp_time(datetime.now(UTC) + timedelta(minutes=minutes))


# ================================================================================================ D local list
# D01 (SendLocalList) and D02 (GetLocalListVersion). The station reports a list version first where the case needs
# one, so the judge can check that a Differential update raises it.


def local_list(version: int, update: str, entries: str) -> Callable[[CsmsContext], dict[str, Any]]:
    """SendLocalListRequest as the trigger asks for it: the accepted idToken with (or without) idTokenInfo."""

    def payload(ctx: CsmsContext) -> dict[str, Any]:
        body: dict[str, Any] = {"versionNumber": version, "updateType": update}
        if entries != "none":
            item: dict[str, Any] = {"idToken": id_token(ctx.tag("accepted"), "Central")}
            if entries == "with_info":
                item["idTokenInfo"] = {"status": "Accepted"}
            body["localAuthorizationList"] = [item]
        return body

    return payload


def list_version(version: int) -> tuple[str, StepFn]:
    """A step: the CSMS asks for the list version (D02); the station reports ``version`` (0: no list)."""
    send = sends("GetLocalListVersion", {}, {"versionNumber": version})

    async def run(ctx: CsmsContext) -> None:
        await send[1](ctx)
        ctx.vars[REPORTED_LIST_VERSION] = version

    return (f"central system sends GetLocalListVersion; the station reports version {version}", run)


def send_list(version: int, update: str, entries: str, answer: str = "Accepted") -> tuple[str, StepFn]:
    """A step: SendLocalList of ``update`` at ``version``, judged; the station answers ``answer``."""
    return sends(
        "SendLocalList",
        local_list(version, update, entries),
        {"status": answer},
        judge=local_list_rules(update, entries=entries),
    )


case(
    "TC_D_01_CSMS",
    "Send Local Authorization List - Full",
    LOCAL_LIST,
    BOOT,
    send_list(1, "Full", "with_info"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_D_02_CSMS",
    "Send Local Authorization List - Differential Update",
    LOCAL_LIST,
    BOOT,
    list_version(3),
    send_list(4, "Differential", "with_info"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_D_03_CSMS",
    "Send Local Authorization List - Differential Remove",
    LOCAL_LIST,
    BOOT,
    list_version(4),
    send_list(5, "Differential", "without_info"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_D_04_CSMS",
    "Send Local Authorization List - Full with empty list",
    LOCAL_LIST,
    BOOT,
    send_list(6, "Full", "none"),
)
case(
    "TC_D_08_CSMS",
    "Get Local List Version - Success",
    LOCAL_LIST,
    BOOT,
    list_version(7),
    ("Heartbeat: the link stays up", heartbeat),
)
case(
    "TC_D_09_CSMS",
    "Get Local List Version - No list available",
    LOCAL_LIST,
    BOOT,
    list_version(0),
    ("Heartbeat: the link stays up", heartbeat),
)

# ================================================================================================ H reservation
# H01 (ReserveNow), H02 (CancelReservation), H04 (ReservationStatusUpdate when a reservation ends unused).

GROUP_TOKEN = {"idToken": "CONF-GROUP-1", "type": "Central"}


def reserve(
    reservation_id: int,
    *,
    evse: int | None = 1,
    connector_type: str | None = None,
    group: bool = False,
    minutes: float = 30,
) -> Callable[[CsmsContext], dict[str, Any]]:
    """ReserveNowRequest as the trigger asks for it: the accepted idToken, expiring ``minutes`` from now."""

    def payload(ctx: CsmsContext) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": reservation_id,
            "expiryDateTime": in_minutes(minutes),
            "idToken": id_token(ctx.tag("accepted"), "Central"),
        }
        if evse is not None:
            body["evseId"] = evse
        if connector_type is not None:
            body["connectorType"] = connector_type
        if group:
            body["groupIdToken"] = GROUP_TOKEN
        return body

    return payload


def reserve_now(
    reservation_id: int,
    answer: str = "Accepted",
    *,
    evse: int | None = 1,
    connector_type: str | None = None,
    group: bool = False,
    minutes: float = 30,
) -> tuple[str, StepFn]:
    """A step: ReserveNow, judged (expiry in the future, the asked EVSE / connector type / group)."""
    return sends(
        "ReserveNow",
        reserve(reservation_id, evse=evse, connector_type=connector_type, group=group, minutes=minutes),
        {"status": answer},
        judge=reservation_rules(evse=evse, connector_type=connector_type, group=group),
    )


def connector_state(value: str) -> tuple[str, StepFn]:
    """A step: the connector's new state as the station tells it, StatusNotification and NotifyEvent of the
    Connector's AvailabilityState (G01 / N07: the reusable state "Reserved" of the OCTT sends both)."""

    async def run(ctx: CsmsContext) -> None:
        await status(ctx, value)
        event_id = int(ctx.vars.get("event_id", 0)) + 1
        ctx.vars["event_id"] = event_id
        await ctx.call(
            "NotifyEvent",
            {
                "generatedAt": ocpp_time(),
                "seqNo": 0,
                "tbc": False,
                "eventData": [
                    {
                        "eventId": event_id,
                        "timestamp": ocpp_time(),
                        "trigger": "Delta",
                        "actualValue": value,
                        "eventNotificationType": "HardWiredNotification",
                        "component": {"name": "Connector", "evse": {"id": 1, "connectorId": 1}},
                        "variable": {"name": "AvailabilityState"},
                    }
                ],
            },
        )

    return (f"StatusNotification and NotifyEvent: connector {value}", run)


def reservation_ended(update: str) -> tuple[str, StepFn]:
    """A step: ReservationStatusUpdate (H04) of the case's reservation; the answer is an empty object."""

    async def run(ctx: CsmsContext) -> None:
        await ctx.call(
            "ReservationStatusUpdate",
            {"reservationId": ctx.vars["reservation_id"], "reservationUpdateStatus": update},
        )

    return (f"ReservationStatusUpdate {update}", run)


def cancel(ctx: CsmsContext) -> dict[str, Any]:
    """CancelReservationRequest of the case's reservation (H02)."""
    return {"reservationId": ctx.vars["reservation_id"]}


case(
    "TC_H_01_CSMS",
    "Reserve a specific EVSE - Accepted - Valid idToken",
    RESERVATION,
    BOOT,
    reserve_now(4201),
    connector_state("Reserved"),
    needs=TRIG_ACCEPTED,
)
# The station reports the expiry at once: the case judges the CSMS's answers, not the station's clock.
case(
    "TC_H_07_CSMS",
    "Reserve a specific EVSE - Reservation Ended / not used",
    RESERVATION,
    BOOT,
    reserve_now(4207, minutes=1),
    connector_state("Reserved"),
    connector_state("Available"),
    reservation_ended("Expired"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_H_08_CSMS",
    "Reserve an unspecified EVSE - Accepted",
    RESERVATION,
    BOOT,
    reserve_now(4208, evse=None),
    connector_state("Reserved"),
    needs=TRIG_ACCEPTED,
)
# The simulated station has one EVSE, so one reservation without evseId reserves all of them.
case(
    "TC_H_14_CSMS",
    "Reserve an unspecified EVSE - Amount of EVSEs available equals the amount of reservations",
    RESERVATION,
    BOOT,
    reserve_now(4214, evse=None),
    connector_state("Reserved"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_H_15_CSMS",
    "Reserve a connector with a specific type - Success",
    RESERVATION,
    BOOT,
    reserve_now(4215, evse=None, connector_type="cType2"),
    connector_state("Reserved"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_H_17_CSMS",
    "Cancel reservation of an EVSE - Success",
    RESERVATION,
    BOOT,
    reserve_now(4217),
    connector_state("Reserved"),
    sends("CancelReservation", cancel, {"status": "Accepted"}, judge=same_reservation),
    connector_state("Available"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_H_19_CSMS",
    "Reserve a specific EVSE - Use a reserved EVSE with GroupId",
    RESERVATION,
    BOOT,
    reserve_now(4219, group=True),
    connector_state("Reserved"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_H_20_CSMS",
    "Charging Station cancels reservation when Faulted",
    RESERVATION,
    BOOT,
    reserve_now(4220),
    connector_state("Reserved"),
    connector_state("Faulted"),
    reservation_ended("Removed"),
    needs=TRIG_ACCEPTED,
)
case(
    "TC_H_22_CSMS",
    "Reserve a specific EVSE - Configured to Reject",
    RESERVATION,
    BOOT,
    reserve_now(4222, "Rejected"),
    ("Heartbeat: the link stays up", heartbeat),
    needs=TRIG_ACCEPTED,
)

# ================================================================================================ K smart charging
# K01 (SetChargingProfile), K05 (remote start with a profile), K08 (GetCompositeSchedule), K09
# (GetChargingProfiles), K10 (ClearChargingProfile), K12/K13 (external limits set, reported and released). Left
# out: the ISO 15118 cases (TC_K_53-59: NotifyEVChargingNeeds), which the bundled central system does not implement.


def profile(
    profile_id: int,
    purpose: str,
    *,
    kind: str = "Absolute",
    limit: float = 6.0,
    tx: Callable[[CsmsContext], str] | None = None,
) -> Callable[[CsmsContext], dict[str, Any]]:
    """A ChargingProfileType in A starting now (a Recurring one: daily), one period from 0 s."""

    def body(ctx: CsmsContext) -> dict[str, Any]:
        schedule: dict[str, Any] = {
            "id": profile_id,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        }
        if kind != "Relative":
            schedule["startSchedule"] = ocpp_time()
        result: dict[str, Any] = {
            "id": profile_id,
            "stackLevel": 0,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": kind,
            "chargingSchedule": [schedule],
        }
        if kind == "Recurring":
            result["recurrencyKind"] = "Daily"
        if tx is not None:
            result["transactionId"] = tx(ctx)
        return result

    return body


def set_profile(
    profile_id: int,
    purpose: str,
    evse: int,
    answer: str = "Accepted",
    *,
    kind: str = "Absolute",
    limit: float = 6.0,
    tx: Callable[[CsmsContext], str] | None = None,
    replaces: bool = False,
    error: tuple[str, str] | None = None,
) -> tuple[str, StepFn]:
    """A step: SetChargingProfile of ``purpose`` on ``evse``, judged; ``replaces``: it replaces the last one."""
    body = profile(profile_id, purpose, kind=kind, limit=limit, tx=tx)
    rules = set_profile_rules(purpose, evse=evse, kind=kind, tx=tx)
    return sends(
        "SetChargingProfile",
        lambda c: {"evseId": evse, "chargingProfile": body(c)},
        {"status": answer},
        judge=all_of(rules, same_profile_replaced) if replaces else rules,
        error=error,
    )


def running_tx(ctx: CsmsContext) -> str:
    """The station's id of the case's running transaction."""
    return current_tx(ctx).id


def not_running_tx(ctx: CsmsContext) -> str:
    """A transactionId no transaction on the station has (TC_K_02)."""
    return str(ctx.vars.setdefault("stale_tx", "CONF-GONE-" + secrets.token_hex(8)))


def clear(payload: dict[str, Any], answer: str) -> tuple[str, StepFn]:
    """A step: ClearChargingProfile (K10), judged (K10.FR.02)."""
    return sends("ClearChargingProfile", payload, {"status": answer}, judge=clear_profile_rules)


def get_profiles(request_id: int, criteria: dict[str, Any], evse: int | None) -> tuple[str, StepFn]:
    """A step: GetChargingProfiles (K09) with ``criteria``, judged (K09.FR.03); the station has some."""
    payload: dict[str, Any] = {"requestId": request_id, "chargingProfile": criteria}
    if evse is not None:
        payload["evseId"] = evse
    return sends("GetChargingProfiles", payload, {"status": "Accepted"}, judge=get_profiles_rules)


def report(
    evse: int, purpose: str = "TxDefaultProfile", source: str = "CSO", profile_id: int = 301
) -> tuple[str, StepFn]:
    """A step: ReportChargingProfiles for the request the CSMS just made (its requestId); answered empty."""

    async def run(ctx: CsmsContext) -> None:
        body = profile(profile_id, purpose)(ctx)
        if purpose == "ChargingStationExternalConstraints":
            body["stackLevel"] = 0
        await ctx.call(
            "ReportChargingProfiles",
            {
                "requestId": ctx.vars["GetChargingProfiles"]["requestId"],
                "chargingLimitSource": source,
                "evseId": evse,
                "chargingProfile": [body],
                "tbc": False,
            },
        )

    return (f"ReportChargingProfiles of EVSE {evse} ({purpose}, source {source})", run)


def composite(evse: int) -> tuple[str, StepFn]:
    """A step: GetCompositeSchedule of ``evse`` for 300 s in A (K08); the station reports 10 A from 0 s."""

    def answer(ctx: CsmsContext) -> dict[str, Any]:
        schedule = {
            "evseId": evse,
            "duration": 300,
            "scheduleStart": ocpp_time(),
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
        }
        return {"status": "Accepted", "schedule": schedule}

    return sends(
        "GetCompositeSchedule",
        {"duration": 300, "chargingRateUnit": "A", "evseId": evse},
        answer,
        judge=composite_rules,
        note="Accepted with a 10 A schedule",
    )


def remote_start_with_profile(ctx: CsmsContext) -> dict[str, Any]:
    """RequestStartTransaction with a TxProfile (K05 / F01.FR.08), no transactionId (F01.FR.11)."""
    return {
        "idToken": id_token(ctx.tag("accepted"), "Central"),
        "remoteStartId": 4737,
        "evseId": 1,
        "chargingProfile": profile(37, "TxProfile")(ctx),
    }


case(
    "TC_K_01_CSMS",
    "Set Charging Profile - TxDefaultProfile - Specific EVSE",
    SMART,
    BOOT,
    set_profile(101, "TxDefaultProfile", 1),
)
case(
    "TC_K_02_CSMS",
    "Set Charging Profile - TxProfile without ongoing transaction on the specified EVSE",
    SMART,
    BOOT,
    set_profile(102, "TxProfile", 1, "Rejected", tx=not_running_tx),
    ("Heartbeat: the link stays up", heartbeat),
)
case(
    "TC_K_03_CSMS",
    "Set Charging Profile - ChargingStationMaxProfile",
    SMART,
    BOOT,
    set_profile(103, "ChargingStationMaxProfile", 0),
)
case(
    "TC_K_04_CSMS",
    "Replace charging profile - With chargingProfileId",
    SMART,
    BOOT,
    set_profile(104, "TxDefaultProfile", 1, limit=8.0),
    set_profile(104, "TxDefaultProfile", 1, limit=6.0, replaces=True),
)
case(
    "TC_K_05_CSMS",
    "Clear Charging Profile - With chargingProfileId",
    SMART,
    BOOT,
    get_profiles(105, {"chargingProfileId": [301]}, None),
    report(1),
    clear({"chargingProfileId": 301}, "Accepted"),
)
CRITERIA = {
    "chargingProfileCriteria": {"chargingProfilePurpose": "TxDefaultProfile", "evseId": 1, "stackLevel": 0}
}
case(
    "TC_K_06_CSMS",
    "Clear Charging Profile - With stackLevel/purpose combination for one profile",
    SMART,
    BOOT,
    clear(CRITERIA, "Accepted"),
)
case(
    "TC_K_08_CSMS",
    "Clear Charging Profile - Without previous charging profile",
    SMART,
    BOOT,
    clear(CRITERIA, "Unknown"),
    ("Heartbeat: the link stays up", heartbeat),
)
case(
    "TC_K_10_CSMS",
    "Set Charging Profile - TxDefaultProfile - All EVSE",
    SMART,
    BOOT,
    set_profile(110, "TxDefaultProfile", 0),
)
case(
    "TC_K_15_CSMS",
    "Set Charging Profile - Not Supported",
    SMART,
    BOOT,
    set_profile(115, "TxDefaultProfile", 1, error=("NotSupported", "smart charging is not supported")),
    ("Heartbeat: the link stays up", heartbeat),
)
case(
    "TC_K_19_CSMS",
    "Set Charging Profile - ChargingProfileKind is Recurring",
    SMART,
    BOOT,
    set_profile(119, "TxDefaultProfile", 1, kind="Recurring"),
)
PURPOSE = {"chargingProfilePurpose": "TxDefaultProfile"}
for number, title, criteria, evse in (
    (29, "EvseId 0", PURPOSE, 0),
    (30, "EvseId > 0", PURPOSE, 1),
    (31, "No EvseId", PURPOSE, None),
    (32, "chargingProfileId", {"chargingProfileId": [301]}, None),
    (33, "EvseId > 0 + stackLevel", {"stackLevel": 0}, 1),
    (34, "EvseId > 0 + chargingLimitSource", {"chargingLimitSource": ["CSO"]}, 1),
    (35, "EvseId > 0 + chargingProfilePurpose", PURPOSE, 1),
    (36, "EvseId > 0 + chargingProfilePurpose + stackLevel", {**PURPOSE, "stackLevel": 0}, 1),
):
    before = [*SESSION] if number == 29 else []  # TC_K_29: Before EnergyTransferStarted
    after = [*STOP_LOCAL] if number == 29 else []
    case(
        f"TC_K_{number}_CSMS",
        f"Get Charging Profile - {title}",
        SMART,
        BOOT,
        *before,
        get_profiles(100 + number, criteria, evse),
        report(evse if evse is not None else 1),
        *after,
        needs=TRIG_ACCEPTED if number == 29 else TRIG,
    )
case(
    "TC_K_37_CSMS",
    "Remote start transaction with charging profile - Success",
    SMART,
    BOOT,
    sends(
        "RequestStartTransaction",
        remote_start_with_profile,
        {"status": "Accepted"},
        judge=remote_start_profile_rules,
    ),
    ev(
        "Started",
        "RemoteStart",
        state="Idle",
        token_kind="accepted",
        token_type="Central",
        remote_start_id=4737,
    ),
    st("Occupied"),
    ev("Updated", "CablePluggedIn", state="Charging"),
    *STOP_LOCAL,
    needs=TRIG_ACCEPTED,
)
case(
    "TC_K_43_CSMS",
    "Get Composite Schedule - Specific EVSE",
    SMART,
    BOOT,
    composite(1),
)
case(
    "TC_K_44_CSMS",
    "Get Composite Schedule - Charging Station",
    SMART,
    BOOT,
    composite(0),
)
case(
    "TC_K_52_CSMS",
    "Set / Update External Charging Limit - ChargingStationExternalConstraints in report",
    SMART,
    BOOT,
    get_profiles(152, {"chargingLimitSource": ["EMS"]}, 0),
    report(0, "ChargingStationExternalConstraints", "EMS", 352),
)
EXTERNAL_LIMIT = {
    "chargingLimit": {"chargingLimitSource": "EMS", "isGridCritical": False},
    "evseId": 1,
    "chargingSchedule": [
        {
            "id": 48,
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
        }
    ],
}
case(
    "TC_K_48_CSMS",
    "Set / Update External Charging Limit (not on a transaction)",
    SMART,
    BOOT,
    call("NotifyChargingLimit", EXTERNAL_LIMIT),
    needs=frozenset(),
)
case(
    "TC_K_50_CSMS",
    "Reset / release external charging limit - Without ongoing transaction",
    SMART,
    BOOT,
    call("ClearedChargingLimit", {"chargingLimitSource": "EMS", "evseId": 1}),
    needs=frozenset(),
)
case(
    "TC_K_51_CSMS",
    "Reset / release external charging limit - With ongoing transaction",
    SMART,
    BOOT,
    *SESSION,
    call("ClearedChargingLimit", {"chargingLimitSource": "EMS", "evseId": 1}),
    ev("Updated", "ChargingRateChanged", state="Charging"),
    *STOP_LOCAL,
    needs=frozenset({"id_tag_accepted"}),
)
case(
    "TC_K_60_CSMS",
    "Set Charging Profile - TxProfile with ongoing transaction on the specified EVSE",
    SMART,
    BOOT,
    *SESSION,
    set_profile(160, "TxProfile", 1, tx=running_tx),
    *STOP_LOCAL,
    needs=TRIG_ACCEPTED,
)
case(
    "TC_K_70_CSMS",
    "Set Charging Profile - Multiple Profiles",
    SMART,
    BOOT,
    *SESSION,
    set_profile(170, "TxDefaultProfile", 1),
    set_profile(171, "ChargingStationMaxProfile", 0),
    *STOP_LOCAL,
    needs=TRIG_ACCEPTED,
)

# ================================================================================================ M certificates
# The M03/M05 cases the core module does not have: the V2G and MO roots, chains and several types at once.
# Left out: TC_M_24 (GetCertificateStatus, OCSP) and TC_M_26/28 (Get15118EVCertificate), which the bundled
# central system does not implement.


def pem(ctx: CsmsContext, name: str) -> str:
    """A self-signed root made once per case for ``name``."""
    return str(ctx.vars.setdefault(f"pem:{name}", self_signed_pem(f"OCC {name}")))


def install(kind: str) -> Callable[[CsmsContext], dict[str, Any]]:
    """InstallCertificateRequest of a root of ``kind`` (M05)."""
    return lambda ctx: {"certificateType": kind, "certificate": pem(ctx, kind)}


def installed(*kinds: str) -> Callable[[CsmsContext], dict[str, Any]]:
    """GetInstalledCertificateIdsResponse: one certificate per kind (a V2G chain with a child: M03.FR.05)."""

    def answer(ctx: CsmsContext) -> dict[str, Any]:
        chain: list[dict[str, Any]] = []
        for kind in kinds:
            entry: dict[str, Any] = {
                "certificateType": kind,
                "certificateHashData": certificate_hash_data(pem(ctx, kind)),
            }
            if kind == "V2GCertificateChain":
                entry["childCertificateHashData"] = [certificate_hash_data(pem(ctx, "V2G SubCA"))]
            chain.append(entry)
        return {"status": "Accepted", "certificateHashDataChain": chain}

    return answer


def no_type_asked(ctx: CsmsContext, payload: dict[str, Any]) -> None:
    """TC_M_18: all certificates are asked for by leaving certificateType out (M03)."""
    if payload.get("certificateType"):
        raise Fail(
            f"GetInstalledCertificateIdsRequest names certificateType {payload['certificateType']}: "
            "all types are asked for by leaving it out"
        )


for number, kind in ((3, "V2GRootCertificate"), (4, "MORootCertificate")):
    case(
        f"TC_M_{number:02d}_CSMS",
        f"Install CA certificate - {kind}",
        CERTIFICATES,
        BOOT,
        sends("InstallCertificate", install(kind), {"status": "Accepted"}),
    )
for number, kinds, title in (
    (14, ("V2GRootCertificate",), "V2GRootCertificate"),
    (15, ("V2GCertificateChain",), "V2GCertificateChain"),
    (16, ("MORootCertificate",), "MORootCertificate"),
    (
        17,
        ("CSMSRootCertificate", "ManufacturerRootCertificate"),
        "CSMSRootCertificate & ManufacturerRootCertificate",
    ),
):
    case(
        f"TC_M_{number}_CSMS",
        f"Retrieve certificates from Charging Station - {title}",
        CERTIFICATES,
        BOOT,
        sends("GetInstalledCertificateIds", {"certificateType": list(kinds)}, installed(*kinds)),
    )
ALL_KINDS = (
    "CSMSRootCertificate",
    "ManufacturerRootCertificate",
    "V2GRootCertificate",
    "MORootCertificate",
    "V2GCertificateChain",
)
case(
    "TC_M_18_CSMS",
    "Retrieve certificates from Charging Station - All certificateTypes",
    CERTIFICATES,
    BOOT,
    sends("GetInstalledCertificateIds", {}, installed(*ALL_KINDS), judge=no_type_asked),
)
