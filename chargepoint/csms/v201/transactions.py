"""E. Transactions and J. Meter values: the typed outbox events as TransactionEvent, MeterValues,
SecurityEventNotification, FirmwareStatusNotification, LogStatusNotification and ReservationStatusUpdate, and
GetTransactionStatus (OCPP 2.0.1 Part 2 §E01-E07, E14, J01, A04, L01, N01, H01).

The station names its transactions (``TransactionStarted.transaction_id``, at most 36 characters), so nothing is
mapped: the id goes out as it is. ``seqNo`` is ``OutboxMessage.seq_no``, the count of the transaction's messages
the CSMS acknowledged, persisted with each acknowledgement: no gap, also across a crash (E.FR.? seqNo).
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp.routing import on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.core.events import (
    FirmwareStatusChanged,
    MeterReadings,
    OutboxMessage,
    ReservationEnded,
    SecurityEvent,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
    UploadStatusChanged,
)
from chargepoint.core.model import ReadingContext, TxUpdateTrigger
from chargepoint.csms.outbox import Delivered
from chargepoint.csms.times import ocpp_time
from chargepoint.csms.v201 import mapping
from chargepoint.csms.v201.base import V201Base, id_token_info, meter_values, register_value
from chargepoint.errors import StorageError

log = logging.getLogger(__name__)

# The triggerReason of an Updated event, by why its samples were taken (E02, J02).
_UPDATED_TRIGGER = {
    ReadingContext.SAMPLE_CLOCK: "MeterValueClock",
    ReadingContext.TRIGGER: "Trigger",
}


def _started_trigger(event: TransactionStarted) -> str:
    """Why the transaction started (E01-E03, E09, E10, F01): a remote start, the cable, or the authorization."""
    if event.remote_start_id is not None:
        return "RemoteStart"
    return "Authorized" if event.id_tag else "CablePluggedIn"


class Transactions(V201Base):
    """Transaction events and meter values out of the durable outbox."""

    __slots__ = ()

    async def deliver(self, message: OutboxMessage) -> Delivered:
        """Send one outbox message as its 2.0.1 CALL; the answer's idTokenInfo is acted on like 1.6's idTagInfo."""
        event = message.event()
        if isinstance(event, TransactionStarted | TransactionUpdated | TransactionEnded):
            return await self._transaction_event(event, message.seq_no or 0)
        if isinstance(event, SecurityEvent):
            # A04: SecurityEventNotification, queued like transaction messages so none is lost offline.
            # The core names events as the 1.6 whitepaper does; 2.0.1 renamed some (Csms, ChargingStation).
            kind = mapping.SECURITY_EVENT_BY_NAME.get(event.type, event.type)
            security: dict[str, Any] = {"type": kind[:50], "timestamp": ocpp_time(event.timestamp)}
            if event.tech_info:
                security["techInfo"] = event.tech_info[:255]
            await self.request("SecurityEventNotification", security)
            return Delivered()
        if isinstance(event, FirmwareStatusChanged):
            # L01: FirmwareStatusNotification, queued so that a status is never lost offline.
            firmware: dict[str, Any] = {"status": mapping.FIRMWARE_STATUS[event.status]}
            if event.request_id is not None:
                firmware["requestId"] = event.request_id
            await self.request("FirmwareStatusNotification", firmware)
            return Delivered()
        if isinstance(event, ReservationEnded):
            # H01.FR.?: ReservationStatusUpdate Expired / Removed, queued so that it survives an outage.
            status = "Expired" if event.expired else "Removed"
            update = {"reservationId": event.reservation_id, "reservationUpdateStatus": status}
            await self.request("ReservationStatusUpdate", update)
            return Delivered()
        if isinstance(event, UploadStatusChanged):
            # N01: LogStatusNotification (2.0.1 has no DiagnosticsStatusNotification: a diagnostics upload is a log).
            upload: dict[str, Any] = {"status": mapping.UPLOAD_STATUS[event.status]}
            if event.request_id is not None:
                upload["requestId"] = event.request_id
            await self.request("LogStatusNotification", upload)
            return Delivered()
        return await self._meter_values(event)

    async def _meter_values(self, event: MeterReadings) -> Delivered:
        """MeterValuesRequest (J01): values outside a transaction, of the connector's EVSE (0: the station)."""
        values = meter_values(event.samples)
        if not values:
            return Delivered()  # meterValue needs one value at least: there is nothing to tell
        evse_id = self.address[event.connector_id][0] if event.connector_id in self.address else 0
        await self.send_meter_values({"evseId": evse_id, "meterValue": values})
        return Delivered()

    def _evse(self, cid: int) -> dict[str, int] | None:
        address = self.address.get(cid)
        return {"id": address[0], "connectorId": address[1]} if address is not None else None

    async def _transaction_event(
        self, event: TransactionStarted | TransactionUpdated | TransactionEnded, seq_no: int
    ) -> Delivered:
        """TransactionEventRequest Started (E01-E03), Updated (E02, J02) or Ended (E06, E07)."""
        info: dict[str, Any] = {"transactionId": event.transaction_id}
        payload: dict[str, Any] = {"seqNo": seq_no, "transactionInfo": info}
        id_tag: str | None = None
        token_type: str | None = None
        if isinstance(event, TransactionStarted):
            id_tag, token_type = event.id_tag, event.token_type
            payload.update(
                eventType="Started",
                timestamp=ocpp_time(event.timestamp),
                triggerReason=_started_trigger(event),
                meterValue=[register_value(event.meter_start_wh, event.timestamp, "Transaction.Begin")],
            )
            if event.remote_start_id is not None:
                info["remoteStartId"] = event.remote_start_id  # F01.FR.?: persisted with the event
            if event.charging_state is not None:
                info["chargingState"] = mapping.CHARGING_STATE[event.charging_state]
            if event.phases is not None:
                payload["numberOfPhasesUsed"] = event.phases
            if event.reservation_id is not None:
                payload["reservationId"] = event.reservation_id  # E.FR: the reservation this start ends (H03)
        elif isinstance(event, TransactionUpdated):
            id_tag = event.id_tag
            values = meter_values(event.samples)
            if event.trigger is TxUpdateTrigger.SAMPLE:
                context = event.samples[0].context if event.samples else ReadingContext.SAMPLE_PERIODIC
                trigger = _UPDATED_TRIGGER.get(context, "MeterValuePeriodic")
            else:
                trigger = mapping.UPDATE_TRIGGER[event.trigger]
            at = event.samples[-1].timestamp if event.samples else event.timestamp or self.now()
            payload.update(eventType="Updated", timestamp=ocpp_time(at), triggerReason=trigger)
            if event.charging_state is not None:
                info["chargingState"] = mapping.CHARGING_STATE[event.charging_state]
            if values:
                payload["meterValue"] = values
        else:
            id_tag = event.id_tag
            info["stoppedReason"] = mapping.STOP_REASON[event.reason]
            payload.update(
                eventType="Ended",
                timestamp=ocpp_time(event.timestamp),
                triggerReason=mapping.ENDED_TRIGGER[event.reason],
                # The register at the end first: the billed reading (E06.FR.?), then the samples kept for the end.
                meterValue=[
                    register_value(event.meter_stop_wh, event.timestamp, "Transaction.End"),
                    *meter_values(event.transaction_data),
                ],
            )
        evse = self._evse(event.connector_id)
        if evse is not None and not isinstance(event, TransactionUpdated):
            payload["evse"] = evse
        if id_tag:
            payload["idToken"] = self.id_token(id_tag, token_type)
        if event.offline:
            payload["offline"] = True  # E.FR.?: it happened while the station could not tell the CSMS
        if "meterValue" in payload:
            # One queued event is one TransactionEvent with one seqNo (persisted per acknowledged message), so its
            # values are trimmed rather than split: the end register (first in an Ended event) always stays, the
            # oldest samples go first, then the last sampledValues of the newest (its timestamp stays).
            self.fit(
                "TransactionEvent", payload, "meterValue", keep=1 if payload["eventType"] == "Ended" else 0
            )
        answer = await self.request("TransactionEvent", payload)
        started = isinstance(event, TransactionStarted)
        if id_tag and "idTokenInfo" in answer:
            return Delivered(None, id_tag, id_token_info(answer["idTokenInfo"]), started=started)
        return Delivered(started=started)

    @on(Action.get_transaction_status)
    async def on_get_transaction_status(self, transaction_id: str | None = None, **_: Any) -> Any:
        """GetTransactionStatus (E14): whether messages of the transaction (of any, without an id) still wait,
        and whether it runs; an id the station does not know is neither (E14.FR.?)."""
        store = self.store
        try:
            await store.flush()  # what was queued so far counts
            queued = store.queued_transaction_messages(transaction_id) > 0
            if transaction_id is None:
                return call_result.GetTransactionStatus(messages_in_queue=queued)
            stored = store.transaction_by_id(transaction_id)
        except StorageError:
            log.exception("GetTransactionStatus: the store cannot be read")
            raise
        return call_result.GetTransactionStatus(
            messages_in_queue=queued, ongoing_indicator=stored is not None and stored.active
        )
