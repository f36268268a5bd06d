"""The reservation rules (core/reservations.py, OCPP 1.6 §3.11, §5.13) as pure functions, their persistence in the
SQLite store, and a property test: whatever the requests, the book never promises more than the connectors hold."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from chargepoint.core.events import TransactionStarted, decode, encode
from chargepoint.core.model import ConnectorStatus
from chargepoint.core.reservations import (
    MAX_RESERVATION,
    Reservation,
    ReserveResult,
    claim,
    held,
    parent_may_admit,
    reserve_answer,
)
from chargepoint.store import Store
from tests.unit.test_store_stations import OLD_SCHEMA

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
A, OCC, U, F = (
    ConnectorStatus.AVAILABLE,
    ConnectorStatus.OCCUPIED,
    ConnectorStatus.UNAVAILABLE,
    ConnectorStatus.FAULTED,
)


def r(
    rid: int, cid: int, tag: str = "TAG1", parent: str | None = None, expiry: datetime = LATER
) -> Reservation:
    return Reservation(rid, cid, tag, expiry, parent)


def answer(
    book: list[Reservation],
    request: Reservation,
    statuses: dict[int, ConnectorStatus],
    *,
    station: ConnectorStatus = A,
    zero: bool = True,
) -> ReserveResult:
    return reserve_answer(book, request, statuses, NOW, station=station, zero_supported=zero)


def test_answers_follow_the_connector_status() -> None:
    """§5.13: Accepted, Occupied, Faulted, Unavailable by the connector; Rejected for an unknown one."""
    statuses = {1: A, 2: OCC, 3: F, 4: U}
    assert answer([], r(1, 1), statuses) is ReserveResult.ACCEPTED
    assert answer([], r(1, 2), statuses) is ReserveResult.OCCUPIED
    assert answer([], r(1, 3), statuses) is ReserveResult.FAULTED
    assert answer([], r(1, 4), statuses) is ReserveResult.UNAVAILABLE
    assert answer([], r(1, 9), statuses) is ReserveResult.REJECTED
    assert answer([], r(1, 1), statuses, station=U) is ReserveResult.UNAVAILABLE


def test_expiry_in_the_past_or_too_far_is_rejected() -> None:
    statuses = {1: A}
    assert answer([], r(1, 1, expiry=NOW), statuses) is ReserveResult.REJECTED
    assert answer([], r(1, 1, expiry=NOW - timedelta(days=1)), statuses) is ReserveResult.REJECTED
    assert answer([], r(1, 1, expiry=NOW + MAX_RESERVATION), statuses) is ReserveResult.ACCEPTED
    assert answer([], r(1, 1, expiry=NOW + MAX_RESERVATION + timedelta(seconds=1)), statuses) is (
        ReserveResult.REJECTED
    )
    far = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert answer([], r(1, 1, expiry=far), statuses) is ReserveResult.REJECTED
    # A station clock pushed to the end of time by a hostile CSMS: compared, never overflowing.
    end = datetime.max.replace(tzinfo=UTC)
    almost = end - timedelta(seconds=1)
    assert reserve_answer([], r(1, 1, expiry=end), {1: A}, almost, station=A, zero_supported=True) is (
        ReserveResult.ACCEPTED
    )


def test_reserved_connector_is_occupied_for_another_reservation_but_replaced_by_its_own_id() -> None:
    book = [r(1, 1)]
    assert answer(book, r(2, 1, "TAG2"), {1: A}) is ReserveResult.OCCUPIED
    assert answer(book, r(1, 1, "TAG2"), {1: A}) is ReserveResult.ACCEPTED  # same id: a replacement


def test_connector_zero_needs_support_and_a_free_connector_per_reservation() -> None:
    assert answer([], r(1, 0), {1: A}, zero=False) is ReserveResult.REJECTED
    assert answer([], r(1, 0), {1: A, 2: OCC}) is ReserveResult.ACCEPTED
    assert answer([r(1, 0)], r(2, 0), {1: A, 2: OCC}) is ReserveResult.OCCUPIED
    assert answer([r(1, 0)], r(2, 0), {1: A, 2: A}) is ReserveResult.ACCEPTED
    assert answer([], r(1, 0), {1: F, 2: F}) is ReserveResult.FAULTED
    assert answer([], r(1, 0), {1: U, 2: F}) is ReserveResult.UNAVAILABLE
    assert answer([], r(1, 0), {1: OCC, 2: F}) is ReserveResult.OCCUPIED
    # The last free connector a connector-0 reservation needs cannot be reserved for someone else.
    assert answer([r(1, 0)], r(2, 1, "TAG2"), {1: A}) is ReserveResult.OCCUPIED


def test_claims_on_a_reserved_connector() -> None:
    book = [r(1, 1, "TAG1", parent="FLEET")]
    assert claim(book, 1, "TAG1", None, {1}).reservation == book[0]
    assert claim(book, 1, "TAG2", "FLEET", {1}).reservation == book[0]  # §5.13 parentIdTag
    assert not claim(book, 1, "TAG2", "OTHER", {1}).allowed
    assert not claim(book, 1, "TAG2", None, {1}).allowed
    # Another connector is not held by it.
    assert claim(book, 2, "TAG2", None, {1, 2}) == claim([], 2, "TAG2", None, {1, 2})
    assert claim(book, 2, "TAG2", None, {1, 2}).allowed


def test_claims_with_a_connector_zero_reservation() -> None:
    book = [r(7, 0, "TAG1")]
    assert claim(book, 1, "TAG1", None, {1}).reservation == book[0]
    assert not claim(book, 1, "OTHER", None, {1}).allowed  # the last free connector is held
    assert claim(book, 1, "OTHER", None, {1, 2}).allowed  # one stays free
    assert held(book, {1}) == {1} and held(book, {1, 2}) == set()


def test_a_parent_is_worth_asking_for_only_if_a_reservation_has_one() -> None:
    assert not parent_may_admit([r(1, 1)], 1)
    assert parent_may_admit([r(1, 1, parent="FLEET")], 1)
    assert not parent_may_admit([r(1, 1, parent="FLEET")], 2)
    assert parent_may_admit([r(1, 0, parent="FLEET")], 2)


def test_transaction_started_keeps_its_reservation_id_and_reads_older_events() -> None:
    started = TransactionStarted("tx-1", 1, "TAG1", 100, NOW, 42)
    assert decode(*encode(started)) == started
    kind, payload = encode(TransactionStarted("tx-1", 1, "TAG1", 100, NOW))
    del payload["reservation_id"]  # as written before reservations
    assert decode(kind, payload).reservation_id is None  # type: ignore[union-attr]


def test_store_keeps_replaces_and_ends_reservations_with_the_transaction(tmp_path: Path) -> None:
    store = Store(tmp_path / "agent.db")
    try:
        store.put_reservation(r(1, 1))
        store.put_reservation(r(2, 0, "TAG2", parent="FLEET"))
        store.put_reservation(r(1, 2, "TAG9"))  # same id: replaced
        assert store.reservations() == [r(1, 2, "TAG9"), r(2, 0, "TAG2", parent="FLEET")]
        store.begin_transaction(TransactionStarted("tx-1", 2, "TAG9", 0, NOW, reservation_id=1))
        assert store.reservations() == [r(2, 0, "TAG2", parent="FLEET")]  # in the start's commit
        store.delete_reservations([2, 99])
        assert store.reservations() == []
    finally:
        store.close()


def test_a_file_from_before_reservations_opens_and_takes_them(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.executescript(OLD_SCHEMA)
        old.execute("INSERT INTO kv VALUES ('operative.1', '0')")
    old.close()
    store = Store(path)
    try:
        assert store.get("operative.1") == "0" and store.reservations() == []
        store.put_reservation(r(3, 1))
        assert store.reservations() == [r(3, 1)]
    finally:
        store.close()


STATUSES = st.sampled_from([A, OCC, U, F])
REQUESTS = st.builds(
    Reservation,
    st.integers(1, 6),
    st.integers(0, 3),
    st.sampled_from(["TAG1", "TAG2", "TAG3"]),
    st.just(LATER),
    st.sampled_from([None, "FLEET"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STATUSES, min_size=1, max_size=3), st.lists(REQUESTS, max_size=12))
def test_accepted_reservations_never_outnumber_the_free_connectors(
    status_list: list[ConnectorStatus], requests: list[Reservation]
) -> None:
    """Whatever ReserveNow requests arrive, the accepted ones fit the free connectors: each reserved connector is
    free and held by one reservation, and the connector-0 ones have a free unreserved connector each, so every
    reservation can be honoured."""
    statuses = dict(enumerate(status_list, start=1))
    free = {cid for cid, s in statuses.items() if s is A}
    book: dict[int, Reservation] = {}
    for request in requests:
        result = reserve_answer(list(book.values()), request, statuses, NOW, station=A, zero_supported=True)
        if result is ReserveResult.ACCEPTED:
            book[request.reservation_id] = request
        specific = [b.connector_id for b in book.values() if b.connector_id]
        assert len(specific) == len(set(specific)) and set(specific) <= free
        zero = [b for b in book.values() if b.connector_id == 0]
        assert len(zero) <= len(free - set(specific))
        # Each reservation's own idTag may start somewhere, on a reservation of its own.
        shown = held(book.values(), free)
        for reservation in book.values():
            where = [reservation.connector_id] if reservation.connector_id else sorted(free)
            claims = [claim(book.values(), cid, reservation.id_tag, None, free) for cid in where]
            assert any(c.allowed and c.reservation is not None for c in claims)
            assert all(c.reservation.admits(reservation.id_tag, None) for c in claims if c.reservation)
            if reservation.connector_id:
                assert reservation.connector_id in shown
