"""A smart-charging limit shows in a virtual EV's meter: the power it draws follows the current the charger offers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from simulator.fleet import Fleet
from simulator.pytest_plugin import FleetFactory, fleet_state

CP = "CP-0001"


@pytest.fixture
async def central() -> AsyncIterator[CentralSystem]:
    server = CentralSystem()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def power_samples(cs: CentralSystem, after: int) -> list[float]:
    """Power.Active.Import values in the charger's MeterValues since ``after``."""
    values = []
    for frame in cs.log[after:]:
        if frame.direction == "in" and frame.message_type == 2 and frame.action == "MeterValues":
            for mv in frame.payload["meterValue"]:
                values.extend(
                    float(v["value"])
                    for v in mv["sampledValue"]
                    if v.get("measurand") == "Power.Active.Import"
                )
    return values


async def power_settles(cs: CentralSystem, expected_w: float, timeout_s: float = 10.0) -> None:
    """Wait until two consecutive MeterValues report ``expected_w``."""
    start = len(cs.log)
    async with asyncio.timeout(timeout_s):
        while True:
            seen = power_samples(cs, start)
            if len(seen) >= 2 and seen[-2:] == [expected_w, expected_w]:
                return
            await asyncio.sleep(0.05)


async def test_a_charging_profile_lowers_the_ev_power_and_clearing_it_restores_it(
    charger_fleet: FleetFactory, central: CentralSystem
) -> None:
    fleet: Fleet = await charger_fleet(csms_url=central.url, count=1, meter_value_sample_interval_s=1)
    await central.wait_connected(CP)
    answer = await central.call(
        CP,
        "ChangeConfiguration",
        {"key": "MeterValuesSampledData", "value": "Energy.Active.Import.Register,Power.Active.Import"},
    )
    assert answer["status"] == "Accepted"
    fleet.plug(CP, 1)
    fleet.swipe(CP, "FLEET-SC-1")
    await fleet_state(fleet, CP, 1, "CHARGING")
    # The default EV takes 11 kW on three phases: the 32 A offer is not what limits it.
    await power_settles(central, 11_000.0)

    tx = fleet.charger(CP).agent.station.connectors[1].transaction  # type: ignore[union-attr]
    store = fleet.charger(CP).agent.store
    assert tx is not None and store is not None
    csms_id = store.csms_transaction_id(tx.local_id)
    assert csms_id is not None
    limited = await central.call(
        CP,
        "SetChargingProfile",
        {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 1,
                "transactionId": csms_id,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8}],
                },
            },
        },
    )
    assert limited["status"] == "Accepted"
    await power_settles(central, 8 * 230.0 * 3)  # 8 A on three phases at 230 V
    energy = fleet.charger(CP).connectors[1].meter.energy_wh
    await asyncio.sleep(1.0)
    slope_wh = fleet.charger(CP).connectors[1].meter.energy_wh - energy
    assert 0 < slope_wh < 11_000.0 / 3600 * 1.5  # the register grows at the limited rate

    cleared = await central.call(CP, "ClearChargingProfile", {"id": 1})
    assert cleared["status"] == "Accepted"
    await power_settles(central, 11_000.0)
