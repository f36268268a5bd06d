"""The WebSocket client under the OCPP-J session: websockets' sans-I/O ``ClientProtocol`` driven by a lean
``asyncio.Protocol`` of our own.

websockets' asyncio ``ClientConnection`` costs ~5 KB per connection that a charger never uses: a message assembler
with its own queue and locks, a logger adapter with a weak proxy, a keepalive task, kept handshake headers. Here the
handshake and the framing are still websockets' (``ClientProtocol``); what is ours is the I/O around them:

- every message arriving in ``data_received`` goes straight to a ``FrameSink`` (the session's ``InboundCap``), with
  no receive task and no queue of our own. While the sink has no room (or our write buffer is full), the messages
  of the current read wait in a backlog and reading pauses (``transport.pause_reading()``): the socket pushes back
  on the peer, memory stays bounded by one read;
- keepalive pings (WebSocketPingInterval) are timers on the per-loop scheduler (``core/scheduler.py``), not a task;
- the handshake headers are let go once the connection is open.

Kept from websockets' client: TLS (``ssl=`` and SNI), extra request headers (Basic auth), its User-Agent,
subprotocol negotiation, no extensions (no compression), the maximum message size (close code 1009), UTF-8 checks
(1007), the closing handshake with a timeout, pings with a pong timeout (1011), the open timeout. Not kept: HTTP
proxies from the environment and following HTTP redirects, which no OCPP profile asks of a charger.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl as ssl_module
from collections import deque
from collections.abc import Sequence
from typing import Protocol, cast

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import USER_AGENT, Response
from websockets.protocol import CLOSED, CONNECTING, OPEN
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from chargepoint.core.scheduler import Flag, Scheduler, Timer

log = logging.getLogger(__name__)

# websockets' defaults: writes wait (drain) once 32 KB are buffered, until 8 KB are left.
WRITE_LIMIT_HIGH = 32 * 1024
WRITE_LIMIT_LOW = 8 * 1024


class FrameSink(Protocol):
    """Where a connection's messages go: taken one at a time, with room or not."""

    @property
    def full(self) -> bool:
        """True while it takes no more messages (reading pauses until ``WsClient.resume()``)."""
        ...

    def frame_received(self, frame: str | bytes) -> None:
        """Take one message."""
        ...

    def connection_closed(self, exc: ConnectionClosed) -> None:
        """No more messages: the connection closed (after the last message was handed over)."""
        ...


class WsClient(asyncio.Protocol):
    """One WebSocket client connection (open it with ``open_connection``)."""

    __slots__ = (
        "__dict__",  # empty unless someone patches an instance (the simulator's slow uplink wraps ``send``)
        "_backlog",
        "_close_timeout_s",
        "_close_timer",
        "_drain_waiters",
        "_held",
        "_lost",
        "_message",
        "_message_text",
        "_opened",
        "_ping_interval_s",
        "_ping_payload",
        "_ping_sent_at",
        "_ping_timer",
        "_protocol",
        "_scheduler",
        "_sink",
        "_write_paused",
        "transport",
    )

    def __init__(
        self,
        protocol: ClientProtocol,
        scheduler: Scheduler,
        *,
        close_timeout_s: float,
        ping_interval_s: float | None,
    ) -> None:
        self._protocol = protocol
        self._scheduler = scheduler
        self._close_timeout_s = close_timeout_s
        self._ping_interval_s = ping_interval_s
        self.transport: asyncio.Transport | None = None
        self._sink: FrameSink | None = None
        # Messages parsed from the current read while the sink had no room, and bytes that arrived meanwhile.
        self._backlog: deque[str | bytes] | None = None
        self._held: bytearray | None = None
        self._message: list[bytes] | None = None  # the fragments of a fragmented message so far
        self._message_text = False
        self._opened: asyncio.Future[None] | None = None  # the handshake's answer (only while it is awaited)
        self._lost = Flag()
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._close_timer: Timer | None = None
        self._ping_timer: Timer | None = None
        self._ping_payload: bytes | None = None
        self._ping_sent_at = 0.0

    # what the session and the link use
    @property
    def subprotocol(self) -> str | None:
        """The subprotocol the server picked (among those offered), or None."""
        return self._protocol.subprotocol

    def attach(self, sink: FrameSink) -> None:
        """Hand every message to ``sink``, starting with any that came before it was attached."""
        self._sink = sink
        if self._lost.is_set():
            self._hand_over_close()  # it closed before anyone listened
        else:
            self.resume()

    async def send(self, message: str | bytes) -> None:
        """Send one message (text for a str); waits while the write buffer is full; ConnectionClosed once closed."""
        self.send_now(message)
        if self._write_paused:
            await self._drain()

    def send_now(self, message: str | bytes) -> None:
        """Send one message without waiting for the write buffer (an answer the peer forced: bounded by one read)."""
        protocol = self._protocol
        if protocol.state is not OPEN:
            raise self._closed_exc()
        if isinstance(message, str):
            protocol.send_text(message.encode())
        else:
            protocol.send_binary(message)
        self._write_out()

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """The closing handshake: send a close frame and wait until the server closes the TCP connection (aborted
        after the close timeout). Returns at once if already closed."""
        protocol = self._protocol
        if protocol.state is OPEN:
            protocol.send_close(code, reason)
            self._write_out()
            self._arm_close_deadline()
        elif protocol.state is CONNECTING and self.transport is not None:
            self.transport.abort()
        else:
            self._arm_close_deadline()  # closing already, or closed with the TCP connection not yet gone
        await self._lost.wait()

    def abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake (a cut cable)."""
        if self.transport is not None:
            self.transport.abort()

    def resume(self) -> None:
        """The sink has room again (or the write buffer drained): hand over the backlog, then read on."""
        backlog = self._backlog
        sink = self._sink
        if backlog is None or sink is None:
            return
        while backlog:
            if self._write_paused or sink.full:
                return
            sink.frame_received(backlog.popleft())
        self._backlog = None
        held, self._held = self._held, None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()
        if held:
            self._receive(bytes(held))

    # the opening handshake
    async def handshake(self, headers: dict[str, str]) -> None:
        """Send the HTTP upgrade request and wait for its answer; raises the handshake's error (InvalidStatus,
        InvalidHandshake, InvalidMessage)."""
        protocol = self._protocol
        request = protocol.connect()
        request.headers.update(headers)
        request.headers.setdefault("User-Agent", USER_AGENT)
        protocol.send_request(request)
        self._opened = asyncio.get_running_loop().create_future()
        self._write_out()
        try:
            await self._opened
        finally:
            self._opened = None
        if protocol.handshake_exc is not None:
            raise protocol.handshake_exc
        # The request is ours to drop; the response stays referenced by the protocol's parser (a generator's
        # local), so its headers are emptied in place (~2.5 KB per connection that nothing reads).
        request.headers.clear()
        self._start_keepalive()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport and websockets' write limits."""
        transport = cast(asyncio.Transport, transport)
        transport.set_write_buffer_limits(WRITE_LIMIT_HIGH, WRITE_LIMIT_LOW)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Parse; messages go to the sink (or the backlog while it has no room)."""
        if self._backlog is not None:
            # Reading is paused, but a TLS transport may still hand over what it had decrypted.
            if self._held is None:
                self._held = bytearray()
            self._held += data
            return
        self._receive(data)

    def eof_received(self) -> None:
        """The server closed its side: the protocol concludes, and the transport closes."""
        self._protocol.receive_eof()
        self._events()

    def connection_lost(self, exc: Exception | None) -> None:
        """The TCP connection is gone: fail what waits, hand over the backlog, tell the sink."""
        protocol = self._protocol
        protocol.receive_eof()  # idempotent: the state is CLOSED from here on
        protocol.data_to_send()  # nothing can be written any more
        protocol.events_received()
        for timer in (self._close_timer, self._ping_timer):
            if timer is not None:
                self._scheduler.cancel(timer)
        self._close_timer = self._ping_timer = None
        opened = self._opened
        if opened is not None and not opened.done():
            opened.set_result(None)  # handshake() raises the protocol's handshake_exc
        self._write_paused = False
        self._wake_drain()
        self._held = None
        self._lost.set()
        if self._sink is not None:
            self._hand_over_close()

    def _hand_over_close(self) -> None:
        """After the close: every message that waited goes to the sink (room or not), then the close."""
        sink, backlog = self._sink, self._backlog
        self._backlog = None
        assert sink is not None
        for frame in backlog or ():
            sink.frame_received(frame)
        sink.connection_closed(self._closed_exc())

    def pause_writing(self) -> None:
        """The write buffer passed the high mark: senders wait, and so do further messages from the peer."""
        self._write_paused = True

    def resume_writing(self) -> None:
        """The write buffer drained: senders go on, and so does the backlog."""
        self._write_paused = False
        self._wake_drain()
        self.resume()

    # internals
    def _receive(self, data: bytes) -> None:
        self._protocol.receive_data(data)
        self._events()

    def _events(self) -> None:
        protocol = self._protocol
        events = protocol.events_received()
        self._write_out()  # pongs, the echo of a close frame, the EOF after the closing handshake
        if protocol.close_expected():
            self._arm_close_deadline()
        for event in events:
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Response):
                event.headers.clear()  # read by nothing after the protocol checked them (~1.5 KB)
                opened = self._opened
                if opened is not None and not opened.done():
                    opened.set_result(None)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message_done(bytes(frame.data), opcode is Opcode.TEXT)
            else:
                self._message, self._message_text = [bytes(frame.data)], opcode is Opcode.TEXT
        elif opcode is Opcode.CONT:
            parts = self._message
            if parts is None:
                return  # the protocol rejects an unexpected continuation itself
            parts.append(bytes(frame.data))
            if frame.fin:
                self._message = None
                self._message_done(b"".join(parts), self._message_text)
        elif (
            opcode is Opcode.PONG
            and self._ping_payload is not None
            and bytes(frame.data) == self._ping_payload
        ):
            self._pong()

    def _message_done(self, data: bytes, text: bool) -> None:
        message: str | bytes
        if text:
            try:
                message = data.decode()
            except UnicodeDecodeError as exc:
                # RFC 6455 §8.1: a text message that is not UTF-8 fails the connection (1007).
                self._fail(CloseCode.INVALID_DATA, f"{exc.reason} at position {exc.start}")
                return
        else:
            message = bytes(data)
        sink = self._sink
        backlog = self._backlog
        if backlog is None:
            # Until a sink is attached (frames may come with the handshake's answer) they wait like a full sink's.
            if sink is not None and not (self._write_paused or sink.full):
                sink.frame_received(message)
                return
            backlog = self._backlog = deque()
            if self.transport is not None:
                self.transport.pause_reading()
        backlog.append(message)

    def _write_out(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self._protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                try:
                    transport.write_eof()
                except (OSError, RuntimeError):
                    pass
            else:
                transport.close()

    def _fail(self, code: int, reason: str) -> None:
        if self._protocol.state is OPEN or self._protocol.state is CONNECTING:
            self._protocol.fail(code, reason)
            self._write_out()
            self._arm_close_deadline()

    def _arm_close_deadline(self) -> None:
        """Abort the TCP connection if the server has not closed it within the close timeout."""
        if self._close_timer is None and not self._lost.is_set():
            self._close_timer = self._scheduler.call_later(self._close_timeout_s, self._close_deadline)

    def _close_deadline(self) -> None:
        self._close_timer = None
        if self.transport is not None:
            self.transport.abort()

    async def _drain(self) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._drain_waiters is None:
            self._drain_waiters = []
        self._drain_waiters.append(waiter)
        await waiter
        if self._protocol.state is CLOSED:
            raise self._closed_exc()

    def _wake_drain(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def _closed_exc(self) -> ConnectionClosed:
        protocol = self._protocol
        if protocol.state is CLOSED:
            return protocol.close_exc
        # Once both close frames exist websockets wants their order (it asserts on it), e.g. in CLOSING while
        # the peer has not yet closed TCP.
        return ConnectionClosedError(protocol.close_rcvd, protocol.close_sent, protocol.close_rcvd_then_sent)

    # keepalive: WebSocket pings as scheduler timers (no task)
    def _start_keepalive(self) -> None:
        if self._ping_interval_s:
            self._ping_timer = self._scheduler.call_later(self._ping_interval_s, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self._protocol.state is not OPEN or not self._ping_interval_s:
            return
        self._ping_payload = random.getrandbits(32).to_bytes(4, "big")
        self._ping_sent_at = self._scheduler.time()
        self._protocol.send_ping(self._ping_payload)
        self._write_out()
        # The pong must come within one interval (websockets' ping_timeout, set to the interval before).
        self._ping_timer = self._scheduler.call_later(self._ping_interval_s, self._pong_missed)

    def _pong(self) -> None:
        self._ping_payload = None
        if self._ping_timer is not None:
            self._scheduler.cancel(self._ping_timer)
        assert self._ping_interval_s
        self._ping_timer = self._scheduler.call_at(self._ping_sent_at + self._ping_interval_s, self._ping)

    def _pong_missed(self) -> None:
        self._ping_timer = None
        log.info("no pong within %s s: the connection is dead", self._ping_interval_s)
        self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")


async def open_connection(
    url: str,
    scheduler: Scheduler,
    *,
    subprotocols: Sequence[str],
    headers: dict[str, str],
    ssl: ssl_module.SSLContext | None,
    max_size: int | None,
    open_timeout_s: float,
    close_timeout_s: float,
    ping_interval_s: float | None,
) -> WsClient:
    """Connect (TCP, TLS for wss://) and do the opening handshake within ``open_timeout_s``.

    Raises InvalidURI, OSError (ssl.SSLError included), TimeoutError, InvalidStatus or another InvalidHandshake.
    """
    uri = parse_uri(url)
    if uri.secure and ssl is None:
        ssl = ssl_module.create_default_context()
    elif not uri.secure:
        ssl = None
    protocol = ClientProtocol(
        uri, subprotocols=[Subprotocol(s) for s in subprotocols], extensions=None, max_size=max_size
    )
    client = WsClient(protocol, scheduler, close_timeout_s=close_timeout_s, ping_interval_s=ping_interval_s)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(open_timeout_s):
            await loop.create_connection(
                lambda: client,
                uri.host,
                uri.port,
                ssl=ssl,
                server_hostname=uri.host if ssl is not None else None,
            )
            try:
                await client.handshake(headers)
            except BaseException:
                if client.transport is not None:
                    client.transport.abort()
                raise
    except TimeoutError as exc:
        raise TimeoutError("timed out during opening handshake") from exc
    return client
