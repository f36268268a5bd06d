"""`serve --workers K`: K test-server processes share one port (SO_REUSEPORT) and listen on extra addresses; the
store-backed server refuses workers (its connection registry is per process)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from websockets.asyncio.client import connect

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}


async def _boot(url: str, cp_id: str) -> dict[str, object]:
    async with connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await ws.send(json.dumps([2, "b1", "BootNotification", BOOT]))
        answer = json.loads(await ws.recv())
        assert answer[:2] == [3, "b1"]
        payload: dict[str, object] = answer[2]
        return payload


async def test_two_workers_share_the_port_and_answer_on_every_address() -> None:
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "backend_stub", "serve", "--port", "0", "--workers", "2"),
        *("--also-listen", "127.0.0.2", "--max-connections-per-address", "0"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        workers = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        assert url.startswith("ws://127.0.0.1:") and "2 workers" in workers
        other = url.replace("//127.0.0.1:", "//127.0.0.2:")
        answers = await asyncio.gather(*(_boot(u, f"CP-{i}") for i, u in enumerate([url, other] * 10)))
        assert all(a["status"] == "Accepted" for a in answers)
    finally:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 30) is not None


def test_workers_with_a_store_are_refused_with_the_reason(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "backend_stub", "serve", "--db", str(tmp_path / "c.db"), "--workers", "2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "--workers needs the test server" in done.stderr and "connection registry" in done.stderr
