"""Central systems that route the charger elsewhere than ``<base>/<id>`` (issue 10, finding 15).

Some route ``/ocpp/CP-1/`` (a trailing slash), some take the id in the query (``/ocpp?id=CP-1``). A small aiohttp
central system on loopback accepts the WebSocket only at its one URL (404 anywhere else) and answers the boot; a
real agent connects with ``csms.url`` written as a ``{station_id}`` template. Before the fix the agent stripped the
trailing slash and appended the id (``/ocpp/{station_id}/CP-1``), and never got in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web

from chargepoint.agent import Agent
from chargepoint.config import parse
from tests.integration.conftest import FAST_TIMING, until

CALL, CALLRESULT = 2, 3


class RoutedCentralSystem:
    """An OCPP 1.6 central system that accepts a charger only where ``accepts(request)`` says so."""

    def __init__(self, accepts: Callable[[web.Request], bool]) -> None:
        self.accepts = accepts
        self.accepted: list[str] = []  # the request targets (path?query) of accepted connections
        self.refused: list[str] = []
        self.boots = 0
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self.accepts(request):
            self.refused.append(request.raw_path)
            raise web.HTTPNotFound()
        self.accepted.append(request.raw_path)
        ws = web.WebSocketResponse(protocols=("ocpp1.6",))
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is not WSMsgType.TEXT:
                continue
            frame = json.loads(msg.data)
            if frame[0] != CALL:
                continue
            now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
            action = frame[2]
            payload: dict[str, object] = {}
            if action == "BootNotification":
                self.boots += 1
                payload = {"status": "Accepted", "currentTime": now, "interval": 300}
            elif action == "Heartbeat":
                payload = {"currentTime": now}
            await ws.send_str(json.dumps([CALLRESULT, frame[1], payload]))
        return ws


@pytest.fixture
async def routed() -> AsyncIterator[Callable[[Callable[[web.Request], bool]], RoutedCentralSystem]]:
    servers: list[RoutedCentralSystem] = []

    def make(accepts: Callable[[web.Request], bool]) -> RoutedCentralSystem:
        server = RoutedCentralSystem(accepts)
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.stop()


@contextlib.asynccontextmanager
async def booted_agent(url: str, tmp_path: Path, station_id: str = "CP-1") -> AsyncIterator[Agent]:
    """A real agent running against ``url``, once its boot is accepted; stopped on exit."""
    config = parse(
        {
            "station": {"id": station_id},
            "csms": {"url": url, "reconnect_min_s": 0.05, "reconnect_max_s": 0.3, "reconnect_jitter_s": 0.05},
            "storage": {"path": str(tmp_path / "agent.db")},
            "connectors": [
                {"id": 1, "relay": {"driver": "sim"}, "meter": {"driver": "sim"}, "plug": {"driver": "sim"}}
            ],
        }
    )
    agent = Agent(config, timing=FAST_TIMING)
    task = asyncio.create_task(agent.run())
    try:
        await until(lambda: agent.link is not None and agent.link.online, 5, "the agent never booted")
        yield agent
    finally:
        agent.shutdown()
        with contextlib.suppress(asyncio.CancelledError):
            async with asyncio.timeout(15):
                await task


async def test_trailing_slash_route(
    routed: Callable[[Callable[[web.Request], bool]], RoutedCentralSystem], tmp_path: Path
) -> None:
    """``ws://host/ocpp/{station_id}/``: the agent connects to /ocpp/CP-1/, trailing slash kept."""
    cs = routed(lambda r: r.raw_path == "/ocpp/CP-1/")
    await cs.start()
    async with booted_agent(f"ws://127.0.0.1:{cs.port}/ocpp/{{station_id}}/", tmp_path):
        assert cs.accepted == ["/ocpp/CP-1/"] and cs.boots == 1
        assert cs.refused == []


async def test_id_in_the_query(
    routed: Callable[[Callable[[web.Request], bool]], RoutedCentralSystem], tmp_path: Path
) -> None:
    """``ws://host/ocpp?id={station_id}``: the agent connects to /ocpp?id=CP-1."""
    cs = routed(lambda r: r.path == "/ocpp" and r.query.get("id") == "CP-1")
    await cs.start()
    async with booted_agent(f"ws://127.0.0.1:{cs.port}/ocpp?id={{station_id}}", tmp_path):
        assert cs.accepted == ["/ocpp?id=CP-1"] and cs.boots == 1


async def test_id_in_the_query_is_url_encoded(
    routed: Callable[[Callable[[web.Request], bool]], RoutedCentralSystem], tmp_path: Path
) -> None:
    """An id with "+" and "=" reaches a query-routed central system intact ("+" would otherwise read as a space
    and "=" split the field)."""
    cs = routed(lambda r: r.path == "/ocpp" and r.query.get("id") == "CP+1=A" and r.query.get("v") == "16")
    await cs.start()
    async with booted_agent(f"ws://127.0.0.1:{cs.port}/ocpp?id={{station_id}}&v=16", tmp_path, "CP+1=A"):
        assert cs.accepted == ["/ocpp?id=CP%2B1%3DA&v=16"]


async def test_plain_base_url_still_gets_the_id_appended(
    routed: Callable[[Callable[[web.Request], bool]], RoutedCentralSystem], tmp_path: Path
) -> None:
    """Without a placeholder nothing changes: the id is appended after one slash (OCPP-J 1.6 §3.1.1)."""
    cs = routed(lambda r: r.raw_path == "/ocpp/CP-1")
    await cs.start()
    async with booted_agent(f"ws://127.0.0.1:{cs.port}/ocpp/", tmp_path):
        assert cs.accepted == ["/ocpp/CP-1"]
