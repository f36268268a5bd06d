"""systemd integration: READY and watchdog pings over NOTIFY_SOCKET, which stop when a hardware loop is dead;
and ``relays-off`` for ExecStopPost."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from tests.integration.conftest import StartAgent, until


async def test_ready_and_watchdog_pings_stop_when_a_hardware_loop_dies(
    cs: CentralSystem, start_agent: StartAgent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # pings every 0.1 s
    received: list[str] = []

    def drain() -> list[str]:
        while True:
            try:
                received.append(sock.recv(100).decode())
            except BlockingIOError:
                return received

    try:
        a = await start_agent()
        assert a.station.ctx.supervised == []  # the simulated plug and reader push: no loop waits for them
        await until(lambda: "READY=1" in drain() and drain().count("WATCHDOG=1") >= 3, 5, "no watchdog pings")
        # A hardware duty that is gone for good: connector 1's meter poll no longer planned (here: stopped, as no
        # crash can end it, since a crashed poll faults the connector and the next one follows).
        meter_poll = next(d for d in a.station.ctx.supervised_duties if d.name == "meter-1")
        meter_poll.stop()
        await asyncio.sleep(0.2)
        before = drain().count("WATCHDOG=1")
        await asyncio.sleep(0.5)
        assert drain().count("WATCHDOG=1") == before, (
            "an agent with a dead hardware loop kept feeding the watchdog"
        )
    finally:
        sock.close()


def test_relays_off_opens_every_relay(tmp_path: Path) -> None:
    config = tmp_path / "station.toml"
    config.write_text("""
[station]
id = "CP-OFF"
[csms]
url = "ws://127.0.0.1:9/ocpp"
[storage]
path = "agent.db"
[[connectors]]
id = 1
relay = { driver = "sim" }
meter = { driver = "sim" }
plug = { driver = "sim" }
[[connectors]]
id = 2
relay = { driver = "sim" }
meter = { driver = "sim" }
plug = { driver = "sim" }
""")
    result = subprocess.run(
        [sys.executable, "-m", "chargepoint", "relays-off", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["connector 1: relay open", "connector 2: relay open"]
