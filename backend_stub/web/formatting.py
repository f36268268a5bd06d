"""Formatting shared by the operator dashboard and the pay pages: money, energy, times, tariffs in words."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from backend_stub.domain.tariffs import (
    DimensionType,
    PriceComponent,
    TariffRestrictions,
    currency_exponent,
)


def format_money(minor: int | None, currency: str) -> str:
    """Integer minor units as text in the currency's major unit, e.g. 1234 EUR -> '12.34 EUR'."""
    if minor is None:
        return "—"
    exponent = currency_exponent(currency)
    return f"{Decimal(minor).scaleb(-exponent):,.{exponent}f} {currency}"


def format_amount_input(minor: int, currency: str) -> str:
    """Integer minor units as a form value in the major unit, without grouping: 1234 EUR -> '12.34'."""
    exponent = currency_exponent(currency)
    return f"{Decimal(minor).scaleb(-exponent):.{exponent}f}"


def parse_amount(text: str, currency: str) -> int:
    """An amount typed in the currency's major unit ('5', '5.5', '5,50') as integer minor units.

    At most the currency's minor digits (EUR 2, JPY 0); raises ValueError with a message for the user.
    """
    exponent = currency_exponent(currency)
    decimals = rf"(?:[.,][0-9]{{1,{exponent}}})?" if exponent else ""
    cleaned = text.strip()
    if not re.fullmatch(rf"[0-9]{{1,12}}{decimals}", cleaned):
        example = format_amount_input(550 * 10 ** max(exponent - 2, 0), currency) if exponent else "5"
        places = f"at most {exponent} decimals" if exponent else "no decimals"
        raise ValueError(f"Enter the amount in {currency} with {places}, e.g. {example}.")
    return int(Decimal(cleaned.replace(",", ".")).scaleb(exponent))


def format_fee(value: Decimal, currency: str) -> str:
    """A per-session amount from a tariff, rounded half-up to minor units (0.595 EUR -> '0.60 EUR')."""
    exponent = currency_exponent(currency)
    minor = int(value.scaleb(exponent).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    return format_money(minor, currency)


def format_time(value: datetime | None) -> str:
    """An aware datetime as 'YYYY-MM-DD HH:MM:SS UTC'; '—' for None."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def format_kwh(energy_wh: int | float | Decimal | None) -> str:
    """Wh as kWh with three decimals."""
    if energy_wh is None:
        return "—"
    return f"{Decimal(energy_wh) / 1000:,.3f} kWh"


def format_duration(seconds: float | Decimal | None) -> str:
    """Seconds as 'H h MM min SS s'."""
    if seconds is None:
        return "—"
    total = round(float(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def format_iso(text: object) -> str:
    """An ISO-8601 timestamp text (as in a stored CDR) shown like `format_time`; unparsable text unchanged."""
    try:
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return str(text)
    return format_time(value if value.tzinfo else value.replace(tzinfo=UTC))


# OCPI CdrDimension volumes and their units.
DIMENSION_UNITS = {
    "ENERGY": "kWh",
    "TIME": "h",
    "PARKING_TIME": "h",
    "MAX_POWER": "kW",
    "MIN_POWER": "kW",
    "MAX_CURRENT": "A",
    "MIN_CURRENT": "A",
    "FLAT": "",
}


def format_price(value: Decimal, currency: str) -> str:
    """A tariff price with at least the currency's minor digits and at most four (0.3 EUR -> '0.30 EUR',
    0.357 EUR -> '0.357 EUR', a VAT-inclusive 0.1234567 EUR -> '0.1235 EUR')."""
    exponent = currency_exponent(currency)
    value = value.quantize(Decimal("0.0001")) if value.as_tuple().exponent < -4 else value  # type: ignore[operator]
    places = max(exponent, -int(value.normalize().as_tuple().exponent))
    return f"{value:.{places}f} {currency}"


def _number(value: Decimal | int) -> str:
    return f"{Decimal(value).normalize():f}"


def describe_component(component: PriceComponent, currency: str) -> str:
    """An OCPI price component in words: '0.30 EUR per kWh, billed per 1 Wh, plus 19% VAT'."""
    price = format_price(component.price, currency)
    step = component.step_size
    if component.type is DimensionType.ENERGY:
        text = f"{price} per kWh"
        steps = f"billed per {step} Wh" if step > 1 else ""
    elif component.type is DimensionType.FLAT:
        text, steps = f"{price} per session", ""
    elif component.type is DimensionType.TIME:
        text = f"{price} per hour of charging"
        steps = f"billed in steps of {format_duration(step)}" if step > 1 else ""
    else:
        text = f"{price} per hour of parking (plugged in, not charging)"
        steps = f"billed in steps of {format_duration(step)}" if step > 1 else ""
    vat = "VAT not stated" if component.vat is None else f"plus {_number(component.vat)}% VAT"
    return ", ".join(part for part in (text, steps, vat) if part)


def describe_restrictions(r: TariffRestrictions | None) -> list[str]:
    """When an element applies, in words; empty means always."""
    if r is None:
        return []
    out: list[str] = []
    if r.start_time or r.end_time:
        start, end = r.start_time or "00:00", r.end_time or "24:00"
        wrap = " (past midnight)" if r.start_time and r.end_time and r.end_time < r.start_time else ""
        out.append(f"between {start} and {end} local time{wrap}")
    if r.day_of_week:
        out.append("on " + ", ".join(d.value.capitalize() for d in r.day_of_week))
    if r.start_date:
        out.append(f"from {r.start_date}")
    if r.end_date:
        out.append(f"until before {r.end_date}")
    for low, high, unit in (
        (r.min_kwh, r.max_kwh, "kWh"),
        (r.min_current, r.max_current, "A"),
        (r.min_power, r.max_power, "kW"),
    ):
        if low is not None:
            out.append(f"at least {_number(low)} {unit}")
        if high is not None:
            out.append(f"below {_number(high)} {unit}")
    if r.min_duration is not None:
        out.append(f"session at least {format_duration(r.min_duration)}")
    if r.max_duration is not None:
        out.append(f"session shorter than {format_duration(r.max_duration)}")
    if r.reservation is not None:
        out.append(f"reservation: {r.reservation.value.lower().replace('_', ' ')}")
    return out
