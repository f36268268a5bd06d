"""OCPP 1.6J: the central system's answers to chargers (frames to domain calls) and its commands to them."""

from __future__ import annotations

import logging
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from backend_stub.domain.central import Central
from backend_stub.domain.commands import (
    AvailabilityKind,
    CertificateHash,
    CertificateKind,
    ChargingProfile,
    CommandReply,
    LocalListEntry,
    ProfilePurpose,
    ReportKind,
    ResetKind,
    VariableRef,
    VariableResult,
)
from backend_stub.domain.pricing import ENERGY
from backend_stub.errors import CommandFailed
from backend_stub.ocpp.admission import admitted
from backend_stub.ocpp.commands import OcppCommands, dicts_in, hash_from, iso, text_in
from backend_stub.ocpp.limits import (
    GET_CONFIGURATION_KEYS,
    LOCAL_LIST_ENTRIES,
    LOCAL_LIST_ITEMS,
    parse_limit,
    split,
)
from backend_stub.ocpp.server import (
    OCPP16,
    CallErrorReply,
    CentralSystem,
    Handler,
    HandlerResult,
    utc_now_iso,
)
from backend_stub.store import MAX_METER_WH, MAX_SAMPLE_VALUE, DeviceVariable, MeterSample

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = OCPP16.schema_version

MAX_CONNECTOR_ID = 10_000  # what the store accepts
SQLITE_INT_MIN, SQLITE_INT_MAX = -(2**63), 2**63 - 1  # SQLite integers are signed 64-bit
# Timestamps a charger may send: nothing before the Unix epoch (a clock that was never set), nothing more than a
# day ahead of ours (a session stopped in the year 9999 would be priced over millennia, and datetime arithmetic
# on it overflows).
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(days=1)
# OCPP 1.6 SampledValue.value of format Raw is a decimal number (§7.45); float() would also take "nan", "inf",
# "1_000" and non-ASCII digits.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)


def default_unit(measurand: str) -> str | None:
    """The unit of a sampled value that names none: OCPP 1.6 §7.45 SampledValue (unit defaults to Wh only for
    energy) and the §7.31 UnitOfMeasure enum; None where 1.6 has no unit (Frequency, RPM, Power.Factor)."""
    if measurand.startswith("Energy.Reactive."):
        return "varh"
    if measurand.startswith("Energy."):
        return "Wh"
    if measurand.startswith("Power.Reactive."):
        return "var"
    if measurand == "Power.Factor":
        return None
    if measurand.startswith("Power."):
        return "W"  # Power.Active.Import/Export, Power.Offered
    if measurand.startswith("Current."):
        return "A"
    return {"Voltage": "V", "Temperature": "Celsius", "SoC": "Percent"}.get(measurand)


def parse_time(text: str) -> datetime:
    """An OCPP timestamp as an aware UTC datetime; ValueError if it is none, OverflowError if it is one that lies
    outside datetime's range in UTC (e.g. 9999-12-31T23:59:59-01:00)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def check_int(payload: dict[str, Any], name: str, low: int, high: int) -> int:
    """The integer field ``name``; CallError TypeConstraintViolation or PropertyConstraintViolation if it is not
    an integer in [low, high] (OCPP-J 1.6 §4.2.3)."""
    value = payload[name]
    if type(value) is not int:
        raise CallErrorReply("TypeConstraintViolation", f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise CallErrorReply(
            "PropertyConstraintViolation", f"{name} must lie in [{low}, {high}], got {value}"
        )
    return value


def check_time(text: object, name: str, now: datetime, *, ahead: timedelta = MAX_CLOCK_AHEAD) -> datetime:
    """A plausible OCPP dateTime; CallError TypeConstraintViolation if it is none, PropertyConstraintViolation if
    it lies before the Unix epoch or more than ``ahead`` (a reported time: MAX_CLOCK_AHEAD) after ``now``
    (OCPP-J 1.6 §4.2.3)."""
    if not isinstance(text, str):
        raise CallErrorReply("TypeConstraintViolation", f"{name} must be a dateTime string, got {text!r}")
    try:
        when = parse_time(text)
    except ValueError as exc:
        raise CallErrorReply("TypeConstraintViolation", f"{name} is not a dateTime: {exc}"[:200]) from None
    except OverflowError:
        when = datetime.max.replace(tzinfo=UTC)  # a dateTime, but past the year 9999 in UTC: out of range
    if not EARLIEST_TIME <= when <= now + ahead:
        raise CallErrorReply(
            "PropertyConstraintViolation",
            f"{name} {text[:40]!r} is not a plausible time (now is {now:%Y-%m-%d})",
        )
    return when


def samples_from_meter_values(
    meter_values: list[dict[str, Any]], now: datetime, *, skip_bad_times: bool = False
) -> tuple[list[MeterSample], list[str]]:
    """OCPP 1.6 MeterValue objects as store samples, and why each unusable sample was left out.

    A sample whose value is no finite decimal number within MAX_SAMPLE_VALUE is left out alone: the rest of the
    frame is kept. A bad timestamp raises a CallError, unless ``skip_bad_times`` (then its samples are left out).
    """
    out: list[MeterSample] = []
    problems: list[str] = []
    for mv in meter_values:
        try:
            at = check_time(mv["timestamp"], "meterValue.timestamp", now)
        except CallErrorReply as exc:
            if not skip_bad_times:
                raise
            problems.append(f"{len(mv.get('sampledValue', []))} sample(s) left out: {exc.description}")
            continue
        for sv in mv.get("sampledValue", []):
            if sv.get("format") == "SignedData":
                continue  # signed/encoded values are kept out of billing
            text = sv["value"]
            value = float(text) if isinstance(text, str) and _DECIMAL.fullmatch(text) else math.nan
            if not (math.isfinite(value) and abs(value) <= MAX_SAMPLE_VALUE):
                problems.append(
                    f"{sv.get('measurand', ENERGY)} value {str(text)[:40]!r} is not a usable number"
                )
                continue
            measurand = sv.get("measurand", ENERGY)
            out.append(
                MeterSample(
                    at,
                    value,
                    measurand,
                    sv.get("unit", default_unit(measurand)),
                    sv.get("phase"),
                    sv.get("context"),
                    sv.get("location"),
                )
            )
    return out, problems


# OCPP 1.6 actions the central system may send (Core, FirmwareManagement, LocalAuthListManagement,
# Reservation, SmartCharging, RemoteTrigger profiles, plus the 1.6 security whitepaper's extensions).
CSMS_ACTIONS: Final = frozenset(
    {
        "CancelReservation",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetLocalListVersion",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
        # Security extensions (OCPP 1.6 Security Whitepaper edition 2)
        "CertificateSigned",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetInstalledCertificateIds",
        "GetLog",
        "InstallCertificate",
        "SignedUpdateFirmware",
    }
)


# OCPP 1.6 security whitepaper CertificateUseEnumType, by the neutral kind.
_CERTIFICATE_TYPES: dict[CertificateKind, str] = {
    "csms_root": "CentralSystemRootCertificate",
    "manufacturer_root": "ManufacturerRootCertificate",
}


class V16Handlers:
    """The OCPP 1.6 answers of the bundled central system: each frame checked, then handed to the domain."""

    def __init__(self, central: Central) -> None:
        """Answer for ``central``."""
        self.central = central

    def install(self, server: CentralSystem) -> None:
        """Make these the 1.6 handlers of ``server`` and watch its answered CALLs (AuthorizationKey)."""
        handlers: dict[str, Handler] = {
            "BootNotification": self.boot,
            "Heartbeat": self.heartbeat,
            "StatusNotification": self.status,
            "Authorize": self.authorize,
            "StartTransaction": self.start,
            "MeterValues": self.meter_values,
            "StopTransaction": self.stop,
            "DiagnosticsStatusNotification": self.diagnostics_status,
            "FirmwareStatusNotification": self.firmware_status,
            "DataTransfer": self.data_transfer,
            # Security whitepaper extensions (their schemas ship with the ocpp package): acknowledged.
            "SecurityEventNotification": self.acknowledge,
            "LogStatusNotification": self.acknowledge,
            "SignedFirmwareStatusNotification": self.acknowledge,
            "SignCertificate": self.sign_certificate,
        }
        server.handlers.update(handlers)
        # Every answer the server gives goes through guard: only BootNotification reaches a charger that is not
        # Accepted, and a value the store refuses is a CallError, never InternalError.
        for action, handler in list(server.handlers.items()):
            server.handlers[action] = self.guard(action, handler)
        server.call_observers.append(self.on_call_answered)

    def guard(self, action: str, handler: Handler) -> Handler:
        """``handler`` behind the admission rules both versions share (``admission.admitted``)."""
        return admitted(self.central, action, handler)

    def on_call_answered(
        self, cp_id: str, action: str, payload: dict[str, Any], answer: dict[str, Any]
    ) -> None:
        """After a charger accepted a new AuthorizationKey, its password is that key.

        OCPP 1.6 security whitepaper (profiles 1 and 2): the AuthorizationKey configuration key is the HTTP Basic
        password, used as the text the key was set to. RebootRequired is not taken: the charger keeps the old key
        until it reboots.
        """
        if (
            action == "ChangeConfiguration"
            and str(payload.get("key", "")).lower() == "authorizationkey"  # OCPP 1.6 keys are CiString50
            and answer.get("status") == "Accepted"
            and isinstance(payload.get("value"), str)
            and payload["value"]
        ):
            self.central.chargers.set_password(cp_id, payload["value"])
            log.info("charger %s accepted a new AuthorizationKey; it is now its password", cp_id)

    def boot(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """BootNotification (OCPP 1.6 §4.2): the registry's status for the charger."""
        charger = self.central.chargers.boot(
            cp_id,
            vendor=payload["chargePointVendor"],
            model=payload["chargePointModel"],
            firmware=payload.get("firmwareVersion"),
            serial_number=payload.get("chargePointSerialNumber"),
        )
        status = {"accepted": "Accepted", "pending": "Pending", "rejected": "Rejected"}[str(charger.status)]
        return {"status": status, "currentTime": utc_now_iso(), "interval": self.central.heartbeat_interval_s}

    def heartbeat(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """Heartbeat (OCPP 1.6 §4.6)."""
        self.central.chargers.heartbeat(cp_id)
        return {"currentTime": utc_now_iso()}

    def status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """StatusNotification (OCPP 1.6 §4.9)."""
        now = self.central.clock()
        connector_id = check_int(payload, "connectorId", 0, MAX_CONNECTOR_ID)
        at = check_time(payload["timestamp"], "timestamp", now) if "timestamp" in payload else now
        self.central.chargers.connector_status(
            cp_id,
            connector_id,
            payload["status"],
            at,
            error_code=payload["errorCode"],
            info=payload.get("info"),
        )
        return {}

    def diagnostics_status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """DiagnosticsStatusNotification (OCPP 1.6 §4.4)."""
        self.central.chargers.diagnostics_status(cp_id, payload["status"])
        return {}

    def firmware_status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """FirmwareStatusNotification (OCPP 1.6 §4.5)."""
        self.central.chargers.firmware_status(cp_id, payload["status"])
        return {}

    def acknowledge(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """A notification whose content is not kept (an empty .conf)."""
        return {}

    def data_transfer(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """DataTransfer (OCPP 1.6 §4.3): no vendor extension is known here."""
        return {"status": "UnknownVendorId"}

    def sign_certificate(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """SignCertificate (OCPP 1.6 security whitepaper §3.3.2, use case A02): Accepted when the CSR's CN is the
        charger id and the central system's CA signs it; CertificateSigned follows."""
        verdict = self.central.certificates.sign_request(cp_id, payload["csr"])
        return {"status": "Accepted" if verdict.accepted else "Rejected"}  # 1.6 has no room for the reason

    async def authorize(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """Authorize (OCPP 1.6 §4.1); a roaming partner's token may be asked of the partner in real time."""
        status = await self.central.authorization.authorize_online(cp_id, payload["idTag"])
        return {"idTagInfo": {"status": str(status)}}

    def start(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """StartTransaction (OCPP 1.6 §4.8)."""
        connector_id = check_int(payload, "connectorId", 1, MAX_CONNECTOR_ID)
        meter_start = check_int(payload, "meterStart", 0, MAX_METER_WH)
        at = check_time(payload["timestamp"], "timestamp", self.central.clock())
        tx_id, status = self.central.sessions.start(cp_id, connector_id, payload["idTag"], meter_start, at)
        return {"transactionId": tx_id, "idTagInfo": {"status": str(status)}}

    def meter_values(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """MeterValues (OCPP 1.6 §4.7)."""
        check_int(payload, "connectorId", 0, MAX_CONNECTOR_ID)
        tx_id = (
            check_int(payload, "transactionId", SQLITE_INT_MIN, SQLITE_INT_MAX)
            if "transactionId" in payload
            else None
        )
        samples, problems = samples_from_meter_values(payload["meterValue"], self.central.clock())
        self.central.sessions.meter_values(cp_id, tx_id, samples, problems)
        return {}

    def stop(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        """StopTransaction (OCPP 1.6 §4.10)."""
        now = self.central.clock()
        tx_id = check_int(payload, "transactionId", SQLITE_INT_MIN, SQLITE_INT_MAX)
        meter_stop = check_int(payload, "meterStop", 0, MAX_METER_WH)
        at = check_time(payload["timestamp"], "timestamp", now)
        # OCPP 1.6 §4.10: sanity checks of the transaction data SHOULD NOT keep the central system from
        # answering; unusable samples (bad times included) are left out and recorded, the stop is kept. A stop of
        # an unknown or foreign transaction gets a .conf too (a CallError only makes the charger retry), without
        # idTagInfo.
        samples, problems = samples_from_meter_values(
            payload.get("transactionData", []), now, skip_bad_times=True
        )
        id_tag = payload.get("idTag") or None
        status = self.central.sessions.stop(
            cp_id, tx_id, meter_stop, at, payload.get("reason", "Local"), samples, problems, id_tag
        )
        return {"idTagInfo": {"status": str(status)}} if status is not None else {}


V16_COMPONENT: Final = "OCPP16"  # the device-model component that holds a 1.6 charger's configuration keys
MAX_ID_TAG_16: Final = 20  # OCPP 1.6 §7.28 IdToken: CiString20Type
# The neutral (2.0.1) charging profile purposes in OCPP 1.6 (§7.14 ChargingProfilePurposeType).
PURPOSES_16: Final[dict[str, str]] = {
    "ChargingStationMaxProfile": "ChargePointMaxProfile",
    "TxDefaultProfile": "TxDefaultProfile",
    "TxProfile": "TxProfile",
}


# The messages TriggerMessage can ask for (OCPP 1.6 §7.43 MessageTrigger).
TRIGGERS_16: Final = frozenset(
    [
        "BootNotification",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StatusNotification",
    ]
)


# The message limits of a 1.6 charger (``backend_stub.ocpp.limits``): its configuration keys (§9.4).
LIMIT_KEYS: Final[dict[str, str]] = {
    LOCAL_LIST_ITEMS: "SendLocalListMaxLength",
    LOCAL_LIST_ENTRIES: "LocalAuthListMaxLength",
    GET_CONFIGURATION_KEYS: "GetConfigurationMaxKeys",
}
_LIMIT_NAMES: Final = {key: name for name, key in LIMIT_KEYS.items()}


def check_id_tag_16(token: str) -> None:
    """CommandFailed (NotInVersion) for a token longer than a 1.6 idTag (a 2.0.1 idToken, e.g. an eMAID)."""
    if len(token) > MAX_ID_TAG_16:
        raise CommandFailed(
            CommandFailed.NOT_IN_VERSION,
            f"OCPP 1.6 idTags are at most {MAX_ID_TAG_16} characters: {token[:40]!r}",
        )


class V16Commands(OcppCommands):
    """The ChargerCommands port over OCPP 1.6 CALLs."""

    VERSION = OCPP16
    ACTIONS = CSMS_ACTIONS
    CERTIFICATE_TYPES = _CERTIFICATE_TYPES

    async def remote_start(
        self, charger: str, evse: int | None, token: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """RemoteStartTransaction (OCPP 1.6 §5.11)."""
        check_id_tag_16(token)
        payload: dict[str, Any] = {"idTag": token}
        if evse is not None:
            payload["connectorId"] = evse
        return await self._command(charger, "RemoteStartTransaction", payload, timeout_s)

    async def remote_stop(
        self, charger: str, transaction: int, *, timeout_s: float | None = None
    ) -> CommandReply:
        """RemoteStopTransaction (OCPP 1.6 §5.12)."""
        return await self._command(
            charger, "RemoteStopTransaction", {"transactionId": transaction}, timeout_s
        )

    async def reset(self, charger: str, kind: ResetKind, *, timeout_s: float | None = None) -> CommandReply:
        """Reset (OCPP 1.6 §5.13)."""
        return await self._command(charger, "Reset", {"type": kind}, timeout_s)

    async def unlock(self, charger: str, evse: int, *, timeout_s: float | None = None) -> CommandReply:
        """UnlockConnector (OCPP 1.6 §5.18)."""
        return await self._command(charger, "UnlockConnector", {"connectorId": evse}, timeout_s)

    async def get_diagnostics(
        self, charger: str, location: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """GetDiagnostics (OCPP 1.6 §5.9)."""
        return await self._command(charger, "GetDiagnostics", {"location": location}, timeout_s)

    async def change_configuration(
        self, charger: str, key: str, value: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """ChangeConfiguration (OCPP 1.6 §5.3)."""
        return await self._command(charger, "ChangeConfiguration", {"key": key, "value": value}, timeout_s)

    async def trigger(
        self, charger: str, message: str, evse: int | None = None, *, timeout_s: float | None = None
    ) -> CommandReply:
        """TriggerMessage (OCPP 1.6 §5.17)."""
        if message not in TRIGGERS_16:
            raise CommandFailed(
                CommandFailed.NOT_IN_VERSION, f"{message[:64]!r} is not a message OCPP 1.6 can trigger"
            )
        payload: dict[str, Any] = {"requestedMessage": message}
        if evse is not None:
            payload["connectorId"] = evse
        return await self._command(charger, "TriggerMessage", payload, timeout_s)

    async def certificate_signed(
        self, charger: str, chain_pem: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """CertificateSigned (OCPP 1.6 security whitepaper §3.3.2)."""
        return await self._command(charger, "CertificateSigned", {"certificateChain": chain_pem}, timeout_s)

    async def installed_certificates(
        self, charger: str, kind: CertificateKind, *, timeout_s: float | None = None
    ) -> tuple[CommandReply, list[CertificateHash]]:
        """GetInstalledCertificateIds (OCPP 1.6 security whitepaper §3.3.7)."""
        payload = {"certificateType": _CERTIFICATE_TYPES[kind]}
        reply = await self._command(charger, "GetInstalledCertificateIds", payload, timeout_s)
        found = reply.fields.get("certificateHashData")
        hashes = [h for h in map(hash_from, found if isinstance(found, list) else []) if h is not None]
        return reply, hashes

    async def get_variables(
        self, charger: str, refs: list[VariableRef], *, timeout_s: float | None = None
    ) -> tuple[CommandReply, list[VariableResult]]:
        """GetConfiguration (OCPP 1.6 §5.8) of the keys named like the variables (1.6 has no components), in as
        many requests as the charger's GetConfigurationMaxKeys asks (read once first if not known yet)."""
        if any(r.instance is not None for r in refs):
            raise CommandFailed(CommandFailed.NOT_IN_VERSION, "OCPP 1.6 configuration keys have no instances")
        keys = [r.variable for r in refs]
        parts = [keys]
        if len(keys) > 1:
            most = (await self.limits(charger, (GET_CONFIGURATION_KEYS,), timeout_s))[GET_CONFIGURATION_KEYS]
            parts = split("GetConfiguration", {}, "key", keys, most, None)
        configuration: list[dict[str, Any]] = []
        unknown_keys: list[str] = []
        reply = CommandReply("", {})
        for part in parts:
            reply = await self._command(charger, "GetConfiguration", {"key": part}, timeout_s)
            configuration += dicts_in(reply.fields.get("configurationKey"), len(part))
            unknown_keys += [
                u for u in (reply.fields.get("unknownKey") or [])[: len(part)] if isinstance(u, str)
            ]
        if len(parts) > 1:
            reply = CommandReply(
                reply.status, {"configurationKey": configuration, "unknownKey": unknown_keys}
            )
        known = {k.get("key"): k for k in configuration}
        unknown = set(unknown_keys)
        results = []
        for ref in refs:
            if ref.variable in known:
                results.append(VariableResult(ref, "Accepted", text_in(known[ref.variable].get("value"))))
                if ref.variable in _LIMIT_NAMES:
                    self.learn_limit(charger, _LIMIT_NAMES[ref.variable], results[-1].value)
            else:
                results.append(
                    VariableResult(ref, "UnknownVariable" if ref.variable in unknown else "Missing")
                )
        return reply, results

    async def _read_limits(
        self, charger: str, names: list[str], timeout_s: float | None
    ) -> dict[str, int | None]:
        """GetConfiguration of the limits' keys; a charger that answers a CALLERROR says nothing."""
        keys = [LIMIT_KEYS[name] for name in names if name in LIMIT_KEYS]
        try:
            reply = await self._command(charger, "GetConfiguration", {"key": keys}, timeout_s)
        except CommandFailed as exc:
            if not exc.is_call_error:
                raise
            return {}
        values = {k.get("key"): k.get("value") for k in dicts_in(reply.fields.get("configurationKey"))}
        return {name: parse_limit(values.get(key)) for name, key in LIMIT_KEYS.items() if name in names}

    async def base_report(
        self, charger: str, kind: ReportKind, *, timeout_s: float | None = None
    ) -> tuple[CommandReply, list[DeviceVariable] | None]:
        """GetConfiguration without keys (OCPP 1.6 §5.8): every key, kept as variables of component "OCPP16"."""
        reply = await self._command(charger, "GetConfiguration", {}, timeout_s)
        variables = []
        for entry in dicts_in(reply.fields.get("configurationKey")):
            key = text_in(entry.get("key"), 50)  # CiString50Type
            if key:
                variables.append(DeviceVariable(V16_COMPONENT, key, text_in(entry.get("value"), 500)))
        return CommandReply("Accepted", {"configurationKeys": len(variables)}), variables

    async def set_basic_auth_password(
        self, charger: str, password: str, *, timeout_s: float | None = None
    ) -> CommandReply:
        """ChangeConfiguration of AuthorizationKey (OCPP 1.6 security whitepaper §2.2, profile 1 and 2)."""
        return await self.change_configuration(charger, "AuthorizationKey", password, timeout_s=timeout_s)

    async def change_availability(
        self, charger: str, evse: int | None, kind: AvailabilityKind, *, timeout_s: float | None = None
    ) -> CommandReply:
        """ChangeAvailability (OCPP 1.6 §5.2): connector 0 is the whole charge point."""
        payload = {"connectorId": evse or 0, "type": kind}
        return await self._command(charger, "ChangeAvailability", payload, timeout_s)

    async def set_charging_profile(
        self, charger: str, evse: int, profile: ChargingProfile, *, timeout_s: float | None = None
    ) -> CommandReply:
        """SetChargingProfile (OCPP 1.6 §5.16, §7.13 ChargingProfile)."""
        if profile.charger_transaction is not None:
            raise CommandFailed(
                CommandFailed.NOT_IN_VERSION,
                "OCPP 1.6 transaction ids are the central system's: give our transaction id (transaction)",
            )
        schedule: dict[str, Any] = {
            "chargingRateUnit": profile.unit,
            "chargingSchedulePeriod": [{"startPeriod": s, "limit": limit} for s, limit in profile.periods],
        }
        if profile.starts_at is not None:
            schedule["startSchedule"] = iso(profile.starts_at)
        body: dict[str, Any] = {
            "chargingProfileId": profile.profile_id,
            "stackLevel": profile.stack_level,
            "chargingProfilePurpose": PURPOSES_16[profile.purpose],
            "chargingProfileKind": profile.kind,
            "chargingSchedule": schedule,
        }
        if profile.transaction is not None:
            body["transactionId"] = profile.transaction
        if profile.recurrency is not None:
            body["recurrencyKind"] = profile.recurrency
        payload = {"connectorId": evse, "csChargingProfiles": body}
        return await self._command(charger, "SetChargingProfile", payload, timeout_s)

    async def clear_charging_profile(
        self,
        charger: str,
        profile_id: int | None,
        evse: int | None,
        purpose: ProfilePurpose | None,
        *,
        stack_level: int | None = None,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """ClearChargingProfile (OCPP 1.6 §5.5): every criterion optional."""
        payload: dict[str, Any] = {}
        if stack_level is not None:
            payload["stackLevel"] = stack_level
        if profile_id is not None:
            payload["id"] = profile_id
        if evse is not None:
            payload["connectorId"] = evse
        if purpose is not None:
            payload["chargingProfilePurpose"] = PURPOSES_16[purpose]
        return await self._command(charger, "ClearChargingProfile", payload, timeout_s)

    async def composite_schedule(
        self,
        charger: str,
        evse: int,
        duration_s: int,
        unit: Literal["A", "W"] | None,
        *,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """GetCompositeSchedule (OCPP 1.6 §5.7)."""
        payload: dict[str, Any] = {"connectorId": evse, "duration": duration_s}
        if unit is not None:
            payload["chargingRateUnit"] = unit
        return await self._command(charger, "GetCompositeSchedule", payload, timeout_s)

    async def update_firmware(
        self, charger: str, location: str, retrieve_at: datetime, *, timeout_s: float | None = None
    ) -> CommandReply:
        """UpdateFirmware (OCPP 1.6 §5.19): the answer has no status (an empty reply means it was taken)."""
        payload = {"location": location, "retrieveDate": iso(retrieve_at)}
        return await self._command(charger, "UpdateFirmware", payload, timeout_s)

    async def send_local_list(
        self,
        charger: str,
        version: int,
        entries: list[LocalListEntry],
        full: bool,
        *,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """SendLocalList (OCPP 1.6 §5.15): idTags are at most 20 characters (§7.28 IdToken). A list longer than the
        charger's SendLocalListMaxLength goes as a Full update and then Differential updates, the versions rising
        to ``version``; a Full list longer than its LocalAuthListMaxLength is not sent (TOO_LARGE). Both keys are
        read once first if not known yet."""
        items: list[dict[str, Any]] = []
        for entry in entries:
            check_id_tag_16(entry.token)
            item: dict[str, Any] = {"idTag": entry.token}
            if entry.status is not None:
                item["idTagInfo"] = {"status": entry.status}
            items.append(item)

        def payload_of(number: int, is_full: bool, part: list[dict[str, Any]]) -> dict[str, Any]:
            return {
                "listVersion": number,
                "updateType": "Full" if is_full else "Differential",
                "localAuthorizationList": part,
            }

        parts = [items]
        if len(items) > 1:
            limits = await self.limits(charger, (LOCAL_LIST_ITEMS, LOCAL_LIST_ENTRIES), timeout_s)
            most = limits[LOCAL_LIST_ENTRIES]
            if full and most is not None and len(items) > most:
                raise CommandFailed(
                    CommandFailed.TOO_LARGE,
                    f"the list has {len(items)} entries; the charger holds at most {most} (LocalAuthListMaxLength)",
                )
            parts = split(
                "SendLocalList", {}, "localAuthorizationList", items, limits[LOCAL_LIST_ITEMS], None
            )
        return await self._send_list_parts(
            charger, "SendLocalList", version, full, parts, payload_of, timeout_s
        )

    async def reserve_now(
        self,
        charger: str,
        reservation_id: int,
        evse: int | None,
        token: str,
        expires_at: datetime,
        *,
        connector_type: str | None = None,
        group_token: str | None = None,
        timeout_s: float | None = None,
    ) -> CommandReply:
        """ReserveNow (OCPP 1.6 §5.14): connector 0 reserves any connector; a parentIdTag is the charger's to
        learn, and 1.6 has no connector type."""
        if connector_type is not None or group_token is not None:
            raise CommandFailed(
                CommandFailed.NOT_IN_VERSION,
                "OCPP 1.6 ReserveNow has no connector type or group token (OCPP 2.0.1 H01)",
            )
        check_id_tag_16(token)
        payload = {
            "connectorId": evse or 0,
            "expiryDate": iso(expires_at),
            "idTag": token,
            "reservationId": reservation_id,
        }
        return await self._command(charger, "ReserveNow", payload, timeout_s)
