"""The OCPI aggregate of the store: roaming partners, their roles and tokens, and the durable push queue."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeAlias

from backend_stub.store.base import StoreBase
from backend_stub.store.records import Conflict, NotFound, UnknownCharger, _dt, _opt_dt, _text, _ts

# OCPI 2.2.1 §16.3 Role; one platform may hold several roles under several (country_code, party_id) pairs.
PARTNER_STATUSES: Final = ("pending", "registered", "unregistered")
MAX_PARTNER_ROLES: Final = 20
MAX_TOKENS_PER_PARTNER: Final = 1_000_000  # what one partner can make us store
MAX_RESERVATIONS_PER_PARTNER: Final = 10_000
TokenKey: TypeAlias = tuple[str, str, str, str]  # (country_code, party_id, uid, type)


# The head of each partner's queue: its oldest push not parked.
_HEADS: Final = "SELECT MIN(id) FROM ocpi_outbox WHERE parked_at IS NULL GROUP BY partner_id"


class UnknownPartner(NotFound):
    """No OCPI partner with that id."""


class PartyTaken(Conflict):
    """Another registered partner holds one of the (country_code, party_id, role) triples."""


@dataclass(frozen=True, slots=True)
class PartnerRole:
    """One role of a partner platform (OCPI 2.2.1 §7.3.2 CredentialsRole)."""

    role: str
    country_code: str
    party_id: str
    business_name: str


@dataclass(frozen=True, slots=True)
class Partner:
    """A roaming partner: its registration, its endpoints and the token we call it with."""

    id: int
    name: str
    status: str
    versions_url: str | None
    version: str | None
    endpoints: tuple[tuple[str, str, str], ...]  # (identifier, role, url) from its version details
    roles: tuple[PartnerRole, ...]
    outgoing_token: str | None
    created_at: datetime
    updated_at: datetime
    last_contact_at: datetime | None
    last_error: str | None

    def endpoint(self, identifier: str, role: str) -> str | None:
        """The partner's URL of module ``identifier`` in interface ``role`` (SENDER/RECEIVER), None if absent."""
        for ident, r, url in self.endpoints:
            if ident == identifier and r == role:
                return url
        return None

    def has_role(self, *roles: str) -> bool:
        """Whether the partner holds any of ``roles``."""
        return any(r.role in roles for r in self.roles)


@dataclass(frozen=True, slots=True)
class Push:
    """One queued push to a partner: a kind of object, its id and the method; the body is built at send time."""

    id: int
    partner_id: int
    kind: str
    object_id: str
    revision: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    parked_at: datetime | None = None  # set aside after repeated client errors; the queue goes on without it


@dataclass(frozen=True, slots=True)
class RoamingToken:
    """A partner's token as authorization needs it (OCPI 2.2.1 §12.3.2: valid, whitelist)."""

    partner_id: int
    country_code: str
    party_id: str
    uid: str
    type: str
    valid: bool
    whitelist: str


def _partner(row: sqlite3.Row, roles: Sequence[sqlite3.Row]) -> Partner:
    endpoints = tuple(tuple(e) for e in json.loads(row["endpoints_json"]))
    return Partner(
        id=row["id"],
        name=row["name"],
        status=row["status"],
        versions_url=row["versions_url"],
        version=row["version"],
        endpoints=endpoints,
        roles=tuple(
            PartnerRole(r["role"], r["country_code"], r["party_id"], r["business_name"]) for r in roles
        ),
        outgoing_token=row["outgoing_token"],
        created_at=_dt(row["created_at"]),
        updated_at=_dt(row["updated_at"]),
        last_contact_at=_opt_dt(row["last_contact_at"]),
        last_error=row["last_error"],
    )


def _push(row: sqlite3.Row) -> Push:
    return Push(
        id=row["id"],
        partner_id=row["partner_id"],
        kind=row["kind"],
        object_id=row["object_id"],
        revision=row["revision"],
        attempts=row["attempts"],
        next_attempt_at=_dt(row["next_attempt_at"]),
        last_error=row["last_error"],
        parked_at=_opt_dt(row["parked_at"]),
    )


class OcpiStore(StoreBase):
    """Partners (per country_code/party_id and role) and the durable queue of pushes to them."""

    def ocpi_create_partner(self, name: str, token_a_sha256: str | None, at: datetime) -> int:
        """A new pending partner, registering with us by a token A (its SHA-256), or by us (None); its id."""
        _text(name, "name", max_len=100)
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO ocpi_partners (name, status, token_a_sha256, created_at, updated_at) "
                "VALUES (?, 'pending', ?, ?, ?)",
                (name, token_a_sha256, _ts(at), _ts(at)),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def ocpi_partner(self, partner_id: int) -> Partner:
        """The partner; raises UnknownPartner."""
        rows = self._read("SELECT * FROM ocpi_partners WHERE id = ?", (partner_id,))
        if not rows:
            raise UnknownPartner(f"unknown OCPI partner {partner_id}")
        roles = self._read(
            "SELECT * FROM ocpi_partner_roles WHERE partner_id = ? ORDER BY country_code, party_id, role",
            (partner_id,),
        )
        return _partner(rows[0], roles)

    def ocpi_partners(self) -> list[Partner]:
        """Every partner, by id."""
        roles: dict[int, list[sqlite3.Row]] = {}
        for r in self._read("SELECT * FROM ocpi_partner_roles ORDER BY country_code, party_id, role"):
            roles.setdefault(r["partner_id"], []).append(r)
        return [
            _partner(row, roles.get(row["id"], []))
            for row in self._read("SELECT * FROM ocpi_partners ORDER BY id")
        ]

    def ocpi_partner_by_token(self, token_sha256: str) -> tuple[Partner, bool] | None:
        """The partner a token (SHA-256) belongs to and whether it is its token A (registration only)."""
        rows = self._read(
            "SELECT id, token_a_sha256 = ? AS is_a FROM ocpi_partners "
            "WHERE token_a_sha256 = ? OR incoming_sha256 = ?",
            (token_sha256, token_sha256, token_sha256),
        )
        if not rows:
            return None
        return self.ocpi_partner(rows[0]["id"]), bool(rows[0]["is_a"])

    def ocpi_set_incoming(
        self, partner_id: int, incoming_sha256: str, outgoing_token: str, at: datetime
    ) -> None:
        """Before we register with a partner: the token it will call us with, and its token A to call it."""
        with self._write() as db:
            db.execute(
                "UPDATE ocpi_partners SET incoming_sha256 = ?, outgoing_token = ?, updated_at = ? WHERE id = ?",
                (incoming_sha256, outgoing_token, _ts(at), partner_id),
            )

    def ocpi_register(
        self,
        partner_id: int,
        *,
        incoming_sha256: str,
        outgoing_token: str,
        versions_url: str,
        version: str,
        endpoints: Sequence[tuple[str, str, str]],
        roles: Sequence[PartnerRole],
        at: datetime,
    ) -> Partner:
        """Record a completed handshake or a token rotation in one commit: token A is spent, roles replaced.

        Raises PartyTaken (nothing written) if another registered partner holds one of the roles.
        """
        if not 1 <= len(roles) <= MAX_PARTNER_ROLES:
            raise Conflict(f"a partner has 1-{MAX_PARTNER_ROLES} roles")
        with self._write() as db:
            for role in roles:
                taken = db.execute(
                    "SELECT partner_id FROM ocpi_partner_roles "
                    "WHERE country_code = ? AND party_id = ? AND role = ? AND partner_id <> ?",
                    (role.country_code, role.party_id, role.role, partner_id),
                ).fetchone()
                if taken is not None:
                    raise PartyTaken(
                        f"{role.country_code}/{role.party_id} ({role.role}) is registered by another partner"
                    )
            updated = db.execute(
                "UPDATE ocpi_partners SET status = 'registered', token_a_sha256 = NULL, incoming_sha256 = ?, "
                "outgoing_token = ?, versions_url = ?, version = ?, endpoints_json = ?, updated_at = ?, "
                "last_contact_at = ?, last_error = NULL WHERE id = ? AND status <> 'unregistered'",
                (
                    incoming_sha256,
                    outgoing_token,
                    versions_url,
                    version,
                    json.dumps([list(e) for e in endpoints]),
                    _ts(at),
                    _ts(at),
                    partner_id,
                ),
            )
            if updated.rowcount != 1:
                raise UnknownPartner(f"no OCPI partner {partner_id} to register")
            db.execute("DELETE FROM ocpi_partner_roles WHERE partner_id = ?", (partner_id,))
            db.executemany(
                "INSERT INTO ocpi_partner_roles (partner_id, country_code, party_id, role, business_name) "
                "VALUES (?, ?, ?, ?, ?)",
                [(partner_id, r.country_code, r.party_id, r.role, r.business_name) for r in roles],
            )
        return self.ocpi_partner(partner_id)

    def ocpi_unregister(self, partner_id: int, at: datetime, reason: str | None = None) -> None:
        """Revoke every token of a partner, forget its roles and drop its queued pushes (one commit)."""
        with self._write() as db:
            db.execute(
                "UPDATE ocpi_partners SET status = 'unregistered', token_a_sha256 = NULL, incoming_sha256 = NULL, "
                "outgoing_token = NULL, updated_at = ?, last_error = COALESCE(?, last_error) WHERE id = ?",
                (_ts(at), reason, partner_id),
            )
            db.execute("DELETE FROM ocpi_partner_roles WHERE partner_id = ?", (partner_id,))
            db.execute("DELETE FROM ocpi_outbox WHERE partner_id = ?", (partner_id,))
            db.execute("DELETE FROM ocpi_tokens WHERE partner_id = ?", (partner_id,))
            db.execute("DELETE FROM ocpi_command_results WHERE partner_id = ?", (partner_id,))

    def ocpi_contact(self, partner_id: int, at: datetime, error: str | None) -> None:
        """Note a call to or from the partner: its time if it succeeded, the error if it did not."""
        with self._write() as db:
            if error is None:
                db.execute(
                    "UPDATE ocpi_partners SET last_contact_at = ?, last_error = NULL WHERE id = ?",
                    (_ts(at), partner_id),
                )
            else:
                db.execute("UPDATE ocpi_partners SET last_error = ? WHERE id = ?", (error[:500], partner_id))

    # -- the push queue

    def ocpi_enqueue(self, partner_ids: Sequence[int], kind: str, object_id: str, at: datetime) -> None:
        """Queue a push of (kind, object_id) to each partner; one already queued keeps its place, revised."""
        _text(kind, "kind", max_len=20)
        _text(object_id, "object_id", max_len=200)
        with self._write() as db:
            db.executemany(
                "INSERT INTO ocpi_outbox (partner_id, kind, object_id, next_attempt_at, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (partner_id, kind, object_id) "
                # A new state of a parked object may be one the partner takes: it goes back in line.
                "DO UPDATE SET revision = revision + 1, parked_at = NULL, "
                "attempts = CASE WHEN parked_at IS NULL THEN attempts ELSE 0 END",
                [(p, kind, object_id, _ts(at), _ts(at)) for p in partner_ids],
            )

    def ocpi_due(self, now: datetime) -> list[Push]:
        """Each partner's oldest queued push if it is due (pushes to one partner go strictly in order; parked
        pushes stand aside)."""
        rows = self._read(
            f"SELECT * FROM ocpi_outbox WHERE id IN ({_HEADS}) AND next_attempt_at <= ? ORDER BY id",
            (_ts(now),),
        )
        return [_push(r) for r in rows]

    def ocpi_next_attempt(self) -> datetime | None:
        """The earliest time a queued head-of-line push is due, None if the queue is empty."""
        rows = self._read(f"SELECT MIN(next_attempt_at) AS t FROM ocpi_outbox WHERE id IN ({_HEADS})")
        return _opt_dt(rows[0]["t"])

    def ocpi_pushed(self, push: Push) -> None:
        """Remove a delivered push, unless it was revised while in flight (then the new state goes next)."""
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM ocpi_outbox WHERE id = ? AND revision = ?", (push.id, push.revision)
            )
            if cur.rowcount == 0:
                db.execute("UPDATE ocpi_outbox SET attempts = 0, last_error = NULL WHERE id = ?", (push.id,))

    def ocpi_push_failed(self, push: Push, retry_at: datetime, error: str) -> None:
        """Count a failed attempt and hold the push (and the partner's queue behind it) until ``retry_at``."""
        with self._write() as db:
            db.execute(
                "UPDATE ocpi_outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE id = ?",
                (_ts(retry_at), error[:500], push.id),
            )

    def ocpi_push_parked(self, push: Push, at: datetime, error: str) -> None:
        """Set a refused push aside (the partner's queue goes on) until the operator retries it."""
        with self._write() as db:
            db.execute(
                "UPDATE ocpi_outbox SET attempts = attempts + 1, parked_at = ?, last_error = ? WHERE id = ?",
                (_ts(at), error[:500], push.id),
            )

    def ocpi_retry_push(self, partner_id: int, push_id: int, at: datetime) -> bool:
        """Put a parked push of the partner back in line, due at ``at``; False if it has no such parked push."""
        with self._write() as db:
            cursor = db.execute(
                "UPDATE ocpi_outbox SET parked_at = NULL, attempts = 0, next_attempt_at = ? "
                "WHERE id = ? AND partner_id = ? AND parked_at IS NOT NULL",
                (_ts(at), push_id, partner_id),
            )
            return cursor.rowcount == 1

    def ocpi_parked(self) -> list[Push]:
        """Every parked push, by partner and age."""
        rows = self._read("SELECT * FROM ocpi_outbox WHERE parked_at IS NOT NULL ORDER BY partner_id, id")
        return [_push(r) for r in rows]

    def ocpi_queued(self) -> dict[int, int]:
        """Queued pushes per partner id (parked ones not counted)."""
        rows = self._read(
            "SELECT partner_id, COUNT(*) AS n FROM ocpi_outbox WHERE parked_at IS NULL GROUP BY partner_id"
        )
        return {r["partner_id"]: r["n"] for r in rows}

    def ocpi_pushes(self, partner_id: int) -> list[Push]:
        """A partner's queued pushes, in order."""
        rows = self._read("SELECT * FROM ocpi_outbox WHERE partner_id = ? ORDER BY id", (partner_id,))
        return [_push(r) for r in rows]

    def ocpi_tariffs(self) -> list[tuple[str, str, datetime]]:
        """Every stored tariff as (id, OCPI JSON, last update), by id: what the tariffs module publishes."""
        rows = self._read("SELECT id, ocpi_json, updated_at FROM tariffs ORDER BY id")
        return [(r["id"], r["ocpi_json"], _dt(r["updated_at"])) for r in rows]

    # -- partners' tokens (we are the Receiver)

    def ocpi_put_token(
        self, partner_id: int, key: TokenKey, *, valid: bool, whitelist: str, body: str, updated: datetime
    ) -> bool:
        """Store or replace a partner's token (limited per partner); whether it is new. Raises Conflict at the cap."""
        with self._write() as db:
            exists = db.execute(
                "SELECT partner_id FROM ocpi_tokens WHERE country_code = ? AND party_id = ? AND uid = ? AND type = ?",
                key,
            ).fetchone()
            if exists is not None and exists["partner_id"] != partner_id:
                raise PartyTaken("the token belongs to another partner")
            if exists is None:
                count = db.execute(
                    "SELECT COUNT(*) FROM ocpi_tokens WHERE partner_id = ?", (partner_id,)
                ).fetchone()[0]
                if count >= MAX_TOKENS_PER_PARTNER:
                    raise Conflict(f"a partner may store at most {MAX_TOKENS_PER_PARTNER} tokens")
            db.execute(
                "INSERT OR REPLACE INTO ocpi_tokens (partner_id, country_code, party_id, uid, type, valid, "
                "whitelist, body_json, last_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (partner_id, *key, int(valid), whitelist, body, _ts(updated)),
            )
            return exists is None

    def ocpi_token(self, key: TokenKey) -> tuple[int, str] | None:
        """(partner id, token JSON) of a stored token, None if unknown."""
        rows = self._read(
            "SELECT partner_id, body_json FROM ocpi_tokens "
            "WHERE country_code = ? AND party_id = ? AND uid = ? AND type = ?",
            key,
        )
        return (rows[0]["partner_id"], rows[0]["body_json"]) if rows else None

    def ocpi_token_by_uid(self, uid: str) -> RoamingToken | None:
        """The partner token a charger's idTag is (by uid; the newest if several parties use the same uid)."""
        rows = self._read(
            "SELECT t.* FROM ocpi_tokens t JOIN ocpi_partners p ON p.id = t.partner_id "
            "WHERE t.uid = ? AND p.status = 'registered' ORDER BY t.last_updated DESC LIMIT 1",
            (uid,),
        )
        if not rows:
            return None
        r = rows[0]
        return RoamingToken(
            r["partner_id"],
            r["country_code"],
            r["party_id"],
            r["uid"],
            r["type"],
            bool(r["valid"]),
            r["whitelist"],
        )

    def ocpi_partner_transactions(self, partner_id: int, *, stopped_only: bool = False) -> list[int]:
        """Ids of the sessions that ran on a partner's tokens (what its sessions and CDRs modules may see)."""
        rows = self._read(
            "SELECT DISTINCT x.id FROM transactions x JOIN ocpi_tokens t ON t.uid = x.id_tag "
            f"WHERE t.partner_id = ? {'AND x.stopped_at IS NOT NULL' if stopped_only else ''} ORDER BY x.id",
            (partner_id,),
        )
        return [r["id"] for r in rows]

    # -- command results (sent through the push queue)

    def ocpi_add_result(self, partner_id: int, response_url: str, result: str, at: datetime) -> None:
        """Keep a command's result and queue its POST to the partner's response_url, in one commit."""
        _text(response_url, "response_url", max_len=255)
        with self._write() as db:
            cursor = db.execute(
                "INSERT INTO ocpi_command_results (partner_id, response_url, result, created_at) "
                "VALUES (?, ?, ?, ?)",
                (partner_id, response_url, result, _ts(at)),
            )
            db.execute(
                "INSERT INTO ocpi_outbox (partner_id, kind, object_id, next_attempt_at, created_at) "
                "VALUES (?, 'result', ?, ?, ?)",
                (partner_id, str(cursor.lastrowid), _ts(at), _ts(at)),
            )

    def ocpi_result(self, result_id: int) -> tuple[str, str] | None:
        """(response_url, result) of a kept command result, None if gone."""
        rows = self._read("SELECT response_url, result FROM ocpi_command_results WHERE id = ?", (result_id,))
        return (rows[0]["response_url"], rows[0]["result"]) if rows else None

    def ocpi_result_sent(self, result_id: int) -> None:
        """Forget a command result the partner has received."""
        with self._write() as db:
            db.execute("DELETE FROM ocpi_command_results WHERE id = ?", (result_id,))

    # -- partners' reservations

    def ocpi_reservation(self, partner_id: int, reservation_id: str, cp_id: str, at: datetime) -> int | None:
        """The charger-side reservationId of a partner's reservation, made if new (kept if the same
        reservation_id comes again: OCPI 2.2.1 §13.3.5 replaces it); None when the partner holds too many."""
        _text(reservation_id, "reservation_id", max_len=36)
        with self._write() as db:
            row = db.execute(
                "SELECT id FROM ocpi_reservations WHERE partner_id = ? AND reservation_id = ?",
                (partner_id, reservation_id),
            ).fetchone()
            if row is not None:
                db.execute("UPDATE ocpi_reservations SET cp_id = ? WHERE id = ?", (cp_id, row["id"]))
                return int(row["id"])
            (count,) = db.execute(
                "SELECT COUNT(*) FROM ocpi_reservations WHERE partner_id = ?", (partner_id,)
            ).fetchone()
            if count >= MAX_RESERVATIONS_PER_PARTNER:
                return None
            cursor = db.execute(
                "INSERT INTO ocpi_reservations (partner_id, reservation_id, cp_id, created_at) "
                "VALUES (?, ?, ?, ?)",
                (partner_id, reservation_id, cp_id, _ts(at)),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def ocpi_find_reservation(self, partner_id: int, reservation_id: str) -> tuple[int, str] | None:
        """(charger-side reservationId, charger) of a partner's reservation, None if it has none by that id."""
        rows = self._read(
            "SELECT id, cp_id FROM ocpi_reservations WHERE partner_id = ? AND reservation_id = ?",
            (partner_id, reservation_id),
        )
        return (int(rows[0]["id"]), rows[0]["cp_id"]) if rows else None

    def ocpi_holds_reservation_id(self, cp_id: str, ocpp_id: int) -> bool:
        """Whether charger-side reservationId ``ocpp_id`` of ``cp_id`` is (or was) a roaming partner's."""
        return bool(
            self._read("SELECT 1 FROM ocpi_reservations WHERE id = ? AND cp_id = ?", (ocpp_id, cp_id))
        )

    def ocpi_forget_reservation(self, partner_id: int, reservation_id: str) -> None:
        """Drop a cancelled reservation."""
        with self._write() as db:
            db.execute(
                "DELETE FROM ocpi_reservations WHERE partner_id = ? AND reservation_id = ?",
                (partner_id, reservation_id),
            )

    # -- chargers' location details

    def ocpi_location_details(self) -> dict[str, tuple[dict[str, object], datetime]]:
        """Each charger's own location details (validated by the caller) and when they last changed."""
        rows = self._read("SELECT cp_id, details_json, updated_at FROM ocpi_location_details")
        return {r["cp_id"]: (json.loads(r["details_json"]), _dt(r["updated_at"])) for r in rows}

    def ocpi_set_location_details(self, cp_id: str, changes: dict[str, object], at: datetime) -> None:
        """Merge ``changes`` into a charger's details (None removes one); UnknownCharger if there is no charger."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM chargers WHERE id = ?", (cp_id,)).fetchone() is None:
                raise UnknownCharger(f"unknown charger {cp_id[:64]!r}")
            row = db.execute(
                "SELECT details_json FROM ocpi_location_details WHERE cp_id = ?", (cp_id,)
            ).fetchone()
            details = json.loads(row["details_json"]) if row else {}
            details.update(changes)
            details = {k: v for k, v in details.items() if v is not None}
            db.execute(
                "INSERT OR REPLACE INTO ocpi_location_details (cp_id, details_json, updated_at) VALUES (?, ?, ?)",
                (cp_id, json.dumps(details, sort_keys=True), _ts(at)),
            )
