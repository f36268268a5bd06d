"""Version-neutral vocabulary of the core. Every member maps to each OCPP version's enums (csms/*/mapping.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any


class ConnectorState(Enum):
    """The phase of a connector's session (the state machine's states); each version maps it to its own status."""

    AVAILABLE = "available"
    PREPARING = "preparing"
    CHARGING = "charging"
    SUSPENDED_EV = "suspended_ev"
    SUSPENDED_EVSE = "suspended_evse"
    FINISHING = "finishing"
    RESERVED = "reserved"
    UNAVAILABLE = "unavailable"
    FAULTED = "faulted"


class OperationalStatus(Enum):
    """Whether a connector, an EVSE or the station may be used at all (set by the CSMS, persisted)."""

    OPERATIVE = "operative"
    INOPERATIVE = "inoperative"


class ConnectorStatus(Enum):
    """A connector's or EVSE's availability, coarser than ConnectorState (OCPP 2.0.1 ConnectorStatusEnumType)."""

    AVAILABLE = "available"
    OCCUPIED = "occupied"
    RESERVED = "reserved"
    UNAVAILABLE = "unavailable"
    FAULTED = "faulted"


# Each session phase as an availability: any phase with a cable or a session in progress is Occupied.
CONNECTOR_STATUS: dict[ConnectorState, ConnectorStatus] = {
    ConnectorState.AVAILABLE: ConnectorStatus.AVAILABLE,
    ConnectorState.PREPARING: ConnectorStatus.OCCUPIED,
    ConnectorState.CHARGING: ConnectorStatus.OCCUPIED,
    ConnectorState.SUSPENDED_EV: ConnectorStatus.OCCUPIED,
    ConnectorState.SUSPENDED_EVSE: ConnectorStatus.OCCUPIED,
    ConnectorState.FINISHING: ConnectorStatus.OCCUPIED,
    ConnectorState.RESERVED: ConnectorStatus.RESERVED,
    ConnectorState.UNAVAILABLE: ConnectorStatus.UNAVAILABLE,
    ConnectorState.FAULTED: ConnectorStatus.FAULTED,
}


class ErrorCode(Enum):
    """Why a connector is faulted (or a warning while it is not)."""

    NO_ERROR = "no_error"
    CONNECTOR_LOCK_FAILURE = "connector_lock_failure"
    EV_COMMUNICATION_ERROR = "ev_communication_error"
    GROUND_FAILURE = "ground_failure"
    HIGH_TEMPERATURE = "high_temperature"
    INTERNAL_ERROR = "internal_error"
    LOCAL_LIST_CONFLICT = "local_list_conflict"
    OTHER_ERROR = "other_error"
    OVER_CURRENT_FAILURE = "over_current_failure"
    OVER_VOLTAGE = "over_voltage"
    POWER_METER_FAILURE = "power_meter_failure"
    POWER_SWITCH_FAILURE = "power_switch_failure"
    READER_FAILURE = "reader_failure"
    RESET_FAILURE = "reset_failure"
    UNDER_VOLTAGE = "under_voltage"
    WEAK_SIGNAL = "weak_signal"


# Problems reported with the connector's current status rather than Faulted: the connector stays usable
# (a broken card reader does not stop a running session, and remote start still works). OCPP 1.6 §4.9.
WARNING_CODES = frozenset({ErrorCode.READER_FAILURE, ErrorCode.WEAK_SIGNAL, ErrorCode.LOCAL_LIST_CONFLICT})


class Measurand(Enum):
    """Measured quantities; values are the OCPP measurand names shared by 1.6 and 2.0.1."""

    ENERGY_ACTIVE_IMPORT_REGISTER = "Energy.Active.Import.Register"
    POWER_ACTIVE_IMPORT = "Power.Active.Import"
    CURRENT_IMPORT = "Current.Import"
    VOLTAGE = "Voltage"
    FREQUENCY = "Frequency"
    SOC = "SoC"


class ReadingContext(Enum):
    """Why a meter sample was taken."""

    TRANSACTION_BEGIN = "transaction_begin"
    TRANSACTION_END = "transaction_end"
    SAMPLE_PERIODIC = "sample_periodic"
    SAMPLE_CLOCK = "sample_clock"
    TRIGGER = "trigger"


class StopReason(Enum):
    """Why a transaction ended."""

    LOCAL = "local"
    REMOTE = "remote"
    EV_DISCONNECTED = "ev_disconnected"
    HARD_RESET = "hard_reset"
    SOFT_RESET = "soft_reset"
    POWER_LOSS = "power_loss"
    REBOOT = "reboot"
    DEAUTHORIZED = "deauthorized"
    EMERGENCY_STOP = "emergency_stop"
    UNLOCK_COMMAND = "unlock_command"
    EV_CONNECT_TIMEOUT = "ev_connect_timeout"  # started on authorization, no cable within EVConnectionTimeOut
    OTHER = "other"


class TxUpdateTrigger(Enum):
    """Why a running transaction's update was queued (OCPP 2.0.1 TransactionEvent Updated triggerReason)."""

    SAMPLE = "sample"  # meter samples; their ReadingContext says which kind
    CHARGING_STATE = "charging_state"  # the connector's state changed (charging, suspended, connected)
    CABLE_PLUGGED = "cable_plugged"  # the cable arrived for a transaction started on authorization
    AUTHORIZED = "authorized"  # a transaction started on the cable was authorized
    STOP_AUTHORIZED = "stop_authorized"  # the driver ended the authorization; the transaction ends later
    REMOTE_STOP = "remote_stop"  # the central system ended the authorization; the transaction ends later


class AuthStatus(Enum):
    """Outcome of authorizing an idTag."""

    ACCEPTED = "accepted"
    BLOCKED = "blocked"
    EXPIRED = "expired"
    INVALID = "invalid"
    CONCURRENT_TX = "concurrent_tx"


class AvailabilityResult(Enum):
    """Answer to a change of availability."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SCHEDULED = "scheduled"


class UnlockResult(Enum):
    """Answer to an unlock request."""

    UNLOCKED = "unlocked"
    UNLOCK_FAILED = "unlock_failed"
    NOT_SUPPORTED = "not_supported"


class ResetKind(Enum):
    """Soft: restart the agent gracefully. Hard: restart as after a power cycle."""

    SOFT = "soft"
    HARD = "hard"


class BootReason(Enum):
    """Why the station (re)started, told to the CSMS at boot (OCPP 2.0.1 BootReasonEnumType; 1.6 has none)."""

    POWER_UP = "power_up"  # a start the station did not plan: power on, crash, watchdog
    REMOTE_RESET = "remote_reset"  # a Reset carried out at once
    SCHEDULED_RESET = "scheduled_reset"  # an OnIdle Reset carried out once the transactions ended
    FIRMWARE_UPDATE = "firmware_update"  # the reboot that installs new firmware


class ResetResult(Enum):
    """Answer to a reset request."""

    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"  # OnIdle with a transaction running: carried out once it has ended
    REJECTED = "rejected"


class LocalListUpdate(Enum):
    """How a new local authorization list applies."""

    FULL = "full"
    DIFFERENTIAL = "differential"


class LocalListResult(Enum):
    """Answer to a local-list update."""

    ACCEPTED = "accepted"
    FAILED = "failed"
    NOT_SUPPORTED = "not_supported"
    VERSION_MISMATCH = "version_mismatch"


class FirmwareStatus(Enum):
    """Where a firmware update stands (the union of OCPP 1.6 FirmwareStatus and the whitepaper's)."""

    IDLE = "idle"
    DOWNLOAD_SCHEDULED = "download_scheduled"
    DOWNLOADING = "downloading"
    DOWNLOADED = "downloaded"
    DOWNLOAD_FAILED = "download_failed"
    INVALID_SIGNATURE = "invalid_signature"
    SIGNATURE_VERIFIED = "signature_verified"
    INSTALL_SCHEDULED = "install_scheduled"  # downloaded, waiting until no transaction runs
    INSTALLING = "installing"
    INSTALL_REBOOTING = "install_rebooting"  # installed, rebooting into it; Installed follows the boot
    INSTALLED = "installed"
    INSTALLATION_FAILED = "installation_failed"


class UploadKind(Enum):
    """What an upload carries: GetDiagnostics' archive, or GetLog's diagnostics or security log."""

    DIAGNOSTICS = "diagnostics"
    DIAGNOSTICS_LOG = "diagnostics_log"
    SECURITY_LOG = "security_log"


class UploadStatus(Enum):
    """Where an upload of diagnostics or logs stands."""

    IDLE = "idle"
    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    UPLOAD_FAILED = "upload_failed"


class UpdateResult(Enum):
    """Answer to a firmware update or log request."""

    ACCEPTED = "accepted"
    ACCEPTED_CANCELED = "accepted_canceled"  # accepted; a job in progress was canceled for it
    REJECTED = "rejected"
    INVALID_CERTIFICATE = "invalid_certificate"


@dataclass(frozen=True, slots=True)
class IdTagInfo:
    """What is known about an idTag: status, optional expiry and parent (group) id."""

    status: AuthStatus
    expiry: datetime | None = None
    parent_id_tag: str | None = None

    def effective(self, now: datetime) -> IdTagInfo:
        """This info as of ``now``: an Accepted entry past its expiry counts as Expired."""
        if self.status is AuthStatus.ACCEPTED and self.expiry is not None and self.expiry <= now:
            return IdTagInfo(AuthStatus.EXPIRED, self.expiry, self.parent_id_tag)
        return self

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form for storage."""
        return {
            "status": self.status.value,
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "parent_id_tag": self.parent_id_tag,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IdTagInfo:
        """Inverse of ``to_json``."""
        expiry = data.get("expiry")
        return cls(
            AuthStatus(data["status"]),
            datetime.fromisoformat(expiry) if expiry else None,
            data.get("parent_id_tag"),
        )


@dataclass(frozen=True, slots=True)
class SampledValue:
    """One measured value, in the unit the measurand implies (Wh, W, A, V, Hz, %)."""

    measurand: Measurand
    value: float
    phase: str | None = None


UNITS: dict[Measurand, str] = {
    Measurand.ENERGY_ACTIVE_IMPORT_REGISTER: "Wh",
    Measurand.POWER_ACTIVE_IMPORT: "W",
    Measurand.CURRENT_IMPORT: "A",
    Measurand.VOLTAGE: "V",
    Measurand.FREQUENCY: "Hz",
    Measurand.SOC: "Percent",
}


@dataclass(frozen=True, slots=True)
class Sample:
    """Values taken at one instant for one reason."""

    timestamp: datetime
    context: ReadingContext
    values: tuple[SampledValue, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form for the outbox."""
        return {
            "timestamp": self.timestamp.isoformat(),
            "context": self.context.value,
            "values": [[v.measurand.value, v.value, v.phase] for v in self.values],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Sample:
        """Inverse of ``to_json``."""
        return cls(
            datetime.fromisoformat(data["timestamp"]),
            ReadingContext(data["context"]),
            tuple(SampledValue(Measurand(m), float(v), p) for m, v, p in data["values"]),
        )
