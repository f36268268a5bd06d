"""OCPP-J timestamps: ISO 8601 UTC, written with a Z, read leniently (a naive one is taken as UTC)."""

from __future__ import annotations

from datetime import UTC, datetime


def ocpp_time(when: datetime) -> str:
    """An aware datetime as OCPP-J wants it: ISO 8601 UTC with a Z."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An OCPP timestamp as an aware UTC datetime (naive ones are taken as UTC)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)
