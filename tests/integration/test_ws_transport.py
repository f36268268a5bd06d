"""The agent's WebSocket client (``chargepoint/csms/transport.py``) against real servers on 127.0.0.1: websockets'
own server for the protocol, and a raw TCP server that answers the handshake and then misbehaves."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.typing import Subprotocol

from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.agent import Agent
from chargepoint.core.model import AuthStatus
from chargepoint.core.scheduler import loop_scheduler
from chargepoint.csms.transport import WsClient, open_connection
from tests.integration.conftest import FAST_TIMING, StartAgent, agent_config, until

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Sink:
    """A FrameSink that holds frames in a list and has room for ``room`` of them until the test takes them."""

    def __init__(self, room: int = 1_000_000) -> None:
        self.frames: list[str | bytes] = []
        self.room = room
        self.closed: ConnectionClosed | None = None
        self.arrived = asyncio.Event()

    @property
    def full(self) -> bool:
        return len(self.frames) >= self.room

    def frame_received(self, frame: str | bytes) -> None:
        self.frames.append(frame)
        self.arrived.set()

    def connection_closed(self, exc: ConnectionClosed) -> None:
        self.closed = exc
        self.arrived.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()


async def _connect(url: str, sink: Sink | None = None, **kw: Any) -> WsClient:
    options: dict[str, Any] = {
        "subprotocols": ["ocpp1.6"],
        "headers": {},
        "ssl": None,
        "max_size": 65536,
        "open_timeout_s": 5.0,
        "close_timeout_s": 1.0,
        "ping_interval_s": None,
    }
    options.update(kw)
    ws = await open_connection(url, loop_scheduler(), **options)
    if sink is not None:
        ws.attach(sink)
    return ws


@pytest.fixture
async def echo() -> AsyncIterator[tuple[str, list[ServerConnection]]]:
    """websockets' server speaking ocpp1.6: echoes every message, records its connections."""
    seen: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        seen.append(ws)
        async for message in ws:
            await ws.send(message)

    async with serve(
        handler, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")], compression=None
    ) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/ocpp/CP-1", seen


async def test_handshake_offers_subprotocols_and_headers_then_keeps_no_task_and_no_headers(
    echo: tuple[str, list[ServerConnection]],
) -> None:
    url, seen = echo
    tasks_before = asyncio.all_tasks()
    sink = Sink()
    ws = await _connect(url, sink, headers={"Authorization": "Basic Q1AtMTpzZWNyZXQ="})
    assert ws.subprotocol == "ocpp1.6"
    request = seen[0].request
    assert request is not None and request.path == "/ocpp/CP-1"
    assert request.headers["Authorization"] == "Basic Q1AtMTpzZWNyZXQ="
    assert request.headers["Sec-WebSocket-Protocol"] == "ocpp1.6"
    assert "User-Agent" in request.headers and "Sec-WebSocket-Extensions" not in request.headers
    # Nothing of ours waits in a task per connection (the new tasks are the server's), and the handshake headers
    # are let go.
    new = [t.get_coro() for t in asyncio.all_tasks() - tasks_before]
    assert new and all(c.cr_code.co_filename.find("/websockets/") >= 0 for c in new), new  # type: ignore[union-attr]
    assert ws._protocol.events_received() == []
    await ws.send('[2,"1","Heartbeat",{}]')
    await sink.wait_for(lambda: len(sink.frames) == 1)
    assert sink.frames == ['[2,"1","Heartbeat",{}]']
    await ws.close()
    assert sink.closed is not None and sink.closed.rcvd is not None and sink.closed.rcvd.code == 1000


async def test_a_refused_upgrade_raises_invalid_status_and_an_unknown_subprotocol_is_refused() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    def refuse(connection: ServerConnection, request: Any) -> Any:
        return connection.respond(401, "who are you\n")

    async with serve(handler, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(InvalidStatus) as info:
            await _connect(f"ws://127.0.0.1:{port}/ocpp/CP-1")
        assert info.value.response.status_code == 401
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        # The server picks no subprotocol: the handshake succeeds without one (the link then refuses the session).
        ws = await _connect(f"ws://127.0.0.1:{port}/ocpp/CP-1")
        assert ws.subprotocol is None
        await ws.close()


async def test_a_full_sink_pauses_reading_and_every_frame_arrives_in_order_after_resume(
    echo: tuple[str, list[ServerConnection]],
) -> None:
    url, _ = echo
    sink = Sink(room=4)
    ws = await _connect(url, sink)
    for n in range(200):
        await ws.send(f'[3,"{n}",{{}}]')
    await sink.wait_for(lambda: len(sink.frames) == 4)
    await asyncio.sleep(0.2)  # the echoes keep coming; reading is paused, so they stay in the socket
    assert len(sink.frames) == 4
    assert ws.transport is not None and not ws.transport.is_reading()
    taken: list[str | bytes] = []
    while len(taken) < 200:
        taken.extend(sink.frames)
        sink.frames.clear()
        ws.resume()
        if len(taken) < 200:
            await sink.wait_for(lambda: len(sink.frames) > 0)
    assert taken == [f'[3,"{n}",{{}}]' for n in range(200)]
    await ws.close()


async def test_fragmented_and_binary_messages_are_assembled_and_oversized_ones_close_with_1009() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.send(['[2,"1",', '"Heartbeat",', "{}]"])
        await ws.send(b"\x00\x01")
        await ws.send("x" * 2000)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")]) as server:
        port = server.sockets[0].getsockname()[1]
        sink = Sink()
        await _connect(f"ws://127.0.0.1:{port}/ocpp/CP-1", sink, max_size=1000)
        await sink.wait_for(lambda: sink.closed is not None)
    assert sink.frames == ['[2,"1","Heartbeat",{}]', b"\x00\x01"]
    assert isinstance(sink.closed, ConnectionClosedError)
    assert sink.closed.sent is not None and sink.closed.sent.code == 1009


class RawServer:
    """Answers the WebSocket upgrade by hand, then runs ``script`` on the raw stream."""

    def __init__(self, script: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]) -> None:
        self.script = script
        self.port = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        key = next(
            line.split(b":", 1)[1].strip()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID.encode()).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Protocol: ocpp1.6\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        try:
            await self.script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass


async def test_a_peer_that_stops_answering_pings_is_failed_with_1011_and_dropped() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):  # reads the pings, answers nothing, closes nothing
            pass

    async with RawServer(silent) as raw:
        sink = Sink()
        ws = await _connect(f"ws://127.0.0.1:{raw.port}/", sink, ping_interval_s=0.3, close_timeout_s=0.3)
        await sink.wait_for(lambda: sink.closed is not None, timeout_s=5)
        assert ws.transport is not None and ws.transport.is_closing()
    assert sink.closed is not None and sink.closed.sent is not None and sink.closed.sent.code == 1011


async def test_pongs_keep_a_connection_alive_and_invalid_utf8_closes_it_with_1007() -> None:
    async def pongs_then_bad_text(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        answered = 0
        buffer = b""
        while answered < 3:
            buffer += await reader.read(4096)
            # A masked client ping is 2 header bytes + 4 mask bytes + its 4-byte payload.
            while len(buffer) >= 10 and buffer[0] & 0x0F == Opcode.PING:
                mask, payload = buffer[2:6], buffer[6:10]
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                writer.write(Frame(Opcode.PONG, data).serialize(mask=False, extensions=[]))
                buffer = buffer[10:]
                answered += 1
        writer.write(Frame(Opcode.TEXT, b"\xff\xfe").serialize(mask=False, extensions=[]))
        await reader.read(4096)

    async with RawServer(pongs_then_bad_text) as raw:
        sink = Sink()
        await _connect(f"ws://127.0.0.1:{raw.port}/", sink, ping_interval_s=0.2, close_timeout_s=0.3)
        await sink.wait_for(lambda: sink.closed is not None, timeout_s=5)
    assert sink.frames == []
    assert sink.closed is not None and sink.closed.sent is not None and sink.closed.sent.code == 1007


async def test_close_gives_up_on_a_peer_that_ignores_the_closing_handshake() -> None:
    async def deaf(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    async with RawServer(deaf) as raw:
        sink = Sink()
        ws = await _connect(f"ws://127.0.0.1:{raw.port}/", sink, close_timeout_s=0.3)
        async with asyncio.timeout(5):
            await ws.close()
        assert sink.closed is not None
        with pytest.raises(ConnectionClosed):
            await ws.send("[]")


async def test_a_send_after_both_close_frames_but_before_tcp_closes_raises_connection_closed() -> None:
    """The peer closes, the client answers its close frame, and the peer keeps TCP open: a message sent then
    (a Heartbeat due at that instant) raises ConnectionClosed. It used to raise AssertionError from inside
    websockets' ConnectionClosedError, which wants to know which close frame came first once both exist."""
    from websockets.frames import Close

    answered = asyncio.Event()

    async def close_then_linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            Frame(Opcode.CLOSE, Close(1001, "going away").serialize()).serialize(mask=False, extensions=[])
        )
        head = await reader.readexactly(2)  # the client's close frame arrived: both frames exchanged
        assert head[0] & 0x0F == Opcode.CLOSE
        answered.set()
        await asyncio.sleep(30)  # TCP stays open

    async with RawServer(close_then_linger) as raw:
        sink = Sink()
        ws = await _connect(f"ws://127.0.0.1:{raw.port}/", sink, close_timeout_s=5.0)
        async with asyncio.timeout(5):
            await answered.wait()
        with pytest.raises(ConnectionClosed) as closed:
            await ws.send('[2,"1","Heartbeat",{}]')
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        assert closed.value.rcvd_then_sent is True
        ws.abort()


# The agent on this client: one task per connection, and a stop that does not wait behind a hung connect.


async def test_a_connected_idle_agent_runs_in_its_own_task_only(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """While connected and idle, the link, the frame routing, the outbox and the pings have no task of their own:
    what the agent's connection has is the agent's task (the hardware loops are not the connection's)."""
    a = await start_agent(settings={"websocket_ping_interval_s": 1})
    link = a.agent.link
    assert link is not None
    await until(lambda: link.store.outbox_size() == 0 and link.outbox.idle.is_set(), 5, "outbox never idle")
    await asyncio.sleep(1.5)  # a ping went out and its pong came back meanwhile
    names = {t.get_coro().__qualname__ for t in asyncio.all_tasks()}  # type: ignore[union-attr]
    connection = {
        "Link.run",
        "InboundCap._read",
        "OcppSession.start",
        "OutboxSender.run",
        "Connection.keepalive",
    }
    assert not names & connection, names
    assert "Agent.run" in names
    # And a CALL from the CSMS is still answered on that connection.
    answer = await cs.call("CP-1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert answer["configurationKey"][0]["key"] == "HeartbeatInterval"
    assert link.connections == 1


async def test_shutdown_is_not_held_up_by_a_connect_that_hangs(tmp_path: Path) -> None:
    """A central system that accepts TCP but never answers the upgrade: shutdown() ends the agent at once, not
    after the open timeout."""

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(60)

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        config = agent_config(
            f"ws://127.0.0.1:{port}/ocpp", tmp_path / "agent.db", csms={"response_timeout_s": 30}
        )
        agent = Agent(config, timing=FAST_TIMING)
        task = asyncio.create_task(agent.run())
        await until(lambda: agent.link is not None and agent.link._connecting is not None, 5, "no connect")
        agent.shutdown()
        async with asyncio.timeout(5):
            await task
        assert agent.link is not None and agent.link.connections == 0
    finally:
        server.close()


async def test_an_answer_to_the_agents_call_is_not_held_behind_a_csms_call_being_handled(
    cs: CentralSystem, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent routes the central system's CALLs one at a time, and a CALL's answer waits for the store's commit
    of what its handling wrote. While one waits so, the answer to the agent's own Authorize still reaches the
    agent at once: the EV driver is not kept waiting behind a ChangeConfiguration (a regression under load)."""
    a = await start_agent()
    link = a.agent.link
    assert link is not None
    await until(lambda: link.store.outbox_size() == 0 and link.outbox.idle.is_set(), 5, "outbox never idle")
    committing = asyncio.Event()
    commit = asyncio.Event()
    flush = link.store.flush

    async def slow_flush(since: int | None = None) -> None:
        if since is not None:  # the commit an answer to a CSMS CALL waits for
            committing.set()
            await commit.wait()
        await flush(since)

    monkeypatch.setattr(link.store, "flush", slow_flush)
    change = asyncio.create_task(
        cs.call("CP-1", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "120"}, timeout=10)
    )
    try:
        async with asyncio.timeout(5):
            await committing.wait()
        async with asyncio.timeout(1.5):  # under the agent's 2 s response timeout: a held answer fails this
            info = await link.authorize("CAFE01")
        assert info.status is AuthStatus.ACCEPTED
        assert not change.done()  # the ChangeConfiguration's answer still waits for its commit
    finally:
        commit.set()
    assert (await change)["status"] == "Accepted"
