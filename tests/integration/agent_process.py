"""A real agent process with simulated hardware, for the crash and full-disk tests: its config, its start and the
control-socket commands that drive it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from chargepoint.control import ControlError, send_command

AGENT_CONFIG = """\
[station]
id = "{station_id}"

[csms]
url = "{url}"
ocpp_versions = {versions}
response_timeout_s = 2
boot_retry_s = 0.5
reconnect_min_s = 0.05
reconnect_max_s = 0.2
reconnect_jitter_s = 0.05

[storage]
path = "{db}"

[control]
socket = "{sock}"

[agent]
meter_poll_s = 0.05

[settings]
meter_value_sample_interval_s = 1
transaction_message_retry_interval_s = 0

[[connectors]]
id = 1
relay = {{ driver = "sim" }}
meter = {{ driver = "sim", energy_wh = 5000 }}
plug = {{ driver = "sim", ev_power_w = 22000 }}
reader = {{ driver = "sim" }}
"""


def write_config(
    path: Path, *, station_id: str, url: str, db: Path, sock: str, versions: tuple[str, ...] = ("1.6",)
) -> Path:
    """Write the agent's config to ``path`` (``versions``: the OCPP versions it offers, most preferred first)."""
    offered = json.dumps(list(versions))
    path.write_text(AGENT_CONFIG.format(station_id=station_id, url=url, db=db, sock=sock, versions=offered))
    return path


async def ctl(sock: str, *args: str) -> Any:
    """One control command, retried while the agent is still starting."""
    for _ in range(100):
        try:
            return await send_command(sock, list(args), timeout_s=2)
        except ControlError:
            await asyncio.sleep(0.05)
    return await send_command(sock, list(args))


async def spawn_agent(config: Path, log: Any) -> asyncio.subprocess.Process:
    """``python -m chargepoint run --config config``, its output to ``log``."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chargepoint",
        "run",
        "--config",
        str(config),
        stdout=log,
        stderr=log,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
