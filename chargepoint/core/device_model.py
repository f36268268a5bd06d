"""The device model: every setting as a variable of a component, in the shape of OCPP 2.0.1's (Part 2 §B,
Appendix 3), built from ``core/settings.py`` SPECS.

A variable carries its data type, bounds, mutability, whether it survives a restart and whether a change needs a
reboot; its value is the setting of the same name (``Settings``). Each OCPP version maps its own names onto a
``VariableRef`` (1.6: ``csms/v16/mapping.py: CONFIG_KEYS``). Component and variable names follow the 2.0.1
standardized ones where 2.0.1 has the variable; 1.6-only settings sit in the nearest controller component.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from chargepoint.core.settings import SPECS, Kind, SettingSpec


class DataType(Enum):
    """How a variable's value is typed (OCPP 2.0.1 DataEnumType)."""

    BOOLEAN = "boolean"
    INTEGER = "integer"
    STRING = "string"
    MEMBER_LIST = "member_list"  # a comma-separated list of members (measurands, or ``Variable.members``)


class Mutability(Enum):
    """Who may change a variable (OCPP 2.0.1 MutabilityEnumType)."""

    READ_ONLY = "read_only"
    READ_WRITE = "read_write"
    WRITE_ONLY = "write_only"


@dataclass(frozen=True, slots=True)
class VariableRef:
    """A variable's address: component name and variable name."""

    component: str
    variable: str


@dataclass(frozen=True, slots=True)
class Variable:
    """One variable: where it lives, its type, bounds and flags, and the setting that holds its value."""

    ref: VariableRef
    setting: str
    data_type: DataType
    mutability: Mutability
    persistent: bool  # survives a restart (stored); read-only values come from the build and config
    reboot_required: bool
    min_value: int | None = None
    max_value: int | None = None  # for a MEMBER_LIST: the most members
    members: tuple[str, ...] = ()  # a MEMBER_LIST's allowed members (empty: the measurands)


_DATA_TYPE: dict[Kind, DataType] = {
    Kind.BOOL: DataType.BOOLEAN,
    Kind.INT: DataType.INTEGER,
    Kind.STR: DataType.STRING,
    Kind.MEASURANDS: DataType.MEMBER_LIST,
    Kind.HEX: DataType.STRING,  # OCPP 2.0.1 has no hex type: hexadecimal digits in a string
    Kind.PASSWORD: DataType.STRING,
}

_R = VariableRef
# Every setting's place in the device model (component, variable).
PLACEMENT: dict[str, VariableRef] = {
    "heartbeat_interval_s": _R("OCPPCommCtrlr", "HeartbeatInterval"),
    "connection_timeout_s": _R("TxCtrlr", "EVConnectionTimeOut"),
    "meter_value_sample_interval_s": _R("SampledDataCtrlr", "TxUpdatedInterval"),
    "clock_aligned_data_interval_s": _R("AlignedDataCtrlr", "Interval"),
    "meter_values_sampled_data": _R("SampledDataCtrlr", "TxUpdatedMeasurands"),
    "meter_values_aligned_data": _R("AlignedDataCtrlr", "Measurands"),
    "stop_txn_sampled_data": _R("SampledDataCtrlr", "TxEndedMeasurands"),
    "stop_txn_aligned_data": _R("AlignedDataCtrlr", "TxEndedMeasurands"),
    "local_pre_authorize": _R("AuthCtrlr", "LocalPreAuthorize"),
    "local_authorize_offline": _R("AuthCtrlr", "LocalAuthorizeOffline"),
    "authorization_cache_enabled": _R("AuthCacheCtrlr", "Enabled"),
    "allow_offline_tx_for_unknown_id": _R("AuthCtrlr", "OfflineTxForUnknownIdEnabled"),
    "stop_transaction_on_invalid_id": _R("TxCtrlr", "StopTxOnInvalidId"),
    "max_energy_on_invalid_id_wh": _R("TxCtrlr", "MaxEnergyOnInvalidId"),
    "stop_transaction_on_ev_side_disconnect": _R("TxCtrlr", "StopTxOnEVSideDisconnect"),
    "tx_start_point": _R("TxCtrlr", "TxStartPoint"),
    "tx_stop_point": _R("TxCtrlr", "TxStopPoint"),
    "unlock_connector_on_ev_side_disconnect": _R("OCPPCommCtrlr", "UnlockOnEVSideDisconnect"),
    "authorize_remote_tx_requests": _R("AuthCtrlr", "AuthorizeRemoteStart"),
    "local_auth_list_enabled": _R("LocalAuthListCtrlr", "Enabled"),
    "transaction_message_attempts": _R("OCPPCommCtrlr", "MessageAttempts"),
    "transaction_message_retry_interval_s": _R("OCPPCommCtrlr", "MessageAttemptInterval"),
    "minimum_status_duration_s": _R("OCPPCommCtrlr", "MinimumStatusDuration"),
    "reset_retries": _R("OCPPCommCtrlr", "ResetRetries"),
    "websocket_ping_interval_s": _R("OCPPCommCtrlr", "WebSocketPingInterval"),
    "number_of_connectors": _R("ChargingStation", "NumberOfConnectors"),
    "get_configuration_max_keys": _R("DeviceDataCtrlr", "ItemsPerMessage"),
    "bytes_per_message": _R("DeviceDataCtrlr", "BytesPerMessage"),
    "local_auth_list_max_length": _R("LocalAuthListCtrlr", "Entries"),
    "send_local_list_max_length": _R("LocalAuthListCtrlr", "ItemsPerMessage"),
    "measurands_max_length": _R("SampledDataCtrlr", "MeasurandsMaxLength"),
    "supported_feature_profiles": _R("ChargingStation", "SupportedFeatureProfiles"),
    "charge_profile_max_stack_level": _R("SmartChargingCtrlr", "ProfileStackLevel"),
    "charging_schedule_allowed_charging_rate_unit": _R("SmartChargingCtrlr", "RateUnit"),
    "charging_schedule_max_periods": _R("SmartChargingCtrlr", "PeriodsPerSchedule"),
    "max_charging_profiles_installed": _R("SmartChargingCtrlr", "Entries"),
    "smart_charging_enabled": _R("SmartChargingCtrlr", "Enabled"),
    "limit_change_significance": _R("SmartChargingCtrlr", "LimitChangeSignificance"),
    "connector_phase_rotation": _R("ChargingStation", "PhaseRotation"),
    "resume_transactions_after_power_loss": _R("TxCtrlr", "ResumeAfterPowerLoss"),
    "security_profile": _R("SecurityCtrlr", "SecurityProfile"),
    "authorization_key": _R("SecurityCtrlr", "BasicAuthPassword"),
    "cpo_name": _R("SecurityCtrlr", "OrganizationName"),
    "certificate_store_max_length": _R("SecurityCtrlr", "CertificateEntries"),
    "certificate_signed_max_chain_size": _R("SecurityCtrlr", "MaxCertificateChainSize"),
    "additional_root_certificate_check": _R("SecurityCtrlr", "AdditionalRootCertificateCheck"),
    "reserve_connector_zero_supported": _R("ReservationCtrlr", "NonEvseSpecific"),
    "network_configuration_priority": _R("OCPPCommCtrlr", "NetworkConfigurationPriority"),
    "network_profile_connection_attempts": _R("OCPPCommCtrlr", "NetworkProfileConnectionAttempts"),
    "send_local_list_max_bytes": _R("LocalAuthListCtrlr", "BytesPerMessage"),
    "local_auth_list_max_bytes": _R("LocalAuthListCtrlr", "Storage"),
    "reservation_enabled": _R("ReservationCtrlr", "Enabled"),
}


def _mutability(spec: SettingSpec) -> Mutability:
    if spec.readonly:
        return Mutability.READ_ONLY
    return Mutability.WRITE_ONLY if spec.write_only else Mutability.READ_WRITE


def variable_of(spec: SettingSpec) -> Variable:
    """The device-model variable that holds ``spec``'s setting."""
    return Variable(
        ref=PLACEMENT[spec.name],
        setting=spec.name,
        data_type=DataType.MEMBER_LIST if spec.choices else _DATA_TYPE[spec.kind],
        mutability=_mutability(spec),
        persistent=not spec.readonly,  # Settings ignores a stored value of a read-only setting
        reboot_required=spec.reboot_required,
        min_value=spec.min_value,
        max_value=spec.max_value,
        members=spec.choices,
    )


VARIABLES: dict[VariableRef, Variable] = {PLACEMENT[name]: variable_of(spec) for name, spec in SPECS.items()}


def components() -> dict[str, list[Variable]]:
    """Every component with its variables, in SPECS order."""
    out: dict[str, list[Variable]] = {}
    for variable in VARIABLES.values():
        out.setdefault(variable.ref.component, []).append(variable)
    return out
