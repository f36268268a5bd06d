"""The limit a connector may offer under stacked charging profiles (OCPP 1.6 §3.13), as pure functions."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from chargepoint.core.smart_charging import (
    ChargingProfile,
    ChargingSchedule,
    ConnectorLimits,
    ProfileKind,
    ProfilePurpose,
    ProfileRules,
    RateUnit,
    RecurrencyKind,
    SchedulePeriod,
    composite,
    limit_a,
    matches_clear,
    next_change,
    problem,
    replaced_by,
)

T0 = datetime(2024, 5, 6, 12, 0, tzinfo=UTC)  # a Monday
CONN = ConnectorLimits(max_current_a=32.0)
TX = ProfilePurpose.TX
DEFAULT = ProfilePurpose.TX_DEFAULT
CP_MAX = ProfilePurpose.CHARGE_POINT_MAX


def prof(
    pid: int,
    purpose: ProfilePurpose,
    *periods: tuple[int, float],
    level: int = 0,
    connector: int = 1,
    kind: ProfileKind = ProfileKind.RELATIVE,
    unit: RateUnit = RateUnit.AMPERE,
    start: datetime | None = None,
    duration_s: int | None = None,
    recurrency: RecurrencyKind | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    phases: int | None = None,
) -> ChargingProfile:
    return ChargingProfile(
        pid,
        level,
        purpose,
        kind,
        ChargingSchedule(
            unit, tuple(SchedulePeriod(s, lim, phases) for s, lim in periods), start, duration_s
        ),
        connector_id=0 if purpose is CP_MAX else connector,
        recurrency=recurrency,
        valid_from=valid_from,
        valid_to=valid_to,
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_no_profile_gives_the_connector_maximum() -> None:
    assert limit_a([], 1, T0, CONN, tx_start=T0) == 32.0


def test_highest_stack_level_wins_per_purpose() -> None:
    profiles = [prof(1, DEFAULT, (0, 10), level=1), prof(2, DEFAULT, (0, 20), level=3)]
    assert limit_a(profiles, 1, T0, CONN, tx_start=T0) == 20.0


def test_a_higher_level_that_is_over_falls_through_to_the_lower_one() -> None:
    profiles = [prof(1, DEFAULT, (0, 10), level=1), prof(2, DEFAULT, (0, 20), level=3, duration_s=600)]
    assert limit_a(profiles, 1, at(5), CONN, tx_start=T0) == 20.0
    assert limit_a(profiles, 1, at(10), CONN, tx_start=T0) == 10.0


def test_tx_profile_overrides_tx_default_and_only_in_a_transaction() -> None:
    default = prof(1, DEFAULT, (0, 10), level=5, kind=ProfileKind.ABSOLUTE, start=at(-1))
    profiles = [default, prof(2, TX, (0, 25), level=0)]
    assert limit_a(profiles, 1, T0, CONN, tx_start=T0) == 25.0
    assert limit_a(profiles, 1, T0, CONN, tx_start=None) == 10.0
    # A relative schedule has nothing to count from outside a transaction.
    assert limit_a([prof(3, DEFAULT, (0, 10))], 1, T0, CONN, tx_start=None) == 32.0


def test_charge_point_max_caps_everything() -> None:
    profiles = [prof(1, TX, (0, 25)), prof(2, CP_MAX, (0, 16))]
    assert limit_a(profiles, 1, T0, CONN, tx_start=T0) == 16.0
    assert limit_a(profiles, 2, T0, CONN, tx_start=T0) == 16.0


def test_tx_default_on_connector_0_applies_to_every_connector_but_a_connector_own_one_wins_at_equal_level() -> (
    None
):
    profiles = [prof(1, DEFAULT, (0, 10), connector=0), prof(2, DEFAULT, (0, 20), connector=2)]
    assert limit_a(profiles, 1, T0, CONN, tx_start=T0) == 10.0
    assert limit_a(profiles, 2, T0, CONN, tx_start=T0) == 20.0


def test_tx_profile_of_another_connector_does_not_apply() -> None:
    assert limit_a([prof(1, TX, (0, 6), connector=2)], 1, T0, CONN, tx_start=T0) == 32.0


def test_periods_relative_to_the_transaction_start() -> None:
    profiles = [prof(1, DEFAULT, (0, 16), (1800, 8))]
    start = at(-40)
    assert limit_a(profiles, 1, at(-20), CONN, tx_start=start) == 16.0
    assert limit_a(profiles, 1, T0, CONN, tx_start=start) == 8.0


def test_absolute_schedule_before_its_start_does_not_limit() -> None:
    profiles = [prof(1, DEFAULT, (0, 6), kind=ProfileKind.ABSOLUTE, start=at(10))]
    assert limit_a(profiles, 1, T0, CONN, tx_start=at(-5)) == 32.0
    assert limit_a(profiles, 1, at(11), CONN, tx_start=at(-5)) == 6.0


def test_validity_window() -> None:
    profiles = [prof(1, DEFAULT, (0, 6), valid_from=at(0), valid_to=at(60))]
    assert limit_a(profiles, 1, at(-1), CONN, tx_start=at(-10)) == 32.0
    assert limit_a(profiles, 1, at(30), CONN, tx_start=at(-10)) == 6.0
    assert limit_a(profiles, 1, at(60), CONN, tx_start=at(-10)) == 32.0


def test_recurring_daily_repeats_every_day_even_before_its_first_start() -> None:
    # 18:00-22:00 every day at 10 A, the rest of the day 32 A, anchored on a day in the future.
    anchor = datetime(2024, 6, 1, 18, 0, tzinfo=UTC)
    p = prof(
        1,
        DEFAULT,
        (0, 10),
        (4 * 3600, 32),
        kind=ProfileKind.RECURRING,
        recurrency=RecurrencyKind.DAILY,
        start=anchor,
    )
    assert limit_a([p], 1, datetime(2024, 5, 6, 19, 0, tzinfo=UTC), CONN, tx_start=T0) == 10.0
    assert limit_a([p], 1, datetime(2024, 5, 6, 23, 0, tzinfo=UTC), CONN, tx_start=T0) == 32.0
    assert limit_a([p], 1, datetime(2024, 5, 7, 17, 59, tzinfo=UTC), CONN, tx_start=T0) == 32.0
    assert next_change([p], datetime(2024, 5, 6, 23, 0, tzinfo=UTC)) == datetime(
        2024, 5, 7, 18, 0, tzinfo=UTC
    )


def test_recurring_weekly() -> None:
    monday = datetime(2024, 5, 6, 0, 0, tzinfo=UTC)
    p = prof(
        1,
        DEFAULT,
        (0, 8),
        (86400, 32),
        kind=ProfileKind.RECURRING,
        recurrency=RecurrencyKind.WEEKLY,
        start=monday,
    )
    assert limit_a([p], 1, monday + timedelta(days=7, hours=3), CONN, tx_start=T0) == 8.0
    assert limit_a([p], 1, monday + timedelta(days=9), CONN, tx_start=T0) == 32.0


# The connector cannot switch phases: a W limit is divided over the phases it energises, whatever numberPhases
# says, so an EV drawing on every phase still stays within the W limit (4600 W at 20 A on 3 phases was 13.8 kW).
@pytest.mark.parametrize(
    ("watts", "phases", "amps"), [(6900, None, 10.0), (4600, 1, 4600 / 690), (13800, 2, 20.0)]
)
def test_watts_become_amps_with_230_v_over_the_connector_phases(
    watts: float, phases: int | None, amps: float
) -> None:
    p = prof(1, DEFAULT, (0, watts), unit=RateUnit.WATT, phases=phases)
    assert limit_a([p], 1, T0, CONN, tx_start=T0) == pytest.approx(amps)


def test_watts_on_a_single_phase_connector_use_one_phase() -> None:
    one_phase = ConnectorLimits(max_current_a=32.0, phases=1)
    assert limit_a([prof(1, DEFAULT, (0, 2300), unit=RateUnit.WATT)], 1, T0, one_phase, tx_start=T0) == 10.0


def test_charge_point_max_is_shared_by_the_connectors_that_charge() -> None:
    """OCPP 1.6 §3.13.1: the ChargePointMaxProfile limits the current shared by all connectors."""
    cp_max = [prof(1, CP_MAX, (0, 30))]
    assert limit_a(cp_max, 1, T0, CONN, tx_start=T0, cp_share=3) == 10.0
    assert limit_a(cp_max, 1, T0, CONN, tx_start=T0) == 30.0
    # A TxProfile below the share still wins.
    assert limit_a([*cp_max, prof(2, TX, (0, 6))], 1, T0, CONN, tx_start=T0, cp_share=2) == 6.0


def test_next_change_is_the_next_period_or_duration_or_validity_edge() -> None:
    p = prof(1, DEFAULT, (0, 16), (3600, 8), duration_s=1800)
    assert next_change([p], at(1), tx_start=T0) == at(30)
    q = prof(2, DEFAULT, (0, 16), valid_to=at(10))
    assert next_change([q], at(1), tx_start=T0) == at(10)
    assert next_change([prof(3, DEFAULT, (0, 6))], at(1), tx_start=T0) is None


def test_replacement_by_id_or_by_stack_level_and_purpose_on_the_same_connector() -> None:
    installed = [
        prof(1, DEFAULT, (0, 10), level=1, connector=0),
        prof(2, DEFAULT, (0, 10), level=2, connector=1),
        prof(3, DEFAULT, (0, 10), level=1, connector=1),
    ]
    assert replaced_by(prof(1, TX, (0, 6), level=7), installed) == [1]
    assert replaced_by(prof(9, DEFAULT, (0, 6), level=1, connector=1), installed) == [3]
    assert replaced_by(prof(9, DEFAULT, (0, 6), level=3, connector=1), installed) == []


def test_clear_criteria() -> None:
    p = prof(4, DEFAULT, (0, 10), level=2, connector=1)
    assert matches_clear(p, 4, 7, CP_MAX, 9)  # the id alone decides
    assert not matches_clear(p, 5, None, None, None)
    assert matches_clear(p, None, None, None, None)
    assert matches_clear(p, None, 1, DEFAULT, 2)
    assert not matches_clear(p, None, 0, None, None)
    assert not matches_clear(p, None, None, TX, None)


RULES = ProfileRules(max_stack_level=8, max_periods=3, max_installed=4, units=frozenset({RateUnit.AMPERE}))


@pytest.mark.parametrize(
    ("candidate", "reason"),
    [
        (prof(1, DEFAULT, (0, 10), level=9), "stackLevel"),
        (prof(1, DEFAULT, (0, 10), unit=RateUnit.WATT), "unit"),
        (prof(1, DEFAULT, (0, 1), (10, 2), (20, 3), (30, 4)), "periods"),
        (prof(1, DEFAULT, (5, 10)), "start at 0"),
        (prof(1, DEFAULT, (0, 10), (0, 5)), "ascend"),
        (prof(1, DEFAULT, (0, 10), kind=ProfileKind.RECURRING), "recurring"),
        (prof(1, TX, (0, 10), connector=0), "TxProfile"),
        (prof(1, DEFAULT, (0, 10), valid_from=at(5), valid_to=at(1)), "validTo"),
        # Values no schedule can mean: they used to pass and then overflow datetime in next_change.
        (prof(1, DEFAULT, (0, 10), duration_s=10**12), "duration"),
        (prof(1, DEFAULT, (0, 10), (10**12, 6)), "startPeriod"),
        (prof(1, DEFAULT, (0, float("nan"))), "limit"),
        (prof(1, DEFAULT, (0, float("inf"))), "limit"),
        (prof(1, DEFAULT, (0, 1e308)), "limit"),
        (
            dataclasses.replace(
                prof(1, DEFAULT, (0, 10)),
                schedule=ChargingSchedule(RateUnit.AMPERE, (SchedulePeriod(0, 10),), min_rate=float("nan")),
            ),
            "minChargingRate",
        ),
        (
            prof(1, DEFAULT, (0, 10), kind=ProfileKind.ABSOLUTE, start=datetime(9999, 12, 30, tzinfo=UTC)),
            "too far in the future",
        ),
    ],
)
def test_problems(candidate: ChargingProfile, reason: str) -> None:
    why = problem(candidate, RULES)
    assert why is not None and reason in why


def test_profile_json_round_trip() -> None:
    p = prof(
        7,
        DEFAULT,
        (0, 10.5),
        (60, 6),
        kind=ProfileKind.RECURRING,
        recurrency=RecurrencyKind.DAILY,
        start=T0,
        duration_s=3600,
        valid_from=at(-1),
        valid_to=at(100),
        phases=1,
    )
    assert ChargingProfile.from_json(p.to_json()) == p
    with_id = dataclasses.replace(p, schedule=dataclasses.replace(p.schedule, id=3))
    assert ChargingProfile.from_json(with_id.to_json()) == with_id


def test_composite_schedule_merges_and_converts() -> None:
    profiles = [prof(1, TX, (0, 20), (600, 10)), prof(2, CP_MAX, (0, 16))]
    got = composite(profiles, 1, T0, 1200, RateUnit.AMPERE, CONN, tx_start=T0)
    assert got.periods == (SchedulePeriod(0, 16.0), SchedulePeriod(600, 10.0))
    watts = composite(profiles, 1, T0, 300, RateUnit.WATT, CONN, tx_start=T0)
    assert watts.periods == (SchedulePeriod(0, 16 * 230 * 3, 3),)
    assert composite(profiles, 1, T0, 0, RateUnit.AMPERE, CONN, tx_start=T0).periods == (
        SchedulePeriod(0, 16.0),
    )
    station = composite(profiles, 0, T0, 300, RateUnit.AMPERE, ConnectorLimits(64.0), tx_start=T0)
    assert station.periods == (SchedulePeriod(0, 16.0),)


def test_next_change_ignores_edges_past_the_last_representable_date() -> None:
    """An absolute schedule starting in December 9999 has period edges past what a datetime holds: they never
    come, and the other profiles' edges still count (this used to raise OverflowError in the limit timer)."""
    late = prof(
        1,
        DEFAULT,
        (0, 16),
        (30 * 86400, 8),
        kind=ProfileKind.ABSOLUTE,
        start=datetime(9999, 12, 30, tzinfo=UTC),
    )
    soon = prof(2, DEFAULT, (0, 16), valid_to=at(10), connector=2)
    assert next_change([late, soon], at(1), tx_start=T0) == at(10)
    assert next_change([late], datetime(9999, 12, 31, tzinfo=UTC), tx_start=T0) is None
