"""OCPP 2.0.1: the central system's answers to chargers (frames to the same domain calls as 1.6)."""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from backend_stub.domain.ca import CsrVerdict
from backend_stub.domain.central import Central
from backend_stub.domain.commands import (
    AvailabilityKind,
    CertificateHash,
    CertificateKind,
    ChargingProfile,
    CommandReply,
    LocalListEntry,
    ProfilePurpose,
    ReportKind,
    ResetKind,
    VariableRef,
    VariableResult,
)
from backend_stub.domain.pricing import ENERGY
from backend_stub.errors import CommandFailed
from backend_stub.ocpp.admission import admitted
from backend_stub.ocpp.commands import OcppCommands, dicts_in, hash_from, iso, text_in
from backend_stub.ocpp.limits import (
    GET_VARIABLES_BYTES,
    GET_VARIABLES_ITEMS,
    LOCAL_LIST_BYTES,
    LOCAL_LIST_ITEMS,
    parse_limit,
    split,
)
from backend_stub.ocpp.server import (
    OCPP201,
    CallErrorReply,
    CentralSystem,
    Handler,
    HandlerResult,
    utc_now_iso,
)
from backend_stub.ocpp.v16 import MAX_CONNECTOR_ID, check_int, check_time, default_unit
from backend_stub.store import MAX_METER_WH, MAX_SAMPLE_VALUE, DeviceVariable, MeterSample

log = logging.getLogger(__name__)

SUBPROTOCOL: Final = OCPP201.subprotocol
MAX_SEQ_NO = 2**31 - 1  # OCPP 2.0.1 integers are 32-bit (JSON schema "integer", OCPP-J 2.0.1 §4.1.3)
MAX_MULTIPLIER = 9  # UnitOfMeasureType.multiplier: a power of ten; more than 1e9 is no meter
MAX_CHARGING_RATE = 10_000_000.0  # a limit in A or W: 10 MW is beyond any charger (MCS is 3.75 MW)
MAX_SCHEDULE_AHEAD = timedelta(days=366)  # an external limit planned further ahead is no plan


def check_rate(payload: dict[str, Any], name: str) -> float:
    """A charging rate (A or W) in [0, MAX_CHARGING_RATE]; CallError PropertyConstraintViolation for NaN, an
    infinity (JSON 1e309), a negative or a huge value."""
    value = payload[name]
    try:
        rate = float(value)
    except OverflowError:  # an integer beyond a float's range
        rate = math.inf
    if not (math.isfinite(rate) and 0 <= rate <= MAX_CHARGING_RATE):
        raise CallErrorReply(
            "PropertyConstraintViolation",
            f"{name} must lie in [0, {MAX_CHARGING_RATE:.0f}], got {str(value)[:40]}",
        )
    return rate


def check_charging_schedules(schedules: list[dict[str, Any]], now: datetime) -> None:
    """ChargingScheduleType values a station reports (K12): 32-bit ids and times, plausible start, usable rates."""
    for schedule in schedules:
        check_int(schedule, "id", -MAX_SEQ_NO - 1, MAX_SEQ_NO)
        if "duration" in schedule:
            check_int(schedule, "duration", 0, MAX_SEQ_NO)
        if "minChargingRate" in schedule:
            check_rate(schedule, "minChargingRate")
        if "startSchedule" in schedule:  # a planned limit may lie ahead, not in the year 9999
            check_time(schedule["startSchedule"], "startSchedule", now, ahead=MAX_SCHEDULE_AHEAD)
        for period in schedule["chargingSchedulePeriod"]:
            check_int(period, "startPeriod", 0, MAX_SEQ_NO)
            check_rate(period, "limit")
            if "numberPhases" in period:
                check_int(period, "numberPhases", 1, 3)
            if "phaseToUse" in period:
                check_int(period, "phaseToUse", 1, 3)


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
        self.server: CentralSystem | None = None

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
            "ReportChargingProfiles": self.acknowledge,
            # K12/K13: an external system set or released a limit on the station; nothing here plans around it.
            "NotifyChargingLimit": self.notify_charging_limit,
            "ClearedChargingLimit": self.cleared_charging_limit,
        }
        table = server.handlers_by_subprotocol[SUBPROTOCOL]
        for action, handler in handlers.items():
            table[action] = self.guard(action, handler)
        server.call_observers.append(self.on_call_answered)
        self.server = server

    def guard(self, action: str, handler: Handler) -> Handler:
        """``handler`` behind the admission rules both versions share (``admission.admitted``)."""
        return admitted(self.central, action, handler)

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
        # The answer comes from the station: any entry may be malformed (dicts_in/_name_of skip it).
        accepted = {
            (_name_of(r.get("component")), _name_of(r.get("variable")))
            for r in dicts_in(answer.get("setVariableResult"))
            if r.get("attributeStatus") == "Accepted"
        }
        for data in dicts_in(payload.get("setVariableData")):
            if (
                _name_of(data.get("component")) == "SecurityCtrlr"
                and _name_of(data.get("variable")) == "BasicAuthPassword"
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

    async def authorize(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """Authorize (OCPP 2.0.1 C01): the same cards, payment idTags and roaming tokens as 1.6."""
        token = payload["idToken"]["idToken"]
        status = await self.central.authorization.authorize_online(cp_id, token)
        return {"idTokenInfo": {"status": str(status)}}

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
            # E01.FR.16 / E02: the first event carrying the idToken starts our session. A transaction started
            # before it (held below) keeps its own start reading and time; otherwise the energy starts at the
            # register reading in this event (context Transaction.Begin), else 0.
            started = sessions.start_held(cp_id, station_tx_id, token)
            if started is None:
                started = sessions.start(
                    cp_id, evse_id or 1, token, register_wh(samples) or 0, at, station_tx_id=station_tx_id
                )
            tx_id, status = started
            answer["idTokenInfo"] = {"status": str(status)}
        elif tx_id is None and event_type == "Started":
            # E02/E03: started before authorization (e.g. TxStartPoint EVConnected); billed once an idToken comes.
            sessions.hold_unauthorized(
                cp_id, station_tx_id, evse_id or 1, register_wh(samples) or 0, at, seq_no
            )
            sessions.meter_values(cp_id, None, [], problems)
            return {}
        elif tx_id is None:
            held = (
                sessions.end_held(cp_id, station_tx_id)
                if event_type == "Ended"
                else sessions.touch_held(cp_id, station_tx_id, seq_no)
            )
            if not held:
                sessions.find(cp_id, station_tx_id, f"TransactionEvent {event_type}")
            sessions.meter_values(cp_id, None, [], problems)
            return {}
        elif token is not None:
            answer["idTokenInfo"] = {"status": str(self.central.authorization.authorize(cp_id, token))}
        if event_type == "Ended":
            sessions.sequence(cp_id, tx_id, seq_no)
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
            sessions.meter_values(cp_id, tx_id, samples, problems, seq_no)  # one store write for both
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
        self._learn_limits(cp_id, variables)
        return {}

    def _learn_limits(self, cp_id: str, variables: list[DeviceVariable]) -> None:
        """Keep the message limits a report names (``backend_stub.ocpp.limits``): no query is needed for them."""
        if self.server is None or cp_id not in self.server.connected:
            return
        limits = self.server.limits(cp_id)
        for v in variables:
            name = limit_name(v.component, v.variable, v.variable_instance)
            if (
                name is not None
                and v.attribute_type == "Actual"
                and v.component_instance is None
                and v.evse is None
            ):
                limits[name] = parse_limit(v.value)

    def firmware_status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """FirmwareStatusNotification (OCPP 2.0.1 L01)."""
        self.central.chargers.firmware_status(cp_id, payload["status"])
        return {}

    def sign_certificate(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """SignCertificate (OCPP 2.0.1 A02/A03): Accepted when the CSR's CN is the station id and our CA signs it;
        CertificateSigned (ChargingStationCertificate) follows. V2G certificates come from a V2G PKI (ISO 15118),
        not from this CA, so a V2GCertificate request is Rejected. A rejection says why in statusInfo (reasonCode, and
        the detail in additionalInfo): RateLimited beyond the charger's CSRs an hour (`SigningQuota`)."""
        if payload.get("certificateType", "ChargingStationCertificate") != "ChargingStationCertificate":
            verdict = CsrVerdict(
                False, "UnsupportedCertType", "V2G certificates come from a V2G PKI, not this CA"
            )
        else:
            verdict = self.central.certificates.sign_request(cp_id, payload["csr"])
        if verdict.accepted:
            return {"status": "Accepted"}
        return {
            "status": "Rejected",
            "statusInfo": {"reasonCode": verdict.reason, "additionalInfo": verdict.detail},
        }

    def data_transfer(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """DataTransfer (OCPP 2.0.1 P01): no vendor extension is known here."""
        return {"status": "UnknownVendorId"}

    def acknowledge(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """A notification whose content is not kept (an empty response)."""
        return {}

    def notify_charging_limit(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """NotifyChargingLimit (OCPP 2.0.1 K12): an external limit on the station, checked and acknowledged; nothing
        here plans around it, so nothing is kept. evseId must be > 0 (K12, the schema's description)."""
        if "evseId" in payload:
            check_int(payload, "evseId", 1, MAX_CONNECTOR_ID)
        check_charging_schedules(payload.get("chargingSchedule", []), self.central.clock())
        return {}

    def cleared_charging_limit(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """ClearedChargingLimit (OCPP 2.0.1 K13): an external limit released, checked and acknowledged."""
        if "evseId" in payload:
            check_int(payload, "evseId", 0, MAX_CONNECTOR_ID)
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


# The messages TriggerMessage can ask for (OCPP 2.0.1 MessageTriggerEnumType).
TRIGGERS_201: Final = frozenset(
    [
        "BootNotification",
        "LogStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "SignChargingStationCertificate",
        "SignV2GCertificate",
        "StatusNotification",
        "TransactionEvent",
        "SignCombinedCertificate",
        "PublishFirmwareStatusNotification",
    ]
)


_RFID_UID = re.compile(r"(?:[0-9A-Fa-f]{8}|[0-9A-Fa-f]{14}|[0-9A-Fa-f]{20})")  # 4, 7 or 10 byte UIDs


def _name_of(value: Any) -> str | None:
    """The ``name`` of a ComponentType / VariableType in a charger's answer, None if it has none."""
    return text_in(value.get("name"), 50) if isinstance(value, dict) else None


def _instance_of(value: Any) -> str | None:
    """The ``instance`` of a ComponentType / VariableType in a charger's answer, None if it has none."""
    return text_in(value.get("instance"), 50) if isinstance(value, dict) else None


# The message limits of a 2.0.1 station (``backend_stub.ocpp.limits``), as the Part 2 appendix names them.
LIMIT_VARIABLES: Final[dict[str, VariableRef]] = {
    GET_VARIABLES_ITEMS: VariableRef("DeviceDataCtrlr", "ItemsPerMessage", instance="GetVariables"),
    GET_VARIABLES_BYTES: VariableRef("DeviceDataCtrlr", "BytesPerMessage", instance="GetVariables"),
    LOCAL_LIST_ITEMS: VariableRef("LocalAuthListCtrlr", "ItemsPerMessage"),
    LOCAL_LIST_BYTES: VariableRef("LocalAuthListCtrlr", "BytesPerMessage"),
}
_LIMIT_NAMES: Final = {(r.component, r.variable, r.instance): name for name, r in LIMIT_VARIABLES.items()}


def limit_name(component: str, variable: str, instance: str | None) -> str | None:
    """The limit a device-model variable is (``LIMIT_VARIABLES``), None if it is none."""
    return _LIMIT_NAMES.get((component, variable, instance))


def id_token(token: str) -> dict[str, str]:
    """One of our tokens as an OCPP 2.0.1 IdTokenType: a card UID is ISO14443, anything else ours (Central)."""
    return {"idToken": token, "type": "ISO14443" if _RFID_UID.fullmatch(token) else "Central"}


def _variable_data(ref: VariableRef) -> dict[str, Any]:
    """A GetVariableDataType for ``ref``."""
    component: dict[str, Any] = {"name": ref.component}
    if ref.evse is not None:
        component["evse"] = {"id": ref.evse}
    variable: dict[str, Any] = {"name": ref.variable}
    if ref.instance is not None:
        variable["instance"] = ref.instance
    return {"component": component, "variable": variable}


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
        component = component or "ChargingStation"
        data = {
            "attributeValue": value,
            "component": {"name": component},
            "variable": {"name": variable},
        }
        reply = await self.send(charger, "SetVariables", {"setVariableData": [data]}, timeout_s=timeout_s)
        # The answer is a peer's: only an object naming the variable we set, with a short string status, is a
        # status (matched like the password observer matches it, so both read the same answer alike).
        results = [
            r
            for r in dicts_in(reply.get("setVariableResult"))
            if (_name_of(r.get("component")), _name_of(r.get("variable"))) == (component, variable)
        ][:1]
        status = text_in(results[0].get("attributeStatus"), 32) if results else None
        return CommandReply(status or "", {"setVariableResult": results})

    async def get_variables(
        self, charger: str, refs: list[VariableRef], *, timeout_s: float | None = None
    ) -> tuple[CommandReply, list[VariableResult]]:
        """GetVariables (OCPP 2.0.1 B06): one result per requested variable, matched by component, variable and
        instance; several variables go in as many requests as the station's ItemsPerMessageGetVariables and
        BytesPerMessageGetVariables ask (B06.FR.05), read once first if not known yet."""
        data = [_variable_data(ref) for ref in refs]
        parts = [data]
        if len(refs) > 1:
            limits = await self.limits(charger, (GET_VARIABLES_ITEMS, GET_VARIABLES_BYTES), timeout_s)
            parts = split(
                "GetVariables",
                {},
                "getVariableData",
                data,
                limits[GET_VARIABLES_ITEMS],
                limits[GET_VARIABLES_BYTES],
            )
        results: list[VariableResult] = []
        for part in parts:
            results += await self._get_part(charger, refs[len(results) : len(results) + len(part)], timeout_s)
        return CommandReply("", {}), results

    async def _get_part(
        self, charger: str, refs: list[VariableRef], timeout_s: float | None
    ) -> list[VariableResult]:
        """One GetVariables request; its results matched to ``refs`` (the limits among them are kept)."""
        data = [_variable_data(ref) for ref in refs]
        reply = await self._command(charger, "GetVariables", {"getVariableData": data}, timeout_s)
        answered: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
        for result in dicts_in(reply.fields.get("getVariableResult"), len(refs)):
            variable = result.get("variable")
            key = (_name_of(result.get("component")), _name_of(variable), _instance_of(variable))
            answered.setdefault(key, result)
        results = []
        for ref in refs:
            found = answered.get((ref.component, ref.variable, ref.instance))
            if (
                found is None and ref.instance is not None
            ):  # a station that leaves the instance out of its answer
                found = answered.get((ref.component, ref.variable, None))
            if found is None:
                results.append(VariableResult(ref, "Missing"))
                continue
            status = text_in(found.get("attributeStatus"), 32) or "Invalid"
            results.append(VariableResult(ref, status, text_in(found.get("attributeValue"))))
            name = limit_name(ref.component, ref.variable, ref.instance)
            if name is not None and status == "Accepted" and ref.evse is None:
                self.learn_limit(charger, name, results[-1].value)
        return results

    async def _read_limits(
        self, charger: str, names: list[str], timeout_s: float | None
    ) -> dict[str, int | None]:
        """GetVariables of the limits: the Part 2 variables (with their instance), then, for a station that does not
        know those, the same variables without the instance (one value for every message kind)."""
        refs = {name: LIMIT_VARIABLES[name] for name in names if name in LIMIT_VARIABLES}
        found = await self._ask(charger, list(refs.values()), timeout_s)
        plain = {
            name: VariableRef(ref.component, ref.variable)
            for name, ref in refs.items()
            if ref.instance is not None and (ref not in found or found[ref].status != "Accepted")
        }
        if plain:
            found.update(await self._ask(charger, list(plain.values()), timeout_s))
        limits: dict[str, int | None] = {}
        for name, ref in refs.items():
            result = found.get(ref)
            if (result is None or result.status != "Accepted") and name in plain:
                result = found.get(plain[name])
            limits[name] = parse_limit(result.value) if result and result.status == "Accepted" else None
        return limits

    async def _ask(
        self, charger: str, refs: list[VariableRef], timeout_s: float | None
    ) -> dict[VariableRef, VariableResult]:
        """Read a few variables whatever the station's ItemsPerMessage: one at a time when it takes fewer at once,
        known or learned from its OccurrenceConstraintViolation (then that limit is kept); any other CALLERROR says
        nothing (an empty answer)."""
        most = self.server.limits(charger).get(GET_VARIABLES_ITEMS)
        if len(refs) > 1 and most is not None and len(refs) > most:
            return await self._one_by_one(charger, refs, timeout_s)
        try:
            results = await self._get_part(charger, refs, timeout_s)
        except CommandFailed as exc:
            if not exc.is_call_error:
                raise
            if (
                exc.code in ("OccurrenceConstraintViolation", "OccurenceConstraintViolation")
                and len(refs) > 1
            ):
                if most is None and len(refs) == 2:  # it takes fewer than two (B06.FR.05): one
                    self.server.limits(charger)[GET_VARIABLES_ITEMS] = 1
                return await self._one_by_one(charger, refs, timeout_s)
            return {}
        return {result.ref: result for result in results}

    async def _one_by_one(
        self, charger: str, refs: list[VariableRef], timeout_s: float | None
    ) -> dict[VariableRef, VariableResult]:
        found: dict[VariableRef, VariableResult] = {}
        for ref in refs:
            found.update(await self._ask(charger, [ref], timeout_s))
        return found

    async def base_report(
        self, charger: str, kind: ReportKind, *, timeout_s: float | None = None
    ) -> tuple[CommandReply, None]:
        """GetBaseReport (OCPP 2.0.1 B07/B08): the device model follows in NotifyReport messages."""
        payload = {"requestId": next(self._request_ids), "reportBase": kind}
        return await self._command(charger, "GetBaseReport", payload, timeout_s), None

    async def set_basic_auth_password(
        self, charger: str, password: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """SetVariables of SecurityCtrlr.BasicAuthPassword (OCPP 2.0.1 A01: update the basic auth password)."""
        return await self.change_configuration(
            charger, "SecurityCtrlr.BasicAuthPassword", password, timeout_s=timeout_s
        )

    async def change_availability(
        self, charger: str, evse: int | None, kind: AvailabilityKind, *, timeout_s: float | None = None
    ) -> CommandReply:
        """ChangeAvailability (OCPP 2.0.1 G03/G04): without an EVSE the whole station."""
        payload: dict[str, Any] = {"operationalStatus": kind}
        if evse:
            payload["evse"] = {"id": evse}
        return await self._command(charger, "ChangeAvailability", payload, timeout_s)

    async def set_charging_profile(
        self, charger: str, evse: int, profile: ChargingProfile, *, timeout_s: float | None = None
    ) -> CommandReply:
        """SetChargingProfile (OCPP 2.0.1 K01): a TxProfile names the station's own transactionId."""
        schedule: dict[str, Any] = {
            "id": profile.profile_id,
            "chargingRateUnit": profile.unit,
            "chargingSchedulePeriod": [{"startPeriod": s, "limit": limit} for s, limit in profile.periods],
        }
        if profile.starts_at is not None:
            schedule["startSchedule"] = iso(profile.starts_at)
        body: dict[str, Any] = {
            "id": profile.profile_id,
            "stackLevel": profile.stack_level,
            "chargingProfilePurpose": profile.purpose,
            "chargingProfileKind": profile.kind,
            "chargingSchedule": [schedule],
        }
        if profile.charger_transaction is not None:
            body["transactionId"] = profile.charger_transaction
        elif profile.transaction is not None:
            station_tx_id = self.station_tx_id(profile.transaction)
            if station_tx_id is None:
                raise CommandFailed(
                    CommandFailed.NOT_IN_VERSION,
                    f"transaction {profile.transaction} has no OCPP 2.0.1 transactionId",
                )
            body["transactionId"] = station_tx_id
        if profile.recurrency is not None:
            body["recurrencyKind"] = profile.recurrency
        payload = {"evseId": evse, "chargingProfile": body}
        return await self._command(charger, "SetChargingProfile", payload, timeout_s)

    async def clear_charging_profile(
        self,
        charger: str,
        profile_id: int | None,
        evse: int | None,
        purpose: ProfilePurpose | None,
        *,
        stack_level: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """ClearChargingProfile (OCPP 2.0.1 K10): an id, or criteria (EVSE, purpose, stack level)."""
        payload: dict[str, Any] = {}
        if profile_id is not None:
            payload["chargingProfileId"] = profile_id
        criteria: dict[str, Any] = {}
        if evse is not None:
            criteria["evseId"] = evse
        if purpose is not None:
            criteria["chargingProfilePurpose"] = purpose
        if stack_level is not None:
            criteria["stackLevel"] = stack_level
        if criteria:
            payload["chargingProfileCriteria"] = criteria
        return await self._command(charger, "ClearChargingProfile", payload, timeout_s)

    async def composite_schedule(
        self,
        charger: str,
        evse: int,
        duration_s: int,
        unit: Literal["A", "W"] | None,
        *,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """GetCompositeSchedule (OCPP 2.0.1 K08)."""
        payload: dict[str, Any] = {"evseId": evse, "duration": duration_s}
        if unit is not None:
            payload["chargingRateUnit"] = unit
        return await self._command(charger, "GetCompositeSchedule", payload, timeout_s)

    async def update_firmware(
        self, charger: str, location: str, retrieve_at: datetime, *, timeout_s: float | None = None
    ) -> CommandReply:
        """UpdateFirmware (OCPP 2.0.1 L01), unsigned firmware."""
        payload = {
            "requestId": next(self._request_ids),
            "firmware": {"location": location, "retrieveDateTime": iso(retrieve_at)},
        }
        return await self._command(charger, "UpdateFirmware", payload, timeout_s)

    async def send_local_list(
        self,
        charger: str,
        version: int,
        entries: list[LocalListEntry],
        full: bool,
        *,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """SendLocalList (OCPP 2.0.1 D01) in as many messages as the station's LocalAuthListCtrlr.ItemsPerMessage
        and BytesPerMessage ask (read once first if not known yet): a Full list as a Full update and then
        Differential updates, the versions rising to ``version`` (``limits.versions_for``)."""
        items: list[dict[str, Any]] = []
        for entry in entries:
            item: dict[str, Any] = {"idToken": id_token(entry.token)}
            if entry.status is not None:
                item["idTokenInfo"] = {"status": entry.status}
            items.append(item)

        def payload_of(number: int, is_full: bool, part: list[dict[str, Any]]) -> dict[str, Any]:
            payload: dict[str, Any] = {
                "versionNumber": number,
                "updateType": "Full" if is_full else "Differential",
            }
            if part:
                payload["localAuthorizationList"] = part
            return payload

        parts = [items]
        if len(items) > 1:
            limits = await self.limits(charger, (LOCAL_LIST_ITEMS, LOCAL_LIST_BYTES), timeout_s)
            parts = split(
                "SendLocalList",
                payload_of(
                    version, False, []
                ),  # "Differential": the longer update type, sized for every part
                "localAuthorizationList",
                items,
                limits[LOCAL_LIST_ITEMS],
                limits[LOCAL_LIST_BYTES],
            )
        return await self._send_list_parts(
            charger, "SendLocalList", version, full, parts, payload_of, timeout_s
        )

    async def reserve_now(
        self,
        charger: str,
        reservation_id: int,
        evse: int | None,
        token: str,
        expires_at: datetime,
        *,
        connector_type: str | None = None,
        group_token: str | None = None,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """ReserveNow (OCPP 2.0.1 H01): without an EVSE, any EVSE (with a connector of ``connector_type``, if
        given); with a group token, any token of that group may use the reservation."""
        payload: dict[str, Any] = {
            "id": reservation_id,
            "expiryDateTime": iso(expires_at),
            "idToken": id_token(token),
        }
        if evse:
            payload["evseId"] = evse
        if connector_type is not None:
            payload["connectorType"] = connector_type
        if group_token is not None:
            payload["groupIdToken"] = id_token(group_token)
        return await self._command(charger, "ReserveNow", payload, timeout_s)

    async def trigger(
        self, charger: str, message: str, evse: int | None = None, *, timeout_s: float | None = None
    ) -> CommandReply:
        """TriggerMessage (OCPP 2.0.1 F06)."""
        if message not in TRIGGERS_201:
            raise CommandFailed(
                CommandFailed.NOT_IN_VERSION, f"{message[:64]!r} is not a message OCPP 2.0.1 can trigger"
            )
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
