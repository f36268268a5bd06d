"""The charger runner's OCPP 2.0.1 side: the CSMS we play (answers to every station-initiated 2.0.1 message) and
the judges every 2.0.1 charger case shares: connector status transitions per (evseId, connectorId) (Part 2 §G01),
and per transaction seqNo continuity, Started first and exactly one Ended (Part 2 §E, TransactionEventRequest)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from backend_stub.ocpp_server import Frame, HandlerResult, utc_now_iso
from conformance.charger_runner import CALL, ChargerContext
from conformance.model import Fail
from conformance.v201.spec import LEGAL_CONNECTOR_TRANSITIONS

__all__ = ["TxTrack", "V201ChargerContext", "is_tx_event"]

SUBPROTOCOL = "ocpp2.0.1"
MAX_TRACKED_TRANSACTIONS = 1_000  # a charger inventing transaction ids cannot grow the runner without bound


@dataclass
class TxTrack:
    """What the runner saw of one transaction: its events in order and whether it ended."""

    transaction_id: str
    events: list[dict[str, Any]] = field(default_factory=list)
    ended: bool = False

    @property
    def last_seq(self) -> int | None:
        """The seqNo of the last event, None before one."""
        return self.events[-1].get("seqNo") if self.events else None


def is_tx_event(frame: Frame, event_type: str | None = None) -> bool:
    """Whether ``frame`` is a TransactionEvent CALL (of ``event_type``, if given)."""
    if frame.direction != "in" or frame.message_type != CALL or frame.action != "TransactionEvent":
        return False
    return event_type is None or (
        isinstance(frame.payload, dict) and frame.payload.get("eventType") == event_type
    )


def tx_id_of(payload: Any) -> str | None:
    """The transactionId of a TransactionEvent payload."""
    info = payload.get("transactionInfo") if isinstance(payload, dict) else None
    tx_id = info.get("transactionId") if isinstance(info, dict) else None
    return tx_id if isinstance(tx_id, str) else None


@dataclass
class V201ChargerContext(ChargerContext):
    """The charger runner playing an OCPP 2.0.1 CSMS; ``setup.connector`` is the EVSE id (its connector 1)."""

    connector_status: dict[tuple[int, int], str] = field(default_factory=dict)
    transactions: dict[str, TxTrack] = field(default_factory=dict)
    reset_status: str | None = None  # what GetBaseReport / Reset answered, for cases that branch on it

    # ---- the CSMS we play ------------------------------------------------------------------------------------

    def install_handlers(self) -> None:
        """Answers to every station-initiated 2.0.1 message, schema-valid; cases steer them through fields."""
        ctx = self

        def boot(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
            status, interval = (
                ctx.boot_answers.pop(0) if ctx.boot_answers else ("Accepted", ctx.setup.heartbeat_interval_s)
            )
            return {"status": status, "currentTime": utc_now_iso(), "interval": interval}

        def authorize(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
            return {"idTokenInfo": {"status": ctx.auth_status}}

        def transaction_event(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
            # E01.FR.?: idTokenInfo answers an event that carries an idToken.
            return {"idTokenInfo": {"status": ctx.auth_status}} if "idToken" in payload else {}

        def const(answer: dict[str, Any]) -> Any:
            return lambda cp_id, payload: dict(answer)

        handlers: dict[str, Any] = {
            "BootNotification": boot,
            "Heartbeat": lambda cp_id, payload: {"currentTime": utc_now_iso()},
            "Authorize": authorize,
            "TransactionEvent": transaction_event,
            "DataTransfer": const({"status": "UnknownVendorId"}),
            # A02: Rejected unless a case wants the station's CSR (it then sends CertificateSigned itself).
            "SignCertificate": lambda cp_id, payload: {"status": ctx.vars.get("sign", "Rejected")},
            "NotifyEVChargingNeeds": const({"status": "Rejected"}),
            "NotifyEVChargingSchedule": const({"status": "Accepted"}),
            "GetCertificateStatus": const({"status": "Failed"}),
            "Get15118EVCertificate": const({"status": "Failed", "exiResponse": ""}),
        }
        for action in (
            "StatusNotification",
            "MeterValues",
            "NotifyReport",
            "NotifyEvent",
            "NotifyMonitoringReport",
            "SecurityEventNotification",
            "FirmwareStatusNotification",
            "LogStatusNotification",
            "ReservationStatusUpdate",
            "ReportChargingProfiles",
            "NotifyChargingLimit",
            "ClearedChargingLimit",
            "NotifyCustomerInformation",
            "NotifyDisplayMessages",
            "PublishFirmwareStatusNotification",
        ):
            handlers[action] = const({})
        self.cs.handlers_by_subprotocol[SUBPROTOCOL] = handlers

    # ---- judges ----------------------------------------------------------------------------------------------

    def judge_call(self, frame: Frame) -> None:
        """Follow statuses (Part 2 §G01 transitions) and transaction events (seqNo, Started first, one Ended)."""
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        if frame.action == "BootNotification":
            self.connector_status.clear()  # after a reboot the station reports its states afresh
        elif frame.action == "StatusNotification":
            self._judge_status(frame, payload)
        elif frame.action == "TransactionEvent":
            self._judge_tx_event(frame, payload)

    def _judge_status(self, frame: Frame, payload: dict[str, Any]) -> None:
        evse, connector, status = (
            payload.get("evseId"),
            payload.get("connectorId"),
            payload.get("connectorStatus"),
        )
        if not isinstance(evse, int) or not isinstance(connector, int) or not isinstance(status, str):
            return  # the schema check reports it
        before = self.connector_status.get((evse, connector))
        if (
            before is not None
            and before != status
            and status not in LEGAL_CONNECTOR_TRANSITIONS.get(before, ())
        ):
            self.bad_transitions.append(
                f"EVSE {evse} connector {connector}: {before} -> {status} at {frame.ts:%H:%M:%S.%f} is not a "
                "transition OCPP 2.0.1 Part 2 §G01 allows (StatusNotificationRequest.connectorStatus)"
            )
        self.connector_status[(evse, connector)] = status

    def _judge_tx_event(self, frame: Frame, payload: dict[str, Any]) -> None:
        tx_id, event_type, seq = tx_id_of(payload), payload.get("eventType"), payload.get("seqNo")
        if tx_id is None or not isinstance(seq, int) or event_type not in ("Started", "Updated", "Ended"):
            return  # the schema check reports it
        track = self.transactions.get(tx_id)
        where = f"TransactionEvent {event_type} seqNo {seq} of transaction {tx_id!r}"
        if track is None:
            if len(self.transactions) >= MAX_TRACKED_TRANSACTIONS:
                self.transactions.pop(next(iter(self.transactions)))
            track = self.transactions[tx_id] = TxTrack(tx_id)
            if event_type != "Started":
                self.bad_transitions.append(
                    f"{where}: the first event of a transaction must be eventType Started (OCPP 2.0.1 E01)"
                )
        elif any(e.get("seqNo") == seq for e in track.events):
            if payload not in track.events:  # a retransmission repeats the same event; anything else is wrong
                self.bad_transitions.append(
                    f"{where}: seqNo {seq} was already used by another event of this transaction"
                )
            return
        elif track.ended:
            self.bad_transitions.append(
                f"{where}: sent after the transaction's Ended event (exactly one Ended, and it is the last)"
            )
        elif event_type == "Started":
            self.bad_transitions.append(f"{where}: a second Started event for the same transaction")
        elif track.last_seq is not None and seq != track.last_seq + 1:
            self.bad_transitions.append(
                f"{where}: seqNo skips from {track.last_seq} to {seq} (seqNo counts every event of the "
                "transaction without a gap, OCPP 2.0.1 E.FR: TransactionEventRequest.seqNo)"
            )
        track.events.append(payload)
        if event_type == "Ended":
            track.ended = True

    # ---- statuses --------------------------------------------------------------------------------------------

    def is_status_of(self, payload: Any, connector: int) -> bool:
        """Whether a StatusNotificationRequest is about EVSE ``connector`` (its connector 1)."""
        return (
            isinstance(payload, dict)
            and payload.get("evseId") == connector
            and payload.get("connectorId") == 1
        )

    def status_text(self, status: str, connector: int) -> str:
        """How a failure names an awaited status report (OCPP 2.0.1: per EVSE and connector)."""
        return f"StatusNotificationRequest connectorStatus {status} for EVSE {connector} connector 1"

    def status_in(self, payload: dict[str, Any]) -> Any:
        """The connectorStatus of a StatusNotificationRequest."""
        return payload.get("connectorStatus")

    # ---- the device model ------------------------------------------------------------------------------------

    async def get_variables(self, *refs: tuple[str, str]) -> list[dict[str, Any]]:
        """GetVariables of (component, variable) pairs: the getVariableResult list in request order."""
        answer = await self.call(
            "GetVariables",
            {"getVariableData": [{"component": {"name": c}, "variable": {"name": v}} for c, v in refs]},
        )
        results: list[dict[str, Any]] = answer.get("getVariableResult", [])
        return results

    async def get_variable(self, component: str, variable: str) -> str | None:
        """The Actual value of one variable (None when the station does not answer Accepted)."""
        [result] = await self.get_variables((component, variable))
        value = result.get("attributeValue")
        return value if result.get("attributeStatus") == "Accepted" and isinstance(value, str) else None

    async def set_variable(self, component: str, variable: str, value: str) -> None:
        """SetVariables that must be Accepted; the old value is set back after the case."""
        old = await self.get_variable(component, variable)
        answer = await self.call(
            "SetVariables",
            {
                "setVariableData": [
                    {
                        "component": {"name": component},
                        "variable": {"name": variable},
                        "attributeValue": value,
                    }
                ]
            },
        )
        results = answer.get("setVariableResult") or [{}]
        if results[0].get("attributeStatus") != "Accepted":
            raise Fail(
                f"SetVariablesResponse attributeStatus {results[0].get('attributeStatus')!r} for "
                f"{component}.{variable}={value}, expected Accepted"
            )
        key = f"{component}/{variable}"
        if old is not None and key not in self.restore:
            self.restore[key] = old

    async def restore_settings(self) -> None:
        """Set the variables a case changed back (SetVariables, best effort)."""
        for key, value in list(self.restore.items()):
            component, _, variable = key.partition("/")
            data = {"component": {"name": component}, "variable": {"name": variable}, "attributeValue": value}
            with contextlib.suppress(Exception):
                await self.cs.call(self.cp_id, "SetVariables", {"setVariableData": [data]}, timeout=5)

    # ---- transactions ----------------------------------------------------------------------------------------

    def open_transactions(self) -> list[str]:  # type: ignore[override]
        """Transactions the station started and has not ended, by the events seen so far."""
        self.scan_statuses()
        return [t.transaction_id for t in self.transactions.values() if not t.ended]

    def events_of(self, tx_id: str, after: int = 0) -> list[dict[str, Any]]:
        """The TransactionEvent payloads of ``tx_id`` in ``log[after:]``, in order."""
        return [
            f.payload
            for f in self.cs.log[after:]
            if f.cp_id == self.cp_id and is_tx_event(f) and tx_id_of(f.payload) == tx_id
        ]

    async def wait_event(
        self, event_type: str, after: int, tx_id: str | None = None, timeout_s: float = 15.0
    ) -> dict[str, Any]:
        """Wait for a TransactionEvent of ``event_type`` (of ``tx_id``, if given); return its payload."""
        frame = await self.wait_call(
            "TransactionEvent",
            after,
            lambda p: p.get("eventType") == event_type and (tx_id is None or tx_id_of(p) == tx_id),
            timeout_s,
            f"TransactionEventRequest eventType {event_type}" + (f" of transaction {tx_id}" if tx_id else ""),
        )
        payload: dict[str, Any] = frame.payload
        return payload

    async def to_idle(self) -> None:
        """Best effort back to idle: RequestStopTransaction of what runs, unplug, wait for Available."""
        after = self.at()
        busy = False
        for tx_id in self.open_transactions():
            busy = True
            with contextlib.suppress(Exception):
                await self.cs.call(self.cp_id, "RequestStopTransaction", {"transactionId": tx_id}, timeout=5)
                await self.wait_event("Ended", after, tx_id, 10)
        if self.vars.get("plugged"):
            busy = True
            await self.act("unplug")
        if busy:
            with contextlib.suppress(Fail):
                await self.wait_status("Available", after, 10)
