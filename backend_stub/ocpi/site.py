"""Where a charger stands and what its connectors are, as its OCPI Location publishes them (OCPI 2.2.1 §8.3.1,
§8.3.3): per-charger values set by the operator, OcpiConfig's values where none is set."""

from __future__ import annotations

import re
from dataclasses import fields as dataclass_fields
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from backend_stub.ocpi.config import OcpiConfig

# OCPI 2.2.1 §8.4.4 ConnectorType
CONNECTOR_TYPES: Final = frozenset(
    {
        "CHADEMO",
        "CHAOJI",
        *(f"DOMESTIC_{c}" for c in "ABCDEFGHIJKLMNO"),
        "GBT_AC",
        "GBT_DC",
        "IEC_60309_2_single_16",
        "IEC_60309_2_three_16",
        "IEC_60309_2_three_32",
        "IEC_60309_2_three_64",
        "IEC_62196_T1",
        "IEC_62196_T1_COMBO",
        "IEC_62196_T2",
        "IEC_62196_T2_COMBO",
        "IEC_62196_T3A",
        "IEC_62196_T3C",
        "NEMA_5_20",
        "NEMA_6_30",
        "NEMA_6_50",
        "NEMA_10_30",
        "NEMA_10_50",
        "NEMA_14_30",
        "NEMA_14_50",
        "PANTOGRAPH_BOTTOM_UP",
        "PANTOGRAPH_TOP_DOWN",
        "TESLA_R",
        "TESLA_S",
    }
)
CONNECTOR_FORMATS: Final = frozenset({"SOCKET", "CABLE"})  # OCPI 2.2.1 §8.4.5
POWER_TYPES: Final = frozenset(
    {"AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"}
)  # §8.4.21
# Free-text fields and their OCPI 2.2.1 §8.3.1 lengths.
TEXT_FIELDS: Final = {"address": 45, "city": 45, "postal_code": 10}
CHOICE_FIELDS: Final = {
    "connector_standard": CONNECTOR_TYPES,
    "connector_format": CONNECTOR_FORMATS,
    "power_type": POWER_TYPES,
}
INT_FIELDS: Final = {"max_voltage_v": (1, 2000), "max_current_a": (1, 2000)}
# GeoLocation (OCPI 2.2.1 §8.4.13): decimal degrees as strings, 5-7 decimals; the range is checked besides.
COORDINATES: Final = {"latitude": Decimal(90), "longitude": Decimal(180)}
FIELDS: Final = frozenset({*TEXT_FIELDS, *CHOICE_FIELDS, *INT_FIELDS, *COORDINATES, "country", "time_zone"})
_COUNTRY = re.compile(r"[A-Z]{3}")  # ISO 3166-1 alpha-3


class InvalidDetail(ValueError):
    """A location detail is malformed or out of range; names the field."""

    def __init__(self, field: str, message: str) -> None:
        """Keep the field's name."""
        super().__init__(f"{field}: {message}")
        self.field = field


def check(body: Any) -> dict[str, Any]:
    """The details of a PATCH, each validated and normalised; None values (back to the default) kept."""
    if not isinstance(body, dict) or not body:
        raise InvalidDetail("body", f"a non-empty JSON object with some of {sorted(FIELDS)}")
    unknown = set(body) - FIELDS
    if unknown:
        raise InvalidDetail(sorted(unknown)[0], f"unknown field; known: {sorted(FIELDS)}")
    return {name: None if value is None else _value(name, value) for name, value in body.items()}


def _value(name: str, value: Any) -> Any:
    if name in TEXT_FIELDS:
        if not isinstance(value, str) or not 1 <= len(value.strip()) <= TEXT_FIELDS[name]:
            raise InvalidDetail(name, f"a string of 1-{TEXT_FIELDS[name]} characters")
        if not value.isprintable():
            raise InvalidDetail(name, "printable characters only")
        return value.strip()
    if name in CHOICE_FIELDS:
        if value not in CHOICE_FIELDS[name]:
            raise InvalidDetail(name, f"one of {sorted(CHOICE_FIELDS[name])}")
        return value
    if name in INT_FIELDS:
        low, high = INT_FIELDS[name]
        if type(value) is not int or not low <= value <= high:
            raise InvalidDetail(name, f"an integer in {low}-{high}")
        return value
    if name in COORDINATES:
        return _degrees(name, value)
    if name == "country":
        if not isinstance(value, str) or not _COUNTRY.fullmatch(value):
            raise InvalidDetail(name, "an ISO 3166-1 alpha-3 code (three capital letters)")
        return value
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise InvalidDetail(name, "an IANA time zone name")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidDetail(name, f"unknown time zone {value[:60]!r}") from None
    return value


def _degrees(name: str, value: Any) -> str:
    """Decimal degrees within ±limit, as the OCPI string with 6 decimals."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)) or len(str(value)) > 20:
        raise InvalidDetail(name, "decimal degrees (a number or a decimal string)")
    try:
        degrees = Decimal(str(value))
    except InvalidOperation:
        raise InvalidDetail(name, "decimal degrees (a number or a decimal string)") from None
    limit = COORDINATES[name]
    if not degrees.is_finite() or not -limit <= degrees <= limit:
        raise InvalidDetail(name, f"within -{limit} and {limit} degrees")
    return f"{degrees:.6f}"


def effective(config: OcpiConfig, overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Every detail of a charger: its own values over the configured defaults."""
    known = {f.name for f in dataclass_fields(config)} & FIELDS
    values = {name: getattr(config, name) for name in known}
    values.update({k: v for k, v in (overrides or {}).items() if k in FIELDS and v is not None})
    return values
