"""The central system's SQLite data layer: chargers, users, cards, an append-only ledger, transactions,
payments and statistics.

Synchronous by design: every call is a short SQLite statement or transaction, so the OCPP handlers and the
REST API call it directly. Every public write is exactly one SQLite transaction; every sqlite3 error leaves
this module as StoreError. Money is integer minor units in one currency per installation, energy is Wh, and
times are timezone-aware UTC stored as fixed-width ISO-8601 text (so text order is time order).
"""

from __future__ import annotations

from backend_stub.store.records import (
    CHARGING,
    DEFAULT_CURRENCY,
    ENERGY_REGISTER,
    MAX_AMOUNT_MINOR,
    MAX_ID_TAG_LENGTH,
    MAX_METER_WH,
    MAX_SAMPLE_VALUE,
    MAX_SECURITY_EVENTS,
    MAX_TEXT_LENGTH,
    PAYMENT_TRANSITIONS,
    SCHEMA_VERSION,
    AuthStatus,
    BalanceMismatch,
    Card,
    CardMode,
    CardStatus,
    Charger,
    ChargerStatus,
    Conflict,
    ConnectorStatus,
    CostFn,
    DailyStats,
    ForeignTransaction,
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    LedgerEntry,
    LedgerKind,
    MeterSample,
    NotFound,
    Payment,
    PaymentStatus,
    PaymentUpdate,
    SecurityEvent,
    SecurityEventKind,
    SessionSummary,
    StopResult,
    StoreError,
    Transaction,
    UnknownCard,
    UnknownCharger,
    UnknownPayment,
    UnknownTransaction,
    UnknownUser,
    User,
    UserConsumption,
)
from backend_stub.store.statistics import StatisticsStore

__all__ = [
    "CHARGING",
    "DEFAULT_CURRENCY",
    "ENERGY_REGISTER",
    "MAX_AMOUNT_MINOR",
    "MAX_ID_TAG_LENGTH",
    "MAX_METER_WH",
    "MAX_SAMPLE_VALUE",
    "MAX_SECURITY_EVENTS",
    "MAX_TEXT_LENGTH",
    "PAYMENT_TRANSITIONS",
    "SCHEMA_VERSION",
    "AuthStatus",
    "BalanceMismatch",
    "Card",
    "CardMode",
    "CardStatus",
    "Charger",
    "ChargerStatus",
    "Conflict",
    "ConnectorStatus",
    "CostFn",
    "CsmsStore",
    "DailyStats",
    "ForeignTransaction",
    "IdempotencyConflict",
    "InvalidInput",
    "InvalidTransition",
    "LedgerEntry",
    "LedgerKind",
    "MeterSample",
    "NotFound",
    "Payment",
    "PaymentStatus",
    "PaymentUpdate",
    "SecurityEvent",
    "SecurityEventKind",
    "SessionSummary",
    "StopResult",
    "StoreError",
    "Transaction",
    "UnknownCard",
    "UnknownCharger",
    "UnknownPayment",
    "UnknownTransaction",
    "UnknownUser",
    "User",
    "UserConsumption",
]


class CsmsStore(StatisticsStore):
    """Synchronous repository over one SQLite file; safe to share between threads (calls are serialised).

    One class per aggregate, each extending the one before: settings, chargers, security events, accounts (users,
    cards, ledger), transactions, payments, statistics.
    """
