"""Reservations (OCPP 1.6 §3.11, §5.13 ReserveNow, §5.2 CancelReservation; 2.0.1 block H): pure rules and the book.

A reservation holds one connector (``connector_id`` > 0) for an idTag, or, on connector 0, makes sure one
connector stays free for it. It ends when its transaction starts (the start event carries its id, in the same
store commit), when its expiry passes, when the CSMS cancels it, or when its connector (connector 0: the station)
becomes Faulted or Unavailable (§3.11). The rules here are functions of data and the time they are given; the
book keeps the reservations in force and writes every change through the storage port.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from chargepoint.core.model import ConnectorStatus

if TYPE_CHECKING:  # the port imports this module for Reservation
    from chargepoint.core.storage import ReservationStorage

# The longest reservation taken: a CSMS asking for one until 9999-12-31 would hold the connector for good (and
# break any date arithmetic near datetime.max); real reservations last minutes to hours.
MAX_RESERVATION = timedelta(days=7)
MAX_ID_TAG_LENGTH = 20  # OCPP 1.6 IdToken: CiString20Type


class ReserveResult(Enum):
    """Answer to a reservation request (OCPP 1.6 §7.38 ReservationStatus)."""

    ACCEPTED = "accepted"
    FAULTED = "faulted"
    OCCUPIED = "occupied"
    REJECTED = "rejected"
    UNAVAILABLE = "unavailable"


class CancelResult(Enum):
    """Answer to a cancellation (OCPP 1.6 §7.4 CancelReservationStatus)."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Reservation:
    """One reservation: a connector (0: any) held for an idTag (or any idTag of its parent) until ``expiry``."""

    reservation_id: int
    connector_id: int
    id_tag: str
    expiry: datetime
    parent_id_tag: str | None = None

    def admits(self, id_tag: str, parent_id_tag: str | None) -> bool:
        """Whether ``id_tag`` (whose parent is ``parent_id_tag``) may use this reservation (OCPP 1.6 §5.13)."""
        if id_tag == self.id_tag:
            return True
        return self.parent_id_tag is not None and parent_id_tag == self.parent_id_tag

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form for storage."""
        return {
            "reservation_id": self.reservation_id,
            "connector_id": self.connector_id,
            "id_tag": self.id_tag,
            "expiry": self.expiry.isoformat(),
            "parent_id_tag": self.parent_id_tag,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reservation:
        """Inverse of ``to_json``."""
        return cls(
            int(data["reservation_id"]),
            int(data["connector_id"]),
            str(data["id_tag"]),
            datetime.fromisoformat(data["expiry"]),
            data.get("parent_id_tag"),
        )


@dataclass(frozen=True, slots=True)
class Claim:
    """What a reservation check says about an idTag starting on a connector."""

    allowed: bool
    reservation: Reservation | None = None  # the reservation the start uses (and so ends)


def _specific(book: Iterable[Reservation]) -> dict[int, Reservation]:
    return {r.connector_id: r for r in book if r.connector_id != 0}


def _anywhere(book: Iterable[Reservation]) -> list[Reservation]:
    return [r for r in book if r.connector_id == 0]


def held(book: Iterable[Reservation], free: set[int]) -> set[int]:
    """The connectors that show Reserved: each one reserved itself, and, when the connector-0 reservations need
    every free connector left (§5.13: one must stay available for each), all of those."""
    book = list(book)
    specific = _specific(book)
    unreserved = free - specific.keys()
    zero = len(_anywhere(book))
    return set(specific) | (unreserved if zero and len(unreserved) <= zero else set())


def claim(
    book: Iterable[Reservation], connector_id: int, id_tag: str, parent_id_tag: str | None, free: set[int]
) -> Claim:
    """May ``id_tag`` start on ``connector_id``, and which reservation does it use (OCPP 1.6 §5.13)?

    A connector reserved itself only takes its reservation's idTag or parent; a connector-0 reservation that
    admits the idTag is used wherever it starts; any other idTag may start only if enough free connectors remain
    for the connector-0 reservations. ``free`` are the idle, usable connectors (reserved or not)."""
    book = list(book)
    own = _specific(book).get(connector_id)
    if own is not None:
        return Claim(own.admits(id_tag, parent_id_tag), own if own.admits(id_tag, parent_id_tag) else None)
    anywhere = _anywhere(book)
    for reservation in anywhere:
        if reservation.admits(id_tag, parent_id_tag):
            return Claim(True, reservation)
    left = free - _specific(book).keys() - {connector_id}
    return Claim(len(left) >= len(anywhere))


def parent_may_admit(book: Iterable[Reservation], connector_id: int) -> bool:
    """Whether a reservation that holds ``connector_id`` could admit another idTag by its parent (worth an
    Authorize to learn the parent); without one, a stranger is refused without asking anyone (OCTT TC_046_1)."""
    book = list(book)
    own = _specific(book).get(connector_id)
    candidates = [own] if own is not None else _anywhere(book)
    return any(r.parent_id_tag is not None for r in candidates)


def reserve_answer(
    book: Iterable[Reservation],
    request: Reservation,
    statuses: Mapping[int, ConnectorStatus],
    now: datetime,
    *,
    station: ConnectorStatus,
    zero_supported: bool,
) -> ReserveResult:
    """The answer to ``request`` given the reservations in force (one with the same id is replaced, §5.13) and
    each connector's status apart from reservations (``statuses``: Available, Occupied, Unavailable, Faulted)."""
    if not timedelta(0) < request.expiry - now <= MAX_RESERVATION:  # a difference: never overflows
        return ReserveResult.REJECTED  # already expired, or for longer than we hold a connector
    if not 0 < len(request.id_tag) <= MAX_ID_TAG_LENGTH:
        return ReserveResult.REJECTED
    others = [r for r in book if r.reservation_id != request.reservation_id]
    if station is ConnectorStatus.UNAVAILABLE:
        return ReserveResult.UNAVAILABLE
    if station is ConnectorStatus.FAULTED:
        return ReserveResult.FAULTED
    free = {cid for cid, status in statuses.items() if status is ConnectorStatus.AVAILABLE}
    if request.connector_id == 0:
        if not zero_supported:
            return ReserveResult.REJECTED  # ReserveConnectorZeroSupported (§9.5)
        if len(free - _specific(others).keys()) > len(_anywhere(others)):
            return ReserveResult.ACCEPTED
        return _why_none_free(statuses.values())
    status = statuses.get(request.connector_id)
    if status is None:
        return ReserveResult.REJECTED  # no such connector
    if status is not ConnectorStatus.AVAILABLE:
        return _why_none_free([status])
    if request.connector_id in _specific(others):
        return ReserveResult.OCCUPIED  # reserved for the same or another idTag (§5.13)
    if request.connector_id in held(others, free):
        return ReserveResult.OCCUPIED  # the last free connector a connector-0 reservation needs
    return ReserveResult.ACCEPTED


def _why_none_free(statuses: Iterable[ConnectorStatus]) -> ReserveResult:
    """Faulted or Unavailable when every connector is so, otherwise Occupied."""
    found = set(statuses)
    if found == {ConnectorStatus.FAULTED}:
        return ReserveResult.FAULTED
    if found and found <= {ConnectorStatus.UNAVAILABLE, ConnectorStatus.FAULTED}:
        return ReserveResult.UNAVAILABLE
    return ReserveResult.OCCUPIED


class ReservationBook:
    """The reservations in force, kept in memory and written through the storage port on every change."""

    __slots__ = ("by_id", "store")  # one per agent: a fleet holds thousands

    def __init__(self, store: ReservationStorage, reservations: Iterable[Reservation] = ()) -> None:
        self.store = store
        self.by_id: dict[int, Reservation] = {r.reservation_id: r for r in reservations}

    def __iter__(self) -> Iterator[Reservation]:
        return iter(list(self.by_id.values()))

    def __len__(self) -> int:
        return len(self.by_id)

    def put(self, reservation: Reservation) -> Future[Any]:
        """Take (or replace, by id) a reservation; the store's future of the write."""
        future = self.store.put_reservation(reservation)
        self.by_id[reservation.reservation_id] = reservation
        return future

    def remove(self, ids: Iterable[int], *, persist: bool = True) -> list[Reservation]:
        """End the reservations ``ids`` (those in force); ``persist=False`` when the store ended them already."""
        gone = [self.by_id.pop(i) for i in list(ids) if i in self.by_id]
        if gone and persist:
            self.store.delete_reservations([r.reservation_id for r in gone])
        return gone

    def expired(self, now: datetime) -> list[int]:
        """Ids of the reservations whose expiry has come (§3.11: they end then)."""
        return [r.reservation_id for r in self.by_id.values() if r.expiry <= now]

    def on_connector(self, connector_id: int) -> list[int]:
        """Ids of the reservations that hold ``connector_id`` itself (0: those of the charge point)."""
        return [r.reservation_id for r in self.by_id.values() if r.connector_id == connector_id]

    def next_expiry(self) -> datetime | None:
        """When the next reservation expires."""
        return min((r.expiry for r in self.by_id.values()), default=None)
