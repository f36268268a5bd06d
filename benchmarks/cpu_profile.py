"""Where a fleet charger's CPU goes: CPU per CALL of the fleet process, then a cProfile of it.

Runs the benchmark scenario (one connector each, 20 % charging, MeterValues every 10 s, Heartbeat every
``--heartbeat-s``) against the bundled central system in test mode (a separate process, not measured), waits
for the fleet to settle, then

1. measures a window without the profiler: the fleet process's CPU time (every thread, ``time.process_time``)
   over the CALLs answered in it: **CPU per CALL**;
2. profiles a second window with cProfile and prints the top entries by cumulative and by own time, each also
   in microseconds per CALL of that window (the profiler inflates them; read them as shares).

    .venv/bin/python benchmarks/cpu_profile.py --count 2000
    .venv/bin/python benchmarks/cpu_profile.py --count 2000 --version 2.0.1
    .venv/bin/python benchmarks/cpu_profile.py --count 2000 --heartbeat-s 10 --dump /tmp/fleet.prof
    .venv/bin/python benchmarks/cpu_profile.py --count 2000 --charging-every 0 --heartbeat-s 10   # Heartbeats
    .venv/bin/python benchmarks/cpu_profile.py --groups-of /tmp/fleet.prof --per-call-us 820
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import logging
import os
import pstats
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from simulator.fleet import CsmsProcess, Fleet, raise_fd_limit
from simulator.scenario import load

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "simulator" / "scenarios" / "benchmark.toml"


def _calls(fleet: Fleet) -> int:
    return sum(fleet.metrics.calls.values())


async def _window(fleet: Fleet, seconds: float) -> tuple[float, float, float, int, dict[str, int]]:
    """CPU seconds of this process (user+system), its system share and its event loop's thread (the rest is the
    store's writer thread and executors), and the CALLs answered over ``seconds``."""
    before = dict(fleet.metrics.calls)
    calls0, t0, main0 = _calls(fleet), os.times(), time.thread_time()
    await asyncio.sleep(seconds)
    t1, main, calls = os.times(), time.thread_time() - main0, _calls(fleet) - calls0
    user, system = t1.user - t0.user, t1.system - t0.system
    by_action = {a: n - before.get(a, 0) for a, n in fleet.metrics.calls.items() if n - before.get(a, 0)}
    return user + system, system, main, calls, by_action


# Where a function's own time goes, by the file it is in (first match wins): the breakdown of a CALL's CPU.
GROUPS: tuple[tuple[str, str], ...] = (
    ("jsonschema", "schema validation (jsonschema, the ocpp package's validator)"),
    ("fastjsonschema", "schema validation (compiled checks)"),
    ("<string>", "schema validation (compiled checks)"),
    ("/chargepoint/csms/schemas.py", "schema validation (compiled checks)"),
    ("/ocpp/messages.py", "ocpp package messages (Call, to_json, validate_payload)"),
    ("/ocpp/", "ocpp package (other)"),
    ("/chargepoint/csms/rpc.py", "session: request, routing, heartbeat, statuses (rpc.py)"),
    ("/chargepoint/csms/transport.py", "WebSocket client (transport.py)"),
    ("/websockets/", "websockets framing (sans-I/O protocol)"),
    ("/chargepoint/csms/link.py", "link (link.py)"),
    ("/chargepoint/csms/outbox.py", "outbox sender (outbox.py)"),
    ("/chargepoint/csms/v16/", "1.6 adapter (message building)"),
    ("/chargepoint/csms/v201/", "2.0.1 adapter (message building)"),
    ("/chargepoint/csms/", "csms (other)"),
    ("/chargepoint/store.py", "store (SQLite, event loop side)"),
    ("sqlite3", "store (SQLite, event loop side)"),
    ("/chargepoint/core/scheduler.py", "core scheduler (duties, timers)"),
    ("/chargepoint/core/", "core (metering, sessions, ...)"),
    ("/hardware/", "simulated hardware twins"),
    ("/simulator/", "fleet harness (simulator/)"),
    ("/asyncio/", "asyncio event loop (tasks, futures, handles, selector)"),
    ("/json/", "json encode/decode"),
    ("_json", "json encode/decode"),
    ("/logging/", "logging"),
    ("epoll", "asyncio event loop (tasks, futures, handles, selector)"),
    ("_socket", "socket syscalls"),
)


def _group_of(filename: str, name: str) -> str:
    where = f"{filename}:{name}"
    for needle, group in GROUPS:
        if needle in where:
            return group
    return "other (builtins, contextvars, heapq, ...)"


def _print_groups(profile: cProfile.Profile | str, main_per_call_us: float) -> None:
    """Own time by group, as shares of the profile and scaled to the unprofiled main-thread CPU per CALL."""
    stats = pstats.Stats(profile)
    own: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, tt, _ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
        if filename == "~" and callers and "epoll" not in name and "_socket" not in name:
            # A builtin (isinstance, dict.get, Context.run, heappush...) counts for whoever called it, in
            # proportion to the time each caller spent in it.
            spent = sum(caller[3] for caller in callers.values()) or 1.0
            for (cfile, _cline, cname), caller in callers.items():
                group = _group_of(cfile, cname)
                own[group] = own.get(group, 0.0) + tt * caller[3] / spent
            continue
        group = _group_of(filename, name)
        own[group] = own.get(group, 0.0) + tt
    total = sum(own.values()) or 1.0
    print(
        f"\n--- own time by group (share of the profile; x {main_per_call_us:.0f} us of event-loop CPU per CALL) ---"
    )
    for group, seconds in sorted(own.items(), key=lambda kv: -kv[1]):
        share = seconds / total
        print(f"  {share * 100:5.1f} %  {share * main_per_call_us:6.0f} us/CALL  {group}")


def _print_stats(profile: cProfile.Profile, sort: str, top: int, calls: int) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(top)
    print(f"\n--- top {top} by {sort} (tottime/cumtime in s over the profiled window; per CALL below) ---")
    print(out.getvalue().split("\n", 4)[-1].rstrip())
    print(f"\n  {'us/CALL':>8} {sort} of")
    rows = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda kv: kv[1][3] if sort == "cumulative" else kv[1][2],
        reverse=True,
    )
    for (filename, line, name), (_cc, _nc, tt, ct, _callers) in rows[:top]:
        value = ct if sort == "cumulative" else tt
        print(f"  {value / max(calls, 1) * 1e6:8.1f} {Path(filename).name}:{line}({name})")


async def probe(args: argparse.Namespace) -> None:
    raise_fd_limit()
    base = load(SCENARIO).with_overrides(count=args.count)
    scenario = replace(base, fleet=replace(base.fleet, ocpp_version=args.version))
    csms = CsmsProcess(None, heartbeat_interval_s=args.heartbeat_s)
    url = await csms.start()
    scenario = scenario.with_overrides(csms_url=url, count=args.count)
    fleet = Fleet(scenario, work_dir=Path(args.work_dir))
    try:
        await fleet.start()
        every = args.charging_every
        charging = [c for c in fleet.chargers.values() if every and c.index % every == 0]
        for n, charger in enumerate(charging):
            fleet.plug(charger.id, 1, soc=0.1)
            fleet.swipe(charger.id, f"BENCH-{n:05d}", 1)
            await asyncio.sleep(2.0 / len(charging))
        runner = asyncio.create_task(fleet.run(duration_s=3600))
        await asyncio.sleep(args.settle)
        gc.collect()
        cpu, system, main, calls, by_action = await _window(fleet, args.window)
        per_call = cpu / max(calls, 1) * 1e3
        print(
            f"{args.version}: {args.count} chargers, {args.window:g} s window, {calls} CALLs "
            f"({calls / args.window:.1f}/s: {by_action}), fleet process CPU {cpu:.2f} s "
            f"({cpu / args.window * 100:.1f} % of a core): **{per_call:.3f} ms per CALL** "
            f"(of which system {system / max(calls, 1) * 1e3:.3f} ms; the event loop's thread "
            f"{main / max(calls, 1) * 1e3:.3f} ms, other threads {(cpu - main) / max(calls, 1) * 1e3:.3f} ms)"
        )
        if args.profile_window > 0:
            # CPU time of this thread, not wall clock: a syscall that waits or a descheduled turn is not cost.
            profile = cProfile.Profile(time.thread_time) if args.cpu_timer else cProfile.Profile()
            profile.enable()
            pcpu, _system, _main, pcalls, _ = await _window(fleet, args.profile_window)
            profile.disable()
            print(
                f"profiled window: {args.profile_window:g} s, {pcalls} CALLs, {pcpu / max(pcalls, 1) * 1e3:.3f} ms "
                "per CALL under the profiler"
            )
            if args.dump:
                profile.dump_stats(args.dump)
            _print_groups(profile, main / max(calls, 1) * 1e6)
            _print_stats(profile, "cumulative", args.top, pcalls)
            _print_stats(profile, "tottime", args.top, pcalls)
        sys.stdout.flush()
        runner.cancel()
    finally:
        await csms.kill()  # the numbers are out: no clean shutdown of the fleet needed
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--version", choices=("1.6", "2.0.1"), default="1.6")
    parser.add_argument("--heartbeat-s", type=int, default=60, help="the central system's HeartbeatInterval")
    parser.add_argument(
        "--charging-every", type=int, default=5, help="every N-th charger charges (5: 20 %%; 0: none charges)"
    )
    parser.add_argument("--settle", type=float, default=15.0, help="seconds run before the windows")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured without the profiler")
    parser.add_argument("--profile-window", type=float, default=30.0, help="seconds profiled (0: none)")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument(
        "--wall-timer", dest="cpu_timer", action="store_false", help="profile wall clock, not thread CPU time"
    )
    parser.add_argument("--dump", help="also write the profile (pstats) to this file")
    parser.add_argument("--work-dir", default="/tmp/fleet-cpu-profile")
    parser.add_argument(
        "--groups-of",
        metavar="DUMP",
        help="only print the groups of a profile written by --dump (scaled by --per-call-us)",
    )
    parser.add_argument("--per-call-us", type=float, default=1.0)
    args = parser.parse_args()
    if args.groups_of:
        _print_groups(args.groups_of, args.per_call_us)
        return
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(probe(args))


if __name__ == "__main__":
    main()
