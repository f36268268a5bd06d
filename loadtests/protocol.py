"""Version table of the load-test charger: the messages it sends and its answers to central-system calls.

Everything that depends on the OCPP version lives behind `OcppVersion`; the charger and the transport only see
`Request`, `Answer` and the intents below. `VERSIONS` is keyed by the WebSocket subprotocol: `Ocpp16` and
`Ocpp201` (TransactionEvent with the station's own transactionId and seqNo instead of Start/Stop).
No gevent and no I/O in this module: it is pure and unit-tested.
"""

from __future__ import annotations

import enum
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeAlias

from ocpp import messages as ocpp_messages
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallResult

__all__ = [
    "VERSIONS",
    "Answer",
    "Availability",
    "ChargerView",
    "ConfigChanged",
    "Intent",
    "Ocpp16",
    "Ocpp201",
    "OcppVersion",
    "RemoteStart",
    "RemoteStop",
    "Request",
    "ResetRequested",
    "StationInfo",
    "StopReason",
    "Trigger",
    "Unlock",
    "utc_iso",
    "validate",
]

Payload: TypeAlias = dict[str, Any]


def utc_iso(now: datetime | None = None) -> str:
    """UTC time as ISO 8601 with milliseconds and a Z suffix (OCPP dateTime)."""
    when = now if now is not None else datetime.now(UTC)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Request:
    """A CALL the charger sends: its action (the Locust request name) and payload."""

    action: str
    payload: Payload


@dataclass(frozen=True, slots=True)
class StationInfo:
    """What the charger says about itself in its boot message."""

    cp_id: str
    vendor: str = "OpenChargeStack"
    model: str = "LocustCharger"
    firmware_version: str = "loadtests-0.1"


class StopReason(enum.Enum):
    """Version-neutral reasons a session ends; each version maps every member."""

    LOCAL = "local"
    REMOTE = "remote"
    POWER_LOSS = "power_loss"
    SOFT_RESET = "soft_reset"
    HARD_RESET = "hard_reset"
    UNLOCK = "unlock"
    DE_AUTHORIZED = "de_authorized"


# Intents: what a central-system call asks the charger to do after it has been answered.
@dataclass(frozen=True, slots=True)
class RemoteStart:
    """Start a session for this idTag now (the call was accepted)."""

    id_tag: str
    connector_id: int
    remote_start_id: int | None = None  # OCPP 2.0.1 RequestStartTransaction.remoteStartId, told in Started
    token_type: str | None = None  # the idToken's type as the central system gave it (2.0.1)


@dataclass(frozen=True, slots=True)
class RemoteStop:
    """Stop the running session."""

    transaction_id: int | str


@dataclass(frozen=True, slots=True)
class ResetRequested:
    """Reboot: end the session, close the connection, connect and boot again (``on_idle``: once the running
    session has ended, OCPP 2.0.1 B12 OnIdle answered Scheduled)."""

    hard: bool
    on_idle: bool = False


@dataclass(frozen=True, slots=True)
class Trigger:
    """Send this message now (TriggerMessage)."""

    message: str
    connector_id: int | None


@dataclass(frozen=True, slots=True)
class Unlock:
    """The cable was unlocked: end a session on this connector."""

    connector_id: int


@dataclass(frozen=True, slots=True)
class Availability:
    """The connector became operative or inoperative (after any running session)."""

    connector_id: int
    operative: bool


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """A configuration key was changed; applied before the answer is sent."""

    key: str
    value: str


Intent: TypeAlias = (
    RemoteStart | RemoteStop | ResetRequested | Trigger | Unlock | Availability | ConfigChanged
)


@dataclass(frozen=True, slots=True)
class ChargerView:
    """What answering a central-system call needs to know of the charger."""

    connector_ids: tuple[int, ...]
    transaction_id: int | str | None
    busy: bool  # a session is running or about to start
    config: Mapping[str, str]
    # A session runs, is being started (its start not answered yet) or was asked for: not idle (Reset OnIdle).
    session: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """The reply to a central-system CALL: a CALLRESULT payload or a CALLERROR, plus follow-up intents."""

    payload: Payload | None = None
    error_code: str | None = None
    error_description: str = ""
    intents: tuple[Intent, ...] = ()


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """A configuration key the charger reports and (unless read-only) accepts changes to."""

    readonly: bool
    check: Callable[[str], bool] = field(default=lambda value: True)


def _non_negative_int(value: str) -> bool:
    return value.isdigit() and len(value) <= 9


# `ocpp.messages.validate_payload` is a coroutine that hands its work to an asyncio thread pool unless this is off;
# a Locust process has no event loop (gevent), and validating in the user's greenlet is cheaper anyway.
ocpp_messages.ASYNC_VALIDATION = False


def validate(message: Call | CallResult, schema_version: str) -> None:
    """Check a CALL or CALLRESULT payload with the package's public `validate_payload`, in this greenlet; raises
    ocpp.exceptions.OCPPError as it does."""
    steps = ocpp_messages.validate_payload(message, schema_version)
    try:
        steps.send(None)  # with ASYNC_VALIDATION off it never suspends: StopIteration is its return
    except StopIteration:
        return
    steps.close()
    raise RuntimeError("ocpp.messages.ASYNC_VALIDATION is on: no event loop to validate in")


class OcppVersion(ABC):
    """Version-specific message building and answering; one instance serves every charger."""

    subprotocol: ClassVar[str]
    schema_version: ClassVar[str]  # the version string `ocpp.messages` finds its JSON schemas by

    def validate_call(self, action: str, payload: Payload) -> None:
        """Check a CALL payload against the version's schema; raises ocpp.exceptions.OCPPError."""
        validate(Call("0", action, payload), self.schema_version)

    def wire_error_code(self, code: str) -> str:
        """The error code as this version spells it on the wire."""
        return code

    @abstractmethod
    def default_config(self) -> dict[str, str]:
        """The charger's configuration keys and their initial values."""

    @abstractmethod
    def boot_notification(self, station: StationInfo) -> Request:
        """The boot message."""

    def boot_result(self, payload: Payload) -> tuple[str, int]:
        """Registration status ('Accepted', 'Pending', 'Rejected') and heartbeat interval (s) of a boot answer
        (BootNotification.conf and BootNotificationResponse have both fields under the same names)."""
        return str(payload["status"]), int(payload["interval"])

    def heartbeat(self) -> Request:
        """A heartbeat (an empty Heartbeat request in both versions)."""
        return Request("Heartbeat", {})

    @abstractmethod
    def status_notification(self, connector_id: int, status: str) -> Request | None:
        """A connector status (Available, Preparing, Charging, Finishing, Unavailable); None if the version has
        no such message for `connector_id` (2.0.1 reports no connector 0)."""

    @abstractmethod
    def authorize(self, id_tag: str) -> Request:
        """Ask whether an idTag may charge."""

    @abstractmethod
    def id_tag_status(self, payload: Payload) -> str:
        """The authorization status in an Authorize or start answer ('Accepted' when charging may go on)."""

    def new_transaction_id(self) -> str | None:
        """The id of a session the charger starts, or None when the central system assigns it (1.6)."""
        return None

    # Whether a session's messages the charger could not send (offline) are queued and sent after it is back
    # online. Only where a session's messages carry the station's own id (2.0.1): a 1.6 MeterValues needs the
    # central system's transactionId, and the 1.6 user keeps its behaviour of not queueing.
    QUEUES_OFFLINE: ClassVar[bool] = False

    def replayed(self, request: Request) -> Request:
        """A queued session message as sent after an offline period (2.0.1: flagged offline)."""
        return request

    @abstractmethod
    def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_wh: int,
        *,
        transaction_id: str | None = None,
        seq_no: int = 0,
        remote: RemoteStart | None = None,
    ) -> Request:
        """Start a session (`transaction_id` from new_transaction_id, `seq_no` its message number, `remote` the
        remote start that asked for it)."""

    @abstractmethod
    def transaction_id(self, payload: Payload, proposed: str | None = None) -> int | str:
        """The transaction id of a started session, from the start answer or the charger's own `proposed` one."""

    @abstractmethod
    def meter_values(
        self,
        connector_id: int,
        transaction_id: int | str | None,
        energy_wh: int,
        power_w: float,
        *,
        seq_no: int = 0,
    ) -> Request:
        """A periodic meter reading (energy register and power)."""

    @abstractmethod
    def stop_transaction(
        self, transaction_id: int | str, id_tag: str, meter_wh: int, reason: StopReason, *, seq_no: int = 0
    ) -> Request:
        """End a session."""

    @abstractmethod
    def notification(self, message: str) -> Request | None:
        """A triggered message that carries no charger state (e.g. a firmware status), or None."""

    # Central-system actions this charger recognises but does not support (NotSupported); any other action it
    # has no answer for is NotImplemented.
    RECOGNISED: ClassVar[frozenset[str]] = frozenset()
    _ANSWERS: ClassVar[Mapping[str, Callable[[Any, Payload, ChargerView], Answer]]] = {}

    def answer(self, action: str, payload: Payload, view: ChargerView) -> Answer:
        """Answer a central-system CALL (its payload already schema-valid) with the version's handler."""
        handler = self._ANSWERS.get(action)
        if handler is not None:
            return handler(self, payload, view)
        if action in self.RECOGNISED:
            return Answer(error_code="NotSupported", error_description=f"{action} is not supported")
        return Answer(error_code="NotImplemented", error_description=f"unknown action {action}")


class Ocpp16(OcppVersion):
    """OCPP 1.6J (Core and RemoteTrigger profiles)."""

    subprotocol = "ocpp1.6"
    schema_version = "1.6"

    STOP_REASONS: ClassVar[Mapping[StopReason, str]] = {
        StopReason.LOCAL: "Local",
        StopReason.REMOTE: "Remote",
        StopReason.POWER_LOSS: "PowerLoss",
        StopReason.SOFT_RESET: "SoftReset",
        StopReason.HARD_RESET: "HardReset",
        StopReason.UNLOCK: "UnlockCommand",
        StopReason.DE_AUTHORIZED: "DeAuthorized",
    }
    # The ocpp package raises FormatViolation; OCPP 1.6 (§4.2.3 of OCPP-J) spells it FormationViolation.
    ERROR_ALIASES: ClassVar[Mapping[str, str]] = {"FormatViolation": "FormationViolation"}
    CONFIG_KEYS: ClassVar[Mapping[str, ConfigKey]] = {
        "HeartbeatInterval": ConfigKey(readonly=False, check=_non_negative_int),
        "MeterValueSampleInterval": ConfigKey(readonly=False, check=_non_negative_int),
        "ConnectionTimeOut": ConfigKey(readonly=False, check=_non_negative_int),
        "MeterValuesSampledData": ConfigKey(readonly=False),
        "AuthorizeRemoteTxRequests": ConfigKey(readonly=True),
        "NumberOfConnectors": ConfigKey(readonly=True),
        "SupportedFeatureProfiles": ConfigKey(readonly=True),
    }
    TRIGGERABLE: ClassVar[frozenset[str]] = frozenset(
        {
            "BootNotification",
            "Heartbeat",
            "StatusNotification",
            "MeterValues",
            "DiagnosticsStatusNotification",
            "FirmwareStatusNotification",
        }
    )
    RECOGNISED: ClassVar[frozenset[str]] = frozenset(
        {
            "CancelReservation",
            "ClearChargingProfile",
            "GetCompositeSchedule",
            "GetDiagnostics",
            "GetLocalListVersion",
            "ReserveNow",
            "SendLocalList",
            "SetChargingProfile",
            "UpdateFirmware",
        }
    )

    def wire_error_code(self, code: str) -> str:
        """FormatViolation -> FormationViolation; every other code is spelled alike."""
        return self.ERROR_ALIASES.get(code, code)

    def default_config(self) -> dict[str, str]:
        """Initial configuration (HeartbeatInterval is replaced by the boot answer's interval)."""
        return {
            "HeartbeatInterval": "300",
            "MeterValueSampleInterval": "60",
            "ConnectionTimeOut": "60",
            "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import",
            "AuthorizeRemoteTxRequests": "false",
            "NumberOfConnectors": "1",
            "SupportedFeatureProfiles": "Core,RemoteTrigger",
        }

    def boot_notification(self, station: StationInfo) -> Request:
        """BootNotification.req (serial number truncated to the schema's 25 characters)."""
        return Request(
            "BootNotification",
            {
                "chargePointVendor": station.vendor,
                "chargePointModel": station.model,
                "chargePointSerialNumber": station.cp_id[:25],
                "firmwareVersion": station.firmware_version,
            },
        )

    def status_notification(self, connector_id: int, status: str) -> Request:
        """StatusNotification.req without an error."""
        return Request(
            "StatusNotification",
            {"connectorId": connector_id, "errorCode": "NoError", "status": status, "timestamp": utc_iso()},
        )

    def authorize(self, id_tag: str) -> Request:
        """Authorize.req."""
        return Request("Authorize", {"idTag": id_tag})

    def id_tag_status(self, payload: Payload) -> str:
        """idTagInfo.status of Authorize.conf / StartTransaction.conf."""
        return str(payload["idTagInfo"]["status"])

    def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_wh: int,
        *,
        transaction_id: str | None = None,
        seq_no: int = 0,
        remote: RemoteStart | None = None,
    ) -> Request:
        """StartTransaction.req (the central system assigns the id; 1.6 has no seqNo)."""
        return Request(
            "StartTransaction",
            {"connectorId": connector_id, "idTag": id_tag, "meterStart": meter_wh, "timestamp": utc_iso()},
        )

    def transaction_id(self, payload: Payload, proposed: str | None = None) -> int | str:
        """transactionId of StartTransaction.conf."""
        return int(payload["transactionId"])

    def meter_values(
        self,
        connector_id: int,
        transaction_id: int | str | None,
        energy_wh: int,
        power_w: float,
        *,
        seq_no: int = 0,
    ) -> Request:
        """MeterValues.req with the energy register and the active power."""
        payload: Payload = {
            "connectorId": connector_id,
            "meterValue": [
                {
                    "timestamp": utc_iso(),
                    "sampledValue": [
                        {
                            "value": str(energy_wh),
                            "context": "Sample.Periodic",
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                        },
                        {
                            "value": f"{power_w:.0f}",
                            "context": "Sample.Periodic",
                            "measurand": "Power.Active.Import",
                            "unit": "W",
                        },
                    ],
                }
            ],
        }
        if transaction_id is not None:
            payload["transactionId"] = int(transaction_id)
        return Request("MeterValues", payload)

    def stop_transaction(
        self, transaction_id: int | str, id_tag: str, meter_wh: int, reason: StopReason, *, seq_no: int = 0
    ) -> Request:
        """StopTransaction.req."""
        return Request(
            "StopTransaction",
            {
                "transactionId": int(transaction_id),
                "idTag": id_tag,
                "meterStop": meter_wh,
                "timestamp": utc_iso(),
                "reason": self.STOP_REASONS[reason],
            },
        )

    def notification(self, message: str) -> Request | None:
        """Diagnostics and firmware status notifications: Idle, nothing in progress."""
        if message in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
            return Request(message, {"status": "Idle"})
        return None

    # -- one method per central-system action
    def _remote_start(self, payload: Payload, view: ChargerView) -> Answer:
        connector_id = int(payload.get("connectorId", view.connector_ids[0]))
        if view.busy or connector_id not in view.connector_ids:
            return Answer({"status": "Rejected"})
        return Answer({"status": "Accepted"}, intents=(RemoteStart(str(payload["idTag"]), connector_id),))

    def _remote_stop(self, payload: Payload, view: ChargerView) -> Answer:
        tx_id = payload["transactionId"]
        if view.transaction_id is None or int(view.transaction_id) != tx_id:
            return Answer({"status": "Rejected"})
        return Answer({"status": "Accepted"}, intents=(RemoteStop(tx_id),))

    def _reset(self, payload: Payload, view: ChargerView) -> Answer:
        return Answer({"status": "Accepted"}, intents=(ResetRequested(hard=payload["type"] == "Hard"),))

    def _get_configuration(self, payload: Payload, view: ChargerView) -> Answer:
        wanted: list[str] = payload.get("key") or list(self.CONFIG_KEYS)
        known = [
            {"key": key, "readonly": self.CONFIG_KEYS[key].readonly, "value": view.config[key]}
            for key in wanted
            if key in self.CONFIG_KEYS and key in view.config
        ]
        unknown = [key for key in wanted if key not in self.CONFIG_KEYS]
        result: Payload = {"configurationKey": known}
        if unknown:
            result["unknownKey"] = unknown
        return Answer(result)

    def _change_configuration(self, payload: Payload, view: ChargerView) -> Answer:
        key, value = str(payload["key"]), str(payload["value"])
        spec = self.CONFIG_KEYS.get(key)
        if spec is None:
            return Answer({"status": "NotSupported"})
        if spec.readonly or not spec.check(value):
            return Answer({"status": "Rejected"})
        return Answer({"status": "Accepted"}, intents=(ConfigChanged(key, value),))

    def _trigger_message(self, payload: Payload, view: ChargerView) -> Answer:
        message = str(payload["requestedMessage"])
        connector_id = payload.get("connectorId")
        if message not in self.TRIGGERABLE:
            return Answer({"status": "NotImplemented"})
        if connector_id is not None and connector_id not in view.connector_ids:
            return Answer({"status": "Rejected"})
        return Answer({"status": "Accepted"}, intents=(Trigger(message, connector_id),))

    def _unlock_connector(self, payload: Payload, view: ChargerView) -> Answer:
        connector_id = int(payload["connectorId"])
        if connector_id not in view.connector_ids:
            return Answer({"status": "NotSupported"})
        return Answer({"status": "Unlocked"}, intents=(Unlock(connector_id),))

    def _change_availability(self, payload: Payload, view: ChargerView) -> Answer:
        connector_id = int(payload["connectorId"])
        if connector_id != 0 and connector_id not in view.connector_ids:
            return Answer({"status": "Rejected"})
        operative = payload["type"] == "Operative"
        # OCPP 1.6 §5.2: a connector in a transaction becomes inoperative after it, answered Scheduled.
        status = "Scheduled" if not operative and view.transaction_id is not None else "Accepted"
        targets = view.connector_ids if connector_id == 0 else (connector_id,)
        return Answer({"status": status}, intents=tuple(Availability(c, operative) for c in targets))

    def _clear_cache(self, payload: Payload, view: ChargerView) -> Answer:
        return Answer({"status": "Accepted"})

    def _data_transfer(self, payload: Payload, view: ChargerView) -> Answer:
        return Answer({"status": "UnknownVendorId"})

    _ANSWERS: ClassVar[Mapping[str, Callable[[Ocpp16, Payload, ChargerView], Answer]]] = {
        "RemoteStartTransaction": _remote_start,
        "RemoteStopTransaction": _remote_stop,
        "Reset": _reset,
        "GetConfiguration": _get_configuration,
        "ChangeConfiguration": _change_configuration,
        "TriggerMessage": _trigger_message,
        "UnlockConnector": _unlock_connector,
        "ChangeAvailability": _change_availability,
        "ClearCache": _clear_cache,
        "DataTransfer": _data_transfer,
    }


@dataclass(frozen=True, slots=True)
class Variable:
    """A 2.0.1 device-model variable the charger reports, backed by one of its configuration keys."""

    config_key: str
    spec: ConfigKey


def _energy_sample(energy_wh: int, context: str) -> Payload:
    """A 2.0.1 SampledValueType of the energy register in Wh."""
    return {
        "value": energy_wh,
        "context": context,
        "measurand": "Energy.Active.Import.Register",
        "unitOfMeasure": {"unit": "Wh"},
    }


class Ocpp201(OcppVersion):
    """OCPP 2.0.1 (one EVSE with one connector): boot, status, Authorize, TransactionEvent, remote control."""

    subprotocol = "ocpp2.0.1"
    schema_version = "2.0.1"

    EVSE_ID: ClassVar[int] = 1  # the charger's one EVSE, with connector 1
    # Version-neutral connector states -> ConnectorStatusEnumType (OCPP 2.0.1 G01: a plugged-in EV is Occupied).
    CONNECTOR_STATUS: ClassVar[Mapping[str, str]] = {
        "Available": "Available",
        "Preparing": "Occupied",
        "Charging": "Occupied",
        "Finishing": "Occupied",
        "Unavailable": "Unavailable",
        "Faulted": "Faulted",
    }
    # StopReason -> (triggerReason, stoppedReason) of TransactionEvent Ended (OCPP 2.0.1 E06, ReasonEnumType).
    STOP_REASONS: ClassVar[Mapping[StopReason, tuple[str, str]]] = {
        StopReason.LOCAL: ("StopAuthorized", "Local"),
        StopReason.REMOTE: ("RemoteStop", "Remote"),
        StopReason.POWER_LOSS: ("AbnormalCondition", "PowerLoss"),
        StopReason.SOFT_RESET: ("ResetCommand", "Reboot"),
        StopReason.HARD_RESET: ("ResetCommand", "ImmediateReset"),
        StopReason.UNLOCK: ("UnlockCommand", "Other"),
        StopReason.DE_AUTHORIZED: ("Deauthorized", "DeAuthorized"),
    }
    # (component, variable) -> configuration key: the device model of OCPP 2.0.1 B05/B06 this charger has.
    VARIABLES: ClassVar[Mapping[tuple[str, str], Variable]] = {
        ("OCPPCommCtrlr", "HeartbeatInterval"): Variable(
            "HeartbeatInterval", ConfigKey(False, _non_negative_int)
        ),
        ("SampledDataCtrlr", "TxUpdatedInterval"): Variable(
            "MeterValueSampleInterval", ConfigKey(False, _non_negative_int)
        ),
        ("SampledDataCtrlr", "TxUpdatedMeasurands"): Variable("MeterValuesSampledData", ConfigKey(False)),
        ("TxCtrlr", "EVConnectionTimeOut"): Variable(
            "ConnectionTimeOut", ConfigKey(False, _non_negative_int)
        ),
        ("AuthCtrlr", "AuthorizeRemoteStart"): Variable("AuthorizeRemoteStart", ConfigKey(True)),
    }
    TRIGGERABLE: ClassVar[frozenset[str]] = frozenset(
        {"BootNotification", "Heartbeat", "StatusNotification", "MeterValues", "FirmwareStatusNotification"}
    )

    def __init__(self, new_id: Callable[[], str] | None = None) -> None:
        self._new_id = new_id or (lambda: str(uuid.uuid4()))

    def default_config(self) -> dict[str, str]:
        """Initial configuration (HeartbeatInterval is replaced by the boot answer's interval)."""
        return {
            "HeartbeatInterval": "300",
            "MeterValueSampleInterval": "60",
            "ConnectionTimeOut": "60",
            "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import",
            "AuthorizeRemoteStart": "false",
        }

    def boot_notification(self, station: StationInfo) -> Request:
        """BootNotificationRequest, reason PowerUp (OCPP 2.0.1 B01)."""
        return Request(
            "BootNotification",
            {
                "reason": "PowerUp",
                "chargingStation": {
                    "model": station.model,
                    "vendorName": station.vendor,
                    "serialNumber": station.cp_id[:25],
                    "firmwareVersion": station.firmware_version,
                },
            },
        )

    def status_notification(self, connector_id: int, status: str) -> Request | None:
        """StatusNotificationRequest of EVSE 1 (OCPP 2.0.1 G01); none for connector 0, which 2.0.1 lacks."""
        if connector_id == 0:
            return None
        return Request(
            "StatusNotification",
            {
                "timestamp": utc_iso(),
                "connectorStatus": self.CONNECTOR_STATUS[status],
                "evseId": self.EVSE_ID,
                "connectorId": connector_id,
            },
        )

    def authorize(self, id_tag: str) -> Request:
        """AuthorizeRequest with an ISO 14443 card (OCPP 2.0.1 C01)."""
        return Request("Authorize", {"idToken": _id_token(id_tag)})

    def id_tag_status(self, payload: Payload) -> str:
        """idTokenInfo.status; a TransactionEvent answer without one accepts (OCPP 2.0.1 E01)."""
        info = payload.get("idTokenInfo")
        return "Accepted" if info is None else str(info["status"])

    def new_transaction_id(self) -> str:
        """The station generates the transactionId (OCPP 2.0.1 E01, at most 36 characters)."""
        return self._new_id()[:36]

    def transaction_id(self, payload: Payload, proposed: str | None = None) -> int | str:
        """The station's own id: the TransactionEvent answer carries none."""
        if proposed is None:
            raise ValueError("OCPP 2.0.1 transactions carry the station's own id")
        return proposed

    def _transaction_event(
        self, event_type: str, trigger: str, seq_no: int, info: Payload, meter_value: Payload
    ) -> Request:
        """TransactionEventRequest on EVSE 1 (OCPP 2.0.1 E01-E07: seqNo counts 0, 1, 2, ... per transaction)."""
        return Request(
            "TransactionEvent",
            {
                "eventType": event_type,
                "timestamp": utc_iso(),
                "triggerReason": trigger,
                "seqNo": seq_no,
                "transactionInfo": info,
                "evse": {"id": self.EVSE_ID, "connectorId": 1},
                "meterValue": [meter_value],
            },
        )

    def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_wh: int,
        *,
        transaction_id: str | None = None,
        seq_no: int = 0,
        remote: RemoteStart | None = None,
    ) -> Request:
        """TransactionEvent Started with the idToken and the begin reading: triggerReason Authorized, or
        RemoteStart with the remoteStartId and the token's type of a RequestStartTransaction (F01)."""
        if transaction_id is None:
            raise ValueError("OCPP 2.0.1 needs the station's transaction id (new_transaction_id)")
        info: Payload = {"transactionId": transaction_id, "chargingState": "Charging"}
        if remote is not None and remote.remote_start_id is not None:
            info["remoteStartId"] = remote.remote_start_id
        request = self._transaction_event(
            "Started",
            "RemoteStart" if remote is not None else "Authorized",
            seq_no,
            info,
            {"timestamp": utc_iso(), "sampledValue": [_energy_sample(meter_wh, "Transaction.Begin")]},
        )
        token_type = remote.token_type if remote is not None and remote.token_type else None
        request.payload["idToken"] = _id_token(id_tag, token_type)
        return request

    def meter_values(
        self,
        connector_id: int,
        transaction_id: int | str | None,
        energy_wh: int,
        power_w: float,
        *,
        seq_no: int = 0,
    ) -> Request:
        """TransactionEvent Updated (MeterValuePeriodic) in a session, MeterValuesRequest outside one (J01/J02)."""
        meter_value: Payload = {
            "timestamp": utc_iso(),
            "sampledValue": [
                _energy_sample(energy_wh, "Sample.Periodic"),
                {
                    "value": round(power_w),
                    "context": "Sample.Periodic",
                    "measurand": "Power.Active.Import",
                    "unitOfMeasure": {"unit": "W"},
                },
            ],
        }
        if transaction_id is None:
            return Request("MeterValues", {"evseId": self.EVSE_ID, "meterValue": [meter_value]})
        info = {"transactionId": str(transaction_id), "chargingState": "Charging"}
        return self._transaction_event("Updated", "MeterValuePeriodic", seq_no, info, meter_value)

    def stop_transaction(
        self, transaction_id: int | str, id_tag: str, meter_wh: int, reason: StopReason, *, seq_no: int = 0
    ) -> Request:
        """TransactionEvent Ended with the stoppedReason and the end reading (OCPP 2.0.1 E06)."""
        trigger, stopped = self.STOP_REASONS[reason]
        return self._transaction_event(
            "Ended",
            trigger,
            seq_no,
            {"transactionId": str(transaction_id), "chargingState": "Idle", "stoppedReason": stopped},
            {"timestamp": utc_iso(), "sampledValue": [_energy_sample(meter_wh, "Transaction.End")]},
        )

    QUEUES_OFFLINE = True

    def replayed(self, request: Request) -> Request:
        """TransactionEvent sent after an offline period carries offline=true (OCPP 2.0.1 E.FR, E04)."""
        if request.action != "TransactionEvent":
            return request
        return Request(request.action, {**request.payload, "offline": True})

    def notification(self, message: str) -> Request | None:
        """FirmwareStatusNotification Idle: nothing in progress."""
        if message == "FirmwareStatusNotification":
            return Request(message, {"status": "Idle"})
        return None

    # -- one method per central-system action
    def _request_start(self, payload: Payload, view: ChargerView) -> Answer:
        """RequestStartTransaction (OCPP 2.0.1 F01): Accepted on the idle EVSE 1."""
        evse_id = int(payload.get("evseId", self.EVSE_ID))
        if view.busy or evse_id != self.EVSE_ID:
            return Answer({"status": "Rejected"})
        token = payload["idToken"]
        intent = RemoteStart(
            str(token["idToken"]), view.connector_ids[0], int(payload["remoteStartId"]), str(token["type"])
        )
        return Answer({"status": "Accepted"}, intents=(intent,))

    def _request_stop(self, payload: Payload, view: ChargerView) -> Answer:
        """RequestStopTransaction (OCPP 2.0.1 F03): Rejected for a transaction the station does not run."""
        tx_id = str(payload["transactionId"])
        if view.transaction_id is None or str(view.transaction_id) != tx_id:
            return Answer({"status": "Rejected"})
        return Answer({"status": "Accepted"}, intents=(RemoteStop(tx_id),))

    def _reset(self, payload: Payload, view: ChargerView) -> Answer:
        """Reset of the station (OCPP 2.0.1 B11/B12); an EVSE reset is not supported (Rejected). OnIdle with a
        transaction running is Scheduled: the charger reboots once it has ended (B12.FR.?)."""
        if "evseId" in payload:
            return Answer({"status": "Rejected"})
        if payload["type"] == "OnIdle" and (view.session or view.transaction_id is not None):
            return Answer({"status": "Scheduled"}, intents=(ResetRequested(hard=False, on_idle=True),))
        return Answer({"status": "Accepted"}, intents=(ResetRequested(hard=payload["type"] == "Immediate"),))

    def _trigger_message(self, payload: Payload, view: ChargerView) -> Answer:
        """TriggerMessage (OCPP 2.0.1 F06): NotImplemented for messages this charger cannot send."""
        message = str(payload["requestedMessage"])
        evse = payload.get("evse")
        if message not in self.TRIGGERABLE:
            return Answer({"status": "NotImplemented"})
        if evse is not None and (
            evse["id"] != self.EVSE_ID
            or evse.get("connectorId", view.connector_ids[0]) not in view.connector_ids
        ):
            return Answer({"status": "Rejected"})
        connector_id = None if evse is None else int(evse.get("connectorId") or view.connector_ids[0])
        return Answer({"status": "Accepted"}, intents=(Trigger(message, connector_id),))

    def _lookup(self, item: Payload) -> tuple[Variable | None, str | None]:
        """The variable a GetVariableData/SetVariableData names, or the attributeStatus why there is none."""
        component, variable = str(item["component"]["name"]), str(item["variable"]["name"])
        if not any(c == component for c, _ in self.VARIABLES):
            return None, "UnknownComponent"
        found = self.VARIABLES.get((component, variable))
        if found is None or "instance" in item["component"] or "evse" in item["component"]:
            return None, "UnknownVariable"
        if item.get("attributeType", "Actual") != "Actual":
            return None, "NotSupportedAttributeType"
        return found, None

    def _get_variables(self, payload: Payload, view: ChargerView) -> Answer:
        """GetVariables (OCPP 2.0.1 B06): each requested variable's Actual value or why not."""
        results = []
        for item in payload["getVariableData"]:
            found, problem = self._lookup(item)
            result: Payload = {
                "attributeStatus": problem or "Accepted",
                "component": item["component"],
                "variable": item["variable"],
            }
            if found is not None:
                result["attributeValue"] = view.config[found.config_key]
            results.append(result)
        return Answer({"getVariableResult": results})

    def _set_variables(self, payload: Payload, view: ChargerView) -> Answer:
        """SetVariables (OCPP 2.0.1 B05): read-only or invalid values Rejected, the rest applied."""
        results, changes = [], []
        for item in payload["setVariableData"]:
            found, problem = self._lookup(item)
            value = str(item["attributeValue"])
            if found is not None and (found.spec.readonly or not found.spec.check(value)):
                problem = "Rejected"
            if found is not None and problem is None:
                changes.append(ConfigChanged(found.config_key, value))
            results.append(
                {
                    "attributeStatus": problem or "Accepted",
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return Answer({"setVariableResult": results}, intents=tuple(changes))

    _ANSWERS: ClassVar[Mapping[str, Callable[[Ocpp201, Payload, ChargerView], Answer]]] = {
        "RequestStartTransaction": _request_start,
        "RequestStopTransaction": _request_stop,
        "Reset": _reset,
        "TriggerMessage": _trigger_message,
        "GetVariables": _get_variables,
        "SetVariables": _set_variables,
    }


def _id_token(id_tag: str, token_type: str | None = None) -> Payload:
    """An IdTokenType: of the type given (a remote start's), else an RFID card (OCPP 2.0.1 C01)."""
    return {"idToken": id_tag, "type": token_type or "ISO14443"}


def answer_call(version: OcppVersion, action: str, payload: Payload, view: ChargerView) -> Answer:
    """Validate a central-system CALL and answer it; a schema violation becomes a CALLERROR.

    An action without a schema in this version fails validation with NotImplemented, as OCPP-J asks.
    """
    if not action.isalnum():  # the action names a schema file: never let a peer pick a path
        return Answer(error_code="NotImplemented", error_description="unknown action")
    try:
        version.validate_call(action, payload)
    except OCPPError as exc:
        if exc.code == "NotImplemented":  # no schema: the package's description would say "recognized"
            return Answer(error_code="NotImplemented", error_description=f"unknown action {action}")
        return Answer(error_code=version.wire_error_code(exc.code), error_description=str(exc.description))
    return version.answer(action, payload, view)


def apply_config(config: MutableMapping[str, str], intents: tuple[Intent, ...]) -> tuple[Intent, ...]:
    """Apply ConfigChanged intents to `config`; return the other intents."""
    rest: list[Intent] = []
    for intent in intents:
        if isinstance(intent, ConfigChanged):
            config[intent.key] = intent.value
        else:
            rest.append(intent)
    return tuple(rest)


VERSIONS: Mapping[str, OcppVersion] = {Ocpp16.subprotocol: Ocpp16(), Ocpp201.subprotocol: Ocpp201()}
"""Every supported version by WebSocket subprotocol."""
