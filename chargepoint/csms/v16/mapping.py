"""Tables between the core's vocabulary and OCPP 1.6 (every core enum member appears; a test checks it)."""

from __future__ import annotations

from chargepoint.core.device_model import VariableRef
from chargepoint.core.model import (
    AuthStatus,
    AvailabilityResult,
    ConnectorState,
    ErrorCode,
    FirmwareStatus,
    LocalListResult,
    Measurand,
    OperationalStatus,
    ReadingContext,
    StopReason,
    UnlockResult,
    UpdateResult,
    UploadKind,
    UploadStatus,
)
from chargepoint.core.reservations import CancelResult, ReserveResult
from chargepoint.core.smart_charging import (
    ClearResult,
    ProfileKind,
    ProfilePurpose,
    ProfileResult,
    RateUnit,
    RecurrencyKind,
)

S = ConnectorState

# OCPP 1.6 has no EVSE: connectorId n (> 0) is EVSE n with one connector (core/evse.py), so the core's session
# phase maps straight onto ChargePointStatus (§7.7); the coarser ConnectorStatus is 2.0.1's.
STATUS: dict[ConnectorState, str] = {
    S.AVAILABLE: "Available",
    S.PREPARING: "Preparing",
    S.CHARGING: "Charging",
    S.SUSPENDED_EV: "SuspendedEV",
    S.SUSPENDED_EVSE: "SuspendedEVSE",
    S.FINISHING: "Finishing",
    S.RESERVED: "Reserved",
    S.UNAVAILABLE: "Unavailable",
    S.FAULTED: "Faulted",
}

# OCPP 1.6 §7.3 AvailabilityType (ChangeAvailability.req type).
OPERATIONAL: dict[OperationalStatus, str] = {
    OperationalStatus.OPERATIVE: "Operative",
    OperationalStatus.INOPERATIVE: "Inoperative",
}
OPERATIONAL_IN = {v: k for k, v in OPERATIONAL.items()}

ERROR_CODE: dict[ErrorCode, str] = {
    ErrorCode.NO_ERROR: "NoError",
    ErrorCode.CONNECTOR_LOCK_FAILURE: "ConnectorLockFailure",
    ErrorCode.EV_COMMUNICATION_ERROR: "EVCommunicationError",
    ErrorCode.GROUND_FAILURE: "GroundFailure",
    ErrorCode.HIGH_TEMPERATURE: "HighTemperature",
    ErrorCode.INTERNAL_ERROR: "InternalError",
    ErrorCode.LOCAL_LIST_CONFLICT: "LocalListConflict",
    ErrorCode.OTHER_ERROR: "OtherError",
    ErrorCode.OVER_CURRENT_FAILURE: "OverCurrentFailure",
    ErrorCode.OVER_VOLTAGE: "OverVoltage",
    ErrorCode.POWER_METER_FAILURE: "PowerMeterFailure",
    ErrorCode.POWER_SWITCH_FAILURE: "PowerSwitchFailure",
    ErrorCode.READER_FAILURE: "ReaderFailure",
    ErrorCode.RESET_FAILURE: "ResetFailure",
    ErrorCode.UNDER_VOLTAGE: "UnderVoltage",
    ErrorCode.WEAK_SIGNAL: "WeakSignal",
}

STOP_REASON: dict[StopReason, str] = {
    StopReason.LOCAL: "Local",
    StopReason.REMOTE: "Remote",
    StopReason.EV_DISCONNECTED: "EVDisconnected",
    StopReason.HARD_RESET: "HardReset",
    StopReason.SOFT_RESET: "SoftReset",
    StopReason.POWER_LOSS: "PowerLoss",
    StopReason.REBOOT: "Reboot",
    StopReason.DEAUTHORIZED: "DeAuthorized",
    StopReason.EMERGENCY_STOP: "EmergencyStop",
    StopReason.UNLOCK_COMMAND: "UnlockCommand",
    # 1.6 has no reason for it (a 2.0.1 TxStartPoint Authorized transaction never met its cable).
    StopReason.EV_CONNECT_TIMEOUT: "Other",
    StopReason.OTHER: "Other",
}

AUTH_STATUS: dict[AuthStatus, str] = {
    AuthStatus.ACCEPTED: "Accepted",
    AuthStatus.BLOCKED: "Blocked",
    AuthStatus.EXPIRED: "Expired",
    AuthStatus.INVALID: "Invalid",
    AuthStatus.CONCURRENT_TX: "ConcurrentTx",
}
AUTH_STATUS_IN = {v: k for k, v in AUTH_STATUS.items()}

CONTEXT: dict[ReadingContext, str] = {
    ReadingContext.TRANSACTION_BEGIN: "Transaction.Begin",
    ReadingContext.TRANSACTION_END: "Transaction.End",
    ReadingContext.SAMPLE_PERIODIC: "Sample.Periodic",
    ReadingContext.SAMPLE_CLOCK: "Sample.Clock",
    ReadingContext.TRIGGER: "Trigger",
}

MEASURAND: dict[Measurand, str] = {m: m.value for m in Measurand}

AVAILABILITY: dict[AvailabilityResult, str] = {
    AvailabilityResult.ACCEPTED: "Accepted",
    AvailabilityResult.REJECTED: "Rejected",
    AvailabilityResult.SCHEDULED: "Scheduled",
}

UNLOCK: dict[UnlockResult, str] = {
    UnlockResult.UNLOCKED: "Unlocked",
    UnlockResult.UNLOCK_FAILED: "UnlockFailed",
    UnlockResult.NOT_SUPPORTED: "NotSupported",
}

LOCAL_LIST: dict[LocalListResult, str] = {
    LocalListResult.ACCEPTED: "Accepted",
    LocalListResult.FAILED: "Failed",
    LocalListResult.NOT_SUPPORTED: "NotSupported",
    LocalListResult.VERSION_MISMATCH: "VersionMismatch",
}

PROFILE_PURPOSE: dict[ProfilePurpose, str] = {
    ProfilePurpose.CHARGE_POINT_MAX: "ChargePointMaxProfile",
    ProfilePurpose.TX_DEFAULT: "TxDefaultProfile",
    ProfilePurpose.TX: "TxProfile",
}
PROFILE_PURPOSE_IN = {v: k for k, v in PROFILE_PURPOSE.items()}

PROFILE_KIND: dict[ProfileKind, str] = {
    ProfileKind.ABSOLUTE: "Absolute",
    ProfileKind.RECURRING: "Recurring",
    ProfileKind.RELATIVE: "Relative",
}
PROFILE_KIND_IN = {v: k for k, v in PROFILE_KIND.items()}

RECURRENCY: dict[RecurrencyKind, str] = {RecurrencyKind.DAILY: "Daily", RecurrencyKind.WEEKLY: "Weekly"}
RECURRENCY_IN = {v: k for k, v in RECURRENCY.items()}

RATE_UNIT: dict[RateUnit, str] = {RateUnit.AMPERE: "A", RateUnit.WATT: "W"}
RATE_UNIT_IN = {v: k for k, v in RATE_UNIT.items()}

PROFILE_RESULT: dict[ProfileResult, str] = {
    ProfileResult.ACCEPTED: "Accepted",
    ProfileResult.REJECTED: "Rejected",
    ProfileResult.NOT_SUPPORTED: "NotSupported",
}

CLEAR_RESULT: dict[ClearResult, str] = {ClearResult.ACCEPTED: "Accepted", ClearResult.UNKNOWN: "Unknown"}

# OCPP 1.6 §9.4 ChargingScheduleAllowedChargingRateUnit: a CSL of "Current" and "Power".
ALLOWED_RATE_UNITS = "Current,Power"

# OCPP 1.6 configuration keys (§9.1 Core, §9.2 LocalAuthListManagement, §9.4 SmartCharging) -> the device model's
# (component, variable); the four *MaxLength keys share one variable.
CONFIG_KEYS: dict[str, VariableRef] = {
    "AllowOfflineTxForUnknownId": VariableRef("AuthCtrlr", "OfflineTxForUnknownIdEnabled"),
    "AuthorizationCacheEnabled": VariableRef("AuthCacheCtrlr", "Enabled"),
    "AuthorizeRemoteTxRequests": VariableRef("AuthCtrlr", "AuthorizeRemoteStart"),
    "ClockAlignedDataInterval": VariableRef("AlignedDataCtrlr", "Interval"),
    "ConnectionTimeOut": VariableRef("TxCtrlr", "EVConnectionTimeOut"),
    "ConnectorPhaseRotation": VariableRef("ChargingStation", "PhaseRotation"),
    "GetConfigurationMaxKeys": VariableRef("DeviceDataCtrlr", "ItemsPerMessage"),
    "HeartbeatInterval": VariableRef("OCPPCommCtrlr", "HeartbeatInterval"),
    "LocalAuthorizeOffline": VariableRef("AuthCtrlr", "LocalAuthorizeOffline"),
    "LocalPreAuthorize": VariableRef("AuthCtrlr", "LocalPreAuthorize"),
    "MaxEnergyOnInvalidId": VariableRef("TxCtrlr", "MaxEnergyOnInvalidId"),
    "MeterValuesAlignedData": VariableRef("AlignedDataCtrlr", "Measurands"),
    "MeterValuesAlignedDataMaxLength": VariableRef("SampledDataCtrlr", "MeasurandsMaxLength"),
    "MeterValuesSampledData": VariableRef("SampledDataCtrlr", "TxUpdatedMeasurands"),
    "MeterValuesSampledDataMaxLength": VariableRef("SampledDataCtrlr", "MeasurandsMaxLength"),
    "MeterValueSampleInterval": VariableRef("SampledDataCtrlr", "TxUpdatedInterval"),
    "MinimumStatusDuration": VariableRef("OCPPCommCtrlr", "MinimumStatusDuration"),
    "NumberOfConnectors": VariableRef("ChargingStation", "NumberOfConnectors"),
    "ResetRetries": VariableRef("OCPPCommCtrlr", "ResetRetries"),
    "StopTransactionOnEVSideDisconnect": VariableRef("TxCtrlr", "StopTxOnEVSideDisconnect"),
    "StopTransactionOnInvalidId": VariableRef("TxCtrlr", "StopTxOnInvalidId"),
    "StopTxnAlignedData": VariableRef("AlignedDataCtrlr", "TxEndedMeasurands"),
    "StopTxnAlignedDataMaxLength": VariableRef("SampledDataCtrlr", "MeasurandsMaxLength"),
    "StopTxnSampledData": VariableRef("SampledDataCtrlr", "TxEndedMeasurands"),
    "StopTxnSampledDataMaxLength": VariableRef("SampledDataCtrlr", "MeasurandsMaxLength"),
    "SupportedFeatureProfiles": VariableRef("ChargingStation", "SupportedFeatureProfiles"),
    "TransactionMessageAttempts": VariableRef("OCPPCommCtrlr", "MessageAttempts"),
    "TransactionMessageRetryInterval": VariableRef("OCPPCommCtrlr", "MessageAttemptInterval"),
    "UnlockConnectorOnEVSideDisconnect": VariableRef("OCPPCommCtrlr", "UnlockOnEVSideDisconnect"),
    "WebSocketPingInterval": VariableRef("OCPPCommCtrlr", "WebSocketPingInterval"),
    "LocalAuthListEnabled": VariableRef("LocalAuthListCtrlr", "Enabled"),
    "LocalAuthListMaxLength": VariableRef("LocalAuthListCtrlr", "Entries"),
    "SendLocalListMaxLength": VariableRef("LocalAuthListCtrlr", "ItemsPerMessage"),
    "ResumeTransactionsAfterPowerLoss": VariableRef("TxCtrlr", "ResumeAfterPowerLoss"),
    "ChargeProfileMaxStackLevel": VariableRef("SmartChargingCtrlr", "ProfileStackLevel"),
    "ChargingScheduleAllowedChargingRateUnit": VariableRef("SmartChargingCtrlr", "RateUnit"),
    "ChargingScheduleMaxPeriods": VariableRef("SmartChargingCtrlr", "PeriodsPerSchedule"),
    "MaxChargingProfilesInstalled": VariableRef("SmartChargingCtrlr", "Entries"),
    # OCPP 1.6 Security whitepaper ed. 2, configuration keys.
    "SecurityProfile": VariableRef("SecurityCtrlr", "SecurityProfile"),
    "AuthorizationKey": VariableRef("SecurityCtrlr", "BasicAuthPassword"),
    "CpoName": VariableRef("SecurityCtrlr", "OrganizationName"),
    "CertificateStoreMaxLength": VariableRef("SecurityCtrlr", "CertificateEntries"),
    "CertificateSignedMaxChainSize": VariableRef("SecurityCtrlr", "MaxCertificateChainSize"),
    "AdditionalRootCertificateCheck": VariableRef("SecurityCtrlr", "AdditionalRootCertificateCheck"),
    "ReserveConnectorZeroSupported": VariableRef("ReservationCtrlr", "NonEvseSpecific"),  # §9.5
}


# OCPP 1.6 §7.38 ReservationStatus and §7.4 CancelReservationStatus.
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

SUPPORTED_PROFILES = "Core,FirmwareManagement,LocalAuthListManagement,RemoteTrigger,SmartCharging,Reservation"

# Firmware and diagnostics (OCPP 1.6 §4.5, §6.13, §6.17; Security whitepaper ed. 2 §4.4, §4.5). The whitepaper's
# SignedFirmwareStatusNotification knows every status; the plain FirmwareStatusNotification only ``PLAIN_FIRMWARE``
# (the others are not sent for a plain UpdateFirmware: there is no 1.6 word for them).
F = FirmwareStatus
FIRMWARE_STATUS: dict[FirmwareStatus, str] = {
    F.IDLE: "Idle",
    F.DOWNLOAD_SCHEDULED: "DownloadScheduled",
    F.DOWNLOADING: "Downloading",
    F.DOWNLOADED: "Downloaded",
    F.DOWNLOAD_FAILED: "DownloadFailed",
    F.INVALID_SIGNATURE: "InvalidSignature",
    F.SIGNATURE_VERIFIED: "SignatureVerified",
    F.INSTALL_SCHEDULED: "InstallScheduled",
    F.INSTALLING: "Installing",
    F.INSTALL_REBOOTING: "InstallRebooting",
    F.INSTALLED: "Installed",
    F.INSTALLATION_FAILED: "InstallationFailed",
}
PLAIN_FIRMWARE = frozenset(
    {F.IDLE, F.DOWNLOADING, F.DOWNLOADED, F.DOWNLOAD_FAILED, F.INSTALLING, F.INSTALLED, F.INSTALLATION_FAILED}
)
# What a triggered plain FirmwareStatusNotification says in each state (OCPP 1.6 §5.17: the current status):
# the last plain status the update went through (Idle before the download begins).
PLAIN_FIRMWARE_NOW: dict[FirmwareStatus, str] = {
    state: FIRMWARE_STATUS[state] for state in FirmwareStatus if state in PLAIN_FIRMWARE
} | {
    F.DOWNLOAD_SCHEDULED: "Idle",
    F.SIGNATURE_VERIFIED: "Downloaded",
    F.INVALID_SIGNATURE: "DownloadFailed",
    F.INSTALL_SCHEDULED: "Downloaded",
    F.INSTALL_REBOOTING: "Installing",
}
DIAGNOSTICS_STATUS: dict[UploadStatus, str] = {
    UploadStatus.IDLE: "Idle",
    UploadStatus.UPLOADING: "Uploading",
    UploadStatus.UPLOADED: "Uploaded",
    UploadStatus.UPLOAD_FAILED: "UploadFailed",
}
LOG_STATUS: dict[UploadStatus, str] = {
    UploadStatus.IDLE: "Idle",
    UploadStatus.UPLOADING: "Uploading",
    UploadStatus.UPLOADED: "Uploaded",
    UploadStatus.UPLOAD_FAILED: "UploadFailure",
}
UPDATE_RESULT: dict[UpdateResult, str] = {
    UpdateResult.ACCEPTED: "Accepted",
    UpdateResult.ACCEPTED_CANCELED: "AcceptedCanceled",
    UpdateResult.REJECTED: "Rejected",
    UpdateResult.INVALID_CERTIFICATE: "InvalidCertificate",
}
LOG_KIND_IN: dict[str, UploadKind] = {
    "DiagnosticsLog": UploadKind.DIAGNOSTICS_LOG,
    "SecurityLog": UploadKind.SECURITY_LOG,
}

# OCPP-J 1.6 §4.2.3 spells two codes differently from the `ocpp` package (errata 5.1, 5.2: not fixed).
CALL_ERROR_CODE: dict[str, str] = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
}

# OCPP 1.6 §4.9: the StatusNotification transitions the spec allows (from -> to), connectors > 0.
LEGAL_STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    "Available": frozenset(
        {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Reserved", "Unavailable", "Faulted"}
    ),
    "Preparing": frozenset({"Available", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Faulted"}),
    "Charging": frozenset(
        {"Available", "SuspendedEV", "SuspendedEVSE", "Finishing", "Unavailable", "Faulted"}
    ),
    "SuspendedEV": frozenset(
        {"Available", "Charging", "SuspendedEVSE", "Finishing", "Unavailable", "Faulted"}
    ),
    "SuspendedEVSE": frozenset(
        {"Available", "Charging", "SuspendedEV", "Finishing", "Unavailable", "Faulted"}
    ),
    "Finishing": frozenset({"Available", "Preparing", "Unavailable", "Faulted"}),
    "Reserved": frozenset({"Available", "Preparing", "Unavailable", "Faulted"}),
    "Unavailable": frozenset(
        {"Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Faulted"}
    ),
    "Faulted": frozenset(
        {
            "Available",
            "Preparing",
            "Charging",
            "SuspendedEV",
            "SuspendedEVSE",
            "Finishing",
            "Reserved",
            "Unavailable",
        }
    ),
}
# Connector 0 (the charge point as a whole) only takes these states.
CONNECTOR_ZERO_STATES = frozenset({"Available", "Unavailable", "Faulted"})
