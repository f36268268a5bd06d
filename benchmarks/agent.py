"""Agent benchmark: idle RSS, cold start to BootNotification, swipe-to-relay-closed latency (local list, online),
and unplug-to-relay-open latency while a central system floods the charger with CALLs.

Run: ``.venv/bin/python benchmarks/agent.py [--swipes N]``; only the flood:
``.venv/bin/python benchmarks/agent.py --only-flood [--trials 20] [--calls 20000] [--slow-fsync-us 5000]``;
``--slow-fsync-us`` makes every fsync take that much longer (an LD_PRELOAD shim built with gcc), like the SD card
of a Raspberry Pi, where the virtual disk here syncs in ~0.2 ms. Prints the numbers; docs/benchmarks.md records
them. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend_stub.process import start_csms_process
from backend_stub.store import CsmsStore
from chargepoint.agent import Agent
from chargepoint.config import parse
from chargepoint.core.model import AuthStatus, IdTagInfo

CONFIG = """\
[station]
id = "BENCH-CP"

[csms]
url = "{url}"
ocpp_versions = ["{version}"]

[storage]
path = "{db}"
"""

CONNECTOR = """
[[connectors]]
id = 1
relay = { driver = "sim" }
meter = { driver = "sim" }
plug = { driver = "sim" }
reader = { driver = "sim" }
"""


SLOW_FSYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
static void slow(void) {
    const char *e = getenv("SLOW_FSYNC_US");
    long us = e ? atol(e) : 0;
    struct timespec t = {us / 1000000, (us % 1000000) * 1000};
    nanosleep(&t, 0);
}
int fsync(int fd) { static int (*f)(int); if (!f) f = dlsym(RTLD_NEXT, "fsync"); slow(); return f(fd); }
int fdatasync(int fd) { static int (*f)(int); if (!f) f = dlsym(RTLD_NEXT, "fdatasync"); slow(); return f(fd); }
"""


def reexec_with_slow_fsync(us: int) -> None:
    """Run this benchmark again with every fsync slowed down by ``us`` microseconds."""
    if os.environ.get("SLOW_FSYNC_US"):
        return
    gcc = shutil.which("gcc")
    if gcc is None:
        raise SystemExit("--slow-fsync-us needs gcc")
    build = Path(tempfile.mkdtemp())
    (build / "slowfsync.c").write_text(SLOW_FSYNC_C)
    subprocess.run(
        [
            gcc,
            "-shared",
            "-fPIC",
            "-O2",
            "-o",
            str(build / "slowfsync.so"),
            str(build / "slowfsync.c"),
            "-ldl",
        ],
        check=True,
    )
    env = dict(os.environ, LD_PRELOAD=str(build / "slowfsync.so"), SLOW_FSYNC_US=str(us))
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def rss_kb(pid: int) -> int:
    """Resident set size of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


async def seeded_csms(tmp: Path, swipes: int) -> tuple[asyncio.subprocess.Process, str, Path]:
    """The bundled central system on a store (it speaks 1.6 and 2.0.1): the bench chargers and every card known."""
    db = tmp / f"csms-{swipes}.db"  # a store per card count: each knows every card its caller swipes
    if not db.exists():
        with CsmsStore(db) as store:
            for cp in ("BENCH-CP", "BENCH-LAT"):
                store.add_charger(cp)
            user = store.add_user("Bench")
            for tag in ("LOCALTAG", *(f"ONLINE{i}" for i in range(swipes))):
                store.add_card(tag, user_id=user.id)
    proc, url = await start_csms_process(db=db)
    return proc, url, db


async def booted_at(db: Path, cp_id: str) -> Any:
    """The central system's record of the charger's last boot."""
    with CsmsStore(db) as store:
        charger = store.charger(cp_id)
    return charger.last_boot if charger else None


async def cold_start_and_rss(tmp: Path, runs: int, version: str = "1.6") -> tuple[list[float], int]:
    """Spawn the agent process ``runs`` times against the bundled central system: time until the CSMS recorded its
    BootNotification; RSS when idle."""
    csms, url, db = await seeded_csms(tmp, 0)
    times, rss = [], 0
    try:
        for i in range(runs):
            config = tmp / f"cold{version}-{i}.toml"
            config.write_text(
                CONFIG.format(url=url, db=tmp / f"cold{version}-{i}.db", version=version) + CONNECTOR
            )
            before = await booted_at(db, "BENCH-CP")
            t0 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "chargepoint",
                "run",
                "--config",
                str(config),
                "--log-level",
                "WARNING",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            while await booted_at(db, "BENCH-CP") == before:  # polled every 5 ms: that much resolution
                await asyncio.sleep(0.005)
            times.append(time.perf_counter() - t0)
            if i == runs - 1:
                await asyncio.sleep(5)  # idle: booted, statuses sent, loops running
                rss = rss_kb(proc.pid)
            proc.terminate()
            await proc.wait()
    finally:
        csms.terminate()
        await csms.wait()
    return times, rss


async def swipe_latency(tmp: Path, swipes: int, version: str = "1.6") -> dict[str, Any]:
    """Swipe-to-relay-closed with a local-list id and with an online Authorize, against a CSMS process."""
    csms, url, _ = await seeded_csms(tmp, swipes)
    config = parse(
        {
            "station": {"id": "BENCH-LAT"},
            "csms": {"url": url, "ocpp_versions": [version]},
            "storage": {"path": str(tmp / f"lat{version}.db")},
            "settings": {"local_pre_authorize": True, "authorization_cache_enabled": False},
            "connectors": [
                {
                    "id": 1,
                    "relay": {"driver": "sim"},
                    "meter": {"driver": "sim"},
                    "plug": {"driver": "sim"},
                    "reader": {"driver": "sim"},
                }
            ],
        }
    )
    agent = Agent(config)
    task = asyncio.create_task(agent.run())
    try:
        while agent.link is None or not agent.link.online:
            await asyncio.sleep(0.01)
        station = agent.station
        assert station is not None
        station.update_local_list(1, True, {"LOCALTAG": IdTagInfo(AuthStatus.ACCEPTED)})
        sim = agent.sims[1]
        assert sim.plug and sim.reader and sim.relay
        sim.plug.set_plugged(True)
        results: dict[str, list[float]] = {"local": [], "online": [], "rtt": []}
        for i in range(swipes):
            for kind, tag in (("local", "LOCALTAG"), ("online", f"ONLINE{i}")):
                t0 = time.perf_counter()
                sim.reader.swipe(tag)
                while not sim.relay.closed:
                    await asyncio.sleep(0)
                results[kind].append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.05)
                sim.reader.swipe(tag)  # stop
                while station.connectors[1].transaction is not None:
                    await asyncio.sleep(0.001)
                while agent.link.store.outbox_size():
                    await asyncio.sleep(0.005)
            session: Any = agent.link.session
            t0 = time.perf_counter()
            await session.request("Heartbeat", {})
            results["rtt"].append((time.perf_counter() - t0) * 1000)
        return results
    finally:
        agent.shutdown()
        await task
        csms.terminate()
        await csms.wait()


async def relay_open_during_flood(tmp: Path, trials: int, calls: int) -> dict[str, Any]:
    """Unplug-to-relay-open while benchmarks/flood_csms.py (its own process) sends ``calls`` ChangeConfiguration
    CALLs at once. The unplug comes from another thread, so a busy event loop delays the measured time too."""
    csms = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("flood_csms.py")),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert csms.stdin is not None and csms.stdout is not None
    url = (await csms.stdout.readline()).decode().strip()
    config = parse(
        {
            "station": {"id": "BENCH-FLOOD"},
            "csms": {"url": url},
            "storage": {"path": str(tmp / "flood.db")},  # a real disk: /tmp here is ext4, fsync costs
            "settings": {"local_pre_authorize": True, "authorization_cache_enabled": False},
            "connectors": [
                {
                    "id": 1,
                    "relay": {"driver": "sim"},
                    "meter": {"driver": "sim"},
                    "plug": {"driver": "sim"},
                    "reader": {"driver": "sim"},
                }
            ],
        }
    )
    agent = Agent(config)
    task = asyncio.create_task(agent.run())
    loop = asyncio.get_running_loop()
    out: dict[str, Any] = {"latency_ms": [], "answers": [], "stall_ms": [], "burst_s": [], "into_burst_s": []}
    rng = random.Random(10)
    stalls: list[float] = []

    async def ticker() -> None:
        # How late a 5 ms sleep wakes up: the longest the event loop was kept from everything else.
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.005)
            stalls.append((time.perf_counter() - t0 - 0.005) * 1000)

    tick = asyncio.create_task(ticker())
    try:
        while agent.link is None or not agent.link.online:
            await asyncio.sleep(0.01)
        station = agent.station
        assert station is not None
        result = station.update_local_list(1, True, {"LOCALTAG": IdTagInfo(AuthStatus.ACCEPTED)})
        if asyncio.iscoroutine(result):
            await result
        sim = agent.sims[1]
        assert sim.plug and sim.reader and sim.relay
        relay, plug = sim.relay, sim.plug
        opened = asyncio.Event()
        opened_at: list[float] = []
        original_open = relay.open

        async def timed_open() -> None:
            was_closed = relay.closed
            await original_open()
            if was_closed:
                opened_at.append(time.perf_counter())
                opened.set()

        relay.open = timed_open  # type: ignore[method-assign]
        for _ in range(trials):
            plug.set_plugged(True)
            sim.reader.swipe("LOCALTAG")
            while not relay.closed:
                await asyncio.sleep(0.01)
            opened.clear()
            stalls.clear()
            unplugged_at: list[float] = []
            # The unplug comes from another thread on its own clock, somewhere in the burst (the flooding process
            # needs ~1 s just to send 20,000 frames): a stalled event loop can neither delay nor dodge it.
            delay_s = 0.1 + rng.uniform(0.02, 1.0)

            def unplug(unplugged_at: list[float] = unplugged_at, delay_s: float = delay_s) -> None:
                time.sleep(delay_s)
                unplugged_at.append(time.perf_counter())
                loop.call_soon_threadsafe(plug.set_plugged, False)

            burst_started = time.perf_counter()
            threading.Thread(target=unplug).start()
            csms.stdin.write(f"flood {calls}\n".encode())
            await csms.stdin.drain()
            assert (await csms.stdout.readline()).strip() == b"started"
            await opened.wait()
            out["latency_ms"].append((opened_at[-1] - unplugged_at[0]) * 1000)
            out["into_burst_s"].append(unplugged_at[0] - burst_started)
            done = (await csms.stdout.readline()).decode().split()
            out["answers"].append(tuple(int(x) for x in done[1:4]))
            out["burst_s"].append(float(done[4]))
            out["stall_ms"].append(max(stalls, default=0.0))
            while station.connectors[1].transaction is not None or agent.link.store.outbox_size():
                await asyncio.sleep(0.01)
        return out
    finally:
        tick.cancel()
        agent.shutdown()
        await task
        csms.stdin.close()
        csms.terminate()
        await csms.wait()


async def compare_versions(tmp: Path, args: argparse.Namespace) -> None:
    """Idle RSS, cold start and swipe-to-relay of 1.6 and ``args.version`` in one run, side by side."""
    rows: dict[str, list[float]] = {}
    for version in ("1.6", args.version):
        times, rss = await cold_start_and_rss(tmp, args.cold_runs, version)
        lat = await swipe_latency(tmp, args.swipes, version)
        for name, value in (
            ("idle RSS (MB; target <= 45)", rss / 1024),
            ("cold start to BootNotification, median (ms)", statistics.median(times) * 1000),
            ("swipe-to-relay local id, p50 (ms)", pct(lat["local"], 50)),
            ("swipe-to-relay local id, p95 (ms; target max <= 50)", pct(lat["local"], 95)),
            ("swipe-to-relay local id, max (ms)", max(lat["local"])),
            ("swipe-to-relay online, p50 (ms)", pct(lat["online"], 50)),
            ("Heartbeat round trip, p50 (ms)", pct(lat["rtt"], 50)),
        ):
            rows.setdefault(name, []).append(value)
    print(f"{'':52} {'1.6':>8} {args.version:>8} {'ratio':>6}")
    for name, (old, new) in rows.items():
        print(f"{name:52} {old:8.1f} {new:8.1f} {new / old if old else float('nan'):6.2f}")


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--swipes", type=int, default=30)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--trials", type=int, default=20, help="flood trials")
    parser.add_argument("--calls", type=int, default=20_000, help="CALLs per flood")
    parser.add_argument("--only-flood", action="store_true")
    parser.add_argument(
        "--version",
        choices=("1.6", "2.0.1"),
        default="1.6",
        help="2.0.1: idle RSS, cold start and swipe-to-relay for 2.0.1 next to 1.6 (no flood: it speaks 1.6)",
    )
    parser.add_argument("--slow-fsync-us", type=int, default=0, help="add this much to every fsync")
    args = parser.parse_args()
    if args.slow_fsync_us:
        reexec_with_slow_fsync(args.slow_fsync_us)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}")
    if os.environ.get("SLOW_FSYNC_US"):
        print(f"every fsync slowed down by {os.environ['SLOW_FSYNC_US']} us")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        if args.version != "1.6":
            await compare_versions(tmp, args)
            return
        flood = await relay_open_during_flood(tmp, args.trials, args.calls)
        v = flood["latency_ms"]
        print(
            f"unplug-to-relay-open during a {args.calls}-call burst: p50 {pct(v, 50):.1f} ms, "
            f"p99 {pct(v, 99):.1f} ms, max {max(v):.1f} ms ({len(v)} trials; target p99 <= 100 ms)"
        )
        answered = [a for a, _, _ in flood["answers"]]
        results = [r for _, r, _ in flood["answers"]]
        print(
            f"  CALLs answered per burst: min {min(answered)} of {args.calls}; CALLRESULTs per burst: "
            f"median {statistics.median(results):.0f} (the rest CallErrors)"
        )
        s = flood["stall_ms"]
        print(f"  longest event-loop stall per burst: p50 {pct(s, 50):.1f} ms, max {max(s):.1f} ms")
        b, u = flood["burst_s"], flood["into_burst_s"]
        print(
            f"  burst until every CALL was answered: median {statistics.median(b):.1f} s; unplug at "
            f"{min(u):.2f}-{max(u):.2f} s into it"
        )
        if args.only_flood:
            return
        times, rss = await cold_start_and_rss(tmp, args.cold_runs)
        print(f"idle RSS: {rss / 1024:.1f} MB (target <= 45 MB)")
        print(
            f"cold start to BootNotification received: median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, {len(times)} runs)"
        )
        lat = await swipe_latency(tmp, args.swipes)
        rtt = statistics.median(lat["rtt"])
        for kind, target in (("local", "<= 50 ms"), ("online", f"<= RTT + 20 ms = {rtt + 20:.1f} ms")):
            v = lat[kind]
            print(
                f"swipe-to-relay, {kind:6}: p50 {pct(v, 50):.1f} ms, p95 {pct(v, 95):.1f} ms, "
                f"max {max(v):.1f} ms ({len(v)} swipes; target {target})"
            )
        print(f"Heartbeat round trip: p50 {rtt:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
