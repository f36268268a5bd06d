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
    # The simulated plug pushes its changes: the station handles them in a task only while one waits. Hold the
    # connector's lock so that the unplug's handling waits in that task, then cancel it as a bug elsewhere might.
    await a.station.ctx.locks[1].acquire()
    a.unplug()
    await until(lambda: any(t.get_name() == "plug-1" for t in a.station.ctx.tasks), 2, "no plug handling")
    plug_task = next(t for t in a.station.ctx.tasks if t.get_name() == "plug-1")
    plug_task.cancel()  # an event lost half-handled: the plug is no longer trusted
    await until(plug_task.done, 2, "the plug handling did not end")
    a.station.ctx.locks[1].release()
    await assert_made_safe(a, cs, "plug")
    assert plug_task.cancelled()  # the cancellation is honoured, not swallowed
    a.plug()  # nothing handles the plug any more: the connector stays faulted, the watchdog restarts the agent
    await asyncio.sleep(0.2)
    assert a.state() == "FAULTED"


async def test_a_base_exception_in_a_hardware_loop_faults_its_connector(
    cs: CentralSystem, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = await charging(start_agent)
    meter = a.sim().meter

    async def read(*args: Any) -> Any:
        raise Fatal("driver gave up")

    monkeypatch.setattr(meter, "read", read)
    await assert_made_safe(a, cs, "meter")
    # The meter poll is a duty on the scheduler: ended for good, not planned again.
    meter_poll = next(d for d in a.station.ctx.supervised_duties if d.name == "meter-1")
    assert not meter_poll.alive and meter_poll.due_at is None


async def test_a_link_cancelled_unexpectedly_is_restarted(cs: CentralSystem, start_agent: StartAgent) -> None:
    """The link runs in the agent's task (one task per connection): a bug that cancels something the link awaits
    (here the future the session waits on for the connection's end) raises CancelledError in the agent's task,
    which itself was not cancelled. The agent neither dies with it nor goes on without a link: it runs the link
    again, which reconnects."""
    a = await start_agent()
    link = a.agent.link
    assert link is not None and link.session is not None
    waiter = link.session._run_waiter  # type: ignore[attr-defined]
    assert waiter is not None and not waiter.done(), "the session does not wait for its connection's end"
    waiter.cancel()
    await until(lambda: link.connections == 2 and link.online, 5, "the link was not run again")
    assert not a.task.done()
    await cs.wait_connected("CP-1")
