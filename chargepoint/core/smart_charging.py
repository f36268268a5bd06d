"""Smart charging: charging profiles, their stacking and the current limit they put on a connector.

Version-neutral (OCPP 1.6 §3.13 and §7 ChargingProfile; 2.0.1 has the same model). Everything here is pure: the
station keeps the installed profiles, asks ``limit_a`` for the current in force and ``next_change`` for when to
ask again.

Assumptions: a limit in W becomes A with the connector's voltage (230 V unless configured) and the connector's
phases (it cannot switch phases, so numberPhases does not lower the divisor). A ChargePointMaxProfile is shared
by all connectors (OCPP 1.6 §3.13.1): the station divides it evenly between the connectors that charge.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

DEFAULT_PHASES = 3  # OCPP 1.6 §7.13 numberPhases: "if absent, 3 will be assumed"
DEFAULT_VOLTAGE_V = 230.0
# Longest duration or startPeriod taken (an int32, ~68 years): beyond it datetime arithmetic overflows.
MAX_SECONDS = 2**31 - 1
# Largest limit taken, A or W (10 MW): anything above is no limit a connector could meet, and 1e308 W overflows to
# infinity once converted.
MAX_LIMIT = 1e7
_RECURRENCE = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}


class ProfilePurpose(Enum):
    """What a charging profile is for (OCPP 1.6 §7.10)."""

    CHARGE_POINT_MAX = "charge_point_max"
    TX_DEFAULT = "tx_default"
    TX = "tx"


class ProfileKind(Enum):
    """How a schedule's periods are anchored in time (OCPP 1.6 §7.9)."""

    ABSOLUTE = "absolute"
    RECURRING = "recurring"
    RELATIVE = "relative"


class RecurrencyKind(Enum):
    """How often a recurring schedule starts again."""

    DAILY = "daily"
    WEEKLY = "weekly"


class RateUnit(Enum):
    """Unit of a schedule's limits."""

    AMPERE = "A"
    WATT = "W"


class ProfileResult(Enum):
    """Answer to installing a charging profile."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    NOT_SUPPORTED = "not_supported"


class ClearResult(Enum):
    """Answer to clearing charging profiles."""

    ACCEPTED = "accepted"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    """From ``start_s`` after the schedule's start on, at most ``limit`` (in the schedule's unit)."""

    start_s: int
    limit: float
    phases: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingSchedule:
    """Periods of limits, with an optional start (absolute and recurring kinds) and duration."""

    unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    start: datetime | None = None
    duration_s: int | None = None
    min_rate: float | None = None
    id: int | None = None  # OCPP 2.0.1 ChargingScheduleType.id, reported back as given (1.6 has none)


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """One installed charging profile; ``connector_id`` 0 is the charge point as a whole."""

    id: int
    stack_level: int
    purpose: ProfilePurpose
    kind: ProfileKind
    schedule: ChargingSchedule
    connector_id: int = 0
    recurrency: RecurrencyKind | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: str | None = None  # the station's id of the transaction a TxProfile belongs to

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form for storage."""
        s = self.schedule
        return {
            "id": self.id,
            "stack_level": self.stack_level,
            "purpose": self.purpose.value,
            "kind": self.kind.value,
            "connector_id": self.connector_id,
            "recurrency": self.recurrency.value if self.recurrency else None,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "transaction_id": self.transaction_id,
            "schedule": {
                "unit": s.unit.value,
                "periods": [[p.start_s, p.limit, p.phases] for p in s.periods],
                "start": s.start.isoformat() if s.start else None,
                "duration_s": s.duration_s,
                "min_rate": s.min_rate,
                "id": s.id,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChargingProfile:
        """Inverse of ``to_json``."""
        s = data["schedule"]
        return cls(
            id=int(data["id"]),
            stack_level=int(data["stack_level"]),
            purpose=ProfilePurpose(data["purpose"]),
            kind=ProfileKind(data["kind"]),
            connector_id=int(data["connector_id"]),
            recurrency=RecurrencyKind(data["recurrency"]) if data.get("recurrency") else None,
            valid_from=_time(data.get("valid_from")),
            valid_to=_time(data.get("valid_to")),
            transaction_id=None if data.get("transaction_id") is None else str(data["transaction_id"]),
            schedule=ChargingSchedule(
                unit=RateUnit(s["unit"]),
                periods=tuple(SchedulePeriod(int(a), float(b), c) for a, b, c in s["periods"]),
                start=_time(s.get("start")),
                duration_s=s.get("duration_s"),
                min_rate=s.get("min_rate"),
                id=s.get("id"),
            ),
        )


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


@dataclass(frozen=True, slots=True)
class ConnectorLimits:
    """What a connector can do without any profile, and how W become A on it."""

    max_current_a: float
    voltage_v: float = DEFAULT_VOLTAGE_V
    phases: int = DEFAULT_PHASES

    def to_amps(self, limit: float, unit: RateUnit, phases: int | None) -> float:
        """A limit in ``unit`` as amps per phase on this connector."""
        if unit is RateUnit.AMPERE:
            return limit
        # The connector energises all its phases whatever ``phases`` (numberPhases) says, and an EV may draw on
        # each: dividing by fewer phases would let it draw a multiple of the limit.
        return limit / (self.voltage_v * max(1, self.phases))

    def to_watts(self, current_a: float) -> float:
        """Amps per phase as total power on this connector."""
        return current_a * self.voltage_v * self.phases


@dataclass(frozen=True, slots=True)
class CompositeSchedule:
    """The limits a connector will apply from ``start`` on (GetCompositeSchedule, OCPP 1.6 §5.7)."""

    start: datetime
    duration_s: int
    unit: RateUnit
    periods: tuple[SchedulePeriod, ...] = field(default_factory=tuple)


# validation
@dataclass(frozen=True, slots=True)
class ProfileRules:
    """Limits the charge point advertises (OCPP 1.6 §9.4 configuration keys)."""

    max_stack_level: int
    max_periods: int
    max_installed: int
    units: frozenset[RateUnit] = frozenset(RateUnit)


def problem(profile: ChargingProfile, rules: ProfileRules) -> str | None:
    """Why a profile cannot be installed, or None if it can (transaction checks are the station's)."""
    s = profile.schedule
    if not 0 <= profile.stack_level <= rules.max_stack_level:
        return f"stackLevel must be 0..{rules.max_stack_level}"
    if s.unit not in rules.units:
        return f"rate unit {s.unit.value} is not supported"
    if not s.periods or len(s.periods) > rules.max_periods:
        return f"a schedule needs 1..{rules.max_periods} periods"
    starts = [p.start_s for p in s.periods]
    if starts[0] != 0 or any(b <= a for a, b in itertools.pairwise(starts)):
        return "periods must start at 0 and ascend"
    if starts[-1] > MAX_SECONDS:
        return f"startPeriod must be <= {MAX_SECONDS}"
    if any(not math.isfinite(p.limit) or p.limit > MAX_LIMIT for p in s.periods):
        return f"a period needs a finite limit <= {MAX_LIMIT:g}"
    if any(p.limit < 0 or (p.phases is not None and not 1 <= p.phases <= 3) for p in s.periods):
        return "a period needs a limit >= 0 and 1..3 phases"
    if s.min_rate is not None and not (math.isfinite(s.min_rate) and 0 <= s.min_rate <= MAX_LIMIT):
        return f"minChargingRate must be 0..{MAX_LIMIT:g}"
    if s.duration_s is not None and not 0 <= s.duration_s <= MAX_SECONDS:
        return f"duration must be 0..{MAX_SECONDS}"
    if s.start is not None and not _representable(s.start, max(starts[-1], s.duration_s or 0)):
        return "startSchedule is too far in the future"
    if profile.kind is ProfileKind.RECURRING and (profile.recurrency is None or s.start is None):
        return "a recurring profile needs recurrencyKind and startSchedule"
    if profile.purpose is ProfilePurpose.CHARGE_POINT_MAX and profile.connector_id != 0:
        return "ChargePointMaxProfile only on connector 0"
    if profile.purpose is ProfilePurpose.TX and profile.connector_id == 0:
        return "TxProfile only on a connector > 0"
    if profile.valid_from and profile.valid_to and profile.valid_to <= profile.valid_from:
        return "validTo must be after validFrom"
    return None


def _representable(start: datetime, offset_s: int) -> bool:
    """Whether every instant of a schedule starting at ``start`` (and its next weekly cycle) is a datetime: a
    startSchedule in the year 9999 would overflow when its periods are evaluated."""
    try:
        start + timedelta(seconds=offset_s) + _RECURRENCE["weekly"] * 2
    except OverflowError:
        return False
    return True


def replaced_by(new: ChargingProfile, installed: Iterable[ChargingProfile]) -> list[int]:
    """Ids of installed profiles ``new`` replaces: the same id, or the same stackLevel and purpose on the same
    connector (OCPP 1.6 §5.16; a connector-specific TxDefaultProfile leaves connector 0's in place)."""
    return [
        p.id
        for p in installed
        if p.id == new.id
        or (
            p.stack_level == new.stack_level
            and p.purpose is new.purpose
            and p.connector_id == new.connector_id
        )
    ]


def matches_clear(
    p: ChargingProfile,
    profile_id: int | None,
    connector_id: int | None,
    purpose: ProfilePurpose | None,
    stack_level: int | None,
) -> bool:
    """Whether ClearChargingProfile's criteria select ``p`` (OCPP 1.6 §5.5: an id selects by id alone)."""
    if profile_id is not None:
        return p.id == profile_id
    return (
        (connector_id is None or p.connector_id == connector_id)
        and (purpose is None or p.purpose is purpose)
        and (stack_level is None or p.stack_level == stack_level)
    )


# evaluation
def _anchor(p: ChargingProfile, tx_start: datetime | None) -> datetime | None:
    """When a profile's schedule starts (its first cycle for a recurring one)."""
    if p.kind is ProfileKind.RELATIVE or p.schedule.start is None:
        # OCPP 1.6 §7.13 startSchedule: "if absent the schedule will be relative to start of charging".
        return tx_start
    return p.schedule.start


def _cycle_start(p: ChargingProfile, at: datetime, tx_start: datetime | None) -> datetime | None:
    """The start of the schedule cycle that ``at`` falls in."""
    anchor = _anchor(p, tx_start)
    if anchor is None:
        return None
    if p.kind is ProfileKind.RECURRING and p.recurrency is not None:
        period = _RECURRENCE[p.recurrency.value]
        return anchor + period * ((at - anchor) // period)
    return anchor


def _valid(p: ChargingProfile, at: datetime) -> bool:
    return (p.valid_from is None or p.valid_from <= at) and (p.valid_to is None or at < p.valid_to)


def period_at(p: ChargingProfile, at: datetime, tx_start: datetime | None) -> SchedulePeriod | None:
    """The period of ``p`` in force at ``at``, None when ``p`` says nothing then (not valid, not started, over)."""
    if not _valid(p, at):
        return None
    start = _cycle_start(p, at, tx_start)
    if start is None or at < start:
        return None
    offset = (at - start).total_seconds()
    duration = p.schedule.duration_s
    if duration is not None and offset >= duration:
        return None
    current = None
    for period in p.schedule.periods:
        if period.start_s > offset:
            break
        current = period
    return current


def _applicable(
    profiles: Iterable[ChargingProfile], connector_id: int, in_transaction: bool
) -> dict[ProfilePurpose, list[ChargingProfile]]:
    """Per purpose, the profiles that may apply to a connector, in the order they win."""
    by_purpose: dict[ProfilePurpose, list[ChargingProfile]] = {p: [] for p in ProfilePurpose}
    for p in profiles:
        if p.purpose is ProfilePurpose.CHARGE_POINT_MAX:
            if p.connector_id == 0:
                by_purpose[p.purpose].append(p)
        elif p.purpose is ProfilePurpose.TX_DEFAULT:
            if p.connector_id in (0, connector_id):
                by_purpose[p.purpose].append(p)
        elif in_transaction and p.connector_id == connector_id and connector_id != 0:
            by_purpose[p.purpose].append(p)
    for items in by_purpose.values():
        # Highest stackLevel first; at equal levels a connector's own TxDefaultProfile beats connector 0's.
        items.sort(key=lambda p: (p.stack_level, p.connector_id != 0), reverse=True)
    return by_purpose


def _first_limit(
    candidates: list[ChargingProfile], at: datetime, tx_start: datetime | None, conn: ConnectorLimits
) -> float | None:
    """The limit (A) of the highest-stacked profile that is in force at ``at`` (OCPP 1.6 §3.13.2)."""
    for p in candidates:
        period = period_at(p, at, tx_start)
        if period is not None:
            return conn.to_amps(period.limit, p.schedule.unit, period.phases)
    return None


def limit_a(
    profiles: Iterable[ChargingProfile],
    connector_id: int,
    at: datetime,
    conn: ConnectorLimits,
    *,
    tx_start: datetime | None = None,
    cp_share: int = 1,
) -> float:
    """The current (A per phase) a connector may offer at ``at``: its maximum, lowered by the TxProfile in force
    (else the TxDefaultProfile) and by its share of the ChargePointMaxProfile, which ``cp_share`` connectors
    share (OCPP 1.6 §3.13.1); ``tx_start`` is set while a transaction runs."""
    by_purpose = _applicable(profiles, connector_id, tx_start is not None)
    limit = conn.max_current_a
    tx_limit = _first_limit(by_purpose[ProfilePurpose.TX], at, tx_start, conn)
    if tx_limit is None:
        tx_limit = _first_limit(by_purpose[ProfilePurpose.TX_DEFAULT], at, tx_start, conn)
    cp_limit = _first_limit(by_purpose[ProfilePurpose.CHARGE_POINT_MAX], at, tx_start, conn)
    if cp_limit is not None:
        cp_limit /= max(1, cp_share)
    for value in (tx_limit, cp_limit):
        if value is not None:
            limit = min(limit, value)
    return max(0.0, limit)


def next_change(
    profiles: Iterable[ChargingProfile], at: datetime, *, tx_start: datetime | None = None
) -> datetime | None:
    """The first instant after ``at`` where any of ``profiles`` may change the limit, None if never."""
    candidates: list[datetime] = []
    for p in profiles:
        for edge in (p.valid_from, p.valid_to):
            if edge is not None and edge > at:
                candidates.append(edge)
        try:
            candidates.extend(_schedule_edges(p, at, tx_start))
        except OverflowError:
            continue  # edges past the year 9999 never come
    return min(candidates) if candidates else None


def _schedule_edges(p: ChargingProfile, at: datetime, tx_start: datetime | None) -> list[datetime]:
    """The period starts and the end of ``p``'s current (and, if recurring, next) cycle that lie after ``at``."""
    start = _cycle_start(p, at, tx_start)
    if start is None:
        return []
    cycles = [start]
    if p.kind is ProfileKind.RECURRING and p.recurrency is not None:
        cycles.append(start + _RECURRENCE[p.recurrency.value])
    offsets = [period.start_s for period in p.schedule.periods]
    if p.schedule.duration_s is not None:
        offsets.append(p.schedule.duration_s)
    return [
        edge for cycle in cycles for offset in offsets if (edge := cycle + timedelta(seconds=offset)) > at
    ]


def composite(
    profiles: list[ChargingProfile],
    connector_id: int,
    start: datetime,
    duration_s: int,
    unit: RateUnit,
    conn: ConnectorLimits,
    *,
    tx_start: datetime | None = None,
    cp_share: int = 1,
) -> CompositeSchedule:
    """The limits of ``connector_id`` from ``start`` for ``duration_s``, merged into periods (GetCompositeSchedule).

    Connector 0 reports the charge point as a whole: its ChargePointMaxProfile over ``conn`` (the sum of the
    connectors' maximum)."""
    end = start + timedelta(seconds=duration_s)
    relevant = (
        [p for p in profiles if p.purpose is ProfilePurpose.CHARGE_POINT_MAX]
        if connector_id == 0
        else profiles
    )
    periods: list[SchedulePeriod] = []
    at = start
    while at < end or not periods:  # at least one period, also for a duration of 0 (the schemas want one)
        amps = limit_a(relevant, connector_id, at, conn, tx_start=tx_start, cp_share=cp_share)
        value = round(amps if unit is RateUnit.AMPERE else conn.to_watts(amps), 1)
        phases = None if unit is RateUnit.AMPERE else conn.phases
        if not periods or periods[-1].limit != value:
            periods.append(SchedulePeriod(int((at - start).total_seconds()), value, phases))
        following = next_change(relevant, at, tx_start=tx_start)
        if following is None:
            break
        # Whole seconds: startPeriod is an integer, so a boundary inside a second starts the next one.
        elapsed_s = int((at - start).total_seconds())
        at = start + timedelta(seconds=max(elapsed_s + 1, math.ceil((following - start).total_seconds())))
    return CompositeSchedule(start, duration_s, unit, tuple(periods))
