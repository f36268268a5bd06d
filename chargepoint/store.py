"""The agent's SQLite store (WAL): settings, availability, transactions, the outbox, auth cache, local list and
charging profiles.

Every write that the central system must eventually hear about is committed before it is sent, so a crash
or power cut loses nothing. sqlite3 errors are translated to StorageError at this boundary.

Every row carries a ``station`` key: an agent on a charger uses its own file with the key '' (files from before
the key existed are migrated on open); a virtual fleet keeps many agents in one ``StoreFile``, one key each, so
that a thousand agents do not need a thousand SQLite connections and file descriptors.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from chargepoint.core.model import IdTagInfo, StopReason
from chargepoint.core.smart_charging import ChargingProfile
from chargepoint.errors import StorageError

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (
    name TEXT NOT NULL, value TEXT NOT NULL, station TEXT NOT NULL DEFAULT '', PRIMARY KEY (station, name)
);
CREATE TABLE IF NOT EXISTS kv (
    key TEXT NOT NULL, value TEXT NOT NULL, station TEXT NOT NULL DEFAULT '', PRIMARY KEY (station, key)
);
CREATE TABLE IF NOT EXISTS transactions (
    local_id INTEGER PRIMARY KEY AUTOINCREMENT,
    connector_id INTEGER NOT NULL,
    id_tag TEXT NOT NULL,
    started_at TEXT NOT NULL,
    meter_start_wh INTEGER NOT NULL,
    csms_id INTEGER,
    active INTEGER NOT NULL DEFAULT 1,
    last_meter_wh INTEGER NOT NULL,
    last_meter_at TEXT NOT NULL,
    stop_reason TEXT,
    stopped_at TEXT,
    meter_stop_wh INTEGER,
    stop_data TEXT NOT NULL DEFAULT '[]',
    parent_id_tag TEXT,
    authorized INTEGER NOT NULL DEFAULT 1,
    station TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    local_tx_id INTEGER,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    station TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    local_tx_id INTEGER,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    station TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS auth_cache (
    id_tag TEXT NOT NULL, info TEXT NOT NULL, station TEXT NOT NULL DEFAULT '', PRIMARY KEY (station, id_tag)
);
CREATE TABLE IF NOT EXISTS local_list (
    id_tag TEXT NOT NULL, info TEXT NOT NULL, station TEXT NOT NULL DEFAULT '', PRIMARY KEY (station, id_tag)
);
CREATE TABLE IF NOT EXISTS charging_profiles (
    id INTEGER NOT NULL, profile TEXT NOT NULL, station TEXT NOT NULL DEFAULT '', PRIMARY KEY (station, id)
);
"""
# Files written before rows had a station key get the column (their single agent is station ''); their old
# single-column primary keys stay, which is right for one agent per file.
_KEYED_TABLES = (
    "settings",
    "kv",
    "transactions",
    "outbox",
    "dead_letters",
    "auth_cache",
    "local_list",
    "charging_profiles",
)
INDEXES = """
CREATE INDEX IF NOT EXISTS outbox_station ON outbox (station, seq);
CREATE INDEX IF NOT EXISTS transactions_active ON transactions (station, active);
CREATE INDEX IF NOT EXISTS transactions_csms ON transactions (station, csms_id);
"""


class _TooLarge(Exception):
    """Internal: an update would make the local list too long."""


class OutboxKind:
    """Kinds of queued transaction messages."""

    START = "start"
    STOP = "stop"
    METER = "meter"


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    """A transaction row."""

    local_id: int
    connector_id: int
    id_tag: str
    started_at: datetime
    meter_start_wh: int
    csms_id: int | None
    active: bool
    last_meter_wh: int
    last_meter_at: datetime
    stop_data: list[dict[str, Any]]
    parent_id_tag: str | None = None
    authorized: bool = True


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One queued message, in version-neutral form."""

    seq: int
    kind: str
    local_tx_id: int | None
    payload: dict[str, Any]
    attempts: int


def _tx(row: sqlite3.Row) -> StoredTransaction:
    return StoredTransaction(
        local_id=row["local_id"],
        connector_id=row["connector_id"],
        id_tag=row["id_tag"],
        started_at=datetime.fromisoformat(row["started_at"]),
        meter_start_wh=row["meter_start_wh"],
        csms_id=row["csms_id"],
        active=bool(row["active"]),
        last_meter_wh=row["last_meter_wh"],
        last_meter_at=datetime.fromisoformat(row["last_meter_at"]),
        stop_data=json.loads(row["stop_data"]),
        parent_id_tag=row["parent_id_tag"],
        authorized=bool(row["authorized"]),
    )


def _open(path: str, durable: bool) -> sqlite3.Connection:
    """Open (creating or migrating) a store file; raises StorageError."""
    try:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        if path != ":memory:":
            db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives a power cut, not only a process crash.
        db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        db.executescript(SCHEMA)
        for table in _KEYED_TABLES:
            columns = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
            if "station" not in columns:
                db.execute(f"ALTER TABLE {table} ADD COLUMN station TEXT NOT NULL DEFAULT ''")
        db.executescript(INDEXES)
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"cannot open store {path}: {exc}") from exc
    return db


class StoreFile:
    """One SQLite file (or ``:memory:``) shared by many agents' stores, each under its own station key."""

    def __init__(self, path: str | Path, *, durable: bool = True) -> None:
        self.path = str(path)
        self.db = _open(self.path, durable)

    def store(self, station: str, *, outbox_limit: int = 10_000) -> Store:
        """The store of one agent in this file (closing it leaves the file open)."""
        return Store(self.path, outbox_limit=outbox_limit, station=station, shared=self)

    def close(self) -> None:
        """Close the file (after every agent using it has stopped)."""
        self.db.close()


class Store:
    """Synchronous SQLite access; calls are short, so they run on the event loop thread."""

    def __init__(
        self,
        path: str | Path,
        *,
        durable: bool = True,
        outbox_limit: int = 10_000,
        station: str = "",
        shared: StoreFile | None = None,
    ) -> None:
        self.path = str(path)
        self.outbox_limit = outbox_limit
        self.station = station
        self._shared = shared
        self._db = shared.db if shared is not None else _open(self.path, durable)

    def close(self) -> None:
        """Close the database (a shared file stays open for the other agents)."""
        if self._shared is None:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction; any sqlite error becomes StorageError and rolls back."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                # SQLite may already have rolled back by itself (SQLITE_FULL does).
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StorageError(f"store write failed: {exc}") from exc

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"store read failed: {exc}") from exc

    # settings and small values
    def settings(self) -> dict[str, str]:
        """All persisted settings as text."""
        rows = self._read("SELECT name, value FROM settings WHERE station = ?", (self.station,))
        return {row["name"]: row["value"] for row in rows}

    def put_setting(self, name: str, value: str) -> None:
        """Persist one setting."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO settings (station, name, value) VALUES (?, ?, ?)",
                (self.station, name, value),
            )

    def get(self, key: str, default: str | None = None) -> str | None:
        """A small persisted value."""
        rows = self._read("SELECT value FROM kv WHERE station = ? AND key = ?", (self.station, key))
        return rows[0]["value"] if rows else default

    def put(self, key: str, value: str) -> None:
        """Persist a small value."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO kv (station, key, value) VALUES (?, ?, ?)", (self.station, key, value)
            )

    # transactions and the outbox
    def begin_transaction(
        self,
        connector_id: int,
        id_tag: str,
        started_at: datetime,
        meter_start_wh: int,
        start_event: dict[str, Any],
        parent_id_tag: str | None = None,
    ) -> int:
        """Record a new transaction and queue its start message, atomically; returns the local id."""
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO transactions (connector_id, id_tag, started_at, meter_start_wh, last_meter_wh, "
                "last_meter_at, parent_id_tag, station) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    connector_id,
                    id_tag,
                    started_at.isoformat(),
                    meter_start_wh,
                    meter_start_wh,
                    started_at.isoformat(),
                    parent_id_tag,
                    self.station,
                ),
            )
            local_id = cur.lastrowid
            assert local_id is not None
            self._enqueue(db, OutboxKind.START, local_id, start_event)
            return local_id

    def update_authorization(self, local_id: int, authorized: bool, parent_id_tag: str | None) -> None:
        """Remember what the CSMS said about a transaction's idTag (survives a power loss for resumption)."""
        with self._write() as db:
            db.execute(
                "UPDATE transactions SET authorized = ?, parent_id_tag = COALESCE(?, parent_id_tag) "
                "WHERE local_id = ? AND station = ?",
                (int(authorized), parent_id_tag, local_id, self.station),
            )

    def record_meter(
        self,
        local_id: int,
        energy_wh: int,
        at: datetime,
        *,
        message: dict[str, Any] | None = None,
        stop_data: dict[str, Any] | None = None,
    ) -> None:
        """Persist the last meter reading of a transaction, with an optional queued sample and stop-data entry."""
        with self._write() as db:
            db.execute(
                "UPDATE transactions SET last_meter_wh = MAX(last_meter_wh, ?), last_meter_at = ? "
                "WHERE local_id = ? AND station = ?",
                (energy_wh, at.isoformat(), local_id, self.station),
            )
            if stop_data is not None:
                db.execute(
                    "UPDATE transactions SET stop_data = json_insert(stop_data, '$[#]', json(?)) "
                    "WHERE local_id = ? AND station = ?",
                    (json.dumps(stop_data), local_id, self.station),
                )
            if message is not None:
                self._enqueue(db, OutboxKind.METER, local_id, message)

    def end_transaction(
        self,
        local_id: int,
        reason: StopReason,
        stopped_at: datetime,
        meter_stop_wh: int,
        stop_event: dict[str, Any],
    ) -> bool:
        """Mark a transaction ended and queue its stop message, atomically; False if it had already ended."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE transactions SET active = 0, stop_reason = ?, stopped_at = ?, meter_stop_wh = ?, "
                "last_meter_wh = MAX(last_meter_wh, ?) WHERE local_id = ? AND station = ? AND active = 1",
                (reason.value, stopped_at.isoformat(), meter_stop_wh, meter_stop_wh, local_id, self.station),
            )
            if cur.rowcount == 0:
                return False
            self._enqueue(db, OutboxKind.STOP, local_id, stop_event)
            return True

    def queue_meter_values(self, payload: dict[str, Any]) -> None:
        """Queue a MeterValues message that belongs to no transaction."""
        with self._write() as db:
            self._enqueue(db, OutboxKind.METER, None, payload)

    def _enqueue(
        self, db: sqlite3.Connection, kind: str, local_tx_id: int | None, payload: dict[str, Any]
    ) -> None:
        # Overflow policy: past the limit, the oldest intermediate MeterValues go first; start and stop
        # messages are never dropped, even if that means exceeding the limit.
        (count,) = db.execute("SELECT COUNT(*) FROM outbox WHERE station = ?", (self.station,)).fetchone()
        if count >= self.outbox_limit:
            oldest_meter = "(SELECT MIN(seq) FROM outbox WHERE station = ? AND kind = ?)"
            db.execute(
                "INSERT INTO dead_letters (seq, kind, local_tx_id, payload, reason, station) "
                "SELECT seq, kind, local_tx_id, payload, 'outbox overflow', station FROM outbox "
                f"WHERE seq = {oldest_meter}",
                (self.station, OutboxKind.METER),
            )
            db.execute(f"DELETE FROM outbox WHERE seq = {oldest_meter}", (self.station, OutboxKind.METER))
        db.execute(
            "INSERT INTO outbox (kind, local_tx_id, payload, station) VALUES (?, ?, ?, ?)",
            (kind, local_tx_id, json.dumps(payload, separators=(",", ":")), self.station),
        )

    def active_transactions(self) -> list[StoredTransaction]:
        """Transactions that have not ended."""
        rows = self._read(
            "SELECT * FROM transactions WHERE station = ? AND active = 1 ORDER BY local_id", (self.station,)
        )
        return [_tx(r) for r in rows]

    def transaction(self, local_id: int) -> StoredTransaction | None:
        """One transaction by local id."""
        rows = self._read(
            "SELECT * FROM transactions WHERE local_id = ? AND station = ?", (local_id, self.station)
        )
        return _tx(rows[0]) if rows else None

    def transaction_by_csms_id(self, csms_id: int) -> StoredTransaction | None:
        """The transaction the CSMS knows by ``csms_id``."""
        rows = self._read(
            "SELECT * FROM transactions WHERE station = ? AND csms_id = ? ORDER BY local_id DESC LIMIT 1",
            (self.station, csms_id),
        )
        return _tx(rows[0]) if rows else None

    def outbox_head(self) -> OutboxMessage | None:
        """The oldest queued message."""
        rows = self._read("SELECT * FROM outbox WHERE station = ? ORDER BY seq LIMIT 1", (self.station,))
        if not rows:
            return None
        r = rows[0]
        return OutboxMessage(r["seq"], r["kind"], r["local_tx_id"], json.loads(r["payload"]), r["attempts"])

    def outbox_size(self) -> int:
        """How many messages wait."""
        return int(self._read("SELECT COUNT(*) AS n FROM outbox WHERE station = ?", (self.station,))[0]["n"])

    def acknowledge(self, seq: int, *, csms_tx_id: int | None = None, local_tx_id: int | None = None) -> None:
        """Remove an acknowledged message; for a start message also record the CSMS transaction id."""
        with self._write() as db:
            if csms_tx_id is not None and local_tx_id is not None:
                db.execute(
                    "UPDATE transactions SET csms_id = ? WHERE local_id = ? AND station = ?",
                    (csms_tx_id, local_tx_id, self.station),
                )
            db.execute("DELETE FROM outbox WHERE seq = ? AND station = ?", (seq, self.station))

    def count_attempt(self, seq: int) -> int:
        """Count one failed delivery; returns the attempts so far."""
        with self._write() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1 WHERE seq = ? AND station = ?", (seq, self.station)
            )
            row = db.execute(
                "SELECT attempts FROM outbox WHERE seq = ? AND station = ?", (seq, self.station)
            ).fetchone()
            return int(row[0]) if row else 0

    def give_up(self, seq: int, reason: str) -> None:
        """Move a message the CSMS keeps refusing to the dead letters, where it stays for inspection."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO dead_letters (seq, kind, local_tx_id, payload, reason, station) "
                "SELECT seq, kind, local_tx_id, payload, ?, station FROM outbox WHERE seq = ? AND station = ?",
                (reason, seq, self.station),
            )
            db.execute("DELETE FROM outbox WHERE seq = ? AND station = ?", (seq, self.station))

    def dead_letters(self) -> list[dict[str, Any]]:
        """Messages given up on, oldest first."""
        rows = self._read(
            "SELECT seq, kind, local_tx_id, payload, reason FROM dead_letters WHERE station = ? ORDER BY seq",
            (self.station,),
        )
        return [dict(r) for r in rows]

    # authorization
    def cache_get(self, id_tag: str) -> IdTagInfo | None:
        """An authorization-cache entry."""
        rows = self._read(
            "SELECT info FROM auth_cache WHERE station = ? AND id_tag = ?", (self.station, id_tag)
        )
        return IdTagInfo.from_json(json.loads(rows[0]["info"])) if rows else None

    def cache_put(self, id_tag: str, info: IdTagInfo) -> None:
        """Add or update a cache entry."""
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO auth_cache (station, id_tag, info) VALUES (?, ?, ?)",
                (self.station, id_tag, json.dumps(info.to_json())),
            )

    def cache_clear(self) -> None:
        """Empty the authorization cache."""
        with self._write() as db:
            db.execute("DELETE FROM auth_cache WHERE station = ?", (self.station,))

    def local_get(self, id_tag: str) -> IdTagInfo | None:
        """A local-list entry."""
        rows = self._read(
            "SELECT info FROM local_list WHERE station = ? AND id_tag = ?", (self.station, id_tag)
        )
        return IdTagInfo.from_json(json.loads(rows[0]["info"])) if rows else None

    def local_list_version(self) -> int:
        """The version of the local list (0: none)."""
        return int(self.get("local_list_version", "0") or 0)

    def local_list_size(self) -> int:
        """Entries in the local list."""
        return int(
            self._read("SELECT COUNT(*) AS n FROM local_list WHERE station = ?", (self.station,))[0]["n"]
        )

    def local_list_update(
        self, version: int, full: bool, entries: dict[str, IdTagInfo | None], max_size: int | None = None
    ) -> bool:
        """Apply a local-list update: full replaces, differential upserts (None deletes); atomically.

        Returns False (and changes nothing) if the list would exceed ``max_size`` entries.
        """
        try:
            with self._write() as db:
                if full:
                    db.execute("DELETE FROM local_list WHERE station = ?", (self.station,))
                for id_tag, info in entries.items():
                    if info is None:
                        db.execute(
                            "DELETE FROM local_list WHERE station = ? AND id_tag = ?", (self.station, id_tag)
                        )
                    else:
                        db.execute(
                            "INSERT OR REPLACE INTO local_list (station, id_tag, info) VALUES (?, ?, ?)",
                            (self.station, id_tag, json.dumps(info.to_json())),
                        )
                    # Local-list entries never live in the cache too.
                    db.execute(
                        "DELETE FROM auth_cache WHERE station = ? AND id_tag = ?", (self.station, id_tag)
                    )
                if max_size is not None:
                    (size,) = db.execute(
                        "SELECT COUNT(*) FROM local_list WHERE station = ?", (self.station,)
                    ).fetchone()
                    if size > max_size:
                        raise _TooLarge  # rolls the whole update back
                db.execute(
                    "INSERT OR REPLACE INTO kv (station, key, value) VALUES (?, 'local_list_version', ?)",
                    (self.station, str(version)),
                )
        except _TooLarge:
            return False
        return True

    # smart charging
    def charging_profiles(self) -> list[ChargingProfile]:
        """Every installed charging profile."""
        rows = self._read(
            "SELECT profile FROM charging_profiles WHERE station = ? ORDER BY id", (self.station,)
        )
        return [ChargingProfile.from_json(json.loads(row["profile"])) for row in rows]

    def install_charging_profile(self, profile: ChargingProfile, replaces: list[int]) -> None:
        """Add a profile and remove the ones it replaces, atomically."""
        with self._write() as db:
            for old in replaces:
                db.execute("DELETE FROM charging_profiles WHERE station = ? AND id = ?", (self.station, old))
            db.execute(
                "INSERT OR REPLACE INTO charging_profiles (station, id, profile) VALUES (?, ?, ?)",
                (self.station, profile.id, json.dumps(profile.to_json())),
            )

    def delete_charging_profiles(self, ids: list[int]) -> None:
        """Remove profiles by id."""
        with self._write() as db:
            for old in ids:
                db.execute("DELETE FROM charging_profiles WHERE station = ? AND id = ?", (self.station, old))
