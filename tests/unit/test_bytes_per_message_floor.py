"""The least BytesPerMessage a station may be configured with (``csms.bytes_per_message``) holds the widest message
that is neither cut nor trimmed: a ReportChargingProfiles with one profile the station accepts at its widest.
Below it, a GetChargingProfiles answered Accepted could be followed by no report at all (the profile left out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chargepoint.core.settings import MIN_BYTES_PER_MESSAGE, SPECS
from chargepoint.core.smart_charging import (
    MAX_LIMIT,
    MAX_SECONDS,
    ChargingProfile,
    ChargingSchedule,
    ProfileKind,
    ProfilePurpose,
    ProfileRules,
    RateUnit,
    RecurrencyKind,
    SchedulePeriod,
    problem,
)
from chargepoint.csms.fitting import payload_room, split_entries
from chargepoint.csms.v201.smart_charging import LIMIT_SOURCE, profile_json

INT32_MAX = 2**31 - 1


def _widest_profile() -> ChargingProfile:
    """A profile the station installs, every field present at its widest (PeriodsPerSchedule periods)."""
    periods = SPECS["charging_schedule_max_periods"].default
    widest_limit = round(MAX_LIMIT - 0.1, 1)  # 9999999.9: the most digits a limit is reported with
    start = datetime(2026, 1, 1, tzinfo=UTC)
    schedule = ChargingSchedule(
        RateUnit.WATT,
        tuple(
            SchedulePeriod(0 if n == 0 else MAX_SECONDS - periods + n, widest_limit, 3)
            for n in range(periods)
        ),
        start=start,
        duration_s=MAX_SECONDS,
        min_rate=widest_limit,
        id=INT32_MAX,
    )
    return ChargingProfile(
        INT32_MAX,
        SPECS["charge_profile_max_stack_level"].default,
        ProfilePurpose.TX,
        ProfileKind.RECURRING,
        schedule,
        connector_id=1,
        recurrency=RecurrencyKind.WEEKLY,
        valid_from=start,
        valid_to=start + timedelta(days=3650),
        transaction_id="T" * 36,  # 2.0.1 transactionId: identifierString[0..36]
    )


def test_the_widest_accepted_profile_is_reported_at_the_least_bytes_per_message() -> None:
    profile = _widest_profile()
    rules = ProfileRules(
        max_stack_level=SPECS["charge_profile_max_stack_level"].default,
        max_periods=SPECS["charging_schedule_max_periods"].default,
        max_installed=SPECS["max_charging_profiles_installed"].default,
    )
    assert problem(profile, rules) is None  # the station takes it
    base = {"requestId": INT32_MAX, "chargingLimitSource": LIMIT_SOURCE, "evseId": 99, "tbc": False}
    room = payload_room(MIN_BYTES_PER_MESSAGE, "ReportChargingProfiles")
    split = split_entries(room, base, "chargingProfile", [profile_json(profile)])
    assert split.left_out == 0 and len(split.parts) == 1
