"""The device model built from the settings SPECS: one variable per setting, at a unique (component, variable),
with type, bounds, mutability, persistence and reboot flags taken from the setting's spec."""

from __future__ import annotations

import pytest

from chargepoint.core.device_model import (
    PLACEMENT,
    VARIABLES,
    DataType,
    Mutability,
    VariableRef,
    components,
)
from chargepoint.core.security import authorization_key_error, basic_auth_password_error
from chargepoint.core.settings import SPECS, Kind, Settings, SettingSpec
from chargepoint.csms.v16 import mapping


def test_every_setting_is_one_variable_at_a_unique_place() -> None:
    assert set(PLACEMENT) == set(SPECS)
    assert len(set(PLACEMENT.values())) == len(PLACEMENT), "two settings share one (component, variable)"
    assert {v.setting for v in VARIABLES.values()} == set(SPECS)


@pytest.mark.parametrize("spec", SPECS.values(), ids=list(SPECS))
def test_variable_flags_follow_the_spec(spec: SettingSpec) -> None:
    variable = VARIABLES[PLACEMENT[spec.name]]
    assert variable.setting == spec.name
    expected_mutability = (
        Mutability.READ_ONLY
        if spec.readonly
        else Mutability.WRITE_ONLY
        if spec.write_only
        else Mutability.READ_WRITE
    )
    assert variable.mutability is expected_mutability
    assert variable.persistent is not spec.readonly
    assert variable.reboot_required is spec.reboot_required
    assert (variable.min_value, variable.max_value) == (spec.min_value, spec.max_value)
    expected_type = (
        {
            Kind.BOOL: DataType.BOOLEAN,
            Kind.INT: DataType.INTEGER,
            Kind.STR: DataType.STRING,
            Kind.MEASURANDS: DataType.MEMBER_LIST,
            Kind.HEX: DataType.STRING,
            Kind.PASSWORD: DataType.STRING,
        }[spec.kind]
        if not spec.choices
        else DataType.MEMBER_LIST
    )  # a STR of listed members is a MemberList
    assert variable.data_type is expected_type


def test_known_places_and_flags() -> None:
    heartbeat = VARIABLES[VariableRef("OCPPCommCtrlr", "HeartbeatInterval")]
    assert heartbeat.setting == "heartbeat_interval_s"
    assert (heartbeat.min_value, heartbeat.max_value) == (0, 86400)
    ping = VARIABLES[VariableRef("OCPPCommCtrlr", "WebSocketPingInterval")]
    assert ping.reboot_required and ping.mutability is Mutability.READ_WRITE
    connectors = VARIABLES[VariableRef("ChargingStation", "NumberOfConnectors")]
    assert connectors.mutability is Mutability.READ_ONLY and not connectors.persistent


def test_the_authorization_key_is_a_write_only_secret_in_either_versions_form() -> None:
    """OCPP 1.6 Security whitepaper ed. 2: AuthorizationKey is write-only, 16-40 bytes as hex; OCPP 2.0.1
    BasicAuthPassword: a passwordString of 16-40 characters. The setting keeps either; each adapter checks its own."""
    key = VARIABLES[VariableRef("SecurityCtrlr", "BasicAuthPassword")]
    assert key.setting == "authorization_key" and key.mutability is Mutability.WRITE_ONLY and key.persistent
    spec = SPECS["authorization_key"]
    assert spec.parse("ab" * 16) == "ab" * 16 and spec.parse("AB" * 40) == "AB" * 40
    assert spec.parse("Pass-word_1234567") == "Pass-word_1234567"
    for bad in ("ab" * 7, "ab" * 41, "ab " * 16, "\u0660\u0661" * 16, "pass word 123456", "x" * 15):
        with pytest.raises(ValueError, match="authorization_key"):
            spec.parse(bad)
    for bad in ("ab" * 15, "ab" * 41, "zz" * 16, "abc" * 11):
        assert authorization_key_error(bad) is not None
    assert authorization_key_error("ab" * 16) is None
    for bad in ("x" * 15, "x" * 41, "pass word 123456", "p\u00e4ssword12345678", "pass/word1234567"):
        assert basic_auth_password_error(bad) is not None
    assert basic_auth_password_error("*-_=:+|@.Abc1234") is None


def test_components_group_every_variable_once() -> None:
    grouped = components()
    assert sum(len(vs) for vs in grouped.values()) == len(VARIABLES)
    assert {"OCPPCommCtrlr", "TxCtrlr", "AuthCtrlr", "SampledDataCtrlr", "SmartChargingCtrlr"} <= set(grouped)
    for component, variables in grouped.items():
        assert all(v.ref.component == component for v in variables)


def test_every_16_key_reaches_a_setting_that_round_trips() -> None:
    """Each 1.6 key names a variable whose setting Settings can read (and, when writable, write back)."""
    settings = Settings()
    for key, ref in mapping.CONFIG_KEYS.items():
        variable = VARIABLES[ref]
        text = settings.text(variable.setting)
        if variable.mutability is Mutability.READ_WRITE:
            assert settings.set_text(variable.setting, text) is variable.reboot_required, key
        elif variable.mutability is Mutability.WRITE_ONLY:  # never read back: a fresh valid value goes in
            assert settings.set_text(variable.setting, "0f" * 16) is variable.reboot_required, key
        else:
            with pytest.raises(PermissionError):
                settings.set_text(variable.setting, text)
