"""What a simulated OCPP 2.0.1 charging station sends, as small functions of the CSMS runner's context.

The transport (connections, schema checks of every answer, triggers) is the version-neutral `CsmsContext`; this
module knows the 2.0.1 message shapes (OCPP 2.0.1 Part 2) and the business rules the judges apply to the answers.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conformance.csms_runner import CsmsContext, RawCharger, check_status, ocpp_time
from conformance.csms_steps import random_tag
from conformance.model import Fail

__all__ = [
    "EXPECTED_STATUS",
    "Tx",
    "authorize",
    "boot",
    "connect_and_boot",
    "current_tx",
    "heartbeat",
    "id_token",
    "meter_value",
    "status",
    "token_of",
    "tx_event",
]

STATION = {"model": "Virtual-2.0.1", "vendorName": "OpenChargeConf", "firmwareVersion": "1.0"}
# The idTokenInfo status a correct CSMS gives each kind of token (OCPP 2.0.1 C01, AuthorizationStatusEnumType).
EXPECTED_STATUS: dict[str, tuple[str, ...]] = {
    "accepted": ("Accepted",),
    "blocked": ("Blocked",),
    "expired": ("Expired",),
    "invalid": ("Invalid", "Unknown"),
    "random": ("Invalid", "Unknown"),
}


@dataclass
class Tx:
    """One transaction of the simulated station: its own id (a string, max 36) and the next seqNo."""

    id: str
    evse: int = 1
    seq: int = 0

    @classmethod
    def new(cls, evse: int = 1) -> Tx:
        """A transaction with a fresh id and seqNo 0 (OCPP 2.0.1 E53: seqNo starts at 0 per transaction)."""
        return cls("CONF-" + secrets.token_hex(12), evse)

    def next_seq(self) -> int:
        """The seqNo of the next TransactionEvent: 0, 1, 2, ... without gaps."""
        self.seq += 1
        return self.seq - 1


def id_token(value: str, kind: str = "ISO14443") -> dict[str, str]:
    """An IdTokenType."""
    return {"idToken": value, "type": kind}


def token_of(ctx: CsmsContext, kind: str) -> str:
    """The idToken the setup gave for ``kind``, or a random unknown one for ``random`` (the same within a case)."""
    if kind == "random":
        return str(ctx.vars.setdefault("random_token", random_tag()))
    return ctx.tag(kind)


async def boot(
    ctx: CsmsContext, conn: RawCharger | None = None, *, expect: str = "Accepted", reason: str = "PowerUp"
) -> dict[str, Any]:
    """BootNotification (B01): status ``expect``, currentTime near ours, an Accepted interval above 0."""
    answer = await ctx.call("BootNotification", {"reason": reason, "chargingStation": STATION}, conn)
    if answer["status"] != expect:
        raise Fail(
            f"BootNotificationResponse status {answer['status']}, expected {expect} (OCPP 2.0.1 B01-B03)"
        )
    ctx.check_current_time(answer["currentTime"], "BootNotificationResponse", "OCPP 2.0.1 B01.FR.02")
    if expect == "Accepted":
        if answer["interval"] <= 0:
            raise Fail(f"an Accepted BootNotificationResponse has interval {answer['interval']} (B01.FR.04)")
        ctx.heartbeat_interval_s = int(answer["interval"])
    return answer


async def status(
    ctx: CsmsContext,
    connector_status: str,
    evse: int = 1,
    connector: int = 1,
    conn: RawCharger | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """StatusNotification (G01); the answer is an empty object. ``extra`` adds fields (customData)."""
    payload = {
        "timestamp": ocpp_time(),
        "connectorStatus": connector_status,
        "evseId": evse,
        "connectorId": connector,
    }
    await ctx.call("StatusNotification", {**payload, **(extra or {})}, conn)


async def connect_and_boot(ctx: CsmsContext, which: str = "main") -> RawCharger:
    """Connect, boot Accepted and report EVSE 1 connector 1 Available."""
    conn = await ctx.open(which)
    await boot(ctx, conn)
    await status(ctx, "Available", conn=conn)
    return conn


async def heartbeat(ctx: CsmsContext) -> None:
    """Heartbeat (G02); currentTime near ours; optionally wait one interval and beat again (B01.FR.04)."""
    answer = await ctx.call("Heartbeat", {})
    ctx.check_current_time(answer["currentTime"], "HeartbeatResponse", "OCPP 2.0.1 G02")
    interval = ctx.heartbeat_interval_s
    if 0 < interval <= ctx.setup.heartbeat_wait_max_s:
        await ctx.expect_idle(interval)
        await ctx.call("Heartbeat", {})


def judge_token(info: dict[str, Any] | None, kind: str, token: str, what: str) -> str:
    """Fail unless idTokenInfo is present and its status is what a ``kind`` token deserves; returns the status."""
    if info is None:
        raise Fail(
            f"{what} has no idTokenInfo for idToken {token} (OCPP 2.0.1 Part 2 TransactionEventResponse: required when the request has an idToken)"
        )
    got = str(info["status"])
    if got == "Accepted" and kind != "accepted":
        raise Fail(f"{what}: the {kind} idToken {token} was Accepted (OCPP 2.0.1 C01.FR.02: it must not be)")
    check_status(
        got, EXPECTED_STATUS[kind], f"{what} idTokenInfo of the {kind} idToken {token}", "OCPP 2.0.1 C01"
    )
    return got


async def authorize(ctx: CsmsContext, kind: str, conn: RawCharger | None = None) -> str:
    """Authorize (C01) a ``kind`` token; the status must fit the kind."""
    token = token_of(ctx, kind)
    answer = await ctx.call("Authorize", {"idToken": id_token(token)}, conn)
    return judge_token(answer.get("idTokenInfo"), kind, token, "AuthorizeResponse")


def meter_value(
    wh: float, context: str, when: datetime | None = None, signed: bool = False
) -> dict[str, Any]:
    """A MeterValueType with one energy register sample in Wh (J01/J02)."""
    sample: dict[str, Any] = {
        "value": wh,
        "context": context,
        "measurand": "Energy.Active.Import.Register",
        "unitOfMeasure": {"unit": "Wh"},
    }
    if signed:
        sample["signedMeterValue"] = {
            "signedMeterData": "c2lnbmVkLWRhdGE=",
            "signingMethod": "ECDSA-secp256r1-SHA256",
            "encodingMethod": "OCMF",
            "publicKey": "cHVibGljLWtleQ==",
        }
    return {"timestamp": ocpp_time(when), "sampledValue": [sample]}


def current_tx(ctx: CsmsContext) -> Tx:
    """The case's transaction (made by its first TransactionEvent)."""
    tx = ctx.vars.get("tx201")
    if not isinstance(tx, Tx):
        tx = ctx.vars["tx201"] = Tx.new()
    return tx


async def tx_event(
    ctx: CsmsContext,
    event_type: str,
    trigger: str,
    *,
    state: str | None = None,
    token_kind: str | None = None,
    token_type: str = "ISO14443",
    meter: tuple[float, str] | None = None,
    stopped: str | None = None,
    remote_start_id: int | None = None,
    with_evse: bool = True,
    offline: bool = False,
    when: datetime | None = None,
    signed: bool = False,
    extra: dict[str, Any] | None = None,
    conn: RawCharger | None = None,
    tx: Tx | None = None,
) -> dict[str, Any]:
    """TransactionEvent (E01-E15) of the case's transaction; an idToken in it must be judged right in the answer.

    ``extra`` adds top-level fields (reservationId, customData). The payload sent last is kept in
    ``ctx.vars["last_tx_event"]`` (for retransmission checks).
    """
    tx = tx or current_tx(ctx)
    info: dict[str, Any] = {"transactionId": tx.id}
    if state is not None:
        info["chargingState"] = state
    if stopped is not None:
        info["stoppedReason"] = stopped
    if remote_start_id is not None:
        info["remoteStartId"] = remote_start_id
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": ocpp_time(when),
        "triggerReason": trigger,
        "seqNo": tx.next_seq(),
        "transactionInfo": info,
    }
    if offline:
        payload["offline"] = True
    if with_evse:
        payload["evse"] = {"id": tx.evse, "connectorId": 1}
    token = token_of(ctx, token_kind) if token_kind else None
    if token is not None:
        payload["idToken"] = id_token(token, token_type)
    if meter is not None:
        payload["meterValue"] = [meter_value(meter[0], meter[1], when, signed)]
    payload.update(extra or {})
    ctx.vars["last_tx_event"] = payload
    answer = await ctx.call("TransactionEvent", payload, conn)
    ctx.vars["last_tx_answer"] = answer
    if token is not None and token_kind is not None:
        judge_token(answer.get("idTokenInfo"), token_kind, token, f"TransactionEventResponse ({event_type})")
    return answer
