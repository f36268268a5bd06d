"""What a dead background loop does to a running charger: its connector is made safe and reported, never left
running silently (the relay watchdog and the plug watcher live in supervised loops, the CSMS link in a task)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from tests.integration.conftest import RunningAgent, StartAgent, until


class Fatal(BaseException):
    """Not an Exception: what a careless driver or library might raise (like SystemExit or KeyboardInterrupt)."""


async def charging(start_agent: StartAgent) -> RunningAgent:
    a = await start_agent()
    a.plug()
    a.swipe("TAG-1")
    await a.wait_state("CHARGING")
    assert a.sim().relay.closed
    return a


async def assert_made_safe(a: RunningAgent, cs: CentralSystem, name: str) -> None:
    """The connector's relay opened, it reports Faulted/InternalError naming the loop, and the loop stays dead
    (so the systemd watchdog is no longer fed)."""
    await a.wait_state("FAULTED")
    assert not a.sim().relay.closed
    frame = await cs.wait_for_call(
        "StatusNotification",
        "CP-1",
        where=lambda p: p["status"] == "Faulted" and p["errorCode"] == "InternalError",
    )
    assert name in frame.payload.get("info", "")
    await until(lambda: not a.station.loops_alive(), 2, "the dead loop still counts as alive")


async def test_a_hardware_loop_cancelled_unexpectedly_faults_its_connector(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await charging(start_agent)
    plug_loop = next(t for t in a.station.ctx.supervised if t.get_name() == "plug-1")
    plug_loop.cancel()  # a bug elsewhere (a wait_for on the wrong task): nobody watches the plug any more
    await assert_made_safe(a, cs, "plug")
    assert plug_loop.cancelled()  # the cancellation is honoured, not swallowed


async def test_a_base_exception_in_a_hardware_loop_faults_its_connector(
    cs: CentralSystem, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await charging(start_agent)
    meter = a.sim().meter

    async def read(*args: Any) -> Any:
        raise Fatal("driver gave up")

    monkeypatch.setattr(meter, "read", read)
    await assert_made_safe(a, cs, "meter")
    meter_loop = next(t for t in a.station.ctx.supervised if t.get_name() == "meter-1")
    assert isinstance(meter_loop.exception(), Fatal)


async def test_a_link_task_cancelled_unexpectedly_is_restarted(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await start_agent()
    link_task = next(t for t in asyncio.all_tasks() if t.get_name() == "link")
    link_task.cancel()
    await until(lambda: link_task.done(), 2, "the link task did not end")
    # The agent neither dies with the CancelledError nor goes on without a link: it starts the link again.
    await until(
        lambda: any(t.get_name() == "link" and not t.done() for t in asyncio.all_tasks()),
        5,
        "no new link task",
    )
    assert not a.task.done()
    await a.wait_booted()
    await cs.wait_connected("CP-1")
