"""Transaction safety (after MicroOcpp's tests): SIGKILL the agent at random moments of charging sessions.

Checked against the central system's own log: every transaction the CSMS saw start ends exactly once, with a
meterStop no lower than its meterStart or any meter value sent for it; nothing is lost or duplicated.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from tests.integration.agent_process import ctl, spawn_agent, write_config

pytestmark = pytest.mark.slow

KILLS = 24


def _frames(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _check(frames: list[dict[str, Any]]) -> tuple[dict[int, Any], dict[int, set[str]]]:
    """Starts by CSMS transaction id, and the distinct StopTransaction payloads per id."""
    calls = {f["unique_id"]: f for f in frames if f.get("direction") == "in" and f.get("message_type") == 2}
    starts: dict[int, Any] = {}
    stops: dict[int, set[str]] = defaultdict(set)
    for f in frames:
        if f.get("direction") != "out" or f.get("message_type") != 3:
            continue
        call = calls.get(f["unique_id"])
        if call and call["action"] == "StartTransaction":
            starts[f["payload"]["transactionId"]] = call["payload"]
    for call in calls.values():
        if call["action"] == "StopTransaction":
            stops[call["payload"]["transactionId"]].add(json.dumps(call["payload"], sort_keys=True))
    return starts, stops


async def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "1234")))
    cs = CentralSystem(log_path=tmp_path / "csms.jsonl")
    await cs.start()
    config = tmp_path / "station.toml"
    sock = str(tmp_path / "ctl.sock")
    write_config(config, station_id="CRASH-CP", url=cs.url, db=tmp_path / "agent.db", sock=sock)
    log = (tmp_path / "agent.log").open("w")
    try:
        for _ in range(KILLS):
            after = len(cs.log)
            proc = await spawn_agent(config, log)
            await cs.wait_for_call("BootNotification", after=after, timeout=15)
            phase = rng.choice(["start", "charging", "stop", "idle"])
            await ctl(sock, "plug", "1")
            await ctl(sock, "swipe", "1", "CRASHTAG")
            if phase != "start":
                await cs.wait_for_call("StartTransaction", after=after, timeout=10)
                await asyncio.sleep(rng.uniform(0, 2.5))
            if phase in ("stop", "idle"):
                await ctl(sock, "swipe", "1", "CRASHTAG")
                if phase == "idle":
                    await cs.wait_for_call("StopTransaction", after=after, timeout=10)
                    await ctl(sock, "unplug", "1")
            await asyncio.sleep(rng.uniform(0, 0.3))
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        # One last clean run lets the agent end what the last kill left behind.
        after = len(cs.log)
        proc = await spawn_agent(config, log)
        await cs.wait_for_call("BootNotification", after=after, timeout=15)

        async def settled() -> None:
            while True:
                starts, stops = _check(_frames(tmp_path / "csms.jsonl"))
                if starts and all(tx in stops for tx in starts):
                    return
                await asyncio.sleep(0.2)

        await asyncio.wait_for(settled(), 30)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    finally:
        log.close()
        await cs.stop()

    frames = _frames(tmp_path / "csms.jsonl")
    starts, stops = _check(frames)
    assert len(starts) >= KILLS // 2, "too few sessions started to prove anything"
    meter_values: dict[int, list[float]] = defaultdict(list)
    for f in frames:
        if f.get("direction") == "in" and f.get("action") == "MeterValues" and f.get("message_type") == 2:
            tx = f["payload"].get("transactionId")
            for mv in f["payload"]["meterValue"]:
                for sv in mv["sampledValue"]:
                    if (
                        sv.get("measurand", "Energy.Active.Import.Register")
                        == "Energy.Active.Import.Register"
                    ):
                        meter_values[tx].append(float(sv["value"]))
    reasons = set()
    for tx, start in starts.items():
        assert len(stops[tx]) == 1, f"transaction {tx} ended {len(stops[tx])} different ways: {stops[tx]}"
        stop = json.loads(next(iter(stops[tx])))
        reasons.add(stop["reason"])
        assert stop["meterStop"] >= start["meterStart"], (tx, start, stop)
        assert stop["meterStop"] >= max(meter_values[tx], default=0), (tx, stop, meter_values[tx])
    assert set(stops) <= set(starts), "a StopTransaction for a transaction the CSMS never started"
    assert "PowerLoss" in reasons
    assert cs.violations == []


def _expiry(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


async def _state(sock: str) -> str:
    return str((await ctl(sock, "status"))["1"]["state"])


async def test_sigkill_with_a_reservation_active(tmp_path: Path) -> None:
    """SIGKILL with a reservation in force: after the restart it is reported Reserved again and honoured (another
    card cannot start, its own starts with the reservationId); killed after that start, the reservation stays
    ended (one commit with the transaction); killed with a reservation that expires while the agent is down, the
    restarted agent reports Available and forgets it."""
    cs = CentralSystem(log_path=tmp_path / "csms.jsonl")
    await cs.start()
    config = tmp_path / "station.toml"
    sock = str(tmp_path / "ctl.sock")
    write_config(config, station_id="CRASH-CP", url=cs.url, db=tmp_path / "agent.db", sock=sock)
    log = (tmp_path / "agent.log").open("w")
    procs: list[asyncio.subprocess.Process] = []

    async def boot() -> tuple[asyncio.subprocess.Process, int]:
        after = len(cs.log)
        proc = await spawn_agent(config, log)
        procs.append(proc)
        await cs.wait_for_call("BootNotification", after=after, timeout=15)
        return proc, after

    async def kill(proc: asyncio.subprocess.Process) -> None:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()

    def reported(after: int, status: str) -> Any:
        return cs.wait_for_call(
            "StatusNotification",
            after=after,
            timeout=10,
            where=lambda p: p["connectorId"] == 1 and p["status"] == status,
        )

    try:
        proc, after = await boot()
        reserve = {"connectorId": 1, "expiryDate": _expiry(120), "idTag": "RTAG", "reservationId": 7}
        assert (await cs.call("CRASH-CP", "ReserveNow", reserve))["status"] == "Accepted"
        await reported(after, "Reserved")
        await kill(proc)

        # 1. Restarted: Reserved again, and honoured.
        proc, after = await boot()
        await reported(after, "Reserved")
        await ctl(sock, "swipe", "1", "OTHER")
        await asyncio.sleep(0.5)
        assert await _state(sock) == "RESERVED"
        await ctl(sock, "swipe", "1", "RTAG")
        await ctl(sock, "plug", "1")
        start = await cs.wait_for_call("StartTransaction", after=after, timeout=10)
        assert start.payload["idTag"] == "RTAG" and start.payload["reservationId"] == 7
        await kill(proc)

        # 2. Killed after the reservation's transaction started: the reservation does not come back.
        proc, after = await boot()
        await cs.wait_for_call("StopTransaction", after=after, timeout=10)  # PowerLoss, the session is gone
        await asyncio.sleep(0.5)
        assert "Reserved" not in [
            f.payload["status"]
            for f in cs.log[after:]
            if f.direction == "in" and f.message_type == 2 and f.action == "StatusNotification"
        ]
        await ctl(sock, "unplug", "1")
        await reported(after, "Available")

        # 3. A reservation that expires while the agent is down: Available after the restart.
        after = len(cs.log)
        short = {"connectorId": 1, "expiryDate": _expiry(1.5), "idTag": "RTAG", "reservationId": 8}
        assert (await cs.call("CRASH-CP", "ReserveNow", short))["status"] == "Accepted"
        await reported(after, "Reserved")
        await kill(proc)
        await asyncio.sleep(2.0)
        proc, after = await boot()
        await reported(after, "Available")
        await asyncio.sleep(0.5)
        assert await _state(sock) == "AVAILABLE"
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    finally:
        for leftover in procs:  # a failed step must not leave an agent running
            if leftover.returncode is None:
                leftover.kill()
                await leftover.wait()
        log.close()
        await cs.stop()
    assert cs.violations == []
