"""The store's connection, schema set-up and write/read plumbing."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from backend_stub.store.records import (
    SCHEMA_VERSION,
    ChargerStatus,
    Conflict,
    InvalidInput,
    StoreError,
    UnknownCharger,
    _ts,
    _utc_now,
)
from backend_stub.store.schema import (
    _ADDED_COLUMNS,
    _ADDED_INDEXES,
    MIGRATIONS,
    SCHEMA,
)


class StoreBase:
    """Synchronous repository over one SQLite file; safe to share between threads (calls are serialised)."""

    def __init__(
        self, path: str | Path, *, clock: Callable[[], datetime] = _utc_now, durable: bool = False
    ) -> None:
        """Open (creating if needed) the database and its schema; raises StoreError."""
        self.path = str(path)
        self._clock = clock
        self._lock = threading.RLock()
        # cp_id -> registration status, read per charger message (`ChargersStore.charger_status`); emptied by every
        # method that changes a status or adds or deletes a charger, under `_lock`.
        self._charger_statuses: dict[str, ChargerStatus] = {}
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        try:
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode never corrupts the database and loses nothing on a process crash (the
            # common failure: the WAL is in the OS page cache). Only an OS crash or power cut may undo the
            # last few commits. The CSMS runs on server hardware and must absorb thousands of MeterValues
            # per second, which one fsync per commit (FULL) would cap at the disk's fsync rate; pass
            # durable=True where losing an acknowledged top-up to a power cut is unacceptable.
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version}; this code knows {SCHEMA_VERSION}"
                )
            # An existing database is migrated in the same transaction that brings its schema up to date.
            migrations = "".join(
                MIGRATIONS[v] for v in range(version + 1, SCHEMA_VERSION + 1) if version and v in MIGRATIONS
            )
            self._db.executescript(f"BEGIN IMMEDIATE;\n{migrations}\n{SCHEMA}\nCOMMIT;")
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        except StoreError:
            self._db.close()
            raise
        self._add_columns()

    def _add_columns(self) -> None:
        """Add the columns of `_ADDED_COLUMNS` that an older store lacks (whatever its user_version)."""
        try:
            for table, column, declaration in _ADDED_COLUMNS:
                columns = {r["name"] for r in self._db.execute(f"PRAGMA table_info({table})").fetchall()}
                if column not in columns:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            for index in _ADDED_INDEXES:
                self._db.execute(index)
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        """Use the store as a context manager that closes it."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close the store."""
        self.close()

    # -- plumbing

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One atomic write transaction; any error rolls it back, sqlite3 errors become StoreError."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise StoreError(f"cannot begin write: {exc}") from exc
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException as exc:
                try:
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the original error is the one worth reporting
                if isinstance(exc, sqlite3.IntegrityError):
                    raise Conflict(f"store write rejected: {exc}") from exc
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"store write failed: {exc}") from exc
                if isinstance(exc, OverflowError):
                    raise InvalidInput(f"value out of range: {exc}") from exc
                raise

    def _read(self, sql: str, args: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, tuple(args)).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"store read failed: {exc}") from exc
            except OverflowError as exc:
                raise InvalidInput(f"value out of range: {exc}") from exc

    def _now(self) -> str:
        return _ts(self._clock(), "clock()")

    @staticmethod
    def _charger_row(db: sqlite3.Connection, cp_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = db.execute("SELECT * FROM chargers WHERE id = ?", (cp_id,)).fetchone()
        if row is None:
            raise UnknownCharger(f"unknown charger {cp_id!r}")
        return row

    @staticmethod
    def _card_row(db: sqlite3.Connection, id_tag: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = db.execute("SELECT * FROM cards WHERE id_tag = ?", (id_tag,)).fetchone()
        return row
