"""The bundled central system: the OCPP-J server wired to the SQLite store and the OCPI tariff engine.

Chargers are admitted from the registry at the handshake (404 unknown, 401 wrong password), BootNotification
answers from the registry, cards authorize from the store (prepaid balance included), sessions are priced with
the charger's tariff and charged to the ledger exactly once, and a prepaid session whose running cost reaches the
card's balance is stopped remotely.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from backend_stub import tariffs, webapp
from backend_stub.ocpp.server import (
    Admission,
    CallErrorReply,
    CentralSystem,
    Handler,
    HandlerResult,
    SecurityProfile,
    utc_now_iso,
)
from backend_stub.store import (
    MAX_METER_WH,
    MAX_SAMPLE_VALUE,
    AuthStatus,
    CardMode,
    ChargerStatus,
    CsmsStore,
    ForeignTransaction,
    InvalidInput,
    MeterSample,
    SecurityEventKind,
    StoreError,
    Transaction,
    UnknownTransaction,
)

log = logging.getLogger(__name__)

ENERGY = "Energy.Active.Import.Register"
MAX_CONNECTOR_ID = 10_000  # what the store accepts
SQLITE_INT_MIN, SQLITE_INT_MAX = -(2**63), 2**63 - 1  # SQLite integers are signed 64-bit
# Timestamps a charger may send: nothing before the Unix epoch (a clock that was never set), nothing more than a
# day ahead of ours (a session stopped in the year 9999 would be priced over millennia, and datetime arithmetic
# on it overflows).
EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(days=1)
LOG_INTERVAL_S = 60.0  # at most one warning per charger and kind of event in this time
SHORTEST_SESSION = timedelta(seconds=1)  # what a session stopped at or before its start is priced as
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


def check_time(text: object, name: str, now: datetime) -> datetime:
    """A plausible OCPP dateTime; CallError TypeConstraintViolation if it is none, PropertyConstraintViolation if
    it lies before the Unix epoch or more than MAX_CLOCK_AHEAD after ``now`` (OCPP-J 1.6 §4.2.3)."""
    if not isinstance(text, str):
        raise CallErrorReply("TypeConstraintViolation", f"{name} must be a dateTime string, got {text!r}")
    try:
        when = parse_time(text)
    except ValueError as exc:
        raise CallErrorReply("TypeConstraintViolation", f"{name} is not a dateTime: {exc}"[:200]) from None
    except OverflowError:
        when = datetime.max.replace(tzinfo=UTC)  # a dateTime, but past the year 9999 in UTC: out of range
    if not EARLIEST_TIME <= when <= now + MAX_CLOCK_AHEAD:
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


class PaymentHooks(Protocol):
    """Decisions the QR payment module (payments.py) makes for the idTags bound to payments."""

    def authorize(self, cp_id: str, id_tag: str) -> AuthStatus | None:
        """Authorize from ``cp_id``: the answer for a payment idTag, None for any other idTag."""

    def started(self, cp_id: str, connector_id: int, id_tag: str, transaction_id: int) -> AuthStatus | None:
        """StartTransaction recorded: the answer for a payment idTag (binds it once), None otherwise."""

    def cost_cap(self, tx: Transaction) -> int | None:
        """Most a stopped transaction may be charged (its payment's amount), None without a payment."""

    def stopped(self, tx: Transaction) -> None:
        """StopTransaction recorded (also for a repeat): settle the payment, refund its remainder once."""


class Csms:
    """The central system application: OCPP handlers over a CsmsStore."""

    def __init__(
        self,
        store: CsmsStore,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        admit_unknown: bool = False,
        heartbeat_interval_s: int = 300,
        site_tz: tzinfo = UTC,
        log_path: str | Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        admin_token: str | None = None,
        boot_timeout_s: float | None = 60.0,
        max_pending: int = 1000,
        pending_ttl_s: float = 86400.0,
    ) -> None:
        """Wire the OCPP handlers and the HTTP routes to ``store``; nothing listens until `start()`.

        ``admin_token`` sets the REST API token; without it, ``CSMS_ADMIN_TOKEN`` or the stored one is used,
        or one is generated and kept in `new_admin_token` for the caller to print once. With ``admit_unknown``,
        at most ``max_pending`` unknown chargers wait as pending; one that has not booted for ``pending_ttl_s``
        is deleted, and a new unknown charger is refused (404) while the table is full.
        """
        self.store = store
        self.admit_unknown = admit_unknown
        self.max_pending = max_pending
        self.pending_ttl_s = pending_ttl_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.site_tz = site_tz
        self.clock = clock
        self.server = CentralSystem(host, port, log_path=log_path, boot_timeout_s=boot_timeout_s)
        self.server.admission = self._admission
        self.server.booted_before = self._booted_before
        self.server.call_observers.append(self._on_call_answered)
        self._verified: dict[str, bytes] = {}  # cp_id -> sha256(password) of the last verified password
        self.server.handlers.update(
            {
                "BootNotification": self._boot,
                "Heartbeat": self._heartbeat,
                "StatusNotification": self._status,
                "Authorize": self._authorize,
                "StartTransaction": self._start,
                "MeterValues": self._meter_values,
                "StopTransaction": self._stop,
                "DiagnosticsStatusNotification": self._diagnostics_status,
                "FirmwareStatusNotification": self._firmware_status,
            }
        )
        # Every answer the server gives goes through _guard: only BootNotification reaches a charger that is not
        # Accepted, and a value the store refuses is a CallError, never InternalError.
        for action, handler in list(self.server.handlers.items()):
            self.server.handlers[action] = self._guard(action, handler)
        self._logged: dict[tuple[str, str], float] = {}  # (cp_id, kind) -> monotonic time of the last warning
        self._stopping: set[int] = set()  # transactions a RemoteStop was sent for
        # Prepaid sessions: (time, Wh) of the last stored sample at their last exact pricing, and that price.
        self._priced: dict[int, tuple[tuple[datetime, int], int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.payment_hooks: PaymentHooks | None = None  # set by payments.setup()
        if admin_token is not None:
            token_sha256, self.new_admin_token = webapp.resolve_admin_token(
                store, {webapp.TOKEN_ENV: admin_token}
            )
        else:
            token_sha256, self.new_admin_token = webapp.resolve_admin_token(store)
        webapp.setup(self, token_sha256)

    async def start(self) -> None:
        """Listen (127.0.0.1 by default)."""
        await self.server.start()

    async def stop(self) -> None:
        """Close every connection and the listener."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.server.stop()

    @property
    def url(self) -> str:
        """The OCPP base URL; chargers connect to ``{url}/{id}``."""
        return self.server.url

    @property
    def http_url(self) -> str:
        """The base URL of the dashboard; the REST API is under ``{http_url}/api/``."""
        return self.server.http_url

    # admission and registration
    async def _admission(self, cp_id: str, password: str | None, profile: SecurityProfile) -> Admission:
        charger = self.store.charger(cp_id)
        if charger is None:
            if not self.admit_unknown:
                log.warning("refused unknown charger %s", cp_id)
                return "unknown"
            expire_before = self.clock() - timedelta(seconds=self.pending_ttl_s)
            admitted = self.store.admit_unknown(
                cp_id, max_pending=self.max_pending, expire_before=expire_before
            )
            if admitted is None:
                log.warning(
                    "refused unknown charger %s: %d chargers are pending already", cp_id, self.max_pending
                )
                return "unknown"
            log.info("admitted unknown charger %s as pending", cp_id)
            return "ok"
        # Profile 3: the server checked a client certificate issued to cp_id; no Basic auth is used then
        # (OCPP 1.6 security whitepaper, security profile 3).
        if charger.has_password and profile < 3:
            if password is None:
                log.warning("refused charger %s: no password", cp_id)
                return "unauthorized"
            # scrypt costs ~30 ms of CPU: it runs in a worker thread (hashlib releases the GIL), so a boot
            # storm of first connections does not stall every other charger's messages. A reconnecting charger
            # repeats the password it proved before, which is checked against a fast digest.
            digest = hashlib.sha256(password.encode(errors="surrogateescape")).digest()
            known = self._verified.get(cp_id)
            if known is None or not hmac.compare_digest(known, digest):
                if not await asyncio.to_thread(self.store.verify_password, cp_id, password):
                    log.warning("refused charger %s: wrong password", cp_id)
                    return "unauthorized"
                self._verified[cp_id] = digest
        elif profile < 3:
            profile = 0  # a Basic header for a charger without a password proves nothing
        # OCPP 1.6 security whitepaper (security profiles): falling back to a lower profile is not allowed; a
        # charger that connects with less than it has used before is refused (a stolen password cannot stand in
        # for its certificate).
        if profile < charger.security_profile:
            log.warning(
                "refused charger %s: security profile %d, it has used %d",
                cp_id,
                profile,
                charger.security_profile,
            )
            return "unauthorized"
        if profile > charger.security_profile:
            self.store.raise_security_profile(cp_id, profile)
            log.info("charger %s now uses security profile %d", cp_id, profile)
        return "ok"

    def _booted_before(self, cp_id: str) -> bool:
        """An accepted charger with a recorded boot need not boot again on a new connection (OCPP 1.6 §4.2)."""
        charger = self.store.charger(cp_id)
        return (
            charger is not None and charger.status is ChargerStatus.ACCEPTED and charger.last_boot is not None
        )

    def set_password(self, cp_id: str, password: str | None) -> None:
        """Change a charger's password (always through here: it also drops the cached proof of the old one).

        Clearing it also lowers a recorded profile 1 or 2 to 0: the operator chose a charger without credentials,
        which would otherwise be refused as a downgrade.
        """
        self.store.set_password(cp_id, password)
        self._verified.pop(cp_id, None)
        charger = self.store.charger(cp_id)
        if password is None and charger is not None and charger.security_profile in (1, 2):
            self.store.set_security_profile(cp_id, 0)

    def _on_call_answered(
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
            self.set_password(cp_id, payload["value"])
            log.info("charger %s accepted a new AuthorizationKey; it is now its password", cp_id)

    # guarding every handler
    def _guard(self, action: str, handler: Handler) -> Handler:
        """``handler`` answering only Accepted chargers (but BootNotification), with store refusals as CallErrors."""

        def guarded(cp_id: str, payload: dict[str, Any]) -> HandlerResult | Awaitable[HandlerResult]:
            if action != "BootNotification":
                charger = self.store.charger(cp_id)
                status = "unknown" if charger is None else str(charger.status)
                if charger is None or charger.status is not ChargerStatus.ACCEPTED:
                    # OCPP 1.6 §4.2.1: a Pending charger SHALL NOT send requests unless triggered, a Rejected one
                    # no OCPP message at all until its retry interval ends. A CallError, not a refusal inside a
                    # .conf: a StartTransaction.conf must carry a transactionId, so answering it would mean
                    # creating a transaction, and an Authorize.conf would tell a stranger what a card is worth.
                    # SecurityError (OCPP-J 1.6 §4.2.3) says why and gives nothing away.
                    self._security_event(
                        cp_id,
                        SecurityEventKind.NOT_ACCEPTED,
                        f"{action} from a charger in status {status} refused",
                        rate_limited=True,
                    )
                    raise CallErrorReply(
                        "SecurityError", f"{action} is refused until BootNotification is Accepted"
                    )
            try:
                result = handler(cp_id, payload)
            except InvalidInput as exc:
                raise CallErrorReply("PropertyConstraintViolation", str(exc)[:200]) from None
            return result

        return guarded

    def _security_event(
        self,
        cp_id: str,
        kind: SecurityEventKind,
        detail: str,
        *,
        transaction_id: int | None = None,
        rate_limited: bool = False,
    ) -> None:
        """Record a security event for the operator, with at most one log line per charger and kind a minute.

        ``rate_limited`` events (a flood of them is no news) are recorded at most as often as they are logged.
        """
        now = time.monotonic()
        key = (cp_id, str(kind))
        due = now - self._logged.get(key, -math.inf) >= LOG_INTERVAL_S
        if due:
            self._logged[key] = now
            log.warning("security event %s from %s: %s", kind, cp_id, detail)
        if due or not rate_limited:
            try:
                self.store.record_security_event(cp_id, kind, detail, transaction_id=transaction_id)
            except StoreError:
                log.exception("cannot record security event %s from %s", kind, cp_id)

    def _bad_samples(self, cp_id: str, tx_id: int | None, problems: list[str]) -> None:
        """Record the samples of one frame that were left out (one event per frame)."""
        if problems:
            detail = f"{len(problems)} sample(s) skipped: " + "; ".join(problems[:5])
            self._security_event(cp_id, SecurityEventKind.BAD_SAMPLE, detail, transaction_id=tx_id)

    def _boot(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        charger = self.store.record_boot(
            cp_id,
            vendor=payload["chargePointVendor"],
            model=payload["chargePointModel"],
            firmware=payload.get("firmwareVersion"),
            serial_number=payload.get("chargePointSerialNumber"),
            timestamp=self.clock(),
        )
        status = {"accepted": "Accepted", "pending": "Pending", "rejected": "Rejected"}[str(charger.status)]
        return {"status": status, "currentTime": utc_now_iso(), "interval": self.heartbeat_interval_s}

    def _heartbeat(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        self.store.record_heartbeat(cp_id, self.clock())
        return {"currentTime": utc_now_iso()}

    def _status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        now = self.clock()
        connector_id = check_int(payload, "connectorId", 0, MAX_CONNECTOR_ID)
        at = check_time(payload["timestamp"], "timestamp", now) if "timestamp" in payload else now
        self.store.record_status(
            cp_id,
            connector_id,
            payload["status"],
            at,
            error_code=payload["errorCode"],
            info=payload.get("info"),
        )
        return {}

    def _diagnostics_status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        self.store.set_diagnostics_status(cp_id, payload["status"])
        return {}

    def _firmware_status(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        self.store.set_firmware_status(cp_id, payload["status"])
        return {}

    # cards and sessions
    def _id_tag_info(self, id_tag: str) -> dict[str, Any]:
        decision = self.store.authorize(id_tag, self.clock(), self.store.min_balance_minor())
        if decision.status is not AuthStatus.ACCEPTED:
            log.info("idTag %s: %s (%s)", id_tag, decision.status, decision.reason)
        return {"status": str(decision.status)}

    def _authorize(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        if self.payment_hooks is not None:
            status = self.payment_hooks.authorize(cp_id, payload["idTag"])
            if status is not None:
                return {"idTagInfo": {"status": str(status)}}
        return {"idTagInfo": self._id_tag_info(payload["idTag"])}

    def _start(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        connector_id = check_int(payload, "connectorId", 1, MAX_CONNECTOR_ID)
        meter_start = check_int(payload, "meterStart", 0, MAX_METER_WH)
        at = check_time(payload["timestamp"], "timestamp", self.clock())
        info = self._id_tag_info(payload["idTag"])
        # Idempotent: a charger that resends the same StartTransaction after a crash gets the same id.
        tx_id = self.store.start_transaction(
            cp_id, connector_id, payload["idTag"], meter_start, at, id_tag_status=info["status"]
        )
        if self.payment_hooks is not None:
            status = self.payment_hooks.started(cp_id, connector_id, payload["idTag"], tx_id)
            if status is not None:
                info = {"status": str(status)}
                self.store.set_id_tag_status(cp_id, tx_id, status)
        return {"transactionId": tx_id, "idTagInfo": info}

    def _meter_values(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        check_int(payload, "connectorId", 0, MAX_CONNECTOR_ID)
        tx_id = (
            check_int(payload, "transactionId", SQLITE_INT_MIN, SQLITE_INT_MAX)
            if "transactionId" in payload
            else None
        )
        samples, problems = samples_from_meter_values(payload["meterValue"], self.clock())
        self._bad_samples(cp_id, tx_id, problems)
        if tx_id is None:
            return {}
        try:
            self.store.add_meter_values(cp_id, tx_id, samples)
        except ForeignTransaction:
            # Every message acts only on its sender's own data: the samples are not stored, and the answer is
            # the same as for an unknown transaction, so a charger cannot probe for other chargers' sessions.
            self._security_event(
                cp_id,
                SecurityEventKind.FOREIGN_TRANSACTION,
                f"MeterValues for transaction {tx_id} of another charger; {len(samples)} sample(s) not stored",
                transaction_id=tx_id,
            )
            return {}
        except UnknownTransaction:
            self._security_event(
                cp_id,
                SecurityEventKind.UNKNOWN_TRANSACTION,
                f"MeterValues for unknown transaction {tx_id}; {len(samples)} sample(s) not stored",
                transaction_id=tx_id,
            )
            return {}
        self._check_prepaid(cp_id, tx_id)
        return {}

    def _stop(self, cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        now = self.clock()
        tx_id = check_int(payload, "transactionId", SQLITE_INT_MIN, SQLITE_INT_MAX)
        meter_stop = check_int(payload, "meterStop", 0, MAX_METER_WH)
        at = check_time(payload["timestamp"], "timestamp", now)
        # OCPP 1.6 §4.10: sanity checks of the transaction data SHOULD NOT keep the central system from
        # answering; unusable samples (bad times included) are left out and recorded, the stop is kept.
        samples, problems = samples_from_meter_values(
            payload.get("transactionData", []), now, skip_bad_times=True
        )
        try:
            result = self.store.stop_transaction(
                cp_id, tx_id, meter_stop, at, payload.get("reason", "Local"), self._price, samples=samples
            )
        except UnknownTransaction as exc:
            # OCPP 1.6 §4.10: the central system SHALL answer a StopTransaction with a .conf (a CallError only
            # makes the charger retry and park it). Nothing is charged. No idTagInfo: it would tell the sender
            # about a card that is not its business, and a foreign and an unknown transaction get the same
            # answer, so a charger cannot probe which ids exist.
            foreign = isinstance(exc, ForeignTransaction)
            whose = "another charger's" if foreign else "unknown"
            self._security_event(
                cp_id,
                SecurityEventKind.FOREIGN_TRANSACTION if foreign else SecurityEventKind.UNKNOWN_TRANSACTION,
                f"StopTransaction for {whose} transaction "
                f"{tx_id} (meterStop {meter_stop}, idTag {str(payload.get('idTag'))!r}) answered, nothing charged",
                transaction_id=tx_id,
            )
            self._bad_samples(cp_id, tx_id, problems)
            return {}
        self._bad_samples(cp_id, tx_id, problems)
        if result.already_stopped:
            log.info("repeated StopTransaction for %s acknowledged; not charged again", tx_id)
        elif at <= result.transaction.started_at:
            self._security_event(
                cp_id,
                SecurityEventKind.STOP_BEFORE_START,
                f"StopTransaction at {at.isoformat()} is not after the start "
                f"{result.transaction.started_at.isoformat()}; priced as a 1 s session with its energy",
                transaction_id=tx_id,
            )
        self._stopping.discard(tx_id)
        self._priced.pop(tx_id, None)
        if self.payment_hooks is not None:
            self.payment_hooks.stopped(result.transaction)
        return {"idTagInfo": self._id_tag_info(payload["idTag"])} if payload.get("idTag") else {}

    # pricing
    def tariff_for(self, cp_id: str) -> tariffs.Tariff | None:
        """The charger's tariff (or the default), parsed; None when there is none."""
        tariff_id = self.store.tariff_for(cp_id)
        text = self.store.tariff_json(tariff_id) if tariff_id else None
        return tariffs.Tariff.from_ocpi(json.loads(text)) if text else None

    def _cdr(self, tx: Transaction, until: datetime, energy_wh: int) -> tariffs.Cdr | None:
        return self._cdr_to(tx, until, energy_wh)[0]

    def _cdr_to(
        self, tx: Transaction, until: datetime, energy_wh: int
    ) -> tuple[tariffs.Cdr | None, tuple[datetime, int]]:
        """The CDR of ``tx`` up to ``until``, and its last stored sample (time, Wh) before that point."""
        points = [(tx.started_at, tx.meter_start_wh)]
        tariff = self.tariff_for(tx.cp_id)
        if tariff is None or until <= tx.started_at:
            return None, points[0]
        for s in self.store.meter_values(tx.id):
            if (
                s.measurand == ENERGY
                and not s.phase
                and s.location in (None, "Outlet")  # the charger's own meter (OCPP 1.6 §7.45), not the EV's
                and s.unit in ("Wh", "kWh")
                and tx.started_at < s.timestamp < until
            ):
                wh = s.value * 1000 if s.unit == "kWh" else s.value
                points.append((s.timestamp, max(points[-1][1], round(wh))))
        last_sample = points[-1]
        points.append((until, max(points[-1][1], energy_wh)))
        samples = [tariffs.MeterSample(at, Decimal(wh)) for at, wh in points]
        cdr = tariffs.calculate_cdr(tariff, tariffs.periods_from_samples(samples), self.site_tz)
        return cdr, last_sample

    def _price(self, tx: Transaction) -> tuple[int, str]:
        """Cost (minor units, incl. VAT) and CDR of a stopped transaction; free without a tariff."""
        assert tx.stopped_at is not None and tx.meter_stop_wh is not None
        # A stop stamped at or before the start would price no time and no energy (an empty CDR): a charger could
        # make its own sessions free that way. Such a session is priced as lasting one second, energy in full.
        stopped_at = max(tx.stopped_at, tx.started_at + SHORTEST_SESSION)
        cdr = self._cdr(tx, stopped_at, tx.meter_stop_wh)
        if cdr is None:
            return 0, json.dumps({"tariff": None, "total_energy_wh": tx.meter_stop_wh - tx.meter_start_wh})
        if tx.energy_wh == 0 and tx.id_tag_status not in (None, str(AuthStatus.ACCEPTED)):
            # A session whose idTag was refused and that delivered nothing is no service: its flat session fee
            # (and any time or parking cost while the charger waited) is not charged.
            free = json.loads(cdr.to_json())
            free["charged_minor"] = 0
            free["not_charged"] = f"idTag {tx.id_tag_status}, no energy delivered"
            return 0, json.dumps(free)
        cap = self.payment_hooks.cost_cap(tx) if self.payment_hooks is not None else None
        if cap is not None and cdr.total_cost_incl_vat > cap:
            # A paid session is never charged more than was paid (the stop lags the running-cost check).
            capped = json.loads(cdr.to_json())
            capped["charged_minor"] = cap
            capped["capped_by_payment"] = True
            return cap, json.dumps(capped)
        return cdr.total_cost_incl_vat, cdr.to_json()

    def running_cost(self, tx: Transaction) -> int:
        """Cost so far (minor units incl. VAT) of a running transaction at its last meter value."""
        cdr = self._cdr(tx, self.clock(), tx.last_meter_wh)
        return cdr.total_cost_incl_vat if cdr else 0

    def _check_prepaid(self, cp_id: str, tx_id: int) -> None:
        """Stop a prepaid session remotely once its running cost reaches the card's balance."""
        if tx_id in self._stopping:
            return
        tx = self.store.transaction(tx_id)
        card = self.store.card(tx.id_tag)
        if card is None or card.mode is not CardMode.PREPAID or tx.stopped_at is not None:
            self._priced.pop(tx_id, None)
            return
        now, balance = self.clock(), self.store.balance(tx.id_tag)
        # Pricing a session exactly costs time in proportion to its samples; doing it at every MeterValues of a
        # long session would be quadratic. While even the most the session can have cost since its last exact
        # price stays below the balance, the exact price is skipped.
        tariff, last = self.tariff_for(tx.cp_id), self._priced.get(tx_id)
        if tariff is not None and last is not None:
            (at, wh), cost = last
            growth = tariff.cost_growth_bound_minor(
                max(0, tx.last_meter_wh - wh), max(0.0, (now - at).total_seconds())
            )
            if cost + growth < balance:
                return
        try:
            cdr, stable = self._cdr_to(tx, now, tx.last_meter_wh)
        except (ValueError, StoreError):
            log.exception("cannot price running transaction %s", tx_id)
            return
        running = cdr.total_cost_incl_vat if cdr else 0
        self._priced[tx_id] = (stable, running)
        if running < balance:
            return
        log.info(
            "transaction %s: running cost %s reached the balance %s of %s; stopping it",
            tx_id,
            running,
            balance,
            tx.id_tag,
        )
        self._stopping.add(tx_id)
        task = asyncio.get_running_loop().create_task(self._remote_stop(cp_id, tx_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _remote_stop(self, cp_id: str, tx_id: int) -> None:
        try:
            answer = await self.server.call(cp_id, "RemoteStopTransaction", {"transactionId": tx_id})
        except (CallErrorReply, TimeoutError, KeyError, ConnectionError) as exc:
            log.warning("RemoteStopTransaction %s to %s failed: %s", tx_id, cp_id, exc)
            self._stopping.discard(tx_id)  # try again with the next MeterValues
            return
        if answer.get("status") != "Accepted":
            log.warning("%s rejected RemoteStopTransaction %s", cp_id, tx_id)
            self._stopping.discard(tx_id)
