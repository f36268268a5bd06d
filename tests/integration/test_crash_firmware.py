"""SIGKILL the agent during a firmware download and during an install (after MicroOcpp's reset tests): after the
restart the update is resumed or reported, never installed twice, and the charger comes back."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from backend_stub.ocpp.server import utc_now_iso
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from tests.integration.agent_process import spawn_agent, write_config
from tests.integration.file_servers import HttpFiles, http_files

pytestmark = pytest.mark.slow
__all__ = ["http_files"]

CP = "FW-CRASH"
IMAGE = b"FIRMWARE 9.9.9\n" + bytes(range(256)) * 256  # 64 KB
# The installer hook (argv: marker file, seconds, firmware path): records that it started, takes a while, then
# reports the version it installed on its last stdout line.
INSTALLER = """\
import sys, time
marker, seconds = sys.argv[1], float(sys.argv[2])
with open(marker, "a") as m:
    m.write("start\\n")
time.sleep(seconds)
with open(marker, "a") as m:
    m.write("done\\n")
print("9.9.9")
"""


def _config(tmp_path: Path, cs: CentralSystem, install_s: float) -> Path:
    config = write_config(
        tmp_path / "station.toml",
        station_id=CP,
        url=cs.url,
        db=tmp_path / "agent.db",
        sock=str(tmp_path / "s"),
    )
    script = tmp_path / "install.py"
    script.write_text(INSTALLER)
    command = [sys.executable, str(script), str(tmp_path / "installs.txt"), str(install_s)]
    firmware = f'[firmware]\ninstaller = "command"\ninstall_command = {json.dumps(command)}\n\n'
    config.write_text(config.read_text().replace("[agent]", firmware + "[agent]"))
    return config


def _statuses(cs: CentralSystem, after: int = 0) -> list[str]:
    return [
        f.payload["status"]
        for f in cs.log[after:]
        if f.direction == "in" and f.message_type == 2 and f.action == "FirmwareStatusNotification"
    ]


async def _run(config: Path, log: Any) -> asyncio.subprocess.Process:
    return await spawn_agent(config, log)


async def _kill(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def test_sigkill_during_download_resumes_and_installs_once(
    tmp_path: Path, http_files: HttpFiles
) -> None:
    cs = CentralSystem(log_path=tmp_path / "csms.jsonl")
    await cs.start()
    config = _config(tmp_path, cs, install_s=0.1)
    http_files.files["/fw.bin"] = IMAGE
    http_files.slow_once.add("/fw.bin")  # the first download takes ~3 s: time to kill it
    log = (tmp_path / "agent.log").open("w")
    try:
        proc = await _run(config, log)
        await cs.wait_for_call("BootNotification", timeout=15)
        await cs.call(
            CP,
            "UpdateFirmware",
            {
                "location": f"{http_files.url}/fw.bin",
                "retrieveDate": utc_now_iso(),
                "retries": 1,
                "retryInterval": 0,
            },
        )
        await cs.wait_for_call("FirmwareStatusNotification", where=lambda p: p["status"] == "Downloading")
        await asyncio.sleep(0.5)
        await _kill(proc)
        after = len(cs.log)
        proc = await _run(config, log)
        installed = await cs.wait_for_call(
            "FirmwareStatusNotification", after=after, timeout=30, where=lambda p: p["status"] == "Installed"
        )
        assert installed is not None
        # The restart went on with the download the CSMS had heard of (Downloading was not sent twice).
        assert _statuses(cs) == ["Downloading", "Downloaded", "Installing", "Installed"]
        assert http_files.requests.count(("GET", "/fw.bin")) == 2
        boots = [f.payload for f in cs.log[after:] if f.direction == "in" and f.action == "BootNotification"]
        assert boots[-1]["firmwareVersion"] == "9.9.9"
        assert (tmp_path / "installs.txt").read_text() == "start\ndone\n"  # installed exactly once
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    finally:
        log.close()
        await cs.stop()
    assert cs.violations == []


async def test_sigkill_during_install_reports_failure_and_never_reinstalls(
    tmp_path: Path, http_files: HttpFiles
) -> None:
    cs = CentralSystem(log_path=tmp_path / "csms.jsonl")
    await cs.start()
    config = _config(tmp_path, cs, install_s=30)
    http_files.files["/fw.bin"] = IMAGE
    marker = tmp_path / "installs.txt"
    log = (tmp_path / "agent.log").open("w")
    try:
        proc = await _run(config, log)
        await cs.wait_for_call("BootNotification", timeout=15)
        await cs.call(
            CP, "UpdateFirmware", {"location": f"{http_files.url}/fw.bin", "retrieveDate": utc_now_iso()}
        )
        await cs.wait_for_call(
            "FirmwareStatusNotification", timeout=15, where=lambda p: p["status"] == "Installing"
        )
        for _ in range(100):
            if marker.exists():
                break
            await asyncio.sleep(0.05)
        await _kill(proc)
        after = len(cs.log)
        proc = await _run(config, log)
        await cs.wait_for_call(
            "FirmwareStatusNotification",
            after=after,
            timeout=20,
            where=lambda p: p["status"] == "InstallationFailed",
        )
        await asyncio.sleep(1)
        assert _statuses(cs, after) == ["InstallationFailed"]
        assert marker.read_text() == "start\n"  # the hook ran once and was never started again
        boots = [f.payload for f in cs.log[after:] if f.direction == "in" and f.action == "BootNotification"]
        assert boots[0]["firmwareVersion"] == "0.1.0"
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
    finally:
        log.close()
        await cs.stop()
    assert cs.violations == []
