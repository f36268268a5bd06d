"""NotifyChargingLimit's checks (OCPP 2.0.1 K12) on hostile schedules: a CallError or a schedule whose numbers are
usable, never another exception (which would be an InternalError answer)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from backend_stub.ocpp.server import CallErrorReply
from backend_stub.ocpp.v201 import MAX_CHARGING_RATE, check_charging_schedules

NOW = datetime(2026, 12, 7, tzinfo=UTC)
ints = st.sampled_from([0, 1, 3, -1, 2**31 - 1, 2**31, 2**63, 10**400]) | st.integers(-3, 100)
numbers = ints | st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 16.5]) | st.floats()
times = st.sampled_from(
    [
        "2026-12-07T10:00:00Z",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
        "garbage",
        "1969-12-31T23:59:59Z",
    ]
)
period = st.fixed_dictionaries(
    {"startPeriod": ints, "limit": numbers}, optional={"numberPhases": ints, "phaseToUse": ints}
)
schedule = st.fixed_dictionaries(
    {
        "id": ints,
        "chargingRateUnit": st.just("A"),
        "chargingSchedulePeriod": st.lists(period, min_size=1, max_size=3),
    },
    optional={"startSchedule": times, "duration": ints, "minChargingRate": numbers},
)


@given(st.lists(schedule, min_size=1, max_size=2))
def test_hostile_schedules_are_refused_with_a_call_error_or_usable(schedules: list[dict[str, Any]]) -> None:
    try:
        check_charging_schedules(schedules, NOW)
    except CallErrorReply as exc:
        assert exc.code in ("PropertyConstraintViolation", "TypeConstraintViolation")
        return
    for s in schedules:
        for p in s["chargingSchedulePeriod"]:
            assert math.isfinite(p["limit"]) and 0 <= p["limit"] <= MAX_CHARGING_RATE
            assert 0 <= p["startPeriod"] < 2**31
