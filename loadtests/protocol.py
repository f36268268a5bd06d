"""Version table of the load-test charger: the messages it sends and its answers to central-system calls.

Everything that depends on the OCPP version lives behind `OcppVersion`; the charger and the transport only see
`Request`, `Answer` and the intents below. `VERSIONS` is keyed by the WebSocket subprotocol, so an OCPP 2.0.1
charger is one more class here (TransactionEvent instead of Start/Stop, its own error codes) and one more row.
No gevent and no I/O in this module: it is pure and unit-tested.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeAlias

from ocpp.exceptions import OCPPError
from ocpp.messages import Call, _validate_payload

__all__ = [
    "VERSIONS",
    "Answer",
    "Availability",
    "ChargerView",
    "ConfigChanged",
    "Intent",
    "Ocpp16",
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


@dataclass(frozen=True, slots=True)
class RemoteStop:
    """Stop the running session."""

    transaction_id: int | str


@dataclass(frozen=True, slots=True)
class ResetRequested:
    """Reboot: end the session, close the connection, connect and boot again."""

    hard: bool


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


class OcppVersion(ABC):
    """Version-specific message building and answering; one instance serves every charger."""

    subprotocol: ClassVar[str]
    schema_version: ClassVar[str]  # the version string `ocpp.messages` finds its JSON schemas by

    def validate_call(self, action: str, payload: Payload) -> None:
        """Check a CALL payload against the version's schema; raises ocpp.exceptions.OCPPError."""
        _validate_payload(Call("0", action, payload), self.schema_version)

    def wire_error_code(self, code: str) -> str:
        """The error code as this version spells it on the wire."""
        return code

    @abstractmethod
    def default_config(self) -> dict[str, str]:
        """The charger's configuration keys and their initial values."""

    @abstractmethod
    def boot_notification(self, station: StationInfo) -> Request:
        """The boot message."""

    @abstractmethod
    def boot_result(self, payload: Payload) -> tuple[str, int]:
        """Registration status ('Accepted', 'Pending', 'Rejected') and heartbeat interval (s) of a boot answer."""

    @abstractmethod
    def heartbeat(self) -> Request:
        """A heartbeat."""

    @abstractmethod
    def status_notification(self, connector_id: int, status: str) -> Request:
        """A connector status; `status` is one of Available, Preparing, Charging, Finishing, Unavailable."""

    @abstractmethod
    def authorize(self, id_tag: str) -> Request:
        """Ask whether an idTag may charge."""

    @abstractmethod
    def id_tag_status(self, payload: Payload) -> str:
        """The authorization status in an Authorize or start answer ('Accepted' when charging may go on)."""

    @abstractmethod
    def start_transaction(self, connector_id: int, id_tag: str, meter_wh: int) -> Request:
        """Start a session."""

    @abstractmethod
    def transaction_id(self, payload: Payload) -> int | str:
        """The transaction id in a start answer."""

    @abstractmethod
    def meter_values(
        self, connector_id: int, transaction_id: int | str | None, energy_wh: int, power_w: float
    ) -> Request:
        """A periodic meter reading (energy register and power)."""

    @abstractmethod
    def stop_transaction(
        self, transaction_id: int | str, id_tag: str, meter_wh: int, reason: StopReason
    ) -> Request:
        """End a session."""

    @abstractmethod
    def notification(self, message: str) -> Request | None:
        """A triggered message that carries no charger state (e.g. a firmware status), or None."""

    @abstractmethod
    def answer(self, action: str, payload: Payload, view: ChargerView) -> Answer:
        """Answer a central-system CALL whose payload was already validated."""


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
    # Central-system actions of OCPP 1.6 this charger recognises but does not support (NotSupported); any
    # other action it has no answer for is NotImplemented.
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

    def boot_result(self, payload: Payload) -> tuple[str, int]:
        """Status and interval of BootNotification.conf."""
        return str(payload["status"]), int(payload["interval"])

    def heartbeat(self) -> Request:
        """Heartbeat.req."""
        return Request("Heartbeat", {})

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

    def start_transaction(self, connector_id: int, id_tag: str, meter_wh: int) -> Request:
        """StartTransaction.req."""
        return Request(
            "StartTransaction",
            {"connectorId": connector_id, "idTag": id_tag, "meterStart": meter_wh, "timestamp": utc_iso()},
        )

    def transaction_id(self, payload: Payload) -> int | str:
        """transactionId of StartTransaction.conf."""
        return int(payload["transactionId"])

    def meter_values(
        self, connector_id: int, transaction_id: int | str | None, energy_wh: int, power_w: float
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
        self, transaction_id: int | str, id_tag: str, meter_wh: int, reason: StopReason
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

    def answer(self, action: str, payload: Payload, view: ChargerView) -> Answer:
        """Answer a central-system CALL (its payload already schema-valid)."""
        handler = self._ANSWERS.get(action)
        if handler is not None:
            return handler(self, payload, view)
        if action in self.RECOGNISED:
            return Answer(error_code="NotSupported", error_description=f"{action} is not supported")
        return Answer(error_code="NotImplemented", error_description=f"unknown action {action}")

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


VERSIONS: Mapping[str, OcppVersion] = {Ocpp16.subprotocol: Ocpp16()}
"""Every supported version by WebSocket subprotocol (the one table to extend for OCPP 2.0.1)."""
