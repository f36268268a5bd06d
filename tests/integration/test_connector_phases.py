"""A connector's phases and voltage (issue 10, finding 14): a limit in W becomes A over the connector's own phases.

A real agent with simulated hardware charges against the scripted central system over loopback; the central
system sends a 3,680 W TxProfile and reads what the charger offers (the pilot, on the sim plug), what the EV draws
(Power.Active.Import in MeterValues) and GetCompositeSchedule in W. Before the fix every connector was taken as
3-phase: a 1-phase connector offered 5.3 A and its EV drew 1,227 W of the 3,680 W allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.agent import Agent
from chargepoint.config import parse
from tests.integration.conftest import FAST_TIMING, RunningAgent
from tests.integration.octt_support import CP, index, mark, start_session
from tests.integration.test_octt_smart_charging import offer_is, profile, set_profile

LIMIT_W = 3680.0  # 16 A x 230 V x 1 phase

StartWith = Callable[..., Awaitable[RunningAgent]]


@pytest.fixture
async def start_with(cs: CentralSystem, tmp_path: Path) -> AsyncIterator[StartWith]:
    """Start an agent whose connectors carry the given connector-level keys and sim meter options."""
    running: list[RunningAgent] = []

    async def start(*connectors: dict[str, Any], meter: dict[str, Any] | None = None) -> RunningAgent:
        config = parse(
            {
                "station": {"id": CP},
                "csms": {
                    "url": cs.url,
                    "response_timeout_s": 2,
                    "boot_retry_s": 0.5,
                    "reconnect_min_s": 0.05,
                    "reconnect_max_s": 0.3,
                    "reconnect_jitter_s": 0.05,
                },
                "storage": {"path": str(tmp_path / "agent.db")},
                "settings": {
                    "transaction_message_retry_interval_s": 0,
                    "meter_value_sample_interval_s": 1,
                    "meter_values_sampled_data": ["Energy.Active.Import.Register", "Power.Active.Import"],
                },
                "connectors": [
                    {
                        "id": cid,
                        "relay": {"driver": "sim"},
                        "meter": {"driver": "sim", "energy_wh": 1000, **(meter or {})},
                        # The EV could take 11 kW: only the charger's offer limits it.
                        "plug": {"driver": "sim", "ev_power_w": 11_000},
                        "reader": {"driver": "sim"},
                        **connector,
                    }
                    for cid, connector in enumerate(connectors, start=1)
                ],
            }
        )
        agent = Agent(config, timing=FAST_TIMING)
        task = asyncio.create_task(agent.run())
        handle = RunningAgent(agent, task, cs)
        running.append(handle)
        await handle.wait_booted()
        return handle

    yield start
    for handle in running:
        handle.agent.shutdown()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(15):
                await handle.task
    assert cs.violations == []


def _power(payload: dict[str, Any]) -> float | None:
    values = [
        float(sv["value"])
        for mv in payload["meterValue"]
        for sv in mv["sampledValue"]
        if sv.get("measurand") == "Power.Active.Import"
    ]
    return values[0] if values else None


async def power_reported(cs: CentralSystem, after: int) -> float:
    """The Power.Active.Import of the second MeterValues after log position ``after`` (the first may carry a
    reading taken before then)."""
    for _ in range(2):
        frame = await cs.wait_for_call(
            "MeterValues", after=after, timeout=10, where=lambda p: _power(p) is not None
        )
        after = index(cs, frame) + 1
    power_w = _power(frame.payload)
    assert power_w is not None
    return power_w


async def charge_under_watt_limit(
    a: RunningAgent, cs: CentralSystem, offered_a: float
) -> tuple[float, dict[str, Any]]:
    """Start a session, send a 3,680 W TxProfile, wait for the offer of ``offered_a``, and return the power the
    EV then draws (as the charger reports it in MeterValues) and GetCompositeSchedule in W."""
    _, tx_id = await start_session(a, cs)
    body = profile(40, "TxProfile", LIMIT_W, unit="W", transaction_id=tx_id)
    assert await set_profile(cs, 1, body) == "Accepted"
    await offer_is(a, offered_a)
    power_w = await power_reported(cs, mark(cs))
    schedule = await cs.call(
        CP, "GetCompositeSchedule", {"connectorId": 1, "duration": 60, "chargingRateUnit": "W"}
    )
    assert schedule["status"] == "Accepted"
    return power_w, schedule["chargingSchedule"]


async def test_one_phase_connector_offers_the_whole_watt_limit(
    cs: CentralSystem, start_with: StartWith
) -> None:
    """A 3,680 W TxProfile on a 1-phase 230 V connector: the EV is offered 16 A and draws ~3,680 W."""
    a = await start_with({"phases": 1, "voltage_v": 230})
    power_w, schedule = await charge_under_watt_limit(a, cs, 16.0)
    assert power_w == pytest.approx(LIMIT_W, abs=1.0)
    period = schedule["chargingSchedulePeriod"][0]
    assert period["limit"] == pytest.approx(LIMIT_W) and period["numberPhases"] == 1


async def test_three_phase_connector_divides_the_watt_limit_over_three_phases(
    cs: CentralSystem, start_with: StartWith
) -> None:
    """The same limit on a 3-phase connector: 5.3 A per phase, still ~3,680 W in all."""
    a = await start_with({"phases": 3, "voltage_v": 230})
    power_w, schedule = await charge_under_watt_limit(a, cs, LIMIT_W / (230.0 * 3))
    assert power_w == pytest.approx(LIMIT_W, abs=1.0)
    period = schedule["chargingSchedulePeriod"][0]
    assert period["limit"] == pytest.approx(LIMIT_W) and period["numberPhases"] == 3


async def test_a_connector_voltage_other_than_230_v_is_used(cs: CentralSystem, start_with: StartWith) -> None:
    """A 1-phase 240 V connector (e.g. split-phase): 3,680 W is 15.33 A, and the EV still draws 3,680 W."""
    a = await start_with({"phases": 1, "voltage_v": 240})
    power_w, _ = await charge_under_watt_limit(a, cs, LIMIT_W / 240.0)
    assert power_w == pytest.approx(LIMIT_W, abs=1.0)


async def test_old_sim_meter_phases_key_sets_the_connector(cs: CentralSystem, start_with: StartWith) -> None:
    """An old config that set ``phases = 1`` on the sim meter only (the README's example) now gets a 1-phase
    connector: 16 A and ~3,680 W, where it was offered 5.3 A and drew 1,227 W."""
    a = await start_with({}, meter={"phases": 1, "voltage_v": 230})
    power_w, _ = await charge_under_watt_limit(a, cs, 16.0)
    assert power_w == pytest.approx(LIMIT_W, abs=1.0)


async def test_mixed_station_shares_a_watt_limit_by_power(cs: CentralSystem, start_with: StartWith) -> None:
    """A 1-phase and a 3-phase connector under a 7,360 W ChargePointMaxProfile, both charging: each gets 3,680 W,
    i.e. 16 A and 5.3 A; the station as a whole (connector 0) reports 32 A x 230 V x (1 + 3) = 29,440 W without
    a profile, not 64 A over 3 phases (44,160 W)."""
    a = await start_with({"phases": 1}, {"phases": 3})
    answer = await cs.call(
        CP, "GetCompositeSchedule", {"connectorId": 0, "duration": 60, "chargingRateUnit": "W"}
    )
    assert answer["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == pytest.approx(29_440)
    assert await set_profile(cs, 0, profile(41, "ChargePointMaxProfile", 7360, unit="W")) == "Accepted"
    await start_session(a, cs, "TAG1", 1)
    await start_session(a, cs, "TAG2", 2)
    await offer_is(a, 16.0, 1)
    await offer_is(a, 3680 / (230.0 * 3), 2)
