"""Central-system benchmark: OCPP connections one server process holds, and the MeterValues rate it sustains
with every message persisted, with CALL->CALLRESULT latency percentiles.

Run: ``.venv/bin/python benchmarks/csms.py --chargers 2000 --rate 2000 --seconds 20``. The server
(``python -m backend_stub serve --db``) runs in its own process; this process is the chargers. 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from websockets.asyncio.client import ClientConnection, connect

from backend_stub.process import start_csms_process
from backend_stub.store import CsmsStore


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Charger:
    """One OCPP 1.6 connection speaking raw frames, one outstanding CALL at a time."""

    def __init__(self, ws: ClientConnection, cp_id: str) -> None:
        self.ws = ws
        self.cp_id = cp_id
        self.n = 0
        self.transaction_id = 0
        self.energy_wh = 0

    async def call(self, action: str, payload: dict[str, Any]) -> tuple[list[Any], float]:
        self.n += 1
        uid = str(self.n)
        t0 = time.perf_counter()
        await self.ws.send(json.dumps([2, uid, action, payload]))
        while True:
            frame = json.loads(await self.ws.recv())
            if frame[0] in (3, 4) and frame[1] == uid:
                return frame, time.perf_counter() - t0


def now() -> str:
    """UTC now with milliseconds, so that every sample is a distinct row."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


async def open_chargers(url: str, count: int, ramp_per_s: int) -> list[Charger]:
    """Connect, boot and start a transaction on ``count`` chargers, ``ramp_per_s`` connects per second."""
    chargers: list[Charger] = []

    async def one(i: int) -> None:
        cp_id = f"BENCH-{i:05d}"
        ws = await connect(
            f"{url}/{cp_id}",
            subprotocols=["ocpp1.6"],
            compression=None,  # type: ignore[list-item]
            ping_interval=None,
            open_timeout=60,
        )
        cp = Charger(ws, cp_id)
        await cp.call("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "B"})
        answer, _ = await cp.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": f"TAG{i % 50}", "meterStart": 0, "timestamp": now()},
        )
        cp.transaction_id = answer[2]["transactionId"]
        chargers.append(cp)

    batch = max(1, ramp_per_s // 10)
    for start in range(0, count, batch):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + batch))))
        await asyncio.sleep(0.1)
    return chargers


async def load(chargers: list[Charger], rate: float, seconds: float) -> list[float]:
    """MeterValues at ``rate`` per second in total, spread over the chargers; returns latencies in s."""
    latencies: list[float] = []
    per_charger_interval = len(chargers) / rate
    deadline = time.perf_counter() + seconds

    async def run(cp: Charger, offset: float) -> None:
        await asyncio.sleep(offset)
        next_at = time.perf_counter()
        while next_at < deadline:
            cp.energy_wh += 10
            payload = {
                "connectorId": 1,
                "transactionId": cp.transaction_id,
                "meterValue": [
                    {
                        "timestamp": now(),
                        "sampledValue": [
                            {
                                "value": str(cp.energy_wh),
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            }
                        ],
                    }
                ],
            }
            answer, latency = await cp.call("MeterValues", payload)
            if answer[0] == 3:
                latencies.append(latency)
            next_at += per_charger_interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    await asyncio.gather(
        *(run(cp, i * per_charger_interval / len(chargers)) for i, cp in enumerate(chargers))
    )
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument(
        "--rate", type=float, default=1000, help="MeterValues per second, all chargers together"
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--ramp", type=int, default=500, help="connects per second")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "csms.db"
        with CsmsStore(db) as store:
            for i in range(args.chargers):
                store.add_charger(f"BENCH-{i:05d}")
        proc, url = await start_csms_process(db=db)
        try:
            t0 = time.perf_counter()
            chargers = await open_chargers(url, args.chargers, args.ramp)
            ramp_s = time.perf_counter() - t0
            print(
                f"connections held: {len(chargers)} (booted and in a transaction after {ramp_s:.1f} s); "
                f"server RSS {rss_mb(proc.pid):.0f} MB = {rss_mb(proc.pid) * 1024 / len(chargers):.0f} KB "
                "per connection (store caches included)"
            )
            # The load generator's own objects (10,000 connections) are moved out of the collector's view, so
            # its full collections do not show up as server latency.
            gc.collect()
            gc.freeze()
            pauses: list[float] = []
            started: list[float] = []

            def on_gc(phase: str, info: dict[str, int]) -> None:
                if info["generation"] == 2:
                    if phase == "start":
                        started.append(time.perf_counter())
                    elif started:
                        pauses.append(time.perf_counter() - started.pop())

            gc.callbacks.append(on_gc)
            latencies = await load(chargers, args.rate, args.seconds)
            gc.callbacks.remove(on_gc)
            print(
                f"load generator: {len(pauses)} full GC pauses, longest {max(pauses, default=0) * 1000:.0f} ms"
            )
            achieved = len(latencies) / args.seconds
            print(
                f"MeterValues persisted: {len(latencies)} in {args.seconds:g} s = {achieved:.0f}/s "
                f"(asked {args.rate:g}/s); latency p50 {pct(latencies, 50) * 1000:.1f} ms, "
                f"p99 {pct(latencies, 99) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
            )
            with CsmsStore(db) as check:
                rows = check._read("SELECT COUNT(*) AS n FROM meter_values")[0]["n"]
            print(f"rows in the store's meter_values table: {rows}")
            for cp in chargers:
                await cp.ws.close()
        finally:
            proc.terminate()
            await proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
