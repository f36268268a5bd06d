"""Meter sampling: clock-aligned and periodic schedules, and which values a sample carries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chargepoint.core.metering import finite, next_aligned, next_periodic, sample
from chargepoint.core.model import Measurand, ReadingContext, Sample, SampledValue
from chargepoint.ports import MeterReading

M = Measurand


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


ALIGNED: list[tuple[str, datetime, int, datetime]] = [
    ("quarter hour", utc(2024, 5, 1, 10, 7, 30), 900, utc(2024, 5, 1, 10, 15)),
    ("exactly on a boundary gives the next", utc(2024, 5, 1, 10, 15), 900, utc(2024, 5, 1, 10, 30)),
    ("midnight itself", utc(2024, 5, 1), 3600, utc(2024, 5, 1, 1)),
    ("just before a boundary", utc(2024, 5, 1, 10, 14, 59, 999_999), 900, utc(2024, 5, 1, 10, 15)),
    ("last boundary of the day", utc(2024, 5, 1, 23, 59, 59), 60, utc(2024, 5, 2)),
    ("a whole day", utc(2024, 5, 1, 12), 86400, utc(2024, 5, 2)),
    ("7 h: before the last boundary", utc(2024, 5, 1, 20, 59, 59), 7 * 3600, utc(2024, 5, 1, 21)),
    ("7 h: restarts at midnight", utc(2024, 5, 1, 22), 7 * 3600, utc(2024, 5, 2)),
    ("7 h: after midnight", utc(2024, 5, 2, 0, 0, 1), 7 * 3600, utc(2024, 5, 2, 7)),
    ("7 min: restarts at midnight", utc(2024, 5, 1, 23, 58), 7 * 60, utc(2024, 5, 2)),
    ("year end", utc(2024, 12, 31, 23, 30), 3600, utc(2025, 1, 1)),
    ("leap day", utc(2024, 2, 28, 23, 45), 1800, utc(2024, 2, 29)),
]


@pytest.mark.parametrize(("name", "now", "interval_s", "expected"), ALIGNED, ids=[a[0] for a in ALIGNED])
def test_next_aligned(name: str, now: datetime, interval_s: int, expected: datetime) -> None:
    got = next_aligned(now, interval_s)
    assert got == expected
    assert got > now
    assert got.tzinfo is not None and got.utcoffset() == timedelta(0)


def test_next_aligned_counts_from_utc_midnight_whatever_the_zone() -> None:
    """An aware non-UTC `now` once got boundaries counted from its own local midnight."""
    now = utc(2024, 5, 1, 23)
    local = now.astimezone(timezone(timedelta(hours=2)))
    assert next_aligned(local, 7 * 3600) == next_aligned(now, 7 * 3600) == utc(2024, 5, 2)


START = utc(2024, 5, 1, 10, 0, 30)

PERIODIC: list[tuple[datetime, int, datetime]] = [
    (START, 60, START + timedelta(seconds=60)),  # at the start: the first full interval
    (START + timedelta(seconds=59), 60, START + timedelta(seconds=60)),
    (START + timedelta(seconds=60), 60, START + timedelta(seconds=120)),  # on a boundary: the next one
    (START + timedelta(minutes=4, seconds=30), 60, START + timedelta(minutes=5)),  # from the start, not :00
    (START - timedelta(seconds=10), 60, START + timedelta(seconds=60)),  # clock stepped back
    (START + timedelta(hours=3), 900, START + timedelta(hours=3, minutes=15)),
]


@pytest.mark.parametrize(("now", "interval_s", "expected"), PERIODIC)
def test_next_periodic_counts_from_the_start(now: datetime, interval_s: int, expected: datetime) -> None:
    got = next_periodic(START, now, interval_s)
    assert got == expected
    assert (got - START).total_seconds() % interval_s == 0


THREE_PHASE = MeterReading(
    energy_wh=12_345.6,
    power_w=7_360.04,
    voltage_v=(230.14, 231.26, 229.91),
    current_a=(10.123, 10.0, 9.499),
    frequency_hz=50.004,
    soc_percent=55.4,
)
AT = utc(2024, 5, 1, 10)


def test_sample_picks_only_configured_measurands_in_order() -> None:
    s = sample(
        THREE_PHASE, (M.POWER_ACTIVE_IMPORT, M.ENERGY_ACTIVE_IMPORT_REGISTER), ReadingContext.TRIGGER, AT
    )
    assert s.timestamp == AT and s.context is ReadingContext.TRIGGER
    assert s.values == (
        SampledValue(M.POWER_ACTIVE_IMPORT, 7360.0),
        SampledValue(M.ENERGY_ACTIVE_IMPORT_REGISTER, 12346.0),
    )


def test_sample_nothing_configured() -> None:
    assert sample(THREE_PHASE, (), ReadingContext.SAMPLE_CLOCK, AT).values == ()


def test_sample_phases_are_l1_to_l3() -> None:
    s = sample(THREE_PHASE, (M.CURRENT_IMPORT, M.VOLTAGE), ReadingContext.SAMPLE_PERIODIC, AT)
    assert [(v.measurand, v.phase, v.value) for v in s.values] == [
        (M.CURRENT_IMPORT, "L1", 10.12),
        (M.CURRENT_IMPORT, "L2", 10.0),
        (M.CURRENT_IMPORT, "L3", 9.5),
        (M.VOLTAGE, "L1", 230.1),
        (M.VOLTAGE, "L2", 231.3),
        (M.VOLTAGE, "L3", 229.9),
    ]


def test_single_phase_meter_reports_l1_only() -> None:
    reading = MeterReading(energy_wh=1.0, voltage_v=(230.0,), current_a=(16.0,))
    s = sample(reading, (M.CURRENT_IMPORT, M.VOLTAGE), ReadingContext.TRIGGER, AT)
    assert [v.phase for v in s.values] == ["L1", "L1"]


@pytest.mark.parametrize(
    ("energy_wh", "expected"), [(1234.4, 1234.0), (1234.6, 1235.0), (0.2, 0.0), (7.0, 7.0)]
)
def test_sample_rounds_energy_to_whole_wh(energy_wh: float, expected: float) -> None:
    (value,) = sample(
        MeterReading(energy_wh=energy_wh), (M.ENERGY_ACTIVE_IMPORT_REGISTER,), ReadingContext.TRIGGER, AT
    ).values
    assert value.value == expected
    assert isinstance(value.value, float)
    assert value.phase is None


def test_sample_leaves_out_what_the_meter_lacks() -> None:
    bare = MeterReading(energy_wh=5.0)
    s = sample(bare, tuple(M), ReadingContext.TRIGGER, AT)
    assert [v.measurand for v in s.values] == [M.ENERGY_ACTIVE_IMPORT_REGISTER]


def test_sample_every_measurand() -> None:
    s = sample(THREE_PHASE, tuple(M), ReadingContext.TRIGGER, AT)
    by = {(v.measurand, v.phase): v.value for v in s.values}
    assert by[(M.FREQUENCY, None)] == 50.0
    assert by[(M.SOC, None)] == 55
    assert len(s.values) == 1 + 1 + 3 + 3 + 1 + 1


def test_sample_json_round_trip() -> None:
    s = sample(THREE_PHASE, tuple(M), ReadingContext.SAMPLE_CLOCK, AT)
    again = Sample.from_json(s.to_json())
    assert again == s


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("reading", "expected"),
    [
        (
            MeterReading(5.0, NAN, (230.0, INF, 229.0), (NAN, 1.5), INF, NAN),
            MeterReading(5.0, None, (230.0, 229.0), (1.5,)),
        ),
        (MeterReading(5.0, -INF), MeterReading(5.0)),
        (MeterReading(5.0, 1.0, frequency_hz=NAN), MeterReading(5.0, 1.0)),
        (MeterReading(5.0, 1.0, soc_percent=INF), MeterReading(5.0, 1.0)),
    ],
)
def test_finite_drops_every_non_finite_optional_value(reading: MeterReading, expected: MeterReading) -> None:
    assert finite(reading) == expected


def test_finite_returns_a_sane_reading_itself() -> None:
    """Every poll of a sane meter goes through it: no copy then."""
    reading = MeterReading(5.0, 7400.0, (230.0,) * 3, (10.7, 0.0, 0.0), 50.0, 42.0)
    assert finite(reading) is reading
