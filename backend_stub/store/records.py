"""The store's records, enums, limits and row conversions (no SQL connection here)."""

from __future__ import annotations

import csv
import enum
import hashlib
import hmac
import io
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final, TypeVar

from backend_stub.errors import CentralError

SCHEMA_VERSION: Final = 3
DEFAULT_CURRENCY: Final = "EUR"
# A card's idTag: OCPP 2.0.1 IdTokenType.idToken is identifierString[0..36] (an eMAID such as DE-ABC-C12345678-X
# is longer than 1.6's CiString20Type idTag, which 1.6 frames keep by their schema).
MAX_ID_TAG_LENGTH: Final = 36
MAX_UNAUTHORIZED_STARTS: Final = 64  # per charger: a newer one pushes out the oldest (a flood stays bounded)
MAX_AMOUNT_MINOR: Final = 10**12  # keeps every SUM far inside SQLite's signed 64-bit integers
MAX_TEXT_LENGTH: Final = 10_000
ENERGY_REGISTER: Final = "Energy.Active.Import.Register"
POWER_ACTIVE_IMPORT: Final = "Power.Active.Import"  # OCPP 1.6 §7.31 Measurand, total unless a phase is given
# Largest magnitude of a stored sample: an energy register in kWh x 1000 stays far inside SQLite's signed 64-bit
# integers when it becomes a transaction's last_meter_wh.
MAX_SAMPLE_VALUE: Final = 1e15
MAX_METER_WH: Final = 2**62
MAX_DEVICE_VARIABLES: Final = (
    5_000  # reported device-model values kept per charger (a stranger may report more)
)
MAX_STATION_TX_ID_LENGTH: Final = 36  # OCPP 2.0.1 TransactionType.transactionId is identifierString(36)
# A stranger can cause security events (a charger reporting on another's transaction, bad samples): the table
# keeps only the newest ones, so it cannot grow without bound.
MAX_SECURITY_EVENTS: Final = 10_000
CHARGING: Final = "Charging"  # OCPP 1.6 ChargePointStatus counted as working time

# scrypt (RFC 7914) cost: ~16 MiB and some tens of ms per check; parameters are stored with each hash.
_SCRYPT_N: Final = 2**14
_SCRYPT_R: Final = 8
_SCRYPT_P: Final = 1
_SALT_BYTES: Final = 16
# Checked when a charger is unknown or has no password, so every answer costs one scrypt run.
_DUMMY_HASH: Final = f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${'00' * _SALT_BYTES}${'00' * 32}"

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CURRENCY = re.compile(r"[A-Z]{3}")  # ISO 4217 alphabetic code
_CSV_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


class StoreError(CentralError):
    """Any failure of the central system store; sqlite3 errors are translated to this."""


class InvalidInput(StoreError, ValueError):
    """An argument is out of range or malformed; nothing was written."""


class NotFound(StoreError, LookupError):
    """A referenced row does not exist."""


class UnknownCharger(NotFound):
    """No charger with this id."""


class UnknownUser(NotFound):
    """No user with this id."""


class UnknownCard(NotFound):
    """No card with this id_tag."""


class UnknownTransaction(NotFound):
    """No transaction with this id."""


class ForeignTransaction(UnknownTransaction):
    """The transaction exists but belongs to another charger (to that charger it is as unknown)."""


class UnknownPayment(NotFound):
    """No payment with this id."""


class Conflict(StoreError):
    """The write contradicts a row that already exists."""


class IdempotencyConflict(Conflict):
    """An idempotency key was reused with different parameters."""


class InvalidTransition(Conflict):
    """A payment cannot move from its current status to the requested one."""


class ChargerStatus(enum.StrEnum):
    """Registration status of a charger (answered in BootNotification)."""

    ACCEPTED = "accepted"
    PENDING = "pending"
    REJECTED = "rejected"


class CardMode(enum.StrEnum):
    """Personal cards are billed afterwards; prepaid cards need a balance."""

    PERSONAL = "personal"
    PREPAID = "prepaid"


class CardStatus(enum.StrEnum):
    """Administrative card status."""

    ACTIVE = "active"
    BLOCKED = "blocked"


class LedgerKind(enum.StrEnum):
    """Ledger entry kinds; signs: topup > 0, charge <= 0, refund > 0 (money back to the card), adjustment != 0."""

    TOPUP = "topup"
    CHARGE = "charge"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"


class PaymentStatus(enum.StrEnum):
    """Status of a (QR) payment."""

    CREATED = "created"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    REFUNDED = "refunded"
    FAILED = "failed"


class SecurityEventKind(enum.StrEnum):
    """What a security event records: an attempt on someone else's data, or data the central system refused."""

    FOREIGN_TRANSACTION = "foreign_transaction"  # a charger reported on another charger's transaction
    UNKNOWN_TRANSACTION = "unknown_transaction"  # a charger reported on a transaction that does not exist
    NOT_ACCEPTED = "not_accepted"  # a Pending/Rejected charger sent something other than BootNotification
    BAD_SAMPLE = "bad_sample"  # a meter sample was skipped (non-finite, out of range, not a number)
    STOP_BEFORE_START = "stop_before_start"  # a StopTransaction stamped at or before its start
    SEQUENCE_GAP = "sequence_gap"  # a transaction's message sequence numbers skipped or went back


class AuthStatus(enum.StrEnum):
    """OCPP 1.6 AuthorizationStatus values this store decides."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"


# Which payment status may follow which is a business rule: `backend_stub.domain.payments.PAYMENT_TRANSITIONS`. The
# store applies a table it is given, inside the write transaction that reads the current status.
PaymentTransitions = Mapping[PaymentStatus, frozenset[PaymentStatus]]


@dataclass(frozen=True, slots=True)
class Charger:
    """A registered charger; the password hash never leaves the store."""

    id: str
    status: ChargerStatus
    has_password: bool
    vendor: str | None
    model: str | None
    firmware: str | None
    serial_number: str | None
    last_boot: datetime | None
    last_heartbeat: datetime | None
    diagnostics_status: str | None
    firmware_status: str | None
    tariff_id: str | None
    created_at: datetime
    # The highest OCPP security profile it has connected with (0 none, 1 Basic, 2 Basic over TLS, 3 client
    # certificate); a lower one is refused from then on.
    security_profile: int = 0


@dataclass(frozen=True, slots=True)
class ConnectorStatus:
    """The latest StatusNotification of one connector (0 is the charger as a whole)."""

    cp_id: str
    connector_id: int
    status: str
    error_code: str
    info: str | None
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class User:
    """A customer."""

    id: int
    name: str
    phone: str | None
    email: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Card:
    """An RFID card (id_tag compared case-insensitively, as OCPP CiString requires)."""

    id_tag: str
    user_id: int | None
    mode: CardMode
    status: CardStatus
    expiry: datetime | None
    balance_minor: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One immutable ledger entry; amount_minor is signed (credit > 0)."""

    id: int
    id_tag: str
    kind: LedgerKind
    amount_minor: int
    transaction_id: int | None
    payment_id: int | None
    idempotency_key: str
    created_at: datetime
    note: str


@dataclass(frozen=True, slots=True)
class BalanceMismatch:
    """A card whose cached balance disagrees with the sum of its ledger entries."""

    id_tag: str
    cached_minor: int
    ledger_minor: int


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One sampled value of a MeterValues message."""

    timestamp: datetime
    value: float
    measurand: str = ENERGY_REGISTER
    unit: str | None = "Wh"  # None: the measurand has no unit in OCPP 1.6 (Frequency, RPM, Power.Factor)
    phase: str | None = None
    context: str | None = None
    location: str | None = None  # None: the default, Outlet (OCPP 1.6 §7.45)


@dataclass(frozen=True, slots=True)
class DeviceVariable:
    """One value of a charger's reported device model: a component's variable and its attribute type."""

    component: str
    variable: str
    value: str | None
    evse: int | None = None
    connector: int | None = None
    component_instance: str | None = None
    variable_instance: str | None = None
    attribute_type: str = "Actual"


@dataclass(frozen=True, slots=True)
class UnauthorizedStart:
    """A transaction a charger started before any idToken (OCPP 2.0.1 E02/E03): kept until the idToken comes."""

    cp_id: str
    station_tx_id: str
    evse: int
    meter_start_wh: int
    started_at: datetime
    last_seq_no: int


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """A charger's TLS client certificate signed by this central system and accepted by the charger."""

    cp_id: str
    serial_hex: str
    not_after: datetime
    chain_pem: str
    accepted_at: datetime


@dataclass(frozen=True, slots=True)
class Transaction:
    """A charging session as the central system knows it."""

    id: int
    cp_id: str
    connector_id: int
    id_tag: str
    meter_start_wh: int
    started_at: datetime
    last_meter_wh: int
    meter_stop_wh: int | None
    stopped_at: datetime | None
    stop_reason: str | None
    cost_minor: int | None
    cdr_json: str | None
    id_tag_status: str | None = None  # the idTagInfo status the StartTransaction was answered with
    station_tx_id: str | None = None  # the charger's own id of the transaction (OCPP 2.0.1 transactionId)

    @property
    def active(self) -> bool:
        """True until StopTransaction was recorded."""
        return self.stopped_at is None

    @property
    def energy_wh(self) -> int:
        """Energy delivered so far (never negative, even if a meter was replaced mid-session)."""
        end = self.meter_stop_wh if self.meter_stop_wh is not None else self.last_meter_wh
        return max(0, end - self.meter_start_wh)


@dataclass(frozen=True, slots=True)
class StopResult:
    """Outcome of stop_transaction; charge is None when the id_tag is no known card."""

    already_stopped: bool
    transaction: Transaction
    charge: LedgerEntry | None


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """Something a charger did to data that is not its own, or sent that could not be used."""

    id: int
    at: datetime
    cp_id: str
    kind: SecurityEventKind
    transaction_id: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class Payment:
    """A payment made at a charger (e.g. by QR code)."""

    id: int
    cp_id: str
    connector_id: int
    amount_minor: int
    status: PaymentStatus
    provider: str
    provider_ref: str | None
    id_tag: str | None
    transaction_id: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PaymentUpdate:
    """Outcome of a payment transition; changed is False for repeated or stale callbacks."""

    payment: Payment
    changed: bool


@dataclass(frozen=True, slots=True)
class DailyStats:
    """One local day of one charger."""

    day: date
    charging_s: float
    energy_wh: int
    sessions: int
    fees_minor: int

    @property
    def working_hours(self) -> float:
        """Connector-hours spent in Charging."""
        return self.charging_s / 3600

    @property
    def energy_kwh(self) -> float:
        """Energy of sessions that ended this day, in kWh."""
        return self.energy_wh / 1000


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One finished session in a consumption report."""

    transaction_id: int
    cp_id: str
    connector_id: int
    id_tag: str
    started_at: datetime
    stopped_at: datetime
    energy_wh: int
    cost_minor: int


@dataclass(frozen=True, slots=True)
class UserConsumption:
    """All finished sessions of a user's cards, with totals."""

    user_id: int
    sessions: tuple[SessionSummary, ...]
    energy_wh: int
    cost_minor: int


CostFn = Callable[[Transaction], tuple[int, str]]
"""Prices a stopped transaction: (cost in minor units, CDR as JSON text). Runs inside the write transaction."""

_E = TypeVar("_E", bound=enum.StrEnum)


# ---------------------------------------------------------------------------------------------- helpers


def _ts(value: datetime, name: str = "timestamp") -> str:
    """Aware datetime -> fixed-width UTC ISO-8601 text, so equal instants compare equal as text."""
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _opt_dt(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _enum(cls: type[_E], value: str, name: str) -> _E:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise InvalidInput(f"{name} must be one of {allowed}, got {value!r}") from None


def _int(value: int, name: str, *, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _text(value: str, name: str, *, max_len: int = MAX_TEXT_LENGTH, empty: bool = False) -> str:
    if not isinstance(value, str) or len(value) > max_len or (not empty and not value):
        raise InvalidInput(
            f"{name} must be a {'' if empty else 'non-empty '}string of at most {max_len} chars"
        )
    return value


def _opt_text(value: str | None, name: str, *, max_len: int = MAX_TEXT_LENGTH) -> str | None:
    return None if value is None else _text(value, name, max_len=max_len, empty=True)


def _id_tag(value: str) -> str:
    return _text(value, "id_tag", max_len=MAX_ID_TAG_LENGTH)


def _hash_password(password: str, salt: bytes) -> str:
    digest = hashlib.scrypt(
        password.encode("utf-8", "surrogatepass"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def _check_password(stored: str, password: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
        if scheme != "scrypt":
            raise ValueError(scheme)
        expected = bytes.fromhex(digest_hex)
        actual = hashlib.scrypt(
            password.encode("utf-8", "surrogatepass"),
            salt=bytes.fromhex(salt_hex),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError as exc:
        raise StoreError(f"malformed password hash: {exc}") from exc
    return hmac.compare_digest(actual, expected)


def _csv_cell(value: object) -> object:
    """Neutralise spreadsheet formulas in text cells (CSV injection); numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(_CSV_FORMULA_START):
        return "'" + value
    return value


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[_csv_cell(v) for v in row] for row in rows])
    return out.getvalue()


def _charger(row: sqlite3.Row) -> Charger:
    return Charger(
        id=row["id"],
        status=ChargerStatus(row["status"]),
        has_password=row["password_hash"] is not None,
        vendor=row["vendor"],
        model=row["model"],
        firmware=row["firmware"],
        serial_number=row["serial_number"],
        last_boot=_opt_dt(row["last_boot"]),
        last_heartbeat=_opt_dt(row["last_heartbeat"]),
        diagnostics_status=row["diagnostics_status"],
        firmware_status=row["firmware_status"],
        tariff_id=row["tariff_id"],
        created_at=_dt(row["created_at"]),
        security_profile=row["security_profile"],
    )


def _connector(row: sqlite3.Row) -> ConnectorStatus:
    return ConnectorStatus(
        cp_id=row["cp_id"],
        connector_id=row["connector_id"],
        status=row["status"],
        error_code=row["error_code"],
        info=row["info"],
        timestamp=_dt(row["timestamp"]),
    )


def _user(row: sqlite3.Row) -> User:
    return User(
        id=row["id"],
        name=row["name"],
        phone=row["phone"],
        email=row["email"],
        created_at=_dt(row["created_at"]),
    )


def _card(row: sqlite3.Row) -> Card:
    return Card(
        id_tag=row["id_tag"],
        user_id=row["user_id"],
        mode=CardMode(row["mode"]),
        status=CardStatus(row["status"]),
        expiry=_opt_dt(row["expiry"]),
        balance_minor=row["balance_minor"],
        created_at=_dt(row["created_at"]),
    )


def _entry(row: sqlite3.Row) -> LedgerEntry:
    return LedgerEntry(
        id=row["id"],
        id_tag=row["id_tag"],
        kind=LedgerKind(row["kind"]),
        amount_minor=row["amount_minor"],
        transaction_id=row["transaction_id"],
        payment_id=row["payment_id"],
        idempotency_key=row["idempotency_key"],
        created_at=_dt(row["created_at"]),
        note=row["note"],
    )


def _transaction(row: sqlite3.Row) -> Transaction:
    return Transaction(
        id=row["id"],
        cp_id=row["cp_id"],
        connector_id=row["connector_id"],
        id_tag=row["id_tag"],
        meter_start_wh=row["meter_start_wh"],
        started_at=_dt(row["started_at"]),
        last_meter_wh=row["last_meter_wh"],
        meter_stop_wh=row["meter_stop_wh"],
        stopped_at=_opt_dt(row["stopped_at"]),
        stop_reason=row["stop_reason"],
        cost_minor=row["cost_minor"],
        cdr_json=row["cdr_json"],
        id_tag_status=row["id_tag_status"],
        station_tx_id=row["station_tx_id"],
    )


def _security_event(row: sqlite3.Row) -> SecurityEvent:
    return SecurityEvent(
        id=row["id"],
        at=_dt(row["at"]),
        cp_id=row["cp_id"],
        kind=SecurityEventKind(row["kind"]),
        transaction_id=row["transaction_id"],
        detail=row["detail"],
    )


def _payment(row: sqlite3.Row) -> Payment:
    return Payment(
        id=row["id"],
        cp_id=row["cp_id"],
        connector_id=row["connector_id"],
        amount_minor=row["amount_minor"],
        status=PaymentStatus(row["status"]),
        provider=row["provider"],
        provider_ref=row["provider_ref"],
        id_tag=row["id_tag"],
        transaction_id=row["transaction_id"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
    )


def _reachable(start: PaymentStatus, transitions: PaymentTransitions) -> set[PaymentStatus]:
    """Statuses reachable from start by zero or more transitions."""
    seen = {start}
    todo = [start]
    while todo:
        for nxt in transitions[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def _utc_now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------- store
