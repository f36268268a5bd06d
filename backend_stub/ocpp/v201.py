"""OCPP 2.0.1: the central system's answers to chargers (frames to the same domain calls as 1.6)."""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

from backend_stub.domain.central import Central
from backend_stub.domain.commands import CertificateHash, CertificateKind, CommandReply, ResetKind
from backend_stub.domain.pricing import ENERGY
from backend_stub.errors import CommandFailed
from backend_stub.ocpp.commands import OcppCommands, hash_from
from backend_stub.ocpp.server import (
    OCPP201,
    CallErrorReply,
    CentralSystem,
    Handler,
    HandlerResult,
    utc_now_iso,
)
from backend_stub.ocpp.v16 import MAX_CONNECTOR_ID, check_int, check_time, default_unit
from backend_stub.store import MAX_METER_WH, MAX_SAMPLE_VALUE, DeviceVariable, InvalidInput, MeterSample

log = logging.getLogger(__name__)

SUBPROTOCOL: Final = OCPP201.subprotocol
MAX_SEQ_NO = 2**31 - 1  # OCPP 2.0.1 integers are 32-bit (JSON schema "integer", OCPP-J 2.0.1 §4.1.3)
MAX_MULTIPLIER = 9  # UnitOfMeasureType.multiplier: a power of ten; more than 1e9 is no meter


def samples_from_meter_values(
    meter_values: list[dict[str, Any]], now: datetime
) -> tuple[list[MeterSample], list[str]]:
    """OCPP 2.0.1 MeterValueType objects as store samples, and why each unusable sample was left out.

    2.0.1 values are JSON numbers scaled by unitOfMeasure.multiplier (a power of ten, §2.37); a value that is not
    finite or lies beyond MAX_SAMPLE_VALUE after scaling is left out alone. A bad timestamp raises a CallError.
    """
    out: list[MeterSample] = []
    problems: list[str] = []
    for mv in meter_values:
        at = check_time(mv["timestamp"], "meterValue.timestamp", now)
        for sv in mv["sampledValue"]:
            measurand = sv.get("measurand", ENERGY)
            unit_of_measure = sv.get("unitOfMeasure", {})
            raw = sv["value"]
            multiplier = unit_of_measure.get("multiplier", 0)
            value = math.nan
            if (
                isinstance(raw, int | float)
                and not isinstance(raw, bool)
                and type(multiplier) is int
                and abs(multiplier) <= MAX_MULTIPLIER
            ):
                try:
                    value = float(raw) * 10.0**multiplier
                except OverflowError:  # an integer beyond a float's range
                    value = math.inf
            if not (math.isfinite(value) and abs(value) <= MAX_SAMPLE_VALUE):
                problems.append(f"{measurand} value {str(raw)[:40]!r} is not a usable number")
                continue
            out.append(
                MeterSample(
                    at,
                    value,
                    measurand,
                    unit_of_measure.get("unit", default_unit(measurand)),
                    sv.get("phase"),
                    sv.get("context"),
                    sv.get("location"),
                )
            )
    return out, problems


def register_wh(samples: list[MeterSample]) -> int | None:
    """The latest reading of the billed energy register (the charger's own, Outlet) in Wh, or None."""
    readings = [
        s
        for s in samples
        if s.measurand == ENERGY
        and s.phase is None
        and s.location in (None, "Outlet")
        and s.unit in ("Wh", "kWh")
    ]
    if not readings:
        return None
    latest = max(readings, key=lambda s: s.timestamp)
    wh = round(latest.value * (1000 if latest.unit == "kWh" else 1))
    if not 0 <= wh <= MAX_METER_WH:
        raise CallErrorReply("PropertyConstraintViolation", f"energy register {wh} Wh is out of range")
    return wh


class V201Handlers:
    """The OCPP 2.0.1 answers of the bundled central system: each frame checked, then handed to the domain."""

    def __init__(self, central: Central) -> None:
        """Answer for ``central``."""
        self.central = central

    def install(self, server: CentralSystem) -> None:
        """Make these the 2.0.1 handlers of ``server``."""
        handlers: dict[str, Handler] = {
            "BootNotification": self.boot,
            "Heartbeat": self.heartbeat,
            "StatusNotification": self.status,
            "Authorize": self.authorize,
            "TransactionEvent": self.transaction_event,
            "MeterValues": self.meter_values,
            "FirmwareStatusNotification": self.firmware_status,
            "SignCertificate": self.sign_certificate,
            "DataTransfer": self.data_transfer,
            # Notifications whose content is not kept: acknowledged with their empty response.
            "SecurityEventNotification": self.acknowledge,
            "LogStatusNotification": self.acknowledge,
            "NotifyReport": self.notify_report,
            "ReservationStatusUpdate": self.acknowledge,
            "NotifyEvent": self.acknowledge,
        }
        table = server.handlers_by_subprotocol[SUBPROTOCOL]
        for action, handler in handlers.items():
            table[action] = self.guard(action, handler)
        server.call_observers.append(self.on_call_answered)

    def guard(self, action: str, handler: Handler) -> Handler:
        """``handler`` answering only Accepted chargers (but BootNotification), with store refusals as CallErrors."""

        def guarded(cp_id: str, payload: dict[str, Any]) -> HandlerResult | Awaitable[HandlerResult]:
            # OCPP 2.0.1 B02.FR.09 / B03.FR.02: a Pending or Rejected station sends nothing but
            # BootNotification (unless triggered); SecurityError says why and gives nothing away.
            if action != "BootNotification" and not self.central.chargers.refuse_unless_accepted(
                cp_id, action
            ):
                raise CallErrorReply(
                    "SecurityError", f"{action} is refused until BootNotification is Accepted"
                )
            try:
                return handler(cp_id, payload)
            except InvalidInput as exc:
                raise CallErrorReply("PropertyConstraintViolation", str(exc)[:200]) from None

        return guarded

    def on_call_answered(
        self, cp_id: str, action: str, payload: dict[str, Any], answer: dict[str, Any]
    ) -> None:
        """After a station accepted a new SecurityCtrlr.BasicAuthPassword, its password is that value.

        OCPP 2.0.1 A01 (Update Charging Station Password for HTTP Basic Authentication): the station answers the
        SetVariablesRequest Accepted, then reconnects with the new password; RebootRequired is not taken (the
        station keeps the old one until it reboots). Results are matched to requests by component and variable.
        """
        if action != "SetVariables":
            return
        accepted = {
            (r.get("component", {}).get("name"), r.get("variable", {}).get("name"))
            for r in answer.get("setVariableResult", [])
            if isinstance(r, dict) and r.get("attributeStatus") == "Accepted"
        }
        for data in payload.get("setVariableData", []):
            if (
                data.get("component", {}).get("name") == "SecurityCtrlr"
                and data.get("variable", {}).get("name") == "BasicAuthPassword"
                and ("SecurityCtrlr", "BasicAuthPassword") in accepted
                and isinstance(data.get("attributeValue"), str)
                and data["attributeValue"]
            ):
                self.central.chargers.set_password(cp_id, data["attributeValue"])
                log.info("station %s accepted a new BasicAuthPassword; it is now its password", cp_id)

    def boot(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """BootNotification (OCPP 2.0.1 B01-B03): the registry's status for the station."""
        station = payload["chargingStation"]
        charger = self.central.chargers.boot(
            cp_id,
            vendor=station["vendorName"],
            model=station["model"],
            firmware=station.get("firmwareVersion"),
            serial_number=station.get("serialNumber"),
        )
        status = {"accepted": "Accepted", "pending": "Pending", "rejected": "Rejected"}[str(charger.status)]
        return {"status": status, "currentTime": utc_now_iso(), "interval": self.central.heartbeat_interval_s}

    def heartbeat(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """Heartbeat (OCPP 2.0.1 G02)."""
        self.central.chargers.heartbeat(cp_id)
        return {"currentTime": utc_now_iso()}

    def status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """StatusNotification (OCPP 2.0.1 G01): kept per EVSE, the connector named in the info."""
        evse = check_int(payload, "evseId", 0, MAX_CONNECTOR_ID)
        connector = check_int(payload, "connectorId", 0, MAX_CONNECTOR_ID)
        at = check_time(payload["timestamp"], "timestamp", self.central.clock())
        self.central.chargers.connector_status(
            cp_id, evse, payload["connectorStatus"], at, error_code="NoError", info=f"connector {connector}"
        )
        return {}

    def authorize(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """Authorize (OCPP 2.0.1 C01): the same cards and payment idTags as 1.6."""
        token = payload["idToken"]["idToken"]
        return {"idTokenInfo": {"status": str(self.central.authorization.authorize(cp_id, token))}}

    def transaction_event(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """TransactionEvent (OCPP 2.0.1 E01-E15): Started/Updated/Ended on the sender's own sessions.

        A session is keyed by (charger, transactionId). The first event with an idToken creates it (a Started,
        or a later event after plug-in-first, E02); repeated events are idempotent (samples deduplicated, an
        Ended charged once), seqNo gaps are recorded (E.FR.xx: seqNo increments by one per transaction).
        """
        now = self.central.clock()
        event_type = payload["eventType"]
        seq_no = check_int(payload, "seqNo", 0, MAX_SEQ_NO)
        at = check_time(payload["timestamp"], "timestamp", now)
        info = payload["transactionInfo"]
        station_tx_id: str = info["transactionId"]
        samples, problems = samples_from_meter_values(payload.get("meterValue", []), now)
        evse_id = None
        if "evse" in payload:
            evse_id = check_int(payload["evse"], "id", 1, MAX_CONNECTOR_ID)
        token = payload.get("idToken", {}).get("idToken") or None
        sessions = self.central.sessions
        answer: dict[str, Any] = {}
        tx_id = sessions.lookup(cp_id, station_tx_id)
        if tx_id is None and token is not None:
            # E01.FR.16 / E02: the first event carrying the idToken starts our session; its energy starts at
            # the register reading in this event (context Transaction.Begin), else 0.
            meter_start_wh = register_wh(samples) or 0
            tx_id, status = sessions.start(
                cp_id, evse_id or 1, token, meter_start_wh, at, station_tx_id=station_tx_id
            )
            answer["idTokenInfo"] = {"status": str(status)}
        elif tx_id is None:
            sessions.find(cp_id, station_tx_id, f"TransactionEvent {event_type}")
            sessions.meter_values(cp_id, None, [], problems)
            return {}
        elif token is not None:
            answer["idTokenInfo"] = {"status": str(self.central.authorization.authorize(cp_id, token))}
        sessions.sequence(cp_id, tx_id, seq_no)
        if event_type == "Ended":
            meter_stop_wh = register_wh(samples)
            if meter_stop_wh is None:
                meter_stop_wh = self.central.store.transaction(tx_id).last_meter_wh
            sessions.stop(
                cp_id,
                tx_id,
                meter_stop_wh,
                at,
                info.get("stoppedReason", "Local"),
                samples,
                problems,
                None,
            )
        else:
            sessions.meter_values(cp_id, tx_id, samples, problems)
        return answer

    def meter_values(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """MeterValues (OCPP 2.0.1 J01): outside a transaction, so only their problems are recorded."""
        check_int(payload, "evseId", 0, MAX_CONNECTOR_ID)
        _samples, problems = samples_from_meter_values(payload["meterValue"], self.central.clock())
        self.central.sessions.meter_values(cp_id, None, [], problems)
        return {}

    def notify_report(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """NotifyReport (OCPP 2.0.1 B07/B08): each chunk's reported values are kept as the charger's device model."""
        variables: list[DeviceVariable] = []
        for data in payload.get("reportData", []):
            component, variable = data["component"], data["variable"]
            evse = component.get("evse", {})
            evse_id = check_int(evse, "id", 0, MAX_CONNECTOR_ID) if "id" in evse else None
            connector_id = (
                check_int(evse, "connectorId", 0, MAX_CONNECTOR_ID) if "connectorId" in evse else None
            )
            for attribute in data["variableAttribute"]:
                variables.append(
                    DeviceVariable(
                        component["name"],
                        variable["name"],
                        attribute.get("value"),
                        evse_id,
                        connector_id,
                        component.get("instance"),
                        variable.get("instance"),
                        attribute.get("type", "Actual"),
                    )
                )
        self.central.chargers.device_model_report(cp_id, variables)
        return {}

    def firmware_status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """FirmwareStatusNotification (OCPP 2.0.1 L01)."""
        self.central.chargers.firmware_status(cp_id, payload["status"])
        return {}

    def sign_certificate(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """SignCertificate (OCPP 2.0.1 A02): no certificate authority here yet, so Rejected."""
        return {"status": "Rejected"}

    def data_transfer(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """DataTransfer (OCPP 2.0.1 P01): no vendor extension is known here."""
        return {"status": "UnknownVendorId"}

    def acknowledge(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """A notification whose content is not kept (an empty response)."""
        return {}


# OCPP 2.0.1 messages a CSMS sends (Part 2, by functional block).
CSMS_ACTIONS: Final = frozenset(
    {
        "CancelReservation",
        "CertificateSigned",
        "ChangeAvailability",
        "ClearCache",
        "ClearChargingProfile",
        "ClearDisplayMessage",
        "ClearVariableMonitoring",
        "CostUpdated",
        "CustomerInformation",
        "DataTransfer",
        "DeleteCertificate",
        "GetBaseReport",
        "GetChargingProfiles",
        "GetCompositeSchedule",
        "GetDisplayMessages",
        "GetInstalledCertificateIds",
        "GetLocalListVersion",
        "GetLog",
        "GetMonitoringReport",
        "GetReport",
        "GetTransactionStatus",
        "GetVariables",
        "InstallCertificate",
        "PublishFirmware",
        "RequestStartTransaction",
        "RequestStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "SetDisplayMessage",
        "SetMonitoringBase",
        "SetMonitoringLevel",
        "SetNetworkProfile",
        "SetVariableMonitoring",
        "SetVariables",
        "TriggerMessage",
        "UnlockConnector",
        "UnpublishFirmware",
        "UpdateFirmware",
    }
)
# ResetKind -> OCPP 2.0.1 ResetEnumType (B11/B12): Soft waits for sessions to end, Hard does not.
RESET_TYPES: Final[dict[str, str]] = {"Soft": "OnIdle", "Hard": "Immediate"}


# OCPP 2.0.1 GetCertificateIdUseEnumType / InstallCertificateUseEnumType for the port's kinds.
_CERTIFICATE_TYPES: Final[dict[CertificateKind, str]] = {
    "csms_root": "CSMSRootCertificate",
    "manufacturer_root": "ManufacturerRootCertificate",
}


class V201Commands(OcppCommands):
    """The ChargerCommands port over OCPP 2.0.1 CALLs."""

    VERSION = OCPP201
    ACTIONS = CSMS_ACTIONS
    CERTIFICATE_TYPES = _CERTIFICATE_TYPES
    REQUEST_SUFFIX = "Request"

    def __init__(self, server: CentralSystem, station_tx_id: Callable[[int], str | None]) -> None:
        """Send through ``server``; ``station_tx_id`` gives the charger's own id of one of our transactions."""
        super().__init__(server)
        self.station_tx_id = station_tx_id
        self._request_ids = itertools.count(1)  # remoteStartId / requestId, unique per run

    async def remote_start(
        self, charger: str, evse: int | None, token: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """RequestStartTransaction (OCPP 2.0.1 F01/F02): the token is the central system's own (type Central)."""
        payload: dict[str, Any] = {
            "idToken": {"idToken": token, "type": "Central"},
            "remoteStartId": next(self._request_ids),
        }
        if evse is not None:
            payload["evseId"] = evse
        return await self._command(charger, "RequestStartTransaction", payload, timeout_s)

    async def remote_stop(
        self, charger: str, transaction: int, *, timeout_s: float | None = None
    ) -> CommandReply:
        """RequestStopTransaction (OCPP 2.0.1 F03) by the charger's own transactionId."""
        station_tx_id = self.station_tx_id(transaction)
        if station_tx_id is None:
            raise CommandFailed("NotSupported", f"transaction {transaction} has no OCPP 2.0.1 transactionId")
        return await self._command(
            charger, "RequestStopTransaction", {"transactionId": station_tx_id}, timeout_s
        )

    async def reset(self, charger: str, kind: ResetKind, *, timeout_s: float | None = None) -> CommandReply:
        """Reset (OCPP 2.0.1 B11/B12) of the whole station."""
        return await self._command(charger, "Reset", {"type": RESET_TYPES[kind]}, timeout_s)

    async def unlock(self, charger: str, evse: int, *, timeout_s: float | None = None) -> CommandReply:
        """UnlockConnector (OCPP 2.0.1 F05): connector 1 of ``evse``."""
        return await self._command(charger, "UnlockConnector", {"evseId": evse, "connectorId": 1}, timeout_s)

    async def get_diagnostics(
        self, charger: str, location: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """GetLog (OCPP 2.0.1 N01) of the diagnostics log."""
        payload = {
            "logType": "DiagnosticsLog",
            "requestId": next(self._request_ids),
            "log": {"remoteLocation": location},
        }
        return await self._command(charger, "GetLog", payload, timeout_s)

    async def change_configuration(
        self, charger: str, key: str, value: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """SetVariables (OCPP 2.0.1 B05) of one variable, ``key`` as "Component.Variable"."""
        component, _, variable = key.rpartition(".")
        data = {
            "attributeValue": value,
            "component": {"name": component or "ChargingStation"},
            "variable": {"name": variable},
        }
        reply = await self.send(charger, "SetVariables", {"setVariableData": [data]}, timeout_s=timeout_s)
        results = reply.get("setVariableResult") or [{}]
        return CommandReply(str(results[0].get("attributeStatus", "")), reply)

    async def trigger(
        self, charger: str, message: str, evse: int | None = None, *, timeout_s: float | None = None
    ) -> CommandReply:
        """TriggerMessage (OCPP 2.0.1 F06)."""
        payload: dict[str, Any] = {"requestedMessage": message}
        if evse is not None:
            payload["evse"] = {"id": evse}
        return await self._command(charger, "TriggerMessage", payload, timeout_s)

    async def certificate_signed(
        self, charger: str, chain_pem: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """CertificateSigned (OCPP 2.0.1 A02/A03): the chain for the charger's own (station) certificate."""
        payload = {"certificateChain": chain_pem, "certificateType": "ChargingStationCertificate"}
        return await self._command(charger, "CertificateSigned", payload, timeout_s)

    async def installed_certificates(
        self, charger: str, kind: CertificateKind, *, timeout_s: float | None = None
    ) -> tuple[CommandReply, list[CertificateHash]]:
        """GetInstalledCertificateIds (OCPP 2.0.1 M03)."""
        payload = {"certificateType": [_CERTIFICATE_TYPES[kind]]}
        reply = await self._command(charger, "GetInstalledCertificateIds", payload, timeout_s)
        chains = reply.fields.get("certificateHashDataChain")
        found = (
            [c.get("certificateHashData") for c in chains if isinstance(c, dict)]
            if isinstance(chains, list)
            else []
        )
        hashes = [h for h in map(hash_from, found) if h is not None]
        return reply, hashes
