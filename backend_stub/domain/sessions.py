"""Charging sessions: start, meter values and stop, each acting only on the sending charger's own transactions."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from backend_stub.domain.authorization import Authorization
from backend_stub.domain.payments import Hooks
from backend_stub.domain.prepaid import PrepaidCutoff
from backend_stub.domain.pricing import Pricing
from backend_stub.domain.security import SecurityEvents
from backend_stub.store import (
    AuthStatus,
    CsmsStore,
    ForeignTransaction,
    MeterSample,
    SecurityEventKind,
    UnknownTransaction,
)

log = logging.getLogger(__name__)

MAX_REMEMBERED_SESSIONS = 50_000  # (charger, station transaction id) -> our id, for `Sessions.lookup`


class Sessions:
    """The session rules: idempotent starts, samples stored only for the sender's sessions, charged once."""

    def __init__(
        self,
        store: CsmsStore,
        clock: Callable[[], datetime],
        authorization: Authorization,
        pricing: Pricing,
        prepaid: PrepaidCutoff,
        security: SecurityEvents,
        hooks: Hooks,
    ) -> None:
        """Keep sessions in ``store``; the rest are the services a session step calls."""
        self.store = store
        self.clock = clock
        self.authorization = authorization
        self.pricing = pricing
        self.prepaid = prepaid
        self.security = security
        self.hooks = hooks
        self._station_ids: OrderedDict[tuple[str, str], int] = OrderedDict()  # see `lookup`

    def start(
        self,
        cp_id: str,
        evse: int,
        id_tag: str,
        meter_start_wh: int,
        at: datetime,
        *,
        station_tx_id: str | None = None,
    ) -> tuple[int, AuthStatus]:
        """Record a session start; its transaction id and the idTag's status (idempotent for a repeated start).

        ``station_tx_id`` is the charger's own id of the session where its protocol has one: the session is
        keyed by (charger, that id).
        """
        status = self.authorization.card_status(id_tag)
        # Idempotent: a charger that resends the same start after a crash gets the same id.
        tx_id = self.store.start_transaction(
            cp_id, evse, id_tag, meter_start_wh, at, id_tag_status=str(status), station_tx_id=station_tx_id
        )
        if station_tx_id is not None:
            self._remember(
                cp_id, station_tx_id, tx_id
            )  # the next event of the session finds it without a read
        if self.hooks.payment is not None:
            paid = self.hooks.payment.started(cp_id, evse, id_tag, tx_id)
            if paid is not None:
                status = paid
                self.store.set_id_tag_status(cp_id, tx_id, paid)
        self.hooks.observers.session_changed(tx_id)
        return tx_id, status

    def hold_unauthorized(
        self, cp_id: str, station_tx_id: str, evse: int, meter_start_wh: int, at: datetime, seq_no: int
    ) -> None:
        """Keep a transaction started without an idToken (OCPP 2.0.1 E02/E03: TxStartPoint before Authorized)
        until an event brings its idToken; nothing is billed until then."""
        self.store.hold_unauthorized_start(cp_id, station_tx_id, evse, meter_start_wh, at, seq_no)

    def start_held(self, cp_id: str, station_tx_id: str, id_tag: str) -> tuple[int, AuthStatus] | None:
        """Turn a held start into a session of ``id_tag`` (from its own start reading and time, so the energy
        before the authorization is billed too); None if nothing is held under that id."""
        held = self.store.unauthorized_start(cp_id, station_tx_id)
        if held is None:
            return None
        tx_id, status = self.start(
            cp_id, held.evse, id_tag, held.meter_start_wh, held.started_at, station_tx_id=station_tx_id
        )
        self.store.record_seq_no(cp_id, tx_id, held.last_seq_no)
        self.store.drop_unauthorized_start(cp_id, station_tx_id)
        return tx_id, status

    def touch_held(self, cp_id: str, station_tx_id: str, seq_no: int) -> bool:
        """Note a later event of a held start that still has no idToken; whether there is one."""
        held = self.store.unauthorized_start(cp_id, station_tx_id)
        if held is None:
            return False
        self.store.hold_unauthorized_start(
            cp_id, station_tx_id, held.evse, held.meter_start_wh, held.started_at, seq_no
        )
        return True

    def end_held(self, cp_id: str, station_tx_id: str) -> bool:
        """A held start that ended without ever an idToken: forgotten, nothing billed (no card to bill); whether
        there was one."""
        if self.store.unauthorized_start(cp_id, station_tx_id) is None:
            return False
        self.store.drop_unauthorized_start(cp_id, station_tx_id)
        log.warning(
            "%s ended transaction %r without an idToken: not billed",
            cp_id,
            station_tx_id,
            extra={"cp_id": cp_id},
        )
        return True

    def lookup(self, cp_id: str, station_tx_id: str) -> int | None:
        """The id of ``cp_id``'s session it calls ``station_tx_id``, None if it has none (nothing recorded).

        Found ids are remembered (a charger's id of a session never changes), so the events of a running session
        do not each read the store for it; at most MAX_REMEMBERED_SESSIONS, the least recently used forgotten.
        """
        key = (cp_id, station_tx_id)
        tx_id = self._station_ids.get(key)
        if tx_id is not None:
            self._station_ids.move_to_end(key)
            return tx_id
        try:
            tx_id = self.store.station_transaction(cp_id, station_tx_id)
        except UnknownTransaction:
            return None
        self._remember(cp_id, station_tx_id, tx_id)
        return tx_id

    def _remember(self, cp_id: str, station_tx_id: str, tx_id: int) -> None:
        """Note that ``cp_id`` calls its session ``tx_id`` ``station_tx_id`` (see `lookup`)."""
        self._station_ids[(cp_id, station_tx_id)] = tx_id
        self._station_ids.move_to_end((cp_id, station_tx_id))
        if len(self._station_ids) > MAX_REMEMBERED_SESSIONS:
            self._station_ids.popitem(last=False)

    def find(self, cp_id: str, station_tx_id: str, what: str) -> int | None:
        """The id of ``cp_id``'s session it calls ``station_tx_id``; None (and a security event) if it has none."""
        try:
            return self.store.station_transaction(cp_id, station_tx_id)
        except UnknownTransaction as exc:
            # Another charger's id acts on nothing, like an unknown one (the sender cannot tell them apart).
            foreign = isinstance(exc, ForeignTransaction)
            whose = "another charger's" if foreign else "unknown"
            self.security.record(
                cp_id,
                SecurityEventKind.FOREIGN_TRANSACTION if foreign else SecurityEventKind.UNKNOWN_TRANSACTION,
                f"{what} for {whose} transaction {station_tx_id!r}; nothing stored or charged",
            )
            return None

    def sequence(self, cp_id: str, tx_id: int, seq_no: int) -> None:
        """Record a session message's sequence number; a gap or one out of order is a security event."""
        self._check_sequence(cp_id, tx_id, seq_no, self.store.record_seq_no(cp_id, tx_id, seq_no))

    def _check_sequence(self, cp_id: str, tx_id: int, seq_no: int, previous: int | None) -> None:
        expected = 0 if previous is None else previous + 1
        if seq_no > expected:
            self.security.record(
                cp_id,
                SecurityEventKind.SEQUENCE_GAP,
                f"seqNo {seq_no} after {previous}: {seq_no - expected} message(s) missing",
                transaction_id=tx_id,
            )
        elif previous is not None and seq_no < previous:
            self.security.record(
                cp_id,
                SecurityEventKind.SEQUENCE_GAP,
                f"seqNo {seq_no} arrived after {previous} (out of order)",
                transaction_id=tx_id,
            )

    def meter_values(
        self,
        cp_id: str,
        tx_id: int | None,
        samples: list[MeterSample],
        problems: list[str],
        seq_no: int | None = None,
    ) -> None:
        """Store a charger's samples of its own session ``tx_id`` (none stored without one), then check prepaid;
        with ``seq_no`` (2.0.1) its sequence number is recorded in the same write and checked like `sequence`."""
        self.security.bad_samples(cp_id, tx_id, problems)
        if tx_id is None:
            return
        try:
            if seq_no is None:
                self.store.add_meter_values(cp_id, tx_id, samples)
            else:
                previous = self.store.add_event_meter_values(cp_id, tx_id, seq_no, samples)
                self._check_sequence(cp_id, tx_id, seq_no, previous)
        except ForeignTransaction:
            # Every message acts only on its sender's own data: the samples are not stored, and the answer is
            # the same as for an unknown transaction, so a charger cannot probe for other chargers' sessions.
            self.security.record(
                cp_id,
                SecurityEventKind.FOREIGN_TRANSACTION,
                f"MeterValues for transaction {tx_id} of another charger; {len(samples)} sample(s) not stored",
                transaction_id=tx_id,
            )
            return
        except UnknownTransaction:
            self.security.record(
                cp_id,
                SecurityEventKind.UNKNOWN_TRANSACTION,
                f"MeterValues for unknown transaction {tx_id}; {len(samples)} sample(s) not stored",
                transaction_id=tx_id,
            )
            return
        self.prepaid.check(cp_id, tx_id)
        if samples:
            self.hooks.observers.session_changed(tx_id)

    def stop(
        self,
        cp_id: str,
        tx_id: int,
        meter_stop_wh: int,
        at: datetime,
        reason: str,
        samples: list[MeterSample],
        problems: list[str],
        id_tag: str | None,
    ) -> AuthStatus | None:
        """Record a session stop and charge it once; the stopping idTag's status (None without one or when the
        transaction is not the sender's: nothing about a card is told to a charger it does not concern)."""
        try:
            result = self.store.stop_transaction(
                cp_id, tx_id, meter_stop_wh, at, reason, self.pricing.price, samples=samples
            )
        except UnknownTransaction as exc:
            # Nothing is charged. A foreign and an unknown transaction get the same answer, so a charger cannot
            # probe which ids exist.
            foreign = isinstance(exc, ForeignTransaction)
            whose = "another charger's" if foreign else "unknown"
            self.security.record(
                cp_id,
                SecurityEventKind.FOREIGN_TRANSACTION if foreign else SecurityEventKind.UNKNOWN_TRANSACTION,
                f"StopTransaction for {whose} transaction "
                f"{tx_id} (meterStop {meter_stop_wh}, idTag {str(id_tag)!r}) answered, nothing charged",
                transaction_id=tx_id,
            )
            self.security.bad_samples(cp_id, tx_id, problems)
            return None
        self.security.bad_samples(cp_id, tx_id, problems)
        if result.already_stopped:
            log.info("repeated StopTransaction for %s acknowledged; not charged again", tx_id)
        elif at <= result.transaction.started_at:
            self.security.record(
                cp_id,
                SecurityEventKind.STOP_BEFORE_START,
                f"StopTransaction at {at.isoformat()} is not after the start "
                f"{result.transaction.started_at.isoformat()}; priced as a 1 s session with its energy",
                transaction_id=tx_id,
            )
        self.prepaid.stopped(tx_id)
        if self.hooks.payment is not None:
            self.hooks.payment.stopped(result.transaction)
        if not result.already_stopped:
            self.hooks.observers.session_ended(tx_id)
        return self.authorization.card_status(id_tag) if id_tag else None
