"""Fixtures: a real central system on loopback and real agents (simulated hardware) run in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from backend_stub.domain.ca import CertificateAuthority
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.agent import Agent
from chargepoint.config import AgentConfig, parse
from chargepoint.core.station import Station, StationTiming
from hardware.factory import SimConnector

FAST_TIMING = StationTiming(meter_poll_s=0.05, persist_meter_s=0.2)


def agent_config(
    url: str,
    db: Path,
    *,
    cp_id: str = "CP-1",
    connectors: int = 1,
    settings: dict[str, Any] | None = None,
    csms: dict[str, Any] | None = None,
    firmware: dict[str, Any] | None = None,
) -> AgentConfig:
    """A test configuration: fast retries, simulated hardware on every connector."""
    return parse(
        {
            "station": {"id": cp_id, "serial_number": "SN-1"},
            "csms": {
                "url": url,
                "response_timeout_s": 2,
                "boot_retry_s": 0.5,
                "reconnect_min_s": 0.05,
                "reconnect_max_s": 0.3,
                "reconnect_jitter_s": 0.05,
                **(csms or {}),
            },
            "storage": {"path": str(db)},
            **({"firmware": firmware} if firmware is not None else {}),
            # The simulated connector has a cable lock, so UnlockConnector can be exercised.
            "agent": {"unlock_supported": True},
            "settings": {"transaction_message_retry_interval_s": 0, **(settings or {})},
            "connectors": [
                {
                    "id": i,
                    "relay": {"driver": "sim"},
                    "meter": {"driver": "sim", "energy_wh": 1000},
                    "plug": {"driver": "sim", "ev_power_w": 7400},
                    "reader": {"driver": "sim"},
                }
                for i in range(1, connectors + 1)
            ],
        }
    )


@dataclass
class RunningAgent:
    """An agent running in the test's event loop."""

    agent: Agent
    task: asyncio.Task[None]
    cs: CentralSystem

    @property
    def station(self) -> Station:
        assert self.agent.station is not None
        return self.agent.station

    def sim(self, cid: int = 1) -> SimConnector:
        return self.agent.sims[cid]

    def plug(self, cid: int = 1) -> None:
        plug = self.sim(cid).plug
        assert plug is not None
        plug.set_plugged(True)

    def unplug(self, cid: int = 1) -> None:
        plug = self.sim(cid).plug
        assert plug is not None
        plug.set_plugged(False)

    def swipe(self, tag: str, cid: int = 1) -> None:
        reader = self.sim(cid).reader
        assert reader is not None
        reader.swipe(tag)

    def state(self, cid: int = 1) -> str:
        return self.station.connectors[cid].state.name

    async def wait_state(self, state: str, cid: int = 1, timeout: float = 5.0) -> None:
        await until(
            lambda: self.agent.station is not None and self.state(cid) == state,
            timeout,
            f"connector {cid} never reached {state} (is {self.state(cid)})",
        )

    async def wait_booted(self, timeout: float = 5.0) -> None:
        await until(
            lambda: self.agent.link is not None and self.agent.link.online, timeout, "agent never booted"
        )

    async def stop(self) -> None:
        self.agent.shutdown()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(15):
                await self.task


async def until(condition: Callable[[], bool], timeout: float = 5.0, message: str = "condition") -> None:
    """Wait for a condition polled every 10 ms."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)
    if not condition():
        raise AssertionError(message)


@pytest.fixture
async def cs(tmp_path: Path) -> AsyncIterator[CentralSystem]:
    server = CentralSystem(log_path=tmp_path / "csms.jsonl")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


StartAgent = Callable[..., Awaitable[RunningAgent]]


@pytest.fixture
async def start_agent(cs: CentralSystem, tmp_path: Path) -> AsyncIterator[StartAgent]:
    running: list[RunningAgent] = []

    async def start(
        *,
        boot: bool = True,
        db: Path | None = None,
        before_run: Callable[[Agent], None] | None = None,
        **kwargs: Any,
    ) -> RunningAgent:
        """Start an agent; ``before_run`` may set up its simulated hardware (e.g. an EV already plugged in)."""
        config = agent_config(cs.url, db or tmp_path / "agent.db", **kwargs)
        agent = Agent(config, timing=FAST_TIMING)
        if before_run is not None:
            before_run(agent)
        task = asyncio.create_task(agent.run())
        handle = RunningAgent(agent, task, cs)
        running.append(handle)
        await until(lambda: agent.started.is_set(), 5, "agent did not start")
        if boot:
            await handle.wait_booted()
        return handle

    yield start
    for handle in running:
        await handle.stop()
    # The charger must never have sent anything the schemas reject.
    assert cs.violations == []


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    """A certificate authority for security profile 3 tests, stored in the test's directory."""
    return CertificateAuthority.load_or_create(
        tmp_path / "ca.pem", tmp_path / "ca-key.pem", "Test CSMS CA", datetime.now(UTC)
    )
