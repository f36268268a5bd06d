"""A pytest fixture for testing a central system against a fleet of real chargers.

Enable it with ``pytest_plugins = ["simulator.pytest_plugin"]`` in a conftest.py (pytest-asyncio required), then::

    async def test_my_csms(charger_fleet):
        fleet = await charger_fleet(csms_url="ws://127.0.0.1:9000/ocpp", count=3, passwords="pw-{id}")
        fleet.plug("CP-0001", 1)
        fleet.swipe("CP-0001", "04A2B3C4")
        await fleet_state(fleet, "CP-0001", 1, "CHARGING")

Chargers started this way have no driver arrivals: only the test plugs, swipes and unplugs. The fixture shuts
every fleet down at the end of the test (transactions end with reason Reboot; the outbox gets a moment first).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest_asyncio

from simulator.fleet import Fleet
from simulator.scenario import Credentials, Drivers, FleetSpec, Scenario, load, parse

FleetFactory = Callable[..., Awaitable[Fleet]]


async def fleet_state(fleet: Fleet, cp_id: str, connector: int, state: str, timeout_s: float = 10.0) -> None:
    """Wait until a connector is in ``state`` (a ConnectorState name, e.g. "CHARGING")."""
    async with asyncio.timeout(timeout_s):
        while True:
            station = fleet.charger(cp_id).agent.station
            if station is not None and station.connectors[connector].state.name == state:
                return
            await asyncio.sleep(0.05)


def scenario_for(
    *,
    csms_url: str | None = None,
    count: int = 1,
    connectors: int = 1,
    id_pattern: str = "CP-{n:04d}",
    passwords: str | None = None,
    scenario: str | Path | dict[str, Any] | None = None,
    **fleet: Any,
) -> Scenario:
    """A scenario for a test: from a file or TOML-like dict, or built from the keyword arguments."""
    if isinstance(scenario, dict):
        base = parse(scenario)
    elif scenario is not None:
        base = load(scenario)
    else:
        base = Scenario(
            name="pytest",
            tick_s=0.1,
            drain_s=5.0,
            fleet=FleetSpec(
                count=count,
                connectors=connectors,
                id_pattern=id_pattern,
                durable=False,
                connect_rate_per_s=1000.0,
                reconnect_min_s=0.2,
                reconnect_max_s=2.0,
                reconnect_jitter_s=0.2,
                meter_poll_s=0.5,
                response_timeout_s=5.0,
                **fleet,
            ),
            credentials=Credentials(password_pattern=passwords),
            drivers=Drivers(arrivals_per_hour=(0.0,) * 24),
        )
    return base.with_overrides(csms_url=csms_url)


@pytest_asyncio.fixture
async def charger_fleet(tmp_path: Path) -> AsyncIterator[FleetFactory]:
    """A factory: ``await charger_fleet(csms_url=..., count=N, ...)`` starts a booted fleet (see scenario_for)."""
    fleets: list[tuple[Fleet, asyncio.Task[None]]] = []

    async def start(**kwargs: Any) -> Fleet:
        scenario = scenario_for(**kwargs)
        fleet = Fleet(scenario, work_dir=tmp_path / f"fleet-{len(fleets)}")
        await fleet.start()
        # Keep the clock (EV physics) ticking for as long as the test runs.
        ticker = asyncio.create_task(fleet.run(duration_s=24 * 3600.0))
        fleets.append((fleet, ticker))
        return fleet

    yield start
    for fleet, ticker in fleets:
        ticker.cancel()
        try:
            await _drain(fleet)
        finally:
            await fleet.stop()
            await fleet.close()


async def _drain(fleet: Fleet) -> None:
    deadline = asyncio.get_running_loop().time() + fleet.scenario.drain_s
    while True:
        if not fleet.outbox_total() or asyncio.get_running_loop().time() >= deadline:
            return
        await asyncio.sleep(0.1)


__all__ = ["charger_fleet", "fleet_state", "scenario_for"]
