"""Tables between the core's vocabulary and OCPP 2.0.1 (every core enum member appears; a test checks it)."""

from __future__ import annotations

from chargepoint.core.device_model import DataType, Mutability
from chargepoint.core.model import (
    AuthStatus,
    AvailabilityResult,
    BootReason,
    ConnectorState,
    ConnectorStatus,
    FirmwareStatus,
    LocalListResult,
    Measurand,
    OperationalStatus,
    ReadingContext,
    ResetKind,
    ResetResult,
    StopReason,
    TxUpdateTrigger,
    UnlockResult,
    UpdateResult,
    UploadKind,
    UploadStatus,
)
from chargepoint.core.reservations import CancelResult, ReserveResult
from chargepoint.core.security import SecurityEventType
from chargepoint.core.smart_charging import (
    ClearResult,
    ProfileKind,
    ProfilePurpose,
    ProfileResult,
    RateUnit,
    RecurrencyKind,
)
from chargepoint.core.storage import CertificateUse

S = ConnectorState

# OCPP 2.0.1 §2.? ConnectorStatusEnumType: StatusNotification reports the neutral availability per (evse, connector).
CONNECTOR_STATUS: dict[ConnectorStatus, str] = {
    ConnectorStatus.AVAILABLE: "Available",
    ConnectorStatus.OCCUPIED: "Occupied",
    ConnectorStatus.RESERVED: "Reserved",
    ConnectorStatus.UNAVAILABLE: "Unavailable",
    ConnectorStatus.FAULTED: "Faulted",
}

# OperationalStatusEnumType (ChangeAvailabilityRequest.operationalStatus, G03).
OPERATIONAL: dict[OperationalStatus, str] = {
    OperationalStatus.OPERATIVE: "Operative",
    OperationalStatus.INOPERATIVE: "Inoperative",
}
OPERATIONAL_IN = {v: k for k, v in OPERATIONAL.items()}

# TransactionType.chargingState (E.FR: required when the state changed): the session phase as 2.0.1 sees it.
CHARGING_STATE: dict[ConnectorState, str] = {
    S.AVAILABLE: "Idle",
    S.PREPARING: "EVConnected",
    S.CHARGING: "Charging",
    S.SUSPENDED_EV: "SuspendedEV",
    S.SUSPENDED_EVSE: "SuspendedEVSE",
    S.FINISHING: "EVConnected",
    S.RESERVED: "Idle",
    S.UNAVAILABLE: "Idle",
    S.FAULTED: "Idle",
}

# ReasonEnumType (TransactionType.stoppedReason, E06/E07). 2.0.1 has no reason of its own for a stop by
# UnlockConnector: it is Other, with triggerReason UnlockCommand saying why; a soft reset is a Reboot.
STOP_REASON: dict[StopReason, str] = {
    StopReason.LOCAL: "Local",
    StopReason.REMOTE: "Remote",
    StopReason.EV_DISCONNECTED: "EVDisconnected",
    StopReason.HARD_RESET: "ImmediateReset",
    StopReason.SOFT_RESET: "Reboot",
    StopReason.POWER_LOSS: "PowerLoss",
    StopReason.REBOOT: "Reboot",
    StopReason.DEAUTHORIZED: "DeAuthorized",
    StopReason.EMERGENCY_STOP: "EmergencyStop",
    StopReason.UNLOCK_COMMAND: "Other",
    StopReason.EV_CONNECT_TIMEOUT: "Timeout",
    StopReason.OTHER: "Other",
}

# TriggerReasonEnumType of the Ended event, by why the transaction ended (E06, E07, F03, F05, B12).
ENDED_TRIGGER: dict[StopReason, str] = {
    StopReason.LOCAL: "StopAuthorized",
    StopReason.REMOTE: "RemoteStop",
    StopReason.EV_DISCONNECTED: "EVCommunicationLost",
    StopReason.HARD_RESET: "ResetCommand",
    StopReason.SOFT_RESET: "ResetCommand",
    StopReason.POWER_LOSS: "AbnormalCondition",
    StopReason.REBOOT: "ResetCommand",
    StopReason.DEAUTHORIZED: "Deauthorized",
    StopReason.EMERGENCY_STOP: "AbnormalCondition",
    StopReason.UNLOCK_COMMAND: "UnlockCommand",
    StopReason.EV_CONNECT_TIMEOUT: "EVConnectTimeout",
    StopReason.OTHER: "AbnormalCondition",
}

# TriggerReasonEnumType of an Updated event that is not about samples (E02, E03, E06, E07, E09-E10, F03).
UPDATE_TRIGGER: dict[TxUpdateTrigger, str] = {
    TxUpdateTrigger.SAMPLE: "MeterValuePeriodic",  # made precise by the samples' context (Clock, Trigger)
    TxUpdateTrigger.CHARGING_STATE: "ChargingStateChanged",
    TxUpdateTrigger.CABLE_PLUGGED: "CablePluggedIn",
    TxUpdateTrigger.AUTHORIZED: "Authorized",
    TxUpdateTrigger.STOP_AUTHORIZED: "StopAuthorized",
    TxUpdateTrigger.REMOTE_STOP: "RemoteStop",
}

# AuthorizationStatusEnumType (IdTokenInfoType.status, C01). The statuses the core has no word for are refusals.
AUTH_STATUS: dict[AuthStatus, str] = {
    AuthStatus.ACCEPTED: "Accepted",
    AuthStatus.BLOCKED: "Blocked",
    AuthStatus.EXPIRED: "Expired",
    AuthStatus.INVALID: "Invalid",
    AuthStatus.CONCURRENT_TX: "ConcurrentTx",
}
AUTH_STATUS_IN: dict[str, AuthStatus] = {
    **{v: k for k, v in AUTH_STATUS.items()},
    "NoCredit": AuthStatus.INVALID,
    "NotAllowedTypeEVSE": AuthStatus.INVALID,
    "NotAtThisLocation": AuthStatus.INVALID,
    "NotAtThisTime": AuthStatus.INVALID,
    "Unknown": AuthStatus.INVALID,
}

# ReadingContextEnumType (SampledValueType.context).
CONTEXT: dict[ReadingContext, str] = {
    ReadingContext.TRANSACTION_BEGIN: "Transaction.Begin",
    ReadingContext.TRANSACTION_END: "Transaction.End",
    ReadingContext.SAMPLE_PERIODIC: "Sample.Periodic",
    ReadingContext.SAMPLE_CLOCK: "Sample.Clock",
    ReadingContext.TRIGGER: "Trigger",
}

# MeasurandEnumType: the names are shared with 1.6.
MEASURAND: dict[Measurand, str] = {m: m.value for m in Measurand}

# ChangeAvailabilityStatusEnumType (G03, G04).
AVAILABILITY: dict[AvailabilityResult, str] = {
    AvailabilityResult.ACCEPTED: "Accepted",
    AvailabilityResult.REJECTED: "Rejected",
    AvailabilityResult.SCHEDULED: "Scheduled",
}

# UnlockStatusEnumType (F05): 2.0.1 has no NotSupported; a connector without a lock cannot be unlocked.
UNLOCK: dict[UnlockResult, str] = {
    UnlockResult.UNLOCKED: "Unlocked",
    UnlockResult.UNLOCK_FAILED: "UnlockFailed",
    UnlockResult.NOT_SUPPORTED: "UnlockFailed",
}

# ResetEnumType (B11, B12): OnIdle waits for transactions to end, Immediate ends them.
RESET: dict[ResetKind, str] = {ResetKind.SOFT: "OnIdle", ResetKind.HARD: "Immediate"}
RESET_IN = {v: k for k, v in RESET.items()}

# ResetStatusEnumType (B11, B12).
RESET_RESULT: dict[ResetResult, str] = {r: r.value.capitalize() for r in ResetResult}

# BootReasonEnumType (B01): why the station started, as stored before a planned restart.
BOOT_REASON: dict[BootReason, str] = {
    BootReason.POWER_UP: "PowerUp",
    BootReason.REMOTE_RESET: "RemoteReset",
    BootReason.SCHEDULED_RESET: "ScheduledReset",
    BootReason.FIRMWARE_UPDATE: "FirmwareUpdate",
}

# DataEnumType and MutabilityEnumType of the device model (B07 NotifyReport).
DATA_TYPE: dict[DataType, str] = {
    DataType.BOOLEAN: "boolean",
    DataType.INTEGER: "integer",
    DataType.STRING: "string",
    DataType.MEMBER_LIST: "MemberList",
}
MUTABILITY: dict[Mutability, str] = {
    Mutability.READ_ONLY: "ReadOnly",
    Mutability.READ_WRITE: "ReadWrite",
    Mutability.WRITE_ONLY: "WriteOnly",
}

# FirmwareStatusEnumType (L01 FirmwareStatusNotification): 2.0.1 has every status of the core's.
FIRMWARE_STATUS: dict[FirmwareStatus, str] = {
    FirmwareStatus.IDLE: "Idle",
    FirmwareStatus.DOWNLOAD_SCHEDULED: "DownloadScheduled",
    FirmwareStatus.DOWNLOADING: "Downloading",
    FirmwareStatus.DOWNLOADED: "Downloaded",
    FirmwareStatus.DOWNLOAD_FAILED: "DownloadFailed",
    FirmwareStatus.INVALID_SIGNATURE: "InvalidSignature",
    FirmwareStatus.SIGNATURE_VERIFIED: "SignatureVerified",
    FirmwareStatus.INSTALL_SCHEDULED: "InstallScheduled",
    FirmwareStatus.INSTALLING: "Installing",
    FirmwareStatus.INSTALL_REBOOTING: "InstallRebooting",
    FirmwareStatus.INSTALLED: "Installed",
    FirmwareStatus.INSTALLATION_FAILED: "InstallationFailed",
}

# UploadLogStatusEnumType (N01 LogStatusNotification).
UPLOAD_STATUS: dict[UploadStatus, str] = {
    UploadStatus.IDLE: "Idle",
    UploadStatus.UPLOADING: "Uploading",
    UploadStatus.UPLOADED: "Uploaded",
    UploadStatus.UPLOAD_FAILED: "UploadFailure",
}

# SecurityEventType of SecurityEventNotification (A04; OCPP 2.0.1 Part 2 Appendix 1 security events): 2.0.1 says
# Csms where the whitepaper said CentralSystem, and ChargingStation for ChargePoint.
E = SecurityEventType
SECURITY_EVENT: dict[SecurityEventType, str] = {
    E.FIRMWARE_UPDATED: "FirmwareUpdated",
    E.FAILED_TO_AUTHENTICATE_AT_CENTRAL_SYSTEM: "FailedToAuthenticateAtCsms",
    E.CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATE: "CsmsFailedToAuthenticate",
    E.SETTING_SYSTEM_TIME: "SettingSystemTime",
    E.STARTUP_OF_THE_DEVICE: "StartupOfTheDevice",
    E.RESET_OR_REBOOT: "ResetOrReboot",
    E.SECURITY_LOG_WAS_CLEARED: "SecurityLogWasCleared",
    E.RECONFIGURATION_OF_SECURITY_PARAMETERS: "ReconfigurationOfSecurityParameters",
    E.MEMORY_EXHAUSTION: "MemoryExhaustion",
    E.INVALID_MESSAGES: "InvalidMessages",
    E.ATTEMPTED_REPLAY_ATTACKS: "AttemptedReplayAttacks",
    E.TAMPER_DETECTION_ACTIVATED: "TamperDetectionActivated",
    E.INVALID_FIRMWARE_SIGNATURE: "InvalidFirmwareSignature",
    E.INVALID_FIRMWARE_SIGNING_CERTIFICATE: "InvalidFirmwareSigningCertificate",
    E.INVALID_CENTRAL_SYSTEM_CERTIFICATE: "InvalidCsmsCertificate",
    E.INVALID_CHARGE_POINT_CERTIFICATE: "InvalidChargingStationCertificate",
    E.INVALID_TLS_VERSION: "InvalidTLSVersion",
    E.INVALID_TLS_CIPHER_SUITE: "InvalidTLSCipherSuite",
}

SECURITY_EVENT_BY_NAME = {k.value: v for k, v in SECURITY_EVENT.items()}  # by the name stored in the outbox

# InstallCertificateUseEnumType / GetCertificateIdUseEnumType (M03-M05) of the root certificates the station keeps;
# its own chain is no root (GetInstalledCertificateIds' V2GCertificateChain: the station has none).
ROOT_USE: dict[CertificateUse, str] = {
    CertificateUse.CENTRAL_SYSTEM_ROOT: "CSMSRootCertificate",
    CertificateUse.MANUFACTURER_ROOT: "ManufacturerRootCertificate",
    CertificateUse.V2G_ROOT: "V2GRootCertificate",
    CertificateUse.MO_ROOT: "MORootCertificate",
}
ROOT_USE_IN = {v: k for k, v in ROOT_USE.items()}

# OCPPVersionEnumType of a NetworkConnectionProfile (B09): the versions this agent speaks (OCPP20 is 2.0.1).
OCPP_VERSION_IN: dict[str, str] = {"OCPP16": "1.6", "OCPP20": "2.0.1"}

# Variables whose 2.0.1 mutability differs from the neutral device model's: 2.0.1 changes the security profile
# only through a NetworkConnectionProfile (A05), never by SetVariables (Part 2 Appendix, SecurityCtrlr).
MUTABILITY_OVERRIDE: dict[str, Mutability] = {"security_profile": Mutability.READ_ONLY}
# SendLocalListStatusEnumType (D01): 2.0.1 has no NotSupported; a disabled list fails the update.
LOCAL_LIST: dict[LocalListResult, str] = {
    LocalListResult.ACCEPTED: "Accepted",
    LocalListResult.FAILED: "Failed",
    LocalListResult.NOT_SUPPORTED: "Failed",
    LocalListResult.VERSION_MISMATCH: "VersionMismatch",
}

# ReserveNowStatusEnumType (H01) and CancelReservationStatusEnumType (H02): the same words as 1.6.
RESERVE_RESULT: dict[ReserveResult, str] = {
    ReserveResult.ACCEPTED: "Accepted",
    ReserveResult.FAULTED: "Faulted",
    ReserveResult.OCCUPIED: "Occupied",
    ReserveResult.REJECTED: "Rejected",
    ReserveResult.UNAVAILABLE: "Unavailable",
}
CANCEL_RESULT: dict[CancelResult, str] = {
    CancelResult.ACCEPTED: "Accepted",
    CancelResult.REJECTED: "Rejected",
}

# UpdateFirmwareStatusEnumType (L01) and LogStatusEnumType (N01); a log request has no certificate to refuse.
UPDATE_RESULT: dict[UpdateResult, str] = {
    UpdateResult.ACCEPTED: "Accepted",
    UpdateResult.ACCEPTED_CANCELED: "AcceptedCanceled",
    UpdateResult.REJECTED: "Rejected",
    UpdateResult.INVALID_CERTIFICATE: "InvalidCertificate",
}

# LogEnumType (GetLogRequest.logType, N01).
LOG_KIND: dict[UploadKind, str] = {
    UploadKind.DIAGNOSTICS_LOG: "DiagnosticsLog",
    UploadKind.SECURITY_LOG: "SecurityLog",
}
LOG_KIND_IN = {v: k for k, v in LOG_KIND.items()}

# Tables where two core members share one 2.0.1 value (2.0.1 is coarser there): no reverse table is built on them.
NOT_INJECTIVE = frozenset(
    {"CHARGING_STATE", "STOP_REASON", "ENDED_TRIGGER", "UNLOCK", "PROFILE_RESULT", "LOCAL_LIST"}
)

# Smart charging (K01-K10): ChargingProfilePurposeEnumType (ChargingStationExternalConstraints is set by the
# station itself, never by SetChargingProfile: K01.FR.22), ChargingProfileKindEnumType, RecurrencyKindEnumType,
# ChargingRateUnitEnumType, ChargingProfileStatusEnumType (2.0.1 has no NotSupported) and
# ClearChargingProfileStatusEnumType.
PROFILE_PURPOSE: dict[ProfilePurpose, str] = {
    ProfilePurpose.CHARGE_POINT_MAX: "ChargingStationMaxProfile",
    ProfilePurpose.TX_DEFAULT: "TxDefaultProfile",
    ProfilePurpose.TX: "TxProfile",
}
PROFILE_PURPOSE_IN = {v: k for k, v in PROFILE_PURPOSE.items()}
# The other names are the core's values capitalized (as in 1.6): Absolute, Daily, A, Unknown ...
PROFILE_KIND: dict[ProfileKind, str] = {k: k.value.capitalize() for k in ProfileKind}
PROFILE_KIND_IN = {v: k for k, v in PROFILE_KIND.items()}
RECURRENCY: dict[RecurrencyKind, str] = {k: k.value.capitalize() for k in RecurrencyKind}
RECURRENCY_IN = {v: k for k, v in RECURRENCY.items()}
RATE_UNIT: dict[RateUnit, str] = {u: u.value for u in RateUnit}
RATE_UNIT_IN = {v: k for k, v in RATE_UNIT.items()}
PROFILE_RESULT: dict[ProfileResult, str] = {
    ProfileResult.ACCEPTED: "Accepted",
    ProfileResult.REJECTED: "Rejected",
    ProfileResult.NOT_SUPPORTED: "Rejected",
}
CLEAR_RESULT: dict[ClearResult, str] = {c: c.value.capitalize() for c in ClearResult}
# SmartChargingCtrlr.RateUnit (a MemberList): the units a schedule may use here.
RATE_UNITS = ",".join(RATE_UNIT[u] for u in RateUnit)

# The idToken type of a token read by the station's own reader (an RFID card's UID).
READER_TOKEN_TYPE = "ISO14443"
