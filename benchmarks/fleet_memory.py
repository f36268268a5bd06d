"""Where a fleet charger's memory goes: tracemalloc by the innermost frame of our code, tasks and objects per charger.

Runs the benchmark scenario (one connector each, 20 % charging) against the bundled central system in test mode,
waits for the fleet to settle, then prints per charger: Python allocations grouped by the innermost frame in
``chargepoint/``, ``hardware/`` or ``simulator/`` (else by library file), live tasks by coroutine, and counts of
the object types that cost the most (Events, Futures, TimerHandles, dicts...).

    .venv/bin/python benchmarks/fleet_memory.py --count 500
    .venv/bin/python benchmarks/fleet_memory.py --count 500 --version 2.0.1
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import tracemalloc
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fleet import preload  # benchmarks/fleet.py, next to this script

from simulator.fleet import CsmsProcess, Fleet, raise_fd_limit
from simulator.scenario import load

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "simulator" / "scenarios" / "benchmark.toml"
OURS = tuple(str(ROOT / d) for d in ("chargepoint", "hardware", "simulator"))


def _where(traceback: tracemalloc.Traceback) -> str:
    frames = list(traceback)  # oldest call first
    for frame in reversed(frames):
        if frame.filename.startswith(OURS):
            return f"{Path(frame.filename).relative_to(ROOT)}:{frame.lineno}"
    last = frames[-1]
    return f"{Path(last.filename).name}:{last.lineno} (library)"


async def probe(args: argparse.Namespace) -> None:
    raise_fd_limit()
    base = load(SCENARIO).with_overrides(count=args.count)
    scenario = replace(base, fleet=replace(base.fleet, ocpp_version=args.version))
    csms = CsmsProcess(None, heartbeat_interval_s=60)
    url = await csms.start()
    scenario = scenario.with_overrides(csms_url=url, count=args.count)
    fleet = Fleet(scenario, work_dir=Path(args.work_dir))
    # What the first charger imports lazily (the 2.0.1 adapter and ocpp.v201, ~3 MB) is a one-off cost of the
    # process, not of a charger: imported before the first snapshot, as benchmarks/fleet.py does.
    preload(args.version)
    modules = set(sys.modules)
    tracemalloc.start(args.frames)
    gc.collect()
    before = tracemalloc.take_snapshot()
    await fleet.start()
    charging = [c for c in fleet.chargers.values() if c.index % 5 == 0]
    for n, charger in enumerate(charging):
        fleet.plug(charger.id, 1, soc=0.1)
        fleet.swipe(charger.id, f"BENCH-{n:05d}", 1)
        await asyncio.sleep(2.0 / len(charging))
    runner = asyncio.create_task(fleet.run(duration_s=3600))
    await asyncio.sleep(args.settle)
    gc.collect()
    after = tracemalloc.take_snapshot()
    n = args.count
    tracemalloc.stop()
    grouped: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for stat in after.compare_to(before, "traceback"):
        where = _where(stat.traceback)
        grouped[where] += stat.size_diff
        counts[where] += stat.count_diff
    inside: Counter[str] = Counter()
    if args.inside:
        for stat in after.compare_to(before, "traceback"):
            if _where(stat.traceback) == args.inside:
                last = stat.traceback[-1]
                inside[f"{Path(last.filename).name}:{last.lineno}"] += stat.size_diff
    total = sum(grouped.values())
    print(f"{args.version}: {n} chargers, traced {total / 1024 / n:.1f} KB per charger")
    print(f"{'where (innermost frame of ours)':70} {'B/charger':>10} {'blocks':>7}")
    for where, size in grouped.most_common(args.top):
        print(f"{where:70} {size / n:10.0f} {counts[where] / n:7.1f}")
    if inside:
        print(f"\ninside {args.inside}:")
        for where, size in inside.most_common(25):
            print(f"  {where:68} {size / n:10.0f}")
    print("\nmodules first imported while the fleet ran:", " ".join(sorted(set(sys.modules) - modules)))
    tasks = Counter(
        getattr(t.get_coro(), "__qualname__", "?")
        for t in asyncio.all_tasks()
        if t is not asyncio.current_task()
    )
    print(f"\ntasks per charger: {sum(tasks.values()) / n:.2f}")
    for name, c in tasks.most_common(20):
        print(f"  {c / n:6.2f} {name}")
    gc.unfreeze()  # the fleet froze what it built: frozen objects are not in gc.get_objects()
    types = Counter(type(o).__qualname__ for o in gc.get_objects())
    print("\nobjects per charger (gc-tracked):")
    for name in (
        "Event",
        "Future",
        "Task",
        "Lock",
        "Condition",
        "deque",
        "dict",
        "list",
        "function",
        "method",
    ):
        print(f"  {types.get(name, 0) / n:8.2f} {name}")
    handles = len(asyncio.get_running_loop()._scheduled)  # type: ignore[attr-defined]
    print(f"  {handles / n:8.2f} scheduled TimerHandle")
    sys.stdout.flush()
    runner.cancel()
    await csms.kill()  # the numbers are out: no clean shutdown of the fleet needed
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--version", choices=("1.6", "2.0.1"), default="1.6")
    parser.add_argument("--frames", type=int, default=16, help="tracemalloc frames kept per allocation")
    parser.add_argument("--settle", type=float, default=15.0, help="seconds run before the snapshot")
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument(
        "--inside", help="also break down this line of ours (file:line) by its innermost frame"
    )
    parser.add_argument("--work-dir", default="/tmp/fleet-memory")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(probe(args))


if __name__ == "__main__":
    main()
