"""systemd integration: READY/STOPPING notifications and the watchdog, so a hung agent is killed and restarted.

A stuck event loop cannot open a relay; with ``WatchdogSec=`` systemd kills such a process, and the unit's
``ExecStopPost=python -m chargepoint relays-off`` drives every relay line open before anything restarts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one sd_notify message (``READY=1``, ``WATCHDOG=1``, ...); False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("sd_notify %s failed: %s", message, exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half the watchdog period systemd asked for (``WATCHDOG_USEC``), or None when there is no watchdog."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.1, int(usec) / 2_000_000)
    except ValueError:
        return None


async def keep_alive(healthy: Callable[[], bool], interval_s: float) -> None:
    """Ping the watchdog while ``healthy()`` holds; stop pinging (so systemd restarts us) when it does not."""
    while True:
        if healthy():
            notify("WATCHDOG=1")
        else:
            log.error("agent unhealthy: no longer feeding the watchdog")
        await asyncio.sleep(interval_s)
