"""The scripted test central system (``python -m backend_stub serve`` without ``--db``) speaks OCPP 2.0.1 too:
a real agent that prefers 2.0.1 boots, charges and is refused a card, steered by the same knobs as 1.6."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.agent import Agent
from tests.integration.conftest import FAST_TIMING, RunningAgent, StartAgent, agent_config, until

V201_FIRST = {"ocpp_versions": ["2.0.1", "1.6"]}


async def test_an_agent_negotiates_2_0_1_and_charges(cs: CentralSystem, start_agent: StartAgent) -> None:
    cs.heartbeat_interval = 77
    cs.id_tags["BLOCKED"] = "Blocked"
    a = await start_agent(csms=V201_FIRST)
    assert cs.subprotocol("CP-1") == "ocpp2.0.1"
    boot = await cs.wait_for_call("BootNotification", "CP-1")
    assert boot.payload["reason"] == "PowerUp"
    assert a.station.settings.get_int("heartbeat_interval_s") == 77  # the knob, as in 1.6

    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("BLOCKED")
    await cs.wait_for_call("Authorize", "CP-1", where=lambda p: p["idToken"]["idToken"] == "BLOCKED")
    await asyncio.sleep(0)  # the refusal is handled; no transaction may start with it
    assert a.state() == "PREPARING"

    a.swipe("TAG-OK")
    started = await cs.wait_for_call("TransactionEvent", "CP-1", where=lambda p: p["eventType"] == "Started")
    await a.wait_state("CHARGING")
    tx_id = started.payload["transactionInfo"]["transactionId"]
    a.unplug()
    await cs.wait_for_call(
        "TransactionEvent",
        "CP-1",
        where=lambda p: p["eventType"] == "Ended" and p["transactionInfo"]["transactionId"] == tx_id,
    )
    assert [f for f in cs.log if f.message_type == 4] == []  # no CallError either way


async def test_serve_without_db_speaks_2_0_1(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "backend_stub", "serve", "--port", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    running: RunningAgent | None = None
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
        agent = Agent(agent_config(url, tmp_path / "agent.db", csms=V201_FIRST), timing=FAST_TIMING)
        running = RunningAgent(agent, asyncio.create_task(agent.run()), None)  # type: ignore[arg-type]
        await running.wait_booted(15)
        link = agent.link
        assert link is not None and link.session is not None
        assert link.session._ocpp_version == "2.0.1"
        running.plug()
        running.swipe("TAG-1")
        await running.wait_state("CHARGING")
    finally:
        if running is not None:
            await running.stop()
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    await until(lambda: proc.returncode is not None, 1, "serve did not stop")
