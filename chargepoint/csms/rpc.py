"""The OCPP-J session both version adapters share: framing, hostile-frame hardening, one CALL at a time, boot,
heartbeat and status reports. A version adapter subclasses ``OcppSession``, names its ``ocpp`` version
(``_ocpp_version``) and adds its payloads and handlers (``@on``/``@after`` of the ``ocpp`` package).

The session does not inherit the ``ocpp`` package's ``ChargePoint``: that class keeps its state in an instance
dict (~1.7 KB per session with ours) and builds a route map and a response queue per instance. This class has
``__slots__``, one route map per class and the package's lower-level pieces (message classes, schema
validation, case conversion).

Frames are parsed without NaN/Infinity and checked for depth and number ranges (``check_values``) before the
``ocpp`` package's schema check; malformed frames get a CallError wherever a uniqueId can be read (OCPP-J 1.6
§4.2.3, OCPP-J 2.0.1 §4.2.3), spelled as the version spells it (``ERROR_SPELLING``).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
import re
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import ocpp.exceptions
import ocpp.messages
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, CallResult, MessageType
from ocpp.routing import create_route_map
from websockets.exceptions import ConnectionClosed

from chargepoint.core.events import OutboxMessage
from chargepoint.core.model import IdTagInfo
from chargepoint.core.scheduler import Duty, Flag, Mutex
from chargepoint.core.security import SecurityEventType
from chargepoint.core.settings import SPECS
from chargepoint.csms.fitting import payload_room, send_meter_values, trim_meter_values
from chargepoint.csms.outbox import Delivered, MalformedAnswer
from chargepoint.csms.schemas import surely_valid, validate
from chargepoint.csms.times import parse_time
from chargepoint.errors import ChargePointError, CsmsRejected, CsmsUnavailable, MessageTooLarge

if TYPE_CHECKING:
    from chargepoint.csms.session import SessionDeps

# Validate on the event loop thread: the thread-pool round trip costs more than the validation (DESIGN.md).
ocpp.messages.ASYNC_VALIDATION = False


def _validated(message: Call | CallResult, version: str) -> None:
    """Raise the ``ocpp`` package's OCPPError if ``message``'s payload breaks its schema (its public
    ``validate_payload``, same verdicts and texts); a payload the compiled check finds valid skips the package's
    jsonschema walk, ~10-25x the CPU (``chargepoint.csms.schemas``)."""
    if not surely_valid(message.message_type_id, message.action, message.payload, version):
        validate(message, version)


log = logging.getLogger(__name__)
frames = logging.getLogger("chargepoint.frames")
# Handler crashes are logged where the ``ocpp`` package logged them when it dispatched the CALLs.
_ocpp_log = logging.getLogger("ocpp")
# After-handlers (``@after``) run once their CALL is answered and outlive the session that ran them (as in the
# ``ocpp`` package); kept here by reference so none is collected half-way.
_AFTER_TASKS: set[asyncio.Task[Any]] = set()

_UNIQUE_ID = re.compile(r'^\s*\[\s*\d+\s*,\s*"([^"\\]{1,64})"')
_ANSWER_ID = re.compile(r'^\s*\[\s*([34])\s*,\s*"([^"\\]{1,64})"')
# OCPP JSON schemas type ids and counts as "integer" and mostly give no bound; our store keeps them as signed 64-bit
# SQLite integers, and every real value is far below. A number at or beyond 2^63 (1e308, 10^23, 2^63) is out of
# range for any field (PropertyConstraintViolation, OCPP-J 1.6 and 2.0.1 §4.2.3), before the ``ocpp`` package's schema
# check sees it: its multipleOf test raises OverflowError on 1e308 instead of a validation error.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# The deepest OCPP 1.6 payload (SetChargingProfile's periods) nests 5 levels, the deepest 2.0.1 one (a charging
# profile's sales tariff in RequestStartTransaction) about 10.
_MAX_DEPTH = 16
# Log lines about bad frames per session and minute: a flood from the CSMS is counted, not logged line by line.
HOSTILE_LOG_PER_MINUTE = 10


class _LogBudget:
    """Rate-limits the log lines a peer can cause: ``per_minute`` in each minute, then one line with the count."""

    __slots__ = ("_used", "_window_start", "per_minute", "suppressed")

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._window_start = -60.0
        self._used = 0
        self.suppressed = 0

    def allow(self, now: float) -> bool:
        """True if a line may be logged at loop time ``now``."""
        if now - self._window_start >= 60.0:
            if self.suppressed:
                log.warning("%s more log lines about bad CSMS frames were suppressed", self.suppressed)
            self._window_start, self._used, self.suppressed = now, 0, 0
        if self._used < self.per_minute:
            self._used += 1
            return True
        self.suppressed += 1
        return False


# Messages a CALL asks to follow its answer (NotifyReport parts, triggered messages) in flight at once, in either
# version: a CSMS that asks for more while they wait for the one-CALL-at-a-time lock is refused rather than piling
# up tasks (a peer must not be able to grow the station's task set without bound).
MAX_FOLLOW_UPS = 4


def is_int64(value: Any) -> bool:
    """True for a JSON integer our store can keep (signed 64-bit), never a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX


def _reject_constant(name: str) -> Any:
    # RFC 8259 has no NaN or Infinity, but Python's json accepts them: a frame with one is malformed.
    raise ValueError(f"{name} is not a JSON number")


_KINDS: dict[int, type[Call | CallResult | CallError]] = {
    MessageType.Call: Call,
    MessageType.CallResult: CallResult,
    MessageType.CallError: CallError,
}
_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant
)  # one decoder: json.loads(**kw) builds one per call


def check_values(payload: Any, non_negative: frozenset[str] = frozenset()) -> None:
    """Raise an OCPPError for a payload no OCPP field can hold: nesting deeper than any schema, a number beyond
    signed 64 bits or not finite (1e309 parses as infinity), a negative value of a ``non_negative`` key (a count,
    an id)."""
    stack: list[tuple[Any, str | None, int]] = [(payload, None, 0)]
    while stack:
        value, key, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ocpp.exceptions.FormatViolationError(details={"cause": "payload nested too deeply"})
        if isinstance(value, dict):
            stack.extend((v, k, depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, key, depth + 1) for v in value)
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        elif isinstance(value, int | float):
            if (isinstance(value, float) and not math.isfinite(value)) or not INT64_MIN <= value <= INT64_MAX:
                raise ocpp.exceptions.PropertyConstraintViolationError(
                    details={"cause": f"{key or 'a number'} is out of range"}
                )
            if key in non_negative and value < 0:
                raise ocpp.exceptions.PropertyConstraintViolationError(
                    details={"cause": f"{key} must not be negative"}
                )


class RpcFrameworkError(OCPPError):  # type: ignore[misc]
    """OCPP-J 2.0.1 §4.2.3: the frame is not a valid RPC request (not a JSON array, elements missing)."""

    code = "RpcFrameworkError"
    default_description = "Content of the call is not a valid RPC request"


class MessageTypeNotSupportedError(OCPPError):  # type: ignore[misc]
    """OCPP-J 2.0.1 §4.2.3: a MessageTypeId this implementation does not support."""

    code = "MessageTypeNotSupported"
    default_description = "A message with a MessageTypeId that is not supported"


@dataclass(frozen=True, slots=True)
class StatusReport:
    """A status report as it was when the status changed, waiting to be sent: ``key`` is what the CSMS last heard
    of ``cid`` (a repeat is not sent), ``payload`` the StatusNotification."""

    cid: int
    key: tuple[Any, ...]
    payload: dict[str, Any]
    loop_time: float
    seq: int


class _BoundRoutes(Mapping[str, dict[str, Any]]):
    """The ``ocpp`` package's route map for one session, bound on lookup.

    The package builds a dict of bound handler methods for every session (~2 KB); this builds the map once per
    class (from the class's functions) and binds the handlers of one action when a CALL for it arrives.
    """

    __slots__ = ("_owner", "_routes")
    _cache: dict[type, dict[str, dict[str, Any]]] = {}

    def __init__(self, owner: Any) -> None:
        cls = type(owner)
        routes = self._cache.get(cls)
        if routes is None:
            routes = {
                action: {k: getattr(v, "__func__", v) for k, v in entry.items()}
                for action, entry in create_route_map(cls).items()
            }
            self._cache[cls] = routes
        self._owner = owner
        self._routes = routes

    def __getitem__(self, action: str) -> dict[str, Any]:
        entry = self._routes[action]
        return {
            k: v.__get__(self._owner) if k in ("_on_action", "_after_action") else v for k, v in entry.items()
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self._routes)

    def __len__(self) -> int:
        return len(self._routes)

    def __contains__(self, action: object) -> bool:
        return action in self._routes


def _time_out(future: asyncio.Future[Any]) -> None:
    """A CALL's answer did not come in time: its sender gets TimeoutError."""
    if not future.done():
        future.set_exception(TimeoutError())


def _after_done(task: asyncio.Task[Any]) -> None:
    _AFTER_TASKS.discard(task)
    if not task.cancelled() and task.exception() is not None:
        _ocpp_log.error("after-handler %s crashed", task.get_name(), exc_info=task.exception())


class OcppSession:
    """An OCPP-J conversation with the central system over one connection, whatever the version: a subclass sets
    the version's vocabulary (class attributes) and payloads (the methods that raise NotImplementedError here)."""

    # A fleet holds thousands of sessions in one process: no instance dict (every subclass declares its slots).
    __slots__ = (
        "_answered",
        "_call_lock",
        "_closed",
        "_connection",
        "_follow_ups",
        "_heartbeat_duty",
        "_heartbeat_listener",
        "_last_status",
        "_latest_status",
        "_log_budget",
        "_pending",
        "_response_timeout",
        "_run_waiter",
        "_status_queue",
        "_status_sender",
        "_status_seq",
        "_statuses_open",
        "_tasks",
        "_unique_id_generator",
        "accepted",
        "boot_status",
        "ever_accepted",
        "id",
        "link",
        "route_map",
        "security",
        "settings",
        "station",
        "store",
    )

    _ocpp_version: ClassVar[str]  # the ``ocpp`` package's name of the version ("1.6", "2.0.1"): its schemas
    subprotocol: ClassVar[str]
    ACTIONS: ClassVar[frozenset[str]]  # every action of the version (an unhandled one is NotSupported)
    ERROR_SPELLING: ClassVar[
        Mapping[str, str]
    ] = {}  # the ``ocpp`` package's codes as the version spells them
    NON_NEGATIVE: ClassVar[frozenset[str]] = frozenset()  # keys whose numbers are counts or ids
    # What answers a frame that is no RPC message, and one of an unknown MessageTypeId.
    NOT_A_MESSAGE: ClassVar[type[OCPPError]] = ocpp.exceptions.ProtocolError
    UNKNOWN_MESSAGE_TYPE: ClassVar[type[OCPPError]] = ocpp.exceptions.PropertyConstraintViolationError
    ANSWER_UNKNOWN_MESSAGE_TYPES: ClassVar[bool] = False  # answer a frame of an unknown MessageTypeId
    # Checks of values the schemas cannot express, by action, run before the ``ocpp`` package routes the CALL.
    PRECHECKS: ClassVar[Mapping[str, Callable[[dict[str, Any]], None]]] = {}

    def __init__(self, deps: SessionDeps, connection: Any) -> None:
        link = deps.link
        self.id: str = link.identity.id
        self._connection = connection
        self._response_timeout: float = link.message_timeout_s()
        self._call_lock = Mutex()
        self.link = link
        self.station = deps.station
        self.store = deps.store
        self.settings = deps.settings
        self.security = deps.security
        self._follow_ups = 0  # follow-up tasks (reports, triggered messages) not yet done
        self._unique_id_generator = link.ids
        # Answers are matched by request() itself (self._pending): no response queue.
        self.route_map = _BoundRoutes(self)
        self.accepted = Flag()
        self.boot_status: str | None = None
        self.ever_accepted = False
        self._pending: tuple[str, str, asyncio.Future[Any]] | None = None
        # A list and a sender task only while reports wait (an idle session has none): an asyncio.Queue costs
        # ~3 KB per session, a task waiting on it ~1 KB more, a deque 0.8 KB.
        self._status_queue: list[StatusReport] = []
        self._status_sender: asyncio.Task[Any] | None = None
        self._statuses_open = False  # reports go out once registered (run() opens it after the boot)
        self._status_seq = 0
        self._latest_status: dict[int, int] = {}
        self._last_status: dict[int, tuple[Any, ...]] = {}
        self._tasks: dict[asyncio.Task[Any], None] = {}  # kept by reference; a dict as a set is 150 B smaller
        self._closed = Flag()
        # What run() waits on until the connection ends: a bare future, not Flag.wait() (a coroutine frame and a
        # waiter list held for the session's life, ~0.3 KB per charger in a fleet).
        self._run_waiter: asyncio.Future[None] | None = None
        self._heartbeat_duty: Duty[None] | None = None
        self._heartbeat_listener: Callable[[str], None] | None = None
        self._answered: str | None = None  # the uniqueId of the last CALLRESULT/CALLERROR sent
        self._log_budget = _LogBudget(HOSTILE_LOG_PER_MINUTE)

    # transport
    async def start(self) -> None:
        """Route frames until the connection closes (the ``ocpp`` package's entry point)."""
        self._connection.listen(self._start_router, self._answer_received)
        await self._closed.wait()

    def _start_router(self) -> asyncio.Task[Any]:
        """A frame (or the close) waits and no router runs: route in a task that ends when none waits."""
        return self._spawn(self._route_frames(), "receive")

    async def _route_frames(self) -> None:
        connection = self._connection
        try:
            while True:
                message = connection.next_frame()
                if message is None:
                    break
                self.link.touch()
                if frames.isEnabledFor(logging.DEBUG):
                    frames.debug("%s < %s", self.id, self.redact(str(message)))
                await self.route_message(message)
        except (ConnectionClosed, CsmsUnavailable):
            self.connection_ended()
        finally:
            connection.routed()
        if connection.done:
            self.connection_ended()

    def _answer_received(self, raw_msg: str | bytes) -> bool:
        """Resolve the outstanding CALL with this CALLRESULT/CALLERROR as it arrives (no await): True if it did.

        Answers to our own CALLs never wait behind the handling of the central system's CALLs (a handler may await
        the store's commit): an Authorize's answer reaches the EV driver at once. Anything else (an answer to no
        outstanding CALL, a malformed frame) is left to the router, which logs it or answers it."""
        text = raw_msg.decode("utf-8", "replace") if isinstance(raw_msg, bytes) else raw_msg
        try:
            msg = self._unpack(text)
        except Exception:  # the router judges it and answers what it can
            return False
        pending = self._pending
        if (
            msg.message_type_id == MessageType.Call
            or pending is None
            or pending[0] != msg.unique_id
            or pending[2].done()
        ):
            return False
        self.link.touch()
        if frames.isEnabledFor(logging.DEBUG):
            frames.debug("%s < %s", self.id, self.redact(text))
        pending[2].set_result(msg)
        return True

    def connection_ended(self) -> None:
        """The connection is gone: what waits for an answer fails, and ``run()`` returns."""
        self._set_closed()
        if self._pending is not None and not self._pending[2].done():
            self._pending[2].set_exception(CsmsUnavailable("connection closed"))

    def _set_closed(self) -> None:
        self._closed.set()
        waiter = self._run_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def redact(self, frame: str) -> str:
        """A received frame as the frame log may show it (a version hides the secrets its own messages carry)."""
        return frame

    async def _send(self, message: str) -> bool:
        """Send one frame; False if it was a CALLRESULT over BytesPerMessage, answered InternalError instead."""
        if message.startswith("[3,") and await self._too_large(message):
            return False
        frames.debug("%s > %s", self.id, message)
        if message.startswith(("[3,", "[4,")):
            self._answered = self._readable_answer_id(message)
        try:
            await self._connection.send(message)
        except ConnectionClosed as exc:
            self._set_closed()  # the receive loop may not have noticed yet
            raise CsmsUnavailable("connection closed") from exc
        self.link.touch()
        return True

    async def _too_large(self, answer: str) -> bool:
        """True if a CALLRESULT is over BytesPerMessage, the most the station sends in one frame (the CSMS's frame
        limit: many servers refuse a frame over 64 KiB and drop the link, and the CSMS would ask again): it is
        answered with an InternalError instead. The handlers bound their answers themselves (GetVariables); this
        is the last guard, for an answer nobody bounded."""
        limit = self.settings.get_int("bytes_per_message")
        if len(answer) * 4 <= limit:  # cheap: a character is at most 4 bytes of UTF-8
            return False
        size = len(answer.encode("utf-8", "surrogatepass"))
        if size <= limit:
            return False
        unique_id = self._readable_answer_id(answer)
        log.error(
            "answer %s of %d bytes is over BytesPerMessage (%d): answered InternalError",
            unique_id,
            size,
            limit,
        )
        if unique_id is not None:
            await self._reply_error(
                unique_id,
                ocpp.exceptions.InternalError(details={"cause": f"answer of {size} bytes exceeds {limit}"}),
            )
        return True

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Route one frame; every CALL gets an answer, whatever it holds, and nothing in a frame ends the link.

        Malformed frames get a CallError wherever a uniqueId can be read (OCPP-J §4.2.3); an error the handlers
        or the ``ocpp`` package raise unexpectedly becomes an InternalError answer for a CALL, and is logged and
        dropped for a CALLRESULT or CALLERROR. Only a closed connection (CsmsUnavailable) ends the loop."""
        text = raw_msg.decode("utf-8", "replace") if isinstance(raw_msg, bytes) else raw_msg
        self._answered = None
        try:
            await self._route(text)
        except CsmsUnavailable:
            raise
        except Exception as exc:
            unique_id = self._readable_unique_id(text)
            if self._may_log():
                log.exception("frame from CSMS not handled: %.200s", text)
            if unique_id is not None and self._answered != unique_id and self.boot_status != "Rejected":
                await self._reply_error(
                    unique_id,
                    ocpp.exceptions.InternalError(details={"cause": f"{type(exc).__name__}"}),
                )

    async def _route(self, text: str) -> None:
        try:
            msg = self._unpack(text)
        except OCPPError as exc:
            unique_id = self._readable_unique_id(text)
            if self._may_log():
                log.warning("malformed frame from CSMS (%s): %.200s", exc.code, text)
            # Security whitepaper / 2.0.1 A: InvalidMessages (bounded per hour by SecurityEvents, whatever the peer
            # sends).
            self.security.security_events.record(
                SecurityEventType.INVALID_MESSAGES, f"malformed frame: {exc.code}"
            )
            if unique_id is not None:
                await self._reply_error(unique_id, exc)
            else:
                self._fail_pending(text, exc)
            return
        if msg.message_type_id == MessageType.Call:
            if self.boot_status == "Rejected":
                return  # OCPP 1.6 §4.2.1: while Rejected the charge point does not answer the CSMS
            try:
                await self._handle_call(msg)
            except OCPPError as exc:
                if self._answered != msg.unique_id:  # not after an answer (an after-handler failed)
                    await self._reply_error(msg.unique_id, exc)
            return
        pending = self._pending
        if pending is None or pending[0] != msg.unique_id or pending[2].done():
            if self._may_log():
                log.warning("ignoring an answer to no outstanding CALL: %.200s", text)
            return
        pending[2].set_result(msg)
        # Let the waiting sender act on the answer (e.g. record StartTransaction's transactionId) before the next
        # frame is routed: a RemoteStop right after StartTransaction.conf must find the transaction.
        await asyncio.sleep(0)

    def _may_log(self) -> bool:
        return self._log_budget.allow(asyncio.get_running_loop().time())

    def _fail_pending(self, text: str, exc: OCPPError) -> None:
        """A malformed answer to our outstanding CALL is that CALL's protocol error, not a silent timeout."""
        match = _ANSWER_ID.match(text)
        pending = self._pending
        if match is None or pending is None or pending[0] != match.group(2) or pending[2].done():
            return
        pending[2].set_exception(
            MalformedAnswer(
                self._spelled("FormatViolation"), f"unreadable {pending[1]} answer: {exc.details}"[:200]
            )
        )

    @classmethod
    def _spelled(cls, code: str) -> str:
        return cls.ERROR_SPELLING.get(code, code)

    @classmethod
    def _unpack(cls, text: str) -> Call | CallResult | CallError:
        try:
            data = _DECODER.decode(text)
        except (ValueError, RecursionError) as exc:
            # json.loads raises more than JSONDecodeError: deep nesting, over-long integers, NaN and Infinity.
            raise ocpp.exceptions.FormatViolationError(
                details={"cause": f"unreadable JSON: {exc}"[:100]}
            ) from exc
        if not isinstance(data, list) or not data:
            raise cls.NOT_A_MESSAGE(details={"cause": "a frame is a non-empty JSON array"})
        kind = _KINDS.get(data[0]) if type(data[0]) is int else None
        if kind is None:
            raise cls.UNKNOWN_MESSAGE_TYPE(
                details={"cause": f"MessageTypeId {str(data[0])[:20]!r} isn't valid"}
            )
        try:
            message = kind(*data[1:])
        except TypeError as exc:
            raise cls.NOT_A_MESSAGE(details={"cause": "Message is missing elements."}) from exc
        if isinstance(message, Call):
            if (
                not isinstance(message.unique_id, str)
                or not isinstance(message.action, str)
                or not isinstance(message.payload, dict)
            ):
                raise ocpp.exceptions.FormatViolationError(
                    details={"cause": "CALL elements have wrong types"}
                )
            check_values(message.payload, cls.NON_NEGATIVE)
        elif isinstance(message, CallResult):
            if not isinstance(message.payload, dict):
                raise ocpp.exceptions.FormatViolationError(
                    details={"cause": "CALLRESULT payload is not an object"}
                )
            check_values(message.payload, cls.NON_NEGATIVE)
        return message

    @staticmethod
    def _readable_answer_id(text: str) -> str | None:
        match = _ANSWER_ID.match(text)
        return match.group(2) if match else None

    @classmethod
    def _readable_unique_id(cls, text: str) -> str | None:
        """The uniqueId of a frame to be answered: a CALL's, and with ``ANSWER_UNKNOWN_MESSAGE_TYPES`` that of a
        frame of a MessageTypeId that is neither CALL, CALLRESULT nor CALLERROR."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            match = _UNIQUE_ID.match(text)
            return match.group(1) if match else None
        if not (isinstance(data, list) and len(data) >= 2 and isinstance(data[1], str)):
            return None
        if data[0] == MessageType.Call:
            return data[1]
        unknown_type = data[0] not in (MessageType.CallResult, MessageType.CallError)
        return data[1] if cls.ANSWER_UNKNOWN_MESSAGE_TYPES and unknown_type else None

    async def _reply_error(self, unique_id: str, exc: OCPPError) -> None:
        code = self._spelled(exc.code)
        error = CallError(
            unique_id, code, exc.description, {"cause": str(exc.details.get("cause", ""))[:200]}
        )
        await self._send(error.to_json())

    async def _handle_call(self, msg: Call) -> None:
        if msg.action not in self.route_map:
            # OCPP-J §4.2.3: NotSupported = recognized but not supported; NotImplemented = not known.
            if msg.action in self.ACTIONS:
                raise ocpp.exceptions.NotSupportedError(details={"cause": f"{msg.action} is not supported"})
            raise ocpp.exceptions.NotImplementedError(
                details={"cause": f"{msg.action} is not an OCPP {self._ocpp_version} action"}
            )
        precheck = self.PRECHECKS.get(msg.action)
        if precheck is not None:
            precheck(msg.payload)  # an OCPPError here is answered like a schema violation, log-budgeted
        try:
            await self._dispatch(msg)
        except OCPPError:
            raise
        except (ValueError, ArithmeticError, RecursionError) as exc:
            # The schema check itself failed on a value (jsonschema's multipleOf on a huge float, a regex on a
            # pathological string): the value is not one this field can take.
            if self._may_log():
                log.warning("%s payload could not be validated: %s", msg.action, exc)
            raise ocpp.exceptions.PropertyConstraintViolationError(
                details={"cause": f"invalid value: {type(exc).__name__}"}
            ) from exc

    async def _dispatch(self, msg: Call) -> None:
        """Run a CALL's handlers as the ``ocpp`` package does: validate, call ``@on`` with snake_case keywords,
        answer its result (or a CallError for what it raised), validate that, then start the ``@after`` handler.
        A schema violation of the CALL or of our answer is raised as the package's OCPPError."""
        handlers = self.route_map[msg.action]
        on_action = handlers.get("_on_action")
        if on_action is None:  # only an @after handler: nothing can answer it
            raise ocpp.exceptions.NotSupportedError(details={"cause": f"{msg.action} is not supported"})
        check_schema = not handlers.get("_skip_schema_validation", False)
        if check_schema:
            _validated(msg, self._ocpp_version)
        arguments = camel_to_snake_case(msg.payload)
        try:
            response = on_action(**arguments)
            if inspect.isawaitable(response):
                response = await response
        except Exception as exc:
            _ocpp_log.exception("Error while handling request '%s'", msg)
            await self._send(msg.create_call_error(exc).to_json())
            return
        result = msg.create_call_result(snake_to_camel_case(remove_nones(serialize_as_dict(response))))
        if check_schema:
            _validated(result, self._ocpp_version)
        if not await self._send(result.to_json()):
            # The CSMS got an InternalError, not this answer: what the answer promised (a Reset after Accepted, a
            # report after GetBaseReport Accepted) must not happen behind its back.
            return
        after_action = handlers.get("_after_action")
        if after_action is not None:
            follow = after_action(**arguments)
            if inspect.isawaitable(follow):
                task = asyncio.ensure_future(follow)
                _AFTER_TASKS.add(task)
                task.add_done_callback(_after_done)

    async def send_meter_values(self, payload: dict[str, Any]) -> None:
        """MeterValues as one CALL, or as several that each fit in BytesPerMessage (``fitting.py``)."""
        await send_meter_values(
            self.request, self.settings.get_int("bytes_per_message"), "MeterValues", payload
        )

    def room(self, action: str) -> int:
        """The characters of payload a CALL of ``action`` may hold within BytesPerMessage."""
        return payload_room(self.settings.get_int("bytes_per_message"), action)

    def fit(self, action: str, payload: dict[str, Any], key: str, *, keep: int = 0) -> None:
        """Make a CALL that carries the MeterValues ``payload[key]`` in one message fit in BytesPerMessage: the
        oldest go first (after the first ``keep``), then the last sampledValues of the newest (``fitting.py``).
        A frame over the CSMS's limit drops the link, and the outbox would send the same message again for ever."""
        room = self.room(action)
        dropped, trimmed = trim_meter_values(room, payload, key, keep=keep)
        if dropped or trimmed:
            log.warning(
                "%s: the %d oldest of %s and %d sampled values left out to fit in %d bytes",
                action,
                dropped,
                key,
                trimmed,
                room,
            )

    async def request(
        self, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload.

        Raises CsmsRejected for a CallError or an invalid answer (MessageTooLarge, unsent, for a CALL over
        BytesPerMessage), CsmsUnavailable on timeout or a closed link.
        """
        call = Call(self._unique_id_generator(), action, payload)
        _validated(call, self._ocpp_version)
        frame = call.to_json()
        limit = self.settings.get_int("bytes_per_message")
        if len(frame) > limit:  # ensure_ascii: a character is a byte
            # The last guard: the senders cut or trim what can grow; a frame over the CSMS's limit would drop the
            # link (and come back after every reconnect). Not sent; the caller takes it as a refusal and logs it
            # (or cuts the message in parts: a MeterValues).
            raise MessageTooLarge(action, len(frame), limit)
        timeout = timeout_s if timeout_s is not None else self._response_timeout
        loop = asyncio.get_running_loop()
        observer = self.link.call_observer
        async with self._call_lock:
            if self._closed.is_set():
                raise CsmsUnavailable("connection closed")
            future: asyncio.Future[Any] = loop.create_future()
            self._pending = (call.unique_id, action, future)
            sent_at = loop.time()
            try:
                await self._send(frame)
                # A timer that fails the future, not asyncio.timeout(): no Timeout object, no task lookups and no
                # cancel/uncancel round trip on every CALL (measured in benchmarks/cpu_profile.py).
                timer = loop.call_at(loop.time() + timeout, _time_out, future)
                try:
                    answer = await future
                finally:
                    timer.cancel()
            except TimeoutError as exc:
                if observer is not None:
                    observer(action, loop.time() - sent_at, "Timeout")
                raise CsmsUnavailable(f"no answer to {action} within {timeout:g} s") from exc
            except CsmsUnavailable:
                if observer is not None:
                    observer(action, loop.time() - sent_at, "ConnectionClosed")
                raise
            finally:
                self._pending = None
                if future.done() and not future.cancelled():
                    # A close during the send fails the future nobody awaits any more: mark it as seen.
                    future.exception()
                else:
                    future.cancel()
        if observer is not None:
            observer(
                action, loop.time() - sent_at, answer.error_code if isinstance(answer, CallError) else None
            )
        if isinstance(answer, CallError):
            raise CsmsRejected(answer.error_code, answer.error_description)
        answer.action = action
        try:
            _validated(answer, self._ocpp_version)
        except OCPPError as exc:
            raise MalformedAnswer(
                self._spelled("FormatViolation"),
                f"invalid {action} answer: {exc.details}"[:200],
                answer=answer.payload,
            ) from exc
        except Exception as exc:  # the validator choking on a value is the answer's fault, not ours
            raise MalformedAnswer(
                self._spelled("FormatViolation"),
                f"invalid {action} answer: {type(exc).__name__}",
                answer=answer.payload,
            ) from exc
        result: dict[str, Any] = answer.payload
        return result

    # life cycle
    async def run(self) -> None:
        """Boot, then serve until the connection closes (in the caller's task: frames are routed by a task that
        runs only while they wait, the outbox is sent by one that runs only while messages wait)."""
        self._connection.listen(self._start_router, self._answer_received)
        outbox = self.link.outbox
        try:
            await self._boot()
            self._start_heartbeat()
            self._statuses_open = True
            self._wake_status_sender()
            outbox.start(self, self._spawn)
            waiter = self._run_waiter = asyncio.get_running_loop().create_future()
            if not self._closed.is_set():
                await waiter
        finally:
            self._run_waiter = None
            outbox.stop(self)
            self._stop_heartbeat()
            self._statuses_open = False
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    log.debug("session task %s ended", task.get_name())
            self.accepted.clear()

    def can_follow_up(self) -> bool:
        """True if one more follow-up may be started (fewer than MAX_FOLLOW_UPS in flight)."""
        return self._follow_ups < MAX_FOLLOW_UPS

    def follow_up(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """Send what a CALL asked for after its answer, in a task kept by reference and counted."""
        self._follow_ups += 1

        async def counted() -> None:
            try:
                await coro
            finally:
                self._follow_ups -= 1

        self._spawn(counted(), name)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks[task] = None
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.pop(task, None)
        if not self._tasks:
            self._tasks = {}  # a dict keeps its grown table once emptied (~0.1 KB per idle charger); {} has none
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, CsmsUnavailable):
            log.error("session task %s crashed", task.get_name(), exc_info=exc)

    def _boot_payload(self, *, triggered: bool = False) -> dict[str, Any]:
        """The BootNotification payload (``triggered``: asked for by TriggerMessage)."""
        raise NotImplementedError

    async def _boot(self) -> None:
        """BootNotification until Accepted; retry after ``interval`` (our default when 0), timeout or CallError."""
        if self.link.boot_accepted:
            # OCPP 1.6 §4.2: BootNotification follows a start-up, not a reconnect; this run was accepted already.
            self._accept()
            return
        payload = self._boot_payload()
        default_retry = self.link.csms_config.boot_retry_s
        while True:
            try:
                answer = await self.request("BootNotification", payload)
            except CsmsRejected as exc:
                log.warning("BootNotification refused with %s; retrying in %s s", exc.code, default_retry)
                await self._wait_or_closed(default_retry)
                continue
            except CsmsUnavailable:
                if self._closed.is_set():
                    raise
                log.warning("BootNotification unanswered; retrying in %s s", default_retry)
                await self._wait_or_closed(default_retry)
                continue
            interval = self._boot_answer(answer)
            if self.accepted.is_set():
                return
            # Not before the interval (OCPP 1.6 §4.2.1, 2.0.1 B02.FR.01), and a little after it at random: after a
            # power cut a central system defers a crowd with the same whole-second interval.
            wait_s = interval if interval > 0 else default_retry
            await self._wait_or_closed(wait_s + self.link.boot_retry_jitter_s())
            if self.accepted.is_set():
                return  # a triggered BootNotification was accepted meanwhile

    def _boot_answer(self, answer: dict[str, Any]) -> int:
        """Act on a BootNotification answer; returns its interval."""
        status = answer["status"]
        self._adopt_time(answer.get("currentTime"))
        interval = int(answer.get("interval", 0))
        log.info("BootNotification %s (interval %s)", status, interval)
        if self.accepted.is_set():
            # A triggered BootNotification after registration: a new interval applies, the registration stays.
            if status == "Accepted":
                self._adopt_heartbeat_interval(interval)
            return interval
        self.boot_status = status
        if status == "Accepted":
            self._adopt_heartbeat_interval(interval)
            self._accept()
        return interval

    def _adopt_heartbeat_interval(self, interval: int) -> None:
        """The interval of an accepted BootNotification is the heartbeat interval (clamped to our range)."""
        if interval <= 0:
            return
        spec = SPECS["heartbeat_interval_s"]
        clamped = min(interval, spec.max_value or interval)
        try:
            self.settings.set_text("heartbeat_interval_s", str(clamped))
        except (ValueError, ChargePointError) as exc:
            log.warning("cannot adopt the heartbeat interval %s: %s", interval, exc)

    def _accept(self) -> None:
        """Registration done: open the gate for everything else, starting with every connector's status."""
        self.boot_status = "Accepted"
        self.ever_accepted = self.link.boot_accepted = True
        self._last_status.clear()  # every status is reported now, even one triggered while Pending
        self.accepted.set()
        for cid in [0, *self.station.connectors]:
            self.status_changed(cid)

    async def _wait_or_closed(self, delay_s: float) -> None:
        """Sleep ``delay_s``; wake early when accepted; raise CsmsUnavailable if the connection closes."""
        closed = asyncio.ensure_future(self._closed.wait())
        accepted = asyncio.ensure_future(self.accepted.wait())
        try:
            await asyncio.wait({closed, accepted}, timeout=delay_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            accepted.cancel()
        if self._closed.is_set():
            raise CsmsUnavailable("connection closed")

    def _adopt_time(self, text: Any) -> None:
        """Adopt the CSMS's currentTime; the clock itself refuses an implausible one (9999-12-31, year 1)."""
        if not text:
            return
        try:
            when = parse_time(text)
        except (TypeError, ValueError, AttributeError):
            log.warning("CSMS sent an unreadable currentTime %.40r", text)
            return
        self.link.set_time(when)

    def _heartbeat_plan(self) -> tuple[float, None] | None:
        """Seconds until a Heartbeat is due: HeartbeatInterval after the last traffic (none for an interval <= 0)."""
        interval = self.settings.get_int("heartbeat_interval_s")
        if interval <= 0:
            return None
        return max(0.0, interval - self.link.idle_s()), None

    def _heartbeat_work(self, _: None) -> Coroutine[Any, Any, None] | None:
        """The Heartbeat, if nothing else was exchanged for HeartbeatInterval (any traffic counts)."""
        interval = self.settings.get_int("heartbeat_interval_s")
        if interval <= 0 or self.link.idle_s() < interval:
            return None  # traffic since it was planned: planned again from the last frame
        return self.send_heartbeat()

    def _start_heartbeat(self) -> None:
        """Heartbeats as a duty on the process's scheduler (no sleeping task per session), planned again when
        HeartbeatInterval changes; stopped when the session ends."""
        duty: Duty[None] = Duty(
            self.link.scheduler, self._heartbeat_plan, self._heartbeat_work, self._spawn, "heartbeat"
        )
        # The listener is a bound method (kept to be removed: bound methods compare equal, not identical).
        listener = self._heartbeat_setting_changed
        self.settings.listeners.append(listener)
        self._heartbeat_duty, self._heartbeat_listener = duty, listener
        duty.start()

    def _heartbeat_setting_changed(self, name: str) -> None:
        if name == "heartbeat_interval_s" and self._heartbeat_duty is not None:
            self._heartbeat_duty.reschedule()

    def _stop_heartbeat(self) -> None:
        if self._heartbeat_duty is not None:
            self._heartbeat_duty.stop()  # a Heartbeat under way is a session task: run() cancels it
            self._heartbeat_duty = None
        if self._heartbeat_listener is not None:
            self.settings.listeners.remove(self._heartbeat_listener)
            self._heartbeat_listener = None

    async def send_heartbeat(self) -> None:
        """One Heartbeat; adopts the CSMS time. An unanswered one is logged; the next follows an interval later."""
        try:
            answer = await self.request("Heartbeat", {})
        except CsmsRejected as exc:
            log.warning("Heartbeat refused: %s", exc)
            return
        except CsmsUnavailable:
            if self._closed.is_set():
                raise
            log.warning("Heartbeat unanswered")
            return
        self._adopt_time(answer.get("currentTime"))

    # status
    def status_changed(self, cid: int) -> None:
        """Queue a StatusNotification with ``cid``'s status as of now; reports go out in order."""
        report = self._status_report(cid, self._status_seq + 1)
        if report is None:
            return
        self._status_seq += 1
        self._latest_status[cid] = self._status_seq
        self._status_queue.append(report)
        self._wake_status_sender()

    def _wake_status_sender(self) -> None:
        """Start the sender if reports wait and none runs; it ends when the queue is empty."""
        if self._statuses_open and self._status_queue and self._status_sender is None:
            self._status_sender = self._spawn(self._send_statuses(), "status")

    def _status_report(self, cid: int, seq: int) -> StatusReport | None:
        """The StatusNotification of ``cid``'s status as of now; None if the version reports none for it."""
        raise NotImplementedError

    async def _send_statuses(self) -> None:
        try:
            while self._status_queue:
                if self._restarting():
                    # A Reset (or a firmware reboot) was accepted: a status now would be stale before it is read;
                    # Reset.conf is followed by the new BootNotification, and the statuses come after it.
                    self._status_queue.clear()
                    return
                report = self._status_queue.pop(0)
                minimum = self.settings.get_int("minimum_status_duration_s")
                if minimum > 0:
                    # MinimumStatusDuration: report a status only once it has held that long.
                    loop = asyncio.get_running_loop()
                    await asyncio.sleep(max(0.0, report.loop_time + minimum - loop.time()))
                    if self._latest_status.get(report.cid) != report.seq:
                        continue
                await self._send_report(report, force=False)
        finally:
            self._status_sender = None

    def _restarting(self) -> bool:
        """True once the station is restarting (a Reset or a firmware reboot was accepted)."""
        requested = self.station.reset_requested
        return requested is not None and requested.done()

    async def send_status(self, cid: int, *, force: bool) -> None:
        """Send the current status of ``cid`` (``force``: even if the CSMS heard it last)."""
        report = self._status_report(cid, self._status_seq)
        if report is not None:
            await self._send_report(report, force=force)

    async def _send_report(self, report: StatusReport, *, force: bool) -> None:
        """Send one report unless it repeats what the CSMS last heard; retried while the link lives."""
        if not force and self._last_status.get(report.cid) == report.key:
            return
        while True:
            try:
                await self.request("StatusNotification", report.payload)
            except CsmsRejected as exc:
                log.warning("StatusNotification refused: %s", exc)
            except CsmsUnavailable:
                if self._closed.is_set():
                    raise
                log.warning("StatusNotification unanswered; retrying")
                await asyncio.sleep(1)
                continue
            break
        self._last_status[report.cid] = report.key

    # the CSMS port, used by the link
    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Authorize online; a CallError counts as a refusal (never as a reason to decide offline)."""
        raise NotImplementedError

    async def deliver(self, message: OutboxMessage) -> Delivered:
        """Send one outbox message and return what the answer says; raises CsmsRejected or CsmsUnavailable, or
        OCPPError/ValueError/KeyError when the message cannot be encoded as a valid CALL."""
        raise NotImplementedError
