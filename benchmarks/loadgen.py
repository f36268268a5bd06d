"""Load-generator benchmark: (1) OCPP calls/s one Locust process generates on one core, (2) the capacity of the
bundled central system under the `steady` shape (the most chargers with p99 <= 100 ms and no failures).

Run: ``.venv/bin/python benchmarks/loadgen.py`` (about 6 minutes; ``--only generator|capacity`` for one part).
Everything listens on 127.0.0.1. The Locust process is pinned to CPU 0 and the server to CPU 1, so each part
measures one core against one core.

(1) The endpoint is a minimal OCPP-J answerer (canned CALLRESULTs, no validation, websockets on asyncio), so the
generator is the side that saturates; the result is also given per CPU-second of the Locust process.
(2) The central system is ``python -m backend_stub serve --db`` on a store seeded by ``python -m loadtests
seed --no-passwords`` (scrypt at the first connection of each charger would otherwise dominate the ramp); the
latency is the steady state after the ramp (``--reset-stats``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
CANNED: dict[str, dict[str, Any]] = {
    "BootNotification": {"status": "Accepted", "currentTime": "2026-01-01T00:00:00.000Z", "interval": 300},
    "Heartbeat": {"currentTime": "2026-01-01T00:00:00.000Z"},
    "Authorize": {"idTagInfo": {"status": "Accepted"}},
    "StartTransaction": {"transactionId": 1, "idTagInfo": {"status": "Accepted"}},
    "StopTransaction": {},
    "MeterValues": {},
    "StatusNotification": {},
}


async def _echo_server(port_file: Path) -> None:
    """The minimal endpoint: answer every CALL with a canned CALLRESULT."""
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.typing import Subprotocol

    async def handler(ws: ServerConnection) -> None:
        try:
            async for text in ws:
                msg = json.loads(text)
                if msg[0] == 2:
                    await ws.send(json.dumps([3, msg[1], CANNED.get(msg[2], {})], separators=(",", ":")))
        except Exception:
            return

    async with serve(
        handler, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")], compression=None, backlog=4096
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        port_file.write_text(str(port))  # noqa: ASYNC240  # once, before serving
        await asyncio.Future()


def _pin(cpu: int) -> None:
    try:
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})
    except (AttributeError, OSError):
        pass


def run_locust(args: list[str], cwd: Path, cpu: int, limit_s: float) -> tuple[int, float, str]:
    """Run Locust pinned to `cpu`; returns its exit code, CPU seconds (user + system) and output."""
    log_path = cwd / "locust.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args],
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: _pin(cpu),
        )
        deadline = time.monotonic() + limit_s
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
            time.sleep(0.2)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_utime + usage.ru_stime, log_path.read_text(errors="replace")


def aggregated(prefix: Path) -> dict[str, str]:
    """The Aggregated row of Locust's stats CSV."""
    with open(f"{prefix}_stats.csv", newline="") as f:
        return next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")


def generator(seconds: int, users: int) -> None:
    """Part 1: calls/s of one Locust process against the minimal endpoint."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port_file = work / "port"
        server = subprocess.Popen(
            [sys.executable, __file__, "--echo-server", str(port_file)], preexec_fn=lambda: _pin(1)
        )
        try:
            for _ in range(100):
                if port_file.exists() and port_file.read_text():
                    break
                time.sleep(0.1)
            url = f"ws://127.0.0.1:{port_file.read_text()}/ocpp"
            for validation in (True, False):
                prefix = work / f"gen{validation}"
                args = [
                    "--headless",
                    "--host",
                    url,
                    "-u",
                    str(users),
                    "-r",
                    str(users),
                    "-t",
                    f"{seconds}s",
                    "--ocpp-shape",
                    "transaction-heavy",
                    "--ocpp-speed",
                    "10000",  # no think time: sessions back to back, MeterValues every millisecond
                    "--csv",
                    str(prefix),
                ]
                if not validation:
                    args.append("--ocpp-no-validation")
                code, cpu_s, _ = run_locust(args, work, 0, seconds + 30)
                row = aggregated(prefix)
                requests, failures = int(row["Request Count"]), int(row["Failure Count"])
                rate = float(row["Requests/s"])
                print(
                    f"generator ({'validation on' if validation else '--ocpp-no-validation'}): {users} users, "
                    f"{requests} calls in {seconds} s = {rate:.0f} calls/s, {failures} failures; Locust CPU "
                    f"{cpu_s:.1f} s = {cpu_s / seconds * 100:.0f}% of a core -> {requests / cpu_s:.0f} calls per "
                    f"CPU-second; p50 {row['50%']} ms, p99 {row['99%']} ms (exit {code})",
                    flush=True,
                )
        finally:
            server.terminate()
            server.wait()


def capacity(steps: list[int], seconds: int, speed: float) -> None:
    """Part 2: step the charger count of the `steady` shape until p99 > 100 ms or a failure."""
    from backend_stub.process import start_csms_process

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db, creds = work / "csms.db", work / "creds.csv"
        subprocess.run(
            [
                *(sys.executable, "-m", "loadtests", "seed", "--db", str(db)),
                *("--chargers", str(max(steps)), "--cards", str(max(steps))),
                *("--out", str(creds), "--no-passwords"),
            ],
            check=True,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )

        async def start() -> tuple[asyncio.subprocess.Process, str]:
            return await start_csms_process(db=db)

        loop = asyncio.new_event_loop()
        proc, url = loop.run_until_complete(start())
        try:
            os.sched_setaffinity(proc.pid, {1 % (os.cpu_count() or 1)})
        except (AttributeError, OSError):
            pass
        best = 0
        try:
            for users in steps:
                prefix = work / f"cap{users}"
                rate = max(users / 10, 1)  # 10 s ramp
                _, cpu_s, _ = run_locust(
                    [
                        "--headless",
                        "--host",
                        url,
                        "-u",
                        str(users),
                        "-r",
                        f"{rate:g}",
                        "-t",
                        f"{seconds}s",
                        "--reset-stats",
                        "--ocpp-shape",
                        "steady",
                        "--ocpp-speed",
                        f"{speed:g}",
                        "--ocpp-credentials",
                        str(creds),
                        "--ocpp-metrics-json",
                        str(work / f"metrics{users}.json"),
                        "--csv",
                        str(prefix),
                    ],
                    work,
                    0,
                    seconds + 60,
                )
                row = aggregated(prefix)
                metrics = json.loads((work / f"metrics{users}.json").read_text())
                p99 = float(row["99%"]) if row["99%"] != "N/A" else 0.0
                failures = int(row["Failure Count"]) + metrics["connect_failures"] + metrics["reconnects"]
                ok = p99 <= 100 and failures == 0 and metrics["connections_held_max"] == users
                print(
                    f"capacity steady x{speed:g}: {users} chargers held {metrics['connections_held_max']}, "
                    f"{row['Requests/s']} calls/s after the ramp, p50 {row['50%']} ms, p95 {row['95%']} ms, "
                    f"p99 {row['99%']} ms, max {float(row['Max Response Time']):.0f} ms, failures {failures}, "
                    f"Locust CPU {cpu_s / seconds * 100:.0f}% -> {'ok' if ok else 'over'}",
                    flush=True,
                )
                if not ok:
                    break
                best = users
        finally:
            proc.terminate()
            loop.run_until_complete(proc.wait())
            loop.close()
        print(
            f"capacity: {best} chargers with p99 <= 100 ms and no failures (steady, speed {speed:g})",
            flush=True,
        )


def storm(users: int, seconds: int) -> None:
    """Part 3: the `boot-storm` shape against the bundled central system (its boot-storm gate on, the default).

    Every charger connects and boots at once. The gate answers some BootNotifications Pending with a retry
    interval; Locust counts those as failures of BootNotification ("status Pending"), so they are reported apart
    from real failures (connections refused or reset, CallErrors, timeouts).
    """
    from backend_stub.process import start_csms_process

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        db, creds = work / "csms.db", work / "creds.csv"
        subprocess.run(
            [
                *(sys.executable, "-m", "loadtests", "seed", "--db", str(db)),
                *("--chargers", str(users), "--cards", str(users)),
                *("--out", str(creds), "--no-passwords"),
            ],
            check=True,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
        )
        loop = asyncio.new_event_loop()
        proc, url = loop.run_until_complete(
            start_csms_process(db=db, extra_args=["--heartbeat-interval", "300"])
        )
        try:
            prefix = work / "storm"
            run_locust(
                [
                    *("--headless", "--host", url, "-u", str(users), "-t", f"{seconds}s"),
                    *("--ocpp-shape", "boot-storm", "--ocpp-credentials", str(creds)),
                    *("--ocpp-metrics-json", str(work / "metrics.json"), "--csv", str(prefix)),
                ],
                work,
                0,
                seconds + 120,
            )
            metrics = json.loads((work / "metrics.json").read_text())
            pending = other = 0
            with open(f"{prefix}_failures.csv", newline="") as f:
                for row in csv.DictReader(f):
                    n = int(row["Occurrences"])
                    if row["Name"] == "BootNotification" and "Pending" in row["Error"]:
                        pending += n
                    else:
                        other += n
            counters = metrics.get("counters", metrics)
            print(
                f"boot storm: {users} chargers at once against serve --db for {seconds} s: "
                f"{counters.get('boots')} boots accepted, {pending} answered Pending first, "
                f"{counters.get('connect_failures')} connection failures, {counters.get('reconnects')} reconnects, "
                f"{other} other failures; held {metrics.get('connections_held_max')}",
                flush=True,
            )
        finally:
            proc.terminate()
            loop.run_until_complete(proc.wait())
            loop.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--echo-server", metavar="PORT_FILE", help=argparse.SUPPRESS)
    parser.add_argument("--only", choices=["generator", "capacity", "storm"])
    parser.add_argument("--storm-users", type=int, default=2000, help="chargers of the boot-storm part")
    parser.add_argument("--seconds", type=int, default=30, help="length of each Locust run (default 30)")
    parser.add_argument("--generator-users", type=int, default=100)
    parser.add_argument("--speed", type=float, default=60, help="steady shape time compression (default 60)")
    parser.add_argument(
        "--steps", default="250,500,1000,2000,3000,4000", help="charger counts to try (default %(default)s)"
    )
    args = parser.parse_args()
    if args.echo_server:
        asyncio.run(_echo_server(Path(args.echo_server)))
        return
    print(f"# {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}", flush=True)
    if args.only in (None, "generator"):
        generator(args.seconds, args.generator_users)
    if args.only in (None, "capacity"):
        capacity([int(n) for n in args.steps.split(",")], args.seconds, args.speed)
    if args.only in (None, "storm"):
        storm(args.storm_users, args.seconds)


if __name__ == "__main__":
    main()
