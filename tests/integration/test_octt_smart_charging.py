"""OCTT OCPP 1.6 charge-point cases of the SmartCharging profile, against the scripted central system.

The simulated plug records the current the charger offers the EV (the pilot), so each case checks the limit
where the EV sees it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.core.blocks.smart_charging import LIMIT_RECHECK_S
from tests.integration.conftest import RunningAgent, StartAgent, until
from tests.integration.octt_support import CP, start_session


def profile(
    profile_id: int,
    purpose: str,
    limit: float,
    *,
    stack_level: int = 0,
    kind: str = "Relative",
    unit: str = "A",
    transaction_id: int | None = None,
    periods: list[dict[str, Any]] | None = None,
    **schedule: Any,
) -> dict[str, Any]:
    """A ChargingProfile (camelCase) with one period of ``limit`` unless ``periods`` are given."""
    body: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": {
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": periods or [{"startPeriod": 0, "limit": limit}],
            **schedule,
        },
    }
    if transaction_id is not None:
        body["transactionId"] = transaction_id
    return body


async def set_profile(cs: CentralSystem, connector_id: int, body: dict[str, Any]) -> str:
    answer = await cs.call(
        CP, "SetChargingProfile", {"connectorId": connector_id, "csChargingProfiles": body}
    )
    return str(answer["status"])


def offered(a: RunningAgent, cid: int = 1) -> float | None:
    plug = a.sim(cid).plug
    assert plug is not None
    return plug.offered_a


async def offer_is(a: RunningAgent, current_a: float | None, cid: int = 1) -> None:
    await until(lambda: offered(a, cid) == current_a, 5, f"offer stayed {offered(a, cid)}, not {current_a}")


async def test_tc_056_central_smart_charging_tx_default_profile(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_056_CS Central Smart Charging - TxDefaultProfile: it limits the next transaction."""
    a = await start_agent()
    assert await set_profile(cs, 1, profile(1, "TxDefaultProfile", 10)) == "Accepted"
    await start_session(a, cs)
    await offer_is(a, 10.0)


async def test_tc_057_central_smart_charging_tx_profile(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_057_CS Central Smart Charging - TxProfile: the running transaction's limit drops at once."""
    a = await start_agent()
    _, tx_id = await start_session(a, cs)
    await offer_is(a, 32.0)
    assert await set_profile(cs, 1, profile(2, "TxProfile", 8, transaction_id=tx_id)) == "Accepted"
    await offer_is(a, 8.0)
    # A TxProfile overrides the TxDefaultProfile for its transaction, whatever their stack levels.
    assert await set_profile(cs, 0, profile(3, "TxDefaultProfile", 16, stack_level=5)) == "Accepted"
    await offer_is(a, 8.0)


async def test_tc_058_1_central_smart_charging_no_ongoing_transaction(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_058_1_CS Central Smart Charging - No ongoing transaction: a TxProfile is Rejected."""
    await start_agent()
    assert await set_profile(cs, 1, profile(4, "TxProfile", 8, transaction_id=123)) == "Rejected"
    assert await set_profile(cs, 1, profile(4, "TxProfile", 8)) == "Rejected"


async def test_tc_058_2_central_smart_charging_wrong_transaction_id(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_058_2_CS: a TxProfile for another transaction than the running one is Rejected."""
    a = await start_agent()
    _, tx_id = await start_session(a, cs)
    assert await set_profile(cs, 1, profile(5, "TxProfile", 8, transaction_id=tx_id + 1000)) == "Rejected"
    await offer_is(a, 32.0)


async def test_a_tx_profile_names_the_running_transaction_by_the_csms_id(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """The 1.6 transactionId of a TxProfile maps to the station's own transaction id; other purposes ignore it."""
    a = await start_agent()
    _, tx_id = await start_session(a, cs)
    assert await set_profile(cs, 1, profile(5, "TxProfile", 8, transaction_id=tx_id)) == "Accepted"
    await offer_is(a, 8.0)
    tx = a.station.connectors[1].transaction
    assert tx is not None
    (installed,) = [p for p in a.station.profiles if p.id == 5]
    assert installed.transaction_id == tx.transaction_id
    assert (
        await set_profile(cs, 1, profile(6, "TxDefaultProfile", 16, transaction_id=tx_id + 1000))
        == "Accepted"
    )


async def test_tc_059_remote_start_transaction_with_charging_profile(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_059_CS Remote Start Transaction with Charging Profile: the profile limits the started transaction and
    ends with it."""
    a = await start_agent()
    a.plug()
    await a.wait_state("PREPARING")
    answer = await cs.call(
        CP,
        "RemoteStartTransaction",
        {"idTag": "TAG1", "connectorId": 1, "chargingProfile": profile(6, "TxProfile", 12)},
    )
    assert answer["status"] == "Accepted"
    await a.wait_state("CHARGING")
    await offer_is(a, 12.0)
    composite = await cs.call(CP, "GetCompositeSchedule", {"connectorId": 1, "duration": 600})
    assert composite["status"] == "Accepted"
    assert composite["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 12.0}]
    a.unplug()
    await a.wait_state("AVAILABLE")
    await until(lambda: a.station.profiles == [], 5, "the TxProfile outlived its transaction")


async def test_tc_060_remote_start_transaction_with_charging_profile_rejected(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_060_CS: RemoteStartTransaction with a profile whose purpose is not TxProfile is Rejected."""
    a = await start_agent()
    answer = await cs.call(
        CP,
        "RemoteStartTransaction",
        {"idTag": "TAG1", "connectorId": 1, "chargingProfile": profile(7, "TxDefaultProfile", 12)},
    )
    assert answer["status"] == "Rejected"
    assert a.state() == "AVAILABLE"


async def test_tc_066_get_composite_schedule(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_066_CS Get Composite Schedule: the limits of stacked profiles merged over the requested duration."""
    a = await start_agent()
    _, tx_id = await start_session(a, cs)
    periods = [{"startPeriod": 0, "limit": 20}, {"startPeriod": 3600, "limit": 10}]
    assert (
        await set_profile(cs, 1, profile(8, "TxProfile", 0, transaction_id=tx_id, periods=periods))
        == "Accepted"
    )
    assert await set_profile(cs, 0, profile(9, "ChargePointMaxProfile", 16, kind="Absolute",
                                             startSchedule="2020-01-01T00:00:00Z")) == "Accepted"  # fmt: skip
    answer = await cs.call(
        CP, "GetCompositeSchedule", {"connectorId": 1, "duration": 7200, "chargingRateUnit": "A"}
    )
    assert answer["status"] == "Accepted" and answer["connectorId"] == 1
    schedule = answer["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "A" and schedule["duration"] == 7200
    got = schedule["chargingSchedulePeriod"]
    assert got[0] == {"startPeriod": 0, "limit": 16.0}
    assert got[-1]["limit"] == 10.0 and 3500 <= got[-1]["startPeriod"] <= 3600
    watts = await cs.call(
        CP, "GetCompositeSchedule", {"connectorId": 1, "duration": 60, "chargingRateUnit": "W"}
    )
    assert watts["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 16 * 230 * 3
    station = await cs.call(CP, "GetCompositeSchedule", {"connectorId": 0, "duration": 60})
    assert station["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 16.0
    unknown = await cs.call(CP, "GetCompositeSchedule", {"connectorId": 7, "duration": 60})
    assert unknown["status"] == "Rejected"
    await offer_is(a, 16.0)


async def test_tc_067_clear_charging_profile(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_067_CS Clear Charging Profile: by id, then by criteria; Unknown when nothing matches; the connector
    offers its maximum again."""
    a = await start_agent()
    assert await set_profile(cs, 0, profile(10, "TxDefaultProfile", 10)) == "Accepted"
    assert await set_profile(cs, 1, profile(11, "TxDefaultProfile", 14, stack_level=1)) == "Accepted"
    await start_session(a, cs)
    await offer_is(a, 14.0)
    assert (await cs.call(CP, "ClearChargingProfile", {"id": 11}))["status"] == "Accepted"
    await offer_is(a, 10.0)
    assert (await cs.call(CP, "ClearChargingProfile", {"id": 11}))["status"] == "Unknown"
    answer = await cs.call(
        CP, "ClearChargingProfile", {"connectorId": 0, "chargingProfilePurpose": "TxProfile"}
    )
    assert answer["status"] == "Unknown"
    answer = await cs.call(
        CP,
        "ClearChargingProfile",
        {"connectorId": 0, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 0},
    )
    assert answer["status"] == "Accepted"
    await offer_is(a, 32.0)


async def test_tc_072_stacking_charging_profiles(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_072_CS Stacking Charging Profiles: the higher stack level wins while it is in force, the lower one
    applies after its duration."""
    a = await start_agent()
    assert await set_profile(cs, 1, profile(12, "TxDefaultProfile", 20, stack_level=1)) == "Accepted"
    assert (
        await set_profile(cs, 1, profile(13, "TxDefaultProfile", 7, stack_level=2, duration=2)) == "Accepted"
    )
    await start_session(a, cs)
    await offer_is(a, 7.0)
    # The timer wakes at the end of the higher profile's duration (2 s after the transaction start).
    await offer_is(a, 20.0)
    # Same stack level and purpose on the same connector replaces the installed profile.
    assert await set_profile(cs, 1, profile(14, "TxDefaultProfile", 9, stack_level=1)) == "Accepted"
    await offer_is(a, 9.0)
    assert sorted(p.id for p in a.station.profiles) == [13, 14]


async def test_charge_point_max_profile_only_on_connector_0_and_caps_every_connector(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """OCPP 1.6 §3.13.1: ChargePointMaxProfile only at connectorId 0; it caps a higher TxProfile."""
    a = await start_agent()
    assert await set_profile(cs, 1, profile(15, "ChargePointMaxProfile", 10)) == "Rejected"
    _, tx_id = await start_session(a, cs)
    assert await set_profile(cs, 0, profile(15, "ChargePointMaxProfile", 10)) == "Accepted"
    assert await set_profile(cs, 1, profile(16, "TxProfile", 25, transaction_id=tx_id)) == "Accepted"
    await offer_is(a, 10.0)


async def test_unsupported_values_are_rejected(cs: CentralSystem, start_agent: StartAgent) -> None:
    """Stack levels, period counts and schedules outside what the charger advertises are Rejected."""
    await start_agent()
    assert await set_profile(cs, 1, profile(17, "TxDefaultProfile", 10, stack_level=99)) == "Rejected"
    many = [{"startPeriod": i * 60, "limit": 10} for i in range(30)]
    assert await set_profile(cs, 1, profile(18, "TxDefaultProfile", 0, periods=many)) == "Rejected"
    late = [{"startPeriod": 60, "limit": 10}]
    assert await set_profile(cs, 1, profile(19, "TxDefaultProfile", 0, periods=late)) == "Rejected"
    assert await set_profile(cs, 1, profile(20, "TxDefaultProfile", 10, kind="Recurring")) == "Rejected"
    assert await set_profile(cs, 5, profile(21, "TxDefaultProfile", 10)) == "Rejected"


async def test_watt_limits_become_amps_at_230_v(cs: CentralSystem, start_agent: StartAgent) -> None:
    """A W limit is offered as A per phase: W / (230 V x the connector's phases), even when numberPhases is
    lower, since the connector energises all of its phases and the EV may draw on each."""
    a = await start_agent()
    await start_session(a, cs)
    periods = [{"startPeriod": 0, "limit": 4600, "numberPhases": 1}]
    assert (
        await set_profile(cs, 1, profile(22, "TxDefaultProfile", 0, unit="W", periods=periods)) == "Accepted"
    )
    await offer_is(a, 4600 / (230.0 * 3))
    assert await set_profile(cs, 1, profile(22, "TxDefaultProfile", 6900, unit="W")) == "Accepted"
    await offer_is(a, 10.0)


async def test_charge_point_max_profile_is_shared_by_charging_connectors(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """OCPP 1.6 §3.13.1: the ChargePointMaxProfile is shared by all connectors, so two charging connectors
    together never get more than it (each was offered all of it)."""
    a = await start_agent(connectors=2)
    assert await set_profile(cs, 0, profile(30, "ChargePointMaxProfile", 20)) == "Accepted"
    await start_session(a, cs, "TAG1", 1)
    await offer_is(a, 20.0, 1)
    await start_session(a, cs, "TAG2", 2)
    await offer_is(a, 10.0, 2)
    await offer_is(a, 10.0, 1)


async def test_a_profile_with_an_impossible_duration_is_rejected(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """A duration past what a datetime can hold is Rejected, not stored (it used to raise OverflowError after
    being stored, and then again at every start of the agent)."""
    a = await start_agent()
    assert await set_profile(cs, 1, profile(31, "TxDefaultProfile", 8, duration=10**12)) == "Rejected"
    assert a.station.profiles == []
    answer = await cs.call(CP, "GetCompositeSchedule", {"connectorId": 1, "duration": 10**12})
    assert answer["status"] == "Rejected"


async def test_valid_to_in_the_past_leaves_the_maximum(cs: CentralSystem, start_agent: StartAgent) -> None:
    """A profile outside validFrom/validTo does not limit."""
    a = await start_agent()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    body = profile(23, "TxDefaultProfile", 8) | {"validTo": past}
    assert await set_profile(cs, 1, body) == "Accepted"
    await start_session(a, cs)
    await offer_is(a, 32.0)


async def test_profiles_survive_a_restart(cs: CentralSystem, start_agent: StartAgent) -> None:
    """Installed profiles are persisted: after the agent restarts they still limit the next transaction."""
    a = await start_agent()
    assert await set_profile(cs, 0, profile(24, "TxDefaultProfile", 11)) == "Accepted"
    await a.stop()
    b = await start_agent()
    assert [p.id for p in b.station.profiles] == [24]
    await start_session(b, cs)
    await offer_is(b, 11.0)


async def test_smart_charging_configuration_keys(cs: CentralSystem, start_agent: StartAgent) -> None:
    """GetConfiguration lists the §9.4 keys read-only, and SmartCharging among the feature profiles."""
    await start_agent()
    names = [
        "ChargeProfileMaxStackLevel",
        "ChargingScheduleAllowedChargingRateUnit",
        "ChargingScheduleMaxPeriods",
        "MaxChargingProfilesInstalled",
        "SupportedFeatureProfiles",
    ]
    answer = await cs.call(CP, "GetConfiguration", {"key": names})
    keys = {k["key"]: k for k in answer["configurationKey"]}
    assert set(keys) == set(names) and all(k["readonly"] for k in keys.values())
    assert keys["ChargingScheduleAllowedChargingRateUnit"]["value"] == "Current,Power"
    assert "SmartCharging" in keys["SupportedFeatureProfiles"]["value"].split(",")
    change = await cs.call(CP, "ChangeConfiguration", {"key": "ChargeProfileMaxStackLevel", "value": "3"})
    assert change["status"] == "Rejected"


async def test_remote_start_with_charging_profile_without_connector_id(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """A RemoteStartTransaction without connectorId applies its TxProfile on the connector the charger picks."""
    a = await start_agent()
    a.plug()
    await a.wait_state("PREPARING")
    answer = await cs.call(
        CP, "RemoteStartTransaction", {"idTag": "TAG1", "chargingProfile": profile(25, "TxProfile", 9)}
    )
    assert answer["status"] == "Accepted"
    await a.wait_state("CHARGING")
    await offer_is(a, 9.0)


async def test_a_refused_remote_start_forgets_its_charging_profile(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """A RemoteStart whose idTag the CSMS then refuses (AuthorizeRemoteTxRequests) drops its TxProfile, so it
    cannot attach to a later local session on that connector."""
    cs.id_tags["BLOCKED1"] = "Blocked"
    a = await start_agent(settings={"authorize_remote_tx_requests": True})
    answer = await cs.call(
        CP,
        "RemoteStartTransaction",
        {"connectorId": 1, "idTag": "BLOCKED1", "chargingProfile": profile(40, "TxProfile", 8)},
    )
    assert answer["status"] == "Accepted"
    await cs.wait_for_call("Authorize")
    await until(
        lambda: a.station.smart_charging.remote_profiles == {},
        5,
        "the refused remote start kept its TxProfile",
    )
    await start_session(a, cs)
    await offer_is(a, a.station.ports[1].max_current_a)


async def test_limits_are_rechecked_at_least_every_few_minutes(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """A period change an hour away is not one long monotonic sleep: after a clock correction the limit would be
    applied late by the size of the correction. The timer waits at most LIMIT_RECHECK_S."""
    a = await start_agent()
    start = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    periods = [{"startPeriod": 0, "limit": 10}, {"startPeriod": 3600, "limit": 16}]
    body = profile(50, "TxDefaultProfile", 0, kind="Absolute", periods=periods, startSchedule=start)
    assert await set_profile(cs, 1, body) == "Accepted"
    timer = a.station.smart_charging.limit_timer
    assert timer is not None
    assert 0 < timer.when() - asyncio.get_running_loop().time() <= LIMIT_RECHECK_S
