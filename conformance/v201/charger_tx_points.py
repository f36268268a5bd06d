"""OCPP 2.0.1 charging-station cases for where a transaction starts and stops (TxCtrlr.TxStartPoint and
TxStopPoint, Part 2 §E01-E03, E06: TC_E_NN_CS "Start/Stop transaction options") and for GetReport (B08,
TC_B_NN_CS "Get Custom Report").

A start point decides which event opens the transaction: the Started event's triggerReason must be the one that
point names (CablePluggedIn for EVConnected, Authorized for Authorized), nothing may start before it, and what
comes later (the card, the cable) is an Updated event of the same transaction. A case that needs a point the
station refuses (SetVariables not Accepted) is not applicable.
"""

from __future__ import annotations

import itertools
from typing import Any

from conformance.model import Case, Fail, NotApplicable, Step
from conformance.v201.charger import tx_id_of
from conformance.v201.charger_cases import (
    PLUG_SWIPE,
    Ctx,
    StepFn,
    check_event,
    check_frames,
    evse,
    plug,
    start_local,
    stop_local,
    to_idle,
)

__all__ = ["CASES"]

TRANSACTIONS, PROVISIONING, REMOTE = "E Transactions", "B Provisioning", "F RemoteControl"
CASES: list[Case[Ctx]] = []
_ids = itertools.count(5101)  # requestIds of the runner's GetReport


def add(
    id: str, title: str, block: str, *steps: tuple[str, StepFn], needs: frozenset[str] = frozenset()
) -> None:
    """A case: its steps, the frame check, then back to idle (settings are set back by the runner)."""
    all_steps = (*steps, ("only valid frames, allowed status transitions, whole transactions", check_frames))
    CASES.append(
        Case(
            id,
            title,
            block,
            tuple(Step[Ctx](t, f) for t, f in all_steps),
            needs,
            cleanup=(Step[Ctx]("back to idle", to_idle),),
        )
    )


def point(name: str, value: str) -> tuple[str, StepFn]:
    """A step: TxCtrlr.``name`` = ``value`` (set back after the case); not applicable if the station refuses it."""

    async def run(ctx: Ctx) -> None:
        old = await ctx.get_variable("TxCtrlr", name)
        if old is None:
            raise NotApplicable(f"the station has no TxCtrlr.{name}")
        data = {"component": {"name": "TxCtrlr"}, "variable": {"name": name}, "attributeValue": value}
        answer = await ctx.call("SetVariables", {"setVariableData": [data]})
        status = (answer.get("setVariableResult") or [{}])[0].get("attributeStatus")
        if status == "Rejected" or status == "NotSupportedAttributeType":
            raise NotApplicable(f"the station does not take TxCtrlr.{name}={value} ({status})")
        if status != "Accepted":
            raise Fail(f"SetVariablesResponse attributeStatus {status!r} for TxCtrlr.{name}={value}")
        ctx.restore.setdefault(f"TxCtrlr/{name}", old)

    return (f"TxCtrlr.{name} = {value}", run)


async def started_by(ctx: Ctx, after: int, trigger: str, token: str | None) -> dict[str, Any]:
    """The Started event since ``after``: its triggerReason ``trigger`` and idToken ``token`` (None: none)."""
    started = await ctx.wait_event("Started", after)
    check_event(ctx, started, f"start point ({trigger})", trigger=(trigger,))
    got = (started.get("idToken") or {}).get("idToken")
    if got != token:
        raise Fail(f"TransactionEventRequest Started idToken {got!r}, expected {token!r}")
    ctx.vars["tx"] = tx_id_of(started)
    return started


async def updated_by(ctx: Ctx, after: int, trigger: str) -> dict[str, Any]:
    """An Updated event of the running transaction since ``after`` with triggerReason ``trigger``."""
    frame = await ctx.wait_call(
        "TransactionEvent",
        after,
        lambda p: (
            p.get("eventType") == "Updated"
            and tx_id_of(p) == ctx.vars["tx"]
            and p.get("triggerReason") == trigger
        ),
        15,
        f"TransactionEventRequest Updated triggerReason {trigger} of transaction {ctx.vars['tx']}",
    )
    payload: dict[str, Any] = frame.payload
    return payload


async def start_on_cable(ctx: Ctx) -> None:
    """EVConnected: the cable opens the transaction (Started, CablePluggedIn, no idToken); the card then is an
    Updated event (Authorized, with the idToken) of the same transaction (E02)."""
    m = ctx.at()
    await plug(ctx)
    await started_by(ctx, m, "CablePluggedIn", None)
    m = ctx.at()
    await ctx.act("swipe")
    updated = await updated_by(ctx, m, "Authorized")
    if (updated.get("idToken") or {}).get("idToken") != ctx.setup.id_tag:
        raise Fail(
            f"TransactionEventRequest Updated Authorized idToken {updated.get('idToken')}, expected the card"
        )


async def start_on_card(ctx: Ctx) -> None:
    """Authorized: the card opens the transaction before any cable (Started, Authorized, the idToken); the cable
    then is an Updated event (CablePluggedIn) of the same transaction (E03)."""
    m = ctx.at()
    await ctx.act("swipe")
    await started_by(ctx, m, "Authorized", ctx.setup.id_tag)
    m = ctx.at()
    # No status is awaited: with a transaction running the connector may already report Occupied (G01).
    await ctx.act("plug")
    await updated_by(ctx, m, "CablePluggedIn")


async def start_on_power_path(ctx: Ctx) -> None:
    """PowerPathClosed: the cable alone starts nothing; the card then opens the transaction (E01)."""
    m = ctx.at()
    await plug(ctx)
    await ctx.quiet(2)
    if [f for f in ctx.calls_since("TransactionEvent", m) if f.payload.get("eventType") == "Started"]:
        raise Fail("a transaction started on the cable alone with TxStartPoint PowerPathClosed")
    await ctx.act("swipe")
    await started_by(ctx, m, "Authorized", ctx.setup.id_tag)


async def stop_on_unplug(ctx: Ctx) -> None:
    """TxStopPoint EVConnected: pulling the cable ends the transaction (Ended, EVCommunicationLost,
    stoppedReason EVDisconnected) (E06)."""
    await start_local(ctx)
    m = ctx.at()
    await ctx.act("unplug")
    ended = await ctx.wait_event("Ended", m, ctx.vars["tx"])
    check_event(ctx, ended, "stop on unplug", trigger=("EVCommunicationLost",))
    reason = (ended.get("transactionInfo") or {}).get("stoppedReason")
    if reason != "EVDisconnected":
        raise Fail(f"TransactionEventRequest Ended stoppedReason {reason!r}, expected EVDisconnected")


add(
    "TC_E_01_CS",
    "Start transaction options - PowerPathClosed",
    TRANSACTIONS,
    point("TxStartPoint", "PowerPathClosed"),
    ("cable: nothing; card: Started", start_on_power_path),
    ("the card again: Ended", stop_local),
    needs=PLUG_SWIPE,
)
add(
    "TC_E_09_CS",
    "Start transaction options - EVConnected",
    TRANSACTIONS,
    point("TxStartPoint", "EVConnected"),
    ("cable: Started; card: Updated", start_on_cable),
    ("the card again: Ended", stop_local),
    needs=PLUG_SWIPE,
)
add(
    "TC_E_10_CS",
    "Start transaction options - Authorized - Local",
    TRANSACTIONS,
    point("TxStartPoint", "Authorized"),
    ("card: Started; cable: Updated", start_on_card),
    ("the card again: Ended", stop_local),
    needs=PLUG_SWIPE,
)
add(
    "TC_E_14_CS",
    "Stop transaction options - EVDisconnected - Charging Station side",
    TRANSACTIONS,
    point("TxStopPoint", "EVConnected"),
    ("transaction, unplug: Ended EVDisconnected", stop_on_unplug),
    needs=PLUG_SWIPE,
)


def triggered_event(with_evse: bool) -> StepFn:
    """During a transaction, TriggerMessage TransactionEvent (for the EVSE, or all): Accepted; an Updated event of
    the running transaction with triggerReason Trigger, its seqNo next in line (the frame check judges it) (F06)."""

    async def run(ctx: Ctx) -> None:
        await start_local(ctx)
        m = ctx.at()
        payload: dict[str, Any] = {"requestedMessage": "TransactionEvent"}
        if with_evse:
            payload["evse"] = evse(ctx)
        await ctx.expect_answer("TriggerMessage", payload, "status", "Accepted")
        await updated_by(ctx, m, "Trigger")

    return run


add(
    "TC_F_13_CS",
    "Trigger message - TransactionEvent - Specific EVSE",
    REMOTE,
    ("transaction, TriggerMessage TransactionEvent of the EVSE: Updated Trigger", triggered_event(True)),
    needs=PLUG_SWIPE,
)
add(
    "TC_F_14_CS",
    "Trigger message - TransactionEvent - All EVSE",
    REMOTE,
    ("transaction, TriggerMessage TransactionEvent: Updated Trigger", triggered_event(False)),
    needs=PLUG_SWIPE,
)


# ================================================================================================ B08 GetReport


async def custom_report(ctx: Ctx, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """GetReport: its status, and (Accepted) the reportData of its NotifyReport parts (seqNo from 0, tbc)."""
    request_id = next(_ids)
    m = ctx.at()
    answer = await ctx.expect_answer(
        "GetReport", {"requestId": request_id, **body}, "status", "Accepted", "EmptyResultSet", "NotSupported"
    )
    if answer["status"] != "Accepted":
        await ctx.quiet(1)
        if any(f.payload.get("requestId") == request_id for f in ctx.calls_since("NotifyReport", m)):
            raise Fail(f"sent NotifyReportRequest after answering GetReport {answer['status']}")
        return answer["status"], []
    items: list[dict[str, Any]] = []
    after, seq = m, 0
    while True:
        frame = await ctx.wait_call(
            "NotifyReport",
            after,
            lambda p: p.get("requestId") == request_id,
            20,
            f"NotifyReportRequest {seq}",
        )
        if frame.payload.get("seqNo") != seq:
            raise Fail(f"NotifyReportRequest seqNo {frame.payload.get('seqNo')}, expected {seq}")
        items += frame.payload.get("reportData", [])
        after, seq = ctx.index_of(frame) + 1, seq + 1
        if not frame.payload.get("tbc", False):
            return "Accepted", items


async def report_one_variable(ctx: Ctx) -> None:
    """GetReport of OCPPCommCtrlr.HeartbeatInterval: Accepted; the report holds that variable and no other (B08)."""
    status, items = await custom_report(
        ctx,
        {
            "componentVariable": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
            ]
        },
    )
    if status != "Accepted":
        raise Fail(f"GetReportResponse {status} for OCPPCommCtrlr.HeartbeatInterval, which the station has")
    names = {(i["component"]["name"], i["variable"]["name"]) for i in items}
    if names != {("OCPPCommCtrlr", "HeartbeatInterval")}:
        raise Fail(f"GetReport of one variable reported {sorted(names)[:5]}")


async def report_unknown_component(ctx: Ctx) -> None:
    """GetReport of a component the station does not have: EmptyResultSet and no report (B08.FR.?)."""
    status, _ = await custom_report(
        ctx, {"componentVariable": [{"component": {"name": "ConformanceNoSuchComponent"}}]}
    )
    if status != "EmptyResultSet":
        raise Fail(f"GetReportResponse {status} for an unknown component, expected EmptyResultSet")


add(
    "TC_B_17_CS",
    "Get Custom Report - with component/variable",
    PROVISIONING,
    ("GetReport of HeartbeatInterval: only it", report_one_variable),
)
add(
    "TC_B_19_CS",
    "Get Custom Report - for unknown component criteria",
    PROVISIONING,
    ("GetReport of an unknown component: EmptyResultSet", report_unknown_component),
)
