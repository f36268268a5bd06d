"""Tariff engine on the OCPI 2.2.1 Tariff model: parse, validate, serialize and price a charging session.

Pure Python, no I/O. Rules followed (OCPI 2.2.1 mod_tariffs, "Tariff object", "PriceComponent",
"TariffRestrictions") and the interpretations made where the spec is loose:

* Per dimension (ENERGY, FLAT, TIME, PARKING_TIME) the FIRST element whose restrictions match and that has a
  price component of that dimension applies; inside that element its first component of that type.
* The session is cut wherever a restriction can change its verdict: local time-of-day marks and local
  midnights (time_of_day/date/day_of_week), session-duration marks (min/max_duration, counted from the
  session start, parking included), cumulative-energy marks (min/max_kwh, energy assumed linear inside a
  period). Each slice is evaluated at its midpoint, so boundaries never sit on an evaluation point.
* Intervals: start_time/start_date/min_* inclusive, end_time/end_date/max_* exclusive; start_time > end_time
  wraps past midnight; start_time == end_time means all day; day_of_week uses the local date of the instant.
  min/max_current need a current reading: without one the element does not match. Power without a reading is
  the period's average power. Elements with a `reservation` restriction never match a charging session.
* TIME is billed for charging time, PARKING_TIME for time plugged in but not charging, FLAT once per session
  (the FLAT component active in the first slice that has one).
* step_size (OCPI 2.2.1 PriceComponent note): applied once per session and dimension to the total billable
  volume (volume in slices where that dimension has a price), using the step_size of the last component of
  that dimension that billed a non-zero volume; the rounding surplus is billed at that component's price.
  ENERGY, TIME and PARKING_TIME are each rounded on their own total (this is what the 2.2.1 worked examples
  compute: "complex tariff" 147+42 min -> 150+45 min, "switching element #1" 0.75 EUR). The spec's prose
  says otherwise ("once for PARKING_TIME and TIME combined", "only ... for the total parking time" when both
  are used); where prose and its own worked examples disagree we follow the examples, whose numbers a CPO's
  invoices get checked against. step_size 0 = none.
* VAT per component: cost incl. VAT = cost * (1 + vat/100); a missing vat means no VAT (incl == excl).
* min_price/max_price clamp the excl. VAT total with their excl_vat and the incl. VAT total with their
  incl_vat (when given), separately, as the spec's notes say.
* Arithmetic is exact: Decimal inputs are turned into rationals (fractions.Fraction, exact for every Decimal),
  so pro-rating by time (s/3600) never rounds. The only rounding happens once, at the end: totals -> integer
  minor units of the currency (ISO 4217 exponent: EUR 2, JPY 0, KWD 3) with ROUND_HALF_UP (half away from zero).
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from itertools import pairwise
from typing import Any, TypeVar

__all__ = [
    "PARKED_STATUSES",
    "Cdr",
    "CdrDimension",
    "ChargingPeriod",
    "DayOfWeek",
    "DimensionType",
    "MeterSample",
    "Price",
    "PriceComponent",
    "ReservationRestrictionType",
    "SessionPeriod",
    "Tariff",
    "TariffElement",
    "TariffRestrictions",
    "TariffType",
    "calculate_cdr",
    "currency_exponent",
    "periods_from_samples",
]

_T = TypeVar("_T")

# ISO 4217 minor-unit exponents that differ from 2.
_EXPONENTS: dict[str, int] = {
    code: exponent
    for codes, exponent in (
        ("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF", 0),
        ("BHD IQD JOD KWD LYD OMR TND", 3),
        ("CLF UYW", 4),
    )
    for code in codes.split()
}
_CURRENCY_RE = re.compile(r"[A-Z]{3}")
_TIME_RE = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]")
_DATE_RE = re.compile(r"[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
_US = timedelta(microseconds=1)
_EXACT_PLACES = 9

#: OCPP connector statuses that mean "plugged in but not charging" whatever the meter says.
PARKED_STATUSES = frozenset({"SuspendedEV", "Finishing"})


class DimensionType(StrEnum):
    """OCPI TariffDimensionType."""

    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class DayOfWeek(StrEnum):
    """OCPI DayOfWeek, in `datetime.weekday()` order."""

    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"


class ReservationRestrictionType(StrEnum):
    """OCPI ReservationRestrictionType."""

    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class TariffType(StrEnum):
    """OCPI TariffType."""

    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


_WEEKDAYS = tuple(DayOfWeek)


def currency_exponent(currency: str) -> int:
    """Number of minor-unit digits of an ISO 4217 currency (EUR 2, JPY 0, KWD 3)."""
    return _EXPONENTS.get(currency, 2)


# --------------------------------------------------------------------------- validation helpers


def _check_decimal(name: str, value: object, *, optional: bool = False, minimum: int | None = 0) -> None:
    """Raise ValueError naming `name` unless value is a finite Decimal >= minimum (or None when optional)."""
    if value is None and optional:
        return
    if not isinstance(value, Decimal) or not value.is_finite():
        raise ValueError(f"{name}: expected a finite Decimal, got {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}, got {value}")


def _check_int(name: str, value: object, *, optional: bool = False) -> None:
    """Raise ValueError naming `name` unless value is an int >= 0 (or None when optional)."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name}: must be >= 0, got {value}")


def _check_aware(name: str, value: object, *, optional: bool = False) -> None:
    """Raise ValueError naming `name` unless value is a timezone-aware datetime."""
    if value is None and optional:
        return
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValueError(f"{name}: expected a timezone-aware datetime, got {value!r}")


def _prefixed(path: str, build: Callable[[], _T]) -> _T:
    """Run a constructor, prefixing the field named in its ValueError with `path`."""
    try:
        return build()
    except ValueError as exc:
        if not path:
            raise
        raise ValueError(f"{path}.{exc}") from None


def _get_number(data: Mapping[str, Any], key: str, path: str) -> Decimal | None:
    """Read an optional JSON number as an exact Decimal (floats via their shortest repr)."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise ValueError(f"{path}{key}: expected a number, got {value!r}")
    number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite():
        raise ValueError(f"{path}{key}: must be finite, got {value!r}")
    return number


def _get_int(data: Mapping[str, Any], key: str, path: str) -> int | None:
    """Read an optional JSON integer (2.0 is accepted, 2.5 and true are not)."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{path}{key}: expected an integer, got {value!r}")
    return value


def _get_str(data: Mapping[str, Any], key: str, path: str) -> str | None:
    """Read an optional JSON string."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{path}{key}: expected a string, got {value!r}")
    return value


def _get_list(data: Mapping[str, Any], key: str, path: str) -> list[Any]:
    """Read an optional JSON array (missing -> empty)."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{path}{key}: expected a list, got {value!r}")
    return value


def _get_obj(data: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any] | None:
    """Read an optional JSON object."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValueError(f"{path}{key}: expected an object, got {value!r}")
    return value


def _get_enum(data: Mapping[str, Any], key: str, path: str, enum: type[StrEnum]) -> str | None:
    """Read an optional JSON string that must be a member of `enum`."""
    value = _get_str(data, key, path)
    if value is not None and value not in enum.__members__:
        raise ValueError(f"{path}{key}: must be one of {', '.join(enum.__members__)}, got {value!r}")
    return value


def _get_datetime(data: Mapping[str, Any], key: str, path: str) -> datetime | None:
    """Read an optional OCPI DateTime; no zone designator means UTC (OCPI 2.2.1 types, DateTime)."""
    text = _get_str(data, key, path)
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{path}{key}: not an RFC 3339 date-time: {text!r}") from None
    return value if value.utcoffset() is not None else value.replace(tzinfo=UTC)


def _require(data: Mapping[str, Any], key: str, path: str) -> None:
    """Raise ValueError if a required key is missing or null."""
    if data.get(key) is None:
        raise ValueError(f"{path}{key}: required field is missing")


def _json_number(value: Decimal) -> int | float:
    """Decimal -> JSON number: int when integral, else float (OCPI numbers carry at most 4 decimals)."""
    return int(value) if value == value.to_integral_value() else float(value)


def _json_datetime(value: datetime) -> str:
    """Format an aware datetime as an OCPI UTC DateTime ending in Z."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _require_mapping(value: object, path: str) -> Mapping[str, Any]:
    """Raise ValueError unless value is a JSON object."""
    if not isinstance(value, Mapping):
        raise ValueError(f"{path or 'tariff'}: expected an object, got {value!r}")
    return value


# --------------------------------------------------------------------------- tariff model


@dataclass(frozen=True)
class Price:
    """OCPI Price: an amount excl. VAT and optionally incl. VAT, in major units of the tariff currency."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None

    def __post_init__(self) -> None:
        """Validate both amounts are non-negative Decimals."""
        _check_decimal("excl_vat", self.excl_vat)
        _check_decimal("incl_vat", self.incl_vat, optional=True)

    @classmethod
    def from_ocpi(cls, data: Mapping[str, Any], path: str = "") -> Price:
        """Parse an OCPI Price object."""
        data = _require_mapping(data, path)
        p = f"{path}." if path else ""
        _require(data, "excl_vat", p)
        excl, incl = _get_number(data, "excl_vat", p), _get_number(data, "incl_vat", p)
        assert excl is not None
        return _prefixed(path, lambda: cls(excl_vat=excl, incl_vat=incl))

    def to_ocpi(self) -> dict[str, Any]:
        """Serialize as an OCPI Price object."""
        out: dict[str, Any] = {"excl_vat": _json_number(self.excl_vat)}
        if self.incl_vat is not None:
            out["incl_vat"] = _json_number(self.incl_vat)
        return out


@dataclass(frozen=True)
class PriceComponent:
    """OCPI PriceComponent: price per kWh / per session / per hour, excl. VAT; step_size in Wh or seconds."""

    type: DimensionType
    price: Decimal
    step_size: int
    vat: Decimal | None = None

    def __post_init__(self) -> None:
        """Validate type, non-negative price, vat in 0..100 and step_size >= 0."""
        if not isinstance(self.type, DimensionType):
            raise ValueError(f"type: expected a DimensionType, got {self.type!r}")
        _check_decimal("price", self.price)
        _check_decimal("vat", self.vat, optional=True)
        if self.vat is not None and self.vat > 100:
            raise ValueError(f"vat: a percentage must be <= 100, got {self.vat}")
        _check_int("step_size", self.step_size)

    @classmethod
    def from_ocpi(cls, data: Mapping[str, Any], path: str) -> PriceComponent:
        """Parse an OCPI PriceComponent object."""
        data = _require_mapping(data, path)
        p = f"{path}."
        for key in ("type", "price", "step_size"):
            _require(data, key, p)
        kind = _get_enum(data, "type", p, DimensionType)
        price, vat = _get_number(data, "price", p), _get_number(data, "vat", p)
        step = _get_int(data, "step_size", p)
        assert kind is not None and price is not None and step is not None
        return _prefixed(path, lambda: cls(DimensionType(kind), price, step, vat))

    def to_ocpi(self) -> dict[str, Any]:
        """Serialize as an OCPI PriceComponent object."""
        out: dict[str, Any] = {"type": self.type.value, "price": _json_number(self.price)}
        if self.vat is not None:
            out["vat"] = _json_number(self.vat)
        out["step_size"] = self.step_size
        return out


_RESTRICTION_NUMBERS = ("min_kwh", "max_kwh", "min_current", "max_current", "min_power", "max_power")


@dataclass(frozen=True)
class TariffRestrictions:
    """OCPI TariffRestrictions: when a TariffElement is active (local times/dates, kWh, A, kW, seconds)."""

    start_time: str | None = None
    end_time: str | None = None
    start_date: str | None = None
    end_date: str | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: tuple[DayOfWeek, ...] = ()
    reservation: ReservationRestrictionType | None = None

    def __post_init__(self) -> None:
        """Validate formats (HH:MM, YYYY-MM-DD), non-negative bounds and min <= max pairs."""
        for name in ("start_time", "end_time"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not _TIME_RE.fullmatch(value)):
                raise ValueError(f"{name}: expected HH:MM (00:00-23:59), got {value!r}")
        for name in ("start_date", "end_date"):
            value = getattr(self, name)
            if value is None:
                continue
            try:
                ok = (
                    isinstance(value, str)
                    and bool(_DATE_RE.fullmatch(value))
                    and bool(date.fromisoformat(value))
                )
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"{name}: expected a valid YYYY-MM-DD date, got {value!r}")
        for name in _RESTRICTION_NUMBERS:
            _check_decimal(name, getattr(self, name), optional=True)
        for name in ("min_duration", "max_duration"):
            _check_int(name, getattr(self, name), optional=True)
        for low, high in (
            ("min_kwh", "max_kwh"),
            ("min_current", "max_current"),
            ("min_power", "max_power"),
            ("min_duration", "max_duration"),
            ("start_date", "end_date"),
        ):
            lo, hi = getattr(self, low), getattr(self, high)
            if lo is not None and hi is not None and lo > hi:
                raise ValueError(f"{low}: must not exceed {high} ({lo} > {hi})")
        if not isinstance(self.day_of_week, tuple) or not all(
            isinstance(d, DayOfWeek) for d in self.day_of_week
        ):
            raise ValueError(f"day_of_week: expected a tuple of DayOfWeek, got {self.day_of_week!r}")
        if self.reservation is not None and not isinstance(self.reservation, ReservationRestrictionType):
            raise ValueError(f"reservation: expected a ReservationRestrictionType, got {self.reservation!r}")

    @classmethod
    def from_ocpi(cls, data: Mapping[str, Any], path: str) -> TariffRestrictions:
        """Parse an OCPI TariffRestrictions object."""
        data = _require_mapping(data, path)
        p = f"{path}."
        strings = {k: _get_str(data, k, p) for k in ("start_time", "end_time", "start_date", "end_date")}
        numbers = {k: _get_number(data, k, p) for k in _RESTRICTION_NUMBERS}
        ints = {k: _get_int(data, k, p) for k in ("min_duration", "max_duration")}
        days = []
        for i, day in enumerate(_get_list(data, "day_of_week", p)):
            if day not in DayOfWeek.__members__:
                raise ValueError(f"{p}day_of_week[{i}]: must be one of {', '.join(DayOfWeek)}, got {day!r}")
            days.append(DayOfWeek(day))
        reservation = _get_enum(data, "reservation", p, ReservationRestrictionType)
        return _prefixed(
            path,
            lambda: cls(
                **strings,  # type: ignore[arg-type]
                **numbers,  # type: ignore[arg-type]
                **ints,  # type: ignore[arg-type]
                day_of_week=tuple(days),
                reservation=ReservationRestrictionType(reservation) if reservation else None,
            ),
        )

    def to_ocpi(self) -> dict[str, Any]:
        """Serialize as an OCPI TariffRestrictions object (unset fields omitted)."""
        out: dict[str, Any] = {}
        for name in ("start_time", "end_time", "start_date", "end_date"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        for name in _RESTRICTION_NUMBERS:
            if (value := getattr(self, name)) is not None:
                out[name] = _json_number(value)
        for name in ("min_duration", "max_duration"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        if self.day_of_week:
            out["day_of_week"] = [d.value for d in self.day_of_week]
        if self.reservation is not None:
            out["reservation"] = self.reservation.value
        return out


@dataclass(frozen=True)
class TariffElement:
    """OCPI TariffElement: price components plus optional restrictions."""

    price_components: tuple[PriceComponent, ...]
    restrictions: TariffRestrictions | None = None

    def __post_init__(self) -> None:
        """Validate there is at least one price component."""
        if not isinstance(self.price_components, tuple) or not self.price_components:
            raise ValueError("price_components: at least one price component is required")

    def component(self, dimension: DimensionType) -> PriceComponent | None:
        """First price component of `dimension` in this element, if any."""
        return next((c for c in self.price_components if c.type is dimension), None)

    @classmethod
    def from_ocpi(cls, data: Mapping[str, Any], path: str) -> TariffElement:
        """Parse an OCPI TariffElement object."""
        data = _require_mapping(data, path)
        p = f"{path}."
        components = tuple(
            PriceComponent.from_ocpi(c, f"{p}price_components[{i}]")
            for i, c in enumerate(_get_list(data, "price_components", p))
        )
        raw = _get_obj(data, "restrictions", p)
        restrictions = None if raw is None else TariffRestrictions.from_ocpi(raw, f"{p}restrictions")
        return _prefixed(path, lambda: cls(components, restrictions))

    def to_ocpi(self) -> dict[str, Any]:
        """Serialize as an OCPI TariffElement object."""
        out: dict[str, Any] = {"price_components": [c.to_ocpi() for c in self.price_components]}
        if self.restrictions is not None:
            out["restrictions"] = self.restrictions.to_ocpi()
        return out


@dataclass(frozen=True)
class Tariff:
    """OCPI 2.2.1 Tariff (pricing subset; alt texts, alt URL and energy mix are not modelled)."""

    currency: str
    elements: tuple[TariffElement, ...]
    id: str | None = None
    country_code: str | None = None
    party_id: str | None = None
    type: TariffType | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    last_updated: datetime | None = None

    def __post_init__(self) -> None:
        """Validate currency, elements, min_price <= max_price and aware datetimes."""
        if not isinstance(self.currency, str) or not _CURRENCY_RE.fullmatch(self.currency):
            raise ValueError(f"currency: expected an ISO 4217 code like 'EUR', got {self.currency!r}")
        if not isinstance(self.elements, tuple) or not self.elements:
            raise ValueError("elements: at least one tariff element is required")
        if self.type is not None and not isinstance(self.type, TariffType):
            raise ValueError(f"type: expected a TariffType, got {self.type!r}")
        if self.min_price is not None and self.max_price is not None:
            if self.min_price.excl_vat > self.max_price.excl_vat:
                raise ValueError("min_price: excl_vat must not exceed max_price.excl_vat")
            lo, hi = self.min_price.incl_vat, self.max_price.incl_vat
            if lo is not None and hi is not None and lo > hi:
                raise ValueError("min_price: incl_vat must not exceed max_price.incl_vat")
        for name in ("start_date_time", "end_date_time", "last_updated"):
            _check_aware(name, getattr(self, name), optional=True)

    def cost_growth_bound_minor(self, energy_wh: int | Decimal, seconds: float | Decimal) -> int:
        """An upper bound, in minor units incl. VAT, of how much more a session can cost when it gains
        ``energy_wh`` and ``seconds`` after a point where it was priced (cheap: no slicing, no samples).

        The earlier part keeps its price (slices before a point are priced the same whatever follows), so the
        extension costs at most its energy at the dearest ENERGY rate and its time at the dearest TIME or
        PARKING_TIME rate, plus one FLAT fee and one step_size of rounding surplus per dimension; max_price only
        lowers a total and min_price was already met by the earlier price. Used to skip exact re-pricing of a
        running prepaid session while it cannot yet have reached its balance.
        """
        energy = time = flat = Fraction(0)
        slack: dict[DimensionType, Fraction] = {}
        for element in self.elements:
            for c in element.price_components:
                rate = Fraction(c.price) * (1 + Fraction(c.vat or 0) / 100)
                if c.type is DimensionType.FLAT:
                    flat = max(flat, rate)
                    continue
                unit = _UNIT[c.type]
                slack[c.type] = max(slack.get(c.type, Fraction(0)), rate * c.step_size / unit)
                if c.type is DimensionType.ENERGY:
                    energy = max(energy, rate)
                else:
                    time = max(time, rate)
        growth = (
            energy * Fraction(energy_wh) / 1000 + time * Fraction(seconds) / 3600 + flat + sum(slack.values())
        )
        scale = int(10 ** currency_exponent(self.currency))
        return math.ceil(growth * scale) + 1  # +1: rounding of the totals

    @classmethod
    def from_ocpi(cls, data: Mapping[str, Any]) -> Tariff:
        """Parse and validate an OCPI 2.2.1 Tariff JSON object; ValueError names the offending field."""
        data = _require_mapping(data, "")
        _require(data, "currency", "")
        _require(data, "elements", "")
        elements = tuple(
            TariffElement.from_ocpi(e, f"elements[{i}]")
            for i, e in enumerate(_get_list(data, "elements", ""))
        )
        raw_min, raw_max = _get_obj(data, "min_price", ""), _get_obj(data, "max_price", "")
        kind = _get_enum(data, "type", "", TariffType)
        fields = {
            "currency": _get_str(data, "currency", ""),
            "id": _get_str(data, "id", ""),
            "country_code": _get_str(data, "country_code", ""),
            "party_id": _get_str(data, "party_id", ""),
            "start_date_time": _get_datetime(data, "start_date_time", ""),
            "end_date_time": _get_datetime(data, "end_date_time", ""),
            "last_updated": _get_datetime(data, "last_updated", ""),
        }
        return cls(
            elements=elements,
            type=TariffType(kind) if kind else None,
            min_price=None if raw_min is None else Price.from_ocpi(raw_min, "min_price"),
            max_price=None if raw_max is None else Price.from_ocpi(raw_max, "max_price"),
            **fields,  # type: ignore[arg-type]
        )

    def to_ocpi(self) -> dict[str, Any]:
        """Serialize as an OCPI 2.2.1 Tariff JSON object (unset optional fields omitted)."""
        out: dict[str, Any] = {}
        for name in ("country_code", "party_id", "id"):
            if (value := getattr(self, name)) is not None:
                out[name] = value
        out["currency"] = self.currency
        if self.type is not None:
            out["type"] = self.type.value
        if self.min_price is not None:
            out["min_price"] = self.min_price.to_ocpi()
        if self.max_price is not None:
            out["max_price"] = self.max_price.to_ocpi()
        out["elements"] = [e.to_ocpi() for e in self.elements]
        for name in ("start_date_time", "end_date_time", "last_updated"):
            if (value := getattr(self, name)) is not None:
                out[name] = _json_datetime(value)
        return out


# --------------------------------------------------------------------------- session input


def _as_decimal(obj: object, name: str, value: object, *, optional: bool = False) -> None:
    """Normalise an int field of a frozen dataclass to Decimal; floats are refused (binary rounding)."""
    if isinstance(value, int) and not isinstance(value, bool):
        object.__setattr__(obj, name, Decimal(value))
    elif isinstance(value, float):
        raise ValueError(f"{name}: pass a Decimal or int, not a float ({value!r})")
    _check_decimal(name, getattr(obj, name), optional=optional)


@dataclass(frozen=True)
class MeterSample:
    """One meter reading: cumulative energy in Wh, optional power (W), current (A) and connector status."""

    timestamp: datetime
    energy_wh: Decimal
    power_w: Decimal | None = None
    current_a: Decimal | None = None
    status: str | None = None

    def __post_init__(self) -> None:
        """Validate an aware timestamp and non-negative readings."""
        _check_aware("timestamp", self.timestamp)
        _as_decimal(self, "energy_wh", self.energy_wh)
        _as_decimal(self, "power_w", self.power_w, optional=True)
        _as_decimal(self, "current_a", self.current_a, optional=True)


@dataclass(frozen=True)
class SessionPeriod:
    """A stretch of a session: energy delivered in it and whether the EV was charging or parked."""

    start: datetime
    end: datetime
    energy_wh: Decimal
    charging: bool
    max_power_w: Decimal | None = None
    max_current_a: Decimal | None = None

    def __post_init__(self) -> None:
        """Validate aware start < end and non-negative energy, power and current."""
        _check_aware("start", self.start)
        _check_aware("end", self.end)
        if self.end <= self.start:
            raise ValueError(f"end: must be after start ({self.start.isoformat()} >= {self.end.isoformat()})")
        _as_decimal(self, "energy_wh", self.energy_wh)
        _as_decimal(self, "max_power_w", self.max_power_w, optional=True)
        _as_decimal(self, "max_current_a", self.max_current_a, optional=True)
        if not isinstance(self.charging, bool):
            raise ValueError(f"charging: expected a bool, got {self.charging!r}")


def periods_from_samples(
    samples: Sequence[MeterSample], *, idle_power_w: Decimal = Decimal(0)
) -> list[SessionPeriod]:
    """Turn time-ordered meter samples into contiguous SessionPeriods, one per pair of samples.

    An interval is charging when its average power exceeds `idle_power_w` and the status of the sample opening
    it is not in PARKED_STATUSES; otherwise it is parking (plugged in, not drawing power). Its max power/current
    are the larger of the two readings when present (else the engine uses the average power).
    """
    if len(samples) < 2:
        raise ValueError("samples: at least two samples are needed")
    periods = []
    for i, (first, second) in enumerate(pairwise(samples)):
        if second.timestamp <= first.timestamp:
            raise ValueError(f"samples[{i + 1}].timestamp: must be later than samples[{i}].timestamp")
        delta = second.energy_wh - first.energy_wh
        if delta < 0:
            raise ValueError(
                f"samples[{i + 1}].energy_wh: cumulative energy decreased ({first.energy_wh} -> {second.energy_wh})"
            )
        micros = (second.timestamp - first.timestamp) // _US
        average_w = delta * 3600 * 10**6 / micros
        powers = [p for p in (first.power_w, second.power_w) if p is not None]
        currents = [c for c in (first.current_a, second.current_a) if c is not None]
        periods.append(
            SessionPeriod(
                start=first.timestamp,
                end=second.timestamp,
                energy_wh=delta,
                charging=average_w > idle_power_w and first.status not in PARKED_STATUSES,
                max_power_w=max(powers) if powers else None,
                max_current_a=max(currents) if currents else None,
            )
        )
    return periods


# --------------------------------------------------------------------------- output


@dataclass(frozen=True)
class CdrDimension:
    """OCPI CdrDimension: ENERGY in kWh, TIME/PARKING_TIME in hours, MAX_POWER in kW, MAX_CURRENT in A."""

    type: str
    volume: Decimal


@dataclass(frozen=True)
class ChargingPeriod:
    """OCPI ChargingPeriod plus the tariff elements that priced it (index into Tariff.elements)."""

    start: datetime
    tariff_element_index: int | None
    dimensions: tuple[CdrDimension, ...]
    element_indices: tuple[tuple[DimensionType, int], ...] = ()

    def to_json_obj(self) -> dict[str, Any]:
        """Serialize as a JSON-ready dict."""
        return {
            "start_date_time": _json_datetime(self.start),
            "tariff_element_index": self.tariff_element_index,
            "element_indices": {d.value: i for d, i in self.element_indices},
            "dimensions": [{"type": d.type, "volume": _json_number(d.volume)} for d in self.dimensions],
        }


@dataclass(frozen=True)
class Cdr:
    """A priced session: totals in integer minor units, volumes, billed volumes and charging periods."""

    currency: str
    start: datetime
    end: datetime
    total_cost_excl_vat: int
    total_cost_incl_vat: int
    total_energy_wh: Decimal
    total_time_s: Decimal
    total_charging_time_s: Decimal
    total_parking_time_s: Decimal
    billed_energy_wh: Decimal
    billed_time_s: Decimal
    billed_parking_time_s: Decimal
    exact_cost_excl_vat: Decimal
    exact_cost_incl_vat: Decimal
    charging_periods: tuple[ChargingPeriod, ...]

    def to_json(self) -> str:
        """Serialize as JSON (money in minor units, volumes as numbers, times as UTC RFC 3339)."""
        obj: dict[str, Any] = {
            "currency": self.currency,
            "start_date_time": _json_datetime(self.start),
            "end_date_time": _json_datetime(self.end),
            "total_cost_minor": {"excl_vat": self.total_cost_excl_vat, "incl_vat": self.total_cost_incl_vat},
        }
        for name in (
            "total_energy_wh",
            "total_time_s",
            "total_charging_time_s",
            "total_parking_time_s",
            "billed_energy_wh",
            "billed_time_s",
            "billed_parking_time_s",
            "exact_cost_excl_vat",
            "exact_cost_incl_vat",
        ):
            obj[name] = _json_number(getattr(self, name))
        obj["charging_periods"] = [p.to_json_obj() for p in self.charging_periods]
        return json.dumps(obj, separators=(",", ":"))


# --------------------------------------------------------------------------- engine


@dataclass
class _Slice:
    """Internal: a piece of the session in which no restriction changes its verdict."""

    start: Fraction  # seconds since session start
    end: Fraction
    energy_wh: Fraction
    charging: bool
    power_kw: Fraction
    current_a: Fraction | None
    active: dict[DimensionType, int] = field(default_factory=dict)  # dimension -> element index


def _seconds(delta: timedelta) -> Fraction:
    """Exact seconds of a timedelta."""
    return Fraction(delta // _US, 10**6)


def _round_half_up(value: Fraction) -> int:
    """Round to the nearest integer, halves away from zero (Decimal ROUND_HALF_UP)."""
    magnitude = math.floor(abs(value) + Fraction(1, 2))
    return magnitude if value >= 0 else -magnitude


def _to_decimal(value: Fraction, places: int = _EXACT_PLACES) -> Decimal:
    """Fraction -> Decimal rounded half-up to `places` decimals (reporting only, never fed back)."""
    number = Decimal(_round_half_up(value * 10**places)).scaleb(-places)
    return number.quantize(Decimal(1)) if number == number.to_integral_value() else number.normalize()


def _parse_hhmm(text: str) -> time:
    """Parse a validated HH:MM string."""
    return time(int(text[:2]), int(text[3:]))


def _time_window_ok(start: str | None, end: str | None, now: time) -> bool:
    """Whether local time-of-day `now` is inside [start, end), wrapping past midnight when end < start."""
    if start is None and end is None:
        return True
    lo = _parse_hhmm(start) if start else time(0)
    if end is None:
        return now >= lo
    hi = _parse_hhmm(end)
    if lo < hi:
        return lo <= now < hi
    if lo > hi:
        return now >= lo or now < hi
    return True  # start == end: the whole day


def _matches(
    r: TariffRestrictions | None, local: datetime, s: _Slice, elapsed: Fraction, cum_wh: Fraction
) -> bool:
    """Whether an element's restrictions hold at a slice's midpoint."""
    if r is None:
        return True
    if r.reservation is not None:
        return False  # reservation pricing: never part of a charging session
    if not _time_window_ok(r.start_time, r.end_time, local.time()):
        return False
    today = local.date()
    if r.start_date is not None and today < date.fromisoformat(r.start_date):
        return False
    if r.end_date is not None and today >= date.fromisoformat(r.end_date):
        return False
    if r.day_of_week and _WEEKDAYS[local.weekday()] not in r.day_of_week:
        return False
    kwh = cum_wh / 1000
    if r.min_kwh is not None and kwh < r.min_kwh:
        return False
    if r.max_kwh is not None and kwh >= r.max_kwh:
        return False
    if r.min_duration is not None and elapsed < r.min_duration:
        return False
    if r.max_duration is not None and elapsed >= r.max_duration:
        return False
    if r.min_power is not None and s.power_kw < r.min_power:
        return False
    if r.max_power is not None and s.power_kw >= r.max_power:
        return False
    if r.min_current is not None or r.max_current is not None:
        if s.current_a is None:
            return False
        if r.min_current is not None and s.current_a < r.min_current:
            return False
        if r.max_current is not None and s.current_a >= r.max_current:
            return False
    return True


def _local_marks(start: datetime, end: datetime, tz: tzinfo, marks: Sequence[time]) -> Iterator[datetime]:
    """Every local midnight and time-of-day mark (as UTC instants) on the local days around [start, end]."""
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date() + timedelta(days=1)
    while day <= last:
        for mark in (time(0), *marks):
            for fold in (0, 1):  # both readings of an ambiguous wall time on a DST change
                yield datetime.combine(day, mark, tzinfo=tz).replace(fold=fold).astimezone(UTC)
        day += timedelta(days=1)


def _slice_session(tariff: Tariff, periods: Sequence[SessionPeriod], tz: tzinfo) -> list[_Slice]:
    """Cut periods at every point where a restriction may change and resolve the active element per dimension."""
    origin = periods[0].start
    restrictions = [e.restrictions for e in tariff.elements if e.restrictions is not None]
    tod = sorted({_parse_hhmm(t) for r in restrictions for t in (r.start_time, r.end_time) if t is not None})
    durations = {Fraction(d) for r in restrictions for d in (r.min_duration, r.max_duration) if d is not None}
    kwh_marks = {Fraction(k) * 1000 for r in restrictions for k in (r.min_kwh, r.max_kwh) if k is not None}
    # Time marks (local midnights, time-of-day and duration marks) of the whole session, in seconds from its
    # start, computed once: each period takes the ones inside it by bisection (a session has thousands).
    marks = sorted({_seconds(m - origin) for m in _local_marks(origin, periods[-1].end, tz, tod)} | durations)
    slices: list[_Slice] = []
    cum = Fraction(0)
    for period in periods:
        a, b = _seconds(period.start - origin), _seconds(period.end - origin)
        span, energy = b - a, Fraction(period.energy_wh)
        cuts = set(marks[bisect.bisect_right(marks, a) : bisect.bisect_left(marks, b)])
        if energy > 0:
            cuts |= {a + (w - cum) * span / energy for w in kwh_marks if cum < w < cum + energy}
        points = [a, *sorted(c for c in cuts if a < c < b), b]
        if period.max_power_w is not None:
            power_kw = Fraction(period.max_power_w) / 1000
        else:
            power_kw = energy * 3600 / span / 1000
        current = None if period.max_current_a is None else Fraction(period.max_current_a)
        for x, y in pairwise(points):
            s = _Slice(x, y, energy * (y - x) / span, period.charging, power_kw, current)
            mid = (x + y) / 2
            local = (origin + timedelta(microseconds=math.floor(mid * 10**6))).astimezone(tz)
            cum_mid = cum + energy * (mid - a) / span
            for index, element in enumerate(tariff.elements):
                if _matches(element.restrictions, local, s, mid, cum_mid):
                    for component in element.price_components:
                        s.active.setdefault(component.type, index)
            slices.append(s)
        cum += energy
    return slices


def _volume(s: _Slice, dimension: DimensionType) -> Fraction:
    """Volume of a dimension in a slice: Wh for ENERGY, seconds for TIME/PARKING_TIME."""
    if dimension is DimensionType.ENERGY:
        return s.energy_wh
    if dimension is DimensionType.TIME:
        return s.end - s.start if s.charging else Fraction(0)
    if dimension is DimensionType.PARKING_TIME:
        return Fraction(0) if s.charging else s.end - s.start
    return Fraction(0)


_UNIT = {DimensionType.ENERGY: 1000, DimensionType.TIME: 3600, DimensionType.PARKING_TIME: 3600}


def _merge_periods(slices: Sequence[_Slice], origin: datetime) -> tuple[ChargingPeriod, ...]:
    """Merge consecutive slices priced by the same elements into OCPI ChargingPeriods."""
    groups: list[list[_Slice]] = []
    for s in slices:
        if groups and groups[-1][-1].charging == s.charging and groups[-1][-1].active == s.active:
            groups[-1].append(s)
        else:
            groups.append([s])
    out = []
    for group in groups:
        first = group[0]
        duration_h = sum((s.end - s.start for s in group), Fraction(0)) / 3600
        energy_kwh = sum((s.energy_wh for s in group), Fraction(0)) / 1000
        dims = [CdrDimension("ENERGY", _to_decimal(energy_kwh, 6))]
        dims.append(CdrDimension("TIME" if first.charging else "PARKING_TIME", _to_decimal(duration_h, 6)))
        dims.append(CdrDimension("MAX_POWER", _to_decimal(max(s.power_kw for s in group), 6)))
        currents = [s.current_a for s in group if s.current_a is not None]
        if currents:
            dims.append(CdrDimension("MAX_CURRENT", _to_decimal(max(currents), 6)))
        preferred = (
            DimensionType.TIME if first.charging else DimensionType.PARKING_TIME,
            DimensionType.ENERGY,
            DimensionType.FLAT,
        )
        index = next((first.active[d] for d in preferred if d in first.active), None)
        start = origin + timedelta(microseconds=math.floor(first.start * 10**6))
        indices = tuple(sorted(first.active.items()))
        out.append(ChargingPeriod(start, index, tuple(dims), indices))
    return tuple(out)


def calculate_cdr(tariff: Tariff, periods: Sequence[SessionPeriod], tz: tzinfo) -> Cdr:
    """Price a session (contiguous, time-ordered periods) with a tariff; `tz` is the site's local time zone."""
    if not periods:
        raise ValueError("periods: at least one period is required")
    for i, (before, after) in enumerate(pairwise(periods)):
        if after.start != before.end:
            raise ValueError(f"periods[{i + 1}].start: must equal periods[{i}].end (periods are contiguous)")
    slices = _slice_session(tariff, periods, tz)

    volumes: dict[tuple[DimensionType, int], Fraction] = {}
    measured = dict.fromkeys(_UNIT, Fraction(0))
    last: dict[DimensionType, int] = {}
    for s in slices:
        for dimension in _UNIT:
            index = s.active.get(dimension)
            amount = _volume(s, dimension)
            if index is None or amount == 0:
                continue
            volumes[dimension, index] = volumes.get((dimension, index), Fraction(0)) + amount
            measured[dimension] += amount
            last[dimension] = index
    flat_slice = next((s for s in slices if DimensionType.FLAT in s.active), None)
    if flat_slice is not None:
        volumes[DimensionType.FLAT, flat_slice.active[DimensionType.FLAT]] = Fraction(1)

    # OCPI 2.2.1 PriceComponent step_size: round the session total once, with the last component's step,
    # and bill the surplus at that component's price.
    billed = dict(measured)
    for dimension, index in last.items():
        component = tariff.elements[index].component(dimension)
        assert component is not None
        if component.step_size > 0:
            billed[dimension] = Fraction(
                math.ceil(measured[dimension] / component.step_size) * component.step_size
            )
            key = (dimension, index)
            volumes[key] += billed[dimension] - measured[dimension]

    excl = incl = Fraction(0)
    for (dimension, index), amount in volumes.items():
        component = tariff.elements[index].component(dimension)
        assert component is not None
        cost = amount / _UNIT.get(dimension, 1) * Fraction(component.price)
        excl += cost
        incl += cost if component.vat is None else cost * (1 + Fraction(component.vat) / 100)

    if tariff.min_price is not None:
        excl = max(excl, Fraction(tariff.min_price.excl_vat))
        if tariff.min_price.incl_vat is not None:
            incl = max(incl, Fraction(tariff.min_price.incl_vat))
    if tariff.max_price is not None:
        excl = min(excl, Fraction(tariff.max_price.excl_vat))
        if tariff.max_price.incl_vat is not None:
            incl = min(incl, Fraction(tariff.max_price.incl_vat))

    scale = 10 ** currency_exponent(tariff.currency)
    origin, end = periods[0].start, periods[-1].end
    charging_s = sum((_seconds(p.end - p.start) for p in periods if p.charging), Fraction(0))
    total_s = _seconds(end - origin)
    return Cdr(
        currency=tariff.currency,
        start=origin,
        end=end,
        total_cost_excl_vat=_round_half_up(excl * scale),
        total_cost_incl_vat=_round_half_up(incl * scale),
        total_energy_wh=sum((p.energy_wh for p in periods), Decimal(0)),
        total_time_s=_to_decimal(total_s),
        total_charging_time_s=_to_decimal(charging_s),
        total_parking_time_s=_to_decimal(total_s - charging_s),
        billed_energy_wh=_to_decimal(billed[DimensionType.ENERGY]),
        billed_time_s=_to_decimal(billed[DimensionType.TIME]),
        billed_parking_time_s=_to_decimal(billed[DimensionType.PARKING_TIME]),
        exact_cost_excl_vat=_to_decimal(excl),
        exact_cost_incl_vat=_to_decimal(incl),
        charging_periods=_merge_periods(slices, origin),
    )
