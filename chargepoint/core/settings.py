"""Runtime settings the central system may read and change, by version-neutral name.

Each OCPP version maps its own key names onto these (see ``csms/v16/mapping.py``). Values are typed,
validated here once, and persisted by the store as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType
from typing import Any

from chargepoint.core.model import Measurand

_ASCII_INT = re.compile(r"[+-]?[0-9]{1,18}")  # at most 18 digits: always within a signed 64-bit store
_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")
# BytesPerMessage: under many servers' 64 KiB frame limit. The least a station may be configured with still holds
# every message that is neither cut nor trimmed: the widest is a ReportChargingProfiles with one profile of
# PeriodsPerSchedule (24) periods, ~2.1 KB at its widest (below that, a GetChargingProfiles answered Accepted could
# be followed by no report at all); a SignCertificate with a P-256 CSR, a TransactionEvent Ended with its end
# register or a NotifyCustomerInformation are under 1 KB.
BYTES_PER_MESSAGE = 65_000
MIN_BYTES_PER_MESSAGE = 4096


class Kind(Enum):
    """How a setting's value is typed."""

    BOOL = "bool"
    INT = "int"
    STR = "str"
    MEASURANDS = "measurands"
    HEX = "hex"  # bytes as hexadecimal text; min_value/max_value bound the length in bytes
    # A Basic-auth password as either version lets the CSMS set it (``core/security.py``): a 1.6 AuthorizationKey
    # or a 2.0.1 BasicAuthPassword. Each adapter checks its own version's form before it stores one.
    PASSWORD = "password"


@dataclass(frozen=True, slots=True)
class SettingSpec:
    """One setting: its type, default, allowed range and how a change takes effect."""

    name: str
    kind: Kind
    default: Any
    readonly: bool = False
    reboot_required: bool = False
    min_value: int | None = None
    max_value: int | None = None
    write_only: bool = False  # a secret: set by the CSMS, never read back (AuthorizationKey)
    # A STR setting that is a comma-separated list of these members (OCPP 2.0.1 MemberList), in any order, each
    # at most once; ``unsupported`` are members the protocol knows but this station cannot honour (refused with a
    # reason that says so, not as a typo).
    choices: tuple[str, ...] = ()
    unsupported: tuple[str, ...] = ()

    def parse(self, text: str) -> Any:
        """Turn the text form into a typed value; raises ValueError naming what is allowed."""
        text = text.strip()
        if self.kind is Kind.BOOL:
            low = text.lower()
            if low not in ("true", "false"):
                raise ValueError(f"{self.name} must be true or false")
            return low == "true"
        if self.kind is Kind.INT:
            # ASCII digits only: int() also takes "١٢" (Arabic-Indic digits), "1_000" and 4,300-digit numbers.
            if not _ASCII_INT.fullmatch(text):
                raise ValueError(f"{self.name} must be an integer")
            value = int(text)
            if self.min_value is not None and value < self.min_value:
                raise ValueError(f"{self.name} must be >= {self.min_value}")
            if self.max_value is not None and value > self.max_value:
                raise ValueError(f"{self.name} must be <= {self.max_value}")
            return value
        if self.kind is Kind.HEX:
            if not _HEX.fullmatch(text):
                raise ValueError(f"{self.name} must be hexadecimal, two characters per byte")
            size = len(text) // 2
            if (self.min_value is not None and size < self.min_value) or (
                self.max_value is not None and size > self.max_value
            ):
                raise ValueError(f"{self.name} must be {self.min_value}-{self.max_value} bytes")
            return text
        if self.kind is Kind.PASSWORD:
            from chargepoint.core.security import authorization_key_error, basic_auth_password_error

            if authorization_key_error(text) and basic_auth_password_error(text):
                raise ValueError(
                    f"{self.name} must be 16-40 bytes as hexadecimal or 16-40 characters of letters, digits "
                    "and *-_=:+|@."
                )
            return text
        if self.kind is Kind.MEASURANDS:
            items = [part.strip() for part in text.split(",") if part.strip()]
            try:
                parsed = tuple(Measurand(item) for item in items)
            except ValueError:
                allowed = ", ".join(m.value for m in Measurand)
                raise ValueError(f"{self.name} must list measurands from: {allowed}") from None
            if self.max_value is not None and len(parsed) > self.max_value:
                raise ValueError(f"{self.name} takes at most {self.max_value} measurands")
            return parsed
        if self.choices:
            return self._members(text)
        return text

    def _members(self, text: str) -> str:
        items = [part.strip() for part in text.split(",")]
        for item in items:
            if item in self.unsupported:
                raise ValueError(f"{self.name}: {item} is not supported by this station")
            if item not in self.choices:
                raise ValueError(f"{self.name} must list members from: {', '.join(self.choices)}")
        if len(set(items)) != len(items):
            raise ValueError(f"{self.name} lists a member twice")
        return ",".join(items)

    def format(self, value: Any) -> str:
        """The text form of a typed value."""
        if self.kind is Kind.BOOL:
            return "true" if value else "false"
        if self.kind is Kind.MEASURANDS:
            return ",".join(m.value for m in value)
        return str(value)


_ENERGY = (Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,)
# OCPP 2.0.1 TxStartPoint/TxStopPoint members (Part 2 §E, TxStartStopPointEnumType). The station has no parking
# bay sensor, signs no meter data and does not track energy transfer apart from its relay, so those are refused.
TX_POINTS = ("EVConnected", "Authorized", "PowerPathClosed")
TX_POINTS_UNSUPPORTED = ("ParkingBayOccupancy", "EnergyTransfer", "DataSigned")
MAX_MEASURANDS = len(Measurand)

SPECS: dict[str, SettingSpec] = {
    spec.name: spec
    for spec in (
        SettingSpec("heartbeat_interval_s", Kind.INT, 300, min_value=0, max_value=86400),
        SettingSpec("connection_timeout_s", Kind.INT, 60, min_value=1, max_value=3600),
        SettingSpec("meter_value_sample_interval_s", Kind.INT, 60, min_value=0, max_value=86400),
        SettingSpec("clock_aligned_data_interval_s", Kind.INT, 0, min_value=0, max_value=86400),
        SettingSpec("meter_values_sampled_data", Kind.MEASURANDS, _ENERGY, max_value=MAX_MEASURANDS),
        SettingSpec("meter_values_aligned_data", Kind.MEASURANDS, _ENERGY, max_value=MAX_MEASURANDS),
        SettingSpec("stop_txn_sampled_data", Kind.MEASURANDS, (), max_value=MAX_MEASURANDS),
        SettingSpec("stop_txn_aligned_data", Kind.MEASURANDS, (), max_value=MAX_MEASURANDS),
        SettingSpec("local_pre_authorize", Kind.BOOL, False),
        SettingSpec("local_authorize_offline", Kind.BOOL, True),
        SettingSpec("authorization_cache_enabled", Kind.BOOL, True),
        SettingSpec("allow_offline_tx_for_unknown_id", Kind.BOOL, False),
        SettingSpec("stop_transaction_on_invalid_id", Kind.BOOL, True),
        SettingSpec("max_energy_on_invalid_id_wh", Kind.INT, 0, min_value=0, max_value=10_000_000),
        SettingSpec("stop_transaction_on_ev_side_disconnect", Kind.BOOL, True),
        # When a transaction starts and ends (OCPP 2.0.1 E01-E03, E06): PowerPathClosed is the 1.6 behaviour (it
        # starts once the EV is connected and the driver authorized, and ends when either stops being so).
        SettingSpec(
            "tx_start_point",
            Kind.STR,
            "PowerPathClosed",
            choices=TX_POINTS,
            unsupported=TX_POINTS_UNSUPPORTED,
        ),
        SettingSpec(
            "tx_stop_point",
            Kind.STR,
            "PowerPathClosed",
            choices=TX_POINTS,
            unsupported=TX_POINTS_UNSUPPORTED,
        ),
        SettingSpec("unlock_connector_on_ev_side_disconnect", Kind.BOOL, True),
        SettingSpec("authorize_remote_tx_requests", Kind.BOOL, False),
        SettingSpec("local_auth_list_enabled", Kind.BOOL, True),
        SettingSpec("transaction_message_attempts", Kind.INT, 3, min_value=1, max_value=100),
        SettingSpec("transaction_message_retry_interval_s", Kind.INT, 60, min_value=0, max_value=86400),
        SettingSpec("minimum_status_duration_s", Kind.INT, 0, min_value=0, max_value=3600),
        SettingSpec("reset_retries", Kind.INT, 1, min_value=0, max_value=10),
        # Ping interval is applied when the WebSocket is opened, so a change needs a reconnect.
        SettingSpec(
            "websocket_ping_interval_s", Kind.INT, 60, min_value=0, max_value=3600, reboot_required=True
        ),
        SettingSpec("number_of_connectors", Kind.INT, 1, readonly=True),
        SettingSpec("get_configuration_max_keys", Kind.INT, 64, readonly=True),
        # The largest message the station sends or takes in a report (OCPP 2.0.1 DeviceDataCtrlr.BytesPerMessage).
        # Read-only to the CSMS; the station's own configuration sets it (``csms.bytes_per_message``).
        SettingSpec(
            "bytes_per_message",
            Kind.INT,
            BYTES_PER_MESSAGE,
            readonly=True,
            min_value=MIN_BYTES_PER_MESSAGE,
        ),
        SettingSpec("local_auth_list_max_length", Kind.INT, 10_000, readonly=True),
        SettingSpec("send_local_list_max_length", Kind.INT, 1_000, readonly=True),
        # OCPP 2.0.1 LocalAuthListCtrlr: the most bytes of one SendLocalList and of the whole stored list.
        SettingSpec("send_local_list_max_bytes", Kind.INT, 256_000, readonly=True),
        SettingSpec("local_auth_list_max_bytes", Kind.INT, 4_000_000, readonly=True),
        SettingSpec("measurands_max_length", Kind.INT, MAX_MEASURANDS, readonly=True),
        SettingSpec("supported_feature_profiles", Kind.STR, "", readonly=True),
        # Smart charging (OCPP 1.6 §9.4): what the charge point accepts in a charging profile.
        SettingSpec("charge_profile_max_stack_level", Kind.INT, 8, readonly=True),
        SettingSpec("charging_schedule_allowed_charging_rate_unit", Kind.STR, "", readonly=True),
        SettingSpec("charging_schedule_max_periods", Kind.INT, 24, readonly=True),
        SettingSpec("max_charging_profiles_installed", Kind.INT, 16, readonly=True),
        # OCPP 2.0.1 SmartChargingCtrlr: off, new profiles are Rejected and a remote start's is ignored (F01.FR.12);
        # the significance (percent) is kept for the CSMS, the station has no external limit to notify about.
        SettingSpec("smart_charging_enabled", Kind.BOOL, True),
        SettingSpec("limit_change_significance", Kind.INT, 10, min_value=0, max_value=100),
        SettingSpec("connector_phase_rotation", Kind.STR, "0.RST"),
        SettingSpec("resume_transactions_after_power_loss", Kind.BOOL, False),
        # OCPP 1.6 Security whitepaper ed. 2, configuration keys. The profile in use changes only through
        # core/security.py (upwards, after a successful connection); the key is write-only: a 1.6 AuthorizationKey
        # (16-40 bytes as hex) or a 2.0.1 BasicAuthPassword (16-40 characters).
        SettingSpec("security_profile", Kind.INT, 0, min_value=0, max_value=3),
        SettingSpec("authorization_key", Kind.PASSWORD, "", write_only=True),
        SettingSpec("cpo_name", Kind.STR, ""),
        SettingSpec("certificate_store_max_length", Kind.INT, 16, readonly=True),
        SettingSpec("certificate_signed_max_chain_size", Kind.INT, 10_000, readonly=True),
        SettingSpec("additional_root_certificate_check", Kind.BOOL, False, readonly=True),
        # Reservation (OCPP 1.6 §9.5): whether ReserveNow may name connector 0 (any connector); read-only.
        SettingSpec("reserve_connector_zero_supported", Kind.BOOL, True, readonly=True),
        # OCPP 2.0.1 B09/B10 (``core/network_profiles.py``): the configuration slots to connect with, in order
        # ("0" is the configured connection), and the failed attempts on one before the next is tried.
        SettingSpec("network_configuration_priority", Kind.STR, "0"),
        SettingSpec("network_profile_connection_attempts", Kind.INT, 3, min_value=1, max_value=100),
        # OCPP 2.0.1 ReservationCtrlr.Enabled: ReserveNow is Rejected while off (H01.FR.?).
        SettingSpec("reservation_enabled", Kind.BOOL, True),
    )
}


# Defaults with a configuration's overrides, shared by every Settings made with the same overrides (the agents of
# one fleet scenario): ~80 values are ~1.5 KB per agent otherwise. Bounded: past MAX_SHARED_BASES distinct
# configurations a Settings keeps a private copy.
MAX_SHARED_BASES = 64
_SHARED_BASES: dict[tuple[tuple[str, Any], ...], Mapping[str, Any]] = {}
_MISSING = object()


def _base(overrides: dict[str, Any] | None) -> Mapping[str, Any]:
    """The defaults with ``overrides`` applied, read-only, shared between equal overrides where they hash."""
    try:
        key = tuple(sorted((overrides or {}).items()))
        hash(key)
    except TypeError:  # an unhashable override value: not shared
        key = None
    if key is not None:
        shared = _SHARED_BASES.get(key)
        if shared is not None:
            return shared
    values = {name: spec.default for name, spec in SPECS.items()}
    values.update(overrides or {})
    base = MappingProxyType(values)
    if key is not None and len(_SHARED_BASES) < MAX_SHARED_BASES:
        _SHARED_BASES[key] = base
    return base


class Settings:
    """Typed current values of every setting, with a hook that persists each change.

    Copy-on-write: the defaults with the configuration's overrides are shared (read-only) with every Settings of
    the same configuration; this instance holds only its own values (stored, or set since), so a change here never
    shows in another charger."""

    __slots__ = ("_base", "_on_change", "_own", "listeners")

    def __init__(
        self,
        stored: dict[str, str] | None = None,
        overrides: dict[str, Any] | None = None,
        on_change: Callable[[str, str], None] | None = None,
    ) -> None:
        self._base = _base(overrides)
        own: dict[str, Any] = {}
        for name, text in (stored or {}).items():
            spec = SPECS.get(name)
            if spec is None or spec.readonly:
                continue
            try:
                value = spec.parse(text)
            except ValueError:
                continue  # a value stored by an older version that no longer parses keeps the default
            if value != self._base[name]:
                own[name] = value
        self._own: dict[str, Any] | None = own or None
        self._on_change = on_change
        self.listeners: list[Callable[[str], None]] = []  # told the name of each setting that changed

    def _value(self, name: str) -> Any:
        own = self._own
        if own is not None:
            value = own.get(name, _MISSING)
            if value is not _MISSING:
                return value
        return self._base[name]

    def __getitem__(self, name: str) -> Any:
        return self._value(name)

    def get_int(self, name: str) -> int:
        """An integer setting."""
        value = self._value(name)
        assert isinstance(value, int)
        return value

    def get_bool(self, name: str) -> bool:
        """A boolean setting."""
        return bool(self._value(name))

    def measurands(self, name: str) -> tuple[Measurand, ...]:
        """A measurand-list setting."""
        value = self._value(name)
        assert isinstance(value, tuple)
        return value

    def text(self, name: str) -> str:
        """The text form of a setting's current value."""
        return SPECS[name].format(self._value(name))

    def set_text(self, name: str, text: str) -> bool:
        """Parse, validate, store and persist a new value; returns whether a reboot is needed.

        Raises KeyError for an unknown name, PermissionError for a read-only one, ValueError for a bad value.
        """
        spec = SPECS[name]
        if spec.readonly:
            raise PermissionError(f"{name} is read-only")
        value = spec.parse(text)
        if self._on_change is not None:
            self._on_change(name, spec.format(value))
        own = self._own
        if value != self._base[name]:
            if own is None:
                own = self._own = {}
            own[name] = value
        elif own is not None:
            own.pop(name, None)  # back to the shared value: nothing of its own to keep
            if not own:
                self._own = None
        for listener in list(self.listeners):
            listener(name)
        return spec.reboot_required

    def names(self) -> Iterable[str]:
        """Every setting name."""
        return SPECS.keys()
