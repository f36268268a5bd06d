"""Properties of the smart-charging limit: never above ChargePointMaxProfile nor the connector's maximum, and
clearing every profile gives the maximum back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from chargepoint.core.smart_charging import (
    ChargingProfile,
    ChargingSchedule,
    ConnectorLimits,
    ProfileKind,
    ProfilePurpose,
    RateUnit,
    RecurrencyKind,
    SchedulePeriod,
    limit_a,
    matches_clear,
    next_change,
    period_at,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)


# Strategies built once: built inside profiles() they were fresh objects on every draw, which Hypothesis validated
# each time (most of these tests' run time). The distributions are the same.
PURPOSES = st.sampled_from(list(ProfilePurpose))
KINDS = st.sampled_from(list(ProfileKind))
PERIOD_STARTS = st.sets(st.integers(1, 86400), max_size=4)
PERIOD_LIMITS = st.floats(0, 100_000).map(lambda v: round(v, 1))
PERIOD_PHASES = st.none() | st.integers(1, 3)
START_OFFSETS_S = st.integers(-86400 * 8, 86400 * 8)
VALID_FROM_OFFSETS_S = st.integers(-86400, 86400)
PROFILE_IDS = st.integers(1, 50)
STACK_LEVELS = st.integers(0, 8)
RATE_UNITS = st.sampled_from(list(RateUnit))
DURATIONS_S = st.none() | st.integers(0, 86400 * 2)
CONNECTOR_IDS = st.integers(0, 2)
RECURRENCIES = st.sampled_from(list(RecurrencyKind))
VALIDITY_HOURS = st.integers(1, 48)


@st.composite
def profiles(draw: st.DrawFn) -> ChargingProfile:
    purpose = draw(PURPOSES)
    kind = draw(KINDS)
    starts = sorted(draw(PERIOD_STARTS))
    periods = tuple(SchedulePeriod(s, draw(PERIOD_LIMITS), draw(PERIOD_PHASES)) for s in [0, *starts])
    start = T0 + timedelta(seconds=draw(START_OFFSETS_S))
    valid_from = draw(st.none() | st.just(T0 + timedelta(seconds=draw(VALID_FROM_OFFSETS_S))))
    return ChargingProfile(
        id=draw(PROFILE_IDS),
        stack_level=draw(STACK_LEVELS),
        purpose=purpose,
        kind=kind,
        schedule=ChargingSchedule(
            draw(RATE_UNITS),
            periods,
            start if kind is not ProfileKind.RELATIVE else None,
            draw(DURATIONS_S),
        ),
        connector_id=0 if purpose is ProfilePurpose.CHARGE_POINT_MAX else draw(CONNECTOR_IDS),
        recurrency=draw(RECURRENCIES) if kind is ProfileKind.RECURRING else None,
        valid_from=valid_from,
        valid_to=valid_from + timedelta(hours=draw(VALIDITY_HOURS)) if valid_from else None,
    )


moments = st.integers(-86400 * 10, 86400 * 10).map(lambda s: T0 + timedelta(seconds=s))
connectors = st.builds(
    ConnectorLimits,
    st.floats(6, 500).map(lambda v: round(v, 1)),
    st.sampled_from([120.0, 230.0, 240.0]),
    st.integers(1, 3),
)
tx_starts = st.none() | moments


@settings(max_examples=300, deadline=None)
@given(st.lists(profiles(), max_size=8), st.integers(1, 2), moments, connectors, tx_starts)
def test_limit_never_exceeds_the_connector_maximum_nor_charge_point_max(
    installed: list[ChargingProfile], cid: int, at: datetime, conn: ConnectorLimits, tx_start: datetime | None
) -> None:
    limit = limit_a(installed, cid, at, conn, tx_start=tx_start)
    assert 0.0 <= limit <= conn.max_current_a
    cp_max = [p for p in installed if p.purpose is ProfilePurpose.CHARGE_POINT_MAX]
    cp_max.sort(key=lambda p: p.stack_level, reverse=True)
    for p in cp_max:
        period = period_at(p, at, tx_start)
        if period is not None:
            assert limit <= conn.to_amps(period.limit, p.schedule.unit, period.phases) + 1e-9
            break


@settings(max_examples=200, deadline=None)
@given(st.lists(profiles(), max_size=8), st.integers(1, 2), moments, connectors, tx_starts)
def test_clearing_every_profile_restores_the_maximum(
    installed: list[ChargingProfile], cid: int, at: datetime, conn: ConnectorLimits, tx_start: datetime | None
) -> None:
    left = [p for p in installed if not matches_clear(p, None, None, None, None)]
    assert left == []
    assert limit_a(left, cid, at, conn, tx_start=tx_start) == conn.max_current_a


@settings(max_examples=200, deadline=None)
@given(st.lists(profiles(), max_size=6), st.integers(1, 2), moments, connectors, tx_starts)
def test_the_limit_is_constant_until_the_next_change(
    installed: list[ChargingProfile], cid: int, at: datetime, conn: ConnectorLimits, tx_start: datetime | None
) -> None:
    """The station sleeps until next_change: no change may happen before it."""
    edge = next_change(installed, at, tx_start=tx_start)
    assert edge is None or edge > at
    later = edge - timedelta(microseconds=1) if edge is not None else at + timedelta(days=30)
    if later > at:
        assert limit_a(installed, cid, later, conn, tx_start=tx_start) == limit_a(
            installed, cid, at, conn, tx_start=tx_start
        )
