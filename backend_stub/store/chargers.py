"""Chargers: the registry, passwords, boots, connector status, tariffs."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime

from backend_stub.store.records import (
    _DUMMY_HASH,
    _SALT_BYTES,
    MAX_DEVICE_VARIABLES,
    Charger,
    ChargerStatus,
    ClientCertificate,
    Conflict,
    ConnectorStatus,
    DeviceVariable,
    TariffInUse,
    UnknownCharger,
    UnknownTariff,
    _charger,
    _check_password,
    _connector,
    _dt,
    _enum,
    _hash_password,
    _int,
    _opt_text,
    _text,
    _ts,
)
from backend_stub.store.settings import SettingsStore

MAX_REMEMBERED_STATUSES = 100_000  # `charger_status` entries (all forgotten when full)


class ChargersStore(SettingsStore):
    """Chargers: the registry, passwords, boots, connector status, tariffs."""

    # -- chargers

    def add_charger(
        self,
        cp_id: str,
        password: str | None = None,
        *,
        status: ChargerStatus | str = ChargerStatus.ACCEPTED,
        tariff_id: str | None = None,
    ) -> Charger:
        """Register a charger; raises Conflict if the id exists."""
        _text(cp_id, "cp_id", max_len=255)
        state = _enum(ChargerStatus, status, "status")
        _opt_text(tariff_id, "tariff_id")
        hashed = (
            None if password is None else _hash_password(_text(password, "password"), os.urandom(_SALT_BYTES))
        )
        with self._write() as db:
            if db.execute("SELECT 1 FROM chargers WHERE id = ?", (cp_id,)).fetchone() is not None:
                raise Conflict(f"charger {cp_id!r} exists")
            self._charger_statuses.clear()
            db.execute(
                "INSERT INTO chargers (id, password_hash, status, tariff_id, created_at) VALUES (?, ?, ?, ?, ?)",
                (cp_id, hashed, state.value, tariff_id, self._now()),
            )
            return _charger(self._charger_row(db, cp_id))

    def admit_unknown(
        self, cp_id: str, *, max_pending: int | None = None, expire_before: datetime | None = None
    ) -> Charger | None:
        """Return the charger, first registering an unknown one as pending (never changes a known one).

        Pending chargers without a password, transactions or a boot since ``expire_before`` are deleted first;
        then None (nothing registered) if ``max_pending`` pending chargers remain.
        """
        _text(cp_id, "cp_id", max_len=255)
        with self._write() as db:
            row = db.execute("SELECT * FROM chargers WHERE id = ?", (cp_id,)).fetchone()
            if row is not None:
                return _charger(row)
            self._charger_statuses.clear()
            if expire_before is not None:
                self._expire_pending(db, _ts(expire_before, "expire_before"))
            if max_pending is not None:
                pending = db.execute("SELECT COUNT(*) FROM chargers WHERE status = 'pending'").fetchone()[0]
                if pending >= max_pending:
                    return None
            db.execute(
                "INSERT INTO chargers (id, status, created_at) VALUES (?, 'pending', ?)", (cp_id, self._now())
            )
            return _charger(self._charger_row(db, cp_id))

    def expire_pending(self, before: datetime) -> int:
        """Delete pending chargers nobody accepted that have not booted since ``before``; returns how many."""
        with self._write() as db:
            self._charger_statuses.clear()
            return self._expire_pending(db, _ts(before, "before"))

    @staticmethod
    def _expire_pending(db: sqlite3.Connection, before: str) -> int:
        stale = "SELECT id FROM chargers WHERE status = 'pending' AND password_hash IS NULL"
        stale += " AND COALESCE(last_boot, created_at) < ?"
        stale += " AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.cp_id = chargers.id)"
        ids = [r[0] for r in db.execute(stale, (before,)).fetchall()]
        for cp_id in ids:
            db.execute("DELETE FROM status_history WHERE cp_id = ?", (cp_id,))
            db.execute("DELETE FROM connectors WHERE cp_id = ?", (cp_id,))
            db.execute("DELETE FROM chargers WHERE id = ?", (cp_id,))
        return len(ids)

    def set_security_profile(self, cp_id: str, profile: int) -> Charger:
        """Set the recorded security profile (0-3), lower too: the operator's decision, e.g. after a lost key."""
        _int(profile, "security_profile", low=0, high=3)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET security_profile = ? WHERE id = ?", (profile, cp_id))
            return _charger(self._charger_row(db, cp_id))

    def raise_security_profile(self, cp_id: str, profile: int) -> Charger:
        """Record that the charger connected with security ``profile`` (0-3); the record never goes down."""
        _int(profile, "security_profile", low=0, high=3)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute(
                "UPDATE chargers SET security_profile = MAX(security_profile, ?) WHERE id = ?",
                (profile, cp_id),
            )
            return _charger(self._charger_row(db, cp_id))

    def charger(self, cp_id: str) -> Charger | None:
        """The charger, or None."""
        rows = self._read("SELECT * FROM chargers WHERE id = ?", (cp_id,))
        return _charger(rows[0]) if rows else None

    def charger_status(self, cp_id: str) -> ChargerStatus | None:
        """The charger's registration status, None for an unknown charger; read per message, so remembered.

        Every change of a status and every added or deleted charger goes through this class, which forgets all it
        remembered in the same locked write: blocking a charger takes effect on its next message. (Another process
        writing the same database is not seen here; the server owns its database.)
        """
        with self._lock:
            status = self._charger_statuses.get(cp_id)
            if status is None:
                rows = self._read("SELECT status FROM chargers WHERE id = ?", (cp_id,))
                if not rows:
                    return None
                status = ChargerStatus(rows[0]["status"])
                if len(self._charger_statuses) >= MAX_REMEMBERED_STATUSES:
                    self._charger_statuses.clear()
                self._charger_statuses[cp_id] = status
            return status

    def chargers(self) -> list[Charger]:
        """All chargers by id."""
        return [_charger(r) for r in self._read("SELECT * FROM chargers ORDER BY id")]

    def set_password(self, cp_id: str, password: str | None) -> None:
        """Set (freshly salted) or clear a charger's password."""
        hashed = (
            None if password is None else _hash_password(_text(password, "password"), os.urandom(_SALT_BYTES))
        )
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET password_hash = ? WHERE id = ?", (hashed, cp_id))

    def verify_password(self, cp_id: str, password: str) -> bool:
        """True if the charger exists and has this password; costs one scrypt run whatever the outcome."""
        rows = self._read("SELECT password_hash FROM chargers WHERE id = ?", (cp_id,))
        stored: str | None = rows[0]["password_hash"] if rows else None
        if not isinstance(password, str):
            password = ""
        ok = _check_password(stored or _DUMMY_HASH, password)
        return ok and stored is not None

    def set_charger_status(self, cp_id: str, status: ChargerStatus | str) -> Charger:
        """Accept, keep pending or reject a charger."""
        state = _enum(ChargerStatus, status, "status")
        with self._write() as db:
            self._charger_row(db, cp_id)
            self._charger_statuses.clear()
            db.execute("UPDATE chargers SET status = ? WHERE id = ?", (state.value, cp_id))
            return _charger(self._charger_row(db, cp_id))

    def set_charger_tariff(self, cp_id: str, tariff_id: str | None) -> None:
        """Give a charger its own tariff, or None for the default."""
        _opt_text(tariff_id, "tariff_id")
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET tariff_id = ? WHERE id = ?", (tariff_id, cp_id))

    def put_tariff(self, tariff_id: str, ocpi_json: str) -> None:
        """Add or replace a tariff (OCPI 2.2.1 JSON, validated by the caller)."""
        _text(tariff_id, "tariff_id", max_len=36)
        json.loads(ocpi_json)
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO tariffs (id, ocpi_json, updated_at) VALUES (?, ?, ?)",
                (tariff_id, ocpi_json, _ts(self._clock())),
            )

    def delete_tariff(self, tariff_id: str) -> None:
        """Delete a tariff; UnknownTariff if absent, TariffInUse if a charger has it or it is the default."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM tariffs WHERE id = ?", (tariff_id,)).fetchone() is None:
                raise UnknownTariff(f"no tariff {tariff_id[:40]!r}")
            used = db.execute("SELECT id FROM chargers WHERE tariff_id = ? LIMIT 1", (tariff_id,)).fetchone()
            if used is not None:
                raise TariffInUse(f"charger {used['id']!r} uses tariff {tariff_id!r}")
            default = db.execute(
                "SELECT 1 FROM settings WHERE name = 'default_tariff_id' AND value = ?", (tariff_id,)
            )
            if default.fetchone() is not None:
                raise TariffInUse(f"tariff {tariff_id!r} is the default tariff")
            db.execute("DELETE FROM tariffs WHERE id = ?", (tariff_id,))

    def tariff_json(self, tariff_id: str) -> str | None:
        """A tariff's OCPI JSON, or None."""
        rows = self._read("SELECT ocpi_json FROM tariffs WHERE id = ?", (tariff_id,))
        return str(rows[0]["ocpi_json"]) if rows else None

    def tariff_ids(self) -> list[str]:
        """Every stored tariff id."""
        return [str(r["id"]) for r in self._read("SELECT id FROM tariffs ORDER BY id")]

    def tariff_for(self, cp_id: str) -> str | None:
        """The charger's tariff id, else the default tariff id."""
        charger = self.charger(cp_id)
        if charger is None:
            raise UnknownCharger(f"unknown charger {cp_id!r}")
        return charger.tariff_id if charger.tariff_id is not None else self.default_tariff_id()

    def record_boot(
        self,
        cp_id: str,
        *,
        vendor: str,
        model: str,
        firmware: str | None = None,
        serial_number: str | None = None,
        timestamp: datetime,
    ) -> Charger:
        """Store what a BootNotification said."""
        for name, value in (("vendor", vendor), ("model", model)):
            _text(value, name, empty=True)
        _opt_text(firmware, "firmware")
        _opt_text(serial_number, "serial_number")
        at = _ts(timestamp)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute(
                "UPDATE chargers SET vendor = ?, model = ?, firmware = ?, serial_number = ?, last_boot = ? "
                "WHERE id = ?",
                (vendor, model, firmware, serial_number, at, cp_id),
            )
            return _charger(self._charger_row(db, cp_id))

    def record_heartbeat(self, cp_id: str, timestamp: datetime) -> None:
        """Store the time of the latest Heartbeat (or any message that proves liveness)."""
        at = _ts(timestamp)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET last_heartbeat = ? WHERE id = ?", (at, cp_id))

    def set_diagnostics_status(self, cp_id: str, status: str) -> None:
        """Store a DiagnosticsStatusNotification status."""
        _text(status, "status", max_len=255)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET diagnostics_status = ? WHERE id = ?", (status, cp_id))

    def store_device_variables(self, cp_id: str, variables: Sequence[DeviceVariable], at: datetime) -> int:
        """Keep reported device-model values (newest wins); how many were kept.

        A charger keeps at most MAX_DEVICE_VARIABLES rows: values for new keys beyond that are not stored.
        """
        rows = []
        for v in variables:
            for name in ("component", "variable"):
                _text(getattr(v, name), name, max_len=255)
            for name in ("value", "component_instance", "variable_instance"):
                _opt_text(getattr(v, name), name, max_len=2500)
            _text(v.attribute_type, "attribute_type", max_len=32)
            evse = -1 if v.evse is None else _int(v.evse, "evse", low=0, high=10_000)
            connector = -1 if v.connector is None else _int(v.connector, "connector", low=0, high=10_000)
            rows.append(
                (
                    v.component,
                    v.component_instance or "",
                    evse,
                    connector,
                    v.variable,
                    v.variable_instance or "",
                    v.attribute_type,
                    v.value,
                )
            )
        updated_at = _ts(at)
        kept = 0
        with self._write() as db:
            self._charger_row(db, cp_id)
            count = db.execute("SELECT count(*) FROM device_model WHERE cp_id = ?", (cp_id,)).fetchone()[0]
            for row in rows:
                changed = db.execute(
                    "UPDATE device_model SET value = ?, updated_at = ? WHERE cp_id = ? AND component = ? "
                    "AND component_instance = ? AND evse_id = ? AND connector_id = ? AND variable = ? "
                    "AND variable_instance = ? AND attribute_type = ?",
                    (row[-1], updated_at, cp_id, *row[:-1]),
                ).rowcount
                if not changed:
                    if count >= MAX_DEVICE_VARIABLES:
                        continue
                    db.execute(
                        "INSERT INTO device_model (cp_id, component, component_instance, evse_id, connector_id, "
                        "variable, variable_instance, attribute_type, value, updated_at) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (cp_id, *row, updated_at),
                    )
                    count += 1
                kept += 1
        return kept

    def device_model(self, cp_id: str) -> list[DeviceVariable]:
        """A charger's reported device model, by component and variable."""
        rows = self._read(
            "SELECT * FROM device_model WHERE cp_id = ? ORDER BY component, component_instance, evse_id, "
            "connector_id, variable, variable_instance, attribute_type",
            (cp_id,),
        )
        return [
            DeviceVariable(
                r["component"],
                r["variable"],
                r["value"],
                None if r["evse_id"] < 0 else r["evse_id"],
                None if r["connector_id"] < 0 else r["connector_id"],
                r["component_instance"] or None,
                r["variable_instance"] or None,
                r["attribute_type"],
            )
            for r in rows
        ]

    def record_client_certificate(
        self, cp_id: str, serial_hex: str, not_after: datetime, chain_pem: str, at: datetime
    ) -> ClientCertificate:
        """Keep the client certificate ``cp_id`` accepted (replacing the one before)."""
        _text(serial_hex, "serial_hex", max_len=64)
        _text(chain_pem, "chain_pem", max_len=20_000)
        row = (cp_id, serial_hex, _ts(not_after, "not_after"), chain_pem, _ts(at, "accepted_at"))
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute(
                "INSERT OR REPLACE INTO client_certificates (cp_id, serial_hex, not_after, chain_pem, accepted_at) "
                "VALUES (?, ?, ?, ?, ?)",
                row,
            )
        return ClientCertificate(cp_id, serial_hex, _dt(row[2]), chain_pem, _dt(row[4]))

    def client_certificate(self, cp_id: str) -> ClientCertificate | None:
        """The latest client certificate ``cp_id`` accepted from this central system's CA, or None."""
        rows = self._read("SELECT * FROM client_certificates WHERE cp_id = ?", (cp_id,))
        if not rows:
            return None
        r = rows[0]
        return ClientCertificate(
            r["cp_id"], r["serial_hex"], _dt(r["not_after"]), r["chain_pem"], _dt(r["accepted_at"])
        )

    def set_firmware_status(self, cp_id: str, status: str) -> None:
        """Store a FirmwareStatusNotification status."""
        _text(status, "status", max_len=255)
        with self._write() as db:
            self._charger_row(db, cp_id)
            db.execute("UPDATE chargers SET firmware_status = ? WHERE id = ?", (status, cp_id))

    def record_status(
        self,
        cp_id: str,
        connector_id: int,
        status: str,
        timestamp: datetime,
        *,
        error_code: str = "NoError",
        info: str | None = None,
    ) -> bool:
        """Append a StatusNotification to the history and update the live status; False for a duplicate."""
        _int(connector_id, "connector_id", low=0, high=10_000)
        _text(status, "status", max_len=255)
        _text(error_code, "error_code", max_len=255)
        _opt_text(info, "info")
        at = _ts(timestamp)
        with self._write() as db:
            self._charger_row(db, cp_id)
            cur = db.execute(
                "INSERT OR IGNORE INTO status_history (cp_id, connector_id, status, error_code, info, timestamp) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (cp_id, connector_id, status, error_code, info, at),
            )
            # Queued notifications arrive late after an outage: an older one must not overwrite the live status.
            db.execute(
                "INSERT INTO connectors (cp_id, connector_id, status, error_code, info, timestamp) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (cp_id, connector_id) DO UPDATE SET "
                "status = excluded.status, error_code = excluded.error_code, info = excluded.info, "
                "timestamp = excluded.timestamp WHERE excluded.timestamp >= connectors.timestamp",
                (cp_id, connector_id, status, error_code, info, at),
            )
            return cur.rowcount == 1

    def connectors(self, cp_id: str) -> list[ConnectorStatus]:
        """Live status of each connector that has reported, by connector id."""
        rows = self._read("SELECT * FROM connectors WHERE cp_id = ? ORDER BY connector_id", (cp_id,))
        return [_connector(r) for r in rows]

    def all_connectors(self) -> list[ConnectorStatus]:
        """Live status of every reported connector of every charger, by charger and connector id (one query)."""
        return [_connector(r) for r in self._read("SELECT * FROM connectors ORDER BY cp_id, connector_id")]

    def status_history(self, cp_id: str, connector_id: int | None = None) -> list[ConnectorStatus]:
        """Recorded StatusNotifications in time order."""
        sql = "SELECT * FROM status_history WHERE cp_id = ?"
        args: list[object] = [cp_id]
        if connector_id is not None:
            sql += " AND connector_id = ?"
            args.append(connector_id)
        return [_connector(r) for r in self._read(sql + " ORDER BY timestamp, id", args)]
