"""Layering and vocabulary rules of DESIGN.md: the core imports no protocol or hardware library, and every
core enum member has an OCPP 1.6 spelling that the ``ocpp`` package accepts."""

from __future__ import annotations

import ast
import inspect
from enum import Enum
from pathlib import Path
from typing import Protocol

import pytest
from ocpp.v16 import enums as v16
from ocpp.v201 import enums as v201

import chargepoint.core
from chargepoint.core import device_model, model, reservations, smart_charging, storage
from chargepoint.core.security import SecurityEventType
from chargepoint.core.settings import SPECS
from chargepoint.core.storage import CertificateUse
from chargepoint.csms.v16 import mapping
from chargepoint.csms.v201 import mapping as mapping201
from chargepoint.store import Store

CORE_DIR = Path(chargepoint.core.__file__).parent
# The core depends on the storage port (chargepoint.core.storage), never on the SQLite store behind it.
FORBIDDEN = (
    "ocpp",
    "websockets",
    "pymodbus",
    "serial",
    "smartcard",
    "gpiod",
    "chargepoint.csms",
    "hardware",
    "chargepoint.store",
    "sqlite3",
)


def _core_modules() -> list[Path]:
    return sorted(CORE_DIR.rglob("*.py"))


def _imported_names(tree: ast.AST, package: str) -> list[str]:
    """Every absolute module name imported anywhere in ``tree`` (function bodies included)."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the module's package
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                names.append(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.append(node.module)
    return names


def _forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def test_core_modules_found() -> None:
    names = {p.stem for p in _core_modules()}
    assert {"model", "settings", "connector", "auth", "metering", "station"} <= names


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: p.name)
def test_core_imports_no_protocol_or_hardware_library(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    bad = [name for name in _imported_names(tree, "chargepoint.core") if _forbidden(name)]
    assert not bad, f"{path.name} imports {bad}"


def test_import_checker_catches_forbidden_imports() -> None:
    """The checker itself sees top-level, nested and relative imports."""
    source = (
        "import os\n"
        "from ocpp.v16 import call\n"
        "def f():\n"
        "    import serial.tools\n"
        "    from ..csms import link\n"
        "    from hardware.sim import SimRelay\n"
        "    import sqlite3\n"
        "    from ..store import Store\n"
        "    from chargepoint.csms.v16.mapping import STATUS\n"
        "    import websockets.asyncio.client\n"
    )
    found = [n for n in _imported_names(ast.parse(source), "chargepoint.core") if _forbidden(n)]
    assert found == [
        "ocpp.v16",
        "serial.tools",
        "chargepoint.csms",
        "hardware.sim",
        "sqlite3",
        "chargepoint.store",
        "chargepoint.csms.v16.mapping",
        "websockets.asyncio.client",
    ]


_PORT_MEMBERS = sorted(
    name for name in dir(storage.Storage) if not name.startswith("_") and name not in dir(Protocol)
)


@pytest.mark.parametrize("name", _PORT_MEMBERS)
def test_sqlite_store_implements_the_storage_port(name: str) -> None:
    """Every member of the core's storage port exists on the SQLite Store with the same signature."""
    port_member = inspect.getattr_static(storage.Storage, name)
    store_member = inspect.getattr_static(Store, name)
    if isinstance(port_member, property):
        assert isinstance(store_member, property)
        return
    assert inspect.signature(store_member) == inspect.signature(port_member)


# (core enum, 1.6 table, ocpp.v16 enum or None)
TABLES: list[tuple[type[Enum], dict[object, str], type[Enum] | None]] = [
    (model.ConnectorState, mapping.STATUS, v16.ChargePointStatus),
    (model.OperationalStatus, mapping.OPERATIONAL, v16.AvailabilityType),
    (model.ErrorCode, mapping.ERROR_CODE, v16.ChargePointErrorCode),
    (model.StopReason, mapping.STOP_REASON, v16.Reason),
    (model.AuthStatus, mapping.AUTH_STATUS, v16.AuthorizationStatus),
    (model.ReadingContext, mapping.CONTEXT, v16.ReadingContext),
    (model.Measurand, mapping.MEASURAND, v16.Measurand),
    (model.AvailabilityResult, mapping.AVAILABILITY, v16.AvailabilityStatus),
    (model.UnlockResult, mapping.UNLOCK, v16.UnlockStatus),
    (model.LocalListResult, mapping.LOCAL_LIST, v16.UpdateStatus),
    (smart_charging.ProfilePurpose, mapping.PROFILE_PURPOSE, v16.ChargingProfilePurposeType),
    (smart_charging.ProfileKind, mapping.PROFILE_KIND, v16.ChargingProfileKindType),
    (smart_charging.RecurrencyKind, mapping.RECURRENCY, v16.RecurrencyKind),
    (smart_charging.RateUnit, mapping.RATE_UNIT, v16.ChargingRateUnitType),
    (smart_charging.ProfileResult, mapping.PROFILE_RESULT, v16.ChargingProfileStatus),
    (smart_charging.ClearResult, mapping.CLEAR_RESULT, v16.ClearChargingProfileStatus),
    (reservations.ReserveResult, mapping.RESERVE_RESULT, v16.ReservationStatus),
    (reservations.CancelResult, mapping.CANCEL_RESULT, v16.CancelReservationStatus),
    (model.FirmwareStatus, mapping.FIRMWARE_STATUS, v16.FirmwareStatus),
    (model.UploadStatus, mapping.DIAGNOSTICS_STATUS, v16.DiagnosticsStatus),
    (model.UploadStatus, mapping.LOG_STATUS, v16.UploadLogStatus),
    (model.UpdateResult, mapping.UPDATE_RESULT, v16.UpdateFirmwareStatus),
]
TABLE_IDS = [core.__name__ for core, _, _ in TABLES]


@pytest.mark.parametrize(("core", "table", "ocpp_enum"), TABLES, ids=TABLE_IDS)
def test_every_core_member_is_mapped(
    core: type[Enum], table: dict[object, str], ocpp_enum: type[Enum] | None
) -> None:
    missing = [m.name for m in core if m not in table]
    assert not missing, f"{core.__name__} members missing from the 1.6 table: {missing}"
    assert set(table) == set(core), "the table has keys that are not members of the core enum"


@pytest.mark.parametrize(("core", "table", "ocpp_enum"), TABLES, ids=TABLE_IDS)
def test_every_mapped_value_is_a_valid_ocpp16_member(
    core: type[Enum], table: dict[object, str], ocpp_enum: type[Enum] | None
) -> None:
    assert ocpp_enum is not None
    valid = {m.value for m in ocpp_enum}
    invalid = {k.name: v for k, v in table.items() if v not in valid}  # type: ignore[attr-defined]
    assert not invalid, f"not {ocpp_enum.__name__} values: {invalid}"


@pytest.mark.parametrize(("core", "table", "ocpp_enum"), TABLES, ids=TABLE_IDS)
def test_mapping_is_injective(
    core: type[Enum], table: dict[object, str], ocpp_enum: type[Enum] | None
) -> None:
    """Two core members never share one OCPP value, so the reverse mapping is well defined (1.6 has no stop reason
    for an EV connect timeout, a 2.0.1-only way to end: it is Other, and no reverse table is built on it)."""
    if table is mapping.STOP_REASON:
        table = {k: v for k, v in table.items() if k is not model.StopReason.EV_CONNECT_TIMEOUT}
    assert len(set(table.values())) == len(table)


# OCPP 2.0.1: (name in csms/v201/mapping.py, core enum, the 2.0.1 enum its values must be members of).
TABLES_201: list[tuple[str, type[Enum], type[Enum]]] = [
    ("CONNECTOR_STATUS", model.ConnectorStatus, v201.ConnectorStatusEnumType),
    ("OPERATIONAL", model.OperationalStatus, v201.OperationalStatusEnumType),
    ("CHARGING_STATE", model.ConnectorState, v201.ChargingStateEnumType),
    ("STOP_REASON", model.StopReason, v201.ReasonEnumType),
    ("ENDED_TRIGGER", model.StopReason, v201.TriggerReasonEnumType),
    ("UPDATE_TRIGGER", model.TxUpdateTrigger, v201.TriggerReasonEnumType),
    ("AUTH_STATUS", model.AuthStatus, v201.AuthorizationStatusEnumType),
    ("CONTEXT", model.ReadingContext, v201.ReadingContextEnumType),
    ("MEASURAND", model.Measurand, v201.MeasurandEnumType),
    ("AVAILABILITY", model.AvailabilityResult, v201.ChangeAvailabilityStatusEnumType),
    ("UNLOCK", model.UnlockResult, v201.UnlockStatusEnumType),
    ("RESET", model.ResetKind, v201.ResetEnumType),
    ("RESET_RESULT", model.ResetResult, v201.ResetStatusEnumType),
    ("BOOT_REASON", model.BootReason, v201.BootReasonEnumType),
    ("PROFILE_PURPOSE", smart_charging.ProfilePurpose, v201.ChargingProfilePurposeEnumType),
    ("PROFILE_KIND", smart_charging.ProfileKind, v201.ChargingProfileKindEnumType),
    ("RECURRENCY", smart_charging.RecurrencyKind, v201.RecurrencyKindEnumType),
    ("RATE_UNIT", smart_charging.RateUnit, v201.ChargingRateUnitEnumType),
    ("PROFILE_RESULT", smart_charging.ProfileResult, v201.ChargingProfileStatusEnumType),
    ("CLEAR_RESULT", smart_charging.ClearResult, v201.ClearChargingProfileStatusEnumType),
    ("DATA_TYPE", device_model.DataType, v201.DataEnumType),
    ("MUTABILITY", device_model.Mutability, v201.MutabilityEnumType),
    ("FIRMWARE_STATUS", model.FirmwareStatus, v201.FirmwareStatusEnumType),
    ("UPLOAD_STATUS", model.UploadStatus, v201.UploadLogStatusEnumType),
    ("SECURITY_EVENT", SecurityEventType, v201.SecurityEventType),
    ("LOCAL_LIST", model.LocalListResult, v201.SendLocalListStatusEnumType),
    ("RESERVE_RESULT", reservations.ReserveResult, v201.ReserveNowStatusEnumType),
    ("CANCEL_RESULT", reservations.CancelResult, v201.CancelReservationStatusEnumType),
    ("UPDATE_RESULT", model.UpdateResult, v201.UpdateFirmwareStatusEnumType),
]


@pytest.mark.parametrize(("name", "core", "ocpp_enum"), TABLES_201, ids=[t[0] for t in TABLES_201])
def test_every_core_member_is_mapped_to_a_valid_ocpp201_member(
    name: str, core: type[Enum], ocpp_enum: type[Enum]
) -> None:
    table: dict[Enum, str] = getattr(mapping201, name)
    assert set(table) == set(core), f"{name}: {set(core) ^ set(table)}"
    valid = {m.value for m in ocpp_enum}
    invalid = {k.name: v for k, v in table.items() if v not in valid}
    assert not invalid, f"not {ocpp_enum.__name__} values: {invalid}"
    if name not in mapping201.NOT_INJECTIVE:
        assert len(set(table.values())) == len(table), f"{name} maps two core members onto one value"


def test_ocpp201_root_certificate_uses() -> None:
    """Every root the store keeps has its 2.0.1 name, valid both to install and to ask for."""
    roots = {u for u in CertificateUse if u is not CertificateUse.CHARGE_POINT}
    assert set(mapping201.ROOT_USE) == roots
    assert set(mapping201.ROOT_USE.values()) == {m.value for m in v201.InstallCertificateUseEnumType}
    assert set(mapping201.ROOT_USE.values()) < {m.value for m in v201.GetCertificateIdUseEnumType}
    assert set(mapping201.OCPP_VERSION_IN) < {m.value for m in v201.OCPPVersionEnumType}


def test_ocpp201_reverse_tables() -> None:
    assert {v: k for k, v in mapping201.OPERATIONAL.items()} == mapping201.OPERATIONAL_IN
    assert {v: k for k, v in mapping201.RESET.items()} == mapping201.RESET_IN
    # Every 2.0.1 authorization status reads as a core one; only Accepted reads as Accepted.
    assert set(mapping201.AUTH_STATUS_IN) == {m.value for m in v201.AuthorizationStatusEnumType}
    accepted = [k for k, v in mapping201.AUTH_STATUS_IN.items() if v is model.AuthStatus.ACCEPTED]
    assert accepted == ["Accepted"]


def test_auth_status_reverse_table_is_the_inverse() -> None:
    assert {v: k for k, v in mapping.AUTH_STATUS.items()} == mapping.AUTH_STATUS_IN


def test_status_table_covers_legal_transitions() -> None:
    statuses = set(mapping.STATUS.values())
    assert set(mapping.LEGAL_STATUS_TRANSITIONS) == statuses
    for source, targets in mapping.LEGAL_STATUS_TRANSITIONS.items():
        assert targets <= statuses, source
        assert source not in targets, f"{source} -> {source} is not a transition"
    assert statuses >= mapping.CONNECTOR_ZERO_STATES


@pytest.mark.parametrize(("key", "ref"), sorted(mapping.CONFIG_KEYS.items()))
def test_config_key_maps_to_a_known_setting(key: str, ref: device_model.VariableRef) -> None:
    assert ref in device_model.VARIABLES, f"{key} -> {ref} is not a variable of the device model"
    setting = device_model.VARIABLES[ref].setting
    assert setting in SPECS, f"{key} -> {setting!r} is not in chargepoint.core.settings.SPECS"


def test_operational_reverse_table_is_the_inverse() -> None:
    assert {v: k for k, v in mapping.OPERATIONAL.items()} == mapping.OPERATIONAL_IN


def test_every_session_phase_has_a_neutral_connector_status() -> None:
    """The core's own table: every ConnectorState is summarised as a ConnectorStatus, and every status is used."""
    assert set(model.CONNECTOR_STATUS) == set(model.ConnectorState)
    assert set(model.CONNECTOR_STATUS.values()) == set(model.ConnectorStatus)


# The station's functional blocks (core/blocks/): one shared context, blocks that use each other only through
# public members given in their constructors, and a Station that only wires them.
BLOCKS_DIR = CORE_DIR / "blocks"
STATION_MAX_LINES = 400


def _private_reaches(tree: ast.AST) -> list[str]:
    """Every ``x._name`` where ``x`` is not ``self`` or ``cls``: a reach into another object's internals."""
    found: list[str] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{ast.unparse(node.value)}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("chargepoint."):
            found.extend(f"{node.module}.{a.name}" for a in node.names if a.name.startswith("_"))
    return found


def test_private_reach_checker_catches_reaches() -> None:
    source = (
        "from chargepoint.core.blocks.faults import _helper\n"
        "self._mine = 1\n"
        "self.faults._unsaved = 2\n"
        "ctx._open_generation[1] += 1\n"
        "x.__class__\n"
    )
    assert _private_reaches(ast.parse(source)) == [
        "chargepoint.core.blocks.faults._helper",
        "self.faults._unsaved",
        "ctx._open_generation",
    ]


@pytest.mark.parametrize(
    "path", [*sorted(BLOCKS_DIR.glob("*.py")), CORE_DIR / "station.py"], ids=lambda p: p.name
)
def test_blocks_do_not_reach_into_each_others_internals(path: Path) -> None:
    """A block uses another block, or the context, only through its public members."""
    reaches = _private_reaches(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    assert not reaches, f"{path.name} reaches into internals: {reaches}"


def test_context_knows_no_block() -> None:
    """The shared context sits below every block (opening a relay must not wait behind any of them)."""
    tree = ast.parse((BLOCKS_DIR / "context.py").read_text(encoding="utf-8"))
    blocks = [
        n
        for n in _imported_names(tree, "chargepoint.core.blocks")
        if n.startswith("chargepoint.core.blocks.")
    ]
    assert blocks == []


def test_station_only_wires_its_blocks() -> None:
    """station.py stays small and keeps no logic of its own behind private methods: that goes in a block."""
    source = (CORE_DIR / "station.py").read_text(encoding="utf-8")
    assert len(source.splitlines()) <= STATION_MAX_LINES
    station = next(n for n in ast.parse(source).body if isinstance(n, ast.ClassDef) and n.name == "Station")
    private = [
        f.name
        for f in station.body
        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
        and f.name.startswith("_")
        and f.name != "__init__"
    ]
    assert private == []


CSMS_DIR = CORE_DIR.parent / "csms"


@pytest.mark.parametrize("path", sorted((CSMS_DIR / "v16").glob("*.py")), ids=lambda p: p.name)
def test_adapters_get_their_collaborators_explicitly(path: Path) -> None:
    """A version adapter is given SessionDeps; it never imports the link, nor reaches the station or store
    through it (the link is not a service locator)."""
    source = path.read_text(encoding="utf-8")
    imported = _imported_names(ast.parse(source), "chargepoint.csms.v16")
    assert "chargepoint.csms.link" not in imported
    assert "link.station" not in source and "link.store" not in source


def test_outbox_names_no_station() -> None:
    """The outbox reports answers as events (core/events.py CsmsAnswer); it does not call the station."""
    tree = ast.parse((CSMS_DIR / "outbox.py").read_text(encoding="utf-8"))
    assert not [
        n for n in _imported_names(tree, "chargepoint.csms") if n.startswith("chargepoint.core.station")
    ]
