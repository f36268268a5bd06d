"""Driving single chargers: the ctl commands against a running fleet process, and the pytest fixture."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from simulator.fleet import Fleet
from simulator.pytest_plugin import FleetFactory, fleet_state

ROOT = Path(__file__).parents[2]

SCENARIO = """
name = "ctl"
duration_s = 120
tick_s = 0.2
drain_s = 10
[fleet]
count = 3
connectors = 2
durable = true
meter_poll_s = 0.5
reconnect_min_s = 0.2
reconnect_max_s = 2
reconnect_jitter_s = 0.2
[drivers]
arrivals_per_hour = 0
"""


async def _ctl(sock: Path, *args: str) -> tuple[int, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "ctl", "--socket", str(sock), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, json.loads(out) if out.strip() else err.decode()


async def _wait_status(sock: Path, cp_id: str, connector: int, state: str) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            code, status = await _ctl(sock, "status", cp_id)
            if code == 0 and status["connectors"][str(connector)]["state"] == state:
                return dict(status)
            await asyncio.sleep(0.2)


@pytest.mark.slow
async def test_ctl_plugs_swipes_and_unplugs_a_charger_of_a_running_fleet(tmp_path: Path) -> None:
    scenario = tmp_path / "ctl.toml"
    scenario.write_text(SCENARIO)
    sock = tmp_path / "ctl.sock"
    report_dir = tmp_path / "report"
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "run", "--scenario", str(scenario), "--no-live",
        "--control-socket", str(sock), "--report-dir", str(report_dir), cwd=ROOT,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            while True:
                if sock.exists():
                    code, summary = await _ctl(sock, "status")
                    if code == 0 and summary["booted"] == 3:
                        break
                await asyncio.sleep(0.2)
        assert summary["states"] == {"AVAILABLE": 6}
        assert (await _ctl(sock, "plug", "CP-0002", "2"))[0] == 0
        await _wait_status(sock, "CP-0002", 2, "PREPARING")
        code, answer = await _ctl(sock, "swipe", "CP-0002", "CTL-CARD-1")
        assert code == 0 and answer["connector"] == 2  # the plugged connector
        status = await _wait_status(sock, "CP-0002", 2, "CHARGING")
        assert status["connectors"]["2"]["id_tag"] == "CTL-CARD-1" and status["online"]
        assert (await _ctl(sock, "unplug", "CP-0002", "2"))[0] == 0
        await _wait_status(sock, "CP-0002", 2, "AVAILABLE")
        code, error = await _ctl(sock, "plug", "CP-9999", "1")
        assert code == 1 and "no charger 'CP-9999'" in error["error"]
    finally:
        run.send_signal(signal.SIGINT)
        async with asyncio.timeout(40):
            assert await run.wait() == 0
    report = json.loads((report_dir / "report.json").read_text())
    assert [(s["charger"], s["connector"], s["id_tag"], s["outcome"]) for s in report["sessions"]] == [
        ("CP-0002", 2, "CTL-CARD-1", "completed")
    ]
    assert (report_dir / "report.md").read_text().startswith("# Fleet report: ctl")


async def test_the_charger_fleet_fixture_drives_chargers_in_process(charger_fleet: FleetFactory) -> None:
    fleet: Fleet = await charger_fleet(count=2, connectors=1)
    assert fleet.status()["booted"] == 2
    fleet.plug("CP-0001", 1)
    fleet.swipe("CP-0001", "FIXTURE-1")
    await fleet_state(fleet, "CP-0001", 1, "CHARGING")
    meter = fleet.charger("CP-0001").connectors[1].meter
    async with asyncio.timeout(10):
        while meter.energy_wh <= 0:
            await asyncio.sleep(0.05)
    fleet.unplug("CP-0001", 1)
    await fleet_state(fleet, "CP-0001", 1, "AVAILABLE")
    assert fleet.status("CP-0002")["connectors"]["1"]["state"] == "AVAILABLE"
    with pytest.raises(KeyError, match="CP-0404"):
        fleet.plug("CP-0404")


@pytest.mark.slow
async def test_processes_2_routes_ctl_to_the_shards_and_ctrl_c_still_merges_their_reports(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "ctl.toml"
    scenario.write_text(SCENARIO)
    sock = tmp_path / "ctl.sock"
    report_dir = tmp_path / "report"
    run = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulator", "run", "--scenario", str(scenario), "--no-live", "--processes", "2",
        "--count", "4", "--control-socket", str(sock), "--report-dir", str(report_dir), cwd=ROOT,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(40):
            while True:
                if sock.exists():
                    code, summary = await _ctl(sock, "status")
                    if code == 0 and summary["booted"] == 4:
                        break
                await asyncio.sleep(0.2)
        assert summary["shards"] == 2
        # CP-0004 lives in the second process.
        assert (await _ctl(sock, "plug", "CP-0004", "1"))[0] == 0
        code, answer = await _ctl(sock, "swipe", "CP-0004", "CTL-CARD-2")
        assert code == 0 and answer["connector"] == 1
        await _wait_status(sock, "CP-0004", 1, "CHARGING")
    finally:
        run.send_signal(signal.SIGINT)  # the parent only, as a service manager would
        async with asyncio.timeout(60):
            assert await run.wait() == 0
    report = json.loads((report_dir / "report.json").read_text())
    assert report["processes"] == 2 and report["chargers"] == 4
    assert [(s["charger"], s["id_tag"], s["outcome"]) for s in report["sessions"]] == [
        ("CP-0004", "CTL-CARD-2", "completed")
    ]
