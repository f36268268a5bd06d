"""Random 2.0.1 SetChargingProfile calls with hostile values against a RUNNING agent (issue 12, block K).

One real agent (simulated hardware) talks 2.0.1 over loopback to the bundled central system, whose server checks
every answer against the 2.0.1 schemas; Hypothesis drives SetChargingProfile. After every call: it was answered
(Accepted/Rejected, or a 2.0.1 CallError for a value no field can hold), the link is the same connection, every
installed profile is one the engine accepts, there are never more than SmartChargingCtrlr.Entries, and the
composite schedule and GetChargingProfiles still answer."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend_stub.app import Csms
from backend_stub.ocpp.server import CallErrorReply
from chargepoint.core.smart_charging import problem
from tests.property.test_csms_fuzz import Harness
from tests.property.test_set_variables_v201 import CP_ID, harness

__all__ = ["harness"]

ints = st.sampled_from([0, 1, 2, 8, 9, -1, 2**31 - 1, 2**31, 2**63 - 1, 2**63]) | st.integers(-2, 30)
numbers = ints | st.sampled_from([1e308, math.nan, math.inf, 0.1, 6.0, 16.0, 1e7, 1e9, -0.0])
times = st.sampled_from(
    ["2024-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2030-06-01T12:00:00+02:00", "x"]
)
purposes = st.sampled_from(
    ["ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile", "ChargingStationExternalConstraints"]
)
periods = st.lists(
    st.fixed_dictionaries(
        {"startPeriod": ints, "limit": numbers}, optional={"numberPhases": st.sampled_from([1, 3, 0, 4])}
    ),
    min_size=1,
    max_size=30,
)
schedules = st.fixed_dictionaries(
    {"id": ints, "chargingRateUnit": st.sampled_from(["A", "W"]), "chargingSchedulePeriod": periods},
    optional={"startSchedule": times, "duration": ints, "minChargingRate": numbers},
)
profiles = st.fixed_dictionaries(
    {
        "id": ints,
        "stackLevel": ints,
        "chargingProfilePurpose": purposes,
        "chargingProfileKind": st.sampled_from(["Absolute", "Recurring", "Relative"]),
        "chargingSchedule": st.lists(schedules, min_size=1, max_size=3),
    },
    optional={
        "recurrencyKind": st.sampled_from(["Daily", "Weekly"]),
        "validFrom": times,
        "validTo": times,
        "transactionId": st.sampled_from(["", "t-1", "x" * 36]),
    },
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(evse_id=st.sampled_from([0, 1, 1, 2, 99]), body=profiles)
def test_random_set_charging_profile_is_answered_and_keeps_the_installed_profiles_sound(
    harness: Harness, evse_id: int, body: dict[str, Any]
) -> None:
    csms: Csms = harness.cs  # type: ignore[assignment]
    station = harness.agent.station
    assert station is not None
    connections = harness.link.connections
    before = list(station.profiles)
    try:
        answer = harness.run(
            csms.server.call(CP_ID, "SetChargingProfile", {"evseId": evse_id, "chargingProfile": body})
        )
    except CallErrorReply as exc:
        assert exc.code in (
            "FormatViolation",
            "PropertyConstraintViolation",
            "OccurrenceConstraintViolation",
            "TypeConstraintViolation",
            "ProtocolError",
        )
        assert station.profiles == before
    else:
        assert answer["status"] in ("Accepted", "Rejected")
        if answer["status"] == "Rejected":
            assert station.profiles == before
    rules = station.smart_charging.rules()
    assert len(station.profiles) <= rules.max_installed
    assert all(problem(p, rules) is None for p in station.profiles)
    composite = harness.run(csms.server.call(CP_ID, "GetCompositeSchedule", {"evseId": 1, "duration": 86400}))
    assert composite["status"] == "Accepted"
    listed = harness.run(
        csms.server.call(CP_ID, "GetChargingProfiles", {"requestId": 1, "chargingProfile": {}})
    )
    if station.profiles and listed["status"] == "NoProfiles":
        assert listed["statusInfo"]["reasonCode"] == "Busy"  # earlier reports still going out
    else:
        assert listed["status"] == ("Accepted" if station.profiles else "NoProfiles")
    assert harness.link.connections == connections and harness.link.online
    assert csms.server.violations == []
