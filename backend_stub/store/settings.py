"""Installation settings: currency, minimum balance, secrets, admin token."""

from __future__ import annotations

import re

from backend_stub.store.base import StoreBase
from backend_stub.store.records import (
    _CURRENCY,
    MAX_AMOUNT_MINOR,
    Conflict,
    InvalidInput,
    _int,
    _opt_text,
)


class SettingsStore(StoreBase):
    """Installation settings: currency, minimum balance, secrets, admin token."""

    # -- settings

    def currency(self) -> str:
        """The installation's ISO 4217 currency (default EUR)."""
        return str(self._read("SELECT value FROM settings WHERE name = 'currency'")[0]["value"])

    def set_currency(self, code: str) -> None:
        """Set the currency; refused once the ledger has entries, since amounts carry no currency."""
        if not isinstance(code, str) or not _CURRENCY.fullmatch(code):
            raise InvalidInput(f"currency must be an ISO 4217 code like 'EUR', got {code!r}")
        with self._write() as db:
            current = db.execute("SELECT value FROM settings WHERE name = 'currency'").fetchone()["value"]
            if current == code:
                return
            if db.execute("SELECT 1 FROM ledger LIMIT 1").fetchone() is not None:
                raise Conflict(f"cannot change currency from {current} to {code}: the ledger has entries")
            db.execute("UPDATE settings SET value = ? WHERE name = 'currency'", (code,))

    def admin_token_digest(self) -> str | None:
        """SHA-256 hex digest of the REST API's admin token, or None before the first start."""
        rows = self._read("SELECT value FROM settings WHERE name = 'admin_token_sha256'")
        return str(rows[0]["value"]) if rows else None

    def set_admin_token_digest(self, digest: str) -> None:
        """Store the admin token's SHA-256 hex digest (the token itself is never stored)."""
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise InvalidInput("admin token digest must be 64 lowercase hex digits")
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES ('admin_token_sha256', ?)", (digest,))

    def min_balance_minor(self) -> int:
        """Minimum balance a prepaid card needs to be authorized (default 0)."""
        return int(self._read("SELECT value FROM settings WHERE name = 'min_balance_minor'")[0]["value"])

    def set_min_balance_minor(self, amount_minor: int) -> None:
        """Set the prepaid minimum balance."""
        _int(amount_minor, "min_balance_minor", low=-MAX_AMOUNT_MINOR, high=MAX_AMOUNT_MINOR)
        with self._write() as db:
            db.execute("UPDATE settings SET value = ? WHERE name = 'min_balance_minor'", (str(amount_minor),))

    def default_tariff_id(self) -> str | None:
        """The tariff for chargers without their own."""
        rows = self._read("SELECT value FROM settings WHERE name = 'default_tariff_id'")
        return str(rows[0]["value"]) if rows else None

    def set_default_tariff_id(self, tariff_id: str | None) -> None:
        """Set or clear the default tariff."""
        _opt_text(tariff_id, "tariff_id")
        with self._write() as db:
            if tariff_id is None:
                db.execute("DELETE FROM settings WHERE name = 'default_tariff_id'")
            else:
                db.execute("INSERT OR REPLACE INTO settings VALUES ('default_tariff_id', ?)", (tariff_id,))

    def check_writable(self) -> None:
        """Commit a tiny write (the time of this check); raises StoreError when the store cannot be written."""
        with self._write() as db:
            db.execute("INSERT OR REPLACE INTO settings VALUES ('health.checked_at', ?)", (self._now(),))
