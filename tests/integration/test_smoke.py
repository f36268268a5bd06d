"""A first whole session over loopback."""

from __future__ import annotations

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from tests.integration.conftest import StartAgent


async def test_plug_swipe_charge_stop(cs: CentralSystem, start_agent: StartAgent) -> None:
    a = await start_agent(settings={"meter_value_sample_interval_s": 1})
    boot = cs.calls("BootNotification")[0]
    assert boot.payload["chargePointSerialNumber"] == "SN-1"
    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("TAG1")
    await a.wait_state("CHARGING")
    start = await cs.wait_for_call("StartTransaction")
    assert start.payload["idTag"] == "TAG1"
    await cs.wait_for_call("MeterValues", where=lambda p: "transactionId" in p)
    a.swipe("TAG1")
    stop = await cs.wait_for_call("StopTransaction")
    assert stop.payload["reason"] == "Local"
    assert stop.payload["meterStop"] >= start.payload["meterStart"]
    await a.wait_state("FINISHING")
    a.unplug()
    await a.wait_state("AVAILABLE")
