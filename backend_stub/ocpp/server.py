"""OCPP-J transport: the aiohttp WebSocket server, admission, connection limits and the VERSIONS table."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import json
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Protocol, Self, TypeAlias
from urllib.parse import unquote

from aiohttp import WSMsgType, web
from aiohttp.web_protocol import RequestHandler
from jsonschema import Draft4Validator
from ocpp import messages as ocpp_messages
from ocpp.exceptions import NotImplementedError as SchemaMissingError
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallResult

from backend_stub.domain.chargers import MAX_CHARGER_ID_LENGTH
from backend_stub.errors import NotConnected
from backend_stub.ocpp.framing import (
    CALL,
    CALLERROR,
    CALLRESULT,
    MAX_UNIQUE_ID_LENGTH,
    CallErrorReply,
    Direction,
    Frame,
    dumps,
    parse_frame,
    redacted,
    utc_now_iso,
)
from backend_stub.ocpp.guard import (
    AuthThrottle,
    ConnectionGuard,
    RateLimitFilter,
    accept_backlog,
    listen_backlog,
    retry_after_header,
)
from backend_stub.ocpp.handshake import HandshakeCredentials, handshake_credentials, offered_subprotocols
from backend_stub.ocpp.overload import BootGate
from chargepoint.csms.schemas import surely_valid, validate

__all__ = [
    "CALL",
    "CALLERROR",
    "CALLRESULT",
    "MAX_UNIQUE_ID_LENGTH",
    "NO_REPLY",
    "OCPP16",
    "OCPP201",
    "VERSIONS",
    "CallErrorReply",
    "CentralSystem",
    "Direction",
    "Frame",
    "Handler",
    "OcppVersion",
    "ServerObserver",
    "utc_now_iso",
]

log = logging.getLogger(__name__)
# Refusals and evictions are logged here, at most a few lines per second per kind (a flood must not fill the disk).
refusal_log = logging.getLogger(__name__ + ".refusals")
refusal_log.addFilter(RateLimitFilter())
violation_log = logging.getLogger(__name__ + ".violations")
violation_log.addFilter(RateLimitFilter())


PATH_PREFIX = "/ocpp/"
CLOSE_TIMEOUT_S = 5.0
HANDSHAKE_TIMEOUT_S = 10.0
MAX_BOOTED_REMEMBERED = 100_000
MAX_RECORDED_PROBLEMS = 10_000  # `violations` kept in memory (the oldest tenth dropped when full)
# One recorded problem's text: it quotes a stranger's bytes (a 64 KB subprotocol header, a 6000-character CSR), and
# 10,000 of them must stay a few MB, not gigabytes.
MAX_PROBLEM_CHARS = 500
MAX_ERROR_DESCRIPTION = 255  # OCPP-J 2.0.1 §4.2.3 CALLERROR ErrorDescription: string[0..255]


class _NoReply(enum.Enum):
    """Type of the NO_REPLY sentinel."""

    NO_REPLY = "NO_REPLY"


NO_REPLY = _NoReply.NO_REPLY
"""Return this from a handler to leave the CALL unanswered (to test charger timeouts)."""

HandlerResult: TypeAlias = dict[str, Any] | _NoReply
Handler: TypeAlias = Callable[[str, dict[str, Any]], HandlerResult | Awaitable[HandlerResult]]
Admission: TypeAlias = Literal["ok", "unknown", "unauthorized"]
# Security profile a handshake offers (OCPP 1.6 security whitepaper, "Security Profiles"): 0 no credentials,
# 1 Basic auth over ws://, 2 Basic auth over wss://, 3 a client certificate for this charger id (checked by the
# server before admission).
SecurityProfile: TypeAlias = int
CallObserver: TypeAlias = Callable[[str, str, dict[str, Any], dict[str, Any]], None]


# --------------------------------------------------------------------------------------------------------------
# Version table
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OcppVersion:
    """Everything version-specific the server needs, keyed by WebSocket subprotocol in `VERSIONS`."""

    subprotocol: str
    schema_version: str  # the version string `ocpp.messages` uses to find its JSON schemas
    charge_point_actions: frozenset[str]  # actions a charger may send as CALL
    error_codes: frozenset[str]  # CALLERROR codes valid on the wire
    error_code_aliases: Mapping[str, str]  # `ocpp` package error code -> wire error code

    def wire_error_code(self, code: str) -> str:
        """Translate an `ocpp` package error code into this version's spelling."""
        return self.error_code_aliases.get(code, code)


OCPP16 = OcppVersion(
    subprotocol="ocpp1.6",
    schema_version="1.6",
    charge_point_actions=frozenset(
        {
            "Authorize",
            "BootNotification",
            "DataTransfer",
            "DiagnosticsStatusNotification",
            "FirmwareStatusNotification",
            "Heartbeat",
            "MeterValues",
            "StartTransaction",
            "StatusNotification",
            "StopTransaction",
            "SecurityEventNotification",
            "LogStatusNotification",
            "SignedFirmwareStatusNotification",
            "SignCertificate",
        }
    ),
    error_codes=frozenset(
        {
            "NotImplemented",
            "NotSupported",
            "InternalError",
            "ProtocolError",
            "SecurityError",
            "FormationViolation",
            "PropertyConstraintViolation",
            "OccurenceConstraintViolation",
            "TypeConstraintViolation",
            "GenericError",
        }
    ),
    # OCPP 1.6 keeps its typos on the wire (errata 5.1, 5.2); the ocpp package raises the 2.0.1 spelling.
    error_code_aliases={
        "FormatViolation": "FormationViolation",
        "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
    },
)

OCPP201 = OcppVersion(
    subprotocol="ocpp2.0.1",
    schema_version="2.0.1",
    # OCPP 2.0.1 Part 2, the messages a charging station sends (by functional block).
    charge_point_actions=frozenset(
        {
            "Authorize",
            "BootNotification",
            "ClearedChargingLimit",
            "DataTransfer",
            "FirmwareStatusNotification",
            "Get15118EVCertificate",
            "GetCertificateStatus",
            "Heartbeat",
            "LogStatusNotification",
            "MeterValues",
            "NotifyChargingLimit",
            "NotifyCustomerInformation",
            "NotifyDisplayMessages",
            "NotifyEVChargingNeeds",
            "NotifyEVChargingSchedule",
            "NotifyEvent",
            "NotifyMonitoringReport",
            "NotifyReport",
            "PublishFirmwareStatusNotification",
            "ReportChargingProfiles",
            "ReservationStatusUpdate",
            "SecurityEventNotification",
            "SignCertificate",
            "StatusNotification",
            "TransactionEvent",
        }
    ),
    # OCPP-J 2.0.1 §4.3 RPC framework error codes.
    error_codes=frozenset(
        {
            "FormatViolation",
            "GenericError",
            "InternalError",
            "MessageTypeNotSupported",
            "NotImplemented",
            "NotSupported",
            "OccurrenceConstraintViolation",
            "PropertyConstraintViolation",
            "ProtocolError",
            "RpcFrameworkError",
            "SecurityError",
            "TypeConstraintViolation",
        }
    ),
    # Shared code raising a 1.6 spelling still puts the 2.0.1 one on the wire.
    error_code_aliases={
        "FormationViolation": "FormatViolation",
        "OccurenceConstraintViolation": "OccurrenceConstraintViolation",
    },
)

VERSIONS: dict[str, OcppVersion] = {v.subprotocol: v for v in (OCPP16, OCPP201)}
"""Supported OCPP versions keyed by WebSocket subprotocol, in order of preference."""


def _inline_refs(node: Any, definitions: Mapping[str, Any], depth: int = 0) -> Any:
    """``node`` with every local ``$ref`` replaced by its definition (Draft 4: a $ref's siblings are ignored)."""
    if depth > 64:
        raise RecursionError("schema definitions refer to themselves")
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            return _inline_refs(definitions[ref.removeprefix("#/definitions/")], definitions, depth + 1)
        return {k: _inline_refs(v, definitions, depth + 1) for k, v in node.items() if k != "definitions"}
    if isinstance(node, list):
        return [_inline_refs(v, definitions, depth + 1) for v in node]
    return node


def prime_schema_validators(schema_version: str) -> int:
    """Put validators of the version's schemas with their ``$ref``s inlined into the `ocpp` package's cache.

    The same schemas, so the same verdicts, but resolving a ``$ref`` through `referencing` at every use was about a
    quarter of the validation time of a 2.0.1 TransactionEvent (py-spy under `benchmarks/csms.py --version
    2.0.1`). Schemas that refer to themselves are left to the package. Returns how many were primed.
    """
    directory = Path(ocpp_messages.__file__).parent / f"v{schema_version.replace('.', '')}" / "schemas"
    primed = 0
    for path in sorted(directory.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8-sig"))
        try:
            inlined = _inline_refs(schema, schema.get("definitions", {}))
        except (RecursionError, KeyError):
            continue
        if "$schema" in schema:
            inlined["$schema"] = schema["$schema"]
        ocpp_messages._validators[f"{path.stem}_{schema_version}"] = Draft4Validator(inlined)
        primed += 1
    return primed


_primed: set[str] = set()


def _prime_once(schema_version: str) -> None:
    """`prime_schema_validators` the first time a server is made in this process."""
    if schema_version not in _primed:
        _primed.add(schema_version)
        prime_schema_validators(schema_version)


def _schema_error(version: OcppVersion, message: Call | CallResult) -> CallErrorReply | None:
    """Validate a CALL or CALLRESULT payload against the version's JSON schema; return the error if invalid.

    A message without a schema (an action unknown to the version) counts as valid. The compiled check
    (`schemas.surely_valid`) answers for valid payloads; the package's validator judges the rest and words the error.
    """
    if surely_valid(message.message_type_id, message.action, message.payload, version.schema_version):
        return None
    try:
        validate(message, version.schema_version)
    except SchemaMissingError:
        return None
    except OCPPError as e:
        cause = e.details.get("cause") if isinstance(e.details, dict) else None
        return CallErrorReply(version.wire_error_code(e.code), str(cause or e.description))
    return None


# --------------------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Connection:
    """State of one charger connection."""

    cp_id: str
    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    version: OcppVersion
    call_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = field(default_factory=dict)
    expired: dict[str, str] = field(default_factory=dict)  # uniqueId -> action of server CALLs that timed out
    booted: bool = False  # sent a BootNotification on this connection
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    is_open: bool = True  # False as soon as the socket is gone
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # set once the cleanup is done
    # The charger's own message limits learned on this connection (`backend_stub.ocpp.limits`): a few fixed names,
    # so bounded per connection, gone with it, and forgotten at every BootNotification (a reboot may change them).
    limits: dict[str, int | None] = field(default_factory=dict)
    limits_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one read of them at a time


class ServerObserver(Protocol):
    """What the transport reports for metrics; each method is cheap and never raises."""

    def connection(self, subprotocol: str, delta: int) -> None:
        """A charger WebSocket of ``subprotocol`` opened (+1) or closed (-1)."""
        ...

    def message(self, subprotocol: str, action: str, result: str, duration_s: float) -> None:
        """A charger CALL was answered (or refused) with ``result`` after ``duration_s``."""
        ...

    def refused(self, reason: str) -> None:
        """A handshake was refused (or a connection closed by a limit) for ``reason``."""
        ...


class _NoObserver:
    """The default observer: reports go nowhere."""

    def connection(self, subprotocol: str, delta: int) -> None:
        """Ignore."""

    def message(self, subprotocol: str, action: str, result: str, duration_s: float) -> None:
        """Ignore."""

    def refused(self, reason: str) -> None:
        """Ignore."""


# The reason label of a refused handshake, by the HTTP status `_refusal` answered with.
_REFUSAL_REASONS = {
    HTTPStatus.NOT_FOUND: "unknown",
    HTTPStatus.BAD_REQUEST: "no_subprotocol",
    HTTPStatus.TOO_MANY_REQUESTS: "auth_lockout",
    HTTPStatus.FORBIDDEN: "no_client_certificate",
    HTTPStatus.UNAUTHORIZED: "unauthorized",
}


class CentralSystem:
    """An OCPP-J central system: answers charger CALLs through `handlers`, records every frame in `log`.

    It serves on aiohttp: `app` carries the WebSocket route `/ocpp/{chargePointId}`, and an application built on
    it (the bundled central system) adds its HTTP routes to the same `app` before `start()`, so one port
    carries OCPP, the REST API and the web pages. The frame logic below does not depend on the transport.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        log_path: str | Path | None = None,
        response_timeout_s: float = 10,
        max_message_bytes: int = 64 * 1024,
        unique_ids: Callable[[], str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        handshake_timeout_s: float = HANDSHAKE_TIMEOUT_S,
        boot_timeout_s: float | None = None,
        max_connections: int | None = None,
        max_connections_per_address: int | None = None,
        api_reserve: int = 64,
    ) -> None:
        """Configure the server; nothing is bound until `start()`. With ``ssl_context`` it serves wss://.

        A connection must complete its TLS handshake and its HTTP request head within ``handshake_timeout_s``
        (and an idle keep-alive connection is closed after as long). With ``boot_timeout_s`` a WebSocket that has
        sent no BootNotification by then is closed, unless its charger booted before (`booted_before`).
        ``max_connections`` (default: below the fd limit), ``max_connections_per_address`` (default: none) and
        ``api_reserve`` (slots WebSockets never take) configure `guard`.
        """
        self.host = host
        self.handshake_timeout_s = handshake_timeout_s
        self.boot_timeout_s = boot_timeout_s
        self.guard = ConnectionGuard(max_connections, max_connections_per_address, api_reserve)
        self.auth_throttle = AuthThrottle()
        self.ssl_context = ssl_context
        # A frame over this size closes that connection with 1009 (message too big); the server carries on.
        self.max_message_bytes = max_message_bytes
        self.port = port
        self.log_path = Path(log_path) if log_path is not None else None
        self.response_timeout_s = response_timeout_s
        self.unique_id_factory: Callable[[], str] = unique_ids or (lambda: str(uuid.uuid4()))

        # Registry check at the handshake: (cp_id, Basic password or None, security profile offered) ->
        # "ok" | "unknown" | "unauthorized" (HTTP 404 / 401). Without one, `credentials_refused` decides (every
        # charger is admitted). Profile 3 means the server has already checked a client certificate for cp_id.
        # It may be a coroutine function, so that a slow password hash runs off the event loop.
        self.admission: (
            Callable[[str, str | None, SecurityProfile], Admission | Awaitable[Admission]] | None
        ) = None
        # Whether a charger is known to have booted before (then it need not boot again on a new connection,
        # OCPP 1.6 §4.2); by default: it sent a BootNotification to this server since it started.
        self.booted_before: Callable[[str], bool] = lambda cp_id: cp_id in self._booted
        # Called with the charger id on every incoming frame of an admitted connection, before it is parsed
        # (the "last seen" time: any message proves liveness, OCPP 1.6 §4.6); must be cheap, it runs per frame.
        self.on_inbound: Callable[[str], None] | None = None
        # Called with what every upgrade request to a charger path presented (TLS version, verified client
        # certificate names, Basic password), before it is checked; must be cheap, a flood of handshakes calls it.
        self.handshake_observers: list[Callable[[HandshakeCredentials], None]] = []
        # Called with (cp_id, action, payload, answer) after every CALLRESULT to a server CALL.
        self.call_observers: list[CallObserver] = []
        self.observer: ServerObserver = _NoObserver()  # connections, answered CALLs, refusals (metrics)
        self.validate_responses = True
        # SO_REUSEPORT: several worker processes listen on one port and the kernel spreads connections over them
        # (`serve --workers`, for servers whose workers share no state).
        self.reuse_port = False
        # More addresses to listen on, same port (a client address opens at most ~28,000 connections to one
        # address and port: 100,000 chargers on loopback need several, e.g. 127.0.0.2-4).
        self.extra_hosts: tuple[str, ...] = ()
        # With a gate, a BootNotification that arrives while the server is overloaded is answered Pending with a
        # retry interval instead of being handled (a boot storm after a power cut; `backend_stub.ocpp.overload`).
        self.boot_gate: BootGate | None = None
        # Handlers keyed by subprotocol, then action; an action without one is answered NotImplemented. The
        # application installs its own (backend_stub.ocpp.v16); backend_stub.testing installs scripted ones.
        self.handlers_by_subprotocol: dict[str, dict[str, Handler]] = {sub: {} for sub in VERSIONS}
        _prime_once(OCPP201.schema_version)

        # What happened. A long-running server sets keep_frames = False: the in-memory log would grow without
        # bound (the JSONL file, if any, still gets every frame).
        self.keep_frames = True
        self.log: list[Frame] = []
        # (cp_id, action, message) of what a charger did wrong ...
        self.violations: list[tuple[str, str, str]] = []
        # ... and of what the server did wrong (a handler raised or returned an invalid response).
        self.errors: list[tuple[str, str, str]] = []

        self._connections: dict[str, _Connection] = {}
        self._websockets = 0  # WebSocket handshakes and connections being served
        self._booted: dict[str, None] = {}  # ids that sent a BootNotification (oldest first, bounded)
        self.app = web.Application(client_max_size=1024 * 1024, middlewares=[self._busy_middleware])
        self.app.router.add_get(PATH_PREFIX + "{tail:.*}", self._websocket)
        self._runner: web.AppRunner | None = None
        self._log_file: IO[str] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base WebSocket URL; a charger connects to `{url}/{cp_id}`."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "wss" if self.ssl_context is not None else "ws"
        return f"{scheme}://{host}:{self.port}/ocpp"

    @property
    def http_url(self) -> str:
        """Base HTTP URL of the same port (the REST API and web pages of an application built on this)."""
        return self.url.replace("ws", "http", 1).removesuffix("/ocpp")

    async def start(self) -> None:
        """Bind and start serving; afterwards `port` is the real port."""
        if self._runner is not None:
            raise RuntimeError("central system already started")
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log_file = self.log_path.open("a", encoding="utf-8")
        # aiohttp closes a connection whose request head is not complete `keepalive_timeout` after it opened
        # (or after its previous response): that is the slowloris / idle-socket timeout.
        self._runner = web.AppRunner(
            self.app,
            access_log=None,
            shutdown_timeout=CLOSE_TIMEOUT_S,
            keepalive_timeout=self.handshake_timeout_s,
        )
        try:
            await self._runner.setup()
            self._guard_connections(self._runner)
            # A large backlog helps when every charger of a site reconnects at once after a power cut, but asyncio
            # accepts up to `backlog` sockets in one go, before `guard` sees them: it is bounded by the file
            # descriptors left above the connection cap, so that accept() next to never meets EMFILE.
            site = _Site(
                self._runner,
                [self.host, *self.extra_hosts] if self.extra_hosts else self.host,
                self.port,
                ssl_context=self.ssl_context,
                backlog=accept_backlog(self.guard.max_connections),
                ssl_handshake_timeout_s=self.handshake_timeout_s,
                listen_backlog=listen_backlog(),
                reuse_port=self.reuse_port or None,
            )
            await site.start()
        except BaseException:
            await self.stop()
            raise
        self.port = self._runner.addresses[0][1]
        if self.boot_gate is not None:
            self.boot_gate.start()
        log.info("central system listening on %s", self.url)

    def _guard_connections(self, runner: web.AppRunner) -> None:
        """Count every TCP connection at accept time in `guard`; refuse (reset) those over a cap.

        aiohttp's request handler reports each connection to its server's ``connection_made`` and
        ``connection_lost``: wrapping those two on our server instance sees every connection, before any byte of
        it is read.
        """
        server = runner.server
        assert server is not None
        made, lost = server.connection_made, server.connection_lost
        transports: dict[
            RequestHandler, asyncio.Transport
        ] = {}  # the handler forgets its own before it is lost

        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            transports[handler] = transport
            refusal = self.guard.admit(transport)
            if refusal is not None:
                refusal_log.warning("refused a connection: %s", refusal)
                self.observer.refused("connection_cap")
                # After the handler has started its request loop (scheduled right after this call): an abort
                # now would run its connection_lost first, and the loop would fail on a handler torn down.
                asyncio.get_running_loop().call_soon(transport.abort)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            transport = transports.pop(handler, None)
            if transport is not None:
                self.guard.release(transport)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    @web.middleware
    async def _busy_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """A connection handling a request (or serving a WebSocket) is not idle: it is never evicted."""
        self.guard.busy(request.transport, True)
        try:
            return await handler(request)
        finally:
            self.guard.busy(request.transport, False)

    async def stop(self) -> None:
        """Close all connections and the listening socket, then the log file."""
        if self.boot_gate is not None:
            await self.boot_gate.stop()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.shutdown()  # stop accepting
            connections = list(self._connections.values())
            await asyncio.gather(
                *(conn.ws.close(code=1001, message=b"server shutting down") for conn in connections),
                return_exceptions=True,
            )
            await runner.cleanup()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    async def __aenter__(self) -> Self:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the server."""
        await self.stop()

    # ---- configuration -----------------------------------------------------------------------------------------

    @property
    def handlers(self) -> dict[str, Handler]:
        """OCPP 1.6 handlers keyed by action (mutate this dict to script the central system)."""
        return self.handlers_by_subprotocol[OCPP16.subprotocol]

    @handlers.setter
    def handlers(self, value: dict[str, Handler]) -> None:
        """Replace the OCPP 1.6 handlers."""
        self.handlers_by_subprotocol[OCPP16.subprotocol] = value

    # ---- queries and waiting for tests -------------------------------------------------------------------------

    @property
    def connected(self) -> set[str]:
        """Ids of the chargers connected right now."""
        return set(self._connections)

    def subprotocol(self, cp_id: str) -> str | None:
        """The subprotocol ``cp_id`` negotiated on its live connection, None if it is not connected."""
        conn = self._connections.get(cp_id)
        return conn.version.subprotocol if conn is not None else None

    def limits(self, cp_id: str) -> dict[str, int | None]:
        """The message limits learned from ``cp_id`` since its last BootNotification on its live connection (the
        dict itself: callers add what they learn); NotConnected if it is not connected."""
        return self._connection(cp_id).limits

    def limits_lock(self, cp_id: str) -> asyncio.Lock:
        """Held while ``cp_id``'s limits are read, so that concurrent commands ask it once; NotConnected if it is
        not connected."""
        return self._connection(cp_id).limits_lock

    def calls(self, action: str, cp_id: str | None = None) -> list[Frame]:
        """Incoming CALL frames of `action` (from `cp_id` if given)."""
        return [f for f in self.log if _is_incoming_call(f, action, cp_id)]

    async def wait_for(
        self,
        predicate: Callable[[Frame], bool],
        timeout: float = 10.0,  # noqa: ASYNC109
        *,
        after: int = 0,
    ) -> Frame:
        """Return the first frame in `log[after:]` matching `predicate`, waiting for it up to `timeout` s."""
        index = after
        try:
            async with asyncio.timeout(timeout):
                while True:
                    changed = self._changed  # taken before scanning: no frame can slip in between
                    while index < len(self.log):
                        frame = self.log[index]
                        index += 1
                        if predicate(frame):
                            return frame
                    await changed.wait()
        except TimeoutError:
            raise TimeoutError(f"no matching frame within {timeout} s") from None

    async def wait_for_call(
        self,
        action: str,
        cp_id: str | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109
        *,
        after: int = 0,
        where: Callable[[Any], bool] | None = None,
    ) -> Frame:
        """Wait for an incoming CALL of `action` (from `cp_id`, whose payload satisfies `where`, if given)."""

        def matches(frame: Frame) -> bool:
            return _is_incoming_call(frame, action, cp_id) and (where is None or where(frame.payload))

        try:
            return await self.wait_for(matches, timeout, after=after)
        except TimeoutError:
            raise TimeoutError(f"no {action} CALL from {cp_id or 'any charger'} within {timeout} s") from None

    async def wait_connected(self, cp_id: str, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait until charger `cp_id` is connected."""
        await self._wait_until(lambda: cp_id in self._connections, timeout, f"{cp_id} did not connect")

    async def wait_disconnected(self, cp_id: str, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait until charger `cp_id` is not connected."""
        await self._wait_until(lambda: cp_id not in self._connections, timeout, f"{cp_id} did not disconnect")

    async def _wait_until(self, condition: Callable[[], bool], limit_s: float, message: str) -> None:
        """Wait until `condition()` holds, re-checking whenever something changes."""
        try:
            async with asyncio.timeout(limit_s):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"{message} within {limit_s} s") from None

    # ---- talking to chargers -----------------------------------------------------------------------------------

    async def call(
        self,
        cp_id: str,
        action: str,
        payload: dict[str, Any],
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Send a CALL to a charger and return the CALLRESULT payload.

        Raises `CallErrorReply` on a CALLERROR, `TimeoutError` without an answer in time, `KeyError` if the
        charger is not connected and `ConnectionError` if it disconnects before answering.
        """
        conn = self._connection(cp_id)
        timeout = self.response_timeout_s if timeout is None else timeout
        async with conn.call_lock:
            if not conn.is_open:
                raise ConnectionError(f"{cp_id} disconnected")
            unique_id = self.unique_id_factory()
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            conn.pending[unique_id] = (action, future)
            try:
                await self._send(conn, [CALL, unique_id, action, payload], action)
                async with asyncio.timeout(timeout):
                    answer = await future
            except TimeoutError:
                conn.expired[unique_id] = action
                raise TimeoutError(f"{cp_id} did not answer {action} within {timeout} s") from None
            finally:
                conn.pending.pop(unique_id, None)
        for observer in self.call_observers:
            try:
                observer(cp_id, action, payload, answer)
            except Exception:
                log.exception("call observer failed for %s %s", cp_id, action)
        return answer

    async def send_raw(self, cp_id: str, text: str) -> None:
        """Send any text frame to a charger (for malformed-frame tests); it is logged like any frame."""
        conn = self._connection(cp_id)
        parsed = parse_frame(text)
        self._record(
            conn.cp_id, "out", text, parsed.message_type, parsed.unique_id, parsed.action, parsed.payload
        )
        await conn.ws.send_str(text)

    async def disconnect(self, cp_id: str, *, abrupt: bool = True) -> None:
        """Drop a charger's connection and wait until it is gone.

        `abrupt=True` closes the TCP connection without a WebSocket close frame (like a network drop, the
        charger sees close code 1006); `abrupt=False` performs a normal closing handshake.
        """
        conn = self._connection(cp_id)
        if abrupt and isinstance(conn.transport, asyncio.Transport):
            conn.transport.abort()
        else:
            await conn.ws.close()
        await conn.closed.wait()

    def _connection(self, cp_id: str) -> _Connection:
        """Return the live connection of `cp_id`, or raise NotConnected (a KeyError)."""
        try:
            return self._connections[cp_id]
        except KeyError:
            raise NotConnected(cp_id) from None

    # ---- handshake ---------------------------------------------------------------------------------------------

    @property
    def client_certificates_required(self) -> bool:
        """Whether OCPP connections need a client certificate (security profile 3: TLS with a client CA)."""
        return self.ssl_context is not None and self.ssl_context.verify_mode != ssl.CERT_NONE

    async def _refusal(self, request: web.Request, cp_id: str | None) -> web.Response | None:
        """Check path, availability, back-off, credentials and subprotocol before the WebSocket handshake."""
        if cp_id is None:
            return web.Response(
                status=HTTPStatus.NOT_FOUND, text=f"Unknown path; connect to {PATH_PREFIX}<id>\n"
            )
        credentials = handshake_credentials(request, cp_id)
        for observer in self.handshake_observers:
            observer(credentials)
        offered = offered_subprotocols(request.headers.getall("Sec-WebSocket-Protocol", []))
        if not any(sub in VERSIONS for sub in offered):
            shown = [sub[:40] for sub in offered[:8]]
            self._violation(cp_id, "", f"handshake offers no supported subprotocol (offered: {shown})")
            return web.Response(
                status=HTTPStatus.BAD_REQUEST,
                text=f"Offer one of these subprotocols: {', '.join(VERSIONS)}\n",
            )
        address = request.remote or "?"
        wait_s = self.auth_throttle.retry_after_s(cp_id, address)
        if wait_s is not None:
            # Checked before the credentials: during a lock-out even the right password gets 429, so a guess
            # cannot be confirmed (and no scrypt time is spent on a flood).
            refusal_log.warning(
                "refused %s from %s: locked out after failed authentications",
                cp_id,
                address,
                extra={"cp_id": cp_id},
            )
            return web.Response(
                status=HTTPStatus.TOO_MANY_REQUESTS,
                text="Too many failed authentications; try again later\n",
                headers={"Retry-After": retry_after_header(wait_s)},
            )
        profile: SecurityProfile = 0
        if self.client_certificates_required:
            # OCPP 1.6 security whitepaper, profile 3: the charger is identified by its TLS client certificate,
            # whose subject CN (or a subjectAltName) is the charge point identity.
            if not credentials.certificate_identifies:
                self.auth_throttle.failed(cp_id, address)
                refusal_log.warning(
                    "refused %s from %s: no client certificate for this charger id (names: %s)",
                    cp_id,
                    address,
                    sorted(credentials.certificate_names)[:4],
                )
                return web.Response(
                    status=HTTPStatus.FORBIDDEN,
                    text="A client certificate issued to this charger id is required\n",
                )
            profile = 3
        password = credentials.password
        if profile == 0 and password is not None:
            profile = 2 if self.ssl_context is not None else 1
        if self.admission is not None:
            verdict = self.admission(cp_id, password, profile)
            if inspect.isawaitable(verdict):
                verdict = await verdict
            if verdict == "unknown":
                self.auth_throttle.failed(cp_id, address)
                return web.Response(status=HTTPStatus.NOT_FOUND, text=f"Unknown charge point {cp_id}\n")
            unauthorized = verdict == "unauthorized"
        else:
            unauthorized = self.credentials_refused(credentials)
        if unauthorized:
            self.auth_throttle.failed(cp_id, address)
            refusal_log.warning(
                "refused %s from %s: wrong or missing credentials", cp_id, address, extra={"cp_id": cp_id}
            )
            return web.Response(
                status=HTTPStatus.UNAUTHORIZED,
                text="Invalid or missing credentials\n",
                headers={"WWW-Authenticate": 'Basic realm="ocpp", charset="UTF-8"'},
            )
        self.auth_throttle.succeeded(cp_id)
        return None

    def credentials_refused(self, credentials: HandshakeCredentials) -> bool:
        """Without an `admission` check, whether a handshake's credentials are refused (HTTP 401): never, here.

        The override point for test servers (`backend_stub.testing`), which check passwords they were given."""
        return False

    # ---- connection handling -----------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        """Admit a charger and serve its connection until it closes."""
        if self._websockets >= self.guard.max_websockets:
            # The last `guard.api_reserve` connection slots are kept for the REST API and the dashboard.
            refusal_log.warning("refused a WebSocket: %d open (the cap)", self._websockets)
            self.observer.refused("websocket_cap")
            return web.Response(
                status=HTTPStatus.SERVICE_UNAVAILABLE,
                text="Too many charger connections\n",
                headers={"Retry-After": "60"},
            )
        self._websockets += 1
        try:
            return await self._serve_websocket(request)
        finally:
            self._websockets -= 1

    async def _serve_websocket(self, request: web.Request) -> web.StreamResponse:
        """Check the handshake, then serve the charger's connection until it closes."""
        cp_id = _charger_id(request.raw_path)
        ws = web.WebSocketResponse(
            protocols=tuple(VERSIONS),
            compress=False,
            max_msg_size=self.max_message_bytes,
            timeout=CLOSE_TIMEOUT_S,
            autoping=True,
        )
        # Checked before the registry: a request that cannot become an OCPP WebSocket must not add a pending
        # charger or spend a password check.
        if cp_id is not None and not ws.can_prepare(request).ok:
            return web.Response(status=HTTPStatus.UPGRADE_REQUIRED, text="Expected a WebSocket handshake\n")
        refusal = await self._refusal(request, cp_id)
        if refusal is not None:
            self.observer.refused(_REFUSAL_REASONS.get(HTTPStatus(refusal.status), str(refusal.status)))
            return refusal
        assert cp_id is not None
        await ws.prepare(request)
        version = VERSIONS[ws.ws_protocol or ""]  # _refusal made sure one of ours was offered
        conn = _Connection(cp_id, ws, request.transport, version)
        self.observer.connection(version.subprotocol, 1)
        previous = self._connections.get(cp_id)
        self._connections[cp_id] = conn
        self._event("connected", cp_id, subprotocol=version.subprotocol)
        if previous is not None:
            # Only a connection that passed `_refusal` (password or certificate, when the charger has one)
            # gets here: a stranger cannot kick a charger off that has credentials.
            log.info("%s reconnected; closing its previous connection", cp_id)
            self._spawn(self._tasks, _close(previous.ws, 1000, "replaced by a new connection"))
        if self.boot_timeout_s is not None and not self.booted_before(cp_id):
            self._spawn(conn.tasks, self._expect_boot(conn, self.boot_timeout_s))
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    self._on_frame(conn, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    log.warning("%s connection error: %s", cp_id, ws.exception())
        finally:
            conn.is_open = False
            for _action, future in conn.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError(f"{cp_id} disconnected"))
            for task in list(conn.tasks):
                task.cancel()
            await asyncio.gather(*conn.tasks, return_exceptions=True)
            if self._connections.get(cp_id) is conn:
                del self._connections[cp_id]
            self._event("disconnected", cp_id, code=ws.close_code)
            self.observer.connection(version.subprotocol, -1)
            conn.closed.set()
        return ws

    async def _expect_boot(self, conn: _Connection, timeout_s: float) -> None:
        """Close the connection unless it sends a BootNotification within `timeout_s`."""
        await asyncio.sleep(timeout_s)
        if not conn.booted and conn.is_open:
            refusal_log.warning("%s sent no BootNotification within %s s; closing it", conn.cp_id, timeout_s)
            self._violation(conn.cp_id, "", f"no BootNotification within {timeout_s} s")
            self.observer.refused("boot_timeout")
            await _close(conn.ws, 1008, "BootNotification expected")

    def _on_frame(self, conn: _Connection, data: str | bytes) -> None:
        """Record one incoming frame and dispatch it."""
        if self.on_inbound is not None:
            self.on_inbound(conn.cp_id)
        if isinstance(data, bytes):
            text = data.decode("utf-8", errors="replace")
            binary = True
        else:
            text, binary = data, False
        parsed = parse_frame(text)
        action = parsed.action
        if parsed.message_type in (CALLRESULT, CALLERROR) and parsed.unique_id is not None:
            pending = conn.pending.get(parsed.unique_id)
            action = pending[0] if pending else conn.expired.get(parsed.unique_id)
        self._record(conn.cp_id, "in", text, parsed.message_type, parsed.unique_id, action, parsed.payload)
        if binary:
            self._violation(conn.cp_id, action or "", "binary WebSocket frame (OCPP-J uses text frames)")
        if parsed.problem is not None:
            self._violation(conn.cp_id, action or "", f"malformed frame: {parsed.problem}")
            if parsed.message_type == CALL or parsed.reply_to is not None:
                self.observer.message(
                    conn.version.subprotocol, _action_label(conn.version, action), "malformed", 0
                )
            if parsed.reply_to is not None:
                reply = [
                    CALLERROR,
                    parsed.reply_to,
                    conn.version.wire_error_code("FormatViolation"),
                    parsed.problem[:MAX_ERROR_DESCRIPTION],
                    {},
                ]
                self._spawn(conn.tasks, self._send(conn, reply, action))
            return
        assert parsed.unique_id is not None
        if parsed.message_type == CALL:
            assert parsed.action is not None
            if parsed.action == "BootNotification":
                conn.limits.clear()
            if parsed.action == "BootNotification" and not conn.booted:
                conn.booted = True
                self._booted[conn.cp_id] = None
                if len(self._booted) > MAX_BOOTED_REMEMBERED:
                    del self._booted[next(iter(self._booted))]
            task = self._spawn(
                conn.tasks, self._answer(conn, parsed.unique_id, parsed.action, parsed.payload)
            )
            gate = self.boot_gate
            if gate is not None and parsed.action == "BootNotification":
                # Counted from arrival: the boots queued behind a busy loop are the overload signal. A callback,
                # not a `finally`, so that a task cancelled before it ran (connection closed) is counted out too.
                gate.arrived()
                task.add_done_callback(lambda _: gate.answered())
        elif parsed.message_type == CALLRESULT:
            self._on_result(conn, parsed.unique_id, action, parsed.payload)
        else:
            self._on_error(conn, parsed.unique_id, action, parsed.payload)

    def _on_result(
        self, conn: _Connection, unique_id: str, action: str | None, payload: dict[str, Any]
    ) -> None:
        """Validate a CALLRESULT and complete the server CALL it answers."""
        if action is None:
            self._violation(conn.cp_id, "", f"CALLRESULT for unknown uniqueId {unique_id!r}")
            return
        error = _schema_error(conn.version, CallResult(unique_id, payload, action))
        if error is not None:
            self._violation(conn.cp_id, action, f"invalid {action} CALLRESULT: {error}")
        pending = conn.pending.get(unique_id)
        if pending is not None and not pending[1].done():
            pending[1].set_result(payload)

    def _on_error(
        self, conn: _Connection, unique_id: str, action: str | None, payload: dict[str, Any]
    ) -> None:
        """Complete the server CALL a CALLERROR answers with a `CallErrorReply`."""
        code = payload["errorCode"]
        if action is None:
            self._violation(conn.cp_id, "", f"CALLERROR for unknown uniqueId {unique_id!r}")
        if code not in conn.version.error_codes:
            self._violation(conn.cp_id, action or "", f"unknown CALLERROR code {code!r}")
        pending = conn.pending.get(unique_id)
        if pending is not None and not pending[1].done():
            pending[1].set_exception(
                CallErrorReply(code, payload["errorDescription"], payload["errorDetails"])
            )

    async def _answer(self, conn: _Connection, unique_id: str, action: str, payload: dict[str, Any]) -> None:
        """Answer an incoming CALL and report its result and latency to `observer`."""
        started_s = time.perf_counter()
        result = await self._answer_call(conn, unique_id, action, payload)
        label = _action_label(conn.version, action)
        self.observer.message(conn.version.subprotocol, label, result, time.perf_counter() - started_s)

    async def _answer_call(
        self, conn: _Connection, unique_id: str, action: str, payload: dict[str, Any]
    ) -> str:
        """Validate an incoming CALL, run its handler and send the answer; returns the result's metric label."""
        version, cp_id = conn.version, conn.cp_id
        if action not in version.charge_point_actions:
            self._violation(
                cp_id, action, f"{action} is not a charge-point-initiated {version.subprotocol} action"
            )
        else:
            error = _schema_error(version, Call(unique_id, action, payload))
            if error is not None:
                self._violation(cp_id, action, f"invalid {action} CALL: {error}")
                await self._send_error(conn, unique_id, action, error)
                return "invalid"
        handler = self.handlers_by_subprotocol[version.subprotocol].get(action)
        if handler is None:
            await self._send_error(
                conn, unique_id, action, CallErrorReply("NotImplemented", f"No handler for {action}")
            )
            return "not_implemented"
        if action == "BootNotification" and self.boot_gate is not None:
            overload = self.boot_gate.admit()
            if overload is not None:
                await self._defer_boot(conn, unique_id, overload)
                return "deferred"
        try:
            result = handler(cp_id, payload)
            if inspect.isawaitable(result):
                result = await result
        except CallErrorReply as reply:
            await self._send_error(conn, unique_id, action, reply)
            return "call_error"
        except Exception as e:
            log.exception("%s handler failed for %s", action, cp_id, extra={"cp_id": cp_id, "action": action})
            self._error(cp_id, action, f"handler raised {e!r}")
            await self._send_error(conn, unique_id, action, CallErrorReply("InternalError", "Handler failed"))
            return "internal_error"
        if result is NO_REPLY:
            return "no_reply"
        if self.validate_responses:
            error = _schema_error(version, CallResult(unique_id, result, action))
            if error is not None:
                log.error("%s handler returned an invalid response for %s: %s", action, cp_id, error)
                self._error(cp_id, action, f"invalid {action} response: {error}")
                await self._send_error(
                    conn, unique_id, action, CallErrorReply("InternalError", "Invalid response")
                )
                return "internal_error"
        await self._send(conn, [CALLRESULT, unique_id, result], action)
        return "ok"

    async def _defer_boot(self, conn: _Connection, unique_id: str, overload: str) -> None:
        """Answer a BootNotification Pending with a retry appointment (the same payload in 1.6 and 2.0.1)."""
        assert self.boot_gate is not None
        interval = self.boot_gate.defer()
        refusal_log.warning(
            "BootNotification of %s deferred (Pending, retry in %s s): %s", conn.cp_id, interval, overload
        )
        answer = {"status": "Pending", "currentTime": utc_now_iso(), "interval": interval}
        await self._send(conn, [CALLRESULT, unique_id, answer], "BootNotification")

    async def _send_error(
        self, conn: _Connection, unique_id: str, action: str, error: CallErrorReply
    ) -> None:
        """Answer a CALL with a CALLERROR (a description quoting the charger's own long value cut to 255 characters)."""
        code = conn.version.wire_error_code(error.code)
        description = error.description[:MAX_ERROR_DESCRIPTION]
        await self._send(conn, [CALLERROR, unique_id, code, description, error.details], action)

    async def _send(self, conn: _Connection, msg: list[Any], action: str | None) -> None:
        """Record and send one frame; a frame that cannot be sent any more is only recorded."""
        text = dumps(msg)
        payload: Any = msg[3] if msg[0] == CALL else msg[2] if msg[0] == CALLRESULT else None
        if msg[0] == CALLERROR:
            payload = {"errorCode": msg[2], "errorDescription": msg[3], "errorDetails": msg[4]}
        self._record(conn.cp_id, "out", text, msg[0], msg[1], action, payload)
        if conn.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await conn.ws.send_str(text)

    # ---- bookkeeping -------------------------------------------------------------------------------------------

    def _record(
        self,
        cp_id: str,
        direction: Direction,
        raw: str,
        message_type: int | None,
        unique_id: str | None,
        action: str | None,
        payload: Any,
    ) -> None:
        """Append a frame to the log (and the JSONL file) and wake up waiters."""
        if not self.keep_frames and self._log_file is None:
            return
        frame = Frame(datetime.now(UTC), cp_id, direction, message_type, unique_id, action, payload, raw)
        if self.keep_frames:
            self.log.append(frame)  # in memory, for tests and the session's own waiters: as sent
        shown = redacted(frame)  # what a log keeps: no charger's new password
        log.debug("%s %s %s", cp_id, "<-" if direction == "in" else "->", shown.raw)
        self._write(shown.to_json())
        self._notify()

    def _event(self, event: str, cp_id: str, **extra: Any) -> None:
        """Log a connection event and wake up waiters."""
        log.info("%s %s", cp_id, event, extra={"cp_id": cp_id})
        self._write({"event": event, "ts": datetime.now(UTC).isoformat(), "cp_id": cp_id, **extra})
        self._notify()

    def _violation(self, cp_id: str, action: str, message: str) -> None:
        """Record something a charger did wrong (the log line rate-limited, the list and each entry bounded)."""
        if len(message) > MAX_PROBLEM_CHARS:
            message = message[:MAX_PROBLEM_CHARS] + "…"
        violation_log.warning(
            "OCPP violation by %s (%s): %s", cp_id, action or "-", message, extra={"cp_id": cp_id}
        )
        self.violations.append((cp_id, action, message))
        if len(self.violations) > MAX_RECORDED_PROBLEMS:
            del self.violations[: MAX_RECORDED_PROBLEMS // 10]

    def _error(self, cp_id: str, action: str, message: str) -> None:
        """Record something the server did wrong (a handler raised or answered invalidly); the list is bounded, as a
        charger that keeps triggering the same bug must not grow it forever."""
        if len(message) > MAX_PROBLEM_CHARS:
            message = message[:MAX_PROBLEM_CHARS] + "…"
        self.errors.append((cp_id, action, message))
        if len(self.errors) > MAX_RECORDED_PROBLEMS:
            del self.errors[: MAX_RECORDED_PROBLEMS // 10]

    def _write(self, record: dict[str, Any]) -> None:
        """Append one JSON line to the log file, if any, and flush it."""
        if self._log_file is not None:
            self._log_file.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            self._log_file.flush()

    def _notify(self) -> None:
        """Wake up everything waiting in `wait_for` and friends."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _spawn(self, tasks: set[asyncio.Task[None]], coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `coro` in the background, keeping a reference in `tasks` until it is done; returns its task."""

        # The coroutine itself is the task (not wrapped): a task cancelled before it ran still closes it.
        task = asyncio.create_task(coro)

        def done(task: asyncio.Task[None]) -> None:
            tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                log.error("background task failed", exc_info=task.exception())

        tasks.add(task)
        task.add_done_callback(done)
        return task


class _Site(web.TCPSite):
    """aiohttp's TCP site with a bounded TLS handshake (asyncio's default waits 60 s for a slowloris) and a kernel
    accept queue as deep as the system allows."""

    def __init__(
        self, *args: Any, ssl_handshake_timeout_s: float, listen_backlog: int, **kwargs: Any
    ) -> None:
        """Take TCPSite's arguments, the TLS handshake timeout and the kernel's listen backlog."""
        super().__init__(*args, **kwargs)
        self._ssl_handshake_timeout_s = ssl_handshake_timeout_s
        self._listen_backlog = listen_backlog

    async def start(self) -> None:
        """Listen like TCPSite.start, passing the TLS handshake timeout to asyncio."""
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            server,
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            ssl_handshake_timeout=self._ssl_handshake_timeout_s if self._ssl_context is not None else None,
            reuse_port=self._reuse_port,
        )
        # asyncio uses one number for two things: the kernel's accept queue (listen) and how many sockets it
        # accepts per loop iteration. The second stays small (`accept_backlog`: those sockets hold descriptors
        # before the guard sees them); the first is raised here, so that a boot storm waits in the kernel's queue
        # instead of overflowing it (an overflowing queue drops SYNs: each costs the charger a 1-3-7 s retransmit).
        for transport_socket in self._server.sockets:
            listener = transport_socket.dup()
            try:
                listener.listen(max(self._backlog, self._listen_backlog))
            finally:
                listener.close()
        self._bound_port = self._server.sockets[0].getsockname()[1]


async def _close(ws: web.WebSocketResponse, code: int, reason: str) -> None:
    """Close a WebSocket with a close frame."""
    await ws.close(code=code, message=reason.encode())


def tls_context(cert: str | Path, key: str | Path, client_ca: str | Path | None = None) -> ssl.SSLContext:
    """Server TLS for OCPP security profile 2 (server certificate), or 3 with ``client_ca`` (chargers must
    present a certificate signed by it). TLS 1.2 is the minimum (OCPP 1.6 security whitepaper)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        # Optional at the TLS layer, so that the dashboard and REST API on the same port stay usable from a
        # browser without a certificate; the OCPP path then requires a valid one issued to the charger id
        # (`CentralSystem._refusal`). A certificate that is presented but not signed by `client_ca` still fails
        # the TLS handshake.
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(client_ca)
    return context


def _action_label(version: OcppVersion, action: str | None) -> str:
    """The action as a metric label: a peer's made-up action names all become "other" (bounded labels)."""
    return action if action in version.charge_point_actions else "other"


def _is_incoming_call(frame: Frame, action: str, cp_id: str | None) -> bool:
    """Whether `frame` is an incoming CALL of `action` (from `cp_id`, if given)."""
    return (
        frame.direction == "in"
        and frame.message_type == CALL
        and frame.action == action
        and (cp_id is None or frame.cp_id == cp_id)
    )


def _charger_id(path: str) -> str | None:
    """Return the charger id of a request path `/ocpp/[...]/<id>`, or None for any other path or a bad id.

    A usable id is 1-48 printable characters (no '/', no control or other non-printable characters).
    """
    path = path.split("?", 1)[0]
    if not path.startswith(PATH_PREFIX):
        return None
    segment = path.rsplit("/", 1)[-1]
    if len(segment) > 12 * MAX_CHARGER_ID_LENGTH:  # a character is at most 4 UTF-8 bytes, each "%XX"
        return None
    try:
        cp_id = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None
    if not cp_id or len(cp_id) > MAX_CHARGER_ID_LENGTH or not cp_id.isprintable() or "/" in cp_id:
        return None
    return cp_id
