"""Tariff engine: OCPI 2.2.1 worked examples as vectors, parsing/validation and the sample-to-period helper."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from backend_stub.domain.tariffs import (
    Cdr,
    DayOfWeek,
    DimensionType,
    MeterSample,
    PriceComponent,
    SessionPeriod,
    Tariff,
    TariffRestrictions,
    calculate_cdr,
    currency_exponent,
    periods_from_samples,
)

AMS = ZoneInfo("Europe/Amsterdam")  # UTC+1 in January; 2024-01-15 is a Monday


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """Local Amsterdam time on a day of January 2024."""
    return datetime(2024, 1, day, hour, minute, tzinfo=AMS)


def session(start: datetime, *parts: tuple[Any, ...]) -> list[SessionPeriod]:
    """Contiguous periods from ("charge", minutes, wh, **extras) / ("park", minutes) parts."""
    out = []
    for part in parts:
        kind, minutes = part[0], part[1]
        end = start + timedelta(minutes=minutes)
        extras: dict[str, Any] = part[3] if len(part) > 3 else {}
        energy = Decimal(str(part[2])) if kind == "charge" else Decimal(0)
        out.append(SessionPeriod(start, end, energy, kind == "charge", **extras))
        start = end
    return out


def pc(kind: str, price: str, step: int = 1, vat: str | None = None) -> dict[str, Any]:
    """OCPI PriceComponent JSON."""
    out: dict[str, Any] = {"type": kind, "price": float(price), "step_size": step}
    if vat is not None:
        out["vat"] = float(vat)
    return out


def tariff(*elements: dict[str, Any], currency: str = "EUR", **extra: Any) -> Tariff:
    """Tariff from OCPI JSON elements (also exercises from_ocpi)."""
    return Tariff.from_ocpi({"currency": currency, "elements": list(elements), **extra})


def el(*components: dict[str, Any], **restrictions: Any) -> dict[str, Any]:
    """OCPI TariffElement JSON."""
    out: dict[str, Any] = {"price_components": list(components)}
    if restrictions:
        out["restrictions"] = restrictions
    return out


def cost(t: Tariff, periods: list[SessionPeriod]) -> tuple[int, int]:
    """(excl, incl) VAT in minor units."""
    cdr = calculate_cdr(t, periods, AMS)
    return cdr.total_cost_excl_vat, cdr.total_cost_incl_vat


# --------------------------------------------------------------------------- OCPI 2.2.1 worked examples


@pytest.mark.parametrize(
    ("step", "billed_wh", "exact", "cents"),
    [
        (1, 116, "0.029", 3),  # 115.2 Wh -> 116 Wh * 0.25/kWh = 0.029 -> 3 ct
        (25, 125, "0.03125", 3),  # -> 125 Wh * 0.25 = 0.03125 (spec: 0.031) -> 3 ct
        (500, 500, "0.125", 13),  # -> 500 Wh * 0.25 = 0.125 -> half-up 13 ct
    ],
)
def test_step_size_vector(step: int, billed_wh: int, exact: str, cents: int) -> None:
    t = tariff(el(pc("ENERGY", "0.25", step)))
    cdr = calculate_cdr(t, session(at(15, 10), ("charge", 1, "115.2")), AMS)
    assert cdr.billed_energy_wh == billed_wh
    assert cdr.exact_cost_excl_vat == Decimal(exact)
    assert cdr.total_cost_excl_vat == cents


def test_simple_tariff_025_per_kwh() -> None:
    t = tariff(el(pc("ENERGY", "0.25", 1, "10")))
    # 20 kWh * 0.25 = 5.00; +10% VAT = 5.50
    assert cost(t, session(at(15, 10), ("charge", 120, 20000))) == (500, 550)


def test_start_fee_plus_energy() -> None:
    t = tariff(el(pc("FLAT", "0.50", 1, "20")), el(pc("ENERGY", "0.25", 1, "10")))
    # 0.50 + 20 * 0.25 = 5.50; 0.50*1.2 + 5.00*1.1 = 0.60 + 5.50 = 6.10
    assert cost(t, session(at(15, 10), ("charge", 120, 20000))) == (550, 610)


def test_flat_energy_and_time() -> None:
    t = tariff(el(pc("FLAT", "0.50", 1, "20"), pc("ENERGY", "0.25", 1, "10"), pc("TIME", "2.00", 60, "10")))
    # 0.50 + 20 kWh*0.25 + 2.5 h*2.00 = 0.50 + 5.00 + 5.00 = 10.50; incl 0.60 + 5.50 + 5.50 = 11.60
    assert cost(t, session(at(15, 10), ("charge", 150, 20000))) == (1050, 1160)


def test_flat_is_charged_once() -> None:
    t = tariff(el(pc("FLAT", "1.00")))
    # many periods, still one 1.00 start fee
    periods = session(at(15, 10), ("charge", 10, 100), ("park", 10), ("charge", 10, 100), ("park", 10))
    assert cost(t, periods) == (100, 100)


def test_time_tariff_2_per_hour_does_not_bill_parking() -> None:
    t = tariff(el(pc("TIME", "2.00", 60, "10")))
    # 2.5 h charging * 2.00 = 5.00 (+10% = 5.50); the 30 min parked after are free (no PARKING_TIME)
    assert cost(t, session(at(15, 10), ("charge", 150, 20000), ("park", 30))) == (500, 550)


def test_min_price() -> None:
    t = tariff(el(pc("ENERGY", "0.25", 1, "10")), min_price={"excl_vat": 0.50, "incl_vat": 0.55})
    # 1 kWh * 0.25 = 0.25 < 0.50 -> 0.50; incl 0.275 < 0.55 -> 0.55
    assert cost(t, session(at(15, 10), ("charge", 10, 1000))) == (50, 55)
    # 20 kWh -> 5.00 / 5.50, above the minimum
    assert cost(t, session(at(15, 10), ("charge", 120, 20000))) == (500, 550)


def test_parking_fee_after_the_car_is_full() -> None:
    t = tariff(
        el(pc("FLAT", "0.50", 1, "20")),
        el(pc("ENERGY", "0.25", 1, "10")),
        el(pc("PARKING_TIME", "2.00", 900, "20")),
    )
    # 0.50 + 20*0.25 + 40 min -> 45 min (step 900 s) * 2.00/h = 0.50 + 5.00 + 1.50 = 7.00
    # incl: 0.60 + 5.50 + 1.80 = 7.90
    cdr = calculate_cdr(t, session(at(15, 10), ("charge", 120, 20000), ("park", 40)), AMS)
    assert (cdr.total_cost_excl_vat, cdr.total_cost_incl_vat) == (700, 790)
    assert cdr.total_parking_time_s == 2400
    assert cdr.billed_parking_time_s == 2700


def test_3_per_hour_5_per_hour_parking() -> None:
    t = tariff(el(pc("TIME", "3.00", 60, "10")), el(pc("PARKING_TIME", "5.00", 300, "20")))
    # 150 min * 3/h = 7.50; 42 min -> 45 min * 5/h = 3.75; total 11.25; incl 8.25 + 4.50 = 12.75
    assert cost(t, session(at(15, 10), ("charge", 150, 20000), ("park", 42))) == (1125, 1275)


def test_max_price() -> None:
    t = tariff(
        el(pc("FLAT", "0.50", 1, "20")),
        el(pc("ENERGY", "0.25", 1, "10")),
        max_price={"excl_vat": 10.00, "incl_vat": 11.00},
    )
    # 50 kWh: 0.50 + 12.50 = 13.00 > 10.00; incl 0.60 + 13.75 = 14.35 > 11.00
    assert cost(t, session(at(15, 10), ("charge", 300, 50000))) == (1000, 1100)
    # 30 kWh: 0.50 + 7.50 = 8.00; incl 0.60 + 8.25 = 8.85 (below the cap)
    assert cost(t, session(at(15, 10), ("charge", 300, 30000))) == (800, 885)


COMPLEX = [
    el(pc("FLAT", "2.50", 1, "15")),
    el(pc("TIME", "1.00", 900, "20"), max_current=32.00),
    el(
        pc("TIME", "2.00", 600, "20"),
        min_current=32.00,
        day_of_week=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
    ),
    el(pc("TIME", "1.25", 600, "20"), min_current=32.00, day_of_week=["SATURDAY", "SUNDAY"]),
    el(
        pc("PARKING_TIME", "5.00", 300, "10"),
        start_time="09:00",
        end_time="18:00",
        day_of_week=["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
    ),
    el(pc("PARKING_TIME", "6.00", 300, "10"), start_time="10:00", end_time="17:00", day_of_week=["SATURDAY"]),
]


def test_complex_tariff_monday() -> None:
    t = tariff(*COMPLEX)
    periods = session(at(15, 9, 30), ("charge", 147, 20000, {"max_current_a": Decimal(16)}), ("park", 42))
    # 2.50 flat + 147 -> 150 min * 1.00/h = 2.50 + 42 -> 45 min * 5/h = 3.75 => 8.75
    # incl: 2.875 + 3.00 + 4.125 = 10.00
    assert cost(t, periods) == (875, 1000)


def test_complex_tariff_saturday() -> None:
    t = tariff(*COMPLEX)
    periods = session(at(20, 13, 30), ("charge", 114, 40000, {"max_current_a": Decimal(43)}), ("park", 71))
    # 2.50 flat + 114 -> 120 min * 1.25/h = 2.50 + 71 -> 75 min * 6/h = 7.50 => 12.50
    # incl: 2.875 + 3.00 + 8.25 = 14.125 -> half-up 14.13
    assert cost(t, periods) == (1250, 1413)


def test_max_power_restriction() -> None:
    t = tariff(
        el(pc("ENERGY", "0.20"), max_power=16.00),
        el(pc("ENERGY", "0.35"), min_power=16.00, max_power=32.00),
        el(pc("ENERGY", "0.50")),
    )
    periods = session(
        at(15, 10),
        ("charge", 10, 1000, {"max_power_w": Decimal(6000)}),
        ("charge", 50, 40000, {"max_power_w": Decimal(48000)}),
        ("charge", 7.5, 500, {"max_power_w": Decimal(4000)}),
    )
    # 1 kWh*0.20 + 40 kWh*0.50 (48 kW: fallback) + 0.5 kWh*0.20 = 0.20 + 20.00 + 0.10 = 20.30
    assert cost(t, periods) == (2030, 2030)


STEP_SWITCH = [
    el(pc("TIME", "1.20", 1800), end_time="17:00"),
    el(pc("TIME", "2.40", 900), start_time="17:00"),
    el(pc("PARKING_TIME", "1.00", 900), end_time="20:00"),
]


def test_step_size_when_switching_element_1() -> None:
    t = tariff(*STEP_SWITCH)
    cdr = calculate_cdr(t, session(at(15, 16, 55), ("charge", 10, 2000), ("park", 2)), AMS)
    # 5 min*1.20/h = 0.10; 5 min*2.40/h = 0.20; 10 -> 15 min: +5 min at the last TIME price 2.40/h = 0.20;
    # parking 2 -> 15 min * 1.00/h = 0.25  => 0.75 (OCPI 2.2.1 text)
    assert cdr.total_cost_excl_vat == 75
    assert [p.tariff_element_index for p in cdr.charging_periods] == [0, 1, 2]


def test_step_size_when_switching_element_2() -> None:
    t = tariff(*STEP_SWITCH)
    # 25 min*1.20/h = 0.50; 10 min*2.40/h = 0.40; 35 -> 45 min: +10 min*2.40/h = 0.40 => 1.30, no parking
    assert cost(t, session(at(15, 16, 35), ("charge", 35, 5000))) == (130, 130)


def test_time_of_day_switch() -> None:
    t = tariff(el(pc("ENERGY", "0.30"), start_time="08:00", end_time="20:00"), el(pc("ENERGY", "0.20")))
    cdr = calculate_cdr(t, session(at(15, 19), ("charge", 120, 20000)), AMS)
    # 10 kW flat: 10 kWh before 20:00 * 0.30 + 10 kWh after * 0.20 = 3.00 + 2.00 = 5.00
    assert cdr.total_cost_excl_vat == 500
    assert [p.start for p in cdr.charging_periods] == [at(15, 19), at(15, 20)]
    assert [p.tariff_element_index for p in cdr.charging_periods] == [0, 1]


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (at(15, 21), 315),  # 7 kWh day * 0.30 + 7 kWh night (22-23) * 0.15 = 2.10 + 1.05
        (at(15, 23), 210),  # 23:00-01:00 all night across midnight: 14 kWh * 0.15
        (at(16, 5), 315),  # 05-06 night 1.05 + 06-07 day 2.10
    ],
)
def test_night_rate_wraps_past_midnight(start: datetime, expected: int) -> None:
    t = tariff(el(pc("ENERGY", "0.15"), start_time="22:00", end_time="06:00"), el(pc("ENERGY", "0.30")))
    assert cost(t, session(start, ("charge", 120, 14000)))[0] == expected


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (at(20, 10), 200),  # Saturday: 10 kWh * 0.20
        (at(19, 10), 350),  # Friday: 10 kWh * 0.35
        (at(21, 23), 275),  # Sunday 23:00 -> Monday 01:00: 5 kWh * 0.20 + 5 kWh * 0.35
    ],
)
def test_day_of_week(start: datetime, expected: int) -> None:
    t = tariff(el(pc("ENERGY", "0.20"), day_of_week=["SATURDAY", "SUNDAY"]), el(pc("ENERGY", "0.35")))
    assert cost(t, session(start, ("charge", 120, 10000)))[0] == expected


def test_max_duration_switches_element() -> None:
    t = tariff(el(pc("TIME", "1.20", 60), max_duration=1800), el(pc("TIME", "6.00", 60)))
    cdr = calculate_cdr(t, session(at(15, 10), ("charge", 60, 11000)), AMS)
    # first 30 min * 1.20/h = 0.60; next 30 min * 6.00/h = 3.00 => 3.60
    assert cdr.total_cost_excl_vat == 360
    assert [p.start for p in cdr.charging_periods] == [at(15, 10), at(15, 10, 30)]


def test_first_kwh_free_and_parking_tiers_by_duration() -> None:
    t = tariff(
        el(pc("ENERGY", "0.00"), max_kwh=1.0),
        el(pc("ENERGY", "0.20"), min_kwh=1.0),
        el(pc("PARKING_TIME", "0.00", 60), min_duration=0, max_duration=3600),
        el(pc("PARKING_TIME", "2.00", 60), min_duration=3600, max_duration=10800),
        el(pc("PARKING_TIME", "3.00", 60), min_duration=10800),
    )
    cdr = calculate_cdr(t, session(at(15, 10), ("charge", 60, 20000), ("park", 165)), AMS)
    # energy: 1 kWh free + 19 kWh * 0.20 = 3.80; parking from 1 h to 3.75 h after start:
    # 1 h..3 h * 2.00 = 4.00 + 3 h..3.75 h * 3.00 = 2.25 => 3.80 + 6.25 = 10.05
    assert cdr.total_cost_excl_vat == 1005
    # the 1 kWh mark falls 3 min into the 60-min charge (20 kWh linear): a CDR period starts there
    assert at(15, 10, 3) in [p.start for p in cdr.charging_periods]


def test_min_kwh_restriction() -> None:
    t = tariff(el(pc("ENERGY", "0.40"), max_kwh=10), el(pc("ENERGY", "0.30"), min_kwh=10))
    # 10 kWh * 0.40 + 5 kWh * 0.30 = 4.00 + 1.50 = 5.50, the tier change falls inside one period
    assert cost(t, session(at(15, 10), ("charge", 90, 15000))) == (550, 550)


def test_missing_vat_means_no_vat() -> None:
    # no vat: incl == excl (10 kWh * 0.25); vat 0 is the same number but explicit
    assert cost(tariff(el(pc("ENERGY", "0.25"))), session(at(15, 10), ("charge", 60, 10000))) == (250, 250)
    assert cost(tariff(el(pc("ENERGY", "0.25", 1, "0"))), session(at(15, 10), ("charge", 60, 10000))) == (
        250,
        250,
    )


def test_vat_per_component_and_zero_exponent_currency() -> None:
    t = tariff(el(pc("ENERGY", "30", 1, "10")), currency="JPY")
    # 10.5 kWh * 30 JPY = 315; incl 346.5 -> half-up 347 (JPY has no minor unit)
    assert cost(t, session(at(15, 10), ("charge", 60, 10500))) == (315, 347)


def test_currency_exponents() -> None:
    assert (currency_exponent("EUR"), currency_exponent("JPY"), currency_exponent("KWD")) == (2, 0, 3)


def test_parking_when_prices_absent_after_switch_is_free() -> None:
    t = tariff(el(pc("TIME", "2.40", 900)), el(pc("PARKING_TIME", "1.00", 900), end_time="20:00"))
    # 19:55 charge 10 min -> 15 min * 2.40/h = 0.60; parking 20:05-20:07 has no price => 0.60
    assert cost(t, session(at(15, 19, 55), ("charge", 10, 2000), ("park", 2))) == (60, 60)


def test_cdr_to_json() -> None:
    t = tariff(el(pc("ENERGY", "0.25", 1, "10")))
    cdr = calculate_cdr(t, session(at(15, 10), ("charge", 60, 7000), ("park", 30)), AMS)
    data = json.loads(cdr.to_json())
    assert data["total_cost_minor"] == {"excl_vat": 175, "incl_vat": 193}  # 7*0.25 = 1.75; *1.1 = 1.925
    assert data["total_time_s"] == 5400 and data["total_parking_time_s"] == 1800
    assert data["start_date_time"] == "2024-01-15T09:00:00Z"
    assert [d["type"] for d in data["charging_periods"][0]["dimensions"]][:2] == ["ENERGY", "TIME"]
    assert isinstance(cdr, Cdr)


# --------------------------------------------------------------------------- session input


def test_periods_from_samples() -> None:
    t0 = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
    samples = [
        MeterSample(t0, Decimal(0), power_w=Decimal(11000)),
        MeterSample(t0 + timedelta(minutes=30), Decimal(5500), power_w=Decimal(11000)),
        MeterSample(t0 + timedelta(minutes=60), Decimal(11000), power_w=Decimal(0), status="SuspendedEV"),
        MeterSample(t0 + timedelta(minutes=90), Decimal(11000), power_w=Decimal(0), status="SuspendedEV"),
        MeterSample(t0 + timedelta(minutes=100), Decimal(11001), status="Finishing"),
        MeterSample(t0 + timedelta(minutes=110), Decimal(11001)),
    ]
    periods = periods_from_samples(samples)
    assert [p.charging for p in periods] == [True, True, False, False, False]
    assert [p.energy_wh for p in periods] == [5500, 5500, 0, 1, 0]
    assert periods[1].max_power_w == 11000 and periods[4].max_power_w is None
    t = tariff(el(pc("ENERGY", "0.30"), pc("PARKING_TIME", "6.00", 60)))
    cdr = calculate_cdr(t, periods, AMS)
    # 11.001 kWh * 0.30 = 3.3003; 50 min parked * 6/h = 5.00 => 8.3003 -> 8.30
    assert cdr.total_cost_excl_vat == 830
    assert cdr.total_charging_time_s == 3600 and cdr.total_parking_time_s == 3000


def test_periods_from_samples_rejects_bad_input() -> None:
    t0 = datetime(2024, 1, 15, 9, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="samples"):
        periods_from_samples([MeterSample(t0, Decimal(0))])
    with pytest.raises(ValueError, match=r"samples\[1\]\.energy_wh"):
        periods_from_samples(
            [MeterSample(t0, Decimal(10)), MeterSample(t0 + timedelta(seconds=1), Decimal(5))]
        )
    with pytest.raises(ValueError, match=r"samples\[1\]\.timestamp"):
        periods_from_samples([MeterSample(t0, Decimal(0)), MeterSample(t0, Decimal(5))])


def test_session_input_validation() -> None:
    naive = datetime(2024, 1, 15, 9, 0)
    with pytest.raises(ValueError, match="start"):
        SessionPeriod(naive, naive + timedelta(hours=1), Decimal(1), True)
    with pytest.raises(ValueError, match="energy_wh"):
        SessionPeriod(at(15, 9), at(15, 10), 1.5, True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="end"):
        SessionPeriod(at(15, 10), at(15, 9), Decimal(1), True)
    gap = [
        SessionPeriod(at(15, 9), at(15, 10), Decimal(1), True),
        SessionPeriod(at(15, 11), at(15, 12), Decimal(1), True),
    ]
    with pytest.raises(ValueError, match=r"periods\[1\]\.start"):
        calculate_cdr(tariff(el(pc("ENERGY", "1"))), gap, AMS)
    with pytest.raises(ValueError, match="periods"):
        calculate_cdr(tariff(el(pc("ENERGY", "1"))), [], AMS)


# --------------------------------------------------------------------------- OCPI JSON


SPEC_COMPLEX_JSON: dict[str, Any] = {
    "country_code": "DE",
    "party_id": "ALL",
    "id": "11",
    "currency": "EUR",
    "type": "REGULAR",
    "min_price": {"excl_vat": 0.5, "incl_vat": 0.55},
    "max_price": {"excl_vat": 10, "incl_vat": 11},
    "elements": [
        *COMPLEX,
        el(
            pc("ENERGY", "0.25", 1, "10"),
            start_date="2024-01-01",
            end_date="2024-07-01",
            min_kwh=0.5,
            max_kwh=100,
            min_power=1.5,
            max_power=22,
            min_duration=60,
            max_duration=7200,
        ),
    ],
    "start_date_time": "2024-01-01T00:00:00Z",
    "end_date_time": "2024-07-01T00:00:00Z",
    "last_updated": "2023-12-20T10:11:12Z",
}


def test_round_trip_is_identity_on_canonical_json() -> None:
    t = Tariff.from_ocpi(SPEC_COMPLEX_JSON)
    assert t.to_ocpi() == SPEC_COMPLEX_JSON
    assert Tariff.from_ocpi(t.to_ocpi()) == t
    assert t.elements[3].restrictions == TariffRestrictions(
        min_current=Decimal(32), day_of_week=(DayOfWeek.SATURDAY, DayOfWeek.SUNDAY)
    )
    assert t.elements[1].price_components[0] == PriceComponent(
        DimensionType.TIME, Decimal("1.00"), 900, Decimal(20)
    )


def test_from_ocpi_accepts_naive_utc_and_ignores_unknown_fields() -> None:
    data = {
        "currency": "EUR",
        "elements": [el(pc("ENERGY", "0.25"))],
        "last_updated": "2024-01-01T10:00:00",
        "energy_mix": {},
    }
    t = Tariff.from_ocpi(data)
    assert t.last_updated == datetime(2024, 1, 1, 10, tzinfo=UTC)


def _mutated(path: list[Any], value: Any) -> dict[str, Any]:
    """Deep copy of SPEC_COMPLEX_JSON with one field replaced (value ... = delete)."""
    data = copy.deepcopy(SPEC_COMPLEX_JSON)
    node: Any = data
    for key in path[:-1]:
        node = node[key]
    if value is ...:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["currency"], ..., r"^currency: required"),
        (["currency"], "eur", r"^currency: expected an ISO 4217"),
        (["elements"], [], r"^elements: at least one"),
        (["elements"], "x", r"^elements: expected a list"),
        (["elements", 0, "price_components"], [], r"^elements\[0\]\.price_components: at least one"),
        (
            ["elements", 0, "price_components", 0, "price"],
            -1,
            r"^elements\[0\]\.price_components\[0\]\.price: must be >= 0",
        ),
        (["elements", 0, "price_components", 0, "price"], True, r"price: expected a number"),
        (["elements", 0, "price_components", 0, "price"], "abc", r"price: expected a number"),
        (["elements", 0, "price_components", 0, "step_size"], -1, r"step_size: must be >= 0"),
        (["elements", 0, "price_components", 0, "step_size"], 1.5, r"step_size: expected an integer"),
        (["elements", 0, "price_components", 0, "step_size"], ..., r"step_size: required"),
        (["elements", 0, "price_components", 0, "vat"], 150, r"vat: a percentage"),
        (
            ["elements", 0, "price_components", 0, "type"],
            "KWH",
            r"^elements\[0\]\.price_components\[0\]\.type: must be one of",
        ),
        (
            ["elements", 1, "restrictions", "max_current"],
            -3,
            r"^elements\[1\]\.restrictions\.max_current: must be >= 0",
        ),
        (
            ["elements", 4, "restrictions", "start_time"],
            "24:00",
            r"^elements\[4\]\.restrictions\.start_time: expected HH:MM",
        ),
        (["elements", 4, "restrictions", "end_time"], "9:00", r"end_time: expected HH:MM"),
        (["elements", 6, "restrictions", "start_date"], "2024-02-30", r"start_date: expected a valid"),
        (
            ["elements", 6, "restrictions", "min_kwh"],
            500,
            r"^elements\[6\]\.restrictions\.min_kwh: must not exceed max_kwh",
        ),
        (
            ["elements", 6, "restrictions", "min_duration"],
            9000,
            r"min_duration: must not exceed max_duration",
        ),
        (["elements", 6, "restrictions", "max_duration"], "1h", r"max_duration: expected an integer"),
        (
            ["elements", 3, "restrictions", "day_of_week"],
            ["FUNDAY"],
            r"^elements\[3\]\.restrictions\.day_of_week\[0\]: must be one of",
        ),
        (["min_price", "excl_vat"], -1, r"^min_price\.excl_vat: must be >= 0"),
        (["min_price", "excl_vat"], 50, r"^min_price: excl_vat must not exceed max_price"),
        (["max_price"], {"incl_vat": 1}, r"^max_price\.excl_vat: required"),
        (["last_updated"], "yesterday", r"^last_updated: not an RFC 3339"),
        (["type"], "CHEAPEST", r"^type: must be one of"),
    ],
)
def test_invalid_tariff_names_the_field(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Tariff.from_ocpi(_mutated(path, value))


def test_non_object_tariff_rejected() -> None:
    with pytest.raises(ValueError, match="tariff: expected an object"):
        Tariff.from_ocpi([])  # type: ignore[arg-type]


def test_last_component_step_rule_is_not_monotone_across_element_switches() -> None:
    # Documents a consequence of OCPI 2.2.1's step_size rule (surplus billed at the LAST component's price):
    # 16:30-17:00 at 10/h, step 1 h: 30 min + 30 min surplus at 10/h = 10.00;
    # one minute more crosses into a free element, so the surplus is billed at 0/h: 30 min * 10/h = 5.00.
    t = tariff(el(pc("TIME", "10", 3600), end_time="17:00"), el(pc("TIME", "0", 3600)))
    assert cost(t, session(at(15, 16, 30), ("charge", 30, 1000)))[0] == 1000
    assert cost(t, session(at(15, 16, 30), ("charge", 31, 1000)))[0] == 500
