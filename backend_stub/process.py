"""Run the bundled central system as a separate process (for the demo and benchmarks)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO


async def start_csms_process(
    *,
    log_path: Path | None = None,
    db: Path | None = None,
    stderr: IO[str] | int | None = asyncio.subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    port: int = 0,
) -> tuple[asyncio.subprocess.Process, str]:
    """Start ``python -m backend_stub serve`` on 127.0.0.1 (a free port unless ``port`` is given, e.g. to restart
    on the same one); returns the process and its URL.

    With ``db`` it is the central system on that store; without, the test server that accepts everyone.
    """
    args = [sys.executable, "-m", "backend_stub", "serve", "--host", "127.0.0.1", "--port", str(port)]
    # Fleets and benchmarks connect every charger from 127.0.0.1: no per-address cap (extra_args may set one).
    args += ["--max-connections-per-address", "0"]
    if db is not None:
        args += ["--db", str(db)]
    if log_path is not None:
        args += ["--log", str(log_path)]
    args += extra_args
    proc = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    url = line.decode().strip()
    if not url.startswith("ws"):
        proc.kill()
        raise RuntimeError(f"the central system did not start (printed {url!r})")
    return proc, url
