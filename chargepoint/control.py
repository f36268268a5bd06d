"""A small local control interface (JSON lines over a Unix socket) to drive simulated hardware and read status.

``python -m chargepoint ctl --config FILE <command>``: plug N, unplug N, swipe N IDTAG, meter-fault N on|off,
reader-fault N on|off, status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # Annotations only: `python -m chargepoint ctl` (send_command) then starts without importing the whole core
    # and the hardware drivers, ~3x faster, which matters to scripts and actuation profiles calling it per step.
    from chargepoint.core.station import Station
    from hardware.factory import SimConnector

log = logging.getLogger(__name__)

COMMANDS = {
    "plug": "plug N",
    "unplug": "unplug N",
    "swipe": "swipe N IDTAG",
    "meter-fault": "meter-fault N on|off",
    "reader-fault": "reader-fault N on|off",
    "status": "status",
}


class ControlError(Exception):
    """A control command was malformed or cannot be carried out."""


class ControlServer:
    """Serves control commands against the running station and its simulated hardware."""

    def __init__(
        self,
        path: str,
        station: Callable[[], Station | None],
        sims: dict[int, SimConnector],
        csms: Callable[[], dict[str, Any] | None] = lambda: None,
    ) -> None:
        self.path = path
        self.station = station
        self.csms = csms  # the link's connection and registration state, None before the link exists
        self.sims = sims
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen on the Unix socket (replacing a stale one)."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._client, path=self.path)

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                args = json.loads(line)
                if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                    raise ControlError("a command is a JSON list of strings")
                result: Any = {"ok": True, "result": self.execute(args)}
            except (ControlError, ValueError) as exc:
                result = {"ok": False, "error": str(exc)}
            writer.write(json.dumps(result).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()

    def _sim(self, arg: str) -> SimConnector:
        try:
            cid = int(arg)
        except ValueError:
            raise ControlError(f"connector must be a number, got {arg!r}") from None
        if cid not in self.sims:
            raise ControlError(f"no connector {cid} (have {sorted(self.sims)})")
        return self.sims[cid]

    def execute(self, args: list[str]) -> Any:
        """Run one command; returns its result or raises ControlError."""
        if not args or args[0] not in COMMANDS:
            raise ControlError(f"commands: {'; '.join(COMMANDS.values())}")
        cmd, rest = args[0], args[1:]
        need = len(COMMANDS[cmd].split()) - 1
        if len(rest) != need:
            raise ControlError(f"usage: {COMMANDS[cmd]}")
        if cmd == "status":
            station = self.station()
            snapshot = station.snapshot() if station is not None else {}
            return {**snapshot, "csms": self.csms()}
        sim = self._sim(rest[0])
        if cmd in ("plug", "unplug"):
            if sim.plug is None:
                raise ControlError("this connector's plug is not simulated")
            sim.plug.set_plugged(cmd == "plug")
        elif cmd == "swipe":
            if sim.reader is None:
                raise ControlError("this connector's reader is not simulated")
            sim.reader.swipe(rest[1])
        elif cmd in ("meter-fault", "reader-fault"):
            if rest[1] not in ("on", "off"):
                raise ControlError(f"usage: {COMMANDS[cmd]}")
            on = rest[1] == "on"
            if cmd == "meter-fault":
                if sim.meter is None:
                    raise ControlError("this connector's meter is not simulated")
                sim.meter.failing = on
            else:
                if sim.reader is None:
                    raise ControlError("this connector's reader is not simulated")
                sim.reader.fail(on)
        return "ok"


async def send_command(path: str, args: list[str], timeout_s: float = 5.0) -> Any:
    """Send one command to a running agent; returns its result or raises ControlError."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_unix_connection(path)
            writer.write(json.dumps(args).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
    except (OSError, TimeoutError) as exc:
        raise ControlError(f"no agent answers on {path}: {exc}") from exc
    answer = json.loads(line)
    if not answer.get("ok"):
        raise ControlError(answer.get("error", "failed"))
    return answer["result"]
