"""End to end on emulated hardware: the agent with the Modbus meter driver on a pty and the PC/SC reader (pcscd +
vpcd + a virtual card) completes a session against a test central system, which receives MeterValues equal to
the emulated meter's register, in Wh."""

from __future__ import annotations

import asyncio
from pathlib import Path

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.agent import Agent
from chargepoint.config import parse
from chargepoint.core.station import StationTiming
from hardware.modbus_meter import RegisterMap
from tests.hardware.conftest import EmulatedMeter, MeterValues, PtyPair
from tests.hardware.readers_conftest_helpers import PcscNamespace


def _energy_values(frames: list[object]) -> list[float]:
    out = []
    for f in frames:
        for mv in f.payload["meterValue"]:  # type: ignore[attr-defined]
            for sv in mv["sampledValue"]:
                if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register":
                    out.append(float(sv["value"]))
    return out


async def test_session_with_a_modbus_meter_on_a_pty(
    tmp_path: Path, pty_pair: PtyPair, emulators: list[EmulatedMeter], pcsc: PcscNamespace
) -> None:
    values = MeterValues(1_000_000.0, 7000.0, (230.0, 231.0, 229.0), (10.0, 10.1, 9.9), 50.0)
    meter = EmulatedMeter(RegisterMap.model("sdm630"), values)
    await meter.start_serial(pty_pair.bus)
    emulators.append(meter)
    async with CentralSystem() as cs:
        config = parse(
            {
                "station": {"id": "HW-CP"},
                "csms": {
                    "url": cs.url,
                    "response_timeout_s": 2,
                    "reconnect_min_s": 0.05,
                    "reconnect_max_s": 0.3,
                },
                "storage": {"path": str(tmp_path / "agent.db")},
                "settings": {
                    "meter_value_sample_interval_s": 1,
                    "meter_values_sampled_data": ["Energy.Active.Import.Register", "Voltage"],
                },
                "connectors": [
                    {
                        "id": 1,
                        "relay": {"driver": "sim"},
                        "meter": {
                            "driver": "modbus",
                            "port": str(pty_pair.meter),
                            "model": "sdm630",
                            "timeout_s": 0.5,
                        },
                        "plug": {"driver": "sim"},
                        "reader": {"driver": "pcsc", "reader": "Virtual PCD 00 00"},
                    }
                ],
            }
        )
        agent = Agent(config, timing=StationTiming(meter_poll_s=0.2))
        task = asyncio.create_task(agent.run())
        try:
            await cs.wait_for_call("StatusNotification")  # sent only once the boot was accepted
            sim = agent.sims[1]
            assert sim.plug is not None
            sim.plug.set_plugged(True)
            pcsc.insert("04A2B3C4")
            start = await cs.wait_for_call("StartTransaction")
            assert start.payload["meterStart"] == 1_000_000
            assert start.payload["idTag"] == "04A2B3C4"
            meter.set_values(MeterValues(1_000_250.0, 7000.0, (230.0, 231.0, 229.0), (10.0, 10.1, 9.9), 50.0))
            await cs.wait_for_call(
                "MeterValues",
                where=lambda p: 1_000_250.0 in _energy_values([type("F", (), {"payload": p})()]),
            )
            sampled = cs.calls("MeterValues")[-1].payload["meterValue"][0]["sampledValue"]
            voltages = sorted(float(sv["value"]) for sv in sampled if sv.get("measurand") == "Voltage")
            assert voltages == [229.0, 230.0, 231.0]
            pcsc.remove()
            await asyncio.sleep(0.5)
            pcsc.insert("04A2B3C4")  # the same card again ends the session
            stop = await cs.wait_for_call("StopTransaction")
            assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == "04A2B3C4"
            assert stop.payload["meterStop"] == 1_000_250
            assert all(v in (1_000_000.0, 1_000_250.0) for v in _energy_values(cs.calls("MeterValues")))
            assert cs.violations == []
        finally:
            agent.shutdown()
            await task
