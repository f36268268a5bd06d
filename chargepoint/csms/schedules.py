"""The charging-schedule shapes OCPP 1.6 and 2.0.1 share: a ChargingSchedule as the ``ocpp`` package routes it
(snake_case keys, the same names in both versions) read into the core's, and schedule periods written back."""

from __future__ import annotations

from typing import Any

from chargepoint.core.smart_charging import ChargingSchedule, RateUnit, SchedulePeriod
from chargepoint.csms.times import parse_time


def schedule_of(sched: dict[str, Any], unit: RateUnit, schedule_id: int | None = None) -> ChargingSchedule:
    """A ChargingSchedule(Type) as the core's. Raises KeyError, ValueError or TypeError for a missing or
    unreadable field."""
    start = sched.get("start_schedule")
    min_rate = sched.get("min_charging_rate")
    return ChargingSchedule(
        unit=unit,
        periods=tuple(
            SchedulePeriod(int(p["start_period"]), float(p["limit"]), p.get("number_phases"))
            for p in sched["charging_schedule_period"]
        ),
        start=parse_time(start) if start else None,
        duration_s=sched.get("duration"),
        min_rate=None if min_rate is None else float(min_rate),
        id=schedule_id,
    )


def periods_json(periods: tuple[SchedulePeriod, ...]) -> list[dict[str, Any]]:
    """ChargingSchedulePeriod(Type) in camelCase, limits to one decimal."""
    out = []
    for p in periods:
        period: dict[str, Any] = {"startPeriod": p.start_s, "limit": round(p.limit, 1)}
        if p.phases is not None:
            period["numberPhases"] = p.phases
        out.append(period)
    return out
