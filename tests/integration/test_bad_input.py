"""Bad input: a full disk, an unreachable CSMS, a bad config. Each gets a clear error or fault, nothing is lost."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from tests.integration.conftest import StartAgent, until


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MB filesystem (tmpfs) that the test can fill up; needs root, which CI has."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"cannot mount a tmpfs under CI: {result.stderr}")
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


async def test_full_disk_faults_the_connector_and_never_charges_unrecorded(
    cs: CentralSystem, start_agent: StartAgent, small_disk: Path
) -> None:
    """On a full disk the session is refused with an InternalError fault, not charged unrecorded."""
    a = await start_agent(db=small_disk / "agent.db")
    _fill(small_disk / "filler")
    after = len(cs.log)
    a.plug()
    a.swipe("TAG-FULL")
    status = await cs.wait_for_call(
        "StatusNotification", after=after, where=lambda p: p["status"] == "Faulted"
    )
    assert status.payload["errorCode"] == "InternalError"
    assert not a.sim().relay.closed  # type: ignore[union-attr]
    assert not cs.calls("StartTransaction")
    # Space comes back: the fault clears by itself and the next card charges.
    (small_disk / "filler").unlink()
    await a.wait_state("PREPARING")
    a.swipe("TAG-FULL")
    await a.wait_state("CHARGING")
    await cs.wait_for_call("StartTransaction")
    await a.stop()


async def test_unreachable_csms_charges_offline_and_delivers_later(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    cs.refuse_connections = True
    a = await start_agent(boot=False, settings={"allow_offline_tx_for_unknown_id": True})
    await asyncio.sleep(0.3)
    assert a.agent.link is not None and not a.agent.link.online
    a.plug()
    a.swipe("OFFLINE-1")
    await a.wait_state("CHARGING")
    await asyncio.sleep(1.0)  # 7.4 kW for 1 s: about 2 Wh
    a.swipe("OFFLINE-1")
    await a.wait_state("FINISHING")
    cs.refuse_connections = False
    start = await cs.wait_for_call("StartTransaction", timeout=10)
    stop = await cs.wait_for_call("StopTransaction", timeout=10)
    answer = next(f for f in cs.log if f.direction == "out" and f.unique_id == start.unique_id)
    assert stop.payload["transactionId"] == answer.payload["transactionId"]
    assert stop.payload["meterStop"] > start.payload["meterStart"]


def _run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chargepoint", *args], capture_output=True, text=True, timeout=60
    )


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[station]\nid = "CP"\n[csms]\nurl = "http://x"\n[storage]\npath = "a.db"\n')
    result = _run_cli("run", "--config", str(config))
    assert result.returncode == 2
    assert "config key 'csms.url'" in result.stderr
    result = _run_cli("run", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2 and "cannot read" in result.stderr
    config.write_text("[station\n")
    result = _run_cli("check-config", "--config", str(config))
    assert result.returncode == 2 and "not valid TOML" in result.stderr


async def test_ctl_drives_a_running_agent_process(cs: CentralSystem, tmp_path: Path) -> None:
    config = tmp_path / "station.toml"
    config.write_text(f"""
[station]
id = "CTL-CP"
[csms]
url = "{cs.url}"
[storage]
path = "agent.db"
[control]
socket = "ctl.sock"
[agent]
meter_poll_s = 0.1
[[connectors]]
id = 1
relay = {{ driver = "sim" }}
meter = {{ driver = "sim", energy_wh = 2000 }}
plug = {{ driver = "sim" }}
reader = {{ driver = "sim" }}
""")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chargepoint", "run", "--config", str(config), stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await cs.wait_for_call("BootNotification", timeout=20)

        async def ctl(*args: str) -> str:
            p = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "chargepoint",
                "ctl",
                "--config",
                str(config),
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await p.communicate()
            assert p.returncode == 0, err.decode()
            return out.decode()

        await ctl("plug", "1")
        await ctl("swipe", "1", "ctltag")
        await cs.wait_for_call("StartTransaction", where=lambda p: p["idTag"] == "CTLTAG")
        import json

        status = json.loads(await ctl("status"))
        assert status["1"]["state"] in ("CHARGING", "SUSPENDED_EV")
        assert status["1"]["meter_wh"] >= 2000
        # The link's side: connected, and what the central system answered to BootNotification.
        assert status["csms"]["connected"] is True and status["csms"]["online"] is True
        assert status["csms"]["registration"] == "Accepted"
        assert status["csms"]["url"] == f"{cs.url}/CTL-CP"
        await ctl("meter-fault", "1", "on")
        await cs.wait_for_call("StatusNotification", where=lambda p: p["errorCode"] == "PowerMeterFailure")
        bad = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chargepoint",
            "ctl",
            "--config",
            str(config),
            "swipe",
            "9",
            "x",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await bad.communicate()
        assert bad.returncode == 1 and b"no connector 9" in err
    finally:
        proc.terminate()
        await proc.wait()
    await until(lambda: bool(cs.calls("StopTransaction")), 5)
    assert cs.calls("StopTransaction")[0].payload["reason"] == "Reboot"
