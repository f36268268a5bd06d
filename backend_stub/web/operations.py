"""Operator commands to one charger as data: a name, a JSON schema of the request and a call on the command port.

The REST API serves each as ``POST /api/chargers/{cp_id}/operations/{name}`` (documented from the same table) and
the dashboard's charger page posts the flat ones as forms. Every call goes through the version-neutral
ChargerCommands port (or the domain's ChargerOperations); a command the charger's version lacks fails with
CommandFailed("NotSupported", ...) from the port.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, validators

from backend_stub.domain.commands import (
    ChargingProfile,
    CommandReply,
    LocalListEntry,
    VariableRef,
    reservation_expiry_problem,
)
from backend_stub.errors import FieldRefused, FormError
from backend_stub.store import UnknownTransaction

if TYPE_CHECKING:
    from backend_stub.domain.central import Central

MAX_EVSE: Final = 10_000
MAX_OCPP_INT: Final = 2**31 - 1  # OCPP integers are 32-bit
MAX_TOKEN_LENGTH: Final = (
    36  # OCPP 2.0.1 IdTokenType.idToken: identifierString[0..36] (1.6: 20, checked by the port)
)
UPLOAD_SCHEMES: Final = ("ftp", "ftps", "sftp", "http", "https")
# OCPP 2.0.1 ConnectorEnumType (ReserveNowRequest.connectorType); 1.6 has none.
CONNECTOR_TYPES: Final = (
    "cCCS1", "cCCS2", "cG105", "cTesla", "cType1", "cType2", "s309-1P-16A", "s309-1P-32A", "s309-3P-16A",
    "s309-3P-32A", "sBS1361", "sCEE-7-7", "sType2", "sType3", "Other1PhMax16A", "Other1PhOver16A", "Other3Ph",
    "Pan", "wInductive", "wResonant", "Undetermined", "Unknown",
)  # fmt: skip
LOCAL_LIST_STATUSES: Final = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")
TRIGGER_MESSAGES: Final = (  # the union of 1.6 MessageTrigger and 2.0.1 MessageTriggerEnumType; the port checks
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "LogStatusNotification",
    "MeterValues",
    "PublishFirmwareStatusNotification",
    "SignChargingStationCertificate",
    "SignCombinedCertificate",
    "SignV2GCertificate",
    "StatusNotification",
    "TransactionEvent",
)

# JSON Schema 2020-12 counts 5.0 as an integer, OCPP's Draft 4 schemas do not: a 5.0 taken here went to the charger
# as "id": 5.0 and came back as its TypeConstraintViolation (HTTP 502, blaming the charger). Integers are ints here.
_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: type(value) is int
    ),
)
# Sent to the charger as is (IdTokenType.idToken, transactionId): no control characters (a "not" of a search, so
# that a trailing newline is caught too; "$" would let it through).
_PRINTABLE = {"not": {"pattern": "[\\x00-\\x1f\\x7f]"}}
_INT = {"type": "integer", "minimum": 0, "maximum": MAX_OCPP_INT}
_EVSE = {"type": "integer", "minimum": 0, "maximum": MAX_EVSE}
_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": 50,
}  # 2.0.1 ComponentType/VariableType name: string[0..50]
_TIME = {"type": "string", "maxLength": 64, "description": "ISO 8601 date-time with a timezone"}
_URL = {
    "type": "string",
    "minLength": 1,
    "maxLength": 512,
    "description": "ftp(s)://, sftp:// or http(s):// URL",
}
_TOKEN = {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN_LENGTH, **_PRINTABLE}
_PURPOSE = {"type": "string", "enum": ["ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile"]}
_UNIT = {"type": "string", "enum": ["A", "W"]}

Run = Callable[["Central", str, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Operation:
    """One operator command: its URL name, a one-line summary, its request schema and what it does."""

    name: str
    summary: str
    properties: dict[str, Any]
    required: tuple[str, ...]
    run: Run

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON schema of the request body (no unknown fields)."""
        schema: dict[str, Any] = {
            "type": "object",
            "properties": self.properties,
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = list(self.required)
        return schema

    def check(self, body: Mapping[str, Any]) -> None:
        """FormError naming the first field that breaks the schema."""
        error = next(iter(_Validator(self.schema).iter_errors(body)), None)
        if error is not None:
            where = ".".join(str(p) for p in error.absolute_path) or "body"
            if error.validator == "not":  # the one "not" here is _PRINTABLE
                raise FormError(f"{where}: holds a control character")
            raise FormError(f"{where}: {error.message[:200]}")


def reply_json(reply: CommandReply) -> dict[str, Any]:
    """A charger's answer as the API returns it."""
    return {"status": reply.status, "fields": reply.fields}


def parse_time(value: str, name: str) -> datetime:
    """An ISO 8601 date-time with a timezone, as UTC; FormError otherwise."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise FormError(f"{name}: not an ISO 8601 date-time: {value[:64]!r}") from None
    if when.utcoffset() is None:
        raise FormError(f"{name}: needs a timezone (e.g. 2030-01-01T00:00:00Z), got {value[:64]!r}")
    try:
        return when.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is past the year 9999 in UTC
        raise FormError(f"{name}: out of range in UTC: {value[:64]!r}") from None


def upload_url(value: str, name: str) -> str:
    """A URL a charger can fetch from or upload to; FormError otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in UPLOAD_SCHEMES or not parts.netloc:
        raise FormError(f"{name}: a URL like ftp://host/path or https://host/path, got {value[:64]!r}")
    return value


async def _get_variables(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    refs = [
        VariableRef(v["component"], v["variable"], v.get("evse"), v.get("instance"))
        for v in body["variables"]
    ]
    reply, results = await central.commands.get_variables(cp_id, refs)
    return {
        "status": reply.status,
        "results": [{**asdict(r.ref), "status": r.status, "value": r.value} for r in results],
    }


async def _set_variable(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    component = body.get("component")
    key = f"{component}.{body['variable']}" if component else body["variable"]
    return reply_json(await central.commands.change_configuration(cp_id, key, body["value"]))


async def _base_report(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return reply_json(await central.operations.request_report(cp_id, body.get("kind", "FullInventory")))


async def _rotate_password(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return reply_json(await central.operations.rotate_password(cp_id))


async def _change_availability(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await central.commands.change_availability(cp_id, body.get("evse") or None, body["kind"])
    return reply_json(reply)


async def _trigger(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return reply_json(await central.commands.trigger(cp_id, body["message"], body.get("evse")))


async def _reset(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return reply_json(await central.commands.reset(cp_id, body["kind"]))


async def _unlock(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return reply_json(await central.commands.unlock(cp_id, body["evse"]))


async def _set_charging_profile(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    profile = ChargingProfile(
        profile_id=body["profile_id"],
        stack_level=body["stack_level"],
        purpose=body["purpose"],
        kind=body.get("kind", "Absolute"),
        unit=body["unit"],
        periods=tuple((p["start_s"], p["limit"]) for p in body["periods"]),
        transaction=body.get("transaction"),
        charger_transaction=body.get("charger_transaction"),
        recurrency=body.get("recurrency"),
        starts_at=parse_time(body["starts_at"], "starts_at") if "starts_at" in body else None,
    )
    if profile.transaction is not None and profile.charger_transaction is not None:
        raise FormError("charger_transaction: give transaction (ours) or charger_transaction, not both")
    if profile.purpose == "TxProfile" and profile.transaction is None and profile.charger_transaction is None:
        raise FormError("transaction: a TxProfile is for one running transaction")
    if profile.purpose != "TxProfile" and (profile.transaction, profile.charger_transaction) != (None, None):
        raise FormError("transaction: only a TxProfile names a transaction")
    if (profile.kind == "Recurring") != (profile.recurrency is not None):
        raise FormError("recurrency: Daily or Weekly with kind Recurring, and only then")
    if profile.kind == "Relative" and profile.starts_at is not None:
        raise FormError("starts_at: a Relative profile starts with the transaction, it has no start time")
    if profile.kind == "Relative" and profile.purpose == "ChargingStationMaxProfile":
        raise FormError("kind: a ChargingStationMaxProfile is not Relative (2.0.1 K01.FR.38)")
    if profile.periods[0][0] != 0:
        raise FormError("periods.0.start_s: the first period starts at 0")
    for n, ((before, _), (start_s, _)) in enumerate(itertools.pairwise(profile.periods), 1):
        if start_s <= before:  # each period's start is the end of the one before (ChargingSchedulePeriod)
            raise FormError(f"periods.{n}.start_s: {start_s} does not follow the period before ({before})")
    for n, (_, limit) in enumerate(profile.periods):
        # 1.6 schema: multipleOf 0.1; 2.0.1 ChargingSchedulePeriodType.limit: at most one digit fraction.
        if round(limit, 1) != limit:
            raise FormError(f"periods.{n}.limit: at most one decimal (e.g. 6.1), got {limit}")
    if profile.transaction is not None:
        _own_session(central, cp_id, profile.transaction)
    return reply_json(await central.commands.set_charging_profile(cp_id, body["evse"], profile))


def _own_session(central: Central, cp_id: str, transaction: int) -> None:
    """FieldRefused unless ``transaction`` is one of ``cp_id``'s sessions: another charger's would send that
    charger's own transactionId (2.0.1) to this one."""
    try:
        owner = central.store.transaction(transaction).cp_id
    except UnknownTransaction:
        owner = None
    if owner != cp_id:
        raise FieldRefused("transaction", f"no session {transaction} on charger {cp_id}")


async def _clear_charging_profile(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await central.commands.clear_charging_profile(
        cp_id,
        body.get("profile_id"),
        body.get("evse"),
        body.get("purpose"),
        stack_level=body.get("stack_level"),
    )
    return reply_json(reply)


async def _composite_schedule(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await central.commands.composite_schedule(
        cp_id, body["evse"], body["duration_s"], body.get("unit")
    )
    return reply_json(reply)


async def _update_firmware(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    location = upload_url(body["location"], "location")
    retrieve_at = parse_time(body["retrieve_at"], "retrieve_at")
    return reply_json(await central.commands.update_firmware(cp_id, location, retrieve_at))


async def _get_log(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    location = upload_url(body["location"], "location")
    return reply_json(await central.commands.get_diagnostics(cp_id, location))


async def _send_local_list(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    entries = [LocalListEntry(e["token"], e.get("status")) for e in body["entries"]]
    seen: set[str] = set()
    for n, entry in enumerate(entries):
        # Each token once (2.0.1 D01.FR.06); tokens compare without case (1.6 CiString20, 2.0.1 idToken).
        key = entry.token.casefold()
        if key in seen:
            raise FormError(f"entries.{n}.token: {entry.token!r} is already in the list")
        seen.add(key)
    full = body.get("full", True)
    if full and any(e.status is None for e in entries):
        raise FormError("entries: a full list gives every token a status (leaving it out removes the token)")
    return reply_json(await central.commands.send_local_list(cp_id, body["version"], entries, full))


def _operators_reservation(central: Central, cp_id: str, reservation_id: int) -> None:
    """FieldRefused if ``reservation_id`` is a roaming partner's on this charger: the charger would replace (1.6
    §5.13, 2.0.1 H01: the same id replaces) or cancel the partner's reservation, which OCPI still counts as held."""
    if central.store.ocpi_holds_reservation_id(cp_id, reservation_id):
        raise FieldRefused(
            "reservation_id",
            f"{reservation_id} is a roaming partner's reservation on {cp_id} (OCPI); pick another id",
        )


async def _reserve_now(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    _operators_reservation(central, cp_id, body["reservation_id"])
    expires_at = parse_time(body["expires_at"], "expires_at")
    problem = reservation_expiry_problem(expires_at, central.clock())
    if problem is not None:
        raise FieldRefused("expires_at", problem)
    reply = await central.commands.reserve_now(
        cp_id,
        body["reservation_id"],
        body.get("evse") or None,
        body["token"],
        expires_at,
        connector_type=body.get("connector_type"),
        group_token=body.get("group_token"),
    )
    return reply_json(reply)


async def _cancel_reservation(central: Central, cp_id: str, body: dict[str, Any]) -> dict[str, Any]:
    _operators_reservation(central, cp_id, body["reservation_id"])
    return reply_json(await central.commands.cancel_reservation(cp_id, body["reservation_id"]))


OPERATIONS: Final[dict[str, Operation]] = {
    op.name: op
    for op in (
        Operation(
            "get-variables",
            "Read device-model variables (2.0.1 GetVariables, in as many requests as the charger's "
            "ItemsPerMessage/BytesPerMessage GetVariables ask; 1.6 GetConfiguration of the keys named like them)",
            {
                "variables": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": {
                        "type": "object",
                        "properties": {
                            "component": _NAME,
                            "variable": _NAME,
                            "evse": _EVSE,
                            "instance": {**_NAME, "description": "2.0.1 variable instance (1.6: none)"},
                        },
                        "required": ["component", "variable"],
                        "additionalProperties": False,
                    },
                }
            },
            ("variables",),
            _get_variables,
        ),
        Operation(
            "set-variable",
            "Set one variable (2.0.1 SetVariables of component.variable; 1.6 ChangeConfiguration of the key "
            "`variable`, no component)",
            {"component": _NAME, "variable": _NAME, "value": {"type": "string", "maxLength": 500}},
            ("variable", "value"),
            _set_variable,
        ),
        Operation(
            "base-report",
            "Ask for the device model (2.0.1 GetBaseReport, NotifyReport follows; 1.6 GetConfiguration), kept and "
            "shown on the charger page",
            {
                "kind": {
                    "type": "string",
                    "enum": ["ConfigurationInventory", "FullInventory", "SummaryInventory"],
                }
            },
            (),
            _base_report,
        ),
        Operation(
            "rotate-password",
            "Give the charger a new HTTP Basic password (2.0.1 SecurityCtrlr.BasicAuthPassword, 1.6 "
            "AuthorizationKey); the stored one changes only when the charger answers Accepted",
            {},
            (),
            _rotate_password,
        ),
        Operation(
            "change-availability",
            "Make an EVSE (0 or none: the whole charger) Operative or Inoperative (ChangeAvailability)",
            {"evse": _EVSE, "kind": {"type": "string", "enum": ["Operative", "Inoperative"]}},
            ("kind",),
            _change_availability,
        ),
        Operation(
            "trigger-message",
            "Ask the charger to send a message now (TriggerMessage); a message its version lacks is NotSupported",
            {"message": {"type": "string", "enum": list(TRIGGER_MESSAGES)}, "evse": _EVSE},
            ("message",),
            _trigger,
        ),
        Operation(
            "reset",
            "Reboot the charger: Soft after its sessions end, Hard now (Reset)",
            {"kind": {"type": "string", "enum": ["Soft", "Hard"]}},
            ("kind",),
            _reset,
        ),
        Operation(
            "unlock",
            "Unlock the connector of an EVSE (UnlockConnector)",
            {"evse": {**_EVSE, "minimum": 1}},
            ("evse",),
            _unlock,
        ),
        Operation(
            "set-charging-profile",
            "Install a charging profile on an EVSE (0: the whole charger) (SetChargingProfile)",
            {
                "evse": _EVSE,
                "profile_id": _INT,
                "stack_level": _INT,
                "purpose": _PURPOSE,
                "kind": {"type": "string", "enum": ["Absolute", "Recurring", "Relative"]},
                "recurrency": {"type": "string", "enum": ["Daily", "Weekly"]},
                "unit": _UNIT,
                "transaction": {**_INT, "description": "our session id (TxProfile)"},
                "charger_transaction": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 36,
                    **_PRINTABLE,
                    "description": "OCPP 2.0.1: the charger's own transactionId (TxProfile), instead of transaction",
                },
                "starts_at": _TIME,
                "periods": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 24,
                    "items": {
                        "type": "object",
                        "properties": {
                            "start_s": _INT,
                            "limit": {"type": "number", "minimum": 0, "maximum": 1_000_000},
                        },
                        "required": ["start_s", "limit"],
                        "additionalProperties": False,
                    },
                },
            },
            ("evse", "profile_id", "stack_level", "purpose", "unit", "periods"),
            _set_charging_profile,
        ),
        Operation(
            "clear-charging-profile",
            "Clear charging profiles by id, EVSE, purpose or stack level; with none of them, all "
            "(ClearChargingProfile)",
            {"profile_id": _INT, "evse": _EVSE, "purpose": _PURPOSE, "stack_level": _INT},
            (),
            _clear_charging_profile,
        ),
        Operation(
            "composite-schedule",
            "The charger's composite schedule of an EVSE for the next duration_s seconds (GetCompositeSchedule)",
            {"evse": _EVSE, "duration_s": {**_INT, "minimum": 1, "maximum": 7 * 86400}, "unit": _UNIT},
            ("evse", "duration_s"),
            _composite_schedule,
        ),
        Operation(
            "update-firmware",
            "Download and install firmware from a URL, from a given time (UpdateFirmware)",
            {"location": _URL, "retrieve_at": _TIME},
            ("location", "retrieve_at"),
            _update_firmware,
        ),
        Operation(
            "get-log",
            "Upload the diagnostics log to a URL (2.0.1 GetLog DiagnosticsLog, 1.6 GetDiagnostics)",
            {"location": _URL},
            ("location",),
            _get_log,
        ),
        Operation(
            "send-local-list",
            "Replace (full) or update the local authorization list (SendLocalList); 1.6 takes tokens of up to "
            "20 characters. A list over the charger's per-message limits goes as a Full (or Differential) update "
            "and then Differential updates with versions rising to `version`",
            {
                "version": {**_INT, "minimum": 1},
                "full": {"type": "boolean"},
                "entries": {
                    "type": "array",
                    "maxItems": 1000,
                    "items": {
                        "type": "object",
                        "properties": {
                            "token": _TOKEN,
                            "status": {"type": "string", "enum": list(LOCAL_LIST_STATUSES)},
                        },
                        "required": ["token"],
                        "additionalProperties": False,
                    },
                },
            },
            ("version", "entries"),
            _send_local_list,
        ),
        Operation(
            "reserve-now",
            "Reserve an EVSE (0 or none: any) for a token until expires_at, in the next 24 hours (ReserveNow; a "
            "past or later expiry is 422); OCPP 2.0.1 may also ask for a connector type and let a group token's "
            "members use it",
            {
                "reservation_id": _INT,
                "evse": _EVSE,
                "token": _TOKEN,
                "expires_at": _TIME,
                "connector_type": {"type": "string", "enum": list(CONNECTOR_TYPES)},
                "group_token": _TOKEN,
            },
            ("reservation_id", "token", "expires_at"),
            _reserve_now,
        ),
        Operation(
            "cancel-reservation",
            "Cancel a reservation (CancelReservation)",
            {"reservation_id": _INT},
            ("reservation_id",),
            _cancel_reservation,
        ),
    )
}


def body_from_form(operation: Operation, form: Mapping[str, str]) -> dict[str, Any]:
    """A dashboard form as the operation's request: empty fields left out, numbers and booleans converted by the
    schema's types (only flat operations have forms)."""
    body: dict[str, Any] = {}
    for name, schema in operation.properties.items():
        text = form.get(name, "")
        if not isinstance(text, str) or text == "":
            continue
        kind = cast(dict[str, Any], schema).get("type")
        if kind == "integer":
            if not text.isascii() or not text.strip().lstrip("-").isdigit() or len(text) > 12:
                raise FormError(f"{name}: expected a whole number, got {text[:40]!r}")
            body[name] = int(text)
        elif kind == "boolean":
            body[name] = text in ("on", "true", "1")
        else:
            body[name] = text
    return body
