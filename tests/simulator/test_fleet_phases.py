"""The fleet's connectors have phases too (issue 10, finding 14): a 1-phase connector under a 3,680 W TxProfile
offers 16 A, and a 3-phase EV behind it draws on one phase only, 3,680 W (not 16 A x 3 phases, 11 kW, three times
the limit). The fleet connects through a ``{station_id}`` template (finding 15) on the way; the scripted central
system takes the id from the last path segment, so the routing itself is tested in
tests/integration/test_csms_url_templates.py."""

from __future__ import annotations

import asyncio

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from simulator.fleet import Fleet
from simulator.pytest_plugin import FleetFactory, fleet_state
from tests.simulator.test_smart_charging_fleet import CP, central, power_settles

__all__ = ["central"]


async def test_a_one_phase_fleet_connector_under_a_watt_limit(
    charger_fleet: FleetFactory, central: CentralSystem
) -> None:
    template = f"{central.url.rstrip('/')}/{{station_id}}"
    fleet: Fleet = await charger_fleet(csms_url=template, count=1, phases=1, meter_value_sample_interval_s=1)
    await central.wait_connected(CP)
    answer = await central.call(
        CP,
        "ChangeConfiguration",
        {"key": "MeterValuesSampledData", "value": "Energy.Active.Import.Register,Power.Active.Import"},
    )
    assert answer["status"] == "Accepted"
    fleet.plug(CP, 1)
    fleet.swipe(CP, "FLEET-PH-1")
    await fleet_state(fleet, CP, 1, "CHARGING")
    # Unlimited, the default 11 kW 3-phase EV takes 32 A on the one phase there is.
    await power_settles(central, 32 * 230.0)
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
                    "chargingRateUnit": "W",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 3680}],
                },
            },
        },
    )
    assert limited["status"] == "Accepted"
    async with asyncio.timeout(5):
        while fleet.charger(CP).connectors[1].plug.offered_a != 16.0:
            await asyncio.sleep(0.05)
    await power_settles(central, 3680.0)
