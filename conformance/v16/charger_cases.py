"""OCPP 1.6 charge-point cases (TC_nnn_CS of the public OCTT catalogue), run against a `ChargerContext`.

Every case ends with a check that the charger sent only schema-valid frames and only the StatusNotification
transitions OCPP 1.6 §4.9 allows. Optional feature profiles are gated by SupportedFeatureProfiles: a profile
the charger does not declare makes its cases not applicable; a declared profile it does not implement fails.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.x509.oid import NameOID

from backend_stub.ocpp_server import Frame
from conformance import pki
from conformance.charger_runner import ChargerContext, stops
from conformance.fileserver import serve_files
from conformance.model import Case, Fail, NotApplicable, Step
from conformance.tls_checks import (
    any_password,
    basic_auth_valid,
    client_certificate_valid,
    invalid_server_certificate,
    latest_handshake,
    server_certificate_valid,
)
from conformance.v16.spec import CORE_CONFIGURATION_KEYS

__all__ = ["CASES"]

StepFn = Callable[[ChargerContext], Awaitable[None]]
UPGRADE_SELF_RECONNECT_S = (
    3.0  # TC_083: how long a charger may take to drop its connection for the new profile
)
CASES: list[Case[ChargerContext]] = []
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
}
REMOTE_TAG = "REMOTE01"
OFFLINE_CLOCK_SLACK_S = 2.0  # a queued message's timestamp may differ this much from our clock


async def check_frames(ctx: ChargerContext) -> None:
    """Only schema-valid frames and allowed status transitions (OCPP 1.6 §4.9) in this case."""
    await ctx.check_frames()


async def to_idle(ctx: ChargerContext) -> None:
    """Back to idle for the next case."""
    await ctx.to_idle()


def case(
    id: str,
    title: str,
    block: str,
    *steps: tuple[str, StepFn],
    needs: frozenset[str] = frozenset(),
    timeout_s: float = 60.0,
) -> None:
    """Add a case: profile gate for optional blocks, its steps, the frame check, and a cleanup to idle."""
    gate: tuple[tuple[str, StepFn], ...] = ()
    profile = PROFILE_OF_BLOCK.get(block)
    if profile is not None:

        async def require(ctx: ChargerContext, profile: str = profile) -> None:
            await ctx.require_profile(profile)

        gate = ((f"charger declares {profile}", require),)
    all_steps = (*gate, *steps, ("only valid frames and allowed status transitions", check_frames))
    CASES.append(
        Case(
            id,
            title,
            block,
            tuple(Step[ChargerContext](t, f) for t, f in all_steps),
            needs,
            timeout_s,
            cleanup=(Step[ChargerContext]("back to idle", to_idle),),
        )
    )


PLUG = frozenset({"plug", "unplug"})
PLUG_SWIPE = frozenset({"plug", "unplug", "swipe"})


# ------------------------------------------------------------------------------------------------ helpers


def answer(
    action: str,
    payload: dict[str, Any] | Callable[[ChargerContext], dict[str, Any]],
    field: str,
    *allowed: str,
) -> tuple[str, StepFn]:
    """A step: send ``action``; ``field`` of the answer must be one of ``allowed``."""

    async def run(ctx: ChargerContext) -> None:
        body = payload(ctx) if callable(payload) else payload
        ctx.vars[action] = await ctx.expect_answer(action, body, field, *allowed)

    return (f"{action} -> {field} {' or '.join(allowed)}", run)


def config(key: str, value: str) -> tuple[str, StepFn]:
    """A step: ChangeConfiguration (Accepted; set back after the case)."""

    async def run(ctx: ChargerContext) -> None:
        await ctx.set_config(key, value)

    return (f"ChangeConfiguration {key}={value}", run)


async def plug(ctx: ChargerContext) -> None:
    """Plug in: Preparing."""
    m = ctx.at()
    await ctx.act("plug")
    await ctx.wait_status("Preparing", m)


async def remote_session(ctx: ChargerContext) -> None:
    """Plug in, RemoteStartTransaction Accepted, StartTransaction with its idTag, Charging."""
    await plug(ctx)
    m = ctx.at()
    await ctx.expect_answer(
        "RemoteStartTransaction",
        {"connectorId": ctx.setup.connector, "idTag": REMOTE_TAG},
        "status",
        "Accepted",
    )
    start = await ctx.wait_call("StartTransaction", m, timeout_s=15)
    if start.payload["idTag"] != REMOTE_TAG:
        raise Fail(
            f"StartTransaction idTag {start.payload['idTag']!r}, RemoteStartTransaction gave {REMOTE_TAG}"
        )
    await ctx.wait_status("Charging", m)
    ctx.vars["tx"] = await _tx_of(ctx, start)


async def _tx_of(ctx: ChargerContext, start: Any) -> int:
    """The transactionId we answered a StartTransaction with."""
    answer = await ctx.answer_to(start)
    if not isinstance(answer.payload, dict) or "transactionId" not in answer.payload:
        raise Fail("the StartTransaction was answered without a transactionId")
    return int(answer.payload["transactionId"])


async def stop_remotely(ctx: ChargerContext, reason: str = "Remote") -> None:
    """RemoteStopTransaction Accepted, StopTransaction with that id and ``reason``."""
    m = ctx.at()
    tx_id = ctx.vars["tx"]
    await ctx.expect_answer("RemoteStopTransaction", {"transactionId": tx_id}, "status", "Accepted")
    stop = await ctx.wait_call("StopTransaction", m)
    if stop.payload["transactionId"] != tx_id or stop.payload.get("reason") != reason:
        raise Fail(
            f"StopTransaction {stop.payload.get('transactionId')} reason {stop.payload.get('reason')}, expected {tx_id} {reason}"
        )


async def reboot_seen(ctx: ChargerContext, after: int) -> None:
    """A BootNotification after ``after``, then StatusNotification of the connector (§4.2, §4.9)."""
    boot = await ctx.wait_call("BootNotification", after, timeout_s=40)
    await ctx.wait_call(
        "StatusNotification", ctx.index_of(boot), lambda p: p.get("connectorId") == ctx.setup.connector, 15
    )


# ================================================================================================ Core


async def cold_boot(ctx: ChargerContext) -> None:
    """The first frames of the connection: BootNotification first, nothing else before Accepted, then statuses."""
    ctx.mark = 0  # this case judges the connection's first frames: trace them all
    await ctx.cs.wait_for(
        lambda f: f.cp_id == ctx.cp_id and f.direction == "out" and f.action == "BootNotification",
        timeout=ctx.scaled(10),
    )
    log = [f for f in ctx.cs.log if f.cp_id == ctx.cp_id]
    calls = [f for f in log if f.direction == "in" and f.message_type == 2]
    if not calls or calls[0].action != "BootNotification":
        raise Fail(
            f"the first CALL was {calls[0].action if calls else None}, not BootNotification (OCPP 1.6 §4.2)"
        )
    accepted = next(
        (
            i
            for i, f in enumerate(log)
            if f.direction == "out"
            and f.action == "BootNotification"
            and isinstance(f.payload, dict)
            and f.payload.get("status") == "Accepted"
        ),
        None,
    )
    if accepted is None:
        raise Fail("no BootNotification was accepted")
    early = {f.action for f in log[:accepted] if f.direction == "in" and f.message_type == 2} - {
        "BootNotification"
    }
    if early:
        raise Fail(
            f"sent {sorted(str(a) for a in early)} before BootNotification was Accepted (OCPP 1.6 §4.2.1)"
        )
    await ctx.wait_call("StatusNotification", 0, lambda p: p.get("connectorId") == ctx.setup.connector, 10)


case(
    "TC_001_CS",
    "Cold Boot Charge Point",
    CORE,
    ("BootNotification first, then StatusNotification", cold_boot),
)


async def boot_pending(ctx: ChargerContext) -> None:
    """Reset, answer the next BootNotification Pending (interval 2 s), then Accepted; nothing else in between."""
    ctx.boot_answers = [("Pending", 2)]
    m = ctx.at()
    await ctx.expect_answer("Reset", {"type": "Soft"}, "status", "Accepted")
    first = await ctx.wait_call("BootNotification", m, timeout_s=40)
    second = await ctx.wait_call(
        "BootNotification", ctx.index_of(first) + 1, timeout_s=15, what="BootNotification retry after Pending"
    )
    gap = (second.ts - first.ts).total_seconds()
    if gap < 1.5:
        raise Fail(f"BootNotification retried after {gap:.1f} s; the Pending answer said 2 s (OCPP 1.6 §4.2)")
    between = {
        f.action
        for f in ctx.cs.log[ctx.index_of(first) + 1 : ctx.index_of(second)]
        if f.direction == "in" and f.message_type == 2
    }
    if between:
        raise Fail(
            f"sent {sorted(str(a) for a in between)} while Pending (OCPP 1.6 §4.2.1: only BootNotification)"
        )
    await ctx.wait_call(
        "StatusNotification", ctx.index_of(second), lambda p: p.get("connectorId") == ctx.setup.connector, 15
    )


case(
    "TC_002_CS",
    "Cold Boot Charge Point - Pending",
    CORE,
    ("Reset, Pending, then Accepted", boot_pending),
    timeout_s=90,
)


async def plugin_first(ctx: ChargerContext) -> None:
    """Plug in, present the card, charging; present it again: StopTransaction Local; unplug: Available."""
    m = ctx.at()
    await plug(ctx)
    await ctx.act("swipe")
    auth = await ctx.wait_call("Authorize", m)
    start = await ctx.wait_call("StartTransaction", m, timeout_s=15)
    if ctx.index_of(auth) > ctx.index_of(start):
        raise Fail("StartTransaction before Authorize")
    await ctx.wait_status("Charging", m)
    ctx.vars["tx"] = await _tx_of(ctx, start)
    m2 = ctx.at()
    await ctx.act("swipe")
    stop = await ctx.wait_call("StopTransaction", m2)
    if stop.payload["transactionId"] != ctx.vars["tx"] or stop.payload.get("reason", "Local") != "Local":
        raise Fail(f"StopTransaction {stop.payload} does not stop {ctx.vars['tx']} with reason Local")
    await ctx.wait_status("Finishing", m2)
    m3 = ctx.at()
    await ctx.act("unplug")
    await ctx.wait_status("Available", m3)
    seen = [
        f.payload["status"]
        for f in ctx.calls_since("StatusNotification", m)
        if f.payload.get("connectorId") == ctx.setup.connector
    ]
    if seen != ["Preparing", "Charging", "Finishing", "Available"]:
        raise Fail(f"statuses {seen}, expected Preparing, Charging, Finishing, Available (OCTT TC_003)")


case(
    "TC_003_CS",
    "Regular Charging Session - Plugin First",
    CORE,
    ("plug, card, charge, card, unplug", plugin_first),
    needs=PLUG_SWIPE,
)


async def identification_first(ctx: ChargerContext) -> None:
    """Card first: Authorize, Preparing, no transaction before the cable; plug in: StartTransaction, Charging."""
    m = ctx.at()
    await ctx.act("swipe")
    await ctx.wait_call("Authorize", m)
    await ctx.wait_status("Preparing", m)
    if ctx.calls_since("StartTransaction", m):
        raise Fail("a transaction started before the cable was plugged in")
    await ctx.act("plug")
    start = await ctx.wait_call("StartTransaction", m, timeout_s=15)
    await ctx.wait_status("Charging", m)
    ctx.vars["tx"] = await _tx_of(ctx, start)


case(
    "TC_004_1_CS",
    "Regular Charging Session - Identification First",
    CORE,
    ("card, then plug", identification_first),
    needs=PLUG_SWIPE,
)


async def connection_timeout(ctx: ChargerContext) -> None:
    """Card, Preparing, and back to Available after ConnectionTimeOut (3 s) without a transaction."""
    m = ctx.at()
    await ctx.act("swipe")
    await ctx.wait_status("Preparing", m)
    await ctx.wait_status("Available", m, timeout_s=15)
    if ctx.calls_since("StartTransaction", m):
        raise Fail("a transaction started without a cable")


case(
    "TC_004_2_CS",
    "Regular Charging Session - Identification First - ConnectionTimeOut",
    CORE,
    config("ConnectionTimeOut", "3"),
    ("card, no cable, back to Available", connection_timeout),
    needs=frozenset({"swipe"}),
)


async def ev_disconnect(ctx: ChargerContext) -> None:
    """Unplug during the session: StopTransaction reason EVDisconnected."""
    m = ctx.at()
    await ctx.act("unplug")
    stop = await ctx.wait_call("StopTransaction", m)
    if stop.payload.get("reason") != "EVDisconnected" or stop.payload["transactionId"] != ctx.vars["tx"]:
        raise Fail(
            f"StopTransaction {stop.payload.get('transactionId')} reason {stop.payload.get('reason')}, expected EVDisconnected"
        )


case(
    "TC_005_1_CS",
    "EV Side Disconnected - StopTransactionOnEVSideDisconnect = true",
    CORE,
    config("StopTransactionOnEVSideDisconnect", "true"),
    ("remote session", remote_session),
    ("unplug: StopTransaction EVDisconnected", ev_disconnect),
    needs=PLUG,
)
case(
    "TC_010_CS",
    "Remote Start Charging Session - Cable Plugged in First",
    CORE,
    ("plug, RemoteStartTransaction, charging", remote_session),
    needs=PLUG,
)


async def remote_first(ctx: ChargerContext) -> None:
    """RemoteStartTransaction before the cable: Accepted, Preparing; plug in: StartTransaction, Charging."""
    m = ctx.at()
    await ctx.expect_answer(
        "RemoteStartTransaction",
        {"connectorId": ctx.setup.connector, "idTag": REMOTE_TAG},
        "status",
        "Accepted",
    )
    await ctx.wait_status("Preparing", m)
    await ctx.act("plug")
    start = await ctx.wait_call("StartTransaction", m, timeout_s=15)
    await ctx.wait_status("Charging", m)
    ctx.vars["tx"] = await _tx_of(ctx, start)


case(
    "TC_011_1_CS",
    "Remote Start Charging Session - Remote Start First",
    CORE,
    ("RemoteStartTransaction, then plug", remote_first),
    needs=PLUG,
)


async def remote_timeout(ctx: ChargerContext) -> None:
    """RemoteStartTransaction, no cable: back to Available after ConnectionTimeOut, no transaction."""
    m = ctx.at()
    await ctx.expect_answer(
        "RemoteStartTransaction",
        {"connectorId": ctx.setup.connector, "idTag": REMOTE_TAG},
        "status",
        "Accepted",
    )
    await ctx.wait_status("Preparing", m)
    await ctx.wait_status("Available", m, timeout_s=15)
    if ctx.calls_since("StartTransaction", m):
        raise Fail("a transaction started without a cable")


case(
    "TC_011_2_CS",
    "Remote Start Charging Session - Time Out",
    CORE,
    config("ConnectionTimeOut", "3"),
    ("RemoteStartTransaction, no cable", remote_timeout),
)
case(
    "TC_012_CS",
    "Remote Stop Charging Session",
    CORE,
    ("remote session", remote_session),
    ("RemoteStopTransaction: StopTransaction Remote", stop_remotely),
    needs=PLUG,
)


def reset(kind: str, with_tx: bool) -> tuple[str, StepFn]:
    async def run(ctx: ChargerContext) -> None:
        m = ctx.at()
        await ctx.expect_answer("Reset", {"type": kind}, "status", "Accepted")
        if with_tx:
            stop = await ctx.wait_call("StopTransaction", m, timeout_s=40)
            reason = f"{kind}Reset"
            if stop.payload.get("reason") != reason or stop.payload["transactionId"] != ctx.vars["tx"]:
                raise Fail(
                    f"StopTransaction reason {stop.payload.get('reason')}, expected {reason} (OCPP 1.6 §5.14)"
                )
        await reboot_seen(ctx, m)

    return (
        f"Reset {kind}: " + ("StopTransaction, " if with_tx else "") + "BootNotification, StatusNotification",
        run,
    )


case("TC_013_CS", "Hard Reset Without Transaction", CORE, reset("Hard", False), timeout_s=90)
case("TC_014_CS", "Soft Reset Without Transaction", CORE, reset("Soft", False), timeout_s=90)
case(
    "TC_015_CS",
    "Hard Reset With Transaction",
    CORE,
    ("remote session", remote_session),
    reset("Hard", True),
    needs=PLUG,
    timeout_s=90,
)
case(
    "TC_016_CS",
    "Soft Reset With Transaction",
    CORE,
    ("remote session", remote_session),
    reset("Soft", True),
    needs=PLUG,
    timeout_s=90,
)
case(
    "TC_017_1_CS",
    "Unlock connector - no charging session running (Not fixed cable)",
    CORE,
    answer("UnlockConnector", lambda c: {"connectorId": c.setup.connector}, "status", "Unlocked"),
)


async def unlock_with_tx(ctx: ChargerContext) -> None:
    """UnlockConnector during a session: Unlocked, StopTransaction reason UnlockCommand (§5.18)."""
    m = ctx.at()
    await ctx.expect_answer("UnlockConnector", {"connectorId": ctx.setup.connector}, "status", "Unlocked")
    stop = await ctx.wait_call("StopTransaction", m)
    if stop.payload.get("reason") != "UnlockCommand":
        raise Fail(
            f"StopTransaction reason {stop.payload.get('reason')}, expected UnlockCommand (OCPP 1.6 §5.18)"
        )


case(
    "TC_018_1_CS",
    "Unlock Connector - With Charging Session (Not fixed cable)",
    CORE,
    ("remote session", remote_session),
    ("UnlockConnector", unlock_with_tx),
    needs=PLUG,
)


async def all_keys(ctx: ChargerContext) -> None:
    """GetConfiguration without keys lists every required Core key (§9.1)."""
    keys = await ctx.configuration()
    missing = [k for k in CORE_CONFIGURATION_KEYS if k not in keys]
    if missing:
        raise Fail(f"GetConfiguration lacks required Core keys {missing} (OCPP 1.6 §9.1)")


async def one_key(ctx: ChargerContext) -> None:
    """GetConfiguration of one key returns exactly that key."""
    answer = await ctx.call("GetConfiguration", {"key": ["HeartbeatInterval"]})
    keys = [k["key"] for k in answer.get("configurationKey", [])]
    if keys != ["HeartbeatInterval"]:
        raise Fail(f"GetConfiguration of HeartbeatInterval returned {keys}")


case(
    "TC_019_CS",
    "Retrieve configuration",
    CORE,
    ("GetConfiguration HeartbeatInterval", one_key),
    ("GetConfiguration: every required Core key", all_keys),
)


async def read_back(ctx: ChargerContext) -> None:
    value = (await ctx.configuration("MeterValueSampleInterval")).get("MeterValueSampleInterval")
    if value != "17":
        raise Fail(f"MeterValueSampleInterval reads {value!r} after being set to 17")


case(
    "TC_021_CS",
    "Change/set Configuration",
    CORE,
    config("MeterValueSampleInterval", "17"),
    ("read it back", read_back),
)


def refused_card(status: str) -> tuple[str, StepFn]:
    async def run(ctx: ChargerContext) -> None:
        ctx.auth_status = status
        await plug(ctx)
        m = ctx.at()
        await ctx.act("swipe")
        await ctx.wait_call("Authorize", m)
        await ctx.quiet(2)
        if ctx.calls_since("StartTransaction", m):
            raise Fail(f"a transaction started for an idTag answered {status} (OCPP 1.6 §4.1)")

    return (f"plug, card answered {status}: no transaction", run)


case(
    "TC_023_CS",
    "Start Charging Session - Authorize invalid",
    CORE,
    refused_card("Invalid"),
    needs=PLUG_SWIPE,
)
case(
    "TC_023_2_CS",
    "Start Charging Session - Authorize expired",
    CORE,
    refused_card("Expired"),
    needs=PLUG_SWIPE,
)
case(
    "TC_023_3_CS",
    "Start Charging Session - Authorize blocked",
    CORE,
    refused_card("Blocked"),
    needs=PLUG_SWIPE,
)
case(
    "TC_026_CS",
    "Remote Start Charging Session - Rejected",
    CORE,
    answer("RemoteStartTransaction", {"connectorId": 99, "idTag": REMOTE_TAG}, "status", "Rejected"),
)
case(
    "TC_027_CS",
    "Remote start transaction - connector id shall not be 0",
    CORE,
    answer("RemoteStartTransaction", {"connectorId": 0, "idTag": REMOTE_TAG}, "status", "Rejected"),
)
case(
    "TC_028_CS",
    "Remote Stop Transaction - Rejected",
    CORE,
    answer("RemoteStopTransaction", {"transactionId": 987654321}, "status", "Rejected"),
)
case(
    "TC_031_CS",
    "Unlock Connector - Unknown Connector",
    CORE,
    answer("UnlockConnector", {"connectorId": 99}, "status", "NotSupported"),
)


# ------------------------------------------------------------------------------------------------ offline, power


def _when(frame: Frame) -> datetime:
    """The event time a transaction message states (its ``timestamp``); unparsable fails the case."""
    text = frame.payload.get("timestamp")
    try:
        stamp = datetime.fromisoformat(str(text))
    except ValueError:
        raise Fail(f"{frame.action} timestamp {text!r} is not an ISO 8601 date-time") from None
    if stamp.tzinfo is None:
        raise Fail(f"{frame.action} timestamp {text!r} has no time zone (OCPP 1.6 §3.4: UTC)")
    return stamp


async def queued_in_order(ctx: ChargerContext, after: int, went: datetime, back: datetime) -> None:
    """The queued transaction messages since ``after`` (OCPP 1.6 §4.8): each once, in the order the events
    happened, each stamped with when it happened offline (not when it was finally sent), and every
    StopTransaction naming the transactionId we gave its StartTransaction."""
    frames = [
        f
        for f in ctx.cs.log[after:]
        if f.cp_id == ctx.cp_id
        and f.direction == "in"
        and f.message_type == 2
        and f.action in ("StartTransaction", "StopTransaction")
        and isinstance(f.payload, dict)
    ]
    seen: set[str] = set()
    for f in frames:
        key = f"{f.action} {sorted(f.payload.items())!r}"
        if key in seen:
            raise Fail(f"{f.action} {f.payload} was delivered twice (OCPP 1.6 §4.8: each message once)")
        seen.add(key)
    slack = timedelta(seconds=OFFLINE_CLOCK_SLACK_S)
    stamps = [_when(f) for f in frames]
    for f, stamp in zip(frames, stamps, strict=True):
        if not went - slack <= stamp <= back + slack:
            raise Fail(
                f"{f.action} timestamp {f.payload['timestamp']} is not within the offline period "
                f"{went:%H:%M:%S}-{back:%H:%M:%S} UTC: a queued message states when the event happened"
            )
    if stamps != sorted(stamps):
        order = ", ".join(f"{f.action} {f.payload['timestamp']}" for f in frames)
        raise Fail(f"queued transaction messages arrived out of order: {order}")
    given = {  # transactions started before (a session that was running when the link went down)
        int(f.payload["transactionId"])
        for f in ctx.cs.log[:after]
        if f.cp_id == ctx.cp_id
        and f.direction == "out"
        and f.message_type == 3
        and f.action == "StartTransaction"
        and isinstance(f.payload, dict)
        and isinstance(f.payload.get("transactionId"), int)
    }
    for f in frames:
        if f.action == "StartTransaction":
            given.add(await _tx_of(ctx, f))
        elif f.payload.get("transactionId") not in given:
            raise Fail(
                f"StopTransaction names transactionId {f.payload.get('transactionId')}, not one we answered a "
                f"StartTransaction with before it ({sorted(given)})"
            )


async def connection_loss(ctx: ChargerContext) -> None:
    """Drop the connection for 3 s during a session: the transaction goes on, no StopTransaction (§4.8)."""
    m = ctx.at()
    async with ctx.offline():
        await ctx.quiet(3)
    await ctx.reconnected()
    await ctx.quiet(1)
    if ctx.calls_since("StopTransaction", m):
        raise Fail("the transaction was stopped because the connection dropped")


async def offline_stop(ctx: ChargerContext) -> None:
    """Offline: the card stops the session; back online the StopTransaction arrives with the same id (§4.8)."""
    m = ctx.at()
    went = datetime.now(UTC)
    async with ctx.offline():
        await ctx.act("swipe", id_tag=REMOTE_TAG)
        await ctx.quiet(2)
        back = datetime.now(UTC)
    stop = await ctx.wait_call("StopTransaction", m, timeout_s=40)
    if stop.payload["transactionId"] != ctx.vars["tx"]:
        raise Fail(f"the queued StopTransaction names {stop.payload['transactionId']}, not {ctx.vars['tx']}")
    if stop.payload.get("reason", "Local") != "Local":
        raise Fail(
            f"StopTransaction reason {stop.payload.get('reason')}, expected Local or none (OCTT TC_038)"
        )
    await queued_in_order(ctx, m, went, back)


case(
    "TC_036_CS",
    "Connection Loss During Transaction",
    CORE,
    ("remote session", remote_session),
    ("connection lost and back", connection_loss),
    needs=PLUG,
    timeout_s=90,
)


async def card_known_valid(ctx: ChargerContext) -> None:
    """OCTT memory state IdTagLocalAuthList / IdTagCached for the card: offline it must be known as Accepted
    (earlier cases may have left it cached as Blocked). Local list if declared, else one online session."""
    await ctx.try_config("AllowOfflineTxForUnknownId", "true")  # if implemented (OCPP 1.6 §9.1)
    profiles = (await ctx.configuration("SupportedFeatureProfiles")).get("SupportedFeatureProfiles") or ""
    if "LocalAuthListManagement" in profiles and await ctx.try_config("LocalAuthListEnabled", "true"):
        version = (await ctx.call("GetLocalListVersion", {}))["listVersion"]
        entry = {"idTag": ctx.setup.id_tag, "idTagInfo": {"status": "Accepted"}}
        await ctx.expect_answer(
            "SendLocalList",
            {
                "listVersion": max(version, 0) + 1,
                "updateType": "Differential",
                "localAuthorizationList": [entry],
            },
            "status",
            "Accepted",
        )
        return
    await ctx.try_config("AuthorizationCacheEnabled", "true")
    m = ctx.at()
    await plug(ctx)
    await ctx.act("swipe")
    start = await ctx.wait_call("StartTransaction", m, timeout_s=15)
    tx = await _tx_of(ctx, start)
    await ctx.act("swipe")
    await ctx.wait_call("StopTransaction", m, stops(tx))
    m2 = ctx.at()
    await ctx.act("unplug")
    await ctx.wait_status("Available", m2)


async def offline_start(ctx: ChargerContext) -> None:
    """Offline: plug and card start a transaction; back online StartTransaction, then Charging (OCTT TC_037_1)."""
    m = ctx.at()
    went = datetime.now(UTC)
    async with ctx.offline():
        await ctx.act("plug")
        await ctx.act("swipe")
        await ctx.quiet(3)
        back = datetime.now(UTC)
    start = await ctx.wait_call("StartTransaction", m, timeout_s=40, what="queued StartTransaction")
    ctx.vars["tx"] = await _tx_of(ctx, start)
    await ctx.wait_status("Charging", m, timeout_s=15)
    await queued_in_order(ctx, m, went, back)


case(
    "TC_037_1_CS",
    "Offline Start Transaction - Valid IdTag",
    CORE,
    config("LocalAuthorizeOffline", "true"),
    ("the card is known valid (local list or cache)", card_known_valid),
    ("offline plug and card, delivered later", offline_start),
    needs=PLUG_SWIPE,
    timeout_s=90,
)


def offline_start_invalid(stop_on_invalid: bool) -> StepFn:
    """Offline: plug and a card the charger knows as valid start a transaction; back online our StartTransaction.conf
    says Invalid. StopTransactionOnInvalidId true: the charger stops it, reason DeAuthorized; false: it keeps the
    transaction but stops the energy, SuspendedEVSE (OCPP 1.6 §4.8 and §9.1 StopTransactionOnInvalidId; OCTT
    TC_037_3 / TC_037_2)."""

    async def run(ctx: ChargerContext) -> None:
        m = ctx.at()
        async with ctx.offline():
            await ctx.act("plug")
            await ctx.act("swipe")
            await ctx.quiet(3)
            ctx.auth_status = (
                "Invalid"  # what the central system says of the card once the start is delivered
            )
        start = await ctx.wait_call("StartTransaction", m, timeout_s=40, what="queued StartTransaction")
        tx = ctx.vars["tx"] = await _tx_of(ctx, start)
        after = ctx.index_of(start)
        if stop_on_invalid:
            stop = await ctx.wait_call(
                "StopTransaction", after, stops(tx), 15, f"StopTransaction of transaction {tx}"
            )
            if stop.payload.get("reason") != "DeAuthorized":
                raise Fail(
                    f"StopTransaction reason {stop.payload.get('reason')!r}, expected DeAuthorized "
                    "(StopTransactionOnInvalidId = true, OCPP 1.6 §9.1)"
                )
            return
        await ctx.wait_status("SuspendedEVSE", after, 15)
        await ctx.quiet(3)
        if [f for f in ctx.calls_since("StopTransaction", after) if f.payload.get("transactionId") == tx]:
            raise Fail(
                f"transaction {tx} was stopped although StopTransactionOnInvalidId = false: it must only stop "
                "the energy (SuspendedEVSE, OCPP 1.6 §9.1)"
            )

    return run


async def _no_energy_on_invalid(ctx: ChargerContext) -> None:
    """MaxEnergyOnInvalidId 0 where the charger has the key (OCPP 1.6 §9.1: energy allowed on an invalid id)."""
    await ctx.try_config("MaxEnergyOnInvalidId", "0")


for suffix, stop_on_invalid in (("2", False), ("3", True)):
    case(
        f"TC_037_{suffix}_CS",
        f"Offline Start Transaction - Invalid IdTag - StopTransactionOnInvalidId = {str(stop_on_invalid).lower()}",
        CORE,
        config("LocalAuthorizeOffline", "true"),
        config("StopTransactionOnInvalidId", str(stop_on_invalid).lower()),
        ("the card is known valid (local list or cache)", card_known_valid),
        ("no energy on an invalid id (MaxEnergyOnInvalidId 0, if the charger has it)", _no_energy_on_invalid),
        (
            "offline start; back online StartTransaction.conf Invalid: "
            + ("StopTransaction DeAuthorized" if stop_on_invalid else "SuspendedEVSE, no stop"),
            offline_start_invalid(stop_on_invalid),
        ),
        needs=PLUG_SWIPE,
        timeout_s=90,
    )


case(
    "TC_038_CS",
    "Offline Stop Transaction",
    CORE,
    ("remote session", remote_session),
    ("offline stop, delivered later", offline_stop),
    needs=PLUG_SWIPE,
    timeout_s=90,
)


async def offline_transaction(ctx: ChargerContext) -> None:
    """A whole transaction offline (plug, card, card, unplug); back online StartTransaction then
    StopTransaction (reason Local or none) with the id we gave, stamped when they happened (OCTT TC_039)."""
    m = ctx.at()
    went = datetime.now(UTC)
    async with ctx.offline():
        await ctx.act("plug")
        await ctx.act("swipe")
        started = datetime.now(UTC)
        await ctx.quiet(3)
        await ctx.act("swipe")
        stopped = datetime.now(UTC)
        await ctx.quiet(1)
        await ctx.act("unplug")
        await ctx.quiet(1)
        back = datetime.now(UTC)
    start = await ctx.wait_call("StartTransaction", m, timeout_s=40, what="queued StartTransaction")
    stop = await ctx.wait_call(
        "StopTransaction", ctx.index_of(start), timeout_s=20, what="queued StopTransaction"
    )
    if stop.payload.get("reason", "Local") != "Local":
        raise Fail(
            f"StopTransaction reason {stop.payload.get('reason')}, expected Local or none (OCTT TC_039)"
        )
    await queued_in_order(ctx, m, went, back)
    # The two cards were presented seconds apart: so must the stamps be (not both the time of sending).
    apart, presented = (_when(stop) - _when(start)).total_seconds(), (stopped - started).total_seconds()
    if apart < presented - OFFLINE_CLOCK_SLACK_S:
        raise Fail(
            f"StartTransaction and StopTransaction are stamped {apart:.1f} s apart, the cards were presented "
            f"{presented:.1f} s apart: queued messages must state when the events happened (OCPP 1.6 §4.8)"
        )


case(
    "TC_039_CS",
    "Offline Transaction",
    CORE,
    config("LocalAuthorizeOffline", "true"),
    ("the card is known valid (local list or cache)", card_known_valid),
    ("offline transaction, delivered later in order", offline_transaction),
    needs=PLUG_SWIPE,
    timeout_s=120,
)

POWER = frozenset({"power_cut", "power_restore"})


async def power_cycle(ctx: ChargerContext) -> int:
    """Cut the power and restore it; the charger boots again (§4.2). Returns the log index of the boot."""
    m = ctx.at()
    await ctx.act("power_cut")
    await ctx.quiet(1)
    await ctx.act("power_restore")
    return ctx.index_of(await ctx.wait_call("BootNotification", m, timeout_s=40))


async def statuses_after(ctx: ChargerContext, boot: int, status: str | None = None) -> None:
    """After a boot a StatusNotification per connector and for connector 0 (OCPP 1.6 §4.9), of ``status``."""
    for connector in (0, ctx.setup.connector):

        def wanted(p: dict[str, Any], connector: int = connector) -> bool:
            return p.get("connectorId") == connector and status in (None, p.get("status"))

        what = f"StatusNotification {status} for connector {connector}" if status else "StatusNotification"
        await ctx.wait_call("StatusNotification", boot, wanted, 15, f"{what} after the boot")


async def stop_before_down(ctx: ChargerContext) -> None:
    """Power cut with back-up power: StopTransaction PowerLoss before it goes down, then a boot (OCTT TC_032_1)."""
    if not ctx.setup.backup_power:
        raise NotApplicable(
            "prerequisite: the charger has back-up power and stops transactions before going down"
        )
    m = ctx.at()
    await ctx.act("power_cut")
    stop = await ctx.wait_call("StopTransaction", m, stops(ctx.vars["tx"]), 20)
    if stop.payload.get("reason") != "PowerLoss":
        raise Fail(
            f"StopTransaction reason {stop.payload.get('reason')}, expected PowerLoss (OCPP 1.6 §4.10)"
        )
    await ctx.act("power_restore")
    boot = ctx.index_of(await ctx.wait_call("BootNotification", m, timeout_s=40))
    await statuses_after(ctx, boot)


async def stop_after_boot(ctx: ChargerContext) -> None:
    """Power cut during a session, then power back: boot, statuses, and the transaction ends with reason
    PowerLoss, or, if the charger resumed it (Charging), the card stops it with reason Local (OCTT TC_032_2)."""
    tx = ctx.vars["tx"]
    boot = await power_cycle(ctx)
    await statuses_after(ctx, boot)
    frame = await ctx.cs.wait_for(
        lambda f: (
            f.cp_id == ctx.cp_id
            and f.direction == "in"
            and f.message_type == 2
            and isinstance(f.payload, dict)
            and (
                (f.action == "StopTransaction" and f.payload.get("transactionId") == tx)
                or (
                    f.action == "StatusNotification"
                    and f.payload.get("connectorId") == ctx.setup.connector
                    and f.payload.get("status") == "Charging"
                )
            )
        ),
        timeout=ctx.scaled(30),
        after=boot,
    )
    if frame.action == "StopTransaction":
        if frame.payload.get("reason") != "PowerLoss":
            raise Fail(
                f"StopTransaction after the power cut has reason {frame.payload.get('reason')}, expected "
                "PowerLoss (OCPP 1.6 §4.10)"
            )
        ctx.event("the charger ended the transaction with reason PowerLoss")
        return
    ctx.event("the charger resumed the transaction: the card stops it")
    m = ctx.at()
    await ctx.act("swipe", id_tag=REMOTE_TAG)
    stop = await ctx.wait_call("StopTransaction", m, stops(tx), 20)
    if stop.payload.get("reason", "Local") != "Local":
        raise Fail(f"StopTransaction reason {stop.payload.get('reason')}, expected Local or none")


case(
    "TC_032_1_CS",
    "Power failure boot charging point - configured to stop transaction(s) before going down",
    CORE,
    ("remote session", remote_session),
    ("power cut: StopTransaction PowerLoss, then boot", stop_before_down),
    needs=PLUG | POWER,
    timeout_s=120,
)
case(
    "TC_032_2_CS",
    "Power failure boot charging point-configured to stop transaction(s)",
    CORE,
    ("remote session", remote_session),
    ("power cut and back: boot, statuses, transaction ended", stop_after_boot),
    needs=PLUG | POWER,
    timeout_s=120,
)


async def unavailable_persists(ctx: ChargerContext) -> None:
    """Inoperative charger: Unavailable; after a power cut still Unavailable (OCPP 1.6 §5.2: persists reboots)."""
    m = ctx.at()
    await ctx.expect_answer(
        "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}, "status", "Accepted"
    )
    try:
        await statuses_after(ctx, m, "Unavailable")
        boot = await power_cycle(ctx)
        await statuses_after(ctx, boot, "Unavailable")
    finally:
        m2 = ctx.at()
        with contextlib.suppress(Fail):
            await ctx.call("ChangeAvailability", {"connectorId": 0, "type": "Operative"})
            await ctx.wait_status("Available", m2, 15)


case(
    "TC_034_CS",
    "Power Failure with Unavailable Status",
    CORE,
    ("Inoperative, power cut: still Unavailable", unavailable_persists),
    needs=POWER,
    timeout_s=120,
)


async def unknown_key(ctx: ChargerContext) -> None:
    await ctx.expect_answer(
        "ChangeConfiguration", {"key": "ConformanceUnknownKey", "value": "1"}, "status", "NotSupported"
    )
    answer = await ctx.call("GetConfiguration", {"key": ["ConformanceUnknownKey"]})
    if "ConformanceUnknownKey" not in answer.get("unknownKey", []):
        raise Fail("GetConfiguration does not list the unknown key in unknownKey (OCPP 1.6 §5.8)")


case(
    "TC_040_1_CS",
    "Configuration Keys - NotSupported",
    CORE,
    ("unknown key: NotSupported and unknownKey", unknown_key),
)
case(
    "TC_040_2_CS",
    "Configuration Keys - Invalid Value",
    CORE,
    answer("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "-5"}, "status", "Rejected"),
)


async def meter_fault(ctx: ChargerContext) -> None:
    """A failing meter: StatusNotification Faulted; repaired: NoError again (§4.9, error code PowerMeterFailure)."""
    m = ctx.at()
    await ctx.act("meter_fault_on")
    try:
        faulted = await ctx.wait_call(
            "StatusNotification",
            m,
            lambda p: p.get("status") == "Faulted" or p.get("errorCode") != "NoError",
            20,
            "fault report",
        )
    finally:
        m2 = ctx.at()
        await ctx.act("meter_fault_off")
    ctx.event(f"fault reported: {faulted.payload}")
    await ctx.wait_call(
        "StatusNotification", m2, lambda p: p.get("errorCode") == "NoError", 20, "recovery report"
    )


case(
    "TC_041_CS",
    "Fault Behavior",
    CORE,
    ("meter fault and repair", meter_fault),
    needs=frozenset({"meter_fault_on", "meter_fault_off"}),
)
case(
    "TC_061_CS",
    "Clear Authorization Data in Authorization Cache",
    CORE,
    answer("ClearCache", {}, "status", "Accepted"),
)
case(
    "TC_062_CS",
    "Data Transfer to a Charge Point",
    CORE,
    answer(
        "DataTransfer",
        {"vendorId": "org.opencharge.conformance"},
        "status",
        "UnknownVendorId",
        "UnknownMessageId",
        "Rejected",
    ),
)


async def sampled(ctx: ChargerContext) -> None:
    """Two MeterValues with the transactionId, context Sample.Periodic (interval 2 s)."""
    m = ctx.at()
    frames = []
    for _ in range(2):
        frame = await ctx.wait_call(
            "MeterValues",
            m,
            lambda p: p.get("transactionId") == ctx.vars["tx"],
            15,
            "MeterValues of the transaction",
        )
        frames.append(frame)
        m = ctx.index_of(frame) + 1
    contexts = {
        sv.get("context", "Sample.Periodic")
        for f in frames
        for mv in f.payload["meterValue"]
        for sv in mv["sampledValue"]
    }
    if "Sample.Periodic" not in contexts:
        raise Fail(f"sampled MeterValues have contexts {sorted(contexts)}, expected Sample.Periodic")


case(
    "TC_070_CS",
    "Sampled Meter Values",
    CORE,
    config("MeterValueSampleInterval", "2"),
    ("remote session", remote_session),
    ("periodic samples", sampled),
    needs=PLUG,
)

# ================================================================================================ LocalAuthList


async def local_list_version(ctx: ChargerContext) -> None:
    version = (await ctx.call("GetLocalListVersion", {}))["listVersion"]
    if version < 0:
        raise Fail(
            "GetLocalListVersion answers -1 (not supported) though LocalAuthListManagement is declared"
        )


case("TC_042_2_CS", "Get Local List Version (empty)", LOCAL, ("GetLocalListVersion >= 0", local_list_version))


async def send_lists(ctx: ChargerContext) -> None:
    """Full list version 5, read back; Differential version 6, read back (§5.15)."""
    for version, kind in ((5, "Full"), (6, "Differential")):
        await ctx.expect_answer(
            "SendLocalList",
            {
                "listVersion": version,
                "updateType": kind,
                "localAuthorizationList": [{"idTag": f"LOCAL{version}", "idTagInfo": {"status": "Accepted"}}],
            },
            "status",
            "Accepted",
        )
        got = (await ctx.call("GetLocalListVersion", {}))["listVersion"]
        if got != version:
            raise Fail(f"GetLocalListVersion is {got} after a {kind} list version {version}")


case("TC_043_CS", "Send Local Authorization List", LOCAL, ("Full then Differential list", send_lists))

# ================================================================================================ RemoteTrigger


def trigger(message: str, action: str, connector: bool = False) -> tuple[str, StepFn]:
    async def run(ctx: ChargerContext) -> None:
        m = ctx.at()
        payload: dict[str, Any] = {"requestedMessage": message}
        if connector:
            payload["connectorId"] = ctx.setup.connector
        await ctx.expect_answer("TriggerMessage", payload, "status", "Accepted")
        await ctx.wait_call(action, m, timeout_s=15)

    return (f"TriggerMessage {message}: Accepted, then {action}", run)


case(
    "TC_054_CS",
    "Trigger Message",
    TRIGGER,
    trigger("Heartbeat", "Heartbeat"),
    trigger("StatusNotification", "StatusNotification", True),
    trigger("MeterValues", "MeterValues", True),
    trigger("BootNotification", "BootNotification"),
)
case(
    "TC_055_CS",
    "Trigger Message - Rejected",
    TRIGGER,
    answer(
        "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 99}, "status", "Rejected"
    ),
)

# ================================================================================================ SmartCharging


def profile(purpose: str, profile_id: int, tx_id: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": 1,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "startSchedule": (datetime.now(UTC) - timedelta(minutes=1))
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
        },
    }
    if tx_id is not None:
        body["transactionId"] = tx_id
    return body


case(
    "TC_056_CS",
    "Central Smart Charging - TxDefaultProfile",
    SMART,
    answer(
        "SetChargingProfile",
        lambda c: {"connectorId": c.setup.connector, "csChargingProfiles": profile("TxDefaultProfile", 301)},
        "status",
        "Accepted",
    ),
    answer(
        "GetCompositeSchedule",
        lambda c: {"connectorId": c.setup.connector, "duration": 600},
        "status",
        "Accepted",
    ),
    answer("ClearChargingProfile", {"id": 301}, "status", "Accepted"),
)
case(
    "TC_057_CS",
    "Central Smart Charging - TxProfile",
    SMART,
    ("remote session", remote_session),
    answer(
        "SetChargingProfile",
        lambda c: {
            "connectorId": c.setup.connector,
            "csChargingProfiles": profile("TxProfile", 302, c.vars["tx"]),
        },
        "status",
        "Accepted",
    ),
    needs=PLUG,
)
case(
    "TC_058_1_CS",
    "Central Smart Charging - No ongoing transaction",
    SMART,
    answer(
        "SetChargingProfile",
        lambda c: {"connectorId": c.setup.connector, "csChargingProfiles": profile("TxProfile", 303, 123456)},
        "status",
        "Rejected",
    ),
)


async def remote_with_profile(ctx: ChargerContext) -> None:
    await plug(ctx)
    m = ctx.at()
    body = {
        "connectorId": ctx.setup.connector,
        "idTag": REMOTE_TAG,
        "chargingProfile": profile("TxProfile", 304),
    }
    await ctx.expect_answer("RemoteStartTransaction", body, "status", "Accepted")
    start = await ctx.wait_call("StartTransaction", m, timeout_s=15)
    ctx.vars["tx"] = await _tx_of(ctx, start)


case(
    "TC_059_CS",
    "Remote Start Transaction with Charging Profile",
    SMART,
    ("plug, RemoteStartTransaction with a TxProfile", remote_with_profile),
    needs=PLUG,
)
case(
    "TC_066_CS",
    "Get Composite Schedule",
    SMART,
    answer(
        "GetCompositeSchedule",
        lambda c: {"connectorId": c.setup.connector, "duration": 300, "chargingRateUnit": "A"},
        "status",
        "Accepted",
    ),
)
case(
    "TC_067_CS",
    "Clear Charging Profile",
    SMART,
    answer(
        "SetChargingProfile",
        lambda c: {"connectorId": c.setup.connector, "csChargingProfiles": profile("TxDefaultProfile", 305)},
        "status",
        "Accepted",
    ),
    answer("ClearChargingProfile", {"id": 305}, "status", "Accepted"),
)

# ================================================================================================ Reservation, Firmware


def _reserve(ctx: ChargerContext) -> dict[str, Any]:
    expiry = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "connectorId": ctx.setup.connector,
        "expiryDate": expiry,
        "idTag": REMOTE_TAG,
        "reservationId": 77,
    }


case(
    "TC_046_CS",
    "Reservation of a Connector - Transaction",
    RESERVATION,
    answer("ReserveNow", _reserve, "status", "Accepted"),
    answer("CancelReservation", {"reservationId": 77}, "status", "Accepted"),
)
case(
    "TC_051_CS",
    "Cancel Reservation",
    RESERVATION,
    answer("CancelReservation", {"reservationId": 78}, "status", "Rejected"),
)


async def update_firmware(ctx: ChargerContext) -> None:
    m = ctx.at()
    await ctx.call(
        "UpdateFirmware",
        {
            "location": "https://firmware.example.com/none.bin",
            "retrieveDate": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        },
    )
    await ctx.wait_call("FirmwareStatusNotification", m, timeout_s=30)


case(
    "TC_044_1_CS",
    "Firmware Update - Download and Install",
    FIRMWARE,
    ("UpdateFirmware: FirmwareStatusNotification follows", update_firmware),
)


async def get_diagnostics(ctx: ChargerContext) -> None:
    m = ctx.at()
    await ctx.call("GetDiagnostics", {"location": "ftp://127.0.0.1:1/diagnostics"})
    await ctx.wait_call("DiagnosticsStatusNotification", m, timeout_s=30)


case(
    "TC_045_1_CS",
    "Get Diagnostics",
    FIRMWARE,
    ("GetDiagnostics: DiagnosticsStatusNotification follows", get_diagnostics),
)


# ================================================================================================ Security
# The OCPP 1.6 security whitepaper (edition 2) cases a charger can show over a plain ws:// link: password change,
# certificate install / list / delete, certificate signing, security events, the security log and signed firmware.
# TC_078, TC_084, TC_086 and TC_087 need the runner on wss:// (--tls-cert/--tls-key, --tls-ca): not applicable
# without it, TC_083 also without --tls-ca. TC_085 checks the Basic auth of a reconnect on ws:// and wss://. TC_088
# is a central system case only (no public charge point case has that id).


async def _install_root(ctx: ChargerContext, kind: str, pem: str) -> None:
    """InstallCertificate of ``pem`` as ``kind``: Accepted; it is deleted again after the case."""
    await ctx.expect_answer(
        "InstallCertificate", {"certificateType": kind, "certificate": pem}, "status", "Accepted"
    )
    ctx.vars.setdefault("installed", []).append(pki.certificate_hash_data(pem))


async def _installed(ctx: ChargerContext, kind: str) -> list[dict[str, Any]]:
    """GetInstalledCertificateIds of ``kind``: the hash data listed (none when NotFound)."""
    answer = await ctx.expect_answer(
        "GetInstalledCertificateIds", {"certificateType": kind}, "status", "Accepted", "NotFound"
    )
    listed: list[dict[str, Any]] = answer.get("certificateHashData", [])
    if answer["status"] == "NotFound" and listed:
        raise Fail("GetInstalledCertificateIds.conf is NotFound but lists certificates")
    return listed


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two CertificateHashData name the same certificate (serial numbers compared as numbers)."""
    keys = ("hashAlgorithm", "issuerNameHash", "issuerKeyHash")
    return all(str(a.get(k)).lower() == str(b.get(k)).lower() for k in keys) and int(
        str(a.get("serialNumber")), 16
    ) == int(str(b.get("serialNumber")), 16)


async def delete_installed(ctx: ChargerContext) -> None:
    """Cleanup: DeleteCertificate of what the case installed."""
    for hash_data in ctx.vars.get("installed", []):
        with contextlib.suppress(Exception):
            await ctx.cs.call(ctx.cp_id, "DeleteCertificate", {"certificateHashData": hash_data}, timeout=5)


async def security_event(ctx: ChargerContext, after: int, kind: str) -> None:
    """A SecurityEventNotification of ``kind`` after ``after`` (whitepaper: critical events are sent)."""
    await ctx.wait_call(
        "SecurityEventNotification",
        after,
        lambda p: p.get("type") == kind,
        15,
        f"SecurityEventNotification {kind}",
    )


async def update_password(ctx: ChargerContext) -> None:
    """ChangeConfiguration AuthorizationKey Accepted; the charger reconnects with the new password (A01)."""
    profile = (await ctx.configuration("SecurityProfile")).get("SecurityProfile")
    if profile not in ("1", "2"):
        raise NotApplicable(
            f"the charger uses SecurityProfile {profile}: HTTP Basic authentication needs profile 1 or 2"
        )
    password = secrets.token_hex(20)  # AuthorizationKey: 16-40 bytes, as hexadecimal text
    await ctx.expect_answer(
        "ChangeConfiguration", {"key": "AuthorizationKey", "value": password}, "status", "Accepted"
    )
    ctx.cs.passwords[ctx.cp_id] = password  # from now on only the new password is let in
    try:
        await ctx.cs.wait_disconnected(ctx.cp_id, timeout=ctx.scaled(15))
    except TimeoutError:
        raise Fail(
            "the charger kept its connection after AuthorizationKey changed (whitepaper A01.FR.?)"
        ) from None
    await ctx.reconnected(30)


async def sign_certificate(ctx: ChargerContext) -> None:
    """A CSMS root installed; ExtendedTriggerMessage SignChargePointCertificate: SignCertificate with a CSR for
    the charger's id; CertificateSigned with a chain to that root: Accepted (A02)."""
    ca_key, ca = pki.make_ca("Conformance CSMS Root")
    await _install_root(ctx, "CentralSystemRootCertificate", pki.pem_of(ca))
    m = ctx.at()
    await ctx.expect_answer(
        "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}, "status", "Accepted"
    )
    request = await ctx.wait_call("SignCertificate", m, timeout_s=20)
    try:
        _, leaf = pki.issue(ca_key, ca, csr_pem=str(request.payload.get("csr", "")))
    except ValueError as exc:
        raise Fail(f"SignCertificate.req csr is not a usable PEM CSR: {exc}") from None
    names = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [ctx.cp_id]:
        raise Fail(f"the CSR's commonName is {names}, expected the charge point id {ctx.cp_id!r} (A02.FR.?)")
    chain = pki.pem_of(leaf) + pki.pem_of(ca)
    ctx.trust_signing_ca(pki.pem_of(ca))
    await ctx.expect_answer("CertificateSigned", {"certificateChain": chain}, "status", "Accepted")


def install_root(kind: str) -> StepFn:
    """InstallCertificate of a new root of ``kind``: Accepted, and GetInstalledCertificateIds lists it (M05)."""

    async def run(ctx: ChargerContext) -> None:
        pem = pki.self_signed_pem(f"Conformance {kind}")
        await _install_root(ctx, kind, pem)
        if not any(_same(h, pki.certificate_hash_data(pem)) for h in await _installed(ctx, kind)):
            raise Fail(f"GetInstalledCertificateIds {kind} does not list the certificate just installed")

    return run


async def delete_certificate(ctx: ChargerContext) -> None:
    """Install a ManufacturerRootCertificate, delete it by its hash data: Accepted, and it is no longer listed."""
    kind = "ManufacturerRootCertificate"
    pem = pki.self_signed_pem("Conformance deletable root")
    await _install_root(ctx, kind, pem)
    hash_data = pki.certificate_hash_data(pem)
    await ctx.expect_answer("DeleteCertificate", {"certificateHashData": hash_data}, "status", "Accepted")
    if any(_same(h, hash_data) for h in await _installed(ctx, kind)):
        raise Fail("GetInstalledCertificateIds still lists the certificate DeleteCertificate Accepted")


async def invalid_charge_point_certificate(ctx: ChargerContext) -> None:
    """CertificateSigned with a certificate for another key: Rejected, and SecurityEventNotification
    InvalidChargePointCertificate (A02.FR.?)."""
    ca_key, ca = pki.make_ca("Conformance unknown CA")
    _, leaf = pki.issue(ca_key, ca, common_name=ctx.cp_id)  # a key the charger never made
    m = ctx.at()
    chain = pki.pem_of(leaf) + pki.pem_of(ca)
    await ctx.expect_answer("CertificateSigned", {"certificateChain": chain}, "status", "Rejected")
    await security_event(ctx, m, "InvalidChargePointCertificate")


async def security_log(ctx: ChargerContext) -> None:
    """GetLog SecurityLog: Accepted; LogStatusNotification Uploading then Uploaded for its requestId; the file
    arrives (whitepaper N01)."""
    async with serve_files({}) as server:
        m = ctx.at()
        await ctx.expect_answer(
            "GetLog",
            {"logType": "SecurityLog", "requestId": 4711, "log": {"remoteLocation": f"{server.url}/logs"}},
            "status",
            "Accepted",
            "AcceptedCanceled",
        )
        done = await ctx.wait_call(
            "LogStatusNotification",
            m,
            lambda p: p.get("status") not in ("Uploading", "Idle"),
            40,
            "LogStatusNotification Uploaded",
        )
        statuses = [f.payload.get("status") for f in ctx.calls_since("LogStatusNotification", m)]
        if done.payload.get("status") != "Uploaded" or done.payload.get("requestId") != 4711:
            raise Fail(f"LogStatusNotification {done.payload}, expected Uploaded for requestId 4711")
        if "Uploading" not in statuses[: statuses.index("Uploaded")]:
            raise Fail(f"LogStatusNotification statuses {statuses}: no Uploading before Uploaded")
        if not server.uploads:
            raise Fail("LogStatusNotification said Uploaded but nothing reached the remoteLocation")


def signed_firmware(valid: bool) -> StepFn:
    """SignedUpdateFirmware of a file from our server, signed by a certificate under an installed
    ManufacturerRootCertificate: valid, Downloaded, SignatureVerified, ..., Installed; with a wrong signature
    InvalidSignature and SecurityEventNotification InvalidFirmwareSignature (whitepaper L01, L02)."""

    async def run(ctx: ChargerContext) -> None:
        ca_key, ca = pki.make_ca("Conformance Manufacturer Root")
        await _install_root(ctx, "ManufacturerRootCertificate", pki.pem_of(ca))
        signer, cert = pki.issue(ca_key, ca, common_name="Conformance firmware signer")
        assert signer is not None
        image = secrets.token_bytes(4096)
        signature = pki.sign_data(signer, image if valid else image + b"tampered")
        async with serve_files({"/firmware.bin": image}) as server:
            m = ctx.at()
            await ctx.expect_answer(
                "SignedUpdateFirmware",
                {
                    "requestId": 815,
                    "firmware": {
                        "location": f"{server.url}/firmware.bin",
                        "retrieveDateTime": datetime.now(UTC)
                        .isoformat(timespec="seconds")
                        .replace("+00:00", "Z"),
                        "signingCertificate": pki.pem_of(cert),
                        "signature": signature,
                    },
                },
                "status",
                "Accepted",
                "AcceptedCanceled",
            )
            final = ("Installed",) if valid else ("InvalidSignature",)
            await ctx.wait_call(
                "SignedFirmwareStatusNotification",
                m,
                lambda p: p.get("status") in final or p.get("status", "").endswith("Failed"),
                60,
                f"SignedFirmwareStatusNotification {final[0]}",
            )
        statuses = [f.payload.get("status") for f in ctx.calls_since("SignedFirmwareStatusNotification", m)]
        expected = (
            ["Downloaded", "SignatureVerified", "Installed"] if valid else ["Downloaded", "InvalidSignature"]
        )
        seen = [s for s in statuses if s in expected]
        if seen != expected:
            raise Fail(
                f"SignedFirmwareStatusNotification statuses {statuses}, expected {' then '.join(expected)}"
            )
        if not valid:
            await security_event(ctx, m, "InvalidFirmwareSignature")

    return run


def security_case(id: str, title: str, *steps: tuple[str, StepFn], timeout_s: float = 60.0) -> None:
    """A security case whose cleanup also deletes the certificates it installed."""
    case(id, title, SECURITY, *steps, timeout_s=timeout_s)
    made = CASES[-1]
    CASES[-1] = Case(
        made.id,
        made.title,
        made.block,
        made.steps,
        made.needs,
        made.timeout_s,
        cleanup=(*made.cleanup, Step[ChargerContext]("delete installed certificates", delete_installed)),
    )


security_case(
    "TC_073_CS",
    "Update Charge Point Password for HTTP Basic Authentication",
    ("AuthorizationKey changed: reconnect with it", update_password),
)
security_case(
    "TC_074_CS",
    "Update Charge Point Certificate by request of Central System",
    ("SignCertificate, CertificateSigned Accepted", sign_certificate),
)
security_case(
    "TC_075_1_CS",
    "Install a certificate on the Charge Point - ManufacturerRootCertificate",
    ("InstallCertificate, listed", install_root("ManufacturerRootCertificate")),
)
security_case(
    "TC_075_2_CS",
    "Install a certificate on the Charge Point - CentralSystemRootCertificate",
    ("InstallCertificate, listed", install_root("CentralSystemRootCertificate")),
)
security_case(
    "TC_076_CS",
    "Delete a specific certificate from the Charge Point",
    ("install, delete, no longer listed", delete_certificate),
)
security_case(
    "TC_077_CS",
    "Invalid ChargePointCertificate Security Event",
    ("CertificateSigned for another key: Rejected, security event", invalid_charge_point_certificate),
)
security_case(
    "TC_078_CS",
    "Invalid CentralSystemCertificate Security Event",
    (
        "unknown-CA server certificate refused, then SecurityEventNotification",
        invalid_server_certificate("InvalidCentralSystemCertificate"),
    ),
    timeout_s=90,
)


async def upgrade_profile(ctx: ChargerContext) -> None:
    """OCTT TC_083 (whitepaper §2 migration): ChangeConfiguration SecurityProfile 3 (from 2) Accepted, Reset Hard
    Accepted, BootNotification and StatusNotification; the charger now connects with a client certificate issued
    to it and reports SecurityProfile 3. A charger may reconnect with the new profile at once (before the Reset)."""
    if ctx.setup.tls is None or not ctx.setup.tls_client_ca:
        raise NotApplicable(
            "the upgrade to security profile 3 needs the runner on wss:// with --tls-ca (client certificates)"
        )
    current = (await ctx.configuration("SecurityProfile")).get("SecurityProfile")
    if current != "2":
        raise NotApplicable(f"the charger uses SecurityProfile {current}: the upgrade case starts at 2")
    ctx.cs.handshakes.clear()
    await ctx.expect_answer(
        "ChangeConfiguration", {"key": "SecurityProfile", "value": "3"}, "status", "Accepted"
    )
    with contextlib.suppress(TimeoutError):
        await ctx.cs.wait_disconnected(ctx.cp_id, timeout=ctx.scaled(UPGRADE_SELF_RECONNECT_S))
    if ctx.cp_id not in ctx.cs.connected:
        ctx.event("the charger reconnects with the new profile before the Reset")
        await ctx.reconnected(30)
    m = ctx.at()
    await ctx.expect_answer("Reset", {"type": "Hard"}, "status", "Accepted")
    await reboot_seen(ctx, m)
    shown = latest_handshake(ctx)
    if ctx.cp_id not in shown.certificate_names:
        raise Fail(
            "after the upgrade the charger connected without a client certificate issued to it "
            f"(names: {sorted(shown.certificate_names) or 'none'})"
        )
    after = (await ctx.configuration("SecurityProfile")).get("SecurityProfile")
    if after != "3":
        raise Fail(f"SecurityProfile reads {after} after the upgrade to 3")


security_case(
    "TC_083_CS",
    "Upgrade security profile",
    ("SecurityProfile 3 Accepted, Reset Hard: reconnect with a client certificate", upgrade_profile),
    timeout_s=120,
)
security_case("TC_079_CS", "Get Security Log", ("GetLog SecurityLog: Uploaded", security_log))
security_case(
    "TC_080_CS",
    "Secure Firmware Update",
    ("SignedUpdateFirmware: Installed", signed_firmware(True)),
    timeout_s=90,
)
security_case(
    "TC_081_CS",
    "Secure Firmware Update - Invalid Signature",
    ("SignedUpdateFirmware, bad signature: InvalidSignature", signed_firmware(False)),
    timeout_s=90,
)
security_case(
    "TC_086_CS",
    "TLS - server-side certificate - Valid certificate",
    ("reconnect over TLS 1.2+, Basic auth or a client certificate", server_certificate_valid),
)
security_case(
    "TC_087_CS",
    "TLS - Client-side certificate - valid certificate",
    ("reconnect with a client certificate issued to the charger", client_certificate_valid),
)


async def downgrade_refused(ctx: ChargerContext) -> None:
    """OCTT TC_084 (whitepaper §2: no way back to a lower profile): ChangeConfiguration SecurityProfile one below
    the configured one (2 or 3) is Rejected; the charger stays connected and keeps its profile."""
    current = (await ctx.configuration("SecurityProfile")).get("SecurityProfile")
    if current not in ("2", "3"):
        raise NotApplicable(
            f"the charger uses SecurityProfile {current}: a downgrade needs profile 2 or 3 (the runner on wss://)"
        )
    lower = str(int(current) - 1)
    await ctx.expect_answer(
        "ChangeConfiguration", {"key": "SecurityProfile", "value": lower}, "status", "Rejected"
    )
    await ctx.quiet(1)
    if ctx.cp_id not in ctx.cs.connected:
        raise Fail("the charger dropped its connection after the Rejected downgrade")
    after = (await ctx.configuration("SecurityProfile")).get("SecurityProfile")
    if after != current:
        raise Fail(f"SecurityProfile reads {after} after the Rejected downgrade (was {current})")


async def basic_auth_profile(ctx: ChargerContext) -> None:
    """Not applicable when the charger declares SecurityProfile 0 (no authentication) or 3 (certificates)."""
    current = (await ctx.configuration("SecurityProfile")).get("SecurityProfile")
    if current in ("0", "3"):
        raise NotApplicable(f"the charger uses SecurityProfile {current}: Basic authentication needs 1 or 2")


security_case(
    "TC_084_CS",
    "Downgrade security profile - Rejected",
    ("ChangeConfiguration SecurityProfile one lower: Rejected, profile kept", downgrade_refused),
)
security_case(
    "TC_085_CS",
    "Basic Authentication - Valid username/password combination",
    ("SecurityProfile 1 or 2", basic_auth_profile),
    ("reconnect with HTTP Basic <chargerId>:<16-40 character password>", basic_auth_valid(any_password)),
)
