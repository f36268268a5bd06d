"""F. Remote control: RequestStartTransaction, RequestStopTransaction, UnlockConnector and TriggerMessage
(OCPP 2.0.1 Part 2 §F01-F06)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ocpp.routing import after, on
from ocpp.v201 import call_result
from ocpp.v201.enums import Action

from chargepoint.csms.v201 import mapping
from chargepoint.csms.v201.base import V201Base, meter_value
from chargepoint.csms.v201.firmware import firmware_status_now, log_status_now
from chargepoint.csms.v201.smart_charging import UNPARSABLE, charging_profile_of
from chargepoint.errors import CsmsRejected, CsmsUnavailable

log = logging.getLogger(__name__)

# The messages TriggerMessage can ask for here (F06); the others are NotImplemented.
TRIGGERABLE = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "MeterValues",
        "TransactionEvent",
        "FirmwareStatusNotification",
        "LogStatusNotification",
        "SignChargingStationCertificate",
    }
)


class RemoteControl(V201Base):
    """What the CSMS starts, stops, unlocks and asks for."""

    __slots__ = ()

    if TYPE_CHECKING:  # the security block (``security.py``) sends it

        async def send_sign_certificate(self) -> None: ...

    @on(Action.request_start_transaction)
    def on_request_start(
        self,
        id_token: dict[str, Any],
        remote_start_id: int,
        evse_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        """RequestStartTransaction (F01, F02): the station starts the transaction once the cable is in (or at
        once if it is), authorizing the token first if AuthorizeRemoteStart; its Started event carries
        remoteStartId and triggerReason RemoteStart. A chargingProfile becomes the transaction's TxProfile
        (K05); one of another purpose, with a transactionId or that the station cannot take is Rejected
        (F01.FR.?), and with SmartChargingCtrlr.Enabled false it is ignored (F01.FR.12)."""
        cid = None
        if evse_id is not None:
            cid = self.cid_of(evse_id, None)
            if cid is None:
                return call_result.RequestStartTransaction(status="Rejected")
        profile = None
        if charging_profile is not None and not self.settings.get_bool("smart_charging_enabled"):
            log.info("RequestStartTransaction %s: its chargingProfile is ignored", remote_start_id)
        elif charging_profile is not None:
            try:
                profile = charging_profile_of(charging_profile, cid or 0)
            except UNPARSABLE as exc:
                log.info("RequestStartTransaction with an unusable chargingProfile: %s", exc)
                return call_result.RequestStartTransaction(status="Rejected")
        token = id_token["id_token"]
        # The core refuses a profile that is not a TxProfile, names a transaction, or breaks the rules (K05).
        ok = self.station.remote_start(
            token,
            cid,
            authorize_first=self.settings.get_bool("authorize_remote_tx_requests"),
            tx_profile=profile,
            token_type=id_token["type"],
            remote_start_id=remote_start_id,
        )
        if ok:
            self.remember_token(token, id_token["type"])
        return call_result.RequestStartTransaction(status="Accepted" if ok else "Rejected")

    @on(Action.request_stop_transaction)
    async def on_request_stop(self, transaction_id: str, **_: Any) -> Any:
        """RequestStopTransaction (F03): Rejected for a transaction that does not run here (F03.FR.?)."""
        ok = await self.station.remote_stop(transaction_id)
        return call_result.RequestStopTransaction(status="Accepted" if ok else "Rejected")

    @on(Action.unlock_connector)
    async def on_unlock(self, evse_id: int, connector_id: int, **_: Any) -> Any:
        """UnlockConnector (F05): UnknownConnector for one that does not exist; a connector with a running
        transaction is not unlocked (F05.FR.02: OngoingAuthorizedTransaction)."""
        cid = self.cid_of(evse_id, connector_id)
        if cid is None:
            return call_result.UnlockConnector(status="UnknownConnector")
        if self.station.connectors[cid].transaction is not None:
            return call_result.UnlockConnector(status="OngoingAuthorizedTransaction")
        result = await self.station.unlock(cid)
        return call_result.UnlockConnector(status=mapping.UNLOCK[result])

    def _trigger_targets(self, evse: dict[str, Any] | None) -> list[int] | None:
        """The connectors a TriggerMessage is about (all without evse); None if the evse does not exist."""
        if evse is None:
            return sorted(self.address)
        cid = self.cid_of(evse["id"], evse.get("connector_id"))
        if cid is None:
            return None
        if evse.get("connector_id") is None:
            return [c for c, (e, _) in sorted(self.address.items()) if e == evse["id"]]
        return [cid]

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any) -> Any:
        """TriggerMessage (F06); the message follows the answer."""
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        targets = self._trigger_targets(evse)
        if targets is None:
            return call_result.TriggerMessage(status="Rejected")
        if requested_message == "TransactionEvent" and not any(
            self.station.connectors[c].transaction is not None for c in targets
        ):
            return call_result.TriggerMessage(status="Rejected")  # no transaction there to tell about
        if requested_message == "BootNotification" and self.boot_status == "Accepted":
            # F06.FR.17: a station whose boot was accepted rejects a triggered BootNotification.
            return call_result.TriggerMessage(status="Rejected")
        if not self.can_follow_up():
            return call_result.TriggerMessage(status="Rejected")  # still sending what was asked for before
        return call_result.TriggerMessage(status="Accepted")

    @after(Action.trigger_message)
    def after_trigger_message(
        self, requested_message: str, evse: dict[str, Any] | None = None, **_: Any
    ) -> None:
        """Send what TriggerMessage asked for, in a task kept by reference."""
        targets = self._trigger_targets(evse)
        if requested_message not in TRIGGERABLE or targets is None:
            return
        if requested_message == "BootNotification" and self.boot_status == "Accepted":
            return
        if self.can_follow_up():
            self.follow_up(self._send_triggered(requested_message, targets), f"trigger-{requested_message}")

    async def _send_triggered(self, what: str, targets: list[int]) -> None:
        try:
            if what == "BootNotification":
                self._boot_answer(await self.request("BootNotification", self._boot_payload(triggered=True)))
            elif what == "Heartbeat":
                await self.send_heartbeat()
            elif what == "SignChargingStationCertificate":
                await self.send_sign_certificate()  # A02: a new key and CSR
            elif what == "StatusNotification":
                for cid in targets:
                    await self.send_status(cid, force=True)
            elif what == "FirmwareStatusNotification":
                await self.request(what, firmware_status_now(self.station))
            elif what == "LogStatusNotification":
                await self.request(what, log_status_now(self.station))
            elif what == "TransactionEvent":
                # F06.FR.?: an Updated event (triggerReason Trigger) of each transaction on the targets, through the
                # outbox, so its seqNo follows the transaction's other events.
                for cid in targets:
                    await self.station.trigger_update(cid)
            else:
                for cid in targets:
                    sample, _local_tx = self.station.sample_now(cid)
                    value = meter_value(sample) if sample is not None else None
                    if value is not None:
                        evse_id = self.address[cid][0]
                        await self.send_meter_values({"evseId": evse_id, "meterValue": [value]})
        except (CsmsRejected, CsmsUnavailable) as exc:
            log.warning("triggered %s failed: %s", what, exc)
