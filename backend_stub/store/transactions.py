"""Transactions with their meter samples, charged once at their stop."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from backend_stub.store.accounts import AccountsStore
from backend_stub.store.records import (
    ENERGY_REGISTER,
    MAX_AMOUNT_MINOR,
    MAX_METER_WH,
    MAX_SAMPLE_VALUE,
    MAX_STATION_TX_ID_LENGTH,
    MAX_UNAUTHORIZED_STARTS,
    AuthStatus,
    CostFn,
    ForeignTransaction,
    InvalidInput,
    LedgerEntry,
    LedgerKind,
    MeterSample,
    StopResult,
    Transaction,
    UnauthorizedStart,
    UnknownTransaction,
    _dt,
    _entry,
    _enum,
    _id_tag,
    _int,
    _opt_text,
    _text,
    _transaction,
    _ts,
)


class TransactionsStore(AccountsStore):
    """Transactions with their meter samples, charged once at their stop."""

    # -- transactions

    def start_transaction(
        self,
        cp_id: str,
        connector_id: int,
        id_tag: str,
        meter_start_wh: int,
        timestamp: datetime,
        *,
        id_tag_status: AuthStatus | str | None = None,
        station_tx_id: str | None = None,
    ) -> int:
        """Record a StartTransaction and return its id; a resent identical start gets the same id.

        ``station_tx_id`` is the charger's own id of the transaction (OCPP 2.0.1): a start with one the charger
        has used already gets that transaction's id.
        """
        _opt_text(station_tx_id, "station_tx_id", max_len=MAX_STATION_TX_ID_LENGTH)
        _int(connector_id, "connector_id", low=1, high=10_000)
        _id_tag(id_tag)
        _int(meter_start_wh, "meter_start_wh", low=0, high=MAX_METER_WH)
        status = None if id_tag_status is None else _enum(AuthStatus, str(id_tag_status), "id_tag_status")
        at = _ts(timestamp)
        with self._write() as db:
            self._charger_row(db, cp_id)
            if station_tx_id is not None:
                row = db.execute(
                    "SELECT id FROM transactions WHERE cp_id = ? AND station_tx_id = ?",
                    (cp_id, station_tx_id),
                ).fetchone()
                if row is not None:
                    return int(row["id"])
            row = db.execute(
                "SELECT id FROM transactions WHERE cp_id = ? AND connector_id = ? AND id_tag = ? "
                "AND started_at = ? AND meter_start_wh = ?",
                (cp_id, connector_id, id_tag, at, meter_start_wh),
            ).fetchone()
            if row is not None:
                return int(row["id"])
            # AUTOINCREMENT: ids are never reused, so a charger's stale id cannot hit a newer session.
            cur = db.execute(
                "INSERT INTO transactions (cp_id, connector_id, id_tag, meter_start_wh, started_at, last_meter_wh, "
                "id_tag_status, station_tx_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (cp_id, connector_id, id_tag, meter_start_wh, at, meter_start_wh, status, station_tx_id),
            )
            return int(cur.lastrowid or 0)

    def station_transaction(self, cp_id: str, station_tx_id: str) -> int:
        """The id of ``cp_id``'s transaction that it calls ``station_tx_id``.

        Raises ForeignTransaction if only other chargers use that id, UnknownTransaction if none does.
        """
        _text(station_tx_id, "station_tx_id", max_len=MAX_STATION_TX_ID_LENGTH)
        rows = self._read(
            "SELECT id, cp_id FROM transactions WHERE station_tx_id = ? ORDER BY cp_id = ? DESC LIMIT 1",
            (station_tx_id, cp_id),
        )
        if rows and rows[0]["cp_id"] == cp_id:
            return int(rows[0]["id"])
        if rows:
            raise ForeignTransaction(f"transaction {station_tx_id!r} is not one of {cp_id!r}'s")
        raise UnknownTransaction(f"unknown transaction {station_tx_id!r}")

    def hold_unauthorized_start(
        self, cp_id: str, station_tx_id: str, evse: int, meter_start_wh: int, at: datetime, seq_no: int
    ) -> UnauthorizedStart:
        """Keep (or, repeated, update the sequence number of) a transaction ``cp_id`` started without an idToken;
        the first start's meter reading and time stay. At most MAX_UNAUTHORIZED_STARTS per charger."""
        _text(station_tx_id, "station_tx_id", max_len=MAX_STATION_TX_ID_LENGTH)
        _int(evse, "evse", low=1, high=10_000)
        _int(meter_start_wh, "meter_start_wh", low=0, high=MAX_METER_WH)
        _int(seq_no, "seq_no", low=0, high=2**31 - 1)
        row = (cp_id, station_tx_id, evse, meter_start_wh, _ts(at), seq_no, self._now())
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute(
                "INSERT INTO unauthorized_starts (cp_id, station_tx_id, evse, meter_start_wh, started_at, "
                "last_seq_no, received_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (cp_id, station_tx_id) "
                "DO UPDATE SET last_seq_no = max(last_seq_no, excluded.last_seq_no)",
                row,
            )
            db.execute(
                "DELETE FROM unauthorized_starts WHERE cp_id = ? AND station_tx_id NOT IN (SELECT station_tx_id "
                "FROM unauthorized_starts WHERE cp_id = ? ORDER BY received_at DESC, rowid DESC LIMIT ?)",
                (cp_id, cp_id, MAX_UNAUTHORIZED_STARTS),
            )
            held = db.execute(
                "SELECT * FROM unauthorized_starts WHERE cp_id = ? AND station_tx_id = ?",
                (cp_id, station_tx_id),
            ).fetchone()
        return _unauthorized_start(held)

    def unauthorized_start(self, cp_id: str, station_tx_id: str) -> UnauthorizedStart | None:
        """``cp_id``'s transaction ``station_tx_id`` started without an idToken and not yet authorized, or None."""
        rows = self._read(
            "SELECT * FROM unauthorized_starts WHERE cp_id = ? AND station_tx_id = ?", (cp_id, station_tx_id)
        )
        return _unauthorized_start(rows[0]) if rows else None

    def drop_unauthorized_start(self, cp_id: str, station_tx_id: str) -> None:
        """Forget a held start (it became a transaction, or ended without an idToken)."""
        with self._write() as db:
            db.execute(
                "DELETE FROM unauthorized_starts WHERE cp_id = ? AND station_tx_id = ?",
                (cp_id, station_tx_id),
            )

    def record_seq_no(self, cp_id: str, transaction_id: int, seq_no: int) -> int | None:
        """Keep the highest message sequence number of ``cp_id``'s own transaction; the previous highest."""
        return self.add_event_meter_values(cp_id, transaction_id, seq_no, ())

    def set_id_tag_status(self, cp_id: str, transaction_id: int, status: AuthStatus | str) -> None:
        """Record the idTagInfo status a charger's StartTransaction was finally answered with."""
        value = _enum(AuthStatus, str(status), "status")
        with self._write() as db:
            self._own_transaction_row(db, cp_id, transaction_id)
            db.execute("UPDATE transactions SET id_tag_status = ? WHERE id = ?", (value, transaction_id))

    @staticmethod
    def _own_transaction_row(db: sqlite3.Connection, cp_id: str, transaction_id: int) -> sqlite3.Row:
        """The transaction ``transaction_id`` of charger ``cp_id``; raises ForeignTransaction or UnknownTransaction.

        Every OCPP message acts only on its sender's own data: a transaction is looked up by (charger, id).
        """
        _int(transaction_id, "transaction_id", low=-(2**63), high=2**63 - 1)
        row: sqlite3.Row | None = db.execute(
            "SELECT * FROM transactions WHERE id = ? AND cp_id = ?", (transaction_id, cp_id)
        ).fetchone()
        if row is not None:
            return row
        if db.execute("SELECT 1 FROM transactions WHERE id = ?", (transaction_id,)).fetchone() is not None:
            raise ForeignTransaction(f"transaction {transaction_id!r} is not one of {cp_id!r}'s")
        raise UnknownTransaction(f"unknown transaction {transaction_id!r}")

    def transaction(self, transaction_id: int) -> Transaction:
        """The transaction; raises UnknownTransaction."""
        rows = self._read("SELECT * FROM transactions WHERE id = ?", (transaction_id,))
        if not rows:
            raise UnknownTransaction(f"unknown transaction {transaction_id!r}")
        return _transaction(rows[0])

    def active_transactions(self, cp_id: str | None = None) -> list[Transaction]:
        """Transactions without a stop, all or of one charger."""
        sql = "SELECT * FROM transactions WHERE stopped_at IS NULL"
        args: tuple[object, ...] = ()
        if cp_id is not None:
            sql, args = sql + " AND cp_id = ?", (cp_id,)
        return [_transaction(r) for r in self._read(sql + " ORDER BY id", args)]

    def recent_transactions(
        self,
        *,
        cp_id: str | None = None,
        user_id: int | None = None,
        id_tag: str | None = None,
        started_from: datetime | None = None,
        started_before: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Transaction]:
        """Transactions newest first, optionally only of one charger, of one user's cards or of one card, and
        only those started in [started_from, started_before); ``offset`` skips that many (paging)."""
        _int(limit, "limit", low=1, high=100_001)
        _int(offset, "offset", low=0, high=10_000_000)
        clauses: list[str] = []
        args: list[object] = []
        # started_at is fixed-width UTC text (records._ts), so text order is time order.
        if started_from is not None:
            clauses.append("t.started_at >= ?")
            args.append(_ts(started_from, "started_from"))
        if started_before is not None:
            clauses.append("t.started_at < ?")
            args.append(_ts(started_before, "started_before"))
        if cp_id is not None:
            clauses.append("t.cp_id = ?")
            args.append(cp_id)
        if user_id is not None:
            clauses.append("t.id_tag IN (SELECT id_tag FROM cards WHERE user_id = ?)")
            args.append(user_id)
        if id_tag is not None:
            clauses.append("t.id_tag = ?")
            args.append(id_tag)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(
            f"SELECT t.* FROM transactions t{where} ORDER BY t.id DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return [_transaction(r) for r in rows]

    def user_entries(self, user_id: int, limit: int = 500) -> list[LedgerEntry]:
        """Ledger entries of all of a user's cards, newest first."""
        _int(limit, "limit", low=1, high=100_000)
        rows = self._read(
            "SELECT * FROM ledger WHERE id_tag IN (SELECT id_tag FROM cards WHERE user_id = ?) "
            "ORDER BY id DESC LIMIT ?",
            (user_id, limit),
        )
        return [_entry(r) for r in rows]

    def add_meter_values(self, cp_id: str, transaction_id: int, samples: Sequence[MeterSample]) -> int:
        """Store samples of ``cp_id``'s own transaction (duplicates ignored) and return how many were new.

        Raises ForeignTransaction for another charger's transaction, UnknownTransaction for none.
        """
        with self._write() as db:
            self._own_transaction_row(db, cp_id, transaction_id)
            return self._insert_samples(db, transaction_id, samples)

    def add_event_meter_values(
        self, cp_id: str, transaction_id: int, seq_no: int, samples: Sequence[MeterSample]
    ) -> int | None:
        """`add_meter_values` and `record_seq_no` in one write (an OCPP 2.0.1 TransactionEvent); the previous
        highest sequence number."""
        _int(seq_no, "seq_no", low=0, high=2**31 - 1)
        with self._write() as db:
            row = self._own_transaction_row(db, cp_id, transaction_id)
            previous: int | None = row["last_seq_no"]
            if previous is None or seq_no > previous:
                db.execute("UPDATE transactions SET last_seq_no = ? WHERE id = ?", (seq_no, transaction_id))
            self._insert_samples(db, transaction_id, samples)
            return previous

    def meter_values(self, transaction_id: int) -> list[MeterSample]:
        """A transaction's samples in time order."""
        rows = self._read(
            "SELECT * FROM meter_values WHERE transaction_id = ? "
            "ORDER BY timestamp, measurand, phase, location, context, unit",
            (transaction_id,),
        )
        return [
            MeterSample(
                timestamp=_dt(r["timestamp"]),
                value=r["value"],
                measurand=r["measurand"],
                unit=r["unit"] or None,
                phase=r["phase"] or None,
                context=r["context"] or None,
                location=r["location"] or None,
            )
            for r in rows
        ]

    @staticmethod
    def _insert_samples(db: sqlite3.Connection, transaction_id: int, samples: Sequence[MeterSample]) -> int:
        rows = []
        for s in samples:
            if not isinstance(s, MeterSample):
                raise InvalidInput(f"samples must be MeterSample, got {s!r}")
            if (
                isinstance(s.value, bool)
                or not isinstance(s.value, int | float)
                or not math.isfinite(s.value)
                or abs(s.value) > MAX_SAMPLE_VALUE
            ):
                raise InvalidInput(
                    f"sample value must be a finite number of at most {MAX_SAMPLE_VALUE:g}, got {s.value!r}"
                )
            _text(s.measurand, "measurand", max_len=255)
            _opt_text(s.unit, "unit", max_len=255)
            _opt_text(s.phase, "phase", max_len=255)
            _opt_text(s.context, "context", max_len=255)
            _opt_text(s.location, "location", max_len=255)
            rows.append(
                (
                    transaction_id,
                    _ts(s.timestamp),
                    s.measurand,
                    s.phase or "",
                    s.location or "",
                    s.context or "",
                    s.unit or "",
                    float(s.value),
                )
            )
        before = db.total_changes
        # Samples are the same only when every identifying field is (a resent frame); samples that differ only
        # in location, context or unit are different readings.
        db.executemany(
            "INSERT OR IGNORE INTO meter_values "
            "(transaction_id, timestamp, measurand, phase, location, context, unit, value) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        added = db.total_changes - before
        # The billing register is the charger's own meter: location Outlet, the default (OCPP 1.6 §7.45), not
        # what an EV or the inlet reports.
        latest = db.execute(
            "SELECT value, unit FROM meter_values WHERE transaction_id = ? AND measurand = ? AND phase = '' "
            "AND location IN ('', 'Outlet') AND unit IN ('Wh', 'kWh') ORDER BY timestamp DESC LIMIT 1",
            (transaction_id, ENERGY_REGISTER),
        ).fetchone()
        if latest is not None:
            scale = 1000 if latest["unit"] == "kWh" else 1
            db.execute(
                "UPDATE transactions SET last_meter_wh = ? WHERE id = ?",
                (round(latest["value"] * scale), transaction_id),
            )
        return added

    def stop_transaction(
        self,
        cp_id: str,
        transaction_id: int,
        meter_stop_wh: int,
        timestamp: datetime,
        reason: str | None,
        cost_fn: CostFn,
        *,
        samples: Sequence[MeterSample] = (),
    ) -> StopResult:
        """Stop, price and charge ``cp_id``'s own transaction in one SQLite transaction; a repeat charges nothing.

        Raises ForeignTransaction for another charger's transaction (nothing is written), UnknownTransaction
        for none.
        """
        _int(meter_stop_wh, "meter_stop_wh", low=0, high=MAX_METER_WH)
        at = _ts(timestamp)
        _opt_text(reason, "reason", max_len=255)
        with self._write() as db:
            row = self._own_transaction_row(db, cp_id, transaction_id)
            key = f"charge:{transaction_id}"
            if row["stopped_at"] is not None:
                charged = db.execute("SELECT * FROM ledger WHERE idempotency_key = ?", (key,)).fetchone()
                return StopResult(True, _transaction(row), None if charged is None else _entry(charged))
            self._insert_samples(db, transaction_id, samples)
            db.execute(
                "UPDATE transactions SET meter_stop_wh = ?, last_meter_wh = ?, stopped_at = ?, stop_reason = ? "
                "WHERE id = ?",
                (meter_stop_wh, meter_stop_wh, at, reason, transaction_id),
            )
            stopped = _transaction(
                db.execute("SELECT * FROM transactions WHERE id = ?", (transaction_id,)).fetchone()
            )
            cost_minor, cdr_json = cost_fn(stopped)
            _int(cost_minor, "cost_minor", low=0, high=MAX_AMOUNT_MINOR)
            try:
                json.loads(cdr_json)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"cost_fn returned a CDR that is not JSON text: {exc}") from exc
            db.execute(
                "UPDATE transactions SET cost_minor = ?, cdr_json = ? WHERE id = ?",
                (cost_minor, cdr_json, transaction_id),
            )
            charge = None
            if self._card_row(db, stopped.id_tag) is not None:
                charge = self._post(
                    db, stopped.id_tag, LedgerKind.CHARGE, -cost_minor, key, transaction_id=transaction_id
                )
            final = db.execute("SELECT * FROM transactions WHERE id = ?", (transaction_id,)).fetchone()
            return StopResult(False, _transaction(final), charge)


def _unauthorized_start(row: sqlite3.Row) -> UnauthorizedStart:
    return UnauthorizedStart(
        row["cp_id"],
        row["station_tx_id"],
        row["evse"],
        row["meter_start_wh"],
        _dt(row["started_at"]),
        row["last_seq_no"],
    )
