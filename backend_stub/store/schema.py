"""The SQLite schema of the central system's store and its migrations."""

from __future__ import annotations

from typing import Final

from backend_stub.store.records import (
    DEFAULT_CURRENCY,
    MAX_ID_TAG_LENGTH,
    SCHEMA_VERSION,
)

# Columns added after a store was first created: `_add_columns` adds each one a store opened here lacks (a new store
# gets them from SCHEMA). security_profile: the highest OCPP security profile a charger has connected with.
_ADDED_COLUMNS: Final = (
    (
        "chargers",
        "security_profile",
        "INTEGER NOT NULL DEFAULT 0 CHECK (security_profile BETWEEN 0 AND 3)",
    ),
    # station_tx_id: the charger's own transaction id where its protocol has one (OCPP 2.0.1 transactionId, a
    # station-generated string); last_seq_no: the highest message sequence number seen for the transaction.
    ("transactions", "station_tx_id", "TEXT"),
    ("transactions", "last_seq_no", "INTEGER"),
    # parked_at: a push the partner kept refusing with a client error, set aside until the operator retries it.
    ("ocpi_outbox", "parked_at", "TEXT"),
)
# Indexes on added columns, created after `_ADDED_COLUMNS`: a station transaction id is unique per charger, and
# found by itself too (`station_transaction` tells another charger's id from an unknown one: without this index,
# a scan of every transaction at the first event of each 2.0.1 session).
_ADDED_INDEXES: Final = (
    "CREATE UNIQUE INDEX IF NOT EXISTS transactions_station ON transactions(cp_id, station_tx_id) "
    "WHERE station_tx_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS transactions_station_tx ON transactions(station_tx_id) "
    "WHERE station_tx_id IS NOT NULL",
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tariffs (id TEXT PRIMARY KEY, ocpi_json TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS chargers (
    id TEXT PRIMARY KEY,
    password_hash TEXT,
    status TEXT NOT NULL CHECK (status IN ('accepted', 'pending', 'rejected')),
    vendor TEXT,
    model TEXT,
    firmware TEXT,
    serial_number TEXT,
    last_boot TEXT,
    last_heartbeat TEXT,
    diagnostics_status TEXT,
    firmware_status TEXT,
    tariff_id TEXT,
    created_at TEXT NOT NULL,
    security_profile INTEGER NOT NULL DEFAULT 0 CHECK (security_profile BETWEEN 0 AND 3)
);
CREATE TABLE IF NOT EXISTS connectors (
    cp_id TEXT NOT NULL REFERENCES chargers(id),
    connector_id INTEGER NOT NULL CHECK (connector_id >= 0),
    status TEXT NOT NULL,
    error_code TEXT NOT NULL,
    info TEXT,
    timestamp TEXT NOT NULL,
    PRIMARY KEY (cp_id, connector_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS status_history (
    id INTEGER PRIMARY KEY,
    cp_id TEXT NOT NULL REFERENCES chargers(id),
    connector_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT NOT NULL,
    info TEXT,
    timestamp TEXT NOT NULL,
    UNIQUE (cp_id, connector_id, timestamp, status)
);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    phone TEXT,
    email TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cards (
    id_tag TEXT NOT NULL COLLATE NOCASE PRIMARY KEY CHECK (length(id_tag) BETWEEN 1 AND {MAX_ID_TAG_LENGTH}),
    user_id INTEGER REFERENCES users(id),
    mode TEXT NOT NULL CHECK (mode IN ('personal', 'prepaid')),
    status TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
    expiry TEXT,
    balance_minor INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cards_user ON cards(user_id);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cp_id TEXT NOT NULL REFERENCES chargers(id),
    connector_id INTEGER NOT NULL,
    id_tag TEXT NOT NULL COLLATE NOCASE,
    meter_start_wh INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    last_meter_wh INTEGER NOT NULL,
    meter_stop_wh INTEGER,
    stopped_at TEXT,
    stop_reason TEXT,
    cost_minor INTEGER,
    cdr_json TEXT,
    id_tag_status TEXT,
    station_tx_id TEXT,
    last_seq_no INTEGER,
    UNIQUE (cp_id, connector_id, id_tag, started_at, meter_start_wh)
);
CREATE INDEX IF NOT EXISTS transactions_stopped ON transactions(cp_id, stopped_at);
CREATE INDEX IF NOT EXISTS transactions_id_tag ON transactions(id_tag);
CREATE TABLE IF NOT EXISTS meter_values (
    transaction_id INTEGER NOT NULL REFERENCES transactions(id),
    timestamp TEXT NOT NULL,
    measurand TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT '',
    location TEXT NOT NULL DEFAULT '',
    context TEXT NOT NULL DEFAULT '',
    unit TEXT NOT NULL DEFAULT '',
    value REAL NOT NULL,
    PRIMARY KEY (transaction_id, timestamp, measurand, phase, location, context, unit)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS device_model (
    cp_id TEXT NOT NULL REFERENCES chargers(id),
    component TEXT NOT NULL,
    component_instance TEXT NOT NULL DEFAULT '',
    evse_id INTEGER NOT NULL DEFAULT -1,
    connector_id INTEGER NOT NULL DEFAULT -1,
    variable TEXT NOT NULL,
    variable_instance TEXT NOT NULL DEFAULT '',
    attribute_type TEXT NOT NULL DEFAULT 'Actual',
    value TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (cp_id, component, component_instance, evse_id, connector_id, variable, variable_instance,
                 attribute_type)
) WITHOUT ROWID;
-- OCPP 2.0.1 transactions started before any idToken, until one arrives (then they become transactions).
CREATE TABLE IF NOT EXISTS unauthorized_starts (
    cp_id TEXT NOT NULL REFERENCES chargers(id),
    station_tx_id TEXT NOT NULL,
    evse INTEGER NOT NULL,
    meter_start_wh INTEGER NOT NULL,
    started_at TEXT NOT NULL,
    last_seq_no INTEGER NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (cp_id, station_tx_id)
);
-- The latest client certificate our CA signed for each charger and the charger accepted (CertificateSigned).
CREATE TABLE IF NOT EXISTS client_certificates (
    cp_id TEXT NOT NULL PRIMARY KEY REFERENCES chargers(id),
    serial_hex TEXT NOT NULL,
    not_after TEXT NOT NULL,
    chain_pem TEXT NOT NULL,
    accepted_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    cp_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    transaction_id INTEGER,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cp_id TEXT NOT NULL REFERENCES chargers(id),
    connector_id INTEGER NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    status TEXT NOT NULL CHECK (status IN ('created', 'authorized', 'captured', 'refunded', 'failed')),
    provider TEXT NOT NULL,
    provider_ref TEXT,
    id_tag TEXT COLLATE NOCASE UNIQUE,
    transaction_id INTEGER REFERENCES transactions(id),
    idempotency_key TEXT UNIQUE,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (provider, provider_ref)
);
CREATE TABLE IF NOT EXISTS payment_events (
    id INTEGER PRIMARY KEY,
    payment_id INTEGER NOT NULL REFERENCES payments(id),
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    id_tag TEXT NOT NULL COLLATE NOCASE REFERENCES cards(id_tag),
    kind TEXT NOT NULL CHECK (kind IN ('topup', 'charge', 'refund', 'adjustment')),
    amount_minor INTEGER NOT NULL CHECK (
        (kind = 'topup' AND amount_minor > 0) OR (kind = 'charge' AND amount_minor <= 0)
        OR (kind = 'refund' AND amount_minor > 0) OR (kind = 'adjustment' AND amount_minor <> 0)
    ),
    transaction_id INTEGER REFERENCES transactions(id),
    payment_id INTEGER REFERENCES payments(id),
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ledger_card ON ledger(id_tag);
CREATE INDEX IF NOT EXISTS ledger_transaction ON ledger(transaction_id);
-- The ledger is append-only: money is corrected with new entries, never by editing history.
CREATE TRIGGER IF NOT EXISTS ledger_no_update BEFORE UPDATE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only: UPDATE is not allowed'); END;
CREATE TRIGGER IF NOT EXISTS ledger_no_delete BEFORE DELETE ON ledger
BEGIN SELECT RAISE(ABORT, 'ledger is append-only: DELETE is not allowed'); END;
-- INSERT OR REPLACE deletes the clashing row without firing DELETE triggers (unless recursive_triggers is
-- on, per connection), so an insert that would replace an entry is refused before it happens.
CREATE TRIGGER IF NOT EXISTS ledger_no_replace BEFORE INSERT ON ledger
WHEN EXISTS (SELECT 1 FROM ledger WHERE id = NEW.id OR idempotency_key = NEW.idempotency_key)
BEGIN SELECT RAISE(ABORT, 'ledger is append-only: an entry with this id or key exists'); END;
-- The cached balance moves with every entry in the same statement, whoever inserts it.
CREATE TRIGGER IF NOT EXISTS ledger_cached_balance AFTER INSERT ON ledger
BEGIN UPDATE cards SET balance_minor = balance_minor + NEW.amount_minor WHERE id_tag = NEW.id_tag; END;
-- OCPI 2.2.1 roaming partners (backend_stub/ocpi). Tokens a partner calls us with are kept as SHA-256 only; the
-- token we call it with is kept as given (we must send it). A (country_code, party_id, role) belongs to one partner.
CREATE TABLE IF NOT EXISTS ocpi_partners (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'registered', 'unregistered')),
    token_a_sha256 TEXT UNIQUE,
    incoming_sha256 TEXT UNIQUE,
    outgoing_token TEXT,
    versions_url TEXT,
    version TEXT,
    endpoints_json TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_contact_at TEXT,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS ocpi_partner_roles (
    partner_id INTEGER NOT NULL REFERENCES ocpi_partners(id),
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    role TEXT NOT NULL,
    business_name TEXT NOT NULL,
    PRIMARY KEY (country_code, party_id, role)
) WITHOUT ROWID;
-- Pushes to partners, one row per (partner, object): a newer state of a queued object revises its row (the body is
-- built when it is sent), so a partner that is down costs one row per object, and loses nothing.
CREATE TABLE IF NOT EXISTS ocpi_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id INTEGER NOT NULL REFERENCES ocpi_partners(id),
    kind TEXT NOT NULL,
    object_id TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (partner_id, kind, object_id)
);
-- Tokens of partners' drivers (OCPI 2.2.1 §12, we are the Receiver), looked up by uid when a charger asks.
CREATE TABLE IF NOT EXISTS ocpi_tokens (
    partner_id INTEGER NOT NULL REFERENCES ocpi_partners(id),
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    uid TEXT NOT NULL COLLATE NOCASE,
    type TEXT NOT NULL,
    valid INTEGER NOT NULL,
    whitelist TEXT NOT NULL,
    body_json TEXT NOT NULL,
    last_updated TEXT NOT NULL,
    PRIMARY KEY (country_code, party_id, uid, type)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ocpi_tokens_uid ON ocpi_tokens(uid);
-- The results of partners' commands (OCPI 2.2.1 §13.3.2), kept until the push queue has POSTed them.
CREATE TABLE IF NOT EXISTS ocpi_command_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id INTEGER NOT NULL REFERENCES ocpi_partners(id),
    response_url TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at TEXT NOT NULL
);
-- Where a charger stands, as its OCPI Location says (address, coordinates, connector kind): the operator's values
-- over the configured defaults (backend_stub/ocpi/site.py validates them).
CREATE TABLE IF NOT EXISTS ocpi_location_details (
    cp_id TEXT PRIMARY KEY REFERENCES chargers(id),
    details_json TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- Partners' reservations (OCPI 2.2.1 §13.3.5): the OCPI reservation_id (a string per eMSP) and the integer
-- reservationId the charger knows (OCPP 1.6 §5.14); the same reservation_id again replaces the reservation.
CREATE TABLE IF NOT EXISTS ocpi_reservations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id INTEGER NOT NULL REFERENCES ocpi_partners(id),
    reservation_id TEXT NOT NULL COLLATE NOCASE,
    cp_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (partner_id, reservation_id)
);
INSERT OR IGNORE INTO settings (name, value) VALUES ('currency', '{DEFAULT_CURRENCY}');
INSERT OR IGNORE INTO settings (name, value) VALUES ('min_balance_minor', '0');
PRAGMA user_version = {SCHEMA_VERSION};
"""

# Schema changes of existing databases, by the version they lead to; each runs inside the opening transaction,
# before SCHEMA (which creates what is new and sets user_version).
_DEFAULT_UNIT_SQL: Final = (
    "CASE WHEN measurand LIKE 'Power.Reactive.%' THEN 'var' WHEN measurand = 'Power.Factor' THEN '' "
    "WHEN measurand LIKE 'Power.%' THEN 'W' WHEN measurand LIKE 'Current.%' THEN 'A' "
    "WHEN measurand = 'Voltage' THEN 'V' WHEN measurand = 'Temperature' THEN 'Celsius' "
    "WHEN measurand = 'SoC' THEN 'Percent' ELSE '' END"
)
MIGRATIONS: Final[dict[int, str]] = {
    # 2: meter samples keep their location and are deduplicated on every identifying field (samples that
    # differed only in location, context or unit were dropped); transactions keep the idTag status given at
    # their start. Version 1 stored "Wh" for every sample without a unit: for a measurand that is not energy,
    # that "Wh" was the wrong default, replaced by the measurand's own (OCPP 1.6 §7.45).
    2: f"""
ALTER TABLE transactions ADD COLUMN id_tag_status TEXT;
CREATE TABLE meter_values_v2 (
    transaction_id INTEGER NOT NULL REFERENCES transactions(id),
    timestamp TEXT NOT NULL,
    measurand TEXT NOT NULL,
    phase TEXT NOT NULL DEFAULT '',
    location TEXT NOT NULL DEFAULT '',
    context TEXT NOT NULL DEFAULT '',
    unit TEXT NOT NULL DEFAULT '',
    value REAL NOT NULL,
    PRIMARY KEY (transaction_id, timestamp, measurand, phase, location, context, unit)
) WITHOUT ROWID;
INSERT OR IGNORE INTO meter_values_v2 (transaction_id, timestamp, measurand, phase, location, context, unit, value)
SELECT transaction_id, timestamp, measurand, phase, '', COALESCE(context, ''),
       CASE WHEN unit = 'Wh' AND measurand NOT LIKE 'Energy.%' THEN {_DEFAULT_UNIT_SQL} ELSE unit END, value
FROM meter_values;
DROP TABLE meter_values;
ALTER TABLE meter_values_v2 RENAME TO meter_values;
""",
    # 3: cards take OCPP 2.0.1 idTokens (up to 36 characters, was 1.6's 20). SQLite cannot change a CHECK in place:
    # the table is rebuilt under its own name (a rename would make the ledger's trigger and foreign keys point at
    # the copy). The ledger and payments reference cards(id_tag): with foreign keys deferred to the commit, dropping
    # the old table counts their rows as orphans and inserting each card again counts them back.
    3: """
PRAGMA defer_foreign_keys = ON;
CREATE TABLE cards_v2_copy AS SELECT * FROM cards;
DROP TABLE cards;
CREATE TABLE cards (
    id_tag TEXT NOT NULL COLLATE NOCASE PRIMARY KEY CHECK (length(id_tag) BETWEEN 1 AND 36),
    user_id INTEGER REFERENCES users(id),
    mode TEXT NOT NULL CHECK (mode IN ('personal', 'prepaid')),
    status TEXT NOT NULL CHECK (status IN ('active', 'blocked')),
    expiry TEXT,
    balance_minor INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
INSERT INTO cards (id_tag, user_id, mode, status, expiry, balance_minor, created_at)
SELECT id_tag, user_id, mode, status, expiry, balance_minor, created_at FROM cards_v2_copy;
DROP TABLE cards_v2_copy;
""",
}


# ---------------------------------------------------------------------------------------------- rows
