"""How many real agents one simulator process holds against the bundled central system, and at what cost.

The central system runs as a separate process: ``python -m backend_stub serve --db`` on a store seeded with the
fleet's chargers (no passwords: the scrypt check of 10,000 first connections is the central system's cost, not
the fleet's) and cards, persisting every message; ``--test-mode`` uses its accept-everyone test server instead. This process runs the fleet: every charger boots, heartbeats every 60 s, and 20 % of the
connectors are plugged in and charging, sending MeterValues every 10 s. After the ramp the benchmark measures a
steady window: CALL->CALLRESULT latency per action, CPU of both processes, and memory per charger (RSS delta / N
and, with --tracemalloc, Python allocations per charger).

    .venv/bin/python benchmarks/fleet.py --count 10000 --window 120
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backend_stub.store import CsmsStore
from simulator.fleet import CsmsProcess, Fleet, raise_fd_limit
from simulator.metrics import summary
from simulator.scenario import load

SCENARIO = Path(__file__).resolve().parents[1] / "simulator" / "scenarios" / "benchmark.toml"


def preload(version: str) -> None:
    """Import the modules a fleet of ``version`` imports on its first connection."""
    import encodings.utf_8_sig  # noqa: F401  (read once by the first agent's config parsing)

    if version == "2.0.1":
        import chargepoint.csms.v201.adapter  # noqa: F401


def rss_mb(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss) / 2**20


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    raise_fd_limit()
    me = psutil.Process()
    base = load(SCENARIO).with_overrides(count=args.count)
    scenario = replace(base, fleet=replace(base.fleet, ocpp_version=args.version))
    db = None
    if not args.test_mode:
        db = Path(args.work_dir) / "csms.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        for stale in (db, db.with_name("csms.db-wal"), db.with_name("csms.db-shm")):
            stale.unlink(missing_ok=True)
        with CsmsStore(db) as store:
            for i in range(args.count):
                store.add_charger(scenario.fleet.charger_id(i))
            user = store.add_user("Bench")
            for n in range(args.count // 5 + 1):
                store.add_card(f"BENCH-{n:05d}", user_id=user.id)
    csms = CsmsProcess(db, heartbeat_interval_s=60)
    url = await csms.start()
    assert csms.proc is not None
    server = psutil.Process(csms.proc.pid)
    scenario = scenario.with_overrides(csms_url=url, count=args.count)
    # What the first charger would import lazily is imported before the baseline: a one-off cost of the process
    # (the 2.0.1 adapter and ocpp.v201 are ~3 MB), not of any charger.
    preload(args.version)
    gc.collect()
    rss_before = rss_mb(me)
    if args.tracemalloc:
        tracemalloc.start(1)
        traced_before = tracemalloc.get_traced_memory()[0]
    fleet = Fleet(scenario, work_dir=Path(args.work_dir))
    t0 = time.monotonic()
    await fleet.start()
    ramp_s = time.monotonic() - t0
    booted = sum(c.booted for c in fleet.chargers.values())
    # 20 % of the connectors charge: plugged, then a card (the central system accepts it online).
    charging = [c for c in fleet.chargers.values() if c.index % 5 == 0]
    # Sessions start spread over 20 s, so their 10 s MeterValues timers are spread too (as in a real fleet;
    # starting them all at once makes every sample of the fleet leave in the same millisecond).
    spread_s = 20.0
    for n, charger in enumerate(charging):
        fleet.plug(charger.id, 1, soc=0.1)
        fleet.swipe(charger.id, f"BENCH-{n:05d}", 1)
        await asyncio.sleep(spread_s / len(charging))
    await asyncio.sleep(5)
    in_tx = sum(
        1
        for c in charging
        if c.agent.station is not None and c.agent.station.connectors[1].transaction is not None
    )
    runner = asyncio.create_task(fleet.run(duration_s=args.window + 3600))
    await asyncio.sleep(5)
    gc.collect()
    gc.freeze()
    rss_loaded = rss_mb(me)
    traced = 0
    top: list[str] = []
    if args.tracemalloc:
        traced = tracemalloc.get_traced_memory()[0] - traced_before
        snap = tracemalloc.take_snapshot()
        top = [str(s) for s in snap.statistics("lineno")[:30]]
        tracemalloc.stop()
    # The steady window: fresh metrics, CPU of both processes.
    fleet.metrics.latency.clear()
    fleet.metrics.calls.clear()
    fleet.metrics.errors.clear()
    cpu0, scpu0, w0 = me.cpu_times(), server.cpu_times(), time.monotonic()
    await asyncio.sleep(args.window)
    cpu1, scpu1, wall = me.cpu_times(), server.cpu_times(), time.monotonic() - w0
    rss_end = rss_mb(me)
    lat = {a: summary(v) for a, v in sorted(fleet.metrics.latency.items())}
    every = [x for v in fleet.metrics.latency.values() for x in v]
    result = {
        "ocpp_version": args.version,
        "chargers": args.count,
        "central_system": "test mode" if args.test_mode else "serve --db (every message persisted)",
        "booted": booted,
        "in_transaction": in_tx,
        "ramp_s": round(ramp_s, 1),
        "window_s": round(wall, 1),
        "calls_per_s": round(sum(fleet.metrics.calls.values()) / wall, 1),
        "calls": dict(fleet.metrics.calls),
        "errors": dict(fleet.metrics.errors),
        "latency_ms": lat,
        "latency_all_ms": summary(every),
        "fleet_cpu_percent": round(100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / wall, 1),
        "csms_cpu_percent": round(
            100 * ((scpu1.user + scpu1.system) - (scpu0.user + scpu0.system)) / wall, 1
        ),
        "rss_before_mb": round(rss_before, 1),
        "rss_loaded_mb": round(rss_loaded, 1),
        "rss_end_mb": round(rss_end, 1),
        "rss_per_charger_kb": round((rss_loaded - rss_before) * 1024 / args.count, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "csms_rss_mb": round(rss_mb(server), 1),
        "open_fds": len(os.listdir("/proc/self/fd")),
    }
    if args.tracemalloc:
        result["traced_per_charger_kb"] = round(traced / 1024 / args.count, 1)
        result["traced_top"] = top
    runner.cancel()
    await fleet.stop()
    await fleet.close()
    await csms.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=120.0, help="steady-state seconds measured")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace Python allocations (slower)")
    parser.add_argument("--work-dir", default="/tmp/fleet-bench")
    parser.add_argument(
        "--test-mode",
        action="store_true",
        help="central system without a store (accepts every charger and card)",
    )
    parser.add_argument("--version", choices=("1.6", "2.0.1"), default="1.6", help="the fleet's OCPP version")
    parser.add_argument(
        "--alone",
        action="store_true",
        help="only --version (else a 2.0.1 run measures 1.6 too, side by side)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.alone or args.version == "1.6":
        print(json.dumps(asyncio.run(bench(args)), indent=2))
        return
    compare(args)


def compare(args: argparse.Namespace) -> None:
    """Run 1.6 and ``--version`` one after the other, each in its own process (RSS deltas must not mix)."""
    results = []
    for version in ("1.6", args.version):
        argv = [a for a in sys.argv[1:] if a not in ("--version", args.version)]
        out = subprocess.run(
            [sys.executable, __file__, *argv, "--version", version, "--alone"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results.append(json.loads(out))
        print(out)
    old, new = results
    print(f"{'':36} {'1.6':>9} {args.version:>9} {'ratio':>6}")
    for name, pick in (
        ("memory per charger (KB; <= 60)", lambda r: r["rss_per_charger_kb"]),
        ("latency p99, every action (ms; <= 100)", lambda r: r["latency_all_ms"]["p99"]),
        ("latency p50, every action (ms)", lambda r: r["latency_all_ms"]["p50"]),
        ("CALLs per s", lambda r: r["calls_per_s"]),
        ("fleet CPU %", lambda r: r["fleet_cpu_percent"]),
        ("CSMS CPU %", lambda r: r["csms_cpu_percent"]),
        ("booted", lambda r: r["booted"]),
        ("in transaction", lambda r: r["in_transaction"]),
        ("ramp (s)", lambda r: r["ramp_s"]),
    ):
        a, b = float(pick(old)), float(pick(new))
        print(f"{name:36} {a:9.1f} {b:9.1f} {b / a if a else float('nan'):6.2f}")


if __name__ == "__main__":
    main()
