"""Tariff engine properties: non-negative, monotone, split-invariant, step rounding never under-bills, JSON round trip."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from backend_stub.domain.tariffs import (
    DayOfWeek,
    DimensionType,
    Price,
    PriceComponent,
    SessionPeriod,
    Tariff,
    TariffElement,
    TariffRestrictions,
    calculate_cdr,
)

ZONES = st.sampled_from(
    [ZoneInfo(z) for z in ("Europe/Amsterdam", "America/New_York", "Asia/Kolkata", "UTC")]
)
PRICES = st.decimals(min_value=0, max_value=50, places=2)
VATS = st.none() | st.decimals(min_value=0, max_value=30, places=1)
STEPS = st.sampled_from([0, 1, 25, 60, 300, 900, 1000])
HHMM = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 59]))
DAYS = st.lists(st.sampled_from(list(DayOfWeek)), unique=True, max_size=3).map(tuple)


def _pair(
    values: st.SearchStrategy[Decimal] | st.SearchStrategy[int],
) -> st.SearchStrategy[tuple[object, object]]:
    """An optional (min, max) pair with min <= max when both are present."""
    return st.tuples(st.none() | values, st.none() | values).map(
        lambda p: (min(p), max(p)) if p[0] is not None and p[1] is not None else p  # type: ignore[type-var]
    )


# Strategies built once: building them inside the composites below made Hypothesis construct and validate fresh
# strategy objects for every draw, which was most of these tests' run time. The distributions are the same.
KWH_PAIRS = _pair(st.decimals(min_value=0, max_value=60, places=1))
KW_PAIRS = _pair(st.decimals(min_value=0, max_value=50, places=1))
AMP_PAIRS = _pair(st.decimals(min_value=0, max_value=64, places=0))
NO_PAIR: st.SearchStrategy[tuple[object, object]] = st.just((None, None))
DURATION_PAIRS = _pair(st.integers(0, 6 * 3600))
OPTIONAL_HHMM = st.none() | HHMM
MIN_MAX_PRICES = _pair(st.decimals(min_value=0, max_value=40, places=2))
KINDS = st.lists(st.sampled_from(list(DimensionType)), min_size=1, max_size=4, unique=True)
ELEMENT_COUNTS = st.integers(1, 4)
CURRENCIES = st.sampled_from(["EUR", "JPY", "KWD"])
FREE_OR_METERED_STEPS = st.sampled_from([0, 1])
INTEGRAL_ENERGIES = st.integers(0, 30000).map(Decimal)
DECIMAL_ENERGIES = st.decimals(min_value=0, max_value=30000, places=1)
SESSION_STARTS = st.integers(0, 366 * 86400)
PERIOD_COUNTS = st.integers(1, 5)
HALF_PERIODS = st.integers(1, 3 * 3600)
MAX_POWERS = st.none() | st.integers(0, 50000).map(Decimal)
MAX_CURRENTS = st.none() | st.integers(0, 64).map(Decimal)


@st.composite
def restrictions(draw: st.DrawFn, *, physical: bool = True) -> TariffRestrictions | None:
    """Restrictions; physical=False leaves out kWh/power/current (which can make cost non-monotone)."""
    if draw(st.booleans()):
        return None
    kwh, kw, amps = (KWH_PAIRS, KW_PAIRS, AMP_PAIRS) if physical else (NO_PAIR, NO_PAIR, NO_PAIR)
    dur = draw(DURATION_PAIRS)
    (min_kwh, max_kwh), (min_kw, max_kw), (min_a, max_a) = draw(kwh), draw(kw), draw(amps)
    return TariffRestrictions(
        start_time=draw(OPTIONAL_HHMM),
        end_time=draw(OPTIONAL_HHMM),
        min_kwh=min_kwh,  # type: ignore[arg-type]
        max_kwh=max_kwh,  # type: ignore[arg-type]
        min_power=min_kw,  # type: ignore[arg-type]
        max_power=max_kw,  # type: ignore[arg-type]
        min_current=min_a,  # type: ignore[arg-type]
        max_current=max_a,  # type: ignore[arg-type]
        min_duration=dur[0],  # type: ignore[arg-type]
        max_duration=dur[1],  # type: ignore[arg-type]
        day_of_week=draw(DAYS),
    )


@st.composite
def tariffs(draw: st.DrawFn, *, physical: bool = True, steps: st.SearchStrategy[int] = STEPS) -> Tariff:
    """Tariffs with 1-4 elements of non-negative prices and optional min/max price."""
    elements = []
    for _ in range(draw(ELEMENT_COUNTS)):
        kinds = draw(KINDS)
        components = tuple(PriceComponent(k, draw(PRICES), draw(steps), draw(VATS)) for k in kinds)
        elements.append(TariffElement(components, draw(restrictions(physical=physical))))
    low, high = draw(MIN_MAX_PRICES)
    return Tariff(
        currency=draw(CURRENCIES),
        elements=tuple(elements),
        min_price=None if low is None else Price(low, draw(st.none() | st.just(low))),  # type: ignore[arg-type]
        max_price=None if high is None else Price(high, draw(st.none() | st.just(high * 2))),  # type: ignore[arg-type, operator]
    )


@st.composite
def simple_tariffs(draw: st.DrawFn) -> Tariff:
    """Tariffs for which cost must be monotone: one unrestricted element (any step), or time-only
    restrictions with steps 0/1 (a coarse step of a *changing* last component is not monotone by spec)."""
    if draw(st.booleans()):
        kinds = draw(KINDS)
        element = TariffElement(
            tuple(PriceComponent(k, draw(PRICES), draw(STEPS), draw(VATS)) for k in kinds)
        )
        return Tariff("EUR", (element,))
    return draw(tariffs(physical=False, steps=FREE_OR_METERED_STEPS))


@st.composite
def sessions(draw: st.DrawFn, *, integral: bool = False) -> list[SessionPeriod]:
    """1-5 contiguous periods of an even number of seconds, starting anywhere in 2024 (DST changes included)."""
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=draw(SESSION_STARTS))
    energies = INTEGRAL_ENERGIES if integral else DECIMAL_ENERGIES
    out = []
    for _ in range(draw(PERIOD_COUNTS)):
        end = start + timedelta(seconds=2 * draw(HALF_PERIODS))
        charging = draw(st.booleans())
        out.append(
            SessionPeriod(
                start,
                end,
                draw(energies) if charging else Decimal(0),
                charging,
                max_power_w=draw(MAX_POWERS),
                max_current_a=draw(MAX_CURRENTS),
            )
        )
        start = end
    return out


def _exact(tariff: Tariff, periods: list[SessionPeriod], tz: ZoneInfo) -> tuple[Decimal, Decimal]:
    """Exact (excl, incl) VAT cost before minor-unit rounding."""
    cdr = calculate_cdr(tariff, periods, tz)
    return cdr.exact_cost_excl_vat, cdr.exact_cost_incl_vat


@settings(max_examples=300, deadline=None)
@given(tariffs(), sessions(), ZONES)
def test_cost_is_never_negative(tariff: Tariff, periods: list[SessionPeriod], tz: ZoneInfo) -> None:
    cdr = calculate_cdr(tariff, periods, tz)
    assert cdr.total_cost_excl_vat >= 0 and cdr.total_cost_incl_vat >= 0
    if tariff.min_price is None and tariff.max_price is None:
        assert cdr.exact_cost_incl_vat >= cdr.exact_cost_excl_vat
    assert json.loads(cdr.to_json())["total_cost_minor"]["excl_vat"] == cdr.total_cost_excl_vat


@settings(max_examples=300, deadline=None)
@given(tariffs(), sessions(), ZONES, st.data())
def test_splitting_a_period_in_halves_changes_nothing(
    tariff: Tariff, periods: list[SessionPeriod], tz: ZoneInfo, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(periods) - 1))
    period = periods[index]
    middle = period.start + (period.end - period.start) / 2
    half = period.energy_wh / 2
    halves = [replace(period, end=middle, energy_wh=half), replace(period, start=middle, energy_wh=half)]
    split = [*periods[:index], *halves, *periods[index + 1 :]]
    whole_cdr, split_cdr = calculate_cdr(tariff, periods, tz), calculate_cdr(tariff, split, tz)
    assert _exact(tariff, split, tz) == _exact(tariff, periods, tz)
    assert split_cdr.total_cost_excl_vat == whole_cdr.total_cost_excl_vat
    assert split_cdr.total_cost_incl_vat == whole_cdr.total_cost_incl_vat
    assert split_cdr.billed_energy_wh == whole_cdr.billed_energy_wh
    assert split_cdr.billed_time_s == whole_cdr.billed_time_s


@settings(max_examples=300, deadline=None)
@given(simple_tariffs(), sessions(integral=True), ZONES, st.data())
def test_more_energy_never_costs_less(
    tariff: Tariff, periods: list[SessionPeriod], tz: ZoneInfo, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(periods) - 1))
    extra = Decimal(data.draw(st.integers(1, 20000)))
    more = [
        *periods[:index],
        replace(periods[index], energy_wh=periods[index].energy_wh + extra),
        *periods[index + 1 :],
    ]
    assert _exact(tariff, more, tz)[0] >= _exact(tariff, periods, tz)[0]
    assert _exact(tariff, more, tz)[1] >= _exact(tariff, periods, tz)[1]


@settings(max_examples=300, deadline=None)
@given(simple_tariffs(), sessions(integral=True), ZONES, st.integers(1, 3), st.integers(1, 4 * 3600))
def test_longer_sessions_never_cost_less(
    tariff: Tariff, periods: list[SessionPeriod], tz: ZoneInfo, factor: int, parked_s: int
) -> None:
    last = periods[-1]
    # the last period goes on (factor + 1) times as long at the same power, then the car stays parked
    longer = replace(
        last, end=last.start + (last.end - last.start) * (factor + 1), energy_wh=last.energy_wh * (factor + 1)
    )
    parked = SessionPeriod(longer.end, longer.end + timedelta(seconds=parked_s), Decimal(0), False)
    extended = [*periods[:-1], longer]
    base, ext, ext_parked = (_exact(tariff, p, tz) for p in (periods, extended, [*extended, parked]))
    assert base[0] <= ext[0] <= ext_parked[0]
    assert base[1] <= ext[1] <= ext_parked[1]


@settings(max_examples=300, deadline=None)
@given(PRICES, PRICES, PRICES, STEPS, STEPS, STEPS, sessions(), ZONES)
def test_step_size_never_bills_less_than_measured(
    energy_price: Decimal,
    time_price: Decimal,
    parking_price: Decimal,
    energy_step: int,
    time_step: int,
    parking_step: int,
    periods: list[SessionPeriod],
    tz: ZoneInfo,
) -> None:
    def make(es: int, ts: int, ps: int) -> Tariff:
        components = (
            PriceComponent(DimensionType.ENERGY, energy_price, es),
            PriceComponent(DimensionType.TIME, time_price, ts),
            PriceComponent(DimensionType.PARKING_TIME, parking_price, ps),
        )
        return Tariff("EUR", (TariffElement(components),))

    cdr = calculate_cdr(make(energy_step, time_step, parking_step), periods, tz)
    for billed, measured, step in (
        (cdr.billed_energy_wh, cdr.total_energy_wh, energy_step),
        (cdr.billed_time_s, cdr.total_charging_time_s, time_step),
        (cdr.billed_parking_time_s, cdr.total_parking_time_s, parking_step),
    ):
        assert measured <= billed
        assert billed - measured < max(step, 1)
        if step and measured:
            assert billed % step == 0
    assert cdr.exact_cost_excl_vat >= _exact(make(0, 0, 0), periods, tz)[0]


@settings(max_examples=300, deadline=None)
@given(tariffs(), st.none() | st.text(min_size=1, max_size=36))
def test_ocpi_json_round_trip(tariff: Tariff, tariff_id: str | None) -> None:
    tariff = replace(tariff, id=tariff_id, last_updated=datetime(2024, 5, 1, 12, 30, tzinfo=UTC))
    data = json.loads(json.dumps(tariff.to_ocpi()))
    assert Tariff.from_ocpi(data) == tariff
    assert Tariff.from_ocpi(data).to_ocpi() == data


@settings(max_examples=400, deadline=None)
@given(tariffs(), sessions(), ZONES, st.data())
def test_cost_growth_bound_covers_any_extension(
    tariff: Tariff, periods: list[SessionPeriod], tz: ZoneInfo, data: st.DataObject
) -> None:
    """What a session costs after it goes on never exceeds its earlier price plus the cheap growth bound the
    prepaid check uses to skip exact re-pricing (kWh, power and current restrictions included)."""
    assume(len(periods) >= 2)  # the bound extends a price that exists (min_price is in it)
    split = data.draw(st.integers(1, len(periods) - 1))
    tail = periods[split:]
    energy_wh = sum((p.energy_wh for p in tail), Decimal(0))
    seconds = Decimal((tail[-1].end - tail[0].start).total_seconds())
    before = calculate_cdr(tariff, periods[:split], tz).total_cost_incl_vat
    after = calculate_cdr(tariff, periods, tz).total_cost_incl_vat
    assert after <= before + tariff.cost_growth_bound_minor(energy_wh, seconds)
