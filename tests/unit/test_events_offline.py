"""The offline flag of transaction events survives the outbox's JSON form, and events written before it read as
online (OCPP 2.0.1 TransactionEventRequest.offline)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chargepoint.core.events import (
    OutboxEvent,
    OutboxKind,
    ReservationEnded,
    TransactionEnded,
    TransactionStarted,
    TransactionUpdated,
    decode,
    encode,
)
from chargepoint.core.model import ReadingContext, Sample, StopReason

T = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SAMPLE = Sample(T, ReadingContext.SAMPLE_PERIODIC)
EVENTS: list[OutboxEvent] = [
    TransactionStarted("tx-1", 1, "TAG", 100, T, offline=True),
    TransactionUpdated("tx-1", 1, (SAMPLE,), offline=True),
    TransactionEnded("tx-1", 1, 200, T, StopReason.POWER_LOSS, "TAG", (SAMPLE,), offline=True),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_offline_round_trips(event: OutboxEvent) -> None:
    kind, data = encode(event)
    assert data["offline"] is True
    assert decode(kind, data) == event


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_an_online_event_is_stored_as_before_and_an_old_one_reads_as_online(event: OutboxEvent) -> None:
    online = type(event)(**{**{f: getattr(event, f) for f in event.__slots__}, "offline": False})  # type: ignore[attr-defined]
    kind, data = encode(online)
    assert "offline" not in data  # the keys older versions wrote, unchanged
    assert decode(kind, data) == online


@pytest.mark.parametrize("expired", [True, False], ids=["expired", "removed"])
def test_a_reservation_end_round_trips_through_the_outbox_form(expired: bool) -> None:
    """ReservationEnded (2.0.1 ReservationStatusUpdate Expired/Removed) is stored as its own kind and reads back."""
    event = ReservationEnded(42, expired)
    kind, data = encode(event)
    assert kind == OutboxKind.RESERVATION
    assert decode(kind, data) == event
