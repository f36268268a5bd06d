"""Boot storms against the bundled central system: while its overload signal is up, a BootNotification is answered
Pending with a retry interval (no store write, the connection kept), and the charger boots again after it."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from backend_stub.app import Csms
from backend_stub.looplag import LoopLag
from backend_stub.ocpp.overload import BootGate
from chargepoint.agent import Agent
from tests.integration.conftest import FAST_TIMING, agent_config, until
from tests.integration.v201_support import (
    CP,
    StartAgent,
    answer_to,
    calls,
    csms,
    mark,
    start_agent,
    wait_call,
)

__all__ = ["csms", "start_agent"]


class FakeLag(LoopLag):
    """The overload signal, set by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.value = 0.0

    @property
    def lag_s(self) -> float:
        return self.value


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_overloaded_csms_answers_pending_and_the_charger_boots_after_the_interval(
    csms: Csms, start_agent: StartAgent, version: str
) -> None:
    lag = FakeLag()
    gate = BootGate(
        max_lag_s=0.5,
        boots_per_s=10,
        min_interval_s=1,
        max_interval_s=3,
        lag=lag,
        clock=lambda: 0.0,  # frozen: the bucket of boots handled while overloaded does not refill
        rng=random.Random(1),
    )
    csms.server.boot_gate = gate
    lag.value = 5.0  # overloaded
    drained = 0
    while gate.admit() is None:  # the second's worth of boots still handled while overloaded, used up
        drained += 1
    assert drained == 10
    gate.deferred = 0
    a = await start_agent(boot=False, csms={"ocpp_versions": [version]})
    first = await wait_call(csms, "BootNotification")
    answer = (await answer_to(csms, first)).payload
    assert answer["status"] == "Pending"
    assert answer["interval"] == 1  # the first appointment: the soonest
    assert gate.deferred == 1
    charger = csms.store.charger(CP)
    assert charger is not None and charger.last_boot is None  # deferring wrote nothing
    assert CP in csms.server.connected  # the connection is kept

    lag.value = 0.0  # the storm is over
    after = mark(csms)
    second = await wait_call(csms, "BootNotification", after=after, timeout=10)
    assert (second.ts - first.ts).total_seconds() >= answer["interval"] - 0.05  # not before the interval
    assert (await answer_to(csms, second)).payload["status"] == "Accepted"
    await a.wait_booted(timeout=5)
    await wait_call(csms, "StatusNotification", after=after)
    # While Pending the charger sent nothing but BootNotification (1.6 §4.2.1, 2.0.1 B02.FR.02).
    before_accept = {
        f.action for f in csms.server.log if f.direction == "in" and f.message_type == 2 and f.ts <= second.ts
    }
    assert before_accept == {"BootNotification"}
    assert len(calls(csms, "BootNotification")) == 2
    assert gate.in_flight == 0
    charger = csms.store.charger(CP)
    assert charger is not None and charger.last_boot is not None
    assert a.agent.link is not None and a.agent.link.connections == 1  # one connection, no reconnect


async def test_without_overload_the_gate_changes_nothing(csms: Csms, start_agent: StartAgent) -> None:
    lag = FakeLag()
    csms.server.boot_gate = BootGate(lag=lag)
    await start_agent()
    boot = await wait_call(csms, "BootNotification")
    assert (await answer_to(csms, boot)).payload["status"] == "Accepted"
    assert csms.server.boot_gate.deferred == 0


async def test_failed_connections_are_counted_by_kind(csms: Csms, tmp_path: Path) -> None:
    """What a storm report calls a reset: the link counts each failed connection by its kind."""
    agent = Agent(agent_config(csms.url, tmp_path / "unknown.db", cp_id="NOT-REGISTERED"), timing=FAST_TIMING)
    task = asyncio.create_task(agent.run())
    try:
        await until(
            lambda: agent.link is not None and (agent.link.failure_kinds or {}).get("HTTP 404", 0) >= 2
        )
        assert agent.link is not None and agent.link.failure_kinds is not None
        assert set(agent.link.failure_kinds) == {"HTTP 404"}  # refused by the registry, never reset
        assert agent.link.connections == 0
    finally:
        agent.shutdown()
        await asyncio.wait_for(task, 10)
