"""A gevent-friendly OCPP-J connection: websocket-client for the socket, one receive greenlet per connection.

CALLs go out from the caller's greenlet, one at a time (OCPP-J allows one outstanding CALL per direction); the
receive greenlet timestamps each frame as it arrives, completes the pending CALL with a CALLRESULT or CALLERROR,
and answers the central system's CALLs at once through `on_call`. No asyncio: Locust runs on gevent.
"""

from __future__ import annotations

import base64
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent  # type: ignore[import-untyped]  # gevent ships no type information
import websocket
from gevent.event import AsyncResult, Event  # type: ignore[import-untyped]
from gevent.lock import Semaphore  # type: ignore[import-untyped]
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, CallResult, unpack

from chargepoint.csms_url import station_url
from loadtests.protocol import Answer, OcppVersion, Request, validate

__all__ = [
    "CallErrorResponse",
    "CallFailed",
    "CallOutcome",
    "CallTimeout",
    "ConnectFailed",
    "ConnectionLost",
    "InvalidResponse",
    "NotConnected",
    "OcppConnection",
]

log = logging.getLogger(__name__)

OnCall = Callable[[str, Any], Answer]
OnProtocolError = Callable[[str], None]


class CallFailed(Exception):
    """A CALL that did not end in a valid CALLRESULT; reported to Locust as a failure (repr names the cause)."""

    def __init__(self, message: str, response_time_ms: float = 0.0, response_length: int = 0) -> None:
        super().__init__(message)
        self.response_time_ms = response_time_ms
        self.response_length = response_length


class CallErrorResponse(CallFailed):
    """The central system answered with a CALLERROR; `code` is its errorCode."""

    def __init__(self, code: str, description: str, response_time_ms: float, response_length: int) -> None:
        super().__init__(f"CallError {code}: {description}", response_time_ms, response_length)
        self.code = code
        self.description = description


class CallTimeout(CallFailed):
    """No answer within the response timeout."""


class InvalidResponse(CallFailed):
    """The answer was not a schema-valid CALLRESULT for the action, or refused the request by its status."""


class ConnectionLost(CallFailed):
    """The connection closed before the answer came."""


class NotConnected(ConnectionLost):
    """The CALL was never sent: the connection had already ended (not a request, so not reported)."""


class ConnectFailed(Exception):
    """The WebSocket handshake failed (refused, HTTP status, or no OCPP subprotocol agreed)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """A CALLRESULT: its payload, the round trip (ms, send to receipt) and its size on the wire."""

    payload: dict[str, Any]
    response_time_ms: float
    response_length: int


@dataclass(slots=True)
class _Pending:
    action: str
    sent_at: float
    result: Any  # gevent AsyncResult of (frame text, unpacked message, receive time)


class OcppConnection:
    """One charger's OCPP-J connection."""

    def __init__(
        self,
        version: OcppVersion,
        on_call: OnCall,
        *,
        validate: bool = True,
        on_protocol_error: OnProtocolError | None = None,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        self.version = version
        self._on_call = on_call
        self._validate = validate
        self._on_protocol_error = on_protocol_error or (lambda kind: None)
        self._on_closed = on_closed or (lambda: None)
        self._ws: websocket.WebSocket | None = None
        self._ids = itertools.count(1)
        self._pending: dict[str, _Pending] = {}
        self._call_lock = Semaphore()
        self._closed = Event()
        self._closed.set()
        self._receiver: Any = None

    @property
    def is_open(self) -> bool:
        """True between a successful connect and the end of the connection."""
        return not self._closed.is_set()

    def connect(self, url: str, cp_id: str, password: str | None, timeout_s: float) -> float:
        """Open `{url}/{cp_id}` (or `url` with cp_id in place of `{station_id}`) with this version's subprotocol (and HTTP Basic auth with a password); returns
        the handshake time in ms. Raises ConnectFailed."""
        header = []
        if password is not None:
            token = base64.b64encode(f"{cp_id}:{password}".encode()).decode()
            header.append(f"Authorization: Basic {token}")
        started = time.perf_counter()
        try:
            ws = websocket.create_connection(
                station_url(url, cp_id),
                timeout=timeout_s,
                subprotocols=[self.version.subprotocol],
                header=header,
                enable_multithread=True,  # the receive greenlet answers while the user greenlet sends
                skip_utf8_validation=True,
            )
        except websocket.WebSocketBadStatusException as exc:
            raise ConnectFailed(f"HTTP {exc.status_code}", exc.status_code) from None
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectFailed(f"{type(exc).__name__}: {exc}") from None
        elapsed_ms = (time.perf_counter() - started) * 1000
        if ws.subprotocol != self.version.subprotocol:
            ws.shutdown()  # type: ignore[no-untyped-call]  # websocket-client leaves it unannotated
            raise ConnectFailed(f"subprotocol {ws.subprotocol!r} instead of {self.version.subprotocol}")
        ws.settimeout(None)  # the receive greenlet waits for as long as the connection lives
        self._ws = ws
        self._closed = Event()
        self._receiver = gevent.spawn(self._receive, ws, self._closed)
        return elapsed_ms

    def call(self, request: Request, timeout_s: float) -> CallOutcome:
        """Send a CALL and wait for its answer; raises CallFailed (with the time it took)."""
        with self._call_lock:
            ws = self._ws
            if ws is None or not self.is_open:
                raise NotConnected("not connected")
            unique_id = str(next(self._ids))
            message = Call(unique_id, request.action, request.payload)
            if self._validate:
                validate(message, self.version.schema_version)  # a bug here is ours: let it raise
            pending = _Pending(request.action, time.perf_counter(), AsyncResult())
            self._pending[unique_id] = pending
            try:
                ws.send(message.to_json())
                try:
                    text, answer, received_at = pending.result.get(timeout=timeout_s)
                except gevent.Timeout:
                    raise CallTimeout(
                        f"no answer within {timeout_s:g} s", (time.perf_counter() - pending.sent_at) * 1000
                    ) from None
            except (OSError, websocket.WebSocketException) as exc:
                raise ConnectionLost(f"{type(exc).__name__}: {exc}") from None
            finally:
                self._pending.pop(unique_id, None)
        if isinstance(answer, ConnectionLost):
            answer.response_time_ms = (time.perf_counter() - pending.sent_at) * 1000
            raise answer
        elapsed_ms = (received_at - pending.sent_at) * 1000
        if isinstance(answer, CallError):
            raise CallErrorResponse(
                str(answer.error_code), str(answer.error_description), elapsed_ms, len(text)
            )
        result = CallResult(unique_id, answer.payload, request.action)
        if not isinstance(result.payload, dict):
            raise InvalidResponse("the CALLRESULT payload is not an object", elapsed_ms, len(text))
        if self._validate:
            try:
                validate(result, self.version.schema_version)
            except OCPPError as exc:
                code = self.version.wire_error_code(exc.code)
                cause = exc.details.get("cause") if isinstance(exc.details, dict) else None
                raise InvalidResponse(f"{code}: {cause or exc.description}", elapsed_ms, len(text)) from None
        return CallOutcome(result.payload, elapsed_ms, len(text))

    def close(self, timeout_s: float = 2.0) -> None:
        """Close normally (close frame, wait for the peer's) and then the socket."""
        ws = self._ws
        if ws is None:
            return
        if self.is_open:
            try:
                ws.send_close()
            except (OSError, websocket.WebSocketException):
                pass
            self._closed.wait(timeout_s)
        self.abort()

    def abort(self) -> None:
        """Drop the connection at once, without a close frame (a power cut or a lost link)."""
        ws, self._ws = self._ws, None
        if ws is not None:
            try:
                ws.abort()  # type: ignore[no-untyped-call]  # websocket-client leaves it unannotated
            except OSError:
                pass
            ws.shutdown()  # type: ignore[no-untyped-call]
        if self._receiver is not None:
            self._receiver.join(timeout=5)
            self._receiver = None

    def wait_closed(self, timeout_s: float | None = None) -> bool:
        """Wait until the connection has ended; True if it has."""
        return bool(self._closed.wait(timeout_s))

    # -- receive greenlet
    def _receive(self, ws: websocket.WebSocket, closed: Any) -> None:
        try:
            while True:
                try:
                    text = ws.recv()
                except (OSError, websocket.WebSocketException):
                    return
                received_at = time.perf_counter()
                if not text:  # a close frame (websocket-client answers it) or an empty frame
                    if not ws.connected:
                        return
                    continue
                if isinstance(text, bytes):
                    self._on_protocol_error("binary_frames")
                    continue
                self._on_frame(ws, text, received_at)
        except Exception:  # never let a bug kill the greenlet silently with a pending CALL waiting forever
            log.exception("receive loop failed")
        finally:
            # Release the socket now: after a peer's close frame or a crash the peer must see the end too, and a
            # CALL sent from here on fails at once instead of waiting for its timeout.
            try:
                ws.shutdown()  # type: ignore[no-untyped-call]  # websocket-client leaves it unannotated
            except OSError:
                pass
            closed.set()
            lost = ConnectionLost("connection closed before the answer")
            for pending in list(self._pending.values()):
                if not pending.result.ready():
                    pending.result.set(("", lost, time.perf_counter()))
            self._on_closed()

    def _on_frame(self, ws: websocket.WebSocket, text: str, received_at: float) -> None:
        try:
            message = unpack(text)
        except OCPPError:
            self._on_protocol_error("invalid_frames")
            return
        if isinstance(message, Call):
            self._answer(ws, message)
            return
        pending = self._pending.get(str(message.unique_id))
        if pending is None or pending.result.ready():
            self._on_protocol_error("unexpected_responses")
            return
        pending.result.set((text, message, received_at))

    def _answer(self, ws: websocket.WebSocket, call: Call) -> None:
        action = call.action if isinstance(call.action, str) else ""
        try:
            answer = self._on_call(action, call.payload)
        except Exception:  # a bug answering one call must not end the receive loop (and the connection)
            log.exception("answering %s failed", action)
            answer = Answer(error_code="InternalError", error_description="the charger failed to answer")
        if answer.error_code is not None:
            frame = CallError(call.unique_id, answer.error_code, answer.error_description, {}).to_json()
        else:
            result = CallResult(call.unique_id, answer.payload, action)
            if self._validate:
                try:
                    validate(result, self.version.schema_version)
                except OCPPError as exc:
                    log.error("our answer to %s is invalid (%s): %s", action, exc, answer.payload)
                    result = None
            frame = (
                result.to_json()
                if result is not None
                else CallError(call.unique_id, "InternalError", "invalid answer", {}).to_json()
            )
        try:
            ws.send(frame)
        except (OSError, websocket.WebSocketException):
            pass  # the receive loop sees the end of the connection next
        else:
            log.debug("answered %s: %s", action, frame)
