"""Typed outbox events: what the core tells the central system, in version-neutral form.

The core produces them; the storage port persists them in order (the outbox) and hands them back as
``OutboxMessage``; each version's adapter turns them into frames (1.6: StartTransaction, MeterValues,
StopTransaction, SecurityEventNotification; 2.0.1: TransactionEvent Started/Updated/Ended, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chargepoint.core.model import ConnectorState, ErrorCode, Sample, StopReason


@dataclass(frozen=True, slots=True)
class TransactionStarted:
    """A transaction began: the energy register at its start."""

    connector_id: int
    id_tag: str
    meter_start_wh: int
    timestamp: datetime


@dataclass(frozen=True, slots=True)
class TransactionUpdated:
    """Meter readings taken during a transaction."""

    connector_id: int
    samples: tuple[Sample, ...]


@dataclass(frozen=True, slots=True)
class TransactionEnded:
    """A transaction ended: the register at its end, why, who ended it, and the samples kept for the end."""

    connector_id: int
    meter_stop_wh: int
    timestamp: datetime
    reason: StopReason
    id_tag: str | None = None
    transaction_data: tuple[Sample, ...] = ()


@dataclass(frozen=True, slots=True)
class MeterReadings:
    """Meter readings outside any transaction (clock-aligned values of an idle connector)."""

    connector_id: int
    samples: tuple[Sample, ...]


@dataclass(frozen=True, slots=True)
class SecurityEvent:
    """A security event the central system must hear of, queued so that none is lost offline."""

    type: str
    timestamp: datetime
    tech_info: str | None = None


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """A connector's (connector 0: the station's) state or error changed; reported live, never queued."""

    connector_id: int
    state: ConnectorState
    error_code: ErrorCode
    info: str | None
    timestamp: datetime


TransactionEvent = TransactionStarted | TransactionUpdated | TransactionEnded
OutboxEvent = TransactionStarted | TransactionUpdated | TransactionEnded | MeterReadings | SecurityEvent


class OutboxKind:
    """The persisted kind of each queued event (the store's ``kind`` column; values kept from older files)."""

    START = "start"
    STOP = "stop"
    METER = "meter"
    SECURITY = "security"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One queued event as persisted, oldest first.

    ``seq_no`` is the event's number within its transaction (0, 1, 2, ...; None outside one): the count of
    that transaction's messages the central system has acknowledged, persisted with each acknowledgement. So the
    numbers the central system sees never have a gap, also across a crash, a dead letter or a MeterValues
    dropped on overflow, and a message resent after a crash keeps its number (OCPP 2.0.1 E01.FR.16 seqNo).
    """

    seq: int
    kind: str
    local_tx_id: int | None
    payload: dict[str, Any]
    attempts: int
    seq_no: int | None = None

    def event(self) -> OutboxEvent:
        """The typed event; ValueError/KeyError/TypeError if the payload is not one (a dead letter)."""
        return decode(self.kind, self.payload, in_transaction=self.local_tx_id is not None)


def _samples(data: Any) -> tuple[Sample, ...]:
    return tuple(Sample.from_json(s) for s in data or [])


def encode(event: OutboxEvent) -> tuple[str, dict[str, Any]]:
    """The persisted kind and JSON form of an event (the same keys older versions wrote)."""
    if isinstance(event, TransactionStarted):
        return OutboxKind.START, {
            "connector_id": event.connector_id,
            "id_tag": event.id_tag,
            "meter_start_wh": event.meter_start_wh,
            "timestamp": event.timestamp.isoformat(),
        }
    if isinstance(event, TransactionEnded):
        return OutboxKind.STOP, {
            "connector_id": event.connector_id,
            "meter_stop_wh": event.meter_stop_wh,
            "timestamp": event.timestamp.isoformat(),
            "reason": event.reason.value,
            "id_tag": event.id_tag,
            "transaction_data": [s.to_json() for s in event.transaction_data],
        }
    if isinstance(event, TransactionUpdated | MeterReadings):
        return OutboxKind.METER, {
            "connector_id": event.connector_id,
            "samples": [s.to_json() for s in event.samples],
        }
    return OutboxKind.SECURITY, {
        "type": event.type,
        "timestamp": event.timestamp.isoformat(),
        "tech_info": event.tech_info,
    }


def decode(kind: str, data: dict[str, Any], *, in_transaction: bool = True) -> OutboxEvent:
    """Inverse of ``encode``; a meter message is a TransactionUpdated when it belongs to a transaction."""
    if kind == OutboxKind.START:
        return TransactionStarted(
            int(data["connector_id"]),
            str(data["id_tag"]),
            int(data["meter_start_wh"]),
            datetime.fromisoformat(data["timestamp"]),
        )
    if kind == OutboxKind.STOP:
        return TransactionEnded(
            int(data["connector_id"]),
            int(data["meter_stop_wh"]),
            datetime.fromisoformat(data["timestamp"]),
            StopReason(data["reason"]),
            data.get("id_tag") or None,
            _samples(data.get("transaction_data")),
        )
    if kind == OutboxKind.METER:
        cls = TransactionUpdated if in_transaction else MeterReadings
        return cls(int(data["connector_id"]), _samples(data["samples"]))
    if kind == OutboxKind.SECURITY:
        return SecurityEvent(
            str(data["type"]), datetime.fromisoformat(data["timestamp"]), data.get("tech_info")
        )
    raise ValueError(f"unknown outbox kind {kind!r}")
