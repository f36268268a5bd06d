"""The agent's SQLite store (WAL): settings, availability, transactions, the outbox, auth cache, local list,
charging profiles and installed certificates. ``Store`` implements the core's storage port (``chargepoint.core.storage.Storage``).

Every write that the central system must eventually hear about is committed before it is sent, so a crash
or power cut loses nothing. sqlite3 errors are translated to StorageError at this boundary.

Every row carries a ``station`` key: an agent on a charger uses its own file with the key '' (files from before
the key existed are migrated on open); a virtual fleet keeps many agents in one ``StoreFile``, one key each, so
that a thousand agents do not need a thousand SQLite connections and file descriptors.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

from chargepoint.core.events import (
    FileEvent,
    OutboxKind,
    OutboxMessage,
    StationEvent,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
    encode,
)
from chargepoint.core.model import IdTagInfo, Sample
from chargepoint.core.reservations import Reservation
from chargepoint.core.smart_charging import ChargingProfile
from chargepoint.core.storage import (
    CertificateHashData,
    CertificateUse,
    InstalledCertificate,
    StoredTransaction,
)
from chargepoint.errors import StorageError

log = logging.getLogger(__name__)

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
    station TEXT NOT NULL DEFAULT '',
    sent_seq_no INTEGER NOT NULL DEFAULT 0,
    tx_id TEXT
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
CREATE TABLE IF NOT EXISTS reservations (
    id INTEGER NOT NULL, reservation TEXT NOT NULL, station TEXT NOT NULL DEFAULT '', PRIMARY KEY (station, id)
);
CREATE TABLE IF NOT EXISTS file_jobs (
    kind TEXT NOT NULL, job TEXT NOT NULL, station TEXT NOT NULL DEFAULT '', PRIMARY KEY (station, kind)
);
CREATE TABLE IF NOT EXISTS certificates (
    station TEXT NOT NULL DEFAULT '',
    use TEXT NOT NULL,
    hash_algorithm TEXT NOT NULL,
    issuer_name_hash TEXT NOT NULL,
    issuer_key_hash TEXT NOT NULL,
    serial_number TEXT NOT NULL,
    pem TEXT NOT NULL,
    installed_at TEXT NOT NULL,
    key_ref TEXT,
    PRIMARY KEY (station, use, hash_algorithm, issuer_name_hash, issuer_key_hash, serial_number)
);
"""
# The reservations, file_jobs and certificates tables are newer than some files: CREATE TABLE IF NOT EXISTS adds
# them to an older file on open and leaves every other table as it was, so older files stay readable.
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
CREATE INDEX IF NOT EXISTS transactions_tx ON transactions (station, tx_id);
"""


class _TooLarge(Exception):
    """Internal: an update would make the local list too long."""


def _tx(row: sqlite3.Row) -> StoredTransaction:
    return StoredTransaction(
        local_id=row["local_id"],
        connector_id=row["connector_id"],
        id_tag=row["id_tag"],
        started_at=datetime.fromisoformat(row["started_at"]),
        meter_start_wh=row["meter_start_wh"],
        transaction_id=row["tx_id"] or f"local-{row['local_id']}",
        active=bool(row["active"]),
        last_meter_wh=row["last_meter_wh"],
        last_meter_at=datetime.fromisoformat(row["last_meter_at"]),
        stop_data=tuple(Sample.from_json(s) for s in json.loads(row["stop_data"])),
        parent_id_tag=row["parent_id_tag"],
        authorized=bool(row["authorized"]),
    )


def _certificate(row: sqlite3.Row) -> InstalledCertificate:
    return InstalledCertificate(
        use=CertificateUse(row["use"]),
        pem=row["pem"],
        hash_data=CertificateHashData(
            issuer_name_hash=row["issuer_name_hash"],
            issuer_key_hash=row["issuer_key_hash"],
            serial_number=row["serial_number"],
            hash_algorithm=row["hash_algorithm"],
        ),
        installed_at=datetime.fromisoformat(row["installed_at"]),
        key_ref=row["key_ref"],
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
        tx_columns = {row["name"] for row in db.execute("PRAGMA table_info(transactions)")}
        if "sent_seq_no" not in tx_columns:  # files from before per-transaction sequence numbers
            db.execute("ALTER TABLE transactions ADD COLUMN sent_seq_no INTEGER NOT NULL DEFAULT 0")
        if "tx_id" not in tx_columns:  # files from before station-generated transaction ids
            db.execute("ALTER TABLE transactions ADD COLUMN tx_id TEXT")
            db.execute("UPDATE transactions SET tx_id = 'local-' || local_id WHERE tx_id IS NULL")
        db.executescript(INDEXES)
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"cannot open store {path}: {exc}") from exc
    return db


def _is_full(exc: BaseException) -> bool:
    """True for SQLite's disk-full and I/O errors (ENOSPC surfaces as either)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return isinstance(exc, sqlite3.Error) and code is not None and code & 0xFF in (sqlite3.SQLITE_FULL, 10)


def _translate(exc: Exception) -> Exception:
    if isinstance(exc, sqlite3.Error):
        error = StorageError(f"store write failed: {exc}")
        error.__cause__ = exc
        return error
    return exc


# Space kept free next to the store file for the writes that record running transactions (their meter register,
# their end, the outbox's progress): when the disk fills up, it is released so those still reach the disk while
# the connector is faulted and its relay opened (README, "What the agent guarantees").
RESERVE_BYTES = 256 * 1024
MAX_BATCH = 1000  # writes per group commit


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"))


class _Op:
    """One queued write: a function of the write connection, run inside the writer's transaction."""

    __slots__ = ("critical", "fn", "future", "index", "owner")

    def __init__(
        self, fn: Callable[[sqlite3.Connection], Any], critical: bool, owner: Store | None, index: int
    ) -> None:
        self.fn = fn
        self.critical = critical
        self.owner = owner
        self.index = index
        self.future: Future[Any] = Future()
        # A queued write is committed whatever its waiters do, and many tasks may wait on it (flush() waits on the
        # last write): a running future cannot be cancelled, so a waiter cancelled inside asyncio.wrap_future (a
        # sampler stopped, a link dropped) no longer cancels the write's future under every other waiter (a card's
        # stop then died with CancelledError and the transaction stayed open).
        self.future.set_running_or_notify_cancel()

    def fail(self, exc: Exception) -> None:
        if self.owner is not None:
            self.owner._write_failed(self.index, exc)
        self.future.set_exception(exc)

    def done(self, result: Any) -> None:
        self.future.set_result(result)


class StoreFile:
    """One SQLite file (or ``:memory:``) shared by many agents' stores, each under its own station key.

    Writes go to one writer thread per file, which commits everything queued while the previous commit was on its
    way to the disk in a single transaction with one fsync (group commit: a fleet of agents in one file, or a
    flood of configuration changes, costs one fsync per batch, and the event loop never waits for one). Each write
    runs in its own SAVEPOINT, so one that fails rolls back alone; if SQLite aborts the whole transaction (a full
    disk does), the writes of the batch are retried one by one so each gets its own answer.

    Reads run on a second, read-only WAL connection in the caller's thread: WAL readers never wait for the writer
    or its fsync. They see committed data only, so a read first waits for the writes its store has submitted and
    that are not committed yet (read-your-writes). The agent awaits ``Store.flush()`` before a read that follows its
    own writes, so on the event loop that wait is already over; synchronous callers (tests, tools) simply block.
    ``:memory:`` has nothing to fsync and cannot be opened twice: there, writes run at once in the caller's thread.
    """

    def __init__(self, path: str | Path, *, durable: bool = True, reserve_bytes: int = RESERVE_BYTES) -> None:
        self.path = str(path)
        self.memory = self.path == ":memory:"
        self._wdb = _open(self.path, durable)
        self.commits = 0  # group commits so far (tests and benchmarks)
        self.low_space = False  # the reserve was used up and could not be put back yet
        self._reserve_path = None if self.memory else Path(self.path + ".reserve")
        self._reserve_bytes = reserve_bytes
        try:
            row = self._wdb.execute(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'transactions'), 0), "
                "COALESCE((SELECT MAX(local_id) FROM transactions), 0))"
            ).fetchone()
            if self.memory:
                self.db = self._wdb
            else:
                self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self.db.row_factory = sqlite3.Row
                self.db.execute("PRAGMA query_only=1")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open store {path}: {exc}") from exc
        # Transaction ids are handed out here, so begin_transaction() can return one without waiting for its commit.
        self._next_local_id = int(row[0]) + 1
        self._queue: deque[_Op | None] = deque()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        if self._reserve_path is not None and not self._reserve_path.exists():
            self._restore_reserve()
        if not self.memory:
            self._thread = threading.Thread(target=self._run, name=f"store-writer:{self.path}", daemon=True)
            self._thread.start()

    def store(self, station: str, *, outbox_limit: int = 10_000) -> Store:
        """The store of one agent in this file (closing it leaves the file open)."""
        return Store(self.path, outbox_limit=outbox_limit, station=station, shared=self)

    def close(self) -> None:
        """Commit what is queued and close the file (after every agent using it has stopped)."""
        if self._thread is not None:
            with self._cond:
                self._queue.append(None)
                self._cond.notify()
            self._thread.join()
            self._thread = None
            self.db.close()
        self._wdb.close()

    def next_transaction_id(self) -> int:
        """A new transaction's local id (never reused, like AUTOINCREMENT)."""
        local_id = self._next_local_id
        self._next_local_id += 1
        return local_id

    def submit(self, op: _Op) -> None:
        """Queue a write for the writer thread (``:memory:``: run it now)."""
        if self._thread is None:
            self._commit([op])
            return
        with self._cond:
            self._queue.append(op)
            self._cond.notify()

    # the writer thread
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                batch: list[_Op] = []
                stop = False
                while self._queue and len(batch) < MAX_BATCH:
                    op = self._queue.popleft()
                    if op is None:
                        stop = True
                        break
                    batch.append(op)
            if batch:
                try:
                    self._commit(batch)
                except BaseException as exc:  # a bug here must not leave writers waiting forever
                    log.exception("store writer failed")
                    for op in batch:
                        if not op.future.done():
                            op.fail(StorageError(f"store writer failed: {exc}"))
            if stop:
                return

    def _commit(self, batch: list[_Op]) -> None:
        if self.low_space:
            self._restore_reserve()
        ops = []
        for op in batch:
            if self.low_space and not op.critical:
                op.fail(
                    StorageError(
                        "store write refused: the disk is full (its reserve is kept for transactions)"
                    )
                )
            else:
                ops.append(op)
        if not ops:
            return
        results = self._commit_group(ops)
        self.commits += 1
        if results is None:
            for op in ops:
                self._commit_one(op)
            return
        for op, (result, exc) in zip(ops, results, strict=True):
            if exc is None:
                op.done(result)
            else:
                op.fail(exc)

    def _rollback(self) -> None:
        try:
            if self._wdb.in_transaction:
                self._wdb.execute("ROLLBACK")
        except sqlite3.Error:
            log.debug("rollback failed", exc_info=True)

    def _commit_group(self, ops: list[_Op]) -> list[tuple[Any, Exception | None]] | None:
        """All ops in one transaction, each in a savepoint; None if the transaction as a whole failed."""
        db = self._wdb
        if len(ops) == 1:
            return self._commit_single(ops[0])
        out: list[tuple[Any, Exception | None]] = []
        try:
            db.execute("BEGIN IMMEDIATE")
            for op in ops:
                db.execute("SAVEPOINT op")
                try:
                    result = op.fn(db)
                except Exception as exc:
                    if not db.in_transaction or _is_full(exc):
                        self._rollback()
                        return None  # retried one by one: each gets its own answer (and the reserve)
                    db.execute("ROLLBACK TO op")
                    db.execute("RELEASE op")
                    out.append((None, _translate(exc)))
                    continue
                db.execute("RELEASE op")
                out.append((result, None))
            db.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
            return None
        return out

    def _commit_single(self, op: _Op) -> list[tuple[Any, Exception | None]] | None:
        """A batch of one (an idle store's every write): the transaction is the op's own, so it needs no savepoint
        (two statements of five fewer per write); the same answers as ``_commit_group``."""
        db = self._wdb
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = op.fn(db)
            except Exception as exc:
                aborted = not db.in_transaction or _is_full(exc)  # as in a group: retried by _commit_one
                self._rollback()
                return None if aborted else [(None, _translate(exc))]
            db.execute("COMMIT")
        except sqlite3.Error:
            self._rollback()
            return None
        return [(result, None)]

    def _commit_one(self, op: _Op) -> None:
        db = self._wdb
        for attempt in (1, 2):
            try:
                db.execute("BEGIN IMMEDIATE")
                result = op.fn(db)
                db.execute("COMMIT")
            except Exception as exc:
                self._rollback()
                if attempt == 1 and op.critical and _is_full(exc) and self._release_reserve():
                    continue
                op.fail(_translate(exc))
                return
            op.done(result)
            return

    def _release_reserve(self) -> bool:
        """Free the reserve for a write that records a running transaction; False if there is none left."""
        if self._reserve_path is None or not self._reserve_path.exists():
            return False
        log.error("the disk under %s is full: releasing its reserve for the running transactions", self.path)
        self._reserve_path.unlink(missing_ok=True)
        self.low_space = True
        return True

    def _restore_reserve(self) -> None:
        """(Re)create the reserve; while that fails, only writes for running transactions are taken."""
        assert self._reserve_path is not None
        tmp = self._reserve_path.with_name(self._reserve_path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                try:
                    os.posix_fallocate(fd, 0, self._reserve_bytes)
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                        raise
                    os.write(fd, b"\0" * self._reserve_bytes)  # a filesystem without fallocate
            finally:
                os.close(fd)
            os.replace(tmp, self._reserve_path)
        except OSError:
            tmp.unlink(missing_ok=True)
            self.low_space = True
            return
        if self.low_space:
            log.warning("space is back under %s: its reserve is restored", self.path)
        self.low_space = False


class Store:
    """One agent's view of a store file: writes are queued to the file's writer thread and return at once; reads
    see every write submitted before them (see StoreFile). ``await flush()`` where order or durability matters."""

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
        self._file = shared if shared is not None else StoreFile(self.path, durable=durable)
        self._db = self._file.db
        self._submitted = 0
        self._last: Future[Any] | None = None
        self._failed_index = -1
        self._last_error: Exception | None = None

    def close(self) -> None:
        """Commit what is queued and close the database (a shared file stays open for the other agents)."""
        if self._shared is None:
            self._file.close()
        else:
            self._wait()

    @property
    def low_space(self) -> bool:
        """The disk is full: only writes that record running transactions are taken (on the reserve)."""
        return self._file.low_space

    def mark(self) -> int:
        """A position in this store's writes, for ``flush(since=...)``."""
        return self._submitted

    def _submit(self, fn: Callable[[sqlite3.Connection], Any], *, critical: bool = False) -> Future[Any]:
        """Queue a write; ``critical`` ones record a running transaction and may use the disk's reserve."""
        op = _Op(fn, critical, self, self._submitted)
        self._submitted += 1
        self._last = op.future
        self._file.submit(op)
        return op.future

    def _write_failed(self, index: int, exc: Exception) -> None:
        # Called from the writer thread before the failed future is resolved.
        self._failed_index = max(self._failed_index, index)
        self._last_error = exc
        log.error("store write failed: %s", exc)

    async def flush(self, since: int | None = None) -> None:
        """Wait until every write submitted so far is committed (durable: synchronous=FULL), without blocking the
        loop; raise StorageError if one submitted at or after ``since`` (a ``mark()``) failed."""
        last = self._last
        if last is not None and not last.done():
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(last)
        self._forget(last)
        if since is not None and self._failed_index >= since:
            error = self._last_error
            raise StorageError(str(error)) from error

    def sync(self, since: int | None = None) -> None:
        """``flush()`` for synchronous callers (tests, tools): blocks; never call it on the event loop."""
        self._wait()
        if since is not None and self._failed_index >= since:
            error = self._last_error
            raise StorageError(str(error)) from error

    def _wait(self) -> None:
        """Block until this store's submitted writes are committed (read-your-writes for synchronous reads)."""
        last = self._last
        if last is not None and not last.done():
            with contextlib.suppress(Exception):
                last.result()
        self._forget(last)

    def _forget(self, last: Future[Any] | None) -> None:
        """Drop the last write's future once it is resolved (its threading.Condition is ~1.5 KB per agent)."""
        if last is not None and last.done() and self._last is last:
            self._last = None

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        self._wait()
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"store read failed: {exc}") from exc

    # settings and small values
    def settings(self) -> dict[str, str]:
        """All persisted settings as text."""
        rows = self._read("SELECT name, value FROM settings WHERE station = ?", (self.station,))
        return {row["name"]: row["value"] for row in rows}

    def put_setting(self, name: str, value: str) -> Future[Any]:
        """Persist one setting (queued)."""
        station = self.station
        return self._submit(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO settings (station, name, value) VALUES (?, ?, ?)",
                (station, name, value),
            )
        )

    def get(self, key: str, default: str | None = None) -> str | None:
        """A small persisted value."""
        rows = self._read("SELECT value FROM kv WHERE station = ? AND key = ?", (self.station, key))
        return rows[0]["value"] if rows else default

    def put(self, key: str, value: str) -> Future[Any]:
        """Persist a small value (queued)."""
        station = self.station
        return self._submit(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO kv (station, key, value) VALUES (?, ?, ?)", (station, key, value)
            )
        )

    # transactions and the outbox
    def begin_transaction(self, started: TransactionStarted, parent_id_tag: str | None = None) -> int:
        """Record a new transaction and queue its start event, atomically (queued: ``await flush(since=...)``
        before relying on it); returns the local id at once."""
        start_text = _dumps(
            encode(started)[1]
        )  # here: a payload that cannot be encoded fails the caller, not the writer
        local_id = self._file.next_transaction_id()
        tx_id, connector_id, id_tag = started.transaction_id, started.connector_id, started.id_tag
        started_at, meter_start_wh = started.timestamp, started.meter_start_wh
        reservation_id = started.reservation_id

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO transactions (local_id, tx_id, connector_id, id_tag, started_at, meter_start_wh, "
                "last_meter_wh, last_meter_at, parent_id_tag, station) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    local_id,
                    tx_id,
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
            self._enqueue(db, OutboxKind.START, local_id, start_text)
            if reservation_id is not None:
                # The transaction ends its reservation in the same commit (OCPP 1.6 §3.11): a crash leaves both
                # or neither.
                db.execute(
                    "DELETE FROM reservations WHERE station = ? AND id = ?", (self.station, reservation_id)
                )

        self._submit(write)
        return local_id

    def update_authorization(
        self, local_id: int, authorized: bool, parent_id_tag: str | None, *, id_tag: str | None = None
    ) -> Future[Any]:
        """Remember what the CSMS said about a transaction's idTag (survives a power loss for resumption)."""
        station = self.station
        return self._submit(
            lambda db: db.execute(
                "UPDATE transactions SET authorized = ?, parent_id_tag = COALESCE(?, parent_id_tag), "
                "id_tag = COALESCE(?, id_tag) WHERE local_id = ? AND station = ?",
                (int(authorized), parent_id_tag, id_tag, local_id, station),
            ),
            critical=True,
        )

    def record_meter(
        self,
        local_id: int,
        energy_wh: int,
        at: datetime,
        *,
        message: TransactionUpdated | None = None,
        stop_data: Sample | None = None,
    ) -> Future[Any]:
        """Persist the last meter reading of a transaction, with an optional queued sample and stop-data entry
        (queued; a running transaction's record may use the disk's reserve)."""
        message_text = _dumps(encode(message)[1]) if message is not None else None
        stop_text = json.dumps(stop_data.to_json()) if stop_data is not None else None

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE transactions SET last_meter_wh = MAX(last_meter_wh, ?), last_meter_at = ? "
                "WHERE local_id = ? AND station = ?",
                (energy_wh, at.isoformat(), local_id, self.station),
            )
            if stop_text is not None:
                db.execute(
                    "UPDATE transactions SET stop_data = json_insert(stop_data, '$[#]', json(?)) "
                    "WHERE local_id = ? AND station = ?",
                    (stop_text, local_id, self.station),
                )
            if message_text is not None:
                self._enqueue(db, OutboxKind.METER, local_id, message_text)

        return self._submit(write, critical=True)

    def end_transaction(self, local_id: int, ended: TransactionEnded) -> Future[bool]:
        """Mark a transaction ended and queue its end event, atomically (queued); the future says False if it
        had already ended."""
        stop_text = _dumps(encode(ended)[1])
        reason, stopped_at, meter_stop_wh = ended.reason, ended.timestamp, ended.meter_stop_wh

        def write(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE transactions SET active = 0, stop_reason = ?, stopped_at = ?, meter_stop_wh = ?, "
                "last_meter_wh = MAX(last_meter_wh, ?) WHERE local_id = ? AND station = ? AND active = 1",
                (reason.value, stopped_at.isoformat(), meter_stop_wh, meter_stop_wh, local_id, self.station),
            )
            if cur.rowcount == 0:
                return False
            self._enqueue(db, OutboxKind.STOP, local_id, stop_text)
            return True

        return self._submit(write, critical=True)

    def queue(self, event: StationEvent) -> Future[Any]:
        """Queue an event that belongs to no transaction."""
        kind, payload = encode(event)
        text = _dumps(payload)
        return self._submit(lambda db: self._enqueue(db, kind, None, text))

    def _enqueue(self, db: sqlite3.Connection, kind: str, local_tx_id: int | None, payload: str) -> None:
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
            (kind, local_tx_id, payload, self.station),
        )

    # file jobs (firmware update, diagnostics/log upload); the table is new, so older files simply gain it
    def file_job(self, kind: str) -> dict[str, Any] | None:
        """The persisted job of ``kind``, None if there is none (or it is unreadable: logged)."""
        rows = self._read("SELECT job FROM file_jobs WHERE station = ? AND kind = ?", (self.station, kind))
        if not rows:
            return None
        try:
            job = json.loads(rows[0]["job"])
        except ValueError:
            log.error("unreadable %s job in the store; ignored", kind)
            return None
        return job if isinstance(job, dict) else None

    def put_file_job(
        self, kind: str, job: dict[str, Any] | None, event: FileEvent | None = None
    ) -> Future[Any]:
        """Replace (None: remove) the job of ``kind`` and queue its status event, atomically (queued)."""
        station = self.station
        text = None if job is None else _dumps(job)
        queued = None if event is None else encode(event)

        def write(db: sqlite3.Connection) -> None:
            if text is None:
                db.execute("DELETE FROM file_jobs WHERE station = ? AND kind = ?", (station, kind))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO file_jobs (station, kind, job) VALUES (?, ?, ?)",
                    (station, kind, text),
                )
            if queued is not None:
                self._enqueue(db, queued[0], None, _dumps(queued[1]))

        return self._submit(write)

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

    def csms_transaction_id(self, local_id: int) -> int | None:
        """The OCPP 1.6 central system's integer id of a transaction (from its StartTransaction.conf), if any."""
        rows = self._read(
            "SELECT csms_id FROM transactions WHERE local_id = ? AND station = ?", (local_id, self.station)
        )
        return int(rows[0]["csms_id"]) if rows and rows[0]["csms_id"] is not None else None

    def transaction_by_csms_id(self, csms_id: int) -> StoredTransaction | None:
        """The transaction the 1.6 central system knows by ``csms_id``."""
        rows = self._read(
            "SELECT * FROM transactions WHERE station = ? AND csms_id = ? ORDER BY local_id DESC LIMIT 1",
            (self.station, csms_id),
        )
        return _tx(rows[0]) if rows else None

    def transaction_by_id(self, transaction_id: str) -> StoredTransaction | None:
        """The transaction the station named ``transaction_id``."""
        rows = self._read(
            "SELECT * FROM transactions WHERE station = ? AND tx_id = ? ORDER BY local_id DESC LIMIT 1",
            (self.station, transaction_id),
        )
        return _tx(rows[0]) if rows else None

    def queued_transaction_messages(self, transaction_id: str | None = None) -> int:
        """How many messages of the transaction ``transaction_id`` (None: of any transaction) wait in the outbox."""
        if transaction_id is None:
            rows = self._read(
                "SELECT COUNT(*) AS n FROM outbox WHERE station = ? AND local_tx_id IS NOT NULL",
                (self.station,),
            )
        else:
            rows = self._read(
                "SELECT COUNT(*) AS n FROM outbox o JOIN transactions t "
                "ON t.local_id = o.local_tx_id AND t.station = o.station WHERE o.station = ? AND t.tx_id = ?",
                (self.station, transaction_id),
            )
        return int(rows[0]["n"])

    def outbox_head(self) -> OutboxMessage | None:
        """The oldest queued message."""
        rows = self._read(
            "SELECT o.*, t.sent_seq_no FROM outbox o LEFT JOIN transactions t "
            "ON t.local_id = o.local_tx_id AND t.station = o.station "
            "WHERE o.station = ? ORDER BY o.seq LIMIT 1",
            (self.station,),
        )
        if not rows:
            return None
        r = rows[0]
        seq_no = None if r["local_tx_id"] is None else int(r["sent_seq_no"] or 0)
        return OutboxMessage(
            r["seq"], r["kind"], r["local_tx_id"], json.loads(r["payload"]), r["attempts"], seq_no
        )

    def outbox_size(self) -> int:
        """How many messages wait."""
        return int(self._read("SELECT COUNT(*) AS n FROM outbox WHERE station = ?", (self.station,))[0]["n"])

    def acknowledge(
        self, seq: int, *, csms_tx_id: int | None = None, local_tx_id: int | None = None
    ) -> Future[Any]:
        """Remove an acknowledged message and count it in its transaction's sequence numbers; for a start message
        also record the CSMS transaction id (queued; idempotent: a second acknowledgement finds no message)."""
        station = self.station

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE transactions SET sent_seq_no = sent_seq_no + 1 WHERE station = ? AND local_id = "
                "(SELECT local_tx_id FROM outbox WHERE seq = ? AND station = ?)",
                (station, seq, station),
            )
            if csms_tx_id is not None and local_tx_id is not None:
                db.execute(
                    "UPDATE transactions SET csms_id = ? WHERE local_id = ? AND station = ?",
                    (csms_tx_id, local_tx_id, station),
                )
            db.execute("DELETE FROM outbox WHERE seq = ? AND station = ?", (seq, station))

        return self._submit(write, critical=True)

    def count_attempt(self, seq: int) -> Future[int]:
        """Count one failed delivery (queued); the future gives the attempts so far."""
        station = self.station

        def write(db: sqlite3.Connection) -> int:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1 WHERE seq = ? AND station = ?", (seq, station)
            )
            row = db.execute(
                "SELECT attempts FROM outbox WHERE seq = ? AND station = ?", (seq, station)
            ).fetchone()
            return int(row[0]) if row else 0

        return self._submit(write, critical=True)

    def give_up(self, seq: int, reason: str) -> Future[Any]:
        """Move a message the CSMS keeps refusing to the dead letters, where it stays for inspection (queued)."""
        station = self.station

        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR REPLACE INTO dead_letters (seq, kind, local_tx_id, payload, reason, station) "
                "SELECT seq, kind, local_tx_id, payload, ?, station FROM outbox WHERE seq = ? AND station = ?",
                (reason, seq, station),
            )
            db.execute("DELETE FROM outbox WHERE seq = ? AND station = ?", (seq, station))

        return self._submit(write, critical=True)

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

    def cache_put(self, id_tag: str, info: IdTagInfo) -> Future[Any]:
        """Add or update a cache entry (queued)."""
        row = (self.station, id_tag, json.dumps(info.to_json()))
        return self._submit(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO auth_cache (station, id_tag, info) VALUES (?, ?, ?)", row
            )
        )

    def cache_clear(self) -> Future[Any]:
        """Empty the authorization cache (queued)."""
        station = self.station
        return self._submit(lambda db: db.execute("DELETE FROM auth_cache WHERE station = ?", (station,)))

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

    def local_list_bytes(self) -> int:
        """The bytes the local list's entries take (ids and their info as stored)."""
        rows = self._read(
            "SELECT COALESCE(SUM(length(CAST(id_tag AS BLOB)) + length(CAST(info AS BLOB))), 0) AS n "
            "FROM local_list WHERE station = ?",
            (self.station,),
        )
        return int(rows[0]["n"])

    def local_list_update(
        self, version: int, full: bool, entries: dict[str, IdTagInfo | None], max_size: int | None = None
    ) -> bool:
        """Apply a local-list update: full replaces, differential upserts (None deletes); atomically.

        Returns False (and changes nothing) if the list would exceed ``max_size`` entries. The size is checked
        here, against the list as it will be once the writes before this one are committed, so the answer needs
        no commit; the write itself is queued (``await flush()`` before reporting it durable).
        """
        station = self.station
        if max_size is not None:
            current = (
                set()
                if full
                else {
                    r["id_tag"]
                    for r in self._read("SELECT id_tag FROM local_list WHERE station = ?", (station,))
                }
            )
            for id_tag, info in entries.items():
                if info is None:
                    current.discard(id_tag)
                else:
                    current.add(id_tag)
            if len(current) > max_size:
                return False
        rows = {k: (json.dumps(v.to_json()) if v is not None else None) for k, v in entries.items()}

        def write(db: sqlite3.Connection) -> None:
            if full:
                db.execute("DELETE FROM local_list WHERE station = ?", (station,))
            for id_tag, info in rows.items():
                if info is None:
                    db.execute("DELETE FROM local_list WHERE station = ? AND id_tag = ?", (station, id_tag))
                else:
                    db.execute(
                        "INSERT OR REPLACE INTO local_list (station, id_tag, info) VALUES (?, ?, ?)",
                        (station, id_tag, info),
                    )
                # Local-list entries never live in the cache too.
                db.execute("DELETE FROM auth_cache WHERE station = ? AND id_tag = ?", (station, id_tag))
            if max_size is not None:
                (size,) = db.execute(
                    "SELECT COUNT(*) FROM local_list WHERE station = ?", (station,)
                ).fetchone()
                if size > max_size:
                    raise _TooLarge  # checked above already; rolls this write back if that ever disagrees
            db.execute(
                "INSERT OR REPLACE INTO kv (station, key, value) VALUES (?, 'local_list_version', ?)",
                (station, str(version)),
            )

        self._submit(write)
        return True

    # smart charging
    def charging_profiles(self) -> list[ChargingProfile]:
        """Every installed charging profile."""
        rows = self._read(
            "SELECT profile FROM charging_profiles WHERE station = ? ORDER BY id", (self.station,)
        )
        return [ChargingProfile.from_json(json.loads(row["profile"])) for row in rows]

    def install_charging_profile(self, profile: ChargingProfile, replaces: list[int]) -> Future[Any]:
        """Add a profile and remove the ones it replaces, atomically (queued)."""
        station, text = self.station, json.dumps(profile.to_json())

        def write(db: sqlite3.Connection) -> None:
            for old in replaces:
                db.execute("DELETE FROM charging_profiles WHERE station = ? AND id = ?", (station, old))
            db.execute(
                "INSERT OR REPLACE INTO charging_profiles (station, id, profile) VALUES (?, ?, ?)",
                (station, profile.id, text),
            )

        return self._submit(write)

    def delete_charging_profiles(self, ids: list[int]) -> Future[Any]:
        """Remove profiles by id (queued)."""
        return self._delete_by_id("charging_profiles", ids)

    def _delete_by_id(self, table: str, ids: list[int]) -> Future[Any]:
        """Remove rows of ``table`` (a constant of ours, never input) by their ``id`` column (queued)."""
        station, ids = self.station, list(ids)

        def write(db: sqlite3.Connection) -> None:
            for old in ids:
                db.execute(f"DELETE FROM {table} WHERE station = ? AND id = ?", (station, old))

        return self._submit(write)

    # certificates
    def installed_certificates(self, use: CertificateUse | None = None) -> list[InstalledCertificate]:
        """Installed certificates of one use (every use if None), oldest first."""
        if use is None:
            rows = self._read(
                "SELECT * FROM certificates WHERE station = ? ORDER BY installed_at, rowid", (self.station,)
            )
        else:
            rows = self._read(
                "SELECT * FROM certificates WHERE station = ? AND use = ? ORDER BY installed_at, rowid",
                (self.station, use.value),
            )
        return [_certificate(row) for row in rows]

    def install_certificate(self, certificate: InstalledCertificate) -> Future[Any]:
        """Add a certificate (the same use and hash data replaces it; a ChargePointCertificate chain replaces the
        previous chain) (queued)."""
        station, h = self.station, certificate.hash_data.normalized()
        row = (
            station,
            certificate.use.value,
            h.hash_algorithm,
            h.issuer_name_hash,
            h.issuer_key_hash,
            h.serial_number,
            certificate.pem,
            certificate.installed_at.isoformat(),
            certificate.key_ref,
        )

        def write(db: sqlite3.Connection) -> None:
            if certificate.use is CertificateUse.CHARGE_POINT:  # one own chain at a time
                db.execute(
                    "DELETE FROM certificates WHERE station = ? AND use = ?", (station, certificate.use.value)
                )
            db.execute(
                "INSERT OR REPLACE INTO certificates (station, use, hash_algorithm, issuer_name_hash, "
                "issuer_key_hash, serial_number, pem, installed_at, key_ref) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        return self._submit(write)

    def delete_certificate(self, hash_data: CertificateHashData) -> Future[bool]:
        """Remove the certificates with this hash data, of any use (queued); the future says False if none."""
        station, h = self.station, hash_data.normalized()

        def write(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "DELETE FROM certificates WHERE station = ? AND hash_algorithm = ? AND issuer_name_hash = ? "
                "AND issuer_key_hash = ? AND serial_number = ?",
                (station, h.hash_algorithm, h.issuer_name_hash, h.issuer_key_hash, h.serial_number),
            )
            return cur.rowcount > 0

        return self._submit(write)

    # reservations
    def reservations(self) -> list[Reservation]:
        """Every stored reservation (expired ones too: the book ends those at start-up)."""
        rows = self._read(
            "SELECT reservation FROM reservations WHERE station = ? ORDER BY id", (self.station,)
        )
        return [Reservation.from_json(json.loads(row["reservation"])) for row in rows]

    def put_reservation(self, reservation: Reservation) -> Future[Any]:
        """Add a reservation or replace the one with its id (queued)."""
        row = (self.station, reservation.reservation_id, json.dumps(reservation.to_json()))
        return self._submit(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO reservations (station, id, reservation) VALUES (?, ?, ?)", row
            )
        )

    def delete_reservations(self, ids: list[int]) -> Future[Any]:
        """Remove reservations by id (queued)."""
        return self._delete_by_id("reservations", ids)
