"""Helpers of the load tests: real Locust processes against real central systems, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from backend_stub.process import start_csms_process
from loadtests.credentials import generate, write_credentials
from loadtests.seed import seed_store

REPO = Path(__file__).resolve().parents[2]
LOCUSTFILE = REPO / "loadtests" / "locustfile.py"
REQUIRED = (
    "BootNotification",
    "Heartbeat",
    "Authorize",
    "StartTransaction",
    "MeterValues",
    "StopTransaction",
)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def locust_command(*args: str) -> list[str]:
    """`python -m locust -f loadtests/locustfile.py ARGS`."""
    return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *args]


async def run_all(
    commands: Sequence[list[str]], cwd: Path, timeout_s: float, stop: Awaitable[object] | None = None
) -> list[tuple[int, str]]:
    """Run processes side by side until each exits (each is bounded by its own -t); kill them past the limit.

    Once ``stop`` completes (what the test drives is done), the processes still running get SIGINT: Locust then
    quits as at the end of its -t (quitting handlers, reports, exit code), so a scripted run need not sit out
    a -t sized for a loaded machine. (SIGINT, Locust's KeyboardInterrupt path, also works where the locustfile's
    own SIGTERM handling is not in place, e.g. older checkouts.)"""
    procs = []
    for command in commands:
        # A local log file, opened once per process: not worth a thread.
        log = open(cwd / f"proc{len(procs)}.log", "wb")  # noqa: SIM115, ASYNC230  # closed below
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=cwd, stdout=log, stderr=asyncio.subprocess.STDOUT
        )
        procs.append((proc, log, cwd / f"proc{len(procs)}.log"))
    try:
        async with asyncio.timeout(timeout_s):
            exited = asyncio.gather(*(p.wait() for p, _, _ in procs))
            if stop is not None:
                stopped = asyncio.ensure_future(stop)
                try:
                    await asyncio.wait({exited, stopped}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopped.cancel()
                if stopped.done() and not stopped.cancelled():
                    stopped.result()  # a failed stop condition is the test's failure
                    for proc, _, _ in procs:
                        if proc.returncode is None:
                            proc.send_signal(signal.SIGINT)
            await exited
    finally:
        for proc, log, _ in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            log.close()
    return [(int(proc.returncode or 0), path.read_text(errors="replace")) for proc, _, path in procs]


def read_stats(prefix: Path) -> dict[tuple[str, str], tuple[int, int]]:
    """(type, name) -> (requests, failures) from Locust's `{prefix}_stats.csv`."""
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {
            (row["Type"], row["Name"]): (int(row["Request Count"]), int(row["Failure Count"]))
            for row in csv.DictReader(f)
        }


def read_failures(prefix: Path) -> list[dict[str, str]]:
    """The rows of Locust's `{prefix}_failures.csv`."""
    with open(f"{prefix}_failures.csv", newline="") as f:
        return list(csv.DictReader(f))


def read_metrics(path: Path) -> dict[str, Any]:
    """The --ocpp-metrics-json file."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data


@dataclass
class SeededCsms:
    """The bundled central system on a seeded store."""

    url: str
    db: Path
    credentials: Path
    chargers: int


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


@pytest.fixture
async def seeded_csms(tmp_path: Path) -> AsyncIterator[SeededCsms]:
    """`python -m backend_stub serve --db` with 20 chargers (passwords), 30 cards and the load-test tariff."""
    db, creds = tmp_path / "csms.db", tmp_path / "creds.csv"
    rows = generate(20, 30)
    seed_store(db, rows)
    write_credentials(creds, rows)
    with open(tmp_path / "csms.log", "w") as log:  # noqa: ASYNC230  # a local log file
        proc, url = await start_csms_process(db=db, stderr=log)
        try:
            yield SeededCsms(url, db, creds, len(rows))
        finally:
            await _stop(proc)


@contextlib.asynccontextmanager
async def scripted_csms(mode: str, cwd: Path) -> AsyncIterator[str]:
    """tests/load/scripted_csms.py in `mode`; yields its URL."""
    with open(cwd / "scripted.log", "w") as log:  # noqa: ASYNC230  # a local log file
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.load.scripted_csms",
            mode,
            "--results",
            str(cwd / "results.json"),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        try:
            assert proc.stdout is not None
            url = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
            assert url.startswith("ws://127.0.0.1:"), f"scripted central system printed {url!r}"
            yield url
        finally:
            await _stop(proc)
