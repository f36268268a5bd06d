"""OCPP-J date-times: aware UTC datetimes to and from ISO 8601 text (shared by the 1.6 handlers)."""

from __future__ import annotations

from datetime import UTC, datetime


def ocpp_time(when: datetime) -> str:
    """An aware datetime as OCPP-J wants it: ISO 8601 UTC with a Z."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An OCPP timestamp as an aware UTC datetime (naive ones are taken as UTC)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)
