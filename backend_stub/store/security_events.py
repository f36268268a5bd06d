"""Security events recorded for the operator (bounded table)."""

from __future__ import annotations

from datetime import datetime

from backend_stub.store.chargers import ChargersStore
from backend_stub.store.records import (
    MAX_SECURITY_EVENTS,
    MAX_TEXT_LENGTH,
    SecurityEvent,
    SecurityEventKind,
    _enum,
    _int,
    _security_event,
    _text,
    _ts,
)


class SecurityEventsStore(ChargersStore):
    """Security events recorded for the operator (bounded table)."""

    # -- security events

    def record_security_event(
        self,
        cp_id: str,
        kind: SecurityEventKind | str,
        detail: str,
        *,
        transaction_id: int | None = None,
        at: datetime | None = None,
    ) -> SecurityEvent:
        """Append a security event; only the newest MAX_SECURITY_EVENTS are kept."""
        value = _enum(SecurityEventKind, str(kind), "kind")
        _text(cp_id, "cp_id", max_len=MAX_TEXT_LENGTH)
        if transaction_id is not None:
            _int(transaction_id, "transaction_id", low=-(2**63), high=2**63 - 1)
        when = self._now() if at is None else _ts(at, "at")
        with self._write() as db:
            cur = db.execute(
                "INSERT INTO security_events (at, cp_id, kind, transaction_id, detail) VALUES (?, ?, ?, ?, ?)",
                (when, cp_id, value, transaction_id, detail[:1000]),
            )
            new_id = int(cur.lastrowid or 0)
            db.execute("DELETE FROM security_events WHERE id <= ?", (new_id - MAX_SECURITY_EVENTS,))
            return _security_event(
                db.execute("SELECT * FROM security_events WHERE id = ?", (new_id,)).fetchone()
            )

    def security_events(
        self, *, cp_id: str | None = None, kind: SecurityEventKind | str | None = None, limit: int = 100
    ) -> list[SecurityEvent]:
        """Security events newest first, optionally of one charger or one kind."""
        _int(limit, "limit", low=1, high=10_000)
        clauses: list[str] = []
        args: list[object] = []
        if cp_id is not None:
            clauses.append("cp_id = ?")
            args.append(cp_id)
        if kind is not None:
            clauses.append("kind = ?")
            args.append(_enum(SecurityEventKind, str(kind), "kind"))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._read(f"SELECT * FROM security_events{where} ORDER BY id DESC LIMIT ?", [*args, limit])
        return [_security_event(r) for r in rows]
