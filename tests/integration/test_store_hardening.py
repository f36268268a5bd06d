"""Issue 10, findings 11 and 12: the store never holds up the relay or the link, and a full disk never lets a
session charge unrecorded, even with a SIGKILL while the disk is full.

Real sockets on 127.0.0.1, a real SQLite file (locked by a real second connection), a real tmpfs, a real process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.agent import Agent
from chargepoint.csms.link import MAX_QUEUED_CALLS
from hardware.sim import SimRelay
from tests.integration.agent_process import ctl, spawn_agent, write_config
from tests.integration.conftest import FAST_TIMING, agent_config, until
from tests.integration.test_bad_input import _fill, small_disk  # noqa: F401  (a fixture)


class RawCsms:
    """A raw-frame central system: answers the charger's CALLs, records the charger's answers to its own."""

    def __init__(self) -> None:
        self.ws: ServerConnection | None = None
        self.connections = 0
        self.answers: dict[str, list[Any]] = {}
        self.tx_id = 0

    def _answer(self, action: str) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        if action == "BootNotification":
            return {"status": "Accepted", "currentTime": now, "interval": 300}
        if action == "Heartbeat":
            return {"currentTime": now}
        if action == "Authorize":
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "StartTransaction":
            self.tx_id += 1
            return {"transactionId": self.tx_id, "idTagInfo": {"status": "Accepted"}}
        return {}

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        self.ws = ws
        async for raw in ws:
            frame = json.loads(raw)
            if frame[0] == 2:
                await ws.send(json.dumps([3, frame[1], self._answer(frame[2])]))
            else:
                self.answers[frame[1]] = frame


@pytest.fixture
async def raw_csms() -> AsyncIterator[tuple[RawCsms, str]]:
    csms = RawCsms()
    async with serve(csms.handler, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        yield csms, f"ws://127.0.0.1:{port}"


async def test_relay_opens_and_every_flooded_call_is_answered_while_the_store_is_stuck(
    raw_csms: tuple[RawCsms, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer holds the SQLite file's write lock (a slow disk would do the same) while the central system
    floods ChangeConfiguration CALLs without waiting for answers and the EV unplugs. The relay opens while the
    lock is still held: nothing on the way to it waits for the store or behind the flood (before the fix the event
    loop sat in SQLite's busy wait, 5 s per write). Every CALL is answered (CALLRESULT, or CallError "busy" past
    the queue's bound), and the link stays up."""
    csms, url = raw_csms
    db = tmp_path / "agent.db"
    agent = Agent(agent_config(url, db, settings={"local_pre_authorize": True}), timing=FAST_TIMING)
    task = asyncio.create_task(agent.run())
    try:
        await until(lambda: agent.link is not None and agent.link.online, 10, "agent never booted")
        station = agent.station
        assert station is not None and agent.link is not None
        sim = agent.sims[1]
        assert sim.plug and sim.reader and sim.relay
        sim.plug.set_plugged(True)
        sim.reader.swipe("FLOODTAG")
        await until(lambda: sim.relay is not None and sim.relay.closed, 5, "the session never started")
        await until(lambda: agent.link is not None and agent.link.store.outbox_size() == 0, 5, "outbox")

        answers_at_open: list[int] = []
        relay, original_open = sim.relay, SimRelay.open

        async def observed_open(self: SimRelay) -> None:
            await original_open(self)
            if self is relay:
                answers_at_open.append(len(csms.answers))

        monkeypatch.setattr(SimRelay, "open", observed_open)  # a SimRelay has __slots__: patched on its class

        # Another thread holds the write lock, unplugs the EV while the agent works through the flood, and watches
        # the relay: a stuck event loop cannot hide from it (the 3 s it waits are inside the lock's 5 s busy wait).
        loop = asyncio.get_running_loop()
        locked, flood_sent = threading.Event(), threading.Event()
        seen: dict[str, bool] = {}
        plug = sim.plug

        def stuck_store_then_unplug() -> None:
            locker = sqlite3.connect(db, isolation_level=None)
            locker.execute("BEGIN IMMEDIATE")  # the agent's writes now wait for this lock
            locked.set()
            flood_sent.wait(30)
            time.sleep(0.3)  # the agent is busy with the flood (before the fix: inside SQLite's busy wait)
            loop.call_soon_threadsafe(plug.set_plugged, False)
            deadline = time.monotonic() + 3
            while relay.closed and time.monotonic() < deadline:
                time.sleep(0.005)
            seen["opened_while_locked"] = not relay.closed
            locker.execute("ROLLBACK")
            locker.close()

        thread = threading.Thread(target=stuck_store_then_unplug)
        thread.start()
        await loop.run_in_executor(None, locked.wait)
        assert csms.ws is not None
        flood = 2_000
        for i in range(flood):
            frame = [
                2,
                f"flood-{i}",
                "ChangeConfiguration",
                {"key": "ConnectionTimeOut", "value": str(60 + i % 2)},
            ]
            await csms.ws.send(json.dumps(frame))
        flood_sent.set()
        await loop.run_in_executor(None, thread.join)
        assert seen["opened_while_locked"], "the relay waited for the store"
        assert answers_at_open and answers_at_open[0] < flood  # nor did it wait behind the flood

        await until(
            lambda: len(csms.answers) >= flood, 30, f"only {len(csms.answers)} of {flood} CALLs answered"
        )
        kinds: dict[str, int] = {}
        for i in range(flood):
            answer = csms.answers[f"flood-{i}"]
            if answer[0] == 3:
                assert answer[2] == {"status": "Accepted"}
                kinds["accepted"] = kinds.get("accepted", 0) + 1
            else:
                assert answer[0] == 4 and answer[2] == "GenericError" and answer[3].startswith("busy"), answer
                kinds["busy"] = kinds.get("busy", 0) + 1
        # The CALLs beyond the queue's bound were refused at once, the queued ones handled in order.
        assert kinds["busy"] >= flood - 10 * MAX_QUEUED_CALLS and kinds["accepted"] >= 1
        # The link stayed up: the same connection, and the charger still answers.
        assert csms.connections == 1
        await csms.ws.send(json.dumps([2, "after", "GetConfiguration", {"key": ["ConnectionTimeOut"]}]))
        await until(lambda: "after" in csms.answers, 5, "no answer after the flood")
        assert csms.answers["after"][0] == 3
        # And the session ended properly, its stop committed once the lock was gone.
        await until(lambda: station.connectors[1].transaction is None, 5, "transaction never ended")
        await agent.link.store.flush()
        assert agent.link.store.active_transactions() == []
    finally:
        agent.shutdown()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(15):
                await task


async def test_full_disk_mid_session_opens_the_relay_and_a_sigkill_then_loses_no_energy(
    tmp_path: Path,
    small_disk: Path,  # noqa: F811
) -> None:
    """The disk fills up under a running session (a real 2 MB tmpfs). The connector faults (InternalError) and the
    relay opens instead of charging on with its MeterValues discarded; the register at the open is written on the
    store's reserve. The agent is SIGKILLed in that state and restarted on the still-full disk: once space returns,
    its StopTransaction (PowerLoss) has a meterStop no lower than what the EV got while the relay was closed."""
    cs = CentralSystem(log_path=tmp_path / "csms.jsonl")
    await cs.start()
    config = tmp_path / "station.toml"
    sock = str(tmp_path / "ctl.sock")
    write_config(config, station_id="FULL-CP", url=cs.url, db=small_disk / "agent.db", sock=sock)
    log = (tmp_path / "agent.log").open("w")
    proc: asyncio.subprocess.Process | None = None
    try:
        proc = await spawn_agent(config, log)
        await cs.wait_for_call("BootNotification", timeout=15)
        await ctl(sock, "plug", "1")
        await ctl(sock, "swipe", "1", "FULLTAG")
        start = await cs.wait_for_call("StartTransaction", timeout=10)
        await cs.wait_for_call("MeterValues", timeout=10)
        after = len(cs.log)
        _fill(small_disk / "filler")
        faulted = await cs.wait_for_call(
            "StatusNotification", after=after, where=lambda p: p["status"] == "Faulted", timeout=10
        )
        assert faulted.payload["errorCode"] == "InternalError"
        status = (await ctl(sock, "status"))["1"]
        assert not status["relay_closed"]
        delivered_wh = status["meter_wh"]  # the sim meter counts only through a closed relay
        await asyncio.sleep(0.5)
        status = (await ctl(sock, "status"))["1"]
        assert status["meter_wh"] == delivered_wh and status["transaction_id"] is not None
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

        # Restart on the still-full disk, then give the space back.
        after = len(cs.log)
        proc = await spawn_agent(config, log)
        await cs.wait_for_call("BootNotification", after=after, timeout=15)
        (small_disk / "filler").unlink()
        stop = await cs.wait_for_call("StopTransaction", after=after, timeout=15)
        assert stop.payload["reason"] == "PowerLoss"
        assert stop.payload["transactionId"] == start_tx_id(cs, start.unique_id)
        assert stop.payload["meterStop"] >= delivered_wh > start.payload["meterStart"]
        sent = [
            float(sv["value"])
            for f in cs.calls("MeterValues")
            for mv in f.payload["meterValue"]
            for sv in mv["sampledValue"]
            if sv.get("measurand", "Energy.Active.Import.Register") == "Energy.Active.Import.Register"
        ]
        assert stop.payload["meterStop"] >= max(sent)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
        proc = None
    finally:
        if proc is not None and proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        await cs.stop()


def start_tx_id(cs: CentralSystem, unique_id: str) -> int:
    """The transactionId the central system gave in its answer to a StartTransaction."""
    answer = next(f for f in cs.log if f.direction == "out" and f.unique_id == unique_id)
    return int(answer.payload["transactionId"])
