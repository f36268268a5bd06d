"""Meter sampling: which measurands, when (periodic from the transaction start, clock-aligned to midnight)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from chargepoint.core.model import Measurand, ReadingContext, Sample, SampledValue
from chargepoint.ports import MeterReading

_PHASES = ("L1", "L2", "L3")


def sample(
    reading: MeterReading, measurands: tuple[Measurand, ...], context: ReadingContext, at: datetime
) -> Sample:
    """The configured measurands of ``reading`` as one sample; measurands the meter lacks are left out."""
    values: list[SampledValue] = []
    for m in measurands:
        if m is Measurand.ENERGY_ACTIVE_IMPORT_REGISTER:
            values.append(SampledValue(m, float(round(reading.energy_wh))))
        elif m is Measurand.POWER_ACTIVE_IMPORT and reading.power_w is not None:
            values.append(SampledValue(m, round(reading.power_w, 1)))
        elif m is Measurand.CURRENT_IMPORT:
            values.extend(
                SampledValue(m, round(a, 2), p) for a, p in zip(reading.current_a, _PHASES, strict=False)
            )
        elif m is Measurand.VOLTAGE:
            values.extend(
                SampledValue(m, round(v, 1), p) for v, p in zip(reading.voltage_v, _PHASES, strict=False)
            )
        elif m is Measurand.FREQUENCY and reading.frequency_hz is not None:
            values.append(SampledValue(m, round(reading.frequency_hz, 2)))
        elif m is Measurand.SOC and reading.soc_percent is not None:
            values.append(SampledValue(m, round(reading.soc_percent)))
    return Sample(at, context, tuple(values))


def finite(reading: MeterReading) -> MeterReading:
    """``reading`` with non-finite optional values (NaN, inf from a confused meter) dropped (itself if none is)."""
    isfinite = math.isfinite
    power, freq, soc = reading.power_w, reading.frequency_hz, reading.soc_percent
    if (
        (power is None or isfinite(power))
        and (freq is None or isfinite(freq))
        and (soc is None or isfinite(soc))
        and all(map(isfinite, reading.voltage_v))
        and all(map(isfinite, reading.current_a))
    ):
        return reading  # every poll of a sane meter: no copy

    def ok(value: float | None) -> float | None:
        return value if value is not None and math.isfinite(value) else None

    return MeterReading(
        energy_wh=reading.energy_wh,
        power_w=ok(reading.power_w),
        voltage_v=tuple(v for v in reading.voltage_v if math.isfinite(v)),
        current_a=tuple(a for a in reading.current_a if math.isfinite(a)),
        frequency_hz=ok(reading.frequency_hz),
        soc_percent=ok(reading.soc_percent),
    )


def next_periodic(started_at: datetime, now: datetime, interval_s: int) -> datetime:
    """The first instant after ``now`` that is a whole number of intervals after ``started_at``."""
    elapsed = (now - started_at).total_seconds()
    k = max(1, math.floor(elapsed / interval_s) + 1)
    return started_at + timedelta(seconds=k * interval_s)


def next_aligned(now: datetime, interval_s: int) -> datetime:
    """The next boundary after ``now`` of intervals counted from midnight UTC (OCPP 1.6 ClockAlignedDataInterval)."""
    now = now.astimezone(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (now - midnight).total_seconds()
    k = math.floor(elapsed / interval_s) + 1
    boundary = midnight + timedelta(seconds=k * interval_s)
    next_midnight = midnight + timedelta(days=1)
    # An interval that does not divide a day restarts at midnight.
    return min(boundary, next_midnight)
