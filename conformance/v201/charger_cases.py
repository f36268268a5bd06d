"""OCPP 2.0.1 charging-station cases (TC_X_NN_CS of the OCTT 2.0.1 catalogue), run against a `V201ChargerContext`.

Every case ends with the 2.0.1 frame check: every frame the station sent is schema-valid, every StatusNotification
is a transition OCPP 2.0.1 Part 2 §G01 allows, and every transaction's TransactionEvents start with Started, count
seqNo without a gap and end with exactly one Ended. Where a case starts or stops a transaction it also checks the
triggerReason, the idToken, the EVSE and that an online event does not say ``offline``. Cases whose feature the
station answers as not supported (SummaryInventory, Reset of one EVSE) are not applicable, and their "not
supported" twin case checks that answer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from conformance.model import Case, Fail, Inconclusive, NotApplicable, Step
from conformance.v201.charger import V201ChargerContext, is_tx_event, tx_id_of

__all__ = ["CASES"]

Ctx = V201ChargerContext
StepFn = Callable[[Ctx], Awaitable[None]]
CASES: list[Case[Ctx]] = []
PROVISIONING, AUTHORIZATION, TRANSACTIONS, REMOTE, AVAILABILITY, METER, DATA = (
    "B Provisioning",
    "C Authorization",
    "E Transactions",
    "F RemoteControl",
    "G Availability",
    "J MeterValues",
    "P DataTransfer",
)
REMOTE_TOKEN = {"idToken": "REMOTE01", "type": "Central"}
UNKNOWN_TX = "CONFORMANCE-UNKNOWN-TX"
STATUS_SETTLE_S = 1.0  # E14 cases: the station sent nothing this long, so its queue is delivered
STATUS_DELIVERY_S = 5.0  # E14 cases: a station saying messagesInQueue true delivers one within this (online)
STATUS_ATTEMPTS = 3
OFFLINE_SLACK = timedelta(
    seconds=0.5
)  # clocks and the drop itself: events this close to the edges are not judged
_request_ids = itertools.count(7001)  # requestId / remoteStartId of the runner's requests


async def check_frames(ctx: Ctx) -> None:
    """Only schema-valid frames, allowed status transitions and whole transactions (seqNo, one Ended)."""
    await ctx.check_frames()


async def to_idle(ctx: Ctx) -> None:
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
    """Add a case: its steps, the frame check, and a cleanup to idle."""
    all_steps = (*steps, ("only valid frames, allowed status transitions, whole transactions", check_frames))
    CASES.append(
        Case(
            id,
            title,
            block,
            tuple(Step[Ctx](t, f) for t, f in all_steps),
            needs,
            timeout_s,
            cleanup=(Step[Ctx]("back to idle", to_idle),),
        )
    )


PLUG = frozenset({"plug", "unplug"})
PLUG_SWIPE = frozenset({"plug", "unplug", "swipe"})


# ------------------------------------------------------------------------------------------------ helpers


def answer(
    action: str,
    payload: dict[str, Any] | Callable[[Ctx], dict[str, Any]],
    field: str,
    *allowed: str,
) -> tuple[str, StepFn]:
    """A step: send ``action``; ``field`` of the answer must be one of ``allowed``."""

    async def run(ctx: Ctx) -> None:
        body = payload(ctx) if callable(payload) else payload
        ctx.vars[action] = await ctx.expect_answer(action, body, field, *allowed)

    return (f"{action}Request -> {field} {' or '.join(allowed)}", run)


def variable(component: str, name: str, value: str) -> tuple[str, StepFn]:
    """A step: SetVariables (Accepted; set back after the case)."""

    async def run(ctx: Ctx) -> None:
        await ctx.set_variable(component, name, value)

    return (f"SetVariables {component}.{name}={value}", run)


def evse(ctx: Ctx, connector: bool = False) -> dict[str, int]:
    """The EVSE under test (with its connector 1 if ``connector``), as EVSEType."""
    return {"id": ctx.setup.connector, "connectorId": 1} if connector else {"id": ctx.setup.connector}


def check_event(
    ctx: Ctx, event: dict[str, Any], what: str, *, trigger: tuple[str, ...] = (), token: str | None = None
) -> None:
    """A TransactionEvent sent online: its triggerReason, its idToken, its EVSE and no ``offline`` flag."""
    if trigger and event.get("triggerReason") not in trigger:
        raise Fail(
            f"{what}: TransactionEventRequest triggerReason {event.get('triggerReason')!r}, expected "
            f"{' or '.join(trigger)} (OCPP 2.0.1 E: TriggerReasonEnumType)"
        )
    if token is not None and (event.get("idToken") or {}).get("idToken") != token:
        raise Fail(f"{what}: TransactionEventRequest idToken {event.get('idToken')}, expected {token}")
    ev = event.get("evse")
    if event.get("eventType") == "Started" and (
        not isinstance(ev, dict) or ev.get("id") != ctx.setup.connector
    ):
        raise Fail(f"{what}: TransactionEventRequest Started evse {ev}, expected EVSE {ctx.setup.connector}")
    if event.get("offline"):
        raise Fail(f"{what}: TransactionEventRequest says offline=true while the station was connected")


async def plug(ctx: Ctx) -> None:
    """Plug in: Occupied."""
    m = ctx.at()
    await ctx.act("plug")
    await ctx.wait_status("Occupied", m)


async def unplug(ctx: Ctx) -> None:
    """Unplug: Available."""
    m = ctx.at()
    await ctx.act("unplug")
    await ctx.wait_status("Available", m)


async def start_local(ctx: Ctx) -> None:
    """Cable first, then the card: AuthorizeRequest, TransactionEvent Started (Authorized) with the idToken."""
    m = ctx.at()
    await plug(ctx)
    await ctx.act("swipe")
    auth = await ctx.wait_call("Authorize", m, what="AuthorizeRequest")
    started = await ctx.wait_event("Started", m)
    if ctx.index_of(auth) > ctx.index_of(_frame_of(ctx, started)):
        raise Fail("TransactionEventRequest Started came before AuthorizeRequest (C01)")
    check_event(ctx, started, "start by card", trigger=("Authorized",), token=ctx.setup.id_tag)
    ctx.vars["tx"] = tx_id_of(started)
    ctx.vars["started"] = started


def _frame_of(ctx: Ctx, payload: dict[str, Any]) -> Any:
    """The logged frame that carried ``payload``."""
    return next(f for f in reversed(ctx.cs.log) if f.payload is payload)


async def stop_local(ctx: Ctx) -> None:
    """The same card again: TransactionEvent Ended, triggerReason StopAuthorized, stoppedReason Local."""
    m = ctx.at()
    await ctx.act("swipe")
    ended = await ctx.wait_event("Ended", m, ctx.vars["tx"])
    check_event(ctx, ended, "stop by card", trigger=("StopAuthorized",))
    reason = (ended.get("transactionInfo") or {}).get("stoppedReason", "Local")
    if reason != "Local":
        raise Fail(f"TransactionEventRequest Ended stoppedReason {reason!r}, expected Local (E07)")
    ctx.vars["ended"] = ended


async def start_remote(ctx: Ctx) -> None:
    """RequestStartTransaction Accepted; Started with triggerReason RemoteStart and the remoteStartId (F01)."""
    m = ctx.at()
    remote_id = next(_request_ids)
    await ctx.expect_answer(
        "RequestStartTransaction",
        {"idToken": REMOTE_TOKEN, "remoteStartId": remote_id, "evseId": ctx.setup.connector},
        "status",
        "Accepted",
    )
    ctx.vars["remote_id"] = remote_id
    if not ctx.vars.get("plugged"):
        return
    await _remote_started(ctx, m)


async def _remote_started(ctx: Ctx, after: int) -> None:
    started = await ctx.wait_event("Started", after)
    check_event(ctx, started, "remote start", trigger=("RemoteStart",), token=REMOTE_TOKEN["idToken"])
    got = (started.get("transactionInfo") or {}).get("remoteStartId")
    if got != ctx.vars["remote_id"]:
        raise Fail(
            f"TransactionEventRequest Started remoteStartId {got!r}, RequestStartTransaction gave "
            f"{ctx.vars['remote_id']} (F01.FR.?)"
        )
    ctx.vars["tx"] = tx_id_of(started)


async def stop_remote(ctx: Ctx) -> None:
    """RequestStopTransaction Accepted; Ended with triggerReason RemoteStop, stoppedReason Remote (F03)."""
    m = ctx.at()
    tx_id = ctx.vars["tx"]
    await ctx.expect_answer("RequestStopTransaction", {"transactionId": tx_id}, "status", "Accepted")
    ended = await ctx.wait_event("Ended", m, tx_id)
    check_event(ctx, ended, "remote stop", trigger=("RemoteStop",))
    reason = (ended.get("transactionInfo") or {}).get("stoppedReason")
    if reason != "Remote":
        raise Fail(f"TransactionEventRequest Ended stoppedReason {reason!r}, expected Remote (F03)")


async def no_transaction_since(ctx: Ctx, after: int, why: str) -> None:
    """No transaction started since ``after`` (or one that did already ended as Deauthorized / EVConnectTimeout)."""
    for f in ctx.cs.log[after:]:
        if f.cp_id == ctx.cp_id and is_tx_event(f, "Started"):
            ended = [
                e for e in ctx.events_of(tx_id_of(f.payload) or "", after) if e.get("eventType") == "Ended"
            ]
            if not ended or ended[0].get("triggerReason") not in ("Deauthorized", "EVConnectTimeout"):
                raise Fail(f"a transaction started ({tx_id_of(f.payload)}) although {why}")


async def reboot_seen(ctx: Ctx, after: int, *reasons: str) -> None:
    """A BootNotificationRequest after ``after`` (giving one of ``reasons``, if given), then a StatusNotification
    of the EVSE (B01, G01)."""
    boot = await ctx.wait_call("BootNotification", after, timeout_s=40, what="BootNotificationRequest")
    if reasons and boot.payload.get("reason") not in reasons:
        # B01.FR.03 (BootReasonEnumType): a station rebooted by a ResetRequest says so.
        raise Fail(
            f"BootNotificationRequest reason {boot.payload.get('reason')!r} after the Reset, expected "
            f"{' or '.join(reasons)} (B01.FR.03, BootReasonEnumType)"
        )
    await ctx.wait_call(
        "StatusNotification",
        ctx.index_of(boot),
        lambda p: ctx.is_status_of(p, ctx.setup.connector),
        15,
        "StatusNotificationRequest after the reboot",
    )


# ================================================================================================ B Provisioning


async def cold_boot(ctx: Ctx) -> None:
    """BootNotification first, no other CALL before Accepted, then a StatusNotification per connector (B01)."""
    ctx.mark = 0  # this case judges the connection's first frames: trace them all
    await ctx.cs.wait_for(
        lambda f: f.cp_id == ctx.cp_id and f.direction == "out" and f.action == "BootNotification",
        timeout=ctx.scaled(10),
    )
    log = [f for f in ctx.cs.log if f.cp_id == ctx.cp_id]
    calls = [f for f in log if f.direction == "in" and f.message_type == 2]
    if not calls or calls[0].action != "BootNotification":
        raise Fail(
            f"the first CALL was {calls[0].action if calls else None}, not BootNotificationRequest (B01)"
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
        raise Fail("no BootNotificationRequest was accepted")
    early = {f.action for f in log[:accepted] if f.direction == "in" and f.message_type == 2} - {
        "BootNotification"
    }
    if early:
        raise Fail(
            f"sent {sorted(str(a) for a in early)} before BootNotificationResponse Accepted (B01.FR.?)"
        )
    await ctx.wait_call(
        "StatusNotification",
        0,
        lambda p: ctx.is_status_of(p, ctx.setup.connector),
        10,
        "StatusNotificationRequest",
    )


case(
    "TC_B_01_CS", "Cold Boot Charging Station - Accepted", PROVISIONING, ("BootNotification first", cold_boot)
)


def boot_not_accepted(status: str) -> StepFn:
    """Reset; answer the next BootNotification ``status`` (interval 2 s), then Accepted; nothing else between."""

    async def run(ctx: Ctx) -> None:
        ctx.boot_answers = [(status, 2)]
        m = ctx.at()
        await ctx.expect_answer("Reset", {"type": "OnIdle"}, "status", "Accepted")
        first = await ctx.wait_call("BootNotification", m, timeout_s=40, what="BootNotificationRequest")
        second = await ctx.wait_call(
            "BootNotification",
            ctx.index_of(first) + 1,
            timeout_s=20,
            what=f"BootNotificationRequest retry after {status}",
        )
        gap = (second.ts - first.ts).total_seconds()
        if gap < 1.5:
            raise Fail(
                f"BootNotificationRequest retried after {gap:.1f} s; the {status} answer said interval 2 s"
            )
        between = {
            f.action
            for f in ctx.cs.log[ctx.index_of(first) + 1 : ctx.index_of(second)]
            if f.cp_id == ctx.cp_id and f.direction == "in" and f.message_type == 2
        }
        if between:
            rule = "B02.FR.02" if status == "Pending" else "B03.FR.?"
            raise Fail(
                f"sent {sorted(str(a) for a in between)} while {status} ({rule}: only BootNotification)"
            )
        await ctx.wait_call(
            "StatusNotification",
            ctx.index_of(second),
            lambda p: ctx.is_status_of(p, ctx.setup.connector),
            15,
            "StatusNotificationRequest after Accepted",
        )

    return run


case(
    "TC_B_02_CS",
    "Cold Boot Charging Station - Pending",
    PROVISIONING,
    ("Reset, Pending, then Accepted", boot_not_accepted("Pending")),
    timeout_s=90,
)
case(
    "TC_B_03_CS",
    "Cold Boot Charging Station - Rejected",
    PROVISIONING,
    ("Reset, Rejected, then Accepted", boot_not_accepted("Rejected")),
    timeout_s=90,
)

HEARTBEAT = ("OCPPCommCtrlr", "HeartbeatInterval")
EV_TIMEOUT = ("TxCtrlr", "EVConnectionTimeOut")
AUTH_REMOTE = ("AuthCtrlr", "AuthorizeRemoteStart")


def get_variables_accepted(*refs: tuple[str, str]) -> StepFn:
    """GetVariables of ``refs``: each one Accepted with a value, for the component and variable asked (B06)."""

    async def run(ctx: Ctx) -> None:
        results = await ctx.get_variables(*refs)
        if len(results) != len(refs):
            raise Fail(
                f"GetVariablesResponse has {len(results)} results for {len(refs)} requested (B06.FR.?)"
            )
        for comp, var in refs:
            match = [
                r
                for r in results
                if r.get("component", {}).get("name") == comp and r.get("variable", {}).get("name") == var
            ]
            if not match or match[0].get("attributeStatus") != "Accepted" or "attributeValue" not in match[0]:
                raise Fail(f"GetVariablesResponse for {comp}.{var}: {match}, expected Accepted with a value")

    return run


def get_variable_status(component: str, name: str, expected: str, attribute: str | None = None) -> StepFn:
    """GetVariables of one variable; its attributeStatus must be ``expected``."""

    async def run(ctx: Ctx) -> None:
        data: dict[str, Any] = {"component": {"name": component}, "variable": {"name": name}}
        if attribute:
            data["attributeType"] = attribute
        answer = await ctx.call("GetVariables", {"getVariableData": [data]})
        got = (answer.get("getVariableResult") or [{}])[0].get("attributeStatus")
        if got != expected:
            raise Fail(
                f"GetVariablesResponse attributeStatus {got!r} for {component}.{name}, expected {expected}"
            )

    return run


def set_variable_status(
    component: str, name: str, value: str, expected: str, attribute: str | None = None
) -> StepFn:
    """SetVariables of one variable; its attributeStatus must be ``expected`` (and then nothing changed)."""

    async def run(ctx: Ctx) -> None:
        data: dict[str, Any] = {
            "component": {"name": component},
            "variable": {"name": name},
            "attributeValue": value,
        }
        if attribute:
            data["attributeType"] = attribute
        answer = await ctx.call("SetVariables", {"setVariableData": [data]})
        got = (answer.get("setVariableResult") or [{}])[0].get("attributeStatus")
        if got != expected:
            raise Fail(
                f"SetVariablesResponse attributeStatus {got!r} for {component}.{name}={value}, expected {expected}"
            )

    return run


async def set_heartbeat(ctx: Ctx) -> None:
    """SetVariables HeartbeatInterval to a new value: Accepted, and GetVariables reads it back (B05)."""
    old = await ctx.get_variable(*HEARTBEAT)
    new = "301" if old != "301" else "302"
    await ctx.set_variable(*HEARTBEAT, new)
    if (got := await ctx.get_variable(*HEARTBEAT)) != new:
        raise Fail(f"HeartbeatInterval reads {got!r} after SetVariables {new} was Accepted")


async def set_two(ctx: Ctx) -> None:
    """SetVariables of two variables in one request: both Accepted, both read back."""
    values = {HEARTBEAT: "303", EV_TIMEOUT: "31"}
    for ref in values:
        old = await ctx.get_variable(*ref)
        if old is not None:
            ctx.restore.setdefault("/".join(ref), old)
    answer = await ctx.call(
        "SetVariables",
        {
            "setVariableData": [
                {"component": {"name": c}, "variable": {"name": v}, "attributeValue": value}
                for (c, v), value in values.items()
            ]
        },
    )
    statuses = [r.get("attributeStatus") for r in answer.get("setVariableResult", [])]
    if statuses != ["Accepted", "Accepted"]:
        raise Fail(f"SetVariablesResponse attributeStatus {statuses}, expected Accepted for both")
    for (c, v), value in values.items():
        if (got := await ctx.get_variable(c, v)) != value:
            raise Fail(f"{c}.{v} reads {got!r} after SetVariables {value} was Accepted")


async def invalid_value(ctx: Ctx) -> None:
    """SetVariables HeartbeatInterval=not-a-number: Rejected and the value unchanged (B05.FR.?)."""
    old = await ctx.get_variable(*HEARTBEAT)
    await set_variable_status(*HEARTBEAT, "not-a-number", "Rejected")(ctx)
    if (got := await ctx.get_variable(*HEARTBEAT)) != old:
        raise Fail(f"HeartbeatInterval changed from {old!r} to {got!r} by a Rejected SetVariables")


async def base_report(ctx: Ctx, report_base: str) -> list[dict[str, Any]] | None:
    """GetBaseReport; the NotifyReport parts (seqNo from 0, tbc until the last); None if NotSupported."""
    request_id = next(_request_ids)
    m = ctx.at()
    answer = await ctx.expect_answer(
        "GetBaseReport",
        {"requestId": request_id, "reportBase": report_base},
        "status",
        "Accepted",
        "NotSupported",
    )
    if answer["status"] == "NotSupported":
        return None
    parts: list[dict[str, Any]] = []
    after = m
    while True:
        frame = await ctx.wait_call(
            "NotifyReport",
            after,
            lambda p: p.get("requestId") == request_id,
            20,
            f"NotifyReportRequest {len(parts)}",
        )
        after = ctx.index_of(frame) + 1
        if frame.payload.get("seqNo") != len(parts):
            raise Fail(
                f"NotifyReportRequest seqNo {frame.payload.get('seqNo')}, expected {len(parts)} (B07.FR.?)"
            )
        parts.append(frame.payload)
        if not frame.payload.get("tbc", False):
            break
    return [item for part in parts for item in part.get("reportData", [])]


def mutability_of(item: dict[str, Any]) -> set[str]:
    """The mutabilities a reportData entry declares."""
    return {a.get("mutability", "ReadWrite") for a in item.get("variableAttribute", [])}


async def configuration_inventory(ctx: Ctx) -> None:
    """ConfigurationInventory: Accepted; only variables the CSMS can set (no ReadOnly), HeartbeatInterval among them."""
    items = await base_report(ctx, "ConfigurationInventory")
    if items is None:
        raise Fail("GetBaseReportResponse NotSupported for ConfigurationInventory, which is required (B07)")
    names = {(i["component"]["name"], i["variable"]["name"]) for i in items}
    read_only = [n for i, n in zip(items, names, strict=False) if mutability_of(i) == {"ReadOnly"}]
    if read_only:
        raise Fail(
            f"ConfigurationInventory reports read-only variables {read_only[:3]} (B07: settable ones only)"
        )
    if HEARTBEAT not in names:
        raise Fail("ConfigurationInventory lacks OCPPCommCtrlr.HeartbeatInterval")


async def full_inventory(ctx: Ctx) -> None:
    """FullInventory: Accepted; read-only variables too, more than ConfigurationInventory would give."""
    items = await base_report(ctx, "FullInventory")
    if items is None:
        raise Fail("GetBaseReportResponse NotSupported for FullInventory, which is required (B08)")
    if not any("ReadOnly" in mutability_of(i) for i in items):
        raise Fail("FullInventory reports no read-only variable (B08: every component and variable)")
    ctx.vars["inventory"] = items


async def summary_inventory(ctx: Ctx) -> None:
    """SummaryInventory: not applicable when NotSupported (TC_B_15 checks that); else its report arrives."""
    if await base_report(ctx, "SummaryInventory") is None:
        raise NotApplicable("the station answers SummaryInventory NotSupported (see TC_B_15_CS)")


async def summary_not_supported(ctx: Ctx) -> None:
    """A station without SummaryInventory answers NotSupported and sends no report."""
    m = ctx.at()
    answer = await ctx.call(
        "GetBaseReport", {"requestId": next(_request_ids), "reportBase": "SummaryInventory"}
    )
    if answer.get("status") == "Accepted":
        raise NotApplicable("the station supports SummaryInventory (see TC_B_14_CS)")
    if answer.get("status") != "NotSupported":
        raise Fail(f"GetBaseReportResponse status {answer.get('status')!r}, expected NotSupported")
    await ctx.quiet(2)
    if ctx.calls_since("NotifyReport", m):
        raise Fail("sent NotifyReportRequest after answering NotSupported")


async def read_only_rejected(ctx: Ctx) -> None:
    """SetVariables of a read-only variable the FullInventory names: Rejected (B05.FR.?)."""
    await full_inventory(ctx)
    items = ctx.vars["inventory"]
    target = next(
        (
            i
            for i in items
            if mutability_of(i) == {"ReadOnly"}
            and "instance" not in i["component"]
            and "evse" not in i["component"]
            and "instance" not in i["variable"]
        ),
        None,
    )
    if target is None:
        raise NotApplicable("the FullInventory names no read-only variable without instance or EVSE")
    comp, var = target["component"]["name"], target["variable"]["name"]
    before = await ctx.get_variable(comp, var)
    await set_variable_status(comp, var, "1", "Rejected")(ctx)
    if (after := await ctx.get_variable(comp, var)) != before:
        raise Fail(f"read-only {comp}.{var} changed from {before!r} to {after!r}")


case(
    "TC_B_06_CS",
    "Get Variables - single value",
    PROVISIONING,
    ("GetVariables HeartbeatInterval", get_variables_accepted(HEARTBEAT)),
)
case(
    "TC_B_07_CS",
    "Get Variables - multiple values",
    PROVISIONING,
    ("GetVariables of three variables", get_variables_accepted(HEARTBEAT, EV_TIMEOUT, AUTH_REMOTE)),
)
case(
    "TC_B_09_CS",
    "Set Variables - single value",
    PROVISIONING,
    ("SetVariables HeartbeatInterval", set_heartbeat),
)
case(
    "TC_B_10_CS", "Set Variables - multiple values", PROVISIONING, ("SetVariables of two variables", set_two)
)
case(
    "TC_B_11_CS",
    "Set Variables - invalidly formatted values",
    PROVISIONING,
    ("SetVariables HeartbeatInterval=not-a-number", invalid_value),
)
case(
    "TC_B_12_CS",
    "Get Base Report - ConfigurationInventory",
    PROVISIONING,
    ("GetBaseReport ConfigurationInventory", configuration_inventory),
)
case(
    "TC_B_13_CS",
    "Get Base Report - FullInventory",
    PROVISIONING,
    ("GetBaseReport FullInventory", full_inventory),
)
case(
    "TC_B_14_CS",
    "Get Base Report - SummaryInventory",
    PROVISIONING,
    ("GetBaseReport SummaryInventory", summary_inventory),
)
case(
    "TC_B_15_CS",
    "Get Base Report - Not Supported base report",
    PROVISIONING,
    ("GetBaseReport SummaryInventory NotSupported", summary_not_supported),
)


async def reset_idle(ctx: Ctx) -> None:
    """Reset OnIdle without a transaction: Accepted, then the station boots again, reason RemoteReset (B11)."""
    m = ctx.at()
    await ctx.expect_answer("Reset", {"type": "OnIdle"}, "status", "Accepted")
    await reboot_seen(ctx, m, "RemoteReset")


async def reset_on_idle_with_tx(ctx: Ctx) -> None:
    """Reset OnIdle during a transaction: Scheduled; the transaction runs on; it ends, then the reboot (B12)."""
    await start_local(ctx)
    m = ctx.at()
    await ctx.expect_answer("Reset", {"type": "OnIdle"}, "status", "Scheduled")
    await ctx.quiet(2)
    ended = [e for e in ctx.events_of(ctx.vars["tx"], m) if e["eventType"] == "Ended"]
    if ctx.calls_since("BootNotification", m) or ended:
        raise Fail("the station reset or ended the transaction although the Reset was OnIdle (B12.FR.?)")
    await stop_local(ctx)
    # The Reset was answered Scheduled and carried out once idle: RemoteReset, or ScheduledReset ("rebooted due to
    # a scheduled reset command"); Part 2 does not say which of the two a deferred OnIdle reset is.
    await reboot_seen(ctx, m, "RemoteReset", "ScheduledReset")


async def reset_immediate_with_tx(ctx: Ctx) -> None:
    """Reset Immediate during a transaction: Accepted; Ended (ResetCommand, ImmediateReset); then the reboot."""
    await start_local(ctx)
    m = ctx.at()
    await ctx.expect_answer("Reset", {"type": "Immediate"}, "status", "Accepted")
    ended = await ctx.wait_event("Ended", m, ctx.vars["tx"], 20)
    check_event(ctx, ended, "immediate reset", trigger=("ResetCommand",))
    reason = (ended.get("transactionInfo") or {}).get("stoppedReason")
    if reason != "ImmediateReset":
        raise Fail(
            f"TransactionEventRequest Ended stoppedReason {reason!r}, expected ImmediateReset (B12.FR.?)"
        )
    await reboot_seen(ctx, m, "RemoteReset")


async def reset_evse(ctx: Ctx) -> None:
    """Reset of one EVSE: not applicable if the station answers Rejected (see TC_B_28_CS); else it resets."""
    m = ctx.at()
    answer = await ctx.call("Reset", {"type": "OnIdle", "evseId": ctx.setup.connector})
    if answer.get("status") == "Rejected":
        raise NotApplicable("the station does not reset single EVSEs (Rejected; see TC_B_28_CS)")
    if answer.get("status") != "Accepted":
        raise Fail(f"ResetResponse status {answer.get('status')!r}, expected Accepted")
    await ctx.wait_status("Unavailable", m, 20)
    await ctx.wait_status("Available", m, 30)


async def reset_evse_not_supported(ctx: Ctx) -> None:
    """A station that cannot reset one EVSE answers Rejected and does not reboot (B11.FR.?)."""
    m = ctx.at()
    answer = await ctx.call("Reset", {"type": "OnIdle", "evseId": ctx.setup.connector})
    if answer.get("status") == "Accepted":
        raise NotApplicable("the station resets single EVSEs (see TC_B_25_CS)")
    if answer.get("status") != "Rejected":
        raise Fail(f"ResetResponse status {answer.get('status')!r}, expected Rejected")
    await ctx.quiet(2)
    if ctx.calls_since("BootNotification", m):
        raise Fail("the station rebooted after answering the EVSE Reset Rejected")


case(
    "TC_B_20_CS",
    "Reset Charging Station - Without ongoing transaction - OnIdle",
    PROVISIONING,
    ("Reset OnIdle, reboot", reset_idle),
    timeout_s=90,
)
case(
    "TC_B_21_CS",
    "Reset Charging Station - With Ongoing Transaction - OnIdle",
    PROVISIONING,
    ("Reset OnIdle Scheduled, stop, reboot", reset_on_idle_with_tx),
    needs=PLUG_SWIPE,
    timeout_s=90,
)
case(
    "TC_B_22_CS",
    "Reset Charging Station - With Ongoing Transaction - Immediate",
    PROVISIONING,
    ("Reset Immediate: Ended, reboot", reset_immediate_with_tx),
    needs=PLUG_SWIPE,
    timeout_s=90,
)
case(
    "TC_B_25_CS", "Reset EVSE - Without ongoing transaction", PROVISIONING, ("Reset of the EVSE", reset_evse)
)
case(
    "TC_B_28_CS",
    "Reset EVSE - Not Supported",
    PROVISIONING,
    ("Reset of the EVSE: Rejected", reset_evse_not_supported),
)
case(
    "TC_B_32_CS",
    "Get Variables - Unknown component",
    PROVISIONING,
    ("UnknownComponent", get_variable_status("ConformanceNoSuchComponent", "Enabled", "UnknownComponent")),
)
case(
    "TC_B_33_CS",
    "Get Variables - Unknown variable",
    PROVISIONING,
    ("UnknownVariable", get_variable_status("OCPPCommCtrlr", "ConformanceNoSuchVariable", "UnknownVariable")),
)
case(
    "TC_B_34_CS",
    "Get Variables - Not supported attribute type",
    PROVISIONING,
    ("NotSupportedAttributeType", get_variable_status(*HEARTBEAT, "NotSupportedAttributeType", "MaxSet")),
)
case(
    "TC_B_35_CS",
    "Set Variables - Unknown component",
    PROVISIONING,
    (
        "UnknownComponent",
        set_variable_status("ConformanceNoSuchComponent", "Enabled", "true", "UnknownComponent"),
    ),
)
case(
    "TC_B_36_CS",
    "Set Variables - Unknown variable",
    PROVISIONING,
    (
        "UnknownVariable",
        set_variable_status("OCPPCommCtrlr", "ConformanceNoSuchVariable", "1", "UnknownVariable"),
    ),
)
case(
    "TC_B_37_CS",
    "Set Variables - Not supported attribute type",
    PROVISIONING,
    (
        "NotSupportedAttributeType",
        set_variable_status(*HEARTBEAT, "300", "NotSupportedAttributeType", "MinSet"),
    ),
)
case(
    "TC_B_39_CS",
    "Set Variables - Read-only",
    PROVISIONING,
    ("a read-only variable is Rejected", read_only_rejected),
)


# ================================================================================================ C Authorization


def refused(status: str) -> StepFn:
    """Cable in, a card the CSMS answers ``status``: Authorize, and no transaction for it (C01.FR.?)."""

    async def run(ctx: Ctx) -> None:
        ctx.auth_status = status
        m = ctx.at()
        await plug(ctx)
        await ctx.act("swipe")
        await ctx.wait_call("Authorize", m, what="AuthorizeRequest")
        await ctx.quiet(3)
        await no_transaction_since(ctx, m, f"the idToken was {status}")

    return run


for _id, _status in (("TC_C_02_CS", "Invalid"), ("TC_C_06_CS", "Blocked"), ("TC_C_07_CS", "Expired")):
    case(
        _id,
        f"Local start transaction - Authorization {'Invalid/Unknown' if _status == 'Invalid' else _status}",
        AUTHORIZATION,
        (f"card answered {_status}: no transaction", refused(_status)),
        needs=PLUG_SWIPE,
    )


async def cache_enabled(ctx: Ctx) -> None:
    """AuthCacheCtrlr.Enabled true (if the station has the variable)."""
    if await ctx.get_variable("AuthCacheCtrlr", "Enabled") is not None:
        await ctx.set_variable("AuthCacheCtrlr", "Enabled", "true")


async def cache_disabled(ctx: Ctx) -> None:
    """AuthCacheCtrlr.Enabled false; not applicable without the variable."""
    if await ctx.get_variable("AuthCacheCtrlr", "Enabled") is None:
        raise NotApplicable("the station has no AuthCacheCtrlr.Enabled")
    await ctx.set_variable("AuthCacheCtrlr", "Enabled", "false")


case(
    "TC_C_37_CS",
    "Clear Authorization Data in Authorization Cache - Accepted",
    AUTHORIZATION,
    ("cache enabled", cache_enabled),
    answer("ClearCache", {}, "status", "Accepted"),
)
case(
    "TC_C_38_CS",
    "Clear Authorization Data in Authorization Cache - Rejected",
    AUTHORIZATION,
    ("cache disabled", cache_disabled),
    answer("ClearCache", {}, "status", "Rejected"),
)


# ================================================================================================ E Transactions


async def identification_first(ctx: Ctx) -> None:
    """Card first: Authorize, no transaction before the cable; plug in: Started with the idToken (E02/E04)."""
    m = ctx.at()
    await ctx.act("swipe")
    await ctx.wait_call("Authorize", m, what="AuthorizeRequest")
    await ctx.quiet(1)
    m2 = ctx.at()
    await ctx.act("plug")
    started = await ctx.wait_event("Started", m)
    if ctx.index_of(_frame_of(ctx, started)) < m2 and started.get("triggerReason") != "Authorized":
        raise Fail("a transaction started before the cable was plugged in, but not by the authorization")
    check_event(
        ctx,
        started,
        "card first",
        trigger=("Authorized", "CablePluggedIn", "EVDetected", "ChargingStateChanged"),
    )
    ctx.vars["tx"] = tx_id_of(started)
    await ctx.wait_status("Occupied", m)


async def plug_timeout(ctx: Ctx) -> None:
    """Card, no cable: after EVConnectionTimeOut (3 s) no transaction (or one ended EVConnectTimeout) (E05)."""
    m = ctx.at()
    await ctx.act("swipe")
    await ctx.wait_call("Authorize", m, what="AuthorizeRequest")
    await ctx.quiet(6)
    await no_transaction_since(ctx, m, "no cable was plugged in within EVConnectionTimeOut")


async def unplug_ends(ctx: Ctx) -> None:
    """Unplug during the transaction: Ended, stoppedReason EVDisconnected (E10 / E.FR: EV side disconnect)."""
    m = ctx.at()
    await ctx.act("unplug")
    ended = await ctx.wait_event("Ended", m, ctx.vars["tx"])
    check_event(ctx, ended, "unplug", trigger=("EVCommunicationLost", "EVDeparted", "CablePluggedIn"))
    reason = (ended.get("transactionInfo") or {}).get("stoppedReason")
    if reason != "EVDisconnected":
        raise Fail(f"TransactionEventRequest Ended stoppedReason {reason!r}, expected EVDisconnected")
    await ctx.wait_status("Available", m)


async def energy_transfer_started(ctx: Ctx) -> None:
    """OCTT state EnergyTransferStarted: the running transaction reports chargingState Charging (in its Started
    event or an Updated one), so the station's start-up messages are behind it."""
    tx_id = ctx.vars["tx"]

    def charging(payload: dict[str, Any]) -> bool:
        info = payload.get("transactionInfo") or {}
        return tx_id_of(payload) == tx_id and info.get("chargingState") == "Charging"

    await ctx.wait_call(
        "TransactionEvent", ctx.mark, charging, 15, "TransactionEventRequest with chargingState Charging"
    )


async def settle(ctx: Ctx, limit_s: float = 10.0) -> None:
    """Wait until the station has sent nothing for ``STATUS_SETTLE_S`` (every CALL of it is answered at once, so
    everything it queued is delivered and acknowledged): the "without message in queue" precondition of E14."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.scaled(limit_s)
    while True:
        m = ctx.at()
        await ctx.quiet(STATUS_SETTLE_S)
        if not [f for f in ctx.cs.log[m:] if f.cp_id == ctx.cp_id and f.direction == "in"]:
            return
        if loop.time() > deadline:
            raise Inconclusive(
                f"the station never stayed quiet for {STATUS_SETTLE_S:g} s within {ctx.scaled(limit_s):g} s: "
                "the 'without message in queue' precondition could not be set up"
            )


def transaction_status(tx: str | None, queued: bool, ongoing: bool | None) -> StepFn:
    """GetTransactionStatus (E14) once the station is quiet: messagesInQueue and ongoingIndicator as expected
    ("tx": the running one).

    messagesInQueue means a message of the transaction (of any, without an id) is not yet delivered, and one in
    flight counts. So a station that answers true while its last message is still on the wire is right: when a
    message of the transaction does arrive after the question, the precondition did not hold and the question is
    asked again (at most ``STATUS_ATTEMPTS`` times, then inconclusive). A true with nothing delivered afterwards,
    while the station is online, is wrong."""

    async def run(ctx: Ctx) -> None:
        tx_id = None if tx is None else ctx.vars.get(tx, tx)
        payload = {} if tx_id is None else {"transactionId": tx_id}
        expected = f"expected messagesInQueue {queued}" + (
            "" if ongoing is None else f", ongoingIndicator {ongoing}"
        )
        for attempt in range(1, STATUS_ATTEMPTS + 1):
            await settle(ctx)
            m = ctx.at()
            answer = await ctx.call("GetTransactionStatus", payload)
            if answer.get("ongoingIndicator") is not ongoing:
                raise Fail(f"GetTransactionStatusResponse {answer}, {expected} (E14)")
            if answer.get("messagesInQueue") is queued:
                return
            try:
                await ctx.wait_call(
                    "TransactionEvent",
                    m,
                    lambda p: tx_id is None or tx_id_of(p) == tx_id,
                    STATUS_DELIVERY_S,
                    "TransactionEventRequest",
                )
            except Fail:
                raise Fail(
                    f"GetTransactionStatusResponse {answer}, {expected}: the station, online and quiet, "
                    f"delivered no message of the transaction within {ctx.scaled(STATUS_DELIVERY_S):g} s "
                    "after saying some were queued (E14)"
                ) from None
            ctx.event(
                f"attempt {attempt}: messagesInQueue true while a TransactionEvent was still on its way "
                "(the precondition did not hold yet); asking again once the station is quiet"
            )
        raise Inconclusive(
            f"the station kept sending TransactionEvents: its queue was never empty in {STATUS_ATTEMPTS} attempts"
        )

    return run


async def offline_stop(ctx: Ctx) -> None:
    """Transaction online; connection lost; card again while offline; back online: the queued Ended says
    offline=true, keeps seqNo and carries triggerReason StopAuthorized (E12, E.FR: offline)."""
    await start_local(ctx)
    tx_id = ctx.vars["tx"]
    async with ctx.offline():
        await ctx.quiet(1)
        await ctx.act("swipe")
        await ctx.quiet(2)
    m = ctx.at()
    await ctx.reconnected()
    ended = await ctx.wait_event("Ended", m, tx_id, 30)
    if ended.get("offline") is not True:
        raise Fail("the Ended event of a transaction stopped while offline does not say offline=true")
    if ended.get("triggerReason") != "StopAuthorized":
        raise Fail(
            f"TransactionEventRequest Ended triggerReason {ended.get('triggerReason')!r}, expected StopAuthorized"
        )


async def offline_during_transaction(ctx: Ctx) -> None:
    """TxUpdatedInterval 1; connection lost for 4 s during a transaction; back online: the Updated events made
    while offline say offline=true, the transaction goes on (seqNo without a gap) and ends normally (E.FR: offline)."""
    await ctx.set_variable("SampledDataCtrlr", "TxUpdatedInterval", "1")
    await start_local(ctx)
    tx_id = ctx.vars["tx"]
    async with ctx.offline():
        went = datetime.now(UTC)
        await ctx.quiet(4)
        back = datetime.now(UTC)
    m = ctx.at()
    await ctx.reconnected()
    await ctx.quiet(3)
    inside = [
        e
        for e in ctx.events_of(tx_id, m)
        if went + OFFLINE_SLACK <= parse_time(e.get("timestamp", "")) <= back - OFFLINE_SLACK
    ]
    if not inside:
        raise Fail("no TransactionEvent of the 4 s offline period was delivered after the reconnection")
    if any(e.get("offline") is not True for e in inside):
        raise Fail("a TransactionEvent that happened while offline was delivered without offline=true")
    if [e for e in ctx.events_of(tx_id, m) if e.get("eventType") == "Ended"]:
        raise Fail("the transaction ended because the connection was lost")
    await stop_local(ctx)


async def reconnect_after_loss(ctx: Ctx) -> None:
    """The CSMS side drops the connection: the station connects again by itself (network reconnection)."""
    with contextlib.suppress(KeyError, ConnectionError):
        await ctx.cs.disconnect(ctx.cp_id)
    ctx.event("connection dropped (not refused)")
    await ctx.reconnected(60)


case(
    "TC_B_57_CS",
    "Network Reconnection - After connection loss",
    PROVISIONING,
    ("dropped connection: the station reconnects", reconnect_after_loss),
    timeout_s=90,
)


def parse_time(text: str) -> datetime:
    """An OCPP timestamp (RFC 3339, ``Z`` allowed); far in the past when unreadable."""
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


case(
    "TC_E_03_CS",
    "Local start transaction - Cable plugin first - Success",
    TRANSACTIONS,
    ("plug, card: Started", start_local),
    needs=PLUG_SWIPE,
)
case(
    "TC_E_04_CS",
    "Local start transaction - Authorization first - Success",
    TRANSACTIONS,
    ("card, plug: Started", identification_first),
    needs=PLUG_SWIPE,
)
case(
    "TC_E_05_CS",
    "Local start transaction - Authorization first - Cable plugin timeout",
    TRANSACTIONS,
    variable(*EV_TIMEOUT, "3"),
    ("card, no cable", plug_timeout),
    needs=PLUG_SWIPE,
)
case(
    "TC_E_15_CS",
    "Stop transaction options - StopAuthorized - Local",
    TRANSACTIONS,
    ("plug, card: Started", start_local),
    ("card again: Ended StopAuthorized", stop_local),
    ("unplug: Available", unplug),
    needs=PLUG_SWIPE,
)
case(
    "TC_E_20_CS",
    "Stop transaction options - EVDisconnected - EV side (able to charge IEC 61851-1 EV)",
    TRANSACTIONS,
    ("plug, card: Started", start_local),
    ("unplug: Ended EVDisconnected", unplug_ends),
    needs=PLUG_SWIPE,
)
case(
    "TC_E_21_CS",
    "Stop transaction options - StopAuthorized - Remote",
    TRANSACTIONS,
    ("plug, card: Started", start_local),
    ("RequestStopTransaction: Ended RemoteStop", stop_remote),
    needs=PLUG_SWIPE,
)
case(
    "TC_E_28_CS",
    "Check Transaction status - TransactionId unknown",
    TRANSACTIONS,
    ("GetTransactionStatus of an unknown id", transaction_status(UNKNOWN_TX, False, False)),
)
case(
    "TC_E_30_CS",
    "Check Transaction status - Transaction with id ongoing - without message in queue",
    TRANSACTIONS,
    ("plug, card: Started", start_local),
    ("EnergyTransferStarted: chargingState Charging", energy_transfer_started),
    ("GetTransactionStatus: ongoing, nothing queued", transaction_status("tx", False, True)),
    needs=PLUG_SWIPE,
)
case(
    "TC_E_32_CS",
    "Check Transaction status - Transaction with id ended - without message in queue",
    TRANSACTIONS,
    ("plug, card: Started", start_local),
    ("card again: Ended", stop_local),
    ("GetTransactionStatus: ended, nothing queued", transaction_status("tx", False, False)),
    needs=PLUG_SWIPE,
)
case(
    "TC_E_34_CS",
    "Check Transaction status - Without transactionId - without message in queue",
    TRANSACTIONS,
    ("GetTransactionStatus without id", transaction_status(None, False, None)),
)
case(
    "TC_E_40_CS",
    "Offline Behaviour - Connection loss during transaction",
    TRANSACTIONS,
    ("connection lost during a transaction: offline events", offline_during_transaction),
    needs=PLUG_SWIPE,
    timeout_s=90,
)
case(
    "TC_E_44_CS",
    "Offline Behaviour - Stop transaction during offline period",
    TRANSACTIONS,
    ("start online, stop offline, Ended offline", offline_stop),
    needs=PLUG_SWIPE,
    timeout_s=90,
)


# ================================================================================================ F RemoteControl


async def remote_start_first(ctx: Ctx) -> None:
    """RequestStartTransaction before the cable: Accepted; plug in: Started (RemoteStart, remoteStartId)."""
    m = ctx.at()
    await start_remote(ctx)
    ctx.vars["remote_at"] = m
    await ctx.act("plug")
    await _remote_started(ctx, m)


def authorize_remote(expected: bool) -> StepFn:
    """After a remote start: an AuthorizeRequest for the token iff AuthorizeRemoteStart is true (F02, F03)."""

    async def run(ctx: Ctx) -> None:
        sent = [
            f
            for f in ctx.calls_since("Authorize", ctx.vars["remote_at"])
            if (f.payload.get("idToken") or {}).get("idToken") == REMOTE_TOKEN["idToken"]
        ]
        if expected and not sent:
            raise Fail(
                "AuthorizeRemoteStart is true but no AuthorizeRequest for the remote idToken (F02.FR.?)"
            )
        if not expected and sent:
            raise Fail("AuthorizeRemoteStart is false but the station sent AuthorizeRequest (F03.FR.?)")

    return run


async def remote_no_cable(ctx: Ctx) -> None:
    """RequestStartTransaction, no cable: after EVConnectionTimeOut no transaction (F04)."""
    m = ctx.at()
    await start_remote(ctx)
    await ctx.quiet(6)
    await no_transaction_since(ctx, m, "no cable was plugged in within EVConnectionTimeOut")


async def unlock_with_tx(ctx: Ctx) -> None:
    """UnlockConnector during a transaction: OngoingAuthorizedTransaction, the transaction runs on (F05.FR.02)."""
    await start_local(ctx)
    m = ctx.at()
    await ctx.expect_answer(
        "UnlockConnector",
        {"evseId": ctx.setup.connector, "connectorId": 1},
        "status",
        "OngoingAuthorizedTransaction",
    )
    await ctx.quiet(1)
    if [e for e in ctx.events_of(ctx.vars["tx"], m) if e["eventType"] == "Ended"]:
        raise Fail("the transaction ended although UnlockConnector was answered OngoingAuthorizedTransaction")


def trigger(
    requested: str, with_evse: bool, follow: str, where: Callable[[Ctx, Any], bool] | None = None
) -> StepFn:
    """TriggerMessage ``requested`` (for the EVSE under test if ``with_evse``): Accepted, then ``follow``."""

    async def run(ctx: Ctx) -> None:
        m = ctx.at()
        payload: dict[str, Any] = {"requestedMessage": requested}
        if with_evse:
            payload["evse"] = evse(ctx, connector=requested == "StatusNotification")
        await ctx.expect_answer("TriggerMessage", payload, "status", "Accepted")
        await ctx.wait_call(
            follow,
            m,
            (lambda p: where(ctx, p)) if where else None,
            10,
            f"{follow}Request after TriggerMessage",
        )

    return run


def status_is(status: str) -> Callable[[Ctx, Any], bool]:
    """A StatusNotification filter: the EVSE under test in ``status``."""
    return lambda ctx, p: ctx.is_status_of(p, ctx.setup.connector) and p.get("connectorStatus") == status


case(
    "TC_F_01_CS",
    "Remote start transaction - Cable plugin first",
    REMOTE,
    ("plug", plug),
    ("RequestStartTransaction: Started RemoteStart", start_remote),
    needs=PLUG,
)
case(
    "TC_F_02_CS",
    "Remote start transaction - Remote start first - AuthorizeRemoteStart is true",
    REMOTE,
    variable(*AUTH_REMOTE, "true"),
    ("RequestStartTransaction, plug: Started", remote_start_first),
    ("AuthorizeRequest for the remote idToken", authorize_remote(True)),
    needs=PLUG,
)
case(
    "TC_F_03_CS",
    "Remote start transaction - Remote start first - AuthorizeRemoteStart is false",
    REMOTE,
    variable(*AUTH_REMOTE, "false"),
    ("RequestStartTransaction, plug: Started", remote_start_first),
    ("no AuthorizeRequest", authorize_remote(False)),
    needs=PLUG,
)
case(
    "TC_F_04_CS",
    "Remote start transaction - Remote start first - Cable plugin timeout",
    REMOTE,
    variable(*EV_TIMEOUT, "3"),
    ("RequestStartTransaction, no cable", remote_no_cable),
)
case(
    "TC_F_05_CS",
    "Remote unlock Connector - With ongoing transaction",
    REMOTE,
    ("UnlockConnector during a transaction", unlock_with_tx),
    needs=PLUG_SWIPE,
)
case(
    "TC_F_06_CS",
    "Remote unlock Connector - Without ongoing transaction - Accepted",
    REMOTE,
    answer(
        "UnlockConnector", lambda ctx: {"evseId": ctx.setup.connector, "connectorId": 1}, "status", "Unlocked"
    ),
)
case(
    "TC_F_08_CS",
    "Remote stop transaction - Success",
    REMOTE,
    ("plug", plug),
    ("RequestStartTransaction: Started", start_remote),
    ("RequestStopTransaction: Ended RemoteStop", stop_remote),
    needs=PLUG,
)
case(
    "TC_F_09_CS",
    "Remote stop transaction - Rejected",
    REMOTE,
    answer("RequestStopTransaction", {"transactionId": UNKNOWN_TX}, "status", "Rejected"),
)
case(
    "TC_F_10_CS",
    "Remote unlock Connector - Without ongoing transaction - UnknownConnector",
    REMOTE,
    answer("UnlockConnector", {"evseId": 99, "connectorId": 1}, "status", "UnknownConnector"),
)
case(
    "TC_F_11_CS",
    "Trigger message - MeterValues - Specific EVSE",
    REMOTE,
    (
        "TriggerMessage MeterValues for the EVSE",
        trigger("MeterValues", True, "MeterValues", lambda ctx, p: p.get("evseId") == ctx.setup.connector),
    ),
)
case(
    "TC_F_12_CS",
    "Trigger message - MeterValues - All EVSE",
    REMOTE,
    ("TriggerMessage MeterValues", trigger("MeterValues", False, "MeterValues")),
)
case(
    "TC_F_20_CS",
    "Trigger message - Heartbeat",
    REMOTE,
    ("TriggerMessage Heartbeat", trigger("Heartbeat", False, "Heartbeat")),
)
case(
    "TC_F_23_CS",
    "Trigger message - StatusNotification - Specific EVSE - Available",
    REMOTE,
    (
        "TriggerMessage StatusNotification",
        trigger("StatusNotification", True, "StatusNotification", status_is("Available")),
    ),
)
case(
    "TC_F_24_CS",
    "Trigger message - StatusNotification - Specific EVSE - Occupied",
    REMOTE,
    ("plug", plug),
    (
        "TriggerMessage StatusNotification",
        trigger("StatusNotification", True, "StatusNotification", status_is("Occupied")),
    ),
    needs=PLUG,
)
case(
    "TC_F_26_CS",
    "Trigger message - BootNotification - Rejected",
    REMOTE,
    answer("TriggerMessage", {"requestedMessage": "BootNotification"}, "status", "Rejected"),
)
case(
    "TC_F_27_CS",
    "Trigger message - NotImplemented",
    REMOTE,
    # ISO 15118 certificate signing: a station without 15118 has nothing to sign.
    answer("TriggerMessage", {"requestedMessage": "SignV2GCertificate"}, "status", "NotImplemented"),
)


# ================================================================================================ G Availability

SCOPES: dict[
    str, Callable[[Ctx], dict[str, int] | None]
] = {  # what ChangeAvailability addresses: the whole station, the EVSE, or its connector
    "Charging Station": lambda ctx: None,
    "EVSE": lambda ctx: evse(ctx),
    "Connector": lambda ctx: evse(ctx, connector=True),
}


def change_availability(scope: str, status: str, expected: str = "Accepted") -> StepFn:
    """ChangeAvailability of ``scope`` to ``status``; the answer must be ``expected``."""

    async def run(ctx: Ctx) -> None:
        payload: dict[str, Any] = {"operationalStatus": status}
        target = SCOPES[scope](ctx)
        if target is not None:
            payload["evse"] = target
        await ctx.expect_answer("ChangeAvailability", payload, "status", expected)
        if status == "Inoperative":
            ctx.vars["inoperative"] = scope

    return run


async def back_operative(ctx: Ctx) -> None:
    """Cleanup: make what a case set Inoperative Operative again."""
    scope = ctx.vars.get("inoperative")
    if scope is not None:
        payload: dict[str, Any] = {"operationalStatus": "Operative"}
        if (target := SCOPES[scope](ctx)) is not None:
            payload["evse"] = target
        await ctx.cs.call(ctx.cp_id, "ChangeAvailability", payload, timeout=5)


def becomes(status: str, since: str = "case") -> StepFn:
    """A StatusNotification of ``status`` for the EVSE under test (since the case or the last step began)."""

    async def run(ctx: Ctx) -> None:
        await ctx.wait_status(status, ctx.vars.get("step_mark", ctx.mark) if since == "step" else ctx.mark)

    return run


async def mark_now(ctx: Ctx) -> None:
    """Note the log position (``becomes(..., 'step')`` waits for frames after it)."""
    ctx.vars["step_mark"] = ctx.at()


def unchanged(status: str) -> StepFn:
    """No StatusNotification of the EVSE other than ``status`` for 2 s (an availability already in place)."""

    async def run(ctx: Ctx) -> None:
        m = ctx.at()
        await ctx.quiet(2)
        sent = [
            f.payload.get("connectorStatus")
            for f in ctx.calls_since("StatusNotification", m)
            if ctx.is_status_of(f.payload, ctx.setup.connector)
        ]
        if any(s != status for s in sent):
            raise Fail(f"the station reported {sent} although the availability did not change")

    return run


def persists_reboot(scope: str) -> StepFn:
    """Inoperative, then Reset: after the reboot the first status of the EVSE is Unavailable (G03-G05.FR.?:
    the availability is persistent)."""

    async def run(ctx: Ctx) -> None:
        await change_availability(scope, "Inoperative")(ctx)
        await ctx.wait_status("Unavailable", ctx.mark)
        m = ctx.at()
        await ctx.expect_answer("Reset", {"type": "OnIdle"}, "status", "Accepted")
        boot = await ctx.wait_call("BootNotification", m, timeout_s=40, what="BootNotificationRequest")
        first = await ctx.wait_call(
            "StatusNotification",
            ctx.index_of(boot),
            lambda p: ctx.is_status_of(p, ctx.setup.connector),
            15,
            "StatusNotificationRequest after the reboot",
        )
        if first.payload.get("connectorStatus") != "Unavailable":
            raise Fail(
                f"after the reboot the EVSE reported {first.payload.get('connectorStatus')}: the Inoperative "
                f"{scope} did not persist"
            )

    return run


def availability_with_tx(scope: str) -> StepFn:
    """Inoperative during a transaction: Scheduled; the transaction runs on; after it ends: Unavailable (G03-G05)."""

    async def run(ctx: Ctx) -> None:
        await start_local(ctx)
        await change_availability(scope, "Inoperative", "Scheduled")(ctx)
        m = ctx.at()
        await ctx.quiet(1)
        if [e for e in ctx.events_of(ctx.vars["tx"], m) if e["eventType"] == "Ended"]:
            raise Fail("the transaction ended although ChangeAvailability was answered Scheduled")
        await stop_local(ctx)
        await ctx.wait_status("Unavailable", m, 15)

    return run


def availability_case(
    id: str, scope: str, title: str, *steps: tuple[str, StepFn], needs: frozenset[str] = frozenset()
) -> None:
    """An availability case with a cleanup that makes the scope Operative again."""
    case(id, f"Change Availability {scope} - {title}", AVAILABILITY, *steps, needs=needs)
    CASES[-1] = Case(
        CASES[-1].id,
        CASES[-1].title,
        CASES[-1].block,
        CASES[-1].steps,
        CASES[-1].needs,
        CASES[-1].timeout_s,
        # Operative first: an Unavailable EVSE would not report Available to the idle check.
        cleanup=(Step[Ctx]("Operative again", back_operative), Step[Ctx]("back to idle", to_idle)),
    )


case(
    "TC_G_01_CS",
    "Connector status Notification - Available to Occupied",
    AVAILABILITY,
    ("plug: Occupied", plug),
    needs=PLUG,
)
case(
    "TC_G_02_CS",
    "Connector status Notification - Occupied to Available",
    AVAILABILITY,
    ("plug: Occupied", plug),
    ("unplug: Available", unplug),
    needs=PLUG,
)
# OCTT ids by scope: operative->inoperative, inoperative->operative, operative->operative,
# inoperative->inoperative, with a transaction, persisting a reboot.
_G_NUMBERS = {
    "EVSE": (3, 4, 9, 10, 11, 18),
    "Charging Station": (5, 6, 12, 13, 14, 21),
    "Connector": (7, 8, 15, 16, 17, 19),
}
for _scope, (_inop, _op, _same, _both_inop, _tx, _reboot) in _G_NUMBERS.items():
    availability_case(
        f"TC_G_{_inop:02d}_CS",
        _scope,
        "Operative to inoperative",
        ("Inoperative: Accepted", change_availability(_scope, "Inoperative")),
        ("Unavailable", becomes("Unavailable")),
    )
    availability_case(
        f"TC_G_{_op:02d}_CS",
        _scope,
        "Inoperative to operative",
        ("Inoperative: Accepted", change_availability(_scope, "Inoperative")),
        ("Unavailable", becomes("Unavailable")),
        ("mark", mark_now),
        ("Operative: Accepted", change_availability(_scope, "Operative")),
        ("Available", becomes("Available", "step")),
    )
    availability_case(
        f"TC_G_{_same:02d}_CS",
        _scope,
        "Operative to operative",
        ("Operative: Accepted", change_availability(_scope, "Operative")),
        ("no status change", unchanged("Available")),
    )
    availability_case(
        f"TC_G_{_both_inop:02d}_CS",
        _scope,
        "Inoperative to inoperative",
        ("Inoperative: Accepted", change_availability(_scope, "Inoperative")),
        ("Unavailable", becomes("Unavailable")),
        ("Inoperative again: Accepted", change_availability(_scope, "Inoperative")),
        ("no status change", unchanged("Unavailable")),
    )
    availability_case(
        f"TC_G_{_reboot:02d}_CS",
        _scope,
        "state persists across reboot",
        ("Inoperative, Reset: Unavailable after the reboot", persists_reboot(_scope)),
    )
    availability_case(
        f"TC_G_{_tx:02d}_CS",
        _scope,
        "With ongoing transaction",
        ("Inoperative during a transaction: Scheduled", availability_with_tx(_scope)),
        needs=PLUG_SWIPE,
    )

# ================================================================================================ J MeterValues


def sampled_value_context(values: list[dict[str, Any]], context: str) -> bool:
    """Whether some sampledValue of ``values`` (MeterValueType list) has ``context``."""
    return any(
        s.get("context", "Sample.Periodic") == context for mv in values for s in mv.get("sampledValue", [])
    )


async def clock_aligned_idle(ctx: Ctx) -> None:
    """AlignedDataCtrlr.Interval 5: MeterValues with Sample.Clock values without a transaction (J01)."""
    await ctx.set_variable("AlignedDataCtrlr", "Interval", "5")
    m = ctx.at()
    await ctx.wait_call(
        "MeterValues",
        m,
        lambda p: sampled_value_context(p.get("meterValue", []), "Sample.Clock"),
        15,
        "MeterValuesRequest with Sample.Clock values",
    )


async def clock_aligned_tx(ctx: Ctx) -> None:
    """During a transaction: TransactionEvent Updated, triggerReason MeterValueClock, Sample.Clock values (J02)."""
    await start_local(ctx)
    await ctx.set_variable("AlignedDataCtrlr", "Interval", "5")
    m = ctx.at()
    updated = await ctx.wait_call(
        "TransactionEvent",
        m,
        lambda p: (
            p.get("eventType") == "Updated" and sampled_value_context(p.get("meterValue", []), "Sample.Clock")
        ),
        15,
        "TransactionEventRequest Updated with Sample.Clock values",
    )
    check_event(ctx, updated.payload, "clock-aligned value", trigger=("MeterValueClock",))


async def sampled_started(ctx: Ctx) -> None:
    """The Started event carries the meter at the start (Transaction.Begin) (J02.FR.?)."""
    await start_local(ctx)
    started = ctx.vars["started"]
    if not sampled_value_context(started.get("meterValue", []), "Transaction.Begin"):
        raise Fail("TransactionEventRequest Started has no meterValue with context Transaction.Begin")


async def sampled_updated(ctx: Ctx) -> None:
    """SampledDataCtrlr.TxUpdatedInterval 2: Updated events, triggerReason MeterValuePeriodic, Sample.Periodic."""
    await ctx.set_variable("SampledDataCtrlr", "TxUpdatedInterval", "2")
    await start_local(ctx)
    m = ctx.at()
    updated = await ctx.wait_call(
        "TransactionEvent",
        m,
        lambda p: (
            p.get("eventType") == "Updated"
            and sampled_value_context(p.get("meterValue", []), "Sample.Periodic")
        ),
        15,
        "TransactionEventRequest Updated with Sample.Periodic values",
    )
    check_event(ctx, updated.payload, "sampled value", trigger=("MeterValuePeriodic",))


async def sampled_ended(ctx: Ctx) -> None:
    """The Ended event carries the meter at the end (Transaction.End)."""
    await start_local(ctx)
    await stop_local(ctx)
    if not sampled_value_context(ctx.vars["ended"].get("meterValue", []), "Transaction.End"):
        raise Fail("TransactionEventRequest Ended has no meterValue with context Transaction.End")


case(
    "TC_J_01_CS",
    "Clock-aligned Meter Values - No transaction ongoing",
    METER,
    ("AlignedDataCtrlr.Interval 5: MeterValues Sample.Clock", clock_aligned_idle),
)
case(
    "TC_J_02_CS",
    "Clock-aligned Meter Values - Transaction ongoing",
    METER,
    ("transaction, then Updated MeterValueClock", clock_aligned_tx),
    needs=PLUG_SWIPE,
)
case(
    "TC_J_07_CS",
    "Sampled Meter Values - EventType Started - EVSE known",
    METER,
    ("Started with Transaction.Begin", sampled_started),
    needs=PLUG_SWIPE,
)
case(
    "TC_J_09_CS",
    "Sampled Meter Values - EventType Updated",
    METER,
    ("Updated MeterValuePeriodic", sampled_updated),
    needs=PLUG_SWIPE,
)
case(
    "TC_J_10_CS",
    "Sampled Meter Values - EventType Ended",
    METER,
    ("Ended with Transaction.End", sampled_ended),
    needs=PLUG_SWIPE,
)


# ================================================================================================ P DataTransfer

case(
    "TC_P_01_CS",
    "Data Transfer to the Charging Station - Rejected / Unknown VendorId / Unknown MessageId",
    DATA,
    answer(
        "DataTransfer",
        {"vendorId": "org.conformance.unknown", "messageId": "Probe"},
        "status",
        "UnknownVendorId",
        "UnknownMessageId",
        "Rejected",
    ),
)

CASES.sort(key=lambda c: (c.block, c.id))  # by functional block, then id (the G cases are made in a loop)
