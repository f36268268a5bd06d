"""OCPP 1.6J session over one WebSocket connection, on the ``ocpp`` package.

One instance lives as long as its connection. It boots, then keeps the heartbeat, sends status changes and
drains the outbox, and answers the central system's CALLs by calling the version-neutral station. The framing,
hardening, boot, heartbeat and status machinery it shares with 2.0.1 is ``csms/rpc.py``'s ``OcppSession``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from chargepoint.core.device_model import VARIABLES, Mutability
from chargepoint.core.events import (
    FirmwareStatusChanged,
    OutboxMessage,
    ReservationEnded,
    SecurityEvent,
    TransactionEnded,
    TransactionStarted,
    UploadStatusChanged,
)
from chargepoint.core.model import AuthStatus, IdTagInfo, OperationalStatus, ResetKind, Sample
from chargepoint.core.smart_charging import (
    ChargingProfile,
    CompositeSchedule,
)
from chargepoint.csms.outbox import Delivered, MalformedAnswer, OrphanedTransaction
from chargepoint.csms.rpc import OcppSession, StatusReport, is_int64
from chargepoint.csms.schedules import periods_json, schedule_of
from chargepoint.csms.times import ocpp_time, parse_time
from chargepoint.csms.v16 import firmware as fw  # not ``firmware``: that is a SignedUpdateFirmware field
from chargepoint.csms.v16 import mapping, reservation
from chargepoint.csms.v16.security import SECURITY_KEYS, SecurityHandlers, redact_secrets, trigger_status
from chargepoint.errors import CsmsRejected, CsmsUnavailable, StorageError

__all__ = ["V16Session", "ocpp_time", "parse_time"]

log = logging.getLogger(__name__)

# Fields that count or index something and so are never negative (OCPP 1.6 §6: connectorId >= 0; stackLevel,
# duration, retries, startPeriod, listVersion are counts of levels, seconds or versions).
_NON_NEGATIVE = frozenset(
    {
        "connectorId",
        "stackLevel",
        "duration",
        "retries",
        "retryInterval",
        "startPeriod",
        "listVersion",
        "numberPhases",
    }
)
_ACTIONS_16 = frozenset(a.value for a in Action)

# Checks of values the schemas cannot express, run before the ``ocpp`` package routes the CALL (a handler that
# raised would be answered by the package, with its spelling of the code and a logged traceback per frame).
_PRECHECKS = {"ReserveNow": reservation.check_reserve_now}


def id_tag_info(data: dict[str, Any] | None) -> IdTagInfo:
    """An OCPP 1.6 IdTagInfo (camelCase or snake_case keys) as the core's."""
    data = data or {}
    expiry = data.get("expiryDate") or data.get("expiry_date")
    expires = None
    if expiry:
        try:
            expires = parse_time(expiry)
        except (TypeError, ValueError, AttributeError):
            log.warning("ignoring an unreadable expiryDate %.40r", expiry)
    return IdTagInfo(
        mapping.AUTH_STATUS_IN.get(data.get("status", "Invalid"), AuthStatus.INVALID),
        expires,
        data.get("parentIdTag") or data.get("parent_id_tag"),
    )


def readable_status(answer: Any) -> IdTagInfo | None:
    """Only the idTagInfo.status of an answer that is otherwise malformed, if it names a known status."""
    info = answer.get("idTagInfo") if isinstance(answer, dict) else None
    status = info.get("status") if isinstance(info, dict) else None
    if not isinstance(status, str) or status not in mapping.AUTH_STATUS_IN:
        return None
    return IdTagInfo(mapping.AUTH_STATUS_IN[status])


def charging_profile_of(
    data: dict[str, Any], connector_id: int, transaction_id: str | None = None
) -> ChargingProfile:
    """An OCPP 1.6 ChargingProfile (snake_case keys, as the ``ocpp`` package routes it) as the core's, for the
    station's transaction ``transaction_id`` (the caller maps the CSMS's integer transactionId).

    Raises KeyError or ValueError for a value the core has no word for."""
    sched = data["charging_schedule"]
    valid_from, valid_to = data.get("valid_from"), data.get("valid_to")
    recurrency = data.get("recurrency_kind")
    return ChargingProfile(
        id=int(data["charging_profile_id"]),
        stack_level=int(data["stack_level"]),
        purpose=mapping.PROFILE_PURPOSE_IN[data["charging_profile_purpose"]],
        kind=mapping.PROFILE_KIND_IN[data["charging_profile_kind"]],
        connector_id=connector_id,
        recurrency=mapping.RECURRENCY_IN[recurrency] if recurrency else None,
        valid_from=parse_time(valid_from) if valid_from else None,
        valid_to=parse_time(valid_to) if valid_to else None,
        transaction_id=transaction_id,
        schedule=schedule_of(sched, mapping.RATE_UNIT_IN[sched["charging_rate_unit"]]),
    )


def composite_schedule(schedule: CompositeSchedule) -> dict[str, Any]:
    """A core composite schedule as an OCPP 1.6 ChargingSchedule (camelCase)."""
    periods = periods_json(schedule.periods)
    return {
        "duration": schedule.duration_s,
        "startSchedule": ocpp_time(schedule.start),
        "chargingRateUnit": mapping.RATE_UNIT[schedule.unit],
        "chargingSchedulePeriod": periods,
    }


def meter_value(sample: Sample) -> dict[str, Any]:
    """A core sample as an OCPP 1.6 MeterValue."""
    values = []
    for v in sample.values:
        entry: dict[str, Any] = {
            "value": f"{v.value:g}" if v.value != int(v.value) else str(int(v.value)),
            "context": mapping.CONTEXT[sample.context],
            "measurand": mapping.MEASURAND[v.measurand],
        }
        unit = _UNIT_16[v.measurand.value]
        if unit is not None:
            entry["unit"] = unit
        if v.phase:
            entry["phase"] = v.phase
        if v.measurand.value == "SoC":
            entry["location"] = "EV"
        values.append(entry)
    return {"timestamp": ocpp_time(sample.timestamp), "sampledValue": values}


_UNIT_16: dict[str, str | None] = {
    "Energy.Active.Import.Register": "Wh",
    "Power.Active.Import": "W",
    "Current.Import": "A",
    "Voltage": "V",
    # OCPP 1.6 §7.31: UnitOfMeasure has no Hertz; a Frequency value carries no unit and is in Hertz. ("Hz" fails
    # the schema, and the outbox would keep such a MeterValues or StopTransaction as a dead letter.)
    "Frequency": None,
    "SoC": "Percent",
}


class V16Session(SecurityHandlers, OcppSession):
    """An OCPP 1.6J conversation with the central system over one connection."""

    __slots__ = ()
    _ocpp_version = "1.6"
    subprotocol = "ocpp1.6"
    ACTIONS = _ACTIONS_16
    ERROR_SPELLING = mapping.CALL_ERROR_CODE
    NON_NEGATIVE = _NON_NEGATIVE
    PRECHECKS = _PRECHECKS

    def redact(self, frame: str) -> str:
        """A received frame for the frame log: a ChangeConfiguration AuthorizationKey's value hidden."""
        return redact_secrets(frame)

    def _boot_payload(self, *, triggered: bool = False) -> dict[str, Any]:
        """OCPP 1.6 §6.2 BootNotification.req (1.6 has no boot reason)."""
        ident = self.link.identity
        payload = {
            "chargePointVendor": ident.vendor,
            "chargePointModel": ident.model,
            "firmwareVersion": ident.firmware_version,
        }
        if ident.serial_number:
            payload["chargePointSerialNumber"] = ident.serial_number
        return payload

    def _status_report(self, cid: int, seq: int) -> StatusReport:
        """OCPP 1.6 §6.47 StatusNotification.req: the session phase per connector (0: the charge point)."""
        status = self.station.status(cid)
        code = mapping.ERROR_CODE[status.error_code]
        state = mapping.STATUS[status.state]
        payload: dict[str, Any] = {
            "connectorId": cid,
            "errorCode": code,
            "status": state,
            "timestamp": ocpp_time(status.timestamp),
        }
        if status.info:
            payload["info"] = status.info[:50]
        return StatusReport(cid, (state, code, status.info), payload, asyncio.get_running_loop().time(), seq)

    # the CSMS port, used by the link
    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Authorize online; CallErrors count as unavailability (decide offline)."""
        try:
            answer = await self.request("Authorize", {"idTag": id_tag})
        except CsmsRejected as exc:
            # The CSMS is there and did not say yes: that is a refusal, not a reason to apply offline rules
            # (AllowOfflineTxForUnknownId would otherwise let unknown cards charge).
            log.warning("Authorize of %s answered with %s; treating the id as Invalid", id_tag, exc)
            return IdTagInfo(AuthStatus.INVALID)
        return id_tag_info(answer.get("idTagInfo"))

    async def deliver(self, message: OutboxMessage) -> Delivered:
        """Send one outbox message and return what the answer says; raises CsmsRejected or CsmsUnavailable,
        or OCPPError/ValueError/KeyError when the message cannot be encoded as a valid 1.6 CALL."""
        event = message.event()
        if isinstance(event, TransactionStarted):
            payload = {
                "connectorId": event.connector_id,
                "idTag": event.id_tag,
                "meterStart": event.meter_start_wh,
                "timestamp": ocpp_time(event.timestamp),
            }
            if event.reservation_id is not None:
                payload["reservationId"] = event.reservation_id  # the reservation it ends (OCPP 1.6 §5.13)
            try:
                answer = await self.request("StartTransaction", payload)
                tx_id = answer["transactionId"]
                if not is_int64(tx_id):
                    # OCPP 1.6 §6.46: an integer; ours are signed 64-bit. A protocol error of this one answer.
                    raise MalformedAnswer(
                        "PropertyConstraintViolation",
                        f"transactionId {tx_id!r:.30} out of range",
                        answer=answer,
                    )
            except MalformedAnswer as exc:
                # Malformed, but a readable non-Accepted status is still acted on (finding: an Invalid answer
                # without a transactionId must not leave the session charging).
                exc.id_tag, exc.id_tag_info = event.id_tag, readable_status(exc.answer)
                raise
            return Delivered(tx_id, event.id_tag, id_tag_info(answer.get("idTagInfo")))
        if isinstance(event, TransactionEnded):
            stop: dict[str, Any] = {
                "transactionId": self._transaction_id(message.local_tx_id),
                "meterStop": event.meter_stop_wh,
                "timestamp": ocpp_time(event.timestamp),
                "reason": mapping.STOP_REASON[event.reason],
            }
            if event.id_tag:
                stop["idTag"] = event.id_tag
            data = [meter_value(s) for s in event.transaction_data]
            data = [d for d in data if d["sampledValue"]]
            if data:
                stop["transactionData"] = data
                self.fit("StopTransaction", stop, "transactionData")
            answer = await self.request("StopTransaction", stop)
            if event.id_tag and answer.get("idTagInfo"):
                return Delivered(None, event.id_tag, id_tag_info(answer["idTagInfo"]))
            return Delivered()
        if isinstance(event, SecurityEvent):
            # OCPP 1.6 Security whitepaper ed. 2 §4.6: SecurityEventNotification, queued like transaction messages.
            # The whitepaper's schema: type string[0..50], techInfo string[0..255] (a frame of a few hundred bytes).
            security: dict[str, Any] = {"type": event.type[:50], "timestamp": ocpp_time(event.timestamp)}
            if event.tech_info:
                security["techInfo"] = event.tech_info[:255]
            await self.request("SecurityEventNotification", security)
            return Delivered()
        if isinstance(event, ReservationEnded):
            return Delivered()  # OCPP 1.6 has no ReservationStatusUpdate: the CSMS learns it from the status
        if isinstance(event, FirmwareStatusChanged | UploadStatusChanged):
            frame = fw.notification(event)
            if frame is not None:
                await self.request(*frame)
            return Delivered()
        samples = [meter_value(s) for s in event.samples]
        if not samples:
            # A transaction's change of state or authorization without readings: 1.6 tells it by
            # StatusNotification (live) or not at all; an empty MeterValues would break its schema.
            return Delivered()
        mv: dict[str, Any] = {"connectorId": event.connector_id, "meterValue": samples}
        if message.local_tx_id is not None:
            mv["transactionId"] = self._transaction_id(message.local_tx_id)
        # Many measurands x phases x samples may be over BytesPerMessage: several MeterValues then (§4.7).
        await self.send_meter_values(mv)
        return Delivered()

    def _transaction_id(self, local_id: int | None) -> int:
        """The CSMS's integer id for a transaction (OCPP 1.6 StartTransaction.conf, persisted with its answer)."""
        if local_id is None:
            return 0
        csms_id = self.store.csms_transaction_id(local_id)
        if csms_id is not None:
            return csms_id
        # Messages go strictly in order, so the StartTransaction went first: it was refused for good (it is a
        # dead letter). There is no id the CSMS would know; the message joins it rather than carry a made-up id.
        raise OrphanedTransaction(f"local transaction {local_id} has no CSMS transaction id")

    # handlers for the central system's CALLs
    @on(Action.remote_start_transaction)
    def on_remote_start(
        self,
        id_tag: str,
        connector_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        """RemoteStartTransaction (OCPP 1.6 §5.11); a chargingProfile becomes the transaction's TxProfile."""
        if connector_id is not None and connector_id not in self.station.connectors:
            return call_result.RemoteStartTransaction(status="Rejected")
        profile = None
        if charging_profile is not None:
            try:
                profile = charging_profile_of(charging_profile, connector_id or 0)
            except (KeyError, ValueError, TypeError) as exc:
                log.info("RemoteStartTransaction with an unusable chargingProfile: %s", exc)
                return call_result.RemoteStartTransaction(status="Rejected")
        ok = self.station.remote_start(
            id_tag,
            connector_id,
            authorize_first=self.settings.get_bool("authorize_remote_tx_requests"),
            tx_profile=profile,
        )
        return call_result.RemoteStartTransaction(status="Accepted" if ok else "Rejected")

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
    ) -> Any:
        """SetChargingProfile (OCPP 1.6 §5.16): Rejected for a TxProfile without a transaction on the connector,
        a ChargePointMaxProfile off connector 0, or a unit, stack level or period count we do not take."""
        if connector_id != 0 and connector_id not in self.station.connectors:
            return call_result.SetChargingProfile(status="Rejected")
        csms_tx = cs_charging_profiles.get("transaction_id")
        station_tx = None
        # OCPP 1.6 §7.8: transactionId is only valid for a TxProfile; other purposes ignore it, as before.
        if csms_tx is not None and cs_charging_profiles.get("charging_profile_purpose") == "TxProfile":
            station_tx = await self._station_transaction_id(csms_tx)
            if station_tx is None:
                log.info("charging profile for transaction %.30r rejected: it is not running", csms_tx)
                return call_result.SetChargingProfile(status="Rejected")
        try:
            profile = charging_profile_of(cs_charging_profiles, connector_id, station_tx)
        except (KeyError, ValueError, TypeError) as exc:
            log.info("SetChargingProfile with an unusable profile: %s", exc)
            return call_result.SetChargingProfile(status="Rejected")
        result = self.station.set_charging_profile(connector_id, profile)
        return call_result.SetChargingProfile(status=mapping.PROFILE_RESULT[result])

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> Any:
        """ClearChargingProfile (OCPP 1.6 §5.5): by id, or by connector, purpose and stack level; Unknown when
        nothing matched."""
        purpose = mapping.PROFILE_PURPOSE_IN[charging_profile_purpose] if charging_profile_purpose else None
        result = self.station.clear_charging_profiles(id, connector_id, purpose, stack_level)
        return call_result.ClearChargingProfile(status=mapping.CLEAR_RESULT[result])

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        """GetCompositeSchedule (OCPP 1.6 §5.7): the limits from now for ``duration`` s; Rejected for an unknown
        connector or a negative duration."""
        unit = mapping.RATE_UNIT_IN[charging_rate_unit] if charging_rate_unit else None
        schedule = self.station.composite_schedule(connector_id, duration, unit) if duration >= 0 else None
        if schedule is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=ocpp_time(schedule.start),
            charging_schedule=composite_schedule(schedule),
        )

    async def _station_transaction_id(self, csms_id: Any) -> str | None:
        """The station's id of the running transaction the CSMS knows by ``csms_id``; None if there is none."""
        if not is_int64(csms_id):  # OCPP 1.6 §6.46 integer; 2^63 cannot be one of ours
            return None
        store = self.store
        try:
            # The answer that recorded the id is committed first, awaited off the event loop (a RemoteStop right
            # behind StartTransaction.conf must find it).
            await store.flush()
            stored = store.transaction_by_csms_id(csms_id)
        except StorageError:
            log.exception("cannot look up the CSMS's transaction %s", csms_id)
            return None
        return stored.transaction_id if stored is not None and stored.active else None

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id: int, **_: Any) -> Any:
        """RemoteStopTransaction (OCPP 1.6 §5.12): the CSMS's integer id maps to the station's transaction."""
        station_id = await self._station_transaction_id(transaction_id)
        ok = station_id is not None and await self.station.remote_stop(station_id)
        return call_result.RemoteStopTransaction(status="Accepted" if ok else "Rejected")

    @on(Action.reserve_now)
    async def on_reserve_now(self, **fields: Any) -> Any:
        """ReserveNow (OCPP 1.6 §5.13)."""
        return await reservation.reserve_now(self.station, **fields)

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        """CancelReservation (OCPP 1.6 §5.2)."""
        return await reservation.cancel_reservation(self.station, reservation_id)

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> Any:
        """Reset: answer first; the agent ends transactions and restarts afterwards."""
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    def after_reset(self, type: str, **_: Any) -> None:
        """Carry out the reset after the answer went out."""
        self.station.request_reset(ResetKind.HARD if type == "Hard" else ResetKind.SOFT)

    @on(Action.unlock_connector)
    async def on_unlock(self, connector_id: int, **_: Any) -> Any:
        """UnlockConnector (OCPP 1.6 §5.18): ends a running transaction first."""
        if connector_id not in self.station.connectors:
            return call_result.UnlockConnector(status="NotSupported")
        result = await self.station.unlock(connector_id)
        return call_result.UnlockConnector(status=mapping.UNLOCK[result])

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:
        """ChangeAvailability (OCPP 1.6 §5.2): Scheduled while a transaction runs."""
        if connector_id != 0 and connector_id not in self.station.connectors:
            return call_result.ChangeAvailability(status="Rejected")
        operational = mapping.OPERATIONAL_IN.get(type)
        result = self.station.change_availability(connector_id, operational is OperationalStatus.OPERATIVE)
        return call_result.ChangeAvailability(status=mapping.AVAILABILITY[result])

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> Any:
        """ClearCache."""
        return call_result.ClearCache(status="Accepted" if self.station.clear_cache() else "Rejected")

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        """DataTransfer: no vendor extensions are known."""
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        """GetConfiguration: the requested keys (all when none), unknown ones listed apart."""
        keys = key if key else list(mapping.CONFIG_KEYS)
        known, unknown = [], []
        for name in keys:
            ref = mapping.CONFIG_KEYS.get(name)
            if ref is None:
                unknown.append(name)
                continue
            variable = VARIABLES[ref]
            if variable.mutability is Mutability.WRITE_ONLY:
                # Security whitepaper: AuthorizationKey is write-only; it is listed, its value never sent.
                known.append({"key": name, "readonly": False})
                continue
            readonly = variable.mutability is Mutability.READ_ONLY
            known.append({"key": name, "readonly": readonly, "value": self._config_value(variable.setting)})
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    def _config_value(self, setting: str) -> str:
        if setting == "number_of_connectors":
            return str(len(self.station.connectors))
        if setting == "supported_feature_profiles":
            return mapping.SUPPORTED_PROFILES
        if setting == "charging_schedule_allowed_charging_rate_unit":
            return mapping.ALLOWED_RATE_UNITS
        return self.settings.text(setting)[:500]

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        """ChangeConfiguration: Rejected for read-only or invalid, NotSupported for unknown keys."""
        ref = mapping.CONFIG_KEYS.get(key)
        if ref is None:
            return call_result.ChangeConfiguration(status="NotSupported")
        if key in SECURITY_KEYS:
            return call_result.ChangeConfiguration(status=self.change_security_key(key, value))
        try:
            reboot = self.settings.set_text(VARIABLES[ref].setting, value)
        except (PermissionError, ValueError) as exc:
            log.info("ChangeConfiguration %s=%r rejected: %s", key, value, exc)
            return call_result.ChangeConfiguration(status="Rejected")
        except Exception:
            log.exception("ChangeConfiguration %s could not be stored", key)
            return call_result.ChangeConfiguration(status="Rejected")
        return call_result.ChangeConfiguration(status="RebootRequired" if reboot else "Accepted")

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> Any:
        """GetLocalListVersion."""
        return call_result.GetLocalListVersion(list_version=self.station.local_list_version())

    @on(Action.send_local_list)
    def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        """SendLocalList: full or differential; an entry without idTagInfo is removed (differential)."""
        entries: dict[str, IdTagInfo | None] = {}
        for item in local_authorization_list or []:
            info = item.get("id_tag_info")
            entries[item["id_tag"]] = id_tag_info(info) if info else None
        full = update_type == "Full"
        if full:
            entries = {k: v for k, v in entries.items() if v is not None}
        result = self.station.update_local_list(list_version, full, entries)
        return call_result.SendLocalList(status=mapping.LOCAL_LIST[result])

    @on(Action.update_firmware)
    def on_update_firmware(
        self, location: str, retrieve_date: str, retries: int | None = None, retry_interval: int | None = None
    ) -> Any:
        """UpdateFirmware (OCPP 1.6 §5.19)."""
        return fw.update_firmware(self.station.firmware, location, retrieve_date, retries, retry_interval)

    @on(Action.signed_update_firmware)
    def on_signed_update_firmware(
        self,
        request_id: int,
        firmware: dict[str, Any],
        retries: int | None = None,
        retry_interval: int | None = None,
    ) -> Any:
        """SignedUpdateFirmware (Security whitepaper ed. 2 §4.4)."""
        return fw.signed_update_firmware(self.station.firmware, request_id, firmware, retries, retry_interval)

    @on(Action.get_diagnostics)
    def on_get_diagnostics(
        self,
        location: str,
        retries: int | None = None,
        retry_interval: int | None = None,
        start_time: str | None = None,
        stop_time: str | None = None,
    ) -> Any:
        """GetDiagnostics (OCPP 1.6 §5.9)."""
        return fw.get_diagnostics(
            self.station.diagnostics, location, retries, retry_interval, start_time, stop_time
        )

    @on(Action.get_log)
    def on_get_log(
        self,
        log: dict[str, Any],
        log_type: str,
        request_id: int,
        retries: int | None = None,
        retry_interval: int | None = None,
    ) -> Any:
        """GetLog (Security whitepaper ed. 2 §4.5)."""
        return fw.get_log(self.station.diagnostics, log_type, request_id, log, retries, retry_interval)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any) -> Any:
        """TriggerMessage (RemoteTrigger profile); the message follows the answer."""
        status = trigger_status(self.station.connectors, requested_message, connector_id, _TRIGGERABLE)
        if status == "Accepted" and not self.can_follow_up():
            status = "Rejected"  # still sending what was asked for before (bounded, like 2.0.1's)
        return call_result.TriggerMessage(status=status)

    @after(Action.trigger_message)
    def after_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> None:
        """Send what TriggerMessage asked for (allowed even while boot is Pending), in a task kept by reference;
        nothing for a Rejected one (an unknown connector)."""
        if (
            trigger_status(self.station.connectors, requested_message, connector_id, _TRIGGERABLE)
            == "Accepted"
            and self.can_follow_up()
        ):
            self.follow_up(
                self._send_triggered(requested_message, connector_id), f"trigger-{requested_message}"
            )

    async def _send_triggered(self, what: str, connector_id: int | None) -> None:
        try:
            await self._triggered(what, connector_id)
        except (CsmsRejected, CsmsUnavailable, OrphanedTransaction) as exc:
            log.warning("triggered %s failed: %s", what, exc)

    async def _triggered(self, what: str, connector_id: int | None) -> None:
        if what == "BootNotification":
            answer = await self.request("BootNotification", self._boot_payload(triggered=True))
            self._boot_answer(answer)
        elif what == "Heartbeat":
            await self.send_heartbeat()
        elif what == "StatusNotification":
            targets = [connector_id] if connector_id is not None else [0, *self.station.connectors]
            for cid in targets:
                await self.send_status(cid, force=True)
        elif what == "MeterValues":
            targets = [connector_id] if connector_id else list(self.station.connectors)
            for cid in targets:
                sample, local_tx = self.station.sample_now(cid)
                if sample is None:
                    continue
                mv: dict[str, Any] = {"connectorId": cid, "meterValue": [meter_value(sample)]}
                if local_tx is not None:
                    mv["transactionId"] = self._transaction_id(local_tx)
                await self.send_meter_values(mv)
        elif what in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
            # OCPP 1.6 §5.17: the current status (Idle when nothing is in progress).
            await self.request(*fw.triggered(what, self.station.firmware, self.station.diagnostics))


_TRIGGERABLE = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "MeterValues",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
    }
)
