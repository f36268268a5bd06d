"""Control of a running fleet over a Unix socket: one JSON object per line each way.

Requests: ``{"cmd": "plug"|"unplug", "charger": ID, "connector": N}``, ``{"cmd": "swipe", "charger": ID,
"id_tag": TAG[, "connector": N]}``, ``{"cmd": "status"[, "charger": ID]}``. Answers: ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``. With ``--processes K`` the parent routes each request to the shard that holds
the charger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from simulator.fleet import Fleet

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def default_socket() -> Path:
    """Where ``run`` listens and ``ctl`` connects unless told otherwise."""
    return Path(tempfile.gettempdir()) / f"ocpp-simulator-{os.getuid()}.sock"


def fleet_handler(fleet: Fleet) -> Handler:
    """Answer control requests from one fleet (or shard) in this process."""

    async def handle(request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        cp_id = request.get("charger")
        try:
            if cmd == "plug":
                fleet.plug(str(cp_id), int(request.get("connector", 1)))
            elif cmd == "unplug":
                fleet.unplug(str(cp_id), int(request.get("connector", 1)))
            elif cmd == "swipe":
                connector = request.get("connector")
                cid = fleet.swipe(
                    str(cp_id), str(request["id_tag"]), None if connector is None else int(connector)
                )
                return {"ok": True, "connector": cid}
            elif cmd == "status":
                return {"ok": True, "status": fleet.status(None if cp_id is None else str(cp_id))}
            elif cmd == "chargers":
                return {"ok": True, "chargers": list(fleet.chargers)}
            else:
                return {"ok": False, "error": f"unknown command {cmd!r}"}
        except KeyError as exc:
            return {"ok": False, "error": str(exc.args[0]) if exc.args else str(exc)}
        except (TypeError, ValueError) as exc:
            return {"ok": False, "error": f"bad request: {exc}"}
        return {"ok": True}

    return handle


async def serve(path: Path, handler: Handler) -> asyncio.Server:
    """Listen on a Unix socket (owner-only) and answer each request line with ``handler``."""

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("not an object")
                except ValueError as exc:
                    answer: dict[str, Any] = {"ok": False, "error": f"bad request: {exc}"}
                else:
                    answer = await handler(request)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    _prepare(path)
    server = await asyncio.start_unix_server(client, path=str(path))
    os.chmod(path, 0o600)
    return server


def _prepare(path: Path) -> None:
    """Remove a stale socket file and make its directory."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)


async def request(path: Path, message: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    """Send one request to a running fleet and return its answer."""
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_unix_connection(str(path))
        try:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
        finally:
            writer.close()
    if not line:
        raise ConnectionResetError(f"the fleet at {path} closed the connection without an answer")
    answer: dict[str, Any] = json.loads(line)
    return answer


def router(shard_sockets: list[Path], owner: Callable[[str], int | None]) -> Handler:
    """The parent's handler with ``--processes K``: forward to the shard owning the charger, merge status."""

    async def handle(req: dict[str, Any]) -> dict[str, Any]:
        cp_id = req.get("charger")
        if cp_id is not None:
            shard = owner(str(cp_id))
            if shard is None:
                return {"ok": False, "error": f"no charger {cp_id!r} in this fleet"}
            try:
                return await request(shard_sockets[shard], req)
            except (OSError, TimeoutError, ValueError) as exc:
                return {"ok": False, "error": f"fleet process {shard} does not answer: {exc}"}
        if req.get("cmd") != "status":
            return {"ok": False, "error": "a charger id is required"}
        try:
            parts = [await request(s, req) for s in shard_sockets]
        except (OSError, TimeoutError, ValueError) as exc:
            return {"ok": False, "error": f"a fleet process does not answer: {exc}"}
        merged: dict[str, Any] = {"chargers": 0, "online": 0, "booted": 0, "calls": 0, "outbox": 0}
        states: dict[str, int] = {}
        for part in parts:
            st = part.get("status", {})
            for key in merged:
                merged[key] += st.get(key, 0)
            for state, n in st.get("states", {}).items():
                states[state] = states.get(state, 0) + n
        merged["states"] = states
        merged["shards"] = len(parts)
        return {"ok": True, "status": merged}

    return handle
