"""OCPP 1.6 central-system cases (TC_nnn_CSMS of the public OCTT catalogue), plus this project's stricter checks.

Each case is data (id, title, block, setup needs, timeout) and small step functions of a `CsmsContext`. The
simulated charger sends what the OCTT case prescribes; the verdict rules are the checks in the steps: schema
validity of every answer (done by the context), business logic (an unknown, blocked or expired idTag is never
Accepted, a wrong password gets 401, Pending is respected), timing and transaction ids.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.messages import Call

from conformance.csms_runner import (
    CallError,
    CsmsContext,
    RawCharger,
    check_status,
    minutes_ago,
    ocpp_time,
)
from conformance.csms_steps import (
    StepFn,
    cs_sends,
    no_credentials,
    offered,
    others_password,
    random_tag,
    subprotocol_negotiation,
    unknown_charger,
    upgrade_steps,
    username_mismatch,
    wrong_password,
)
from conformance.model import Case, Fail, Step
from conformance.pki import certificate_hash_data, check_signed_chain, make_csr, self_signed_pem

__all__ = ["CASES"]

S = Step[CsmsContext]
CASES: list[Case[CsmsContext]] = []

CORE, LOCAL, FIRMWARE, RESERVATION, TRIGGER, SMART, SECURITY = (
    "Core",
    "LocalAuthList",
    "Firmware",
    "Reservation",
    "RemoteTrigger",
    "SmartCharging",
    "Security",
)
PROFILE_OF_BLOCK = {
    LOCAL: "LocalAuthListManagement",
    FIRMWARE: "FirmwareManagement",
    RESERVATION: "Reservation",
    TRIGGER: "RemoteTrigger",
    SMART: "SmartCharging",
    SECURITY: "Security",
}
ACCEPTED = frozenset({"id_tag_accepted"})
TRIG = frozenset({"id_tag_accepted", "trigger"})


def case(
    id: str,
    title: str,
    block: str,
    *steps: tuple[str, StepFn],
    needs: frozenset[str] = ACCEPTED,
    timeout_s: float = 60.0,
    catalogue: bool = True,
    cleanup: tuple[tuple[str, StepFn], ...] = (),
) -> None:
    """Add a case to the catalogue; every case starts from nothing and opens its own connections."""
    profile = PROFILE_OF_BLOCK.get(block)
    if profile is not None:
        steps = (offered(profile), *steps)
    CASES.append(
        Case(
            id,
            title,
            block,
            tuple(S(t, f) for t, f in steps),
            needs,
            timeout_s,
            cleanup=tuple(S(t, f) for t, f in cleanup),
            catalogue=catalogue,
        )
    )


async def boot(ctx: CsmsContext) -> None:
    """Connect, BootNotification Accepted, connectors 0 and 1 Available."""
    await ctx.connect_and_boot()


BOOT = ("connect, BootNotification Accepted, StatusNotification Available", boot)


def st(connector: int, status: str, error_code: str = "NoError") -> tuple[str, StepFn]:
    """A step: StatusNotification."""

    async def run(ctx: CsmsContext) -> None:
        await ctx.status(connector, status, error_code=error_code)

    return (
        f"StatusNotification {connector} {status}" + ("" if error_code == "NoError" else f" {error_code}"),
        run,
    )


async def session(ctx: CsmsContext) -> None:
    """Preparing, Authorize, StartTransaction Accepted, Charging."""
    ctx.vars["tx"] = await ctx.session()


SESSION = ("Preparing, Authorize Accepted, StartTransaction Accepted, Charging", session)


def end(reason: str = "Local", with_tag: bool = True) -> tuple[str, StepFn]:
    """A step: StopTransaction, Finishing, Available."""

    async def run(ctx: CsmsContext) -> None:
        await ctx.end_session(ctx.vars["tx"], reason, ctx.tag("accepted") if with_tag else None)

    return (f"StopTransaction reason {reason}, Finishing, Available", run)


def start_tx_with(kind: str, expect: str, *, offline: bool = False) -> tuple[str, StepFn]:
    """A step: StartTransaction with the ``kind`` idTag; its idTagInfo must be ``expect``."""

    async def run(ctx: CsmsContext) -> None:
        tag = ctx.tag(kind) if kind != "random" else ctx.vars.setdefault("random_tag", random_tag())
        tx_id, status = await ctx.start(tag, when=minutes_ago(10) if offline else None)
        ctx.vars["tx"] = tx_id
        check_status(
            status,
            expect,
            f"StartTransaction.conf idTagInfo of the {kind} idTag {tag}",
            "OCPP 1.6 §4.8, §7.26",
        )

    return (f"StartTransaction with the {kind} idTag: idTagInfo {expect}", run)


def authorize_with(kind: str, expect: str) -> tuple[str, StepFn]:
    """A step: Authorize the ``kind`` idTag; its status must be ``expect``."""

    async def run(ctx: CsmsContext) -> None:
        tag = ctx.tag(kind) if kind != "random" else random_tag()
        status = await ctx.authorize(tag)
        if status == "Accepted" and kind != "accepted":
            raise Fail(f"the {kind} idTag {tag} was Accepted (OCPP 1.6 §4.1: it must not be)")
        check_status(status, expect, f"Authorize.conf of the {kind} idTag {tag}", "OCPP 1.6 §4.1, §7.26")

    return (f"Authorize the {kind} idTag: {expect}", run)


def close_and_reconnect(abrupt: bool = False) -> tuple[str, StepFn]:
    """A step: drop the connection, connect again, boot Accepted."""

    async def run(ctx: CsmsContext) -> None:
        await ctx.main().close(abrupt=abrupt)
        await boot(ctx)

    return (
        "connection " + ("lost (power cut)" if abrupt else "closed (reboot)") + ", reconnect and boot",
        run,
    )


def stop_offline(reason: str, tag_kind: str | None = "accepted") -> tuple[str, StepFn]:
    """A step: a StopTransaction stamped while offline."""

    async def run(ctx: CsmsContext) -> None:
        tag = ctx.tag(tag_kind) if tag_kind else None
        await ctx.stop(ctx.vars["tx"], reason=reason, tag=tag, when=minutes_ago(5))

    return (f"StopTransaction (offline, reason {reason})", run)


def stop_tag_info(kind: str) -> tuple[str, StepFn]:
    """A step: StopTransaction with the ``kind`` idTag; an idTagInfo, if any, must not be Accepted."""

    async def run(ctx: CsmsContext) -> None:
        tag = ctx.tag("accepted")
        tx_id, _ = await ctx.start(tag)
        other = ctx.tag(kind)
        answer = await ctx.stop(tx_id, reason="Local", tag=other)
        info = answer.get("idTagInfo")
        if info is not None and info["status"] == "Accepted":
            raise Fail(
                f"StopTransaction.conf says the {kind} idTag {other} is Accepted (OCPP 1.6 §4.10, §7.26)"
            )

    return (f"session stopped by the {kind} idTag: StopTransaction.conf idTagInfo not Accepted", run)


def _time(ctx: CsmsContext, minutes: int) -> str:
    return ocpp_time(datetime.now(UTC) + timedelta(minutes=minutes))


# ================================================================================================ Core


async def heartbeat(ctx: CsmsContext) -> None:
    """Heartbeat; currentTime within the allowed skew; optionally wait one interval and beat again (§4.6)."""
    answer = await ctx.call("Heartbeat", {})
    when = datetime.fromisoformat(answer["currentTime"].replace("Z", "+00:00"))
    if when.tzinfo is None:
        raise Fail(f"Heartbeat.conf currentTime {answer['currentTime']} has no time zone (OCPP 1.6 §7: UTC)")
    skew = abs((when - datetime.now(UTC)).total_seconds())
    if skew > ctx.setup.clock_skew_s:
        raise Fail(f"Heartbeat.conf currentTime is {skew:.0f} s off")
    interval = ctx.heartbeat_interval_s
    if 0 < interval <= ctx.setup.heartbeat_wait_max_s:
        # OCPP 1.6 §4.6: a charger beating at the interval it was given keeps its connection.
        await ctx.expect_idle(interval)
        await ctx.call("Heartbeat", {})


case(
    "TC_001_CSMS",
    "Cold Boot Charge Point",
    CORE,
    BOOT,
    ("Heartbeat: currentTime close to ours", heartbeat),
    needs=frozenset(),
)


async def pending_boot(ctx: CsmsContext) -> None:
    """The pending charger boots: Pending with an interval; then a call while Pending must not be served."""
    conn = await ctx.open("pending")
    answer = await ctx.boot(conn, expect="Pending")
    if answer["interval"] < 0:
        raise Fail("BootNotification.conf interval is negative")


async def pending_authorize(ctx: CsmsContext) -> None:
    """While Pending, an Authorize must not be Accepted (§4.2.1: only BootNotification until Accepted)."""
    conn = ctx.conns[-1]
    try:
        status = str((await conn.call("Authorize", {"idTag": ctx.tag("accepted")}))["idTagInfo"]["status"])
    except CallError:
        return
    if status == "Accepted":
        raise Fail(
            "a Pending charger's Authorize was Accepted (OCPP 1.6 §4.2.1: nothing but BootNotification until Accepted)"
        )


async def pending_start(ctx: CsmsContext) -> None:
    """While Pending, a StartTransaction must not open an accepted transaction."""
    conn = ctx.conns[-1]
    try:
        answer = await conn.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": ctx.tag("accepted"), "meterStart": 0, "timestamp": ocpp_time()},
        )
    except CallError:
        return
    if answer["idTagInfo"]["status"] == "Accepted":
        raise Fail(
            f"a Pending charger got transaction {answer['transactionId']} Accepted (OCPP 1.6 §4.2.1: not before Accepted)"
        )


case(
    "TC_002_CSMS",
    "Cold Boot Charge Point - Pending",
    CORE,
    ("pending charger: BootNotification answered Pending", pending_boot),
    ("Authorize while Pending is not Accepted", pending_authorize),
    needs=frozenset({"pending_charger", "id_tag_accepted"}),
)


async def regular_session(ctx: CsmsContext) -> None:
    """A second session gets a new transactionId; MeterValues during a session are answered."""
    await ctx.meter_values(ctx.vars["tx"], 2000)


async def second_session_new_id(ctx: CsmsContext) -> None:
    """A second StartTransaction gets a transactionId different from the first (§4.8)."""
    first = ctx.vars["tx"]
    tx_id, _ = await ctx.start(ctx.tag("accepted"), meter_start=6000)
    if tx_id == first:
        raise Fail(f"a second transaction got the same transactionId {tx_id} (OCPP 1.6 §4.8)")
    await ctx.stop(tx_id, reason="Local", tag=ctx.tag("accepted"), meter_stop=7000)


case(
    "TC_003_CSMS",
    "Regular Charging Session - Plugin First",
    CORE,
    BOOT,
    SESSION,
    ("MeterValues during the transaction", regular_session),
    end(),
    ("a second session gets a new transactionId", second_session_new_id),
)


async def identification_first(ctx: CsmsContext) -> None:
    """Authorize before the cable: Accepted; then Preparing, StartTransaction, Charging."""
    tag = ctx.tag("accepted")
    check_status(await ctx.authorize(tag), "Accepted", "Authorize.conf", "OCPP 1.6 §4.1")
    await ctx.status(1, "Preparing")
    tx_id, status = await ctx.start(tag)
    check_status(status, "Accepted", "StartTransaction.conf", "OCPP 1.6 §4.8")
    ctx.vars["tx"] = tx_id
    await ctx.status(1, "Charging")


case(
    "TC_004_1_CSMS",
    "Regular Charging Session - Identification First",
    CORE,
    BOOT,
    ("Authorize, Preparing, StartTransaction, Charging", identification_first),
    end(),
)


async def connection_timeout(ctx: CsmsContext) -> None:
    """Authorize, Preparing, then Available after ConnectionTimeOut; no transaction."""
    check_status(await ctx.authorize(ctx.tag("accepted")), "Accepted", "Authorize.conf", "OCPP 1.6 §4.1")
    await ctx.status(1, "Preparing")
    await ctx.status(1, "Available")


case(
    "TC_004_2_CSMS",
    "Regular Charging Session - Identification First - ConnectionTimeOut",
    CORE,
    BOOT,
    ("Authorize, Preparing, back to Available", connection_timeout),
)
case(
    "TC_005_1_CSMS",
    "EV Side Disconnected - StopTransactionOnEVSideDisconnect = true",
    CORE,
    BOOT,
    SESSION,
    st(1, "SuspendedEV"),
    end("EVDisconnected", with_tag=False),
)


async def cached_start(ctx: CsmsContext) -> None:
    """StartTransaction without Authorize (the idTag was in the charger's cache): Accepted."""
    await ctx.status(1, "Preparing")
    tx_id, status = await ctx.start(ctx.tag("accepted"))
    check_status(status, "Accepted", "StartTransaction.conf of a cached accepted idTag", "OCPP 1.6 §3.5.1")
    ctx.vars["tx"] = tx_id
    await ctx.status(1, "Charging")


case(
    "TC_007_CSMS",
    "Regular Start Charging Session - Cached Id",
    CORE,
    BOOT,
    ("StartTransaction from the cache, Charging", cached_start),
    end(),
)


def remote_start(ctx: CsmsContext) -> dict[str, Any]:
    return {"connectorId": 1, "idTag": ctx.tag("accepted")}


async def start_after_remote(ctx: CsmsContext) -> None:
    """The RemoteStartTransaction's idTag starts the transaction (AuthorizeRemoteTxRequests false)."""
    tx_id, status = await ctx.start(ctx.vars["RemoteStartTransaction"]["idTag"])
    check_status(status, "Accepted", "StartTransaction.conf after RemoteStartTransaction", "OCPP 1.6 §5.11")
    ctx.vars["tx"] = tx_id
    await ctx.status(1, "Charging")


case(
    "TC_010_CSMS",
    "Remote Start Charging Session - Cable Plugged in First",
    CORE,
    BOOT,
    st(1, "Preparing"),
    cs_sends("RemoteStartTransaction", remote_start, {"status": "Accepted"}),
    ("StartTransaction, Charging", start_after_remote),
    end(),
    needs=TRIG,
)
case(
    "TC_011_1_CSMS",
    "Remote Start Charging Session - Remote Start First",
    CORE,
    BOOT,
    cs_sends("RemoteStartTransaction", remote_start, {"status": "Accepted"}),
    st(1, "Preparing"),
    ("StartTransaction, Charging", start_after_remote),
    end(),
    needs=TRIG,
)
case(
    "TC_011_2_CSMS",
    "Remote Start Charging Session - Time Out",
    CORE,
    BOOT,
    cs_sends("RemoteStartTransaction", remote_start, {"status": "Accepted"}),
    st(1, "Preparing"),
    st(1, "Available"),
    needs=TRIG,
)


async def stopped_remotely(ctx: CsmsContext) -> None:
    """StopTransaction reason Remote for the transaction the central system stopped."""
    asked = ctx.vars["RemoteStopTransaction"]["transactionId"]
    if asked != ctx.vars["tx"]:
        raise Fail(f"RemoteStopTransaction names transaction {asked}, the running one is {ctx.vars['tx']}")
    await ctx.end_session(asked, "Remote", ctx.tag("accepted"))


case(
    "TC_012_CSMS",
    "Remote Stop Charging Session",
    CORE,
    BOOT,
    SESSION,
    cs_sends("RemoteStopTransaction", lambda c: {"transactionId": c.vars["tx"]}, {"status": "Accepted"}),
    ("StopTransaction reason Remote, Finishing, Available", stopped_remotely),
    needs=TRIG,
)
case(
    "TC_013_CSMS",
    "Hard Reset",
    CORE,
    BOOT,
    cs_sends("Reset", {"type": "Hard"}, {"status": "Accepted"}),
    close_and_reconnect(),
    needs=TRIG,
)
case(
    "TC_014_CSMS",
    "Soft Reset",
    CORE,
    BOOT,
    cs_sends("Reset", {"type": "Soft"}, {"status": "Accepted"}),
    close_and_reconnect(),
    needs=TRIG,
)
case(
    "TC_017_1_CSMS",
    "Unlock Connector - No Charging Session Running (Not Fixed Cable)",
    CORE,
    BOOT,
    cs_sends("UnlockConnector", {"connectorId": 1}, {"status": "Unlocked"}),
    needs=TRIG,
)
case(
    "TC_017_2_CSMS",
    "Unlock Connector - No Charging Session Running (Fixed Cable)",
    CORE,
    BOOT,
    cs_sends("UnlockConnector", {"connectorId": 1}, {"status": "NotSupported"}),
    needs=TRIG,
)


async def stopped_by_unlock(ctx: CsmsContext) -> None:
    """StopTransaction reason UnlockCommand."""
    await ctx.end_session(ctx.vars["tx"], "UnlockCommand", None)


case(
    "TC_018_1_CSMS",
    "Unlock Connector - With Charging Session (Not Fixed Cable)",
    CORE,
    BOOT,
    SESSION,
    cs_sends("UnlockConnector", {"connectorId": 1}, {"status": "Unlocked"}),
    ("StopTransaction reason UnlockCommand, Finishing, Available", stopped_by_unlock),
    needs=TRIG,
)
CONFIG = {
    "configurationKey": [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"},
        {"key": "MeterValueSampleInterval", "readonly": False, "value": "60"},
        {"key": "NumberOfConnectors", "readonly": True, "value": "1"},
        {
            "key": "SupportedFeatureProfiles",
            "readonly": True,
            "value": "Core,LocalAuthListManagement,RemoteTrigger,SmartCharging,Reservation,FirmwareManagement",
        },
    ]
}
case(
    "TC_019_1_CSMS",
    "Retrieve all configuration keys",
    CORE,
    BOOT,
    cs_sends("GetConfiguration", {}, CONFIG),
    needs=TRIG,
)
case(
    "TC_019_2_CSMS",
    "Retrieve specific configuration key",
    CORE,
    BOOT,
    cs_sends(
        "GetConfiguration",
        {"key": ["HeartbeatInterval"]},
        {"configurationKey": CONFIG["configurationKey"][:1]},
    ),
    needs=TRIG,
)
case(
    "TC_021_CSMS",
    "Change/set Configuration",
    CORE,
    BOOT,
    cs_sends(
        "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"}, {"status": "Accepted"}
    ),
    needs=TRIG,
)
case(
    "TC_023_1_CSMS",
    "Start Charging Session - Authorize invalid",
    CORE,
    BOOT,
    st(1, "Preparing"),
    authorize_with("invalid", "Invalid"),
    st(1, "Available"),
    needs=frozenset({"id_tag_invalid"}),
)
case(
    "TC_023_2_CSMS",
    "Start Charging Session - Authorize expired",
    CORE,
    BOOT,
    st(1, "Preparing"),
    authorize_with("expired", "Expired"),
    st(1, "Available"),
    needs=frozenset({"id_tag_expired"}),
)
case(
    "TC_023_3_CSMS",
    "Start Charging Session - Authorize blocked",
    CORE,
    BOOT,
    st(1, "Preparing"),
    authorize_with("blocked", "Blocked"),
    st(1, "Available"),
    needs=frozenset({"id_tag_blocked"}),
)


async def lock_failure(ctx: CsmsContext) -> None:
    """Authorize, then Faulted ConnectorLockFailure: answered like any StatusNotification."""
    check_status(await ctx.authorize(ctx.tag("accepted")), "Accepted", "Authorize.conf", "OCPP 1.6 §4.1")
    await ctx.status(1, "Faulted", error_code="ConnectorLockFailure")


case(
    "TC_024_CSMS",
    "Start Charging Session - Lock Failure",
    CORE,
    BOOT,
    st(1, "Preparing"),
    ("Authorize, Faulted ConnectorLockFailure", lock_failure),
)
case(
    "TC_026_CSMS",
    "Remote Start Charging Session - Rejected",
    CORE,
    BOOT,
    cs_sends("RemoteStartTransaction", remote_start, {"status": "Rejected"}),
    ("the connection stays usable: Heartbeat", heartbeat),
    needs=TRIG,
)
case(
    "TC_028_CSMS",
    "Remote Stop Transaction - Rejected",
    CORE,
    BOOT,
    SESSION,
    cs_sends("RemoteStopTransaction", lambda c: {"transactionId": c.vars["tx"]}, {"status": "Rejected"}),
    end(),
    needs=TRIG,
)
case(
    "TC_030_CSMS",
    "Unlock Connector - Unlock Failure",
    CORE,
    BOOT,
    cs_sends("UnlockConnector", {"connectorId": 1}, {"status": "UnlockFailed"}),
    needs=TRIG,
)
case(
    "TC_031_CSMS",
    "Unlock Connector - Unknown Connector",
    CORE,
    BOOT,
    cs_sends("UnlockConnector", {"connectorId": 9}, {"status": "NotSupported"}),
    needs=TRIG,
)


async def power_loss_stop(ctx: CsmsContext) -> None:
    """After the power cut: StopTransaction reason PowerLoss, stamped before the reboot."""
    await ctx.stop(ctx.vars["tx"], reason="PowerLoss", when=minutes_ago(1))
    await ctx.status(1, "Available")


case(
    "TC_032_1_CSMS",
    "Power failure boot charging point - configured to stop transaction(s)",
    CORE,
    BOOT,
    SESSION,
    close_and_reconnect(abrupt=True),
    ("StopTransaction reason PowerLoss", power_loss_stop),
)


async def offline_start(ctx: CsmsContext) -> None:
    """Back online: the queued StartTransaction (stamped 10 minutes ago) with the accepted idTag."""
    tx_id, status = await ctx.start(ctx.tag("accepted"), when=minutes_ago(10))
    check_status(status, "Accepted", "StartTransaction.conf of an offline start", "OCPP 1.6 §4.8")
    ctx.vars["tx"] = tx_id


case(
    "TC_037_1_CSMS",
    "Offline Start Transaction - Valid IdTag",
    CORE,
    BOOT,
    ("queued StartTransaction, valid idTag", offline_start),
    st(1, "Charging"),
    end(),
)
case(
    "TC_037_3_CSMS",
    "Offline Start Transaction - Invalid IdTag - StopTransactionOnInvalidId = true",
    CORE,
    BOOT,
    start_tx_with("invalid", "Invalid", offline=True),
    ("StopTransaction reason DeAuthorized, Finishing", lambda c: _deauth(c)),
    needs=frozenset({"id_tag_invalid"}),
)


async def _deauth(ctx: CsmsContext) -> None:
    await ctx.stop(ctx.vars["tx"], reason="DeAuthorized")
    await ctx.status(1, "Finishing")


case(
    "TC_037_2_CSMS",
    "Offline Start Transaction - Invalid IdTag - StopTransactionOnInvalidId = false",
    CORE,
    BOOT,
    start_tx_with("invalid", "Invalid", offline=True),
    st(1, "SuspendedEVSE"),
    ("StopTransaction reason Local", lambda c: _local(c)),
    needs=frozenset({"id_tag_invalid"}),
)


async def _local(ctx: CsmsContext) -> None:
    await ctx.stop(ctx.vars["tx"], reason="Local")


case(
    "TC_039_CSMS",
    "Offline Transaction",
    CORE,
    BOOT,
    ("queued StartTransaction (offline)", offline_start),
    stop_offline("Local"),
    st(1, "Available"),
)
case(
    "TC_040_1_CSMS",
    "Configuration Keys - NotSupported",
    CORE,
    BOOT,
    cs_sends(
        "ChangeConfiguration", {"key": "ConformanceUnknownKey", "value": "1"}, {"status": "NotSupported"}
    ),
    needs=TRIG,
)
case(
    "TC_040_2_CSMS",
    "Configuration Keys - Invalid Value",
    CORE,
    BOOT,
    cs_sends(
        "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "-1"}, {"status": "Rejected"}
    ),
    needs=TRIG,
)
case(
    "TC_061_CSMS",
    "Clear Authorization Data in Authorization Cache",
    CORE,
    BOOT,
    cs_sends("ClearCache", {}, {"status": "Accepted"}),
    needs=TRIG,
)


async def data_transfer(ctx: CsmsContext) -> None:
    """DataTransfer with an unknown vendor: a valid answer (typically UnknownVendorId), never a CALLERROR."""
    answer = await ctx.call(
        "DataTransfer", {"vendorId": "org.opencharge.conformance", "messageId": "Probe", "data": "x"}
    )
    ctx.event(f"DataTransfer.conf status {answer['status']}")


case(
    "TC_064_CSMS",
    "Data Transfer to a Central System",
    CORE,
    BOOT,
    ("DataTransfer, unknown vendor", data_transfer),
    needs=frozenset(),
)

# ================================================================================================ LocalAuthList


def local_list(ctx: CsmsContext, update: str = "Full") -> dict[str, Any]:
    return {
        "listVersion": 1,
        "updateType": update,
        "localAuthorizationList": [{"idTag": ctx.tag("accepted"), "idTagInfo": {"status": "Accepted"}}],
    }


case(
    "TC_042_1_CSMS",
    "Get Local List Version (not supported)",
    LOCAL,
    BOOT,
    cs_sends("GetLocalListVersion", {}, {"listVersion": -1}),
    needs=TRIG,
)
case(
    "TC_042_2_CSMS",
    "Get Local List Version (empty)",
    LOCAL,
    BOOT,
    cs_sends("GetLocalListVersion", {}, {"listVersion": 0}),
    needs=TRIG,
)
case(
    "TC_043_1_CSMS",
    "Send Local Authorization List - NotSupported",
    LOCAL,
    BOOT,
    cs_sends("SendLocalList", local_list, {"status": "NotSupported"}),
    needs=TRIG,
)
case(
    "TC_043_3_CSMS",
    "Send Local Authorization List - Failed",
    LOCAL,
    BOOT,
    cs_sends("SendLocalList", local_list, {"status": "Failed"}),
    needs=TRIG,
)
case(
    "TC_043_4_CSMS",
    "Send Local Authorization List - Full",
    LOCAL,
    BOOT,
    cs_sends("SendLocalList", local_list, {"status": "Accepted"}),
    needs=TRIG,
)
case(
    "TC_043_5_CSMS",
    "Send Local Authorization List - Differential",
    LOCAL,
    BOOT,
    cs_sends("SendLocalList", lambda c: local_list(c, "Differential"), {"status": "Accepted"}),
    needs=TRIG,
)

# ================================================================================================ Firmware


def firmware_statuses(*statuses: str, reboot: bool = False) -> tuple[str, StepFn]:
    """A step: FirmwareStatusNotification for each status (answered with an empty object)."""

    async def run(ctx: CsmsContext) -> None:
        for status in statuses:
            await ctx.call("FirmwareStatusNotification", {"status": status})
        if reboot:
            await ctx.main().close()
            await ctx.connect_and_boot()

    return ("FirmwareStatusNotification " + ", ".join(statuses) + (", reboot" if reboot else ""), run)


def update_firmware(ctx: CsmsContext) -> dict[str, Any]:
    return {"location": "https://firmware.example.com/fw-2.0.bin", "retrieveDate": _time(ctx, 0)}


case(
    "TC_044_1_CSMS",
    "Firmware Update - Download and Install",
    FIRMWARE,
    BOOT,
    cs_sends("UpdateFirmware", update_firmware, {}),
    firmware_statuses("Downloading", "Downloaded", "Installing", "Installed", reboot=True),
    needs=TRIG,
)
case(
    "TC_044_2_CSMS",
    "Firmware Update - Download Failed",
    FIRMWARE,
    BOOT,
    cs_sends("UpdateFirmware", update_firmware, {}),
    firmware_statuses("Downloading", "DownloadFailed"),
    needs=TRIG,
)
case(
    "TC_044_3_CSMS",
    "Firmware Update - Installation Failed",
    FIRMWARE,
    BOOT,
    cs_sends("UpdateFirmware", update_firmware, {}),
    firmware_statuses("Downloading", "Downloaded", "Installing", "InstallationFailed"),
    needs=TRIG,
)


async def diagnostics_statuses(ctx: CsmsContext) -> None:
    for status in ("Uploading", "Uploaded"):
        await ctx.call("DiagnosticsStatusNotification", {"status": status})


case(
    "TC_045_1_CSMS",
    "Get Diagnostics",
    FIRMWARE,
    BOOT,
    cs_sends(
        "GetDiagnostics",
        {"location": "ftp://diagnostics.example.com/upload"},
        {"fileName": "diagnostics.zip"},
    ),
    ("DiagnosticsStatusNotification Uploading, Uploaded", diagnostics_statuses),
    needs=TRIG,
)

# ================================================================================================ Reservation


def reserve(connector: int = 1) -> Callable[[CsmsContext], dict[str, Any]]:
    def payload(ctx: CsmsContext) -> dict[str, Any]:
        return {
            "connectorId": connector,
            "expiryDate": _time(ctx, 30),
            "idTag": ctx.tag("accepted"),
            "reservationId": 4242,
        }

    return payload


async def reserved_session(ctx: CsmsContext) -> None:
    """Reserved, then the reserving idTag: Authorize, StartTransaction with the reservationId, Charging."""
    tag = ctx.tag("accepted")
    check_status(await ctx.authorize(tag), "Accepted", "Authorize.conf", "OCPP 1.6 §4.1")
    await ctx.status(1, "Preparing")
    tx_id, status = await ctx.start(tag, reservation_id=4242)
    check_status(status, "Accepted", "StartTransaction.conf with the reservationId", "OCPP 1.6 §5.13")
    ctx.vars["tx"] = tx_id
    await ctx.status(1, "Charging")


case(
    "TC_046_CSMS",
    "Reservation of a Connector - Transaction",
    RESERVATION,
    BOOT,
    cs_sends("ReserveNow", reserve(), {"status": "Accepted"}),
    st(1, "Reserved"),
    ("reserving idTag starts a transaction", reserved_session),
    end(),
    needs=TRIG,
)
case(
    "TC_047_CSMS",
    "Reservation of a Connector - Expire",
    RESERVATION,
    BOOT,
    cs_sends("ReserveNow", reserve(), {"status": "Accepted"}),
    st(1, "Reserved"),
    st(1, "Available"),
    needs=TRIG,
)
for sub, status in (("1", "Faulted"), ("2", "Occupied"), ("3", "Unavailable"), ("4", "Rejected")):
    case(
        f"TC_048_{sub}_CSMS",
        f"Reservation of a Connector - {status}",
        RESERVATION,
        BOOT,
        cs_sends("ReserveNow", reserve(), {"status": status}),
        needs=TRIG,
    )
case(
    "TC_049_CSMS",
    "Reservation of a Charge Point - Transaction",
    RESERVATION,
    BOOT,
    cs_sends("ReserveNow", reserve(0), {"status": "Accepted"}),
    needs=TRIG,
)
case(
    "TC_051_CSMS",
    "Cancel Reservation",
    RESERVATION,
    BOOT,
    cs_sends("ReserveNow", reserve(), {"status": "Accepted"}),
    st(1, "Reserved"),
    cs_sends("CancelReservation", {"reservationId": 4242}, {"status": "Accepted"}),
    st(1, "Available"),
    needs=TRIG,
)
case(
    "TC_052_CSMS",
    "Cancel Reservation - Rejected",
    RESERVATION,
    BOOT,
    cs_sends("CancelReservation", {"reservationId": 4243}, {"status": "Rejected"}),
    needs=TRIG,
)

# ================================================================================================ RemoteTrigger


async def triggered_status(ctx: CsmsContext) -> None:
    """The triggered StatusNotification, then a triggered Heartbeat (§5.17)."""
    await ctx.status(1, "Available")


case(
    "TC_054_CSMS",
    "Trigger Message",
    TRIGGER,
    BOOT,
    cs_sends(
        "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}, {"status": "Accepted"}
    ),
    ("the triggered StatusNotification", triggered_status),
    cs_sends("TriggerMessage", {"requestedMessage": "Heartbeat"}, {"status": "Accepted"}),
    ("the triggered Heartbeat", heartbeat),
    needs=TRIG,
)
case(
    "TC_055_CSMS",
    "Trigger Message - Rejected",
    TRIGGER,
    BOOT,
    cs_sends("TriggerMessage", {"requestedMessage": "MeterValues", "connectorId": 9}, {"status": "Rejected"}),
    needs=TRIG,
)

# ================================================================================================ SmartCharging


def profile(purpose: str, tx_id: int | None = None, profile_id: int = 10, stack: int = 0) -> dict[str, Any]:
    """A charging profile limiting to 16 A (§7.8)."""
    body: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute" if purpose != "TxDefaultProfile" else "Recurring",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
        },
    }
    if purpose == "TxDefaultProfile":
        body["recurrencyKind"] = "Daily"
        body["chargingSchedule"]["startSchedule"] = "2026-01-01T00:00:00Z"
    else:
        body["chargingSchedule"]["startSchedule"] = ocpp_time()
    if tx_id is not None:
        body["transactionId"] = tx_id
    return body


case(
    "TC_056_CSMS",
    "Central Smart Charging - TxDefaultProfile",
    SMART,
    BOOT,
    cs_sends(
        "SetChargingProfile",
        {"connectorId": 1, "csChargingProfiles": profile("TxDefaultProfile")},
        {"status": "Accepted"},
    ),
    needs=TRIG,
)
case(
    "TC_057_CSMS",
    "Central Smart Charging - TxProfile",
    SMART,
    BOOT,
    SESSION,
    cs_sends(
        "SetChargingProfile",
        lambda c: {"connectorId": 1, "csChargingProfiles": profile("TxProfile", c.vars["tx"], 11)},
        {"status": "Accepted"},
    ),
    end(),
    needs=TRIG,
)
case(
    "TC_059_CSMS",
    "Remote Start Transaction with Charging Profile",
    SMART,
    BOOT,
    cs_sends(
        "RemoteStartTransaction",
        lambda c: {
            "connectorId": 1,
            "idTag": c.tag("accepted"),
            "chargingProfile": profile("TxProfile", None, 12),
        },
        {"status": "Accepted"},
    ),
    st(1, "Preparing"),
    ("StartTransaction, Charging", start_after_remote),
    end(),
    needs=TRIG,
)
case(
    "TC_066_CSMS",
    "Get Composite Schedule",
    SMART,
    BOOT,
    cs_sends(
        "GetCompositeSchedule",
        {"connectorId": 1, "duration": 3600},
        {
            "status": "Accepted",
            "connectorId": 1,
            "scheduleStart": "2026-01-01T00:00:00Z",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
            },
        },
    ),
    needs=TRIG,
)
case(
    "TC_067_CSMS",
    "Clear Charging Profile",
    SMART,
    BOOT,
    cs_sends("ClearChargingProfile", {"id": 10}, {"status": "Accepted"}),
    needs=TRIG,
)

# ================================================================================================ Security


def security_event(kind: str) -> tuple[str, StepFn]:
    async def run(ctx: CsmsContext) -> None:
        await ctx.call(
            "SecurityEventNotification", {"type": kind, "timestamp": ocpp_time(), "techInfo": "conformance"}
        )

    return (f"SecurityEventNotification {kind}", run)


case(
    "TC_077_CSMS",
    "Invalid ChargePointCertificate Security Event",
    SECURITY,
    BOOT,
    security_event("InvalidChargePointCertificate"),
    needs=frozenset(),
)
case(
    "TC_078_CSMS",
    "Invalid CentralSystemCertificate Security Event",
    SECURITY,
    BOOT,
    security_event("InvalidCentralSystemCertificate"),
    needs=frozenset(),
)


async def right_password(ctx: CsmsContext) -> None:
    await ctx.open()
    await ctx.boot()


case(
    "TC_085_CSMS",
    "Basic Authentication - Valid username/password combination",
    SECURITY,
    ("a wrong password gets HTTP 401", wrong_password),
    ("the right password connects and boots", right_password),
    needs=frozenset({"password"}),
)


async def tls_connect(ctx: CsmsContext) -> None:
    """A wss:// connection verified against --tls-ca (TLS 1.2 or later) connects and boots."""
    await ctx.open()
    ssl_object = ctx.main().ws.transport.get_extra_info("ssl_object") if ctx.main().ws.transport else None
    version = ssl_object.version() if ssl_object is not None else None
    if version not in ("TLSv1.2", "TLSv1.3"):
        raise Fail(f"TLS version {version}, the security whitepaper asks for TLS 1.2 or later")
    await ctx.boot()


case(
    "TC_086_CSMS",
    "TLS - server-side certificate - Valid certificate",
    SECURITY,
    ("wss:// with the CA's verification", tls_connect),
    needs=frozenset({"tls"}),
)


case(
    "TC_088_CSMS",
    "WebSocket Subprotocol negotiation",
    SECURITY,
    ("subprotocol negotiation", subprotocol_negotiation),
    needs=frozenset(),
)

# Security whitepaper use cases the central system drives (OCPP 1.6 security whitepaper edition 2, §3-§5).


def authorization_key(ctx: CsmsContext) -> dict[str, Any]:
    """ChangeConfiguration of AuthorizationKey to a fresh password (whitepaper §3.2 A01: 16 to 40 characters)."""
    return {
        "key": "AuthorizationKey",
        "value": ctx.vars.setdefault("new_password", "conf-" + secrets.token_hex(10)),
    }


async def new_key_works(ctx: CsmsContext) -> None:
    """After the charger accepted the new AuthorizationKey it reconnects with it; the old password gets 401."""
    await ctx.check_password_change(str(ctx.vars["new_password"]), True, "OCPP 1.6 security whitepaper A01")


async def _boot_on(ctx: CsmsContext, conn: RawCharger) -> None:
    await ctx.boot(conn)


async def restore_key(ctx: CsmsContext) -> None:
    """Cleanup: the central system sets the configured password again."""
    payload = {"key": "AuthorizationKey", "value": ctx.setup.password or ""}
    await ctx.restore_password(_boot_on, "ChangeConfiguration", payload, {"status": "Accepted"})


case(
    "TC_073_CSMS",
    "Update Charge Point Password for HTTP Basic Authentication",
    SECURITY,
    BOOT,
    cs_sends("ChangeConfiguration", authorization_key, {"status": "Accepted"}),
    ("reconnect with the new password: admitted; the old one: 401", new_key_works),
    needs=frozenset({"password", "trigger"}),
    cleanup=(("change the password back", restore_key),),
)


async def sign_and_receive(ctx: CsmsContext) -> None:
    """SignCertificate with a fresh CSR: Accepted, then a CertificateSigned whose leaf certifies our key (A02)."""
    conn = ctx.main()
    key, csr = make_csr(conn.cp_id)
    signed = conn.expect("CertificateSigned")
    try:
        answer = await ctx.call("SignCertificate", {"csr": csr})
        check_status(answer["status"], "Accepted", "SignCertificate.conf", "OCPP 1.6 security whitepaper A02")
        try:
            async with asyncio.timeout(ctx.scaled(ctx.setup.trigger_wait_s)):
                unique_id, payload = await signed
        except TimeoutError:
            raise Fail(
                "no CertificateSigned.req after an Accepted SignCertificate (whitepaper A02)"
            ) from None
    finally:
        conn.forget("CertificateSigned")
    await ctx.check_schema(Call(unique_id, "CertificateSigned", dict(payload)), "CertificateSigned.req")
    problem = check_signed_chain(payload["certificateChain"], key, conn.cp_id)
    await conn.send([3, unique_id, {"status": "Rejected" if problem else "Accepted"}])
    if problem:
        raise Fail(f"CertificateSigned.req: {problem} (OCPP 1.6 security whitepaper A02)")


case(
    "TC_074_CSMS",
    "Update Charge Point Certificate by request of Central System",
    SECURITY,
    BOOT,
    cs_sends(
        "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}, {"status": "Accepted"}
    ),
    ("SignCertificate with a new CSR; CertificateSigned certifies its key", sign_and_receive),
    needs=TRIG,
)


def root_certificate(kind: str) -> Callable[[CsmsContext], dict[str, Any]]:
    def payload(ctx: CsmsContext) -> dict[str, Any]:
        pem = ctx.vars.setdefault("root_pem", self_signed_pem("OpenChargeConf Test Root"))
        return {"certificateType": kind, "certificate": pem}

    return payload


for suffix, kind in (("1", "ManufacturerRootCertificate"), ("2", "CentralSystemRootCertificate")):
    case(
        f"TC_075_{suffix}_CSMS",
        f"Install a certificate on the Charge Point - {kind}",
        SECURITY,
        BOOT,
        cs_sends("InstallCertificate", root_certificate(kind), {"status": "Accepted"}),
        needs=TRIG,
    )


def installed_hash(ctx: CsmsContext) -> dict[str, Any]:
    return certificate_hash_data(ctx.vars.setdefault("root_pem", self_signed_pem("OpenChargeConf Test Root")))


case(
    "TC_076_CSMS",
    "Delete a specific certificate from the Charge Point",
    SECURITY,
    BOOT,
    (
        "central system sends GetInstalledCertificateIds; charger lists one root",
        lambda c: _installed_ids(c),
    ),
    cs_sends(
        "DeleteCertificate", lambda c: {"certificateHashData": installed_hash(c)}, {"status": "Accepted"}
    ),
    needs=TRIG,
)


async def _installed_ids(ctx: CsmsContext) -> None:
    await ctx.csms_sends(
        "GetInstalledCertificateIds",
        {"certificateType": "CentralSystemRootCertificate"},
        {"status": "Accepted", "certificateHashData": [installed_hash(ctx)]},
    )


def notify(action: str, *statuses: str, request_id: int | None = None) -> tuple[str, StepFn]:
    """A step: the charger reports each status in turn with ``action`` (LogStatus-, SignedFirmwareStatus-)."""

    async def run(ctx: CsmsContext) -> None:
        for status in statuses:
            payload: dict[str, Any] = {"status": status}
            if request_id is not None:
                payload["requestId"] = request_id
            await ctx.call(action, payload)

    return (f"{action} {', '.join(statuses)}", run)


case(
    "TC_079_CSMS",
    "Get Security Log",
    SECURITY,
    BOOT,
    cs_sends(
        "GetLog",
        {"logType": "SecurityLog", "requestId": 79, "log": {"remoteLocation": "ftp://127.0.0.1/logs"}},
        {"status": "Accepted", "filename": "security.log"},
    ),
    notify("LogStatusNotification", "Uploading", "Uploaded", request_id=79),
    needs=TRIG,
)


def signed_firmware(request_id: int) -> Callable[[CsmsContext], dict[str, Any]]:
    def payload(ctx: CsmsContext) -> dict[str, Any]:
        return {
            "requestId": request_id,
            "firmware": {
                "location": "https://127.0.0.1/firmware/conformance.bin",
                "retrieveDateTime": "2026-01-01T00:00:00Z",
                "signingCertificate": ctx.vars.setdefault(
                    "root_pem", self_signed_pem("OpenChargeConf Firmware")
                ),
                "signature": base64.b64encode(b"conformance-signature").decode(),
            },
        }

    return payload


case(
    "TC_080_CSMS",
    "Secure Firmware Update",
    SECURITY,
    BOOT,
    cs_sends("SignedUpdateFirmware", signed_firmware(80), {"status": "Accepted"}),
    notify(
        "SignedFirmwareStatusNotification",
        "Downloading",
        "Downloaded",
        "SignatureVerified",
        "Installing",
        "Installed",
        request_id=80,
    ),
    close_and_reconnect(),
    needs=TRIG,
)
case(
    "TC_081_CSMS",
    "Secure Firmware Update - Invalid Signature",
    SECURITY,
    BOOT,
    cs_sends("SignedUpdateFirmware", signed_firmware(81), {"status": "Accepted"}),
    notify(
        "SignedFirmwareStatusNotification", "Downloading", "Downloaded", "InvalidSignature", request_id=81
    ),
    security_event("InvalidFirmwareSignature"),
    needs=TRIG,
)


async def client_certificate_boot(ctx: CsmsContext) -> None:
    """Security profile 3: a wss:// connection with the charger's client certificate connects and boots."""
    await tls_connect(ctx)


case(
    "TC_087_CSMS",
    "TLS - Client-side certificate - valid certificate",
    SECURITY,
    ("wss:// with the client certificate (--tls-cert), boot", client_certificate_boot),
    needs=frozenset({"tls", "client_certificate"}),
)


async def _boot_available(ctx: CsmsContext, conn: RawCharger) -> None:
    """BootNotification Accepted, then connectors 0 and 1 Available (OCTT TC_083 steps 7-10)."""
    await ctx.boot(conn)
    for connector in (0, 1):
        await ctx.status(connector, "Available", conn=conn)


def security_profile_up(ctx: CsmsContext) -> dict[str, Any]:
    """ChangeConfiguration SecurityProfile one above the upgrade charger's (OCTT TC_083 step 1)."""
    return {"key": "SecurityProfile", "value": str(ctx.setup.upgrade_profiles[1])}


UPGRADE_FIRST, UPGRADE_LAST = upgrade_steps(
    _boot_available, "OCPP 1.6 security whitepaper, security profiles"
)
case(
    "TC_083_CSMS",
    "Upgrade Charge Point Security Profile - Accepted",
    SECURITY,
    UPGRADE_FIRST,
    cs_sends("ChangeConfiguration", security_profile_up, {"status": "Accepted"}),
    cs_sends("Reset", {"type": "Hard"}, {"status": "Accepted"}),
    *UPGRADE_LAST,
    needs=frozenset({"upgrade_charger", "trigger"}),
    timeout_s=90,
)

# ================================================================================================ stricter checks of this project


def strict(id: str, title: str, block: str, *steps: tuple[str, StepFn], needs: frozenset[str]) -> None:
    """A check the OCTT catalogue does not have (ids OCS_nnn_CSMS), run like any case."""
    case(id, title, block, *steps, needs=needs, catalogue=False)


strict(
    "OCS_001_CSMS",
    "A random unknown idTag is not Accepted by Authorize",
    CORE,
    BOOT,
    authorize_with("random", "Invalid"),
    needs=frozenset(),
)
strict(
    "OCS_002_CSMS",
    "StartTransaction with an invalid idTag is not Accepted",
    CORE,
    BOOT,
    start_tx_with("invalid", "Invalid"),
    needs=frozenset({"id_tag_invalid"}),
)
strict(
    "OCS_003_CSMS",
    "StartTransaction with a blocked idTag is not Accepted",
    CORE,
    BOOT,
    start_tx_with("blocked", "Blocked"),
    needs=frozenset({"id_tag_blocked"}),
)
strict(
    "OCS_004_CSMS",
    "StartTransaction with an expired idTag is not Accepted",
    CORE,
    BOOT,
    start_tx_with("expired", "Expired"),
    needs=frozenset({"id_tag_expired"}),
)
strict(
    "OCS_005_CSMS",
    "StartTransaction with a random unknown idTag is not Accepted",
    CORE,
    BOOT,
    start_tx_with("random", "Invalid"),
    needs=frozenset(),
)
strict(
    "OCS_006_CSMS",
    "StopTransaction by a blocked idTag is not confirmed Accepted",
    CORE,
    BOOT,
    stop_tag_info("blocked"),
    needs=frozenset({"id_tag_accepted", "id_tag_blocked"}),
)
strict(
    "OCS_007_CSMS",
    "StopTransaction by an expired idTag is not confirmed Accepted",
    CORE,
    BOOT,
    stop_tag_info("expired"),
    needs=frozenset({"id_tag_accepted", "id_tag_expired"}),
)
strict(
    "OCS_008_CSMS",
    "StopTransaction by an invalid idTag is not confirmed Accepted",
    CORE,
    BOOT,
    stop_tag_info("invalid"),
    needs=frozenset({"id_tag_accepted", "id_tag_invalid"}),
)


async def unknown_transaction_stop(ctx: CsmsContext) -> None:
    """A StopTransaction for a transactionId the central system never issued must not confirm the idTag."""
    known = set(ctx.issued_tx_ids)
    tx_id = 2_000_000_000 - len(known)
    answer = await ctx.stop(tx_id, reason="Local", tag=ctx.tag("accepted"))
    info = answer.get("idTagInfo")
    if info is not None and info["status"] == "Accepted":
        raise Fail(
            f"StopTransaction for never-issued transaction {tx_id} was confirmed with idTagInfo Accepted"
        )


strict(
    "OCS_009_CSMS",
    "StopTransaction for a transaction never issued is not confirmed",
    CORE,
    BOOT,
    ("StopTransaction, unknown transactionId", unknown_transaction_stop),
    needs=ACCEPTED,
)


async def foreign_stop(ctx: CsmsContext) -> None:
    """The second charger stops the main charger's transaction: the idTag must not be confirmed Accepted."""
    tx_id = ctx.vars["tx"]
    other = await ctx.connect_and_boot("second")
    answer = await ctx.stop(tx_id, reason="Local", tag=ctx.tag("accepted"), conn=other)
    info = answer.get("idTagInfo")
    if info is not None and info["status"] == "Accepted":
        raise Fail(
            f"charger {other.cp_id} stopped another charger's transaction {tx_id} and got idTagInfo Accepted"
        )


strict(
    "OCS_010_CSMS",
    "A charger cannot stop another charger's transaction",
    CORE,
    BOOT,
    SESSION,
    ("second charger sends StopTransaction for it", foreign_stop),
    end(),
    needs=frozenset({"id_tag_accepted", "second_charger"}),
)


strict(
    "OCS_011_CSMS",
    "No credentials get HTTP 401",
    SECURITY,
    ("handshake without Authorization", no_credentials),
    needs=frozenset({"password"}),
)
strict(
    "OCS_012_CSMS",
    "Another charger's password gets HTTP 401",
    SECURITY,
    ("second charger id with the main charger's password", others_password),
    needs=frozenset({"password", "second_charger"}),
)
strict(
    "OCS_013_CSMS",
    "A username that is not the charger id gets HTTP 401",
    SECURITY,
    ("Basic auth as another user", username_mismatch),
    needs=frozenset({"password"}),
)


strict(
    "OCS_014_CSMS",
    "An unknown charger id is refused at the handshake",
    SECURITY,
    ("handshake as an unknown charger", unknown_charger),
    needs=frozenset(),
)


async def pending_before_boot(ctx: CsmsContext) -> None:
    """A pending charger that sends StartTransaction before its BootNotification gets no accepted transaction."""
    await ctx.open("pending")
    await pending_start(ctx)


strict(
    "OCS_015_CSMS",
    "A Pending charger gets no transaction before BootNotification is Accepted",
    CORE,
    ("pending charger: StartTransaction before and after a Pending BootNotification", pending_before_boot),
    ("BootNotification Pending, StartTransaction again", lambda c: _pending_again(c)),
    needs=frozenset({"pending_charger", "id_tag_accepted"}),
)


async def _pending_again(ctx: CsmsContext) -> None:
    await ctx.boot(ctx.conns[-1], expect="Pending")
    await pending_start(ctx)
