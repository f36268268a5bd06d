"""Flood benchmark of the central system's edge (issue 10, finding 3): idle sockets and slowloris heads from a
few addresses while the REST API is used, then a password-guessing burst.

Run: ``.venv/bin/python benchmarks/csms_flood.py --sockets 10000 --addresses 4 [--server-fd-limit 5000]``. The server (``python -m
backend_stub serve --db``, default limits unless ``--server-args``) runs in its own process; this process is the
attacker, from 127.0.0.10.. (one address per ``--addresses``), and the operator, from 127.0.0.2. Prints the
REST latency during the flood, how many attack sockets the server kept, its open file descriptors, the bytes it
logged, and the answers to the guesses. 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from backend_stub.store import CsmsStore

TOKEN = "flood-benchmark-admin-token-0123"


Pair = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_idle(port: int, count: int, sources: list[str], slowloris: bool) -> list[Pair]:
    """Open `count` sockets round-robin from `sources`; with `slowloris` each sends half a request head."""
    pairs = []
    failed_in_a_row = 0
    for i in range(count):
        try:
            async with asyncio.timeout(1):  # a full listen queue leaves connect() retrying SYNs for minutes
                pair = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(sources[i % len(sources)], 0)
                )
        except (OSError, TimeoutError):
            failed_in_a_row += 1
            if failed_in_a_row >= 10:  # the server accepts nothing any more
                break
            continue
        failed_in_a_row = 0
        if slowloris:
            pair[1].write(b"GET /ocpp/CP-1 HTTP/1.1\r\nHost: x\r\n")
        pairs.append(pair)
    return pairs


async def still_open(pairs: list[Pair]) -> int:
    """How many of the attack sockets the server has not closed (nor reset)."""
    await asyncio.sleep(0.5)
    return sum(1 for reader, _ in pairs if not reader.at_eof() and reader.exception() is None)


async def api_latencies(base: str, n: int) -> list[float]:
    """`n` sequential GET /api/chargers from 127.0.0.2 (the operator), seconds each; inf for a failure (5 s)."""
    out = []
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(
        connector=connector, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        for _ in range(n):
            t0 = time.perf_counter()
            try:
                async with http.get(f"{base}/api/chargers", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    await r.read()
                    out.append(time.perf_counter() - t0 if r.status == 200 else float("inf"))
            except (aiohttp.ClientError, TimeoutError):
                out.append(float("inf"))
            await asyncio.sleep(0.05)
    return out


async def guesses(url: str, n: int) -> dict[int, int]:
    """`n` wrong Basic-auth handshakes for CP-1; returns a histogram of the HTTP statuses (0: no answer in 5 s)."""
    statuses: dict[int, int] = {}
    for i in range(n):
        auth = base64.b64encode(f"CP-1:guess-{i}".encode()).decode()
        try:
            headers = {"Authorization": f"Basic {auth}"}
            async with connect(
                f"{url}/CP-1",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers=headers,
                open_timeout=5,
            ):
                status = 101
        except InvalidStatus as exc:
            status = exc.response.status_code
        except (OSError, TimeoutError):
            status = 0
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def limit_fds(n: int) -> None:
    """Set this (child) process's open-files limit."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))


def pct(values: list[float], q: float) -> str:
    """The q-quantile of durations in ms, or "fail" when it is a failure."""
    ordered = sorted(values)
    value = ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return "fail" if value == float("inf") else f"{value * 1000:.1f} ms"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=10000)
    parser.add_argument("--addresses", type=int, default=4)
    parser.add_argument("--slowloris", action="store_true", help="send half a request head on each socket")
    parser.add_argument("--guesses", type=int, default=200)
    parser.add_argument(
        "--hold",
        type=float,
        default=15.0,
        help="count the sockets still open this long after the flood began",
    )
    parser.add_argument("--server-args", default="", help="extra serve flags, e.g. '--max-connections 5000'")
    parser.add_argument(
        "--server-fd-limit", type=int, default=None, help="RLIMIT_NOFILE of the server (to flood past it)"
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}, fd limit {hard}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "csms.db"
        with CsmsStore(db) as store:
            store.add_charger("CP-1", "the-real-password-123")
        log_path = Path(tmp) / "stderr.log"
        with log_path.open("w") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "backend_stub", "serve", "--host", "127.0.0.1", "--port", "0", "--db", str(db)),
                *shlex.split(args.server_args),
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env={**os.environ, "CSMS_ADMIN_TOKEN": TOKEN},
                preexec_fn=None if args.server_fd_limit is None else lambda: limit_fds(args.server_fd_limit),
            )
            assert proc.stdout is not None
            url = (await proc.stdout.readline()).decode().strip()
            await proc.stdout.readline()
            port = int(url.rsplit(":", 1)[1].split("/")[0])
            base = f"http://127.0.0.1:{port}"
            try:
                quiet = await api_latencies(base, 20)
                sources = [f"127.0.0.{10 + i}" for i in range(args.addresses)]
                t0 = time.perf_counter()
                pairs = await open_idle(port, args.sockets, sources, args.slowloris)
                opened_s = time.perf_counter() - t0
                during = await api_latencies(base, 20)
                kept = await still_open(pairs)
                fds = len(os.listdir(f"/proc/{proc.pid}/fd"))
                await asyncio.sleep(max(0.0, args.hold - (time.perf_counter() - t0)))
                kept_later = await still_open(pairs)
                for _, writer in pairs:
                    writer.transport.abort()
                statuses = await guesses(url, args.guesses)
            finally:
                proc.terminate()
                await proc.wait()
        logged = log_path.stat().st_size
        kinds: dict[str, int] = {}
        for line in log_path.read_text(errors="replace").splitlines():
            kind = (
                " ".join(line.split()[2:5])[:70]
                if line[:2].isdigit()
                else "(continuation: " + line[:40] + ")"
            )
            kinds[kind] = kinds.get(kind, 0) + 1
    print(f"server flags: {args.server_args or '(defaults)'}, server fd limit {args.server_fd_limit or hard}")
    print(f"REST GET /api/chargers quiet: p50 {pct(quiet, 0.5)}, p99 {pct(quiet, 0.99)}")
    print(
        f"flood: {len(pairs)} sockets ({'slowloris' if args.slowloris else 'idle'}) from {args.addresses} "
        f"addresses opened in {opened_s:.1f} s; server kept {kept}, had {fds} fds open"
    )
    print(
        f"REST during flood: p50 {pct(during, 0.5)}, p99 {pct(during, 0.99)}, max {pct(during, 1.0)}, "
        f"failures {sum(1 for d in during if d == float('inf'))}/{len(during)}"
    )
    print(f"attack sockets still open {args.hold:g} s after the flood began: {kept_later}")
    print(f"{args.guesses} wrong passwords for CP-1: {dict(sorted(statuses.items()))}")
    print(f"server log: {logged} bytes; most frequent lines:")
    for kind, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:5]:
        print(f"  {n:7d}  {kind}")
    print(f"median REST latency before the flood: {statistics.median(quiet) * 1000:.1f} ms")


if __name__ == "__main__":
    asyncio.run(main())
