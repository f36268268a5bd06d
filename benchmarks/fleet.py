"""How many real agents one simulator process holds against the bundled central system, and at what cost.

The central system runs as a separate process: ``python -m backend_stub serve --db`` on a store seeded with the
fleet's chargers (no passwords: the scrypt check of 10,000 first connections is the central system's cost, not
the fleet's) and cards, persisting every message; ``--test-mode`` uses its accept-everyone test server instead. This process runs the fleet: every charger boots, heartbeats every 60 s, and 20 % of the
connectors are plugged in and charging, sending MeterValues every 10 s. After the ramp the benchmark measures a
steady window: CALL->CALLRESULT latency per action, CPU of both processes, and memory per charger (RSS delta / N
and, with --tracemalloc, Python allocations per charger).

    .venv/bin/python benchmarks/fleet.py --count 10000 --window 120

Scale: ``--processes N`` splits the chargers over N fleet processes (contiguous shards, one report: latency merged
from every sample, CPU and memory summed); each measures the same steady window (a file barrier). One fleet
process holds up to ~19,500 chargers (its descriptors: RLIMIT_NOFILE is 20,000 here). ``--test-mode --csms-workers
K`` runs the test central system as K processes on one port (SO_REUSEPORT), and ``--csms-hosts`` adds loopback
addresses it also listens on: one client address opens at most ~28,000 connections to one address and port (the
ephemeral range 32768-60999), so 100,000 chargers need four or more.

    .venv/bin/python benchmarks/fleet.py --count 19500 --window 60
    .venv/bin/python benchmarks/fleet.py --count 100000 --processes 6 --test-mode --csms-workers 6 \
        --csms-hosts 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4,127.0.0.5 --connect-rate 800 --window 60

Boot storm: ``--storm`` starts every charger of a process at once (a site after a power cut) and reports resets
(connection attempts that failed), BootNotifications sent (more than one per charger: the central system deferred
some with Pending) and how long until every charger was Accepted.

    .venv/bin/python benchmarks/fleet.py --count 10000 --storm --window 30

Long runs: ``--sample-rss S`` samples each fleet process's RSS, its frozen objects (``gc.get_freeze_count()``, the
fleet's periodic ``gc.freeze()``) and its store's size every S seconds of the window; at the end it unfreezes and
collects once and reports how many objects were unreachable (garbage the freeze kept) and the RSS after that.

    .venv/bin/python benchmarks/fleet.py --count 5000 --test-mode --window 900 --sample-rss 60 --alone

Heartbeat phase: ``--heartbeat-phase`` counts the Heartbeats sent in each second of each minute of the window
(wall-clock second of the minute); ``--stall-at T --stall-s X`` blocks every fleet process's event loop for X s at
T s into the window (what a long collection or a starved CPU does), to show whether the Heartbeats that fell due
in the stall stay together afterwards (phase-locked) or spread out again.

    .venv/bin/python benchmarks/fleet.py --count 2000 --test-mode --window 240 --heartbeat-phase \
        --stall-at 60 --stall-s 5 --alone

Profile: ``--profile FILE`` runs cProfile in each fleet process over the steady window only (not the ramp) and
writes FILE (FILE.<shard> with ``--processes``); ``python -m pstats FILE``, then ``sort tottime``/``stats 30``.

    .venv/bin/python benchmarks/fleet.py --count 2000 --window 60 --alone --profile /tmp/fleet.prof

Side by side: ``--compare-sap DIR`` also runs the SAP e-mobility charging-stations simulator built in DIR (its
``dist/start.js``; see `benchmarks/sap_compare.py`) with the same workload against the same kind of central system
and prints per-station memory and CPU of both and the ratio; without DIR the comparison is skipped and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
from array import array
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# benchmarks/ is this script's directory (on sys.path when run as a script)
from sap_compare import cpu_seconds, process_tree, rss_mb_total

from backend_stub.store import CsmsStore
from simulator.fleet import CsmsProcess, Fleet, Ramp, raise_fd_limit
from simulator.metrics import Metrics, summary
from simulator.scenario import Scenario, load

SCENARIO = Path(__file__).resolve().parents[1] / "simulator" / "scenarios" / "benchmark.toml"


# The actions of the benchmark's workload, whose compiled schema checks the first agents build (once per process).
WORKLOAD_ACTIONS = {
    "1.6": (
        "BootNotification",
        "StatusNotification",
        "Heartbeat",
        "Authorize",
        "StartTransaction",
        "MeterValues",
    ),
    "2.0.1": ("BootNotification", "StatusNotification", "Heartbeat", "Authorize", "TransactionEvent"),
}


def preload(version: str) -> None:
    """Import the modules a fleet of ``version`` imports on its first connection, and compile the schema checks
    of its workload's messages (~1.4 MB once per process, not a cost per charger)."""
    import encodings.utf_8_sig  # noqa: F401  (read once by the first agent's config parsing)

    from chargepoint.csms.schemas import CALL, CALLRESULT, fast_check

    if version == "2.0.1":
        import chargepoint.csms.v201.adapter  # noqa: F401
    for action in WORKLOAD_ACTIONS[version]:
        for kind in (CALL, CALLRESULT):
            fast_check(kind, action, version)


def rss_mb(proc: psutil.Process) -> float:
    return float(proc.memory_info().rss) / 2**20


class PhaseMetrics(Metrics):
    """Fleet metrics that also keep the send instant (wall clock) of every Heartbeat answered while recording."""

    def __init__(self) -> None:
        super().__init__()
        self.recording = False
        self.heartbeats_sent = array("d")

    def observe(self, action: str, latency_s: float, error: str | None) -> None:
        """As Metrics.observe; a Heartbeat answered while recording also keeps its send instant."""
        super().observe(action, latency_s, error)
        if self.recording and error is None and action == "Heartbeat":
            self.heartbeats_sent.append(time.time() - latency_s)


def phase_histogram(sent: Any, start_wall: float) -> list[list[int]]:
    """Heartbeats per wall-clock second of the minute, one row of 60 per minute since ``start_wall``."""
    rows: list[list[int]] = []
    for t in sent:
        minute = int((t - start_wall) // 60)
        if minute < 0:
            continue
        while len(rows) <= minute:
            rows.append([0] * 60)
        rows[minute][int(t % 60)] += 1
    return rows


def phase_summary(rows: list[list[int]]) -> list[dict[str, Any]]:
    """Per minute: Heartbeats, the busiest second and its count, and the busiest second's share of the minute."""
    out = []
    for minute, row in enumerate(rows):
        total = sum(row)
        peak = max(range(60), key=row.__getitem__)
        out.append(
            {
                "minute": minute,
                "heartbeats": total,
                "busiest_second": peak,
                "busiest_count": row[peak],
                "mean_per_second": round(total / 60, 1),
                "busiest_share_pct": round(100 * row[peak] / total, 1) if total else 0.0,
            }
        )
    return out


def _db_mb(fleet: Fleet) -> float:
    """Size of the fleet's SQLite store (pages in use), in MB: an in-memory store lives in the RSS."""
    if fleet.store_file is None:
        return 0.0
    pages = fleet.store_file.db.execute("PRAGMA page_count").fetchone()[0]
    size = fleet.store_file.db.execute("PRAGMA page_size").fetchone()[0]
    return float(pages * size) / 2**20


async def steady_window(
    args: argparse.Namespace, fleet: Fleet, me: psutil.Process
) -> tuple[float, list[dict[str, Any]], float]:
    """Wait out the measured window, sampling RSS (``--sample-rss``) and stalling the loop once (``--stall-s``).

    Returns the window's wall seconds, the samples and the wall-clock instant of the stall (0 without one).
    """
    w0 = time.monotonic()
    end = w0 + args.window
    every = args.sample_rss or 0.0
    next_sample = w0 + every if every else float("inf")
    stall_due = w0 + args.stall_at if args.stall_s else float("inf")
    stall_wall = 0.0
    samples: list[dict[str, Any]] = []
    while (now := time.monotonic()) < end:
        if now >= stall_due:
            stall_due = float("inf")
            stall_wall = time.time()
            time.sleep(args.stall_s)  # noqa: ASYNC251 - the point: nothing else runs on this loop meanwhile
            continue
        if now >= next_sample:
            next_sample += every
            if args.trace_growth and not samples:
                tracemalloc.start(
                    args.trace_growth
                )  # from the first sample on: what is allocated and kept after it
            cpu = me.cpu_times()
            samples.append(
                {
                    "t_s": round(now - w0),
                    "rss_mb": round(rss_mb(me), 1),
                    "frozen_objects": gc.get_freeze_count(),
                    "cpu_s": round(cpu.user + cpu.system, 1),
                    "store_mb": round(_db_mb(fleet), 2),
                    # The latency samples (8 bytes per answered CALL up to metrics.SAMPLE_CAP per action).
                    "latency_samples_mb": round(
                        sum(len(v) for v in fleet.metrics.latency.values()) * 8 / 2**20, 2
                    ),
                }
            )
            continue
        await asyncio.sleep(max(0.0, min(end, next_sample, stall_due) - now))
    if tracemalloc.is_tracing() and args.trace_growth:
        snap = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = snap.statistics("traceback" if args.trace_growth > 1 else "lineno")
        # Still alive at the end of the window, allocated after the first sample: what grows, by place.
        samples.append({"growth_top": [_stat_line(st) for st in stats[:25]], "growth_total_kb": _kb(stats)})
    return time.monotonic() - w0, samples, stall_wall


def _kb(stats: list[tracemalloc.Statistic]) -> float:
    return round(sum(st.size for st in stats) / 1024, 1)


def _stat_line(st: tracemalloc.Statistic) -> str:
    frames = " <- ".join(f"{f.filename.split('/site-packages/')[-1]}:{f.lineno}" for f in st.traceback)
    return f"{st.size / 1024:.1f} KB in {st.count} blocks: {frames}"


def _seed(args: argparse.Namespace, scenario: Scenario) -> Path | None:
    """A fresh store with every charger of the run (no passwords) and the cards the benchmark swipes."""
    if args.test_mode:
        return None
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
    return db


def _scenario(args: argparse.Namespace) -> Scenario:
    base = load(SCENARIO).with_overrides(count=args.count)
    rate = 1e9 if args.storm else (args.connect_rate or base.fleet.connect_rate_per_s)
    return replace(base, fleet=replace(base.fleet, ocpp_version=args.version, connect_rate_per_s=rate))


async def _start_csms(args: argparse.Namespace, scenario: Scenario) -> tuple[CsmsProcess, tuple[str, ...]]:
    """The central system of the run and the URLs the chargers spread over (one per listening address)."""
    extra: list[str] = []
    hosts = [h for h in args.csms_hosts.split(",") if h] if args.csms_hosts else []
    if args.csms_workers > 1:
        extra += ["--workers", str(args.csms_workers)]
    if len(hosts) > 1:
        extra += ["--also-listen", ",".join(hosts[1:])]
    csms = CsmsProcess(_seed(args, scenario), heartbeat_interval_s=60, extra_args=tuple(extra))
    url = await csms.start()
    urls = (url, *(url.replace("//127.0.0.1:", f"//{h}:", 1) for h in hosts[1:]))
    return csms, urls


async def _wait_file(path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():  # noqa: ASYNC240 - one stat of a local file, polled
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout_s} s")
        await asyncio.sleep(0.2)


async def run_fleet(
    args: argparse.Namespace, scenario: Scenario, urls: tuple[str, ...], shard: int, shards: int
) -> dict[str, Any]:
    """Boot one shard of the fleet, start its sessions, measure the steady window: the fleet's own figures."""
    raise_fd_limit()
    me = psutil.Process()
    scenario = replace(scenario, fleet=replace(scenario.fleet, csms_urls=urls), spawn_csms=False)
    # What the first charger would import lazily is imported before the baseline: a one-off cost of the process
    # (the 2.0.1 adapter and ocpp.v201 are ~3 MB), not of any charger.
    preload(args.version)
    gc.collect()
    rss_before = rss_mb(me)
    traced_before = 0
    if args.tracemalloc:
        tracemalloc.start(1)
        traced_before = tracemalloc.get_traced_memory()[0]
    fleet = Fleet(scenario, work_dir=Path(args.work_dir) / f"shard-{shard}", shard=shard, shards=shards)
    metrics = fleet.metrics = PhaseMetrics()  # before start: the agents take its observe when they are built
    t0 = time.monotonic()
    await fleet.start()
    # Fleet.start waits up to 120 s; a large or stormy ramp may need longer (bounded by --ramp-timeout).
    deadline = t0 + args.ramp_timeout
    while time.monotonic() < deadline and not all(c.booted for c in fleet.chargers.values()):
        await asyncio.sleep(0.2)
    ramp_s = time.monotonic() - t0
    booted = sum(c.booted for c in fleet.chargers.values())
    links = [c.agent.link for c in fleet.chargers.values() if c.agent.link is not None]
    storm = {
        # The most chargers the ramp started in one turn of the loop (they boot, and heartbeat, together).
        "ramp_largest_batch": fleet.ramp.largest if fleet.ramp is not None else 0,
        # Failed connection attempts and closed sessions until every charger was up (a reset counts here).
        "connection_failures": sum(link.reconnects for link in links),
        "connections": sum(link.connections for link in links),
        "connection_failures_by_kind": _kinds(links),
        "boot_notifications_sent": fleet.metrics.calls.get("BootNotification", 0),
        "boot_errors": {
            k: v for k, v in fleet.metrics.errors_by_action.items() if k.startswith("BootNotification:")
        },
    }
    # On stderr at once: a long run cut short (a timeout) still tells how the ramp or the storm went.
    print(
        json.dumps({"shard": shard, "booted": booted, "ramp_s": round(ramp_s, 1), "storm": storm}),
        file=sys.stderr,
    )
    # 20 % of the connectors charge: plugged, then a card (the central system accepts it online).
    charging = [c for c in fleet.chargers.values() if c.index % 5 == 0]
    # Sessions start spread over 20 s, so their 10 s MeterValues timers are spread too (as in a real fleet;
    # starting them all at once makes every sample of the fleet leave in the same millisecond).
    # Planned like the fleet's own ramp: one sleep per session left the 100,000 run's processes (saturated CPU,
    # turns of several hundred ms) starting 3,333 sessions each for over 20 minutes, so no window was measured.
    spread_s = 20.0
    sessions = Ramp(len(charging), max(1, len(charging)) / spread_s)
    t_sessions = time.monotonic()
    while sessions.started < len(charging):
        first = sessions.started
        for charger in charging[first : first + sessions.due(time.monotonic() - t_sessions)]:
            fleet.plug(charger.id, 1, soc=0.1)
            fleet.swipe(charger.id, f"BENCH-{charger.index // 5:05d}", 1)
        await asyncio.sleep(sessions.gap_s)
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
    if args.barrier:
        # Every fleet process measures the same window: ready, then wait for the parent's go.
        barrier = Path(args.barrier)
        (barrier / f"ready-{shard}").touch()
        await _wait_file(barrier / "go", args.ramp_timeout + 600)
    # The steady window: fresh metrics.
    fleet.metrics.restart()
    metrics.recording = args.heartbeat_phase
    profiler = cProfile.Profile() if args.profile else None
    cpu0, wall0 = me.cpu_times(), time.time()
    if profiler is not None:
        profiler.enable()
    wall, rss_samples, stall_wall = await steady_window(args, fleet, me)
    if profiler is not None:
        profiler.disable()
    cpu1 = me.cpu_times()
    if profiler is not None:
        # One file per fleet process; read with `python -m pstats FILE`.
        path = Path(args.profile if shards == 1 else f"{args.profile}.{shard}")
        profiler.dump_stats(path)
    metrics.recording = False
    rss_end = rss_mb(me)
    # Held through the window: connected and booted at its end (a charger that lost its link is reconnecting).
    online_end = sum(1 for c in fleet.chargers.values() if c.agent.link is not None and c.agent.link.online)
    result: dict[str, Any] = {
        "chargers": len(fleet.chargers),
        "booted": booted,
        "online_end": online_end,
        "connections_end": sum(
            link.connections for c in fleet.chargers.values() if (link := c.agent.link) is not None
        ),
        "in_transaction": in_tx,
        "ramp_s": round(ramp_s, 1),
        "storm": storm,
        "window_s": round(wall, 1),
        "calls": dict(fleet.metrics.calls),
        "errors": dict(fleet.metrics.errors),
        "fleet_cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "rss_before_mb": round(rss_before, 1),
        "rss_loaded_mb": round(rss_loaded, 1),
        "rss_end_mb": round(rss_end, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "open_fds": len(os.listdir("/proc/self/fd")),
        "samples": {a: list(v) for a, v in fleet.metrics.latency.items()},
    }
    if args.tracemalloc:
        result["traced_kb"] = traced / 1024
        result["traced_top"] = top
    if args.heartbeat_phase:
        result["heartbeat_phase"] = phase_histogram(metrics.heartbeats_sent, wall0)
        result["stall_wall"] = stall_wall
        result["window_start_wall"] = wall0
    if args.sample_rss:
        if rss_samples and "growth_top" in rss_samples[-1]:
            result["growth"] = rss_samples.pop()
        result["rss_samples"] = rss_samples
        # What the periodic freeze kept: unfreeze and collect once (a full collection, after the window).
        gc.unfreeze()
        t = time.monotonic()
        result["frozen_garbage_objects"] = gc.collect()
        result["final_collection_s"] = round(time.monotonic() - t, 2)
        result["rss_after_collect_mb"] = round(rss_mb(me), 1)
    runner.cancel()
    await fleet.stop()
    await fleet.close()
    return result


def _kinds(links: list[Any]) -> dict[str, int]:
    """Failed connection attempts by kind over the fleet ("ConnectionResetError", "TimeoutError", "HTTP 503")."""
    out: dict[str, int] = {}
    for link in links:
        _add(out, link.failure_kinds or {})
    return out


def _add(into: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + value


def _report(
    args: argparse.Namespace, parts: list[dict[str, Any]], wall: float, csms: dict[str, float]
) -> dict[str, Any]:
    """One report from the fleet processes' figures (latency from every sample, memory and CPU summed)."""
    samples: dict[str, list[float]] = {}
    calls: dict[str, int] = {}
    errors: dict[str, int] = {}
    boot_errors: dict[str, int] = {}
    for part in parts:
        for action, values in part["samples"].items():
            samples.setdefault(action, []).extend(values)
        _add(calls, part["calls"])
        _add(errors, part["errors"])
        _add(boot_errors, part["storm"]["boot_errors"])
    every = [x for v in samples.values() for x in v]
    storm: dict[str, Any] = {
        key: sum(p["storm"][key] for p in parts)
        for key in ("connection_failures", "connections", "boot_notifications_sent")
    }
    storm["boot_errors"] = boot_errors
    storm["ramp_largest_batch"] = max(p["storm"].get("ramp_largest_batch", 0) for p in parts)
    kinds: dict[str, int] = {}
    for part in parts:
        _add(kinds, part["storm"]["connection_failures_by_kind"])
    storm["connection_failures_by_kind"] = kinds
    fleet_delta_mb = sum(p["rss_loaded_mb"] - p["rss_before_mb"] for p in parts)
    workers = f"test mode, {args.csms_workers} process(es)"
    result: dict[str, Any] = {
        "ocpp_version": args.version,
        "chargers": args.count,
        "processes": len(parts),
        "central_system": workers if args.test_mode else "serve --db (every message persisted)",
        "csms_addresses": len(args.csms_hosts.split(",")) if args.csms_hosts else 1,
        "booted": sum(p["booted"] for p in parts),
        "online_end": sum(p["online_end"] for p in parts),
        # Connections opened until the end of the window (one per charger if none was lost and reopened).
        "connections_end": sum(p["connections_end"] for p in parts),
        "in_transaction": sum(p["in_transaction"] for p in parts),
        "ramp_s": max(p["ramp_s"] for p in parts),
        "storm": storm,
        "window_s": round(wall, 1),
        "calls_per_s": round(sum(calls.values()) / wall, 1),
        "calls": calls,
        "errors": errors,
        "latency_ms": {a: summary(v) for a, v in sorted(samples.items())},
        "latency_all_ms": summary(every),
        "fleet_cpu_percent": round(100 * sum(p["fleet_cpu_s"] for p in parts) / wall, 1),
        "csms_cpu_percent": csms["cpu_percent"],
        "rss_before_mb": round(sum(p["rss_before_mb"] for p in parts), 1),
        "rss_loaded_mb": round(sum(p["rss_loaded_mb"] for p in parts), 1),
        "rss_end_mb": round(sum(p["rss_end_mb"] for p in parts), 1),
        "rss_per_charger_kb": round(fleet_delta_mb * 1024 / args.count, 1),
        "max_rss_mb": round(max(p["max_rss_mb"] for p in parts), 1),
        "csms_rss_mb": csms["rss_mb"],
        "open_fds": max(p["open_fds"] for p in parts),
    }
    if args.heartbeat_phase:
        rows: list[list[int]] = []
        for part in parts:
            for minute, row in enumerate(part["heartbeat_phase"]):
                while len(rows) <= minute:
                    rows.append([0] * 60)
                rows[minute] = [a + b for a, b in zip(rows[minute], row, strict=True)]
        result["heartbeat_phase"] = phase_summary(rows)
        result["heartbeat_phase_histogram"] = rows
        if args.stall_s:
            first = parts[0]
            result["stall"] = {
                "at_s": args.stall_at,
                "for_s": args.stall_s,
                "second_of_minute": int(first["stall_wall"] % 60),
                "minute": int((first["stall_wall"] - first["window_start_wall"]) // 60),
            }
    if args.sample_rss:
        merged = []
        for i, first in enumerate(parts[0]["rss_samples"]):
            row = dict(first)
            for key in ("rss_mb", "frozen_objects", "cpu_s", "store_mb", "latency_samples_mb"):
                row[key] = round(sum(p["rss_samples"][i][key] for p in parts if i < len(p["rss_samples"])), 2)
            row["rss_per_charger_kb"] = round(
                (row["rss_mb"] - result["rss_before_mb"]) * 1024 / args.count, 2
            )
            merged.append(row)
        result["rss_samples"] = merged
        result["frozen_garbage_objects"] = sum(p["frozen_garbage_objects"] for p in parts)
        result["final_collection_s"] = max(p["final_collection_s"] for p in parts)
        result["rss_after_collect_mb"] = round(sum(p["rss_after_collect_mb"] for p in parts), 1)
        if "growth" in parts[0]:
            result["growth"] = parts[0]["growth"]
    if args.tracemalloc:
        result["traced_per_charger_kb"] = round(sum(p["traced_kb"] for p in parts) / args.count, 1)
        result["traced_top"] = parts[0]["traced_top"]
    return result


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    """The whole run: central system, fleet (in this process or ``--processes`` children), one report."""
    # SIGTERM or SIGINT (ignored by default in a background job) cancels the run, so the cleanup below still stops
    # the central system and the fleet processes: none outlives an interrupted run.
    me = asyncio.current_task()
    assert me is not None
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, me.cancel)
    raise_fd_limit()
    scenario = _scenario(args)
    csms, urls = await _start_csms(args, scenario)
    assert csms.proc is not None
    server = process_tree(csms.proc.pid)
    try:
        if args.processes <= 1:
            scpu0, w0 = cpu_seconds(server), time.monotonic()
            part = await run_fleet(args, scenario, urls, 0, 1)
            # The central system's CPU over the whole run (ramp included): its share of the window alone is not
            # separable from here without a barrier, so the figure errs high.
            csms_figs = {
                "cpu_percent": round(100 * (cpu_seconds(server) - scpu0) / (time.monotonic() - w0), 1),
                "rss_mb": round(rss_mb_total(server), 1),
            }
            return _report(args, [part], part["window_s"], csms_figs)
        return await _bench_processes(args, urls, server)
    finally:
        await csms.stop()


async def _bench_processes(
    args: argparse.Namespace, urls: tuple[str, ...], server: list[psutil.Process]
) -> dict[str, Any]:
    """``--processes N``: N children run one shard each; the same window is measured in all of them."""
    barrier = Path(args.work_dir) / "barrier"
    barrier.mkdir(parents=True, exist_ok=True)
    for stale in barrier.iterdir():
        stale.unlink()
    children = []
    for shard in range(args.processes):
        argv = [
            sys.executable, __file__, "--count", str(args.count), "--window", str(args.window),
            "--version", args.version, "--work-dir", args.work_dir, "--ramp-timeout", str(args.ramp_timeout),
            "--shard", str(shard), "--shards", str(args.processes), "--csms-urls", ",".join(urls),
            "--barrier", str(barrier), "--alone",
        ]  # fmt: skip
        if args.storm:
            argv.append("--storm")
        if args.connect_rate:
            argv += ["--connect-rate", str(args.connect_rate)]
        if args.tracemalloc:
            argv.append("--tracemalloc")
        if args.heartbeat_phase:
            argv.append("--heartbeat-phase")
        if args.sample_rss:
            argv += ["--sample-rss", str(args.sample_rss), "--trace-growth", str(args.trace_growth)]
        if args.stall_s:
            argv += ["--stall-at", str(args.stall_at), "--stall-s", str(args.stall_s)]
        if args.profile:
            argv += ["--profile", args.profile]
        out = (barrier / f"result-{shard}.json").open("w")
        children.append((await asyncio.create_subprocess_exec(*argv, stdout=out), out))
    try:
        for shard in range(args.processes):
            await _wait_file(barrier / f"ready-{shard}", args.ramp_timeout + 600)
        fleet_procs = [psutil.Process(p.pid) for p, _ in children]
        scpu0, fcpu0, w0 = cpu_seconds(server), cpu_seconds(fleet_procs), time.monotonic()
        (barrier / "go").touch()
        await asyncio.sleep(args.window)
        scpu1, fcpu1, wall = cpu_seconds(server), cpu_seconds(fleet_procs), time.monotonic() - w0
        csms_figs = {
            "cpu_percent": round(100 * (scpu1 - scpu0) / wall, 1),
            "rss_mb": round(rss_mb_total(server), 1),
        }
        codes = [await p.wait() for p, _ in children]
    finally:
        for p, out in children:
            if p.returncode is None:
                p.terminate()
                await p.wait()
            out.close()
    if any(codes):
        raise SystemExit(f"a fleet process failed: exit codes {codes}")
    parts = [json.loads((barrier / f"result-{i}.json").read_text()) for i in range(args.processes)]
    report = _report(args, parts, wall, csms_figs)
    report["fleet_cpu_percent_measured_by_parent"] = round(100 * (fcpu1 - fcpu0) / wall, 1)
    return report


async def shard_main(args: argparse.Namespace) -> dict[str, Any]:
    """A child of ``--processes``: one shard against the parent's central system."""
    urls = tuple(args.csms_urls.split(","))
    return await run_fleet(args, _scenario(args), urls, args.shard, args.shards)


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
    parser.add_argument("--processes", type=int, default=1, help="fleet processes (shards of the chargers)")
    parser.add_argument(
        "--csms-workers", type=int, default=1, help="with --test-mode: central-system processes on one port"
    )
    parser.add_argument(
        "--csms-hosts",
        default="",
        help="loopback addresses the central system listens on, comma-separated, 127.0.0.1 first; the "
        "chargers spread over them round-robin",
    )
    parser.add_argument(
        "--connect-rate", type=float, default=0, help="connections/s (default: the scenario's)"
    )
    parser.add_argument("--storm", action="store_true", help="every charger of a process starts at once")
    parser.add_argument(
        "--sample-rss", type=float, default=0, metavar="S", help="sample RSS and frozen objects every S s"
    )
    parser.add_argument(
        "--trace-growth",
        type=int,
        default=0,
        metavar="FRAMES",
        help="with --sample-rss: trace allocations from the first sample on (FRAMES deep) and list what is still "
        "alive at the end of the window",
    )
    parser.add_argument(
        "--heartbeat-phase",
        action="store_true",
        help="Heartbeats sent per second of each minute of the window",
    )
    parser.add_argument("--stall-at", type=float, default=60, help="with --stall-s: seconds into the window")
    parser.add_argument(
        "--stall-s", type=float, default=0, help="block the fleet's event loop this long, once"
    )
    parser.add_argument(
        "--profile",
        default="",
        metavar="FILE",
        help="cProfile each fleet process over the window into FILE (FILE.<shard> with --processes); "
        "the figures are under the profiler's overhead, compare them only with each other",
    )
    parser.add_argument("--ramp-timeout", type=float, default=600, help="seconds to wait for every boot")
    parser.add_argument(
        "--compare-sap",
        metavar="DIR",
        nargs="?",
        const="",
        default=None,
        help="side by side with the SAP simulator built in DIR (or SAP_SIMULATOR_DIR); skipped without one",
    )
    parser.add_argument("--sap-counts", default="1000,2000", help="station counts of --compare-sap")
    parser.add_argument("--node", default=None, help="the Node >= 22 binary for --compare-sap")
    parser.add_argument("--shard", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--shards", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--csms-urls", default="", help=argparse.SUPPRESS)
    parser.add_argument("--barrier", default="", help=argparse.SUPPRESS)
    parser.add_argument(
        "--alone",
        action="store_true",
        help="only --version (else a 2.0.1 run measures 1.6 too, side by side)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.csms_workers > 1 and not args.test_mode:
        parser.error("--csms-workers needs --test-mode (workers of serve --db would not share connections)")
    if args.csms_urls:  # a child of --processes
        print(json.dumps(asyncio.run(shard_main(args))))
        return
    if args.compare_sap is not None:
        from sap_compare import compare_sap  # benchmarks/ is this script's directory

        compare_sap(args)
        return
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
