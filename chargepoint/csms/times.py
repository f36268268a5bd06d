"""OCPP-J timestamps: ISO 8601 UTC, written with a Z, read leniently (a naive one is taken as UTC)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import FormatViolationError


def ocpp_time(when: datetime) -> str:
    """An aware datetime as OCPP-J wants it: ISO 8601 UTC with a Z."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """An OCPP timestamp as an aware UTC datetime (naive ones are taken as UTC)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def check_times(payload: dict[str, Any], *paths: tuple[str, ...]) -> None:
    """Raise FormatViolation (OCPP-J §4.2.3; 1.6 spells it FormationViolation) for a field at one of ``paths``
    (keys from the payload down) that is a string but no date-time: the schemas type them only as strings."""
    for path in paths:
        value: Any = payload
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if not isinstance(value, str):
            continue  # missing or not a string: the schema check answers
        try:
            parse_time(value)
        except (ValueError, OverflowError) as exc:
            raise FormatViolationError(details={"cause": f"{'.'.join(path)} is not a date-time"}) from exc
