"""The charger runner against real chargers: this project's agent (a `python -m chargepoint run` process with
simulated hardware, driven by its ctl actuation profile) passes the 1.6 charger suite; a charger that reports
status transitions OCPP 1.6 §4.9 forbids fails; a charger that never connects is a setup error (exit 2)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from conformance.__main__ import run_cli
from conformance.charger_runner import ChargerSetup, run_charger_suite
from conformance.drivers import Actuator
from conformance.engine import select_cases
from conformance.report import Report
from conformance.versions import VERSIONS

pytestmark = pytest.mark.timeout(300)

AGENT_CONFIG = """
[station]
id = "CP-AGENT"
serial_number = "SN-CONF"
[csms]
url = "ws://127.0.0.1:{port}/ocpp"
response_timeout_s = 5
boot_retry_s = 0.5
reconnect_min_s = 0.05
reconnect_max_s = 0.3
reconnect_jitter_s = 0.05
[storage]
path = "{dir}/agent.db"
[control]
socket = "{dir}/agent.sock"
[agent]
unlock_supported = true  # the simulated connector has a cable lock
[settings]
transaction_message_retry_interval_s = 0
[[connectors]]
id = 1
relay = {{ driver = "sim" }}
meter = {{ driver = "sim", energy_wh = 1000 }}
plug = {{ driver = "sim", ev_power_w = 7400 }}
reader = {{ driver = "sim" }}
"""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[tuple[int, Path]]:
    """The project's agent as its own process, pointed at a port the charger runner will listen on."""
    port = free_port()
    config = tmp_path / "station.toml"
    config.write_text(AGENT_CONFIG.format(port=port, dir=tmp_path), encoding="utf-8")
    with (tmp_path / "agent.log").open("w") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chargepoint", "run", "--config", str(config), stderr=log
        )
        try:
            yield port, config
        finally:
            proc.terminate()
            await proc.wait()


@pytest.mark.slow
async def test_the_agent_passes_the_charger_suite_with_its_ctl_profile(
    agent: tuple[int, Path], tmp_path: Path
) -> None:
    port, config = agent
    junit = tmp_path / "charger.xml"
    code, report = await run_cli(
        [
            "charger",
            "--listen",
            f"127.0.0.1:{port}",
            "--actuate",
            "chargepoint-agent",
            "--var",
            f"config={config}",
            "--connect-timeout",
            "30",
            "--junit",
            str(junit),
            "-q",
        ]
    )
    assert report is not None
    verdicts = {r.id: str(r.verdict) for r in report.results}
    assert len(verdicts) >= 45
    not_passed = {k: v for k, v in verdicts.items() if v != "passed"}
    # FirmwareManagement and Reservation are declared in SupportedFeatureProfiles (issue 11 items 2 and 3):
    # their cases run and pass, nothing is left not applicable.
    assert not_passed == {}
    assert verdicts["TC_044_1_CS"] == verdicts["TC_045_1_CS"] == "passed"
    assert verdicts["TC_046_CS"] == verdicts["TC_051_CS"] == "passed"
    assert code == 0
    assert "TC_003_CS Regular Charging Session - Plugin First" in junit.read_text()


async def test_a_charger_that_never_connects_is_a_setup_error(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    code, report = await run_cli(
        [
            "charger",
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--connect-timeout",
            "0.5",
            "--json",
            str(out),
            "-q",
        ]
    )
    assert code == 2 and report is not None
    assert "did not connect" in report.setup_error
    assert json.loads(out.read_text())["exit_status"] == 2


# ---------------------------------------------------------------------------------------------- negative control


class BadCharger:
    """A raw OCPP 1.6 charger that reports Finishing when a cable is plugged in (Available -> Finishing), and
    declares the Reservation profile without implementing ReserveNow."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.n = 0
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for text in self.ws:
            frame = json.loads(text)
            if frame[0] != 2:
                continue
            if frame[2] == "ReserveNow":  # declared below, but not implemented
                await self.ws.send(json.dumps([4, frame[1], "NotSupported", "no reservations", {}]))
                continue
            profiles = {"key": "SupportedFeatureProfiles", "readonly": True, "value": "Core,Reservation"}
            answers = {"GetConfiguration": {"configurationKey": [profiles]}}
            await self.ws.send(json.dumps([3, frame[1], answers.get(frame[2], {"status": "Rejected"})]))

    async def send(self, action: str, payload: dict[str, Any]) -> None:
        self.n += 1
        await self.ws.send(json.dumps([2, f"b{self.n}", action, payload]))

    async def status(self, connector: int, status: str) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        await self.send(
            "StatusNotification",
            {"connectorId": connector, "status": status, "errorCode": "NoError", "timestamp": now},
        )


class BadChargerActuator(Actuator):
    """Physical steps on the bad charger: a plug makes it report Finishing."""

    def __init__(self) -> None:
        self.charger: BadCharger | None = None

    def available(self, step: str) -> bool:
        return step in ("plug", "unplug", "swipe")

    async def do(self, step: str, **params: str) -> str:
        assert self.charger is not None
        if step == "plug":
            await self.charger.status(1, "Finishing")  # OCPP 1.6 §4.9: Available -> Finishing is not allowed
        elif step == "unplug":
            await self.charger.status(1, "Available")
        return f"bad charger: {step}"


async def test_a_charger_with_forbidden_transitions_or_undelivered_profiles_fails(tmp_path: Path) -> None:
    port = free_port()
    actuator = BadChargerActuator()
    setup = ChargerSetup(port=port, actuator=actuator, connect_timeout_s=30, call_timeout_s=5)
    cases = select_cases(VERSIONS["1.6"].charger_cases(), "TC_001_CS,TC_003_CS,TC_046_CS,TC_044_1_CS")
    report = Report("charger", "1.6", f"127.0.0.1:{port}")

    async def bad_charger() -> None:
        for _ in range(100):
            with contextlib.suppress(OSError):
                async with connect(f"ws://127.0.0.1:{port}/ocpp/CP-BAD", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
                    charger = BadCharger(ws)
                    actuator.charger = charger
                    await charger.send(
                        "BootNotification", {"chargePointVendor": "Bad", "chargePointModel": "B"}
                    )
                    await asyncio.sleep(0.2)
                    await charger.status(0, "Available")
                    await charger.status(1, "Available")
                    await ws.wait_closed()
                    return
            await asyncio.sleep(0.05)

    task = asyncio.create_task(bad_charger())
    try:
        await run_charger_suite(setup, cases, report, quiet=True, timeout_scale=0.3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    verdicts = {r.id: (str(r.verdict), r.reason) for r in report.results}
    assert verdicts["TC_001_CS"][0] == "passed"
    assert verdicts["TC_003_CS"][0] == "failed"
    assert report.exit_status() == 1
    # The case fails where Preparing should have come, naming the forbidden transition it saw instead.
    bad = report.results[1]
    assert "StatusNotification Preparing" in bad.reason
    assert "connector 1: Available -> Finishing" in bad.reason and "OCPP 1.6 §4.9" in bad.reason
    assert any('"Finishing"' in t.text for t in bad.trace)
    # Declared but not implemented fails; not declared is not applicable.
    assert verdicts["TC_046_CS"] == (
        "failed",
        "the charger declares Reservation but answers ReserveNow with CALLERROR NotSupported",
    )
    assert verdicts["TC_044_1_CS"][0] == "not_applicable"
