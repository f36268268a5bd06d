"""WebSocket ping/pong liveness: a connection that silently dies (a black-holed NAT) is detected and replaced."""

from __future__ import annotations

import asyncio
import contextlib

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from tests.integration.conftest import StartAgent, until


class BlackHoleProxy:
    """A TCP forwarder on 127.0.0.1 that can stop passing bytes without closing anything."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = False
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await src.read(65536):
                if not self.frozen:
                    dst.write(data)
                    await dst.drain()
        dst.close()


async def test_dead_connection_is_detected_by_ping_and_replaced(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    proxy = BlackHoleProxy(cs.port)
    await proxy.start()
    try:
        a = await start_agent(
            settings={"websocket_ping_interval_s": 1},
            csms={"url": cs.url.replace(f":{cs.port}/", f":{proxy.port}/")},
        )
        link = a.agent.link
        assert link is not None
        reconnects = link.reconnects
        proxy.frozen = True  # nothing passes any more, nothing is closed either
        await until(lambda: link.reconnects > reconnects, 8, "the dead connection was never noticed")
        proxy.frozen = False
        await until(lambda: link.online, 8, "never came back online")
    finally:
        await proxy.stop()
