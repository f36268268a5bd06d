"""Station-keyed rows: an agent's file from before the key is migrated in place; agents sharing a file are isolated."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from chargepoint.core.events import OutboxKind, TransactionEnded, TransactionStarted
from chargepoint.core.model import AuthStatus, IdTagInfo, StopReason
from chargepoint.store import Store, StoreFile

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)

# The schema of chargepoint/store.py before rows had a station key (one agent per file).
OLD_SCHEMA = """
CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE transactions (
    local_id INTEGER PRIMARY KEY AUTOINCREMENT, connector_id INTEGER NOT NULL, id_tag TEXT NOT NULL,
    started_at TEXT NOT NULL, meter_start_wh INTEGER NOT NULL, csms_id INTEGER, active INTEGER NOT NULL DEFAULT 1,
    last_meter_wh INTEGER NOT NULL, last_meter_at TEXT NOT NULL, stop_reason TEXT, stopped_at TEXT,
    meter_stop_wh INTEGER, stop_data TEXT NOT NULL DEFAULT '[]', parent_id_tag TEXT,
    authorized INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, local_tx_id INTEGER, payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE dead_letters (
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, local_tx_id INTEGER, payload TEXT NOT NULL, reason TEXT NOT NULL
);
CREATE TABLE auth_cache (id_tag TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE local_list (id_tag TEXT PRIMARY KEY, info TEXT NOT NULL);
"""


def test_a_file_from_before_the_station_key_keeps_its_state_and_stays_writable(tmp_path: Path) -> None:
    path = tmp_path / "agent.db"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_SCHEMA)
        old.execute("INSERT INTO settings VALUES ('heartbeat_interval_s', '120')")
        old.execute("INSERT INTO kv VALUES ('operative.1', '0')")
        old.execute(
            "INSERT INTO transactions (connector_id, id_tag, started_at, meter_start_wh, csms_id, last_meter_wh, "
            "last_meter_at) VALUES (1, 'TAG1', ?, 1000, 77, 1500, ?)",
            (T0.isoformat(), T0.isoformat()),
        )
        old.execute("INSERT INTO outbox (kind, local_tx_id, payload) VALUES ('meter', 1, '{}')")
        old.execute("INSERT INTO auth_cache VALUES ('TAG1', '{\"status\": \"accepted\"}')")
    old.close()

    store = Store(path)
    try:
        assert store.settings() == {"heartbeat_interval_s": "120"}
        assert store.get("operative.1") == "0"
        (tx,) = store.active_transactions()
        assert (tx.local_id, store.csms_transaction_id(1), tx.last_meter_wh) == (1, 77, 1500)
        assert tx.transaction_id == "local-1"  # a transaction from before station-made ids
        assert store.transaction_by_csms_id(77) is not None
        head = store.outbox_head()
        assert head is not None and head.kind == OutboxKind.METER
        assert store.cache_get("TAG1") is not None
        # Writes go through the old single-column primary keys (replace, not duplicate).
        store.put_setting("heartbeat_interval_s", "60")
        store.put("operative.1", "1")
        assert store.settings() == {"heartbeat_interval_s": "60"} and store.get("operative.1") == "1"
        assert store.end_transaction(1, TransactionEnded("local-1", 1, 2000, T0, StopReason.LOCAL))
        assert store.active_transactions() == []
    finally:
        store.close()
    # Opening it again does not migrate twice.
    Store(path).close()


def test_agents_sharing_one_file_see_only_their_own_rows(tmp_path: Path) -> None:
    shared = StoreFile(tmp_path / "fleet.db", durable=False)
    try:
        a, b = shared.store("CP-A"), shared.store("CP-B")
        a.put_setting("heartbeat_interval_s", "30")
        b.put_setting("heartbeat_interval_s", "90")
        a_tx = a.begin_transaction(TransactionStarted("TX-A", 1, "TAG-A", 0, T0))
        b_tx = b.begin_transaction(TransactionStarted("TX-B", 1, "TAG-B", 5, T0))
        a.cache_put("TAG-A", IdTagInfo(AuthStatus.ACCEPTED))
        assert a.settings() == {"heartbeat_interval_s": "30"} and b.settings() == {
            "heartbeat_interval_s": "90"
        }
        assert [t.id_tag for t in a.active_transactions()] == ["TAG-A"]
        assert [t.id_tag for t in b.active_transactions()] == ["TAG-B"]
        assert a.outbox_size() == b.outbox_size() == 1
        assert b.cache_get("TAG-A") is None
        # A's local id means nothing in B's rows.
        assert a_tx != b_tx and b.transaction(a_tx) is None and a.transaction(a_tx) is not None
        head = b.outbox_head()
        assert head is not None
        a.acknowledge(head.seq)  # another station's message: not A's to remove
        assert b.outbox_size() == 1
        a.close()  # closing one agent's store leaves the file open for the others
        assert b.outbox_size() == 1
    finally:
        shared.close()
