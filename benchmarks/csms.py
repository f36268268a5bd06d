"""Central-system benchmark: OCPP connections one server process holds, and the rate of in-transaction meter
messages it sustains with every message persisted, with CALL->CALLRESULT latency percentiles.

OCPP 1.6 sends MeterValues, OCPP 2.0.1 TransactionEvent Updated (seqNo, meter values inside); ``--version both``
(the default) runs 1.6 then 2.0.1 against a fresh server and database each, and prints them side by side.

Run: ``.venv/bin/python benchmarks/csms.py --chargers 10000 --rate 2000 --seconds 20``. The server
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


def cpu_split_s(pid: int) -> tuple[float, float]:
    """CPU time a process has used in user space and in the kernel (its system calls), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


class Charger:
    """One OCPP connection speaking raw frames, one outstanding CALL at a time."""

    def __init__(self, ws: ClientConnection, cp_id: str) -> None:
        self.ws = ws
        self.cp_id = cp_id
        self.n = 0
        self.transaction_id: int | str = 0
        self.energy_wh = 0
        self.seq_no = 0

    async def call(self, action: str, payload: dict[str, Any]) -> tuple[list[Any], float]:
        self.n += 1
        uid = str(self.n)
        t0 = time.perf_counter()
        await self.ws.send(json.dumps([2, uid, action, payload]))
        while True:
            frame = json.loads(await self.ws.recv())
            if frame[0] in (3, 4) and frame[1] == uid:
                return frame, time.perf_counter() - t0


def energy_sample_16(cp: Charger) -> dict[str, Any]:
    """A 1.6 MeterValues of the running transaction (the register as a string, OCPP 1.6 §7.41)."""
    return {
        "connectorId": 1,
        "transactionId": cp.transaction_id,
        "meterValue": [
            {
                "timestamp": now(),
                "sampledValue": [
                    {"value": str(cp.energy_wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
                ],
            }
        ],
    }


def transaction_event(cp: Charger, event_type: str, trigger: str) -> dict[str, Any]:
    """A 2.0.1 TransactionEvent of the charger's transaction with the energy register (E01-E15)."""
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": now(),
        "triggerReason": trigger,
        "seqNo": cp.seq_no,
        "transactionInfo": {"transactionId": cp.transaction_id},
        "meterValue": [
            {
                "timestamp": now(),
                "sampledValue": [{"value": cp.energy_wh, "measurand": "Energy.Active.Import.Register"}],
            }
        ],
    }
    cp.seq_no += 1
    if event_type == "Started":
        payload["idToken"] = {"idToken": f"TAG{int(cp.cp_id[6:]) % 50}", "type": "ISO14443"}  # as 1.6
        payload["evse"] = {"id": 1, "connectorId": 1}
    return payload


async def start_16(cp: Charger, i: int) -> None:
    await cp.call("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "B"})
    answer, _ = await cp.call(
        "StartTransaction", {"connectorId": 1, "idTag": f"TAG{i % 50}", "meterStart": 0, "timestamp": now()}
    )
    cp.transaction_id = answer[2]["transactionId"]


async def start_201(cp: Charger, i: int) -> None:
    boot = {"chargingStation": {"vendorName": "Bench", "model": "B"}, "reason": "PowerUp"}
    await cp.call("BootNotification", boot)
    cp.transaction_id = f"tx-{i}"
    await cp.call("TransactionEvent", transaction_event(cp, "Started", "Authorized"))


# Per version: subprotocol, how a charger boots and starts its transaction, and its periodic meter message.
VERSIONS: dict[str, tuple[str, Any, Any]] = {
    "1.6": ("ocpp1.6", start_16, lambda cp: ("MeterValues", energy_sample_16(cp))),
    "2.0.1": (
        "ocpp2.0.1",
        start_201,
        lambda cp: ("TransactionEvent", transaction_event(cp, "Updated", "MeterValuePeriodic")),
    ),
}


def now() -> str:
    """UTC now with milliseconds, so that every sample is a distinct row."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


async def open_chargers(url: str, count: int, ramp_per_s: int, version: str) -> list[Charger]:
    """Connect, boot and start a transaction on ``count`` chargers, ``ramp_per_s`` connects per second."""
    chargers: list[Charger] = []
    subprotocol, begin, _ = VERSIONS[version]

    async def one(i: int) -> None:
        cp_id = f"BENCH-{i:05d}"
        ws = await connect(
            f"{url}/{cp_id}",
            subprotocols=[subprotocol],  # type: ignore[list-item]
            compression=None,
            ping_interval=None,
            open_timeout=60,
        )
        cp = Charger(ws, cp_id)
        await begin(cp, i)
        chargers.append(cp)

    batch = max(1, ramp_per_s // 10)
    for start in range(0, count, batch):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + batch))))
        await asyncio.sleep(0.1)
    return chargers


async def load(chargers: list[Charger], rate: float, seconds: float, version: str) -> list[float]:
    """Meter messages at ``rate`` per second in total, spread over the chargers; returns latencies in s."""
    message = VERSIONS[version][2]
    latencies: list[float] = []
    per_charger_interval = len(chargers) / rate
    deadline = time.perf_counter() + seconds

    async def run(cp: Charger, offset: float) -> None:
        await asyncio.sleep(offset)
        next_at = time.perf_counter()
        while next_at < deadline:
            cp.energy_wh += 10
            action, payload = message(cp)
            answer, latency = await cp.call(action, payload)
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


async def run_version(args: argparse.Namespace, version: str) -> dict[str, float]:
    """One run against a fresh server and database; the figures that go side by side."""
    print(f"--- OCPP {version}")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "csms.db"
        with CsmsStore(db) as store:
            for i in range(args.chargers):
                store.add_charger(f"BENCH-{i:05d}")
        proc, url = await start_csms_process(db=db)
        try:
            t0 = time.perf_counter()
            chargers = await open_chargers(url, args.chargers, args.ramp, version)
            ramp_s = time.perf_counter() - t0
            rss = rss_mb(proc.pid)
            print(
                f"connections held: {len(chargers)} (booted and in a transaction after {ramp_s:.1f} s); "
                f"server RSS {rss:.0f} MB = {rss * 1024 / len(chargers):.0f} KB "
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
            user_before, system_before = cpu_split_s(proc.pid)
            latencies = await load(chargers, args.rate, args.seconds, version)
            user_after, system_after = cpu_split_s(proc.pid)
            server_user_s, server_system_s = user_after - user_before, system_after - system_before
            server_cpu_s = server_user_s + server_system_s
            gc.callbacks.remove(on_gc)
            gc.unfreeze()
            print(
                f"load generator: {len(pauses)} full GC pauses, longest {max(pauses, default=0) * 1000:.0f} ms"
            )
            achieved = len(latencies) / args.seconds
            action = "MeterValues" if version == "1.6" else "TransactionEvent Updated"
            print(
                f"{action} persisted: {len(latencies)} in {args.seconds:g} s = {achieved:.0f}/s "
                f"(asked {args.rate:g}/s); latency p50 {pct(latencies, 50) * 1000:.1f} ms, "
                f"p99 {pct(latencies, 99) * 1000:.1f} ms, max {max(latencies, default=0) * 1000:.1f} ms"
            )
            with CsmsStore(db) as check:
                rows = check._read("SELECT COUNT(*) AS n FROM meter_values")[0]["n"]
            print(f"rows in the store's meter_values table: {rows}")
            cpu_per_message_us = server_cpu_s / max(1, len(latencies)) * 1e6
            print(
                f"server CPU during the load: {server_cpu_s:.1f} s = {cpu_per_message_us:.0f} us per message "
                f"(user {server_user_s:.1f} s, kernel {server_system_s:.1f} s; CPU time, not wall time: steady "
                "when other work shares the cores)"
            )
            for cp in chargers:
                await cp.ws.close()
        finally:
            proc.terminate()
            await proc.wait()
    return {
        "connections": len(chargers),
        "rate": achieved,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "rss_kb_per_connection": rss * 1024 / max(1, len(chargers)),
        "rows": rows,
        "cpu_us": cpu_per_message_us,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument(
        "--rate", type=float, default=1000, help="meter messages per second, all chargers together"
    )
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--ramp", type=int, default=500, help="connects per second")
    parser.add_argument("--version", choices=["1.6", "2.0.1", "both"], default="both")
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}")
    versions = ["1.6", "2.0.1"] if args.version == "both" else [args.version]
    results = {v: await run_version(args, v) for v in versions}
    if len(results) == 2:
        old, new = results["1.6"], results["2.0.1"]
        print(f"{'':28}{'OCPP 1.6':>12}{'OCPP 2.0.1':>12}{'2.0.1/1.6':>11}")
        for key, label in [
            ("connections", "connections held"),
            ("rate", "persisted per s"),
            ("p50_ms", "latency p50 ms"),
            ("p99_ms", "latency p99 ms"),
            ("rss_kb_per_connection", "server KB per connection"),
            ("cpu_us", "server CPU us per message"),
        ]:
            ratio = new[key] / old[key] if old[key] else float("nan")
            print(f"{label:28}{old[key]:12.1f}{new[key]:12.1f}{ratio:11.2f}")


if __name__ == "__main__":
    asyncio.run(main())
