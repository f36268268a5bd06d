"""OCPP 2.0.1 K. Smart charging and the EVSE resets of B. Provisioning, over loopback against the bundled central
system's 2.0.1 side (every frame of the charger is checked against the 2.0.1 schemas: no violation may be
recorded). The simulated plug records the current the charger offers the EV (the pilot), so each limit is checked
where the EV sees it.

Named after the OCA 2.0.1 Part 6 cases where the id is confirmed in the public catalogue (TC_B_25/26/27_CS);
the smart-charging cases are named after their use case (K01, K05, K08, K09, K10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from backend_stub.app import Csms
from backend_stub.ocpp.server import CallErrorReply
from chargepoint.core.model import BootReason, ResetKind
from tests.integration.conftest import RunningAgent, until
from tests.integration.v201_support import (
    CP,
    StartAgent,
    calls,
    csms,
    mark,
    start_agent,
    start_session,
    wait_call,
)

__all__ = ["csms", "start_agent"]


def profile(
    profile_id: int,
    purpose: str,
    limit: float,
    *,
    stack_level: int = 0,
    kind: str = "Relative",
    unit: str = "A",
    transaction_id: str | None = None,
    periods: list[dict[str, Any]] | None = None,
    schedule_id: int = 1,
    **schedule: Any,
) -> dict[str, Any]:
    """A 2.0.1 ChargingProfileType with one schedule of one period of ``limit`` unless ``periods`` are given."""
    body: dict[str, Any] = {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [
            {
                "id": schedule_id,
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": periods or [{"startPeriod": 0, "limit": limit}],
                **schedule,
            }
        ],
    }
    if transaction_id is not None:
        body["transactionId"] = transaction_id
    return body


async def set_profile(csms: Csms, evse_id: int, body: dict[str, Any]) -> str:
    answer = await csms.server.call(CP, "SetChargingProfile", {"evseId": evse_id, "chargingProfile": body})
    return str(answer["status"])


def offered(a: RunningAgent, cid: int = 1) -> float | None:
    plug = a.sim(cid).plug
    assert plug is not None
    return plug.offered_a


async def offer_is(a: RunningAgent, current_a: float, cid: int = 1) -> None:
    await until(lambda: offered(a, cid) == current_a, 5, f"offer stayed {offered(a, cid)}, not {current_a}")


def still_connected(a: RunningAgent) -> None:
    link = a.agent.link
    assert link is not None and link.online and link.connections == 1


def add_card(csms: Csms, tag: str) -> None:
    csms.store.add_card(tag, user_id=csms.store.add_user("Ada " + tag).id, mode="personal")


async def composite(csms: Csms, evse_id: int, duration: int = 300, unit: str | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"evseId": evse_id, "duration": duration}
    if unit is not None:
        payload["chargingRateUnit"] = unit
    answer: dict[str, Any] = await csms.server.call(CP, "GetCompositeSchedule", payload)
    return answer


# K01 SetChargingProfile -----------------------------------------------------------------------------------------


async def test_k01_charging_station_max_profile_on_evse_0_limits_every_evse(
    csms: Csms, start_agent: StartAgent
) -> None:
    add_card(csms, "CARD1")
    a = await start_agent()
    # Only on EVSE 0 (K01.FR.?); a TxDefaultProfile may not be there with the station's whole maximum either.
    assert await set_profile(csms, 1, profile(1, "ChargingStationMaxProfile", 10)) == "Rejected"
    assert await set_profile(csms, 0, profile(1, "ChargingStationMaxProfile", 10)) == "Accepted"
    await start_session(a, csms, "CARD1")
    await offer_is(a, 10.0)
    got = await composite(csms, 0)
    assert got["status"] == "Accepted"
    assert got["schedule"]["evseId"] == 0 and got["schedule"]["chargingRateUnit"] == "A"
    assert got["schedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 10.0}]
    # The same id replaces the profile (K01.FR.05) and the offer follows at once.
    assert await set_profile(csms, 0, profile(1, "ChargingStationMaxProfile", 14)) == "Accepted"
    await offer_is(a, 14.0)
    assert [p.id for p in a.station.profiles] == [1]


async def test_k01_tx_default_profiles_stack_and_w_become_a(csms: Csms, start_agent: StartAgent) -> None:
    add_card(csms, "CARD1")
    a = await start_agent()
    # TxDefaultProfile on EVSE 0 is for every EVSE; a higher stack level on EVSE 1 wins there (K01, K02).
    assert await set_profile(csms, 0, profile(1, "TxDefaultProfile", 16)) == "Accepted"
    assert await set_profile(
        csms, 1, profile(2, "TxDefaultProfile", 3 * 230 * 8, stack_level=1, unit="W")
    ) == ("Accepted")
    await start_session(a, csms, "CARD1")
    await offer_is(a, 8.0)
    watts = await composite(csms, 1, unit="W")
    assert watts["schedule"]["chargingRateUnit"] == "W"
    assert watts["schedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 5520.0, "numberPhases": 3}
    ]


async def test_k01_tx_profile_needs_its_running_transaction(csms: Csms, start_agent: StartAgent) -> None:
    add_card(csms, "CARD1")
    a = await start_agent()
    # K01.FR.09: no transaction on the EVSE, so no TxProfile; none on EVSE 0 either.
    assert await set_profile(csms, 1, profile(5, "TxProfile", 6, transaction_id="no-such-tx")) == "Rejected"
    assert await set_profile(csms, 1, profile(5, "TxProfile", 6)) == "Rejected"
    started = await start_session(a, csms, "CARD1")
    tx = started["transactionInfo"]["transactionId"]
    assert await set_profile(csms, 0, profile(5, "TxProfile", 6, transaction_id=tx)) == "Rejected"
    # Another transaction's id (a transaction this station does not know) is not this one's.
    assert await set_profile(csms, 1, profile(5, "TxProfile", 6, transaction_id="x" + tx[1:])) == "Rejected"
    await offer_is(a, 32.0)
    assert await set_profile(csms, 1, profile(5, "TxProfile", 6, transaction_id=tx)) == "Accepted"
    await offer_is(a, 6.0)
    assert a.station.profiles[0].transaction_id == tx
    # The TxProfile lives as long as its transaction.
    a.swipe("CARD1")
    await wait_call(csms, "TransactionEvent", where=lambda p: p["eventType"] == "Ended")
    await until(lambda: a.station.profiles == [], 5, "the TxProfile outlived its transaction")
    still_connected(a)


async def test_k01_a_tx_profile_acts_on_its_own_evse_only(csms: Csms, start_agent: StartAgent) -> None:
    add_card(csms, "CARD1")
    add_card(csms, "CARD2")
    a = await start_agent(connectors=2)
    await start_session(a, csms, "CARD1", cid=1)
    second = await start_session(a, csms, "CARD2", cid=2)
    tx2 = second["transactionInfo"]["transactionId"]
    # The transaction runs on EVSE 2, so it is not EVSE 1's (a message acts only on what it names).
    assert await set_profile(csms, 1, profile(5, "TxProfile", 6, transaction_id=tx2)) == "Rejected"
    assert await set_profile(csms, 2, profile(5, "TxProfile", 6, transaction_id=tx2)) == "Accepted"
    await offer_is(a, 6.0, cid=2)
    await offer_is(a, 32.0, cid=1)
    # The same stack level for the same transaction replaces it (K01.FR.05 by id, and by level and purpose).
    assert await set_profile(csms, 2, profile(6, "TxProfile", 9, transaction_id=tx2)) == "Accepted"
    await offer_is(a, 9.0, cid=2)
    assert [p.id for p in a.station.profiles] == [6]


async def test_k01_bad_profiles_are_rejected_and_the_link_stays_up(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent()
    bad = [
        (99, profile(1, "TxDefaultProfile", 10)),  # no EVSE 99
        (1, profile(1, "TxDefaultProfile", 10, stack_level=9)),  # ProfileStackLevel is 8
        (
            1,
            profile(
                1, "TxDefaultProfile", 10, periods=[{"startPeriod": 60 * i, "limit": 10} for i in range(25)]
            ),
        ),
        (1, profile(1, "TxDefaultProfile", 1e9)),  # no limit a connector could meet
        (1, profile(1, "TxDefaultProfile", 10, periods=[{"startPeriod": 5, "limit": 10}])),  # K01.FR.31
        (1, profile(1, "ChargingStationExternalConstraints", 10)),  # the station's own (K01.FR.22)
        (
            1,
            profile(
                1,
                "TxDefaultProfile",
                10,
                kind="Absolute",
                startSchedule="9999-12-31T23:59:59Z",
                duration=86400,
            ),
        ),
        (1, profile(1, "TxDefaultProfile", 10, kind="Recurring")),  # no recurrencyKind, no startSchedule
        (
            1,
            {
                **profile(1, "TxDefaultProfile", 10),
                "validFrom": "2030-01-02T00:00:00Z",
                "validTo": "2030-01-01T00:00:00Z",
            },
        ),
    ]
    two_schedules = profile(1, "TxDefaultProfile", 10)
    two_schedules["chargingSchedule"].append({**two_schedules["chargingSchedule"][0], "id": 2})
    bad.append((1, two_schedules))
    for evse_id, body in bad:
        answer = await csms.server.call(
            CP, "SetChargingProfile", {"evseId": evse_id, "chargingProfile": body}
        )
        assert answer["status"] == "Rejected", body
        assert answer["statusInfo"]["reasonCode"] in {"UnknownEVSE", "InvalidProfile"}
    # Beyond 2^63 or not finite: no field can hold it, a CallError before any handler (the link stays up).
    with pytest.raises(CallErrorReply) as caught:
        await set_profile(csms, 1, profile(1, "TxDefaultProfile", 1e308))
    assert caught.value.code == "PropertyConstraintViolation"
    assert a.station.profiles == []
    # SmartChargingCtrlr.Entries bounds the profiles installed (16): the 17th is Rejected, a replacement is not.
    for n in range(16):
        evse_id, level = divmod(n, 8)
        assert await set_profile(
            csms, evse_id, profile(100 + n, "TxDefaultProfile", 10, stack_level=level)
        ) == ("Accepted")
    assert len(a.station.profiles) == 16
    assert await set_profile(csms, 1, profile(300, "TxDefaultProfile", 10, stack_level=8)) == "Rejected"
    assert await set_profile(csms, 1, profile(115, "TxDefaultProfile", 12, stack_level=7)) == "Accepted"
    assert len(a.station.profiles) == 16
    still_connected(a)


# K05 / F01 RequestStartTransaction with a chargingProfile -------------------------------------------------------


async def test_k05_remote_start_with_a_tx_profile_limits_that_transaction(
    csms: Csms, start_agent: StartAgent
) -> None:
    add_card(csms, "REMOTE1")
    a = await start_agent()
    a.plug()
    await a.wait_state("PREPARING")
    token = {"idToken": "REMOTE1", "type": "Central"}
    # Not a TxProfile, or naming a transaction: Rejected, nothing starts (F01.FR.?).
    for bad in (profile(7, "TxDefaultProfile", 6), profile(7, "TxProfile", 6, transaction_id="t-1")):
        answer = await csms.server.call(
            CP,
            "RequestStartTransaction",
            {"idToken": token, "remoteStartId": 1, "evseId": 1, "chargingProfile": bad},
        )
        assert answer == {"status": "Rejected"}
    assert a.station.connectors[1].transaction is None
    after = mark(csms)
    answer = await csms.server.call(
        CP,
        "RequestStartTransaction",
        {"idToken": token, "remoteStartId": 2, "evseId": 1, "chargingProfile": profile(7, "TxProfile", 6)},
    )
    assert answer == {"status": "Accepted"}
    started = await wait_call(
        csms, "TransactionEvent", after=after, where=lambda p: p["eventType"] == "Started"
    )
    await a.wait_state("CHARGING")
    await offer_is(a, 6.0)
    [installed] = a.station.profiles
    assert installed.transaction_id == started.payload["transactionInfo"]["transactionId"]


async def test_k05_with_smart_charging_disabled_the_profile_is_ignored(
    csms: Csms, start_agent: StartAgent
) -> None:
    """F01.FR.12 (as TC_K_38_CS checks for a station without smart charging): the transaction starts, unlimited."""
    add_card(csms, "REMOTE1")
    a = await start_agent(settings={"smart_charging_enabled": "false"})
    a.plug()
    await a.wait_state("PREPARING")
    answer = await csms.server.call(
        CP,
        "RequestStartTransaction",
        {
            "idToken": {"idToken": "REMOTE1", "type": "Central"},
            "remoteStartId": 3,
            "evseId": 1,
            "chargingProfile": profile(7, "TxProfile", 6),
        },
    )
    assert answer == {"status": "Accepted"}
    await a.wait_state("CHARGING")
    await offer_is(a, 32.0)
    assert a.station.profiles == []
    answer = await csms.server.call(
        CP, "SetChargingProfile", {"evseId": 0, "chargingProfile": profile(1, "TxDefaultProfile", 6)}
    )
    assert answer["status"] == "Rejected"


# K08 GetCompositeSchedule ---------------------------------------------------------------------------------------


async def test_k08_composite_schedule_of_an_absolute_profile_and_of_unknown_evses(
    csms: Csms, start_agent: StartAgent
) -> None:
    add_card(csms, "CARD1")
    a = await start_agent()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    periods = [
        {"startPeriod": 0, "limit": 6},
        {"startPeriod": 100, "limit": 8},
        {"startPeriod": 200, "limit": 10},
    ]
    body = profile(
        1,
        "TxDefaultProfile",
        0,
        kind="Absolute",
        periods=periods,
        startSchedule=start.isoformat(),
        duration=300,
    )
    assert await set_profile(csms, 1, body) == "Accepted"
    got = await composite(csms, 1, duration=400)
    assert got["status"] == "Accepted"
    limits = [p["limit"] for p in got["schedule"]["chargingSchedulePeriod"]]
    assert limits == [6.0, 8.0, 10.0, 32.0]
    assert got["schedule"]["duration"] == 400
    for evse_id in (2, 99):
        assert (await composite(csms, evse_id))["status"] == "Rejected"
    assert (await composite(csms, 1, duration=2**31))["status"] == "Rejected"
    # A duration of 0 still has its one period (the schema wants at least one).
    assert (await composite(csms, 1, duration=0))["schedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 6.0}
    ]
    still_connected(a)


# K09 GetChargingProfiles -> ReportChargingProfiles --------------------------------------------------------------


async def test_k09_get_charging_profiles_reports_one_evse_per_message(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent(connectors=2)
    assert (
        await set_profile(csms, 0, profile(1, "ChargingStationMaxProfile", 20, schedule_id=11)) == "Accepted"
    )
    recurring = profile(
        2,
        "TxDefaultProfile",
        10,
        stack_level=2,
        kind="Recurring",
        startSchedule="2030-01-01T06:00:00Z",
        duration=3600,
        schedule_id=12,
    )
    recurring["recurrencyKind"] = "Daily"
    recurring["validTo"] = "2031-01-01T00:00:00Z"
    assert await set_profile(csms, 1, recurring) == "Accepted"
    assert await set_profile(csms, 2, profile(3, "TxDefaultProfile", 12, schedule_id=13)) == "Accepted"
    after = mark(csms)
    answer = await csms.server.call(CP, "GetChargingProfiles", {"requestId": 7, "chargingProfile": {}})
    assert answer == {"status": "Accepted"}
    await until(lambda: len(calls(csms, "ReportChargingProfiles", after)) == 3, 5, "three reports")
    reports = calls(csms, "ReportChargingProfiles", after)
    assert [r["evseId"] for r in reports] == [0, 1, 2]
    assert [r["tbc"] for r in reports] == [True, True, False]
    assert {r["requestId"] for r in reports} == {7} and {r["chargingLimitSource"] for r in reports} == {"CSO"}
    reported = reports[1]["chargingProfile"][0]
    # The profile as it was set, in its 2.0.1 shape.
    assert reported["id"] == 2 and reported["recurrencyKind"] == "Daily"
    assert reported["chargingSchedule"][0]["id"] == 12
    assert reported["chargingSchedule"][0]["startSchedule"].startswith("2030-01-01T06:00:00")
    assert reported["validTo"].startswith("2031-01-01T00:00:00")
    # Criteria: by EVSE (0: the station's own), purpose, stack level, ids; another source has none.
    for criteria, evse_id, expected in (
        ({"chargingProfilePurpose": "TxDefaultProfile"}, None, [2, 3]),
        ({"stackLevel": 2}, None, [2]),
        ({"chargingProfileId": [1, 3]}, None, [1, 3]),
        ({}, 0, [1]),
        ({}, 2, [3]),
    ):
        after = mark(csms)
        request: dict[str, Any] = {"requestId": 8, "chargingProfile": criteria}
        if evse_id is not None:
            request["evseId"] = evse_id
        assert await csms.server.call(CP, "GetChargingProfiles", request) == {"status": "Accepted"}
        await until(
            lambda after=after: any(not r["tbc"] for r in calls(csms, "ReportChargingProfiles", after)),
            5,
            "report",
        )
        got = [p["id"] for r in calls(csms, "ReportChargingProfiles", after) for p in r["chargingProfile"]]
        assert got == expected, criteria
    for criteria, evse_id in (({"chargingLimitSource": ["EMS"]}, None), ({}, 99), ({"stackLevel": 5}, None)):
        request = {"requestId": 9, "chargingProfile": criteria}
        if evse_id is not None:
            request["evseId"] = evse_id
        assert await csms.server.call(CP, "GetChargingProfiles", request) == {"status": "NoProfiles"}
    still_connected(a)


# K10 ClearChargingProfile ---------------------------------------------------------------------------------------


async def test_k10_clear_by_id_by_criteria_and_all(csms: Csms, start_agent: StartAgent) -> None:
    add_card(csms, "CARD1")
    a = await start_agent()
    assert await set_profile(csms, 0, profile(1, "ChargingStationMaxProfile", 10)) == "Accepted"
    assert await set_profile(csms, 1, profile(2, "TxDefaultProfile", 8, stack_level=1)) == "Accepted"
    assert await set_profile(csms, 1, profile(3, "TxDefaultProfile", 6, stack_level=2)) == "Accepted"
    await start_session(a, csms, "CARD1")
    await offer_is(a, 6.0)

    async def clear(payload: dict[str, Any]) -> str:
        return str((await csms.server.call(CP, "ClearChargingProfile", payload))["status"])

    assert await clear({"chargingProfileId": 3}) == "Accepted"
    await offer_is(a, 8.0)
    assert await clear({"chargingProfileId": 3}) == "Unknown"
    assert await clear({"chargingProfileCriteria": {"evseId": 99}}) == "Unknown"
    assert await clear({"chargingProfileCriteria": {"chargingProfilePurpose": "TxProfile"}}) == "Unknown"
    assert await clear(
        {"chargingProfileCriteria": {"evseId": 1, "chargingProfilePurpose": "TxDefaultProfile"}}
    ) == ("Accepted")
    await offer_is(a, 10.0)
    assert await clear({}) == "Accepted"  # no criteria: every profile
    await offer_is(a, 32.0)
    assert a.station.profiles == []


# SmartChargingCtrlr ---------------------------------------------------------------------------------------------


async def test_smart_charging_ctrlr_variables_and_their_mutability(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent()

    def var(name: str, **extra: Any) -> dict[str, Any]:
        return {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": name}, **extra}

    names = [
        "Enabled",
        "Entries",
        "LimitChangeSignificance",
        "PeriodsPerSchedule",
        "ProfileStackLevel",
        "RateUnit",
    ]
    answer = await csms.server.call(CP, "GetVariables", {"getVariableData": [var(n) for n in names]})
    values = {r["variable"]["name"]: r.get("attributeValue") for r in answer["getVariableResult"]}
    assert values == {
        "Enabled": "true",
        "Entries": "0",  # installed now; its maxLimit is 16
        "LimitChangeSignificance": "10",
        "PeriodsPerSchedule": "24",
        "ProfileStackLevel": "8",
        "RateUnit": "A,W",
    }
    assert await set_profile(csms, 0, profile(1, "TxDefaultProfile", 16)) == "Accepted"
    entries = [
        var("Entries", variable={"name": "Entries", "instance": i}) for i in ("ChargingProfiles", "Other")
    ]
    answer = await csms.server.call(CP, "GetVariables", {"getVariableData": entries})
    results = answer["getVariableResult"]
    assert (results[0]["attributeStatus"], results[0]["attributeValue"]) == ("Accepted", "1")
    assert results[1]["attributeStatus"] == "UnknownVariable"
    writes = [
        var("ProfileStackLevel", attributeValue="20"),  # ReadOnly
        var("LimitChangeSignificance", attributeValue="200"),  # a percentage
        var("LimitChangeSignificance", attributeValue="25"),
        var("Enabled", attributeValue="false"),
    ]
    answer = await csms.server.call(CP, "SetVariables", {"setVariableData": writes})
    assert [r["attributeStatus"] for r in answer["setVariableResult"]] == [
        "Rejected",
        "Rejected",
        "Accepted",
        "Accepted",
    ]
    assert a.agent.store is not None
    assert a.station.settings.get_int("limit_change_significance") == 25
    answer = await csms.server.call(
        CP, "SetChargingProfile", {"evseId": 0, "chargingProfile": profile(1, "TxDefaultProfile", 6)}
    )
    assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "NotEnabled"


# B11/B12 Reset of one EVSE, boot reasons ------------------------------------------------------------------------


async def test_tc_b_25_cs_reset_evse_without_ongoing_transaction(csms: Csms, start_agent: StartAgent) -> None:
    a = await start_agent(connectors=2)
    for kind in ("OnIdle", "Immediate"):
        assert await csms.server.call(CP, "Reset", {"type": kind, "evseId": 2}) == {"status": "Accepted"}
    assert a.agent.resets == []  # the EVSE, not the station
    still_connected(a)


async def test_tc_b_26_cs_reset_evse_on_idle_waits_for_its_transaction(
    csms: Csms, start_agent: StartAgent
) -> None:
    add_card(csms, "CARD1")
    a = await start_agent(connectors=2)
    started = await start_session(a, csms, "CARD1")
    tx = started["transactionInfo"]["transactionId"]
    assert await csms.server.call(CP, "Reset", {"type": "OnIdle", "evseId": 1}) == {"status": "Scheduled"}
    assert await csms.server.call(CP, "Reset", {"type": "OnIdle", "evseId": 2}) == {"status": "Accepted"}
    assert a.station.connectors[1].transaction is not None  # OnIdle never ends it
    assert a.agent.store is not None and a.agent.store.get("reset.pending") == "1"
    a.swipe("CARD1")
    ended = await wait_call(csms, "TransactionEvent", where=lambda p: p["eventType"] == "Ended")
    assert ended.payload["transactionInfo"]["transactionId"] == tx
    assert ended.payload["transactionInfo"]["stoppedReason"] == "Local"
    await until(lambda: a.station.resets.pending == set(), 5, "the EVSE reset stayed pending")
    assert a.agent.resets == []


async def test_tc_b_27_cs_reset_evse_immediate_ends_only_its_transaction(
    csms: Csms, start_agent: StartAgent
) -> None:
    add_card(csms, "CARD1")
    add_card(csms, "CARD2")
    a = await start_agent(connectors=2)
    first = await start_session(a, csms, "CARD1", cid=1)
    second = await start_session(a, csms, "CARD2", cid=2)
    after = mark(csms)
    assert await csms.server.call(CP, "Reset", {"type": "Immediate", "evseId": 1}) == {"status": "Accepted"}
    ended = await wait_call(csms, "TransactionEvent", after=after, where=lambda p: p["eventType"] == "Ended")
    assert ended.payload["transactionInfo"]["transactionId"] == first["transactionInfo"]["transactionId"]
    assert ended.payload["triggerReason"] == "ResetCommand"
    assert ended.payload["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    await until(lambda: not a.station.ports[1].relay.closed, 5, "relay 1 stayed closed")
    tx2 = a.station.connectors[2].transaction
    assert tx2 is not None and tx2.transaction_id == second["transactionInfo"]["transactionId"]
    assert a.station.ports[2].relay.closed
    assert a.agent.resets == []


async def test_a_scheduled_station_reset_outlives_a_reconnect_and_boots_as_scheduled_reset(
    csms: Csms, start_agent: StartAgent
) -> None:
    add_card(csms, "CARD1")
    a = await start_agent()
    await start_session(a, csms, "CARD1")
    assert await csms.server.call(CP, "Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}
    # The connection drops and comes back: the reset still waits for the transaction (it lives in the station).
    assert a.agent.link is not None
    connections = a.agent.link.connections
    await csms.server.disconnect(CP)
    await until(
        lambda: a.agent.link is not None and a.agent.link.connections > connections and a.agent.link.online
    )
    assert a.agent.resets == []
    after = mark(csms)
    a.swipe("CARD1")
    boot = await wait_call(csms, "BootNotification", after=after, timeout=10)
    assert boot.payload["reason"] == "ScheduledReset"
    assert a.agent.resets == [ResetKind.SOFT]
    await a.wait_booted()
    assert a.station.boot_reason is BootReason.SCHEDULED_RESET
    assert a.agent.store is not None and a.agent.store.get("boot.reason") == BootReason.POWER_UP.value
