"""OCPP 1.6J session over one WebSocket connection, on the ``ocpp`` package.

One instance lives as long as its connection. It boots, then keeps the heartbeat, sends status changes and
drains the outbox, and answers the central system's CALLs by calling the version-neutral station.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import ocpp.messages
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, CallResult, MessageType
from ocpp.routing import after, create_route_map, on
from ocpp.v16 import ChargePoint as _OcppChargePoint
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from chargepoint.core.device_model import VARIABLES, Mutability
from chargepoint.core.events import (
    FirmwareStatusChanged,
    OutboxMessage,
    SecurityEvent,
    TransactionEnded,
    TransactionStarted,
    UploadStatusChanged,
)
from chargepoint.core.model import AuthStatus, IdTagInfo, OperationalStatus, ResetKind, Sample
from chargepoint.core.security import SecurityEventType
from chargepoint.core.settings import SPECS
from chargepoint.core.smart_charging import (
    ChargingProfile,
    ChargingSchedule,
    CompositeSchedule,
    SchedulePeriod,
)
from chargepoint.csms.outbox import Delivered, MalformedAnswer, OrphanedTransaction
from chargepoint.csms.v16 import firmware as fw  # not ``firmware``: that is a SignedUpdateFirmware field
from chargepoint.csms.v16 import mapping, reservation
from chargepoint.csms.v16.security import SECURITY_KEYS, SecurityHandlers, redact_secrets, trigger_status
from chargepoint.csms.v16.times import ocpp_time, parse_time
from chargepoint.errors import ChargePointError, CsmsRejected, CsmsUnavailable, StorageError

if TYPE_CHECKING:
    from chargepoint.csms.session import SessionDeps

# Validate on the event loop thread: the thread-pool round trip costs more than the validation (DESIGN.md).
ocpp.messages.ASYNC_VALIDATION = False

log = logging.getLogger(__name__)
frames = logging.getLogger("chargepoint.frames")

_UNIQUE_ID = re.compile(r'^\s*\[\s*\d+\s*,\s*"([^"\\]{1,64})"')
_ANSWER_ID = re.compile(r'^\s*\[\s*([34])\s*,\s*"([^"\\]{1,64})"')
# OCPP 1.6 JSON schemas type ids and counts as "integer" and give no bound; our store keeps them as signed 64-bit
# SQLite integers, and every real value is far below. A number at or beyond 2^63 (1e308, 10^23, 2^63) is out of
# range for any field (PropertyConstraintViolation, OCPP-J 1.6 §4.2.3), before the ``ocpp`` package's schema
# check sees it: its multipleOf test raises OverflowError on 1e308 instead of a validation error.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_MAX_DEPTH = 16  # the deepest OCPP 1.6 payload (SetChargingProfile's periods) nests 5 levels
# Fields that count or index something and so are never negative (OCPP 1.6 §6: connectorId >= 0; stackLevel,
# duration, retries, startPeriod, listVersion are counts of levels, seconds or versions).
_NON_NEGATIVE = frozenset(
    {
        "connectorId",
        "stackLevel",
        "duration",
        "retries",
        "retryInterval",
        "startPeriod",
        "listVersion",
        "numberPhases",
    }
)
_ACTIONS_16 = frozenset(a.value for a in Action)
# Log lines about bad frames per session and minute: a flood from the CSMS is counted, not logged line by line.
HOSTILE_LOG_PER_MINUTE = 10


class _LogBudget:
    """Rate-limits the log lines a peer can cause: ``per_minute`` in each minute, then one line with the count."""

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


def id_tag_info(data: dict[str, Any] | None) -> IdTagInfo:
    """An OCPP 1.6 IdTagInfo (camelCase or snake_case keys) as the core's."""
    data = data or {}
    expiry = data.get("expiryDate") or data.get("expiry_date")
    expires = None
    if expiry:
        try:
            expires = parse_time(expiry)
        except (TypeError, ValueError, AttributeError):
            log.warning("ignoring an unreadable expiryDate %.40r", expiry)
    return IdTagInfo(
        mapping.AUTH_STATUS_IN.get(data.get("status", "Invalid"), AuthStatus.INVALID),
        expires,
        data.get("parentIdTag") or data.get("parent_id_tag"),
    )


def readable_status(answer: Any) -> IdTagInfo | None:
    """Only the idTagInfo.status of an answer that is otherwise malformed, if it names a known status."""
    info = answer.get("idTagInfo") if isinstance(answer, dict) else None
    status = info.get("status") if isinstance(info, dict) else None
    if not isinstance(status, str) or status not in mapping.AUTH_STATUS_IN:
        return None
    return IdTagInfo(mapping.AUTH_STATUS_IN[status])


def is_int64(value: Any) -> bool:
    """True for a JSON integer our store can keep (signed 64-bit), never a bool."""
    return isinstance(value, int) and not isinstance(value, bool) and INT64_MIN <= value <= INT64_MAX


def _reject_constant(name: str) -> Any:
    # RFC 8259 has no NaN or Infinity, but Python's json accepts them: a frame with one is malformed.
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(
    parse_constant=_reject_constant
)  # one decoder: json.loads(**kw) builds one per call


def check_values(payload: Any) -> None:
    """Raise an OCPPError for a payload no OCPP 1.6 field can hold: nesting deeper than any schema, a number
    beyond signed 64 bits or not finite (1e309 parses as infinity), a negative count or connector id."""
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
            if key in _NON_NEGATIVE and value < 0:
                raise ocpp.exceptions.PropertyConstraintViolationError(
                    details={"cause": f"{key} must not be negative"}
                )


def charging_profile_of(
    data: dict[str, Any], connector_id: int, transaction_id: str | None = None
) -> ChargingProfile:
    """An OCPP 1.6 ChargingProfile (snake_case keys, as the ``ocpp`` package routes it) as the core's, for the
    station's transaction ``transaction_id`` (the caller maps the CSMS's integer transactionId).

    Raises KeyError or ValueError for a value the core has no word for."""
    sched = data["charging_schedule"]
    start = sched.get("start_schedule")
    valid_from, valid_to = data.get("valid_from"), data.get("valid_to")
    recurrency = data.get("recurrency_kind")
    return ChargingProfile(
        id=int(data["charging_profile_id"]),
        stack_level=int(data["stack_level"]),
        purpose=mapping.PROFILE_PURPOSE_IN[data["charging_profile_purpose"]],
        kind=mapping.PROFILE_KIND_IN[data["charging_profile_kind"]],
        connector_id=connector_id,
        recurrency=mapping.RECURRENCY_IN[recurrency] if recurrency else None,
        valid_from=parse_time(valid_from) if valid_from else None,
        valid_to=parse_time(valid_to) if valid_to else None,
        transaction_id=transaction_id,
        schedule=ChargingSchedule(
            unit=mapping.RATE_UNIT_IN[sched["charging_rate_unit"]],
            periods=tuple(
                SchedulePeriod(int(p["start_period"]), float(p["limit"]), p.get("number_phases"))
                for p in sched["charging_schedule_period"]
            ),
            start=parse_time(start) if start else None,
            duration_s=sched.get("duration"),
            min_rate=sched.get("min_charging_rate"),
        ),
    )


def composite_schedule(schedule: CompositeSchedule) -> dict[str, Any]:
    """A core composite schedule as an OCPP 1.6 ChargingSchedule (camelCase)."""
    periods = []
    for p in schedule.periods:
        period: dict[str, Any] = {"startPeriod": p.start_s, "limit": round(p.limit, 1)}
        if p.phases is not None:
            period["numberPhases"] = p.phases
        periods.append(period)
    return {
        "duration": schedule.duration_s,
        "startSchedule": ocpp_time(schedule.start),
        "chargingRateUnit": mapping.RATE_UNIT[schedule.unit],
        "chargingSchedulePeriod": periods,
    }


def meter_value(sample: Sample) -> dict[str, Any]:
    """A core sample as an OCPP 1.6 MeterValue."""
    values = []
    for v in sample.values:
        entry: dict[str, Any] = {
            "value": f"{v.value:g}" if v.value != int(v.value) else str(int(v.value)),
            "context": mapping.CONTEXT[sample.context],
            "measurand": mapping.MEASURAND[v.measurand],
            "unit": _UNIT_16[v.measurand.value],
        }
        if v.phase:
            entry["phase"] = v.phase
        if v.measurand.value == "SoC":
            entry["location"] = "EV"
        values.append(entry)
    return {"timestamp": ocpp_time(sample.timestamp), "sampledValue": values}


_UNIT_16 = {
    "Energy.Active.Import.Register": "Wh",
    "Power.Active.Import": "W",
    "Current.Import": "A",
    "Voltage": "V",
    "Frequency": "Hz",
    "SoC": "Percent",
}


@dataclass(frozen=True, slots=True)
class _StatusReport:
    """A connector status as it was when it changed, waiting to be sent."""

    cid: int
    status: str
    error_code: str
    info: str | None
    at: datetime
    loop_time: float
    seq: int


class _BoundRoutes(Mapping[str, dict[str, Any]]):
    """The ``ocpp`` package's route map for one session, bound on lookup.

    The package builds a dict of bound handler methods for every session (~2 KB); this builds the map once per
    class and binds the handlers of one action when a CALL for it arrives.
    """

    __slots__ = ("_owner", "_routes")
    _cache: dict[type, dict[str, dict[str, Any]]] = {}

    def __init__(self, owner: Any) -> None:
        cls = type(owner)
        routes = self._cache.get(cls)
        if routes is None:
            routes = {
                action: {k: getattr(v, "__func__", v) for k, v in entry.items()}
                for action, entry in create_route_map(owner).items()
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


class V16Session(SecurityHandlers, _OcppChargePoint):  # type: ignore[misc]
    """An OCPP 1.6J conversation with the central system over one connection."""

    subprotocol = "ocpp1.6"

    def __init__(self, deps: SessionDeps, connection: Any) -> None:
        link = deps.link
        super().__init__(link.identity.id, connection, response_timeout=link.csms_config.response_timeout_s)
        self.link = link
        self.station = deps.station
        self.store = deps.store
        self.settings = deps.settings
        self.security = deps.security
        self._unique_id_generator = link.ids
        # Answers are matched by request() itself (self._pending); the base class's response queue is never used,
        # and an asyncio.Queue costs ~3 KB, which a fleet of thousands of sessions in one process notices.
        self._response_queue = None
        self.route_map = _BoundRoutes(self)
        self.accepted = asyncio.Event()
        self.boot_status: str | None = None
        self.ever_accepted = False
        self._pending: tuple[str, str, asyncio.Future[Any]] | None = None
        self._status_queue: asyncio.Queue[_StatusReport] = asyncio.Queue()
        self._status_seq = 0
        self._latest_status: dict[int, int] = {}
        self._last_status: dict[int, tuple[str, str, str | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = asyncio.Event()
        self._answered: str | None = None  # the uniqueId of the last CALLRESULT/CALLERROR sent
        self._log_budget = _LogBudget(HOSTILE_LOG_PER_MINUTE)

    # transport
    async def start(self) -> None:
        """Receive and route frames until the connection closes."""
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in self._connection:
                self.link.touch()
                if frames.isEnabledFor(logging.DEBUG):
                    frames.debug("%s < %s", self.id, redact_secrets(str(message)))
                await self.route_message(message)
        except ConnectionClosed:
            pass
        finally:
            self._closed.set()
            if self._pending is not None and not self._pending[2].done():
                self._pending[2].set_exception(CsmsUnavailable("connection closed"))

    async def _send(self, message: str) -> None:
        from websockets.exceptions import ConnectionClosed

        frames.debug("%s > %s", self.id, message)
        if message.startswith(("[3,", "[4,")):
            self._answered = self._readable_answer_id(message)
        try:
            await self._connection.send(message)
        except ConnectionClosed as exc:
            self._closed.set()  # the receive loop may not have noticed yet
            raise CsmsUnavailable("connection closed") from exc
        self.link.touch()

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
            # Security whitepaper: InvalidMessages (bounded per hour by SecurityEvents, whatever the peer sends).
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
            MalformedAnswer("FormationViolation", f"unreadable {pending[1]} answer: {exc.details}"[:200])
        )

    @staticmethod
    def _unpack(text: str) -> Call | CallResult | CallError:
        try:
            data = _DECODER.decode(text)
        except (ValueError, RecursionError) as exc:
            # json.loads raises more than JSONDecodeError: deep nesting, over-long integers, NaN and Infinity.
            raise ocpp.exceptions.FormatViolationError(
                details={"cause": f"unreadable JSON: {exc}"[:100]}
            ) from exc
        if not isinstance(data, list) or not data:
            raise ocpp.exceptions.ProtocolError(details={"cause": "a frame is a non-empty JSON array"})
        kinds: dict[Any, type[Call | CallResult | CallError]] = {
            MessageType.Call: Call,
            MessageType.CallResult: CallResult,
            MessageType.CallError: CallError,
        }
        cls = kinds.get(data[0]) if type(data[0]) is int else None
        if cls is None:
            raise ocpp.exceptions.PropertyConstraintViolationError(
                details={"cause": f"MessageTypeId {str(data[0])[:20]!r} isn't valid"}
            )
        try:
            message = cls(*data[1:])
        except TypeError as exc:
            raise ocpp.exceptions.ProtocolError(details={"cause": "Message is missing elements."}) from exc
        if isinstance(message, Call):
            if (
                not isinstance(message.unique_id, str)
                or not isinstance(message.action, str)
                or not isinstance(message.payload, dict)
            ):
                raise ocpp.exceptions.FormatViolationError(
                    details={"cause": "CALL elements have wrong types"}
                )
            check_values(message.payload)
        elif isinstance(message, CallResult):
            if not isinstance(message.payload, dict):
                raise ocpp.exceptions.FormatViolationError(
                    details={"cause": "CALLRESULT payload is not an object"}
                )
            check_values(message.payload)
        return message

    @staticmethod
    def _readable_answer_id(text: str) -> str | None:
        match = _ANSWER_ID.match(text)
        return match.group(2) if match else None

    @staticmethod
    def _readable_unique_id(text: str) -> str | None:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            match = _UNIQUE_ID.match(text)
            return match.group(1) if match else None
        if (
            isinstance(data, list)
            and len(data) >= 2
            and data[0] == MessageType.Call
            and isinstance(data[1], str)
        ):
            return data[1]
        return None

    async def _reply_error(self, unique_id: str, exc: OCPPError) -> None:
        code = mapping.CALL_ERROR_CODE.get(exc.code, exc.code)
        error = CallError(
            unique_id, code, exc.description, {"cause": str(exc.details.get("cause", ""))[:200]}
        )
        await self._send(error.to_json())

    async def _handle_call(self, msg: Call) -> None:
        if msg.action not in self.route_map:
            # OCPP-J 1.6 §4.2.3: NotSupported = recognized but not supported; NotImplemented = not known.
            if msg.action in _ACTIONS_16:
                raise ocpp.exceptions.NotSupportedError(details={"cause": f"{msg.action} is not supported"})
            raise ocpp.exceptions.NotImplementedError(
                details={"cause": f"{msg.action} is not an OCPP 1.6 action"}
            )
        precheck = _PRECHECKS.get(msg.action)
        if precheck is not None:
            precheck(msg.payload)  # an OCPPError here is answered like a schema violation, log-budgeted
        try:
            await super()._handle_call(msg)
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

    async def request(
        self, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send a CALL and return the CALLRESULT payload.

        Raises CsmsRejected for a CallError or an invalid answer, CsmsUnavailable on timeout or a closed link.
        """
        call = Call(self._unique_id_generator(), action, payload)
        ocpp.messages._validate_payload(call, self._ocpp_version)
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
                await self._send(call.to_json())
                async with asyncio.timeout(timeout):
                    answer = await future
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
            ocpp.messages._validate_payload(answer, self._ocpp_version)
        except OCPPError as exc:
            raise MalformedAnswer(
                "FormationViolation", f"invalid {action} answer: {exc.details}"[:200], answer=answer.payload
            ) from exc
        except Exception as exc:  # the validator choking on a value is the answer's fault, not ours
            raise MalformedAnswer(
                "FormationViolation", f"invalid {action} answer: {type(exc).__name__}", answer=answer.payload
            ) from exc
        result: dict[str, Any] = answer.payload
        return result

    # life cycle
    async def run(self) -> None:
        """Boot, then serve until the connection closes."""
        receiver = self._spawn(self.start(), "receive")
        try:
            await self._boot()
            self._spawn(self._heartbeat(), "heartbeat")
            self._spawn(self._send_statuses(), "status")
            self._spawn(self.link.outbox.run(self), "outbox")
            await receiver
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    log.debug("session task %s ended", task.get_name())
            self.accepted.clear()

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, CsmsUnavailable):
            log.error("session task %s crashed", task.get_name(), exc_info=exc)

    def _boot_payload(self) -> dict[str, Any]:
        ident = self.link.identity
        payload = {
            "chargePointVendor": ident.vendor,
            "chargePointModel": ident.model,
            "firmwareVersion": ident.firmware_version,
        }
        if ident.serial_number:
            payload["chargePointSerialNumber"] = ident.serial_number
        return payload

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
            await self._wait_or_closed(interval if interval > 0 else default_retry)
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

    async def _heartbeat(self) -> None:
        """Heartbeat when nothing else was exchanged for HeartbeatInterval (any traffic counts)."""
        changed = asyncio.Event()

        def on_setting(name: str) -> None:
            if name == "heartbeat_interval_s":
                changed.set()

        self.settings.listeners.append(on_setting)
        try:
            while True:
                changed.clear()
                interval = self.settings.get_int("heartbeat_interval_s")
                idle = self.link.idle_s()
                if interval <= 0 or idle < interval:
                    # Sleep until due, or until HeartbeatInterval changes.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(interval - idle if interval > 0 else None):
                            await changed.wait()
                    continue
                await self.send_heartbeat()
        finally:
            self.settings.listeners.remove(on_setting)

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
        self._status_seq += 1
        self._latest_status[cid] = self._status_seq
        self._status_queue.put_nowait(self._status_report(cid, self._status_seq))

    def _status_report(self, cid: int, seq: int) -> _StatusReport:
        status = self.station.status(cid)
        return _StatusReport(
            cid,
            mapping.STATUS[status.state],
            mapping.ERROR_CODE[status.error_code],
            status.info,
            status.timestamp,
            asyncio.get_running_loop().time(),
            seq,
        )

    async def _send_statuses(self) -> None:
        while True:
            report = await self._status_queue.get()
            minimum = self.settings.get_int("minimum_status_duration_s")
            if minimum > 0:
                # MinimumStatusDuration: report a status only once it has held that long.
                await asyncio.sleep(max(0.0, report.loop_time + minimum - asyncio.get_running_loop().time()))
                if self._latest_status.get(report.cid) != report.seq:
                    continue
            await self._send_report(report, force=False)

    async def send_status(self, cid: int, *, force: bool) -> None:
        """Send the current status of ``cid`` (``force``: even if the CSMS heard it last)."""
        await self._send_report(self._status_report(cid, self._status_seq), force=force)

    async def _send_report(self, report: _StatusReport, *, force: bool) -> None:
        """Send one report unless it repeats what the CSMS last heard; retried while the link lives."""
        key = (report.status, report.error_code, report.info)
        if not force and self._last_status.get(report.cid) == key:
            return
        payload: dict[str, Any] = {
            "connectorId": report.cid,
            "errorCode": report.error_code,
            "status": report.status,
            "timestamp": ocpp_time(report.at),
        }
        if report.info:
            payload["info"] = report.info[:50]
        while True:
            try:
                await self.request("StatusNotification", payload)
            except CsmsRejected as exc:
                log.warning("StatusNotification refused: %s", exc)
            except CsmsUnavailable:
                if self._closed.is_set():
                    raise
                log.warning("StatusNotification unanswered; retrying")
                await asyncio.sleep(1)
                continue
            break
        self._last_status[report.cid] = key

    # the CSMS port, used by the link
    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Authorize online; CallErrors count as unavailability (decide offline)."""
        try:
            answer = await self.request("Authorize", {"idTag": id_tag})
        except CsmsRejected as exc:
            # The CSMS is there and did not say yes: that is a refusal, not a reason to apply offline rules
            # (AllowOfflineTxForUnknownId would otherwise let unknown cards charge).
            log.warning("Authorize of %s answered with %s; treating the id as Invalid", id_tag, exc)
            return IdTagInfo(AuthStatus.INVALID)
        return id_tag_info(answer.get("idTagInfo"))

    async def deliver(self, message: OutboxMessage) -> Delivered:
        """Send one outbox message and return what the answer says; raises CsmsRejected or CsmsUnavailable,
        or OCPPError/ValueError/KeyError when the message cannot be encoded as a valid 1.6 CALL."""
        event = message.event()
        if isinstance(event, TransactionStarted):
            payload = {
                "connectorId": event.connector_id,
                "idTag": event.id_tag,
                "meterStart": event.meter_start_wh,
                "timestamp": ocpp_time(event.timestamp),
            }
            if event.reservation_id is not None:
                payload["reservationId"] = event.reservation_id  # the reservation it ends (OCPP 1.6 §5.13)
            try:
                answer = await self.request("StartTransaction", payload)
                tx_id = answer["transactionId"]
                if not is_int64(tx_id):
                    # OCPP 1.6 §6.46: an integer; ours are signed 64-bit. A protocol error of this one answer.
                    raise MalformedAnswer(
                        "PropertyConstraintViolation",
                        f"transactionId {tx_id!r:.30} out of range",
                        answer=answer,
                    )
            except MalformedAnswer as exc:
                # Malformed, but a readable non-Accepted status is still acted on (finding: an Invalid answer
                # without a transactionId must not leave the session charging).
                exc.id_tag, exc.id_tag_info = event.id_tag, readable_status(exc.answer)
                raise
            return Delivered(tx_id, event.id_tag, id_tag_info(answer.get("idTagInfo")))
        if isinstance(event, TransactionEnded):
            stop: dict[str, Any] = {
                "transactionId": self._transaction_id(message.local_tx_id),
                "meterStop": event.meter_stop_wh,
                "timestamp": ocpp_time(event.timestamp),
                "reason": mapping.STOP_REASON[event.reason],
            }
            if event.id_tag:
                stop["idTag"] = event.id_tag
            data = [meter_value(s) for s in event.transaction_data]
            data = [d for d in data if d["sampledValue"]]
            if data:
                stop["transactionData"] = data
            answer = await self.request("StopTransaction", stop)
            if event.id_tag and answer.get("idTagInfo"):
                return Delivered(None, event.id_tag, id_tag_info(answer["idTagInfo"]))
            return Delivered()
        if isinstance(event, SecurityEvent):
            # OCPP 1.6 Security whitepaper ed. 2 §4.6: SecurityEventNotification, queued like transaction messages.
            security: dict[str, Any] = {"type": event.type, "timestamp": ocpp_time(event.timestamp)}
            if event.tech_info:
                security["techInfo"] = event.tech_info
            await self.request("SecurityEventNotification", security)
            return Delivered()
        if isinstance(event, FirmwareStatusChanged | UploadStatusChanged):
            frame = fw.notification(event)
            if frame is not None:
                await self.request(*frame)
            return Delivered()
        samples = [meter_value(s) for s in event.samples]
        mv: dict[str, Any] = {"connectorId": event.connector_id, "meterValue": samples}
        if message.local_tx_id is not None:
            mv["transactionId"] = self._transaction_id(message.local_tx_id)
        await self.request("MeterValues", mv)
        return Delivered()

    def _transaction_id(self, local_id: int | None) -> int:
        """The CSMS's integer id for a transaction (OCPP 1.6 StartTransaction.conf, persisted with its answer)."""
        if local_id is None:
            return 0
        csms_id = self.store.csms_transaction_id(local_id)
        if csms_id is not None:
            return csms_id
        # Messages go strictly in order, so the StartTransaction went first: it was refused for good (it is a
        # dead letter). There is no id the CSMS would know; the message joins it rather than carry a made-up id.
        raise OrphanedTransaction(f"local transaction {local_id} has no CSMS transaction id")

    # handlers for the central system's CALLs
    @on(Action.remote_start_transaction)
    def on_remote_start(
        self,
        id_tag: str,
        connector_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
        **_: Any,
    ) -> Any:
        """RemoteStartTransaction (OCPP 1.6 §5.11); a chargingProfile becomes the transaction's TxProfile."""
        if connector_id is not None and connector_id not in self.station.connectors:
            return call_result.RemoteStartTransaction(status="Rejected")
        profile = None
        if charging_profile is not None:
            try:
                profile = charging_profile_of(charging_profile, connector_id or 0)
            except (KeyError, ValueError, TypeError) as exc:
                log.info("RemoteStartTransaction with an unusable chargingProfile: %s", exc)
                return call_result.RemoteStartTransaction(status="Rejected")
        ok = self.station.remote_start(
            id_tag,
            connector_id,
            authorize_first=self.settings.get_bool("authorize_remote_tx_requests"),
            tx_profile=profile,
        )
        return call_result.RemoteStartTransaction(status="Accepted" if ok else "Rejected")

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any
    ) -> Any:
        """SetChargingProfile (OCPP 1.6 §5.16): Rejected for a TxProfile without a transaction on the connector,
        a ChargePointMaxProfile off connector 0, or a unit, stack level or period count we do not take."""
        if connector_id != 0 and connector_id not in self.station.connectors:
            return call_result.SetChargingProfile(status="Rejected")
        csms_tx = cs_charging_profiles.get("transaction_id")
        station_tx = None
        # OCPP 1.6 §7.8: transactionId is only valid for a TxProfile; other purposes ignore it, as before.
        if csms_tx is not None and cs_charging_profiles.get("charging_profile_purpose") == "TxProfile":
            station_tx = await self._station_transaction_id(csms_tx)
            if station_tx is None:
                log.info("charging profile for transaction %.30r rejected: it is not running", csms_tx)
                return call_result.SetChargingProfile(status="Rejected")
        try:
            profile = charging_profile_of(cs_charging_profiles, connector_id, station_tx)
        except (KeyError, ValueError, TypeError) as exc:
            log.info("SetChargingProfile with an unusable profile: %s", exc)
            return call_result.SetChargingProfile(status="Rejected")
        result = self.station.set_charging_profile(connector_id, profile)
        return call_result.SetChargingProfile(status=mapping.PROFILE_RESULT[result])

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **_: Any,
    ) -> Any:
        """ClearChargingProfile (OCPP 1.6 §5.5): by id, or by connector, purpose and stack level; Unknown when
        nothing matched."""
        purpose = mapping.PROFILE_PURPOSE_IN[charging_profile_purpose] if charging_profile_purpose else None
        result = self.station.clear_charging_profiles(id, connector_id, purpose, stack_level)
        return call_result.ClearChargingProfile(status=mapping.CLEAR_RESULT[result])

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **_: Any
    ) -> Any:
        """GetCompositeSchedule (OCPP 1.6 §5.7): the limits from now for ``duration`` s; Rejected for an unknown
        connector or a negative duration."""
        unit = mapping.RATE_UNIT_IN[charging_rate_unit] if charging_rate_unit else None
        schedule = self.station.composite_schedule(connector_id, duration, unit) if duration >= 0 else None
        if schedule is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start=ocpp_time(schedule.start),
            charging_schedule=composite_schedule(schedule),
        )

    async def _station_transaction_id(self, csms_id: Any) -> str | None:
        """The station's id of the running transaction the CSMS knows by ``csms_id``; None if there is none."""
        if not is_int64(csms_id):  # OCPP 1.6 §6.46 integer; 2^63 cannot be one of ours
            return None
        store = self.store
        try:
            # The answer that recorded the id is committed first, awaited off the event loop (a RemoteStop right
            # behind StartTransaction.conf must find it).
            await store.flush()
            stored = store.transaction_by_csms_id(csms_id)
        except StorageError:
            log.exception("cannot look up the CSMS's transaction %s", csms_id)
            return None
        return stored.transaction_id if stored is not None and stored.active else None

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id: int, **_: Any) -> Any:
        """RemoteStopTransaction (OCPP 1.6 §5.12): the CSMS's integer id maps to the station's transaction."""
        station_id = await self._station_transaction_id(transaction_id)
        ok = station_id is not None and await self.station.remote_stop(station_id)
        return call_result.RemoteStopTransaction(status="Accepted" if ok else "Rejected")

    @on(Action.reserve_now)
    async def on_reserve_now(self, **fields: Any) -> Any:
        """ReserveNow (OCPP 1.6 §5.13)."""
        return await reservation.reserve_now(self.station, **fields)

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        """CancelReservation (OCPP 1.6 §5.2)."""
        return await reservation.cancel_reservation(self.station, reservation_id)

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> Any:
        """Reset: answer first; the agent ends transactions and restarts afterwards."""
        return call_result.Reset(status="Accepted")

    @after(Action.reset)
    def after_reset(self, type: str, **_: Any) -> None:
        """Carry out the reset after the answer went out."""
        self.station.request_reset(ResetKind.HARD if type == "Hard" else ResetKind.SOFT)

    @on(Action.unlock_connector)
    async def on_unlock(self, connector_id: int, **_: Any) -> Any:
        """UnlockConnector (OCPP 1.6 §5.18): ends a running transaction first."""
        if connector_id not in self.station.connectors:
            return call_result.UnlockConnector(status="NotSupported")
        result = await self.station.unlock(connector_id)
        return call_result.UnlockConnector(status=mapping.UNLOCK[result])

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:
        """ChangeAvailability (OCPP 1.6 §5.2): Scheduled while a transaction runs."""
        if connector_id != 0 and connector_id not in self.station.connectors:
            return call_result.ChangeAvailability(status="Rejected")
        operational = mapping.OPERATIONAL_IN.get(type)
        result = self.station.change_availability(connector_id, operational is OperationalStatus.OPERATIVE)
        return call_result.ChangeAvailability(status=mapping.AVAILABILITY[result])

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> Any:
        """ClearCache."""
        return call_result.ClearCache(status="Accepted" if self.station.clear_cache() else "Rejected")

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **_: Any) -> Any:
        """DataTransfer: no vendor extensions are known."""
        return call_result.DataTransfer(status="UnknownVendorId")

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        """GetConfiguration: the requested keys (all when none), unknown ones listed apart."""
        keys = key if key else list(mapping.CONFIG_KEYS)
        known, unknown = [], []
        for name in keys:
            ref = mapping.CONFIG_KEYS.get(name)
            if ref is None:
                unknown.append(name)
                continue
            variable = VARIABLES[ref]
            if variable.mutability is Mutability.WRITE_ONLY:
                # Security whitepaper: AuthorizationKey is write-only; it is listed, its value never sent.
                known.append({"key": name, "readonly": False})
                continue
            readonly = variable.mutability is Mutability.READ_ONLY
            known.append({"key": name, "readonly": readonly, "value": self._config_value(variable.setting)})
        return call_result.GetConfiguration(configuration_key=known, unknown_key=unknown or None)

    def _config_value(self, setting: str) -> str:
        if setting == "number_of_connectors":
            return str(len(self.station.connectors))
        if setting == "supported_feature_profiles":
            return mapping.SUPPORTED_PROFILES
        if setting == "charging_schedule_allowed_charging_rate_unit":
            return mapping.ALLOWED_RATE_UNITS
        return self.settings.text(setting)[:500]

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        """ChangeConfiguration: Rejected for read-only or invalid, NotSupported for unknown keys."""
        ref = mapping.CONFIG_KEYS.get(key)
        if ref is None:
            return call_result.ChangeConfiguration(status="NotSupported")
        if key in SECURITY_KEYS:
            return call_result.ChangeConfiguration(status=self.change_security_key(key, value))
        try:
            reboot = self.settings.set_text(VARIABLES[ref].setting, value)
        except (PermissionError, ValueError) as exc:
            log.info("ChangeConfiguration %s=%r rejected: %s", key, value, exc)
            return call_result.ChangeConfiguration(status="Rejected")
        except Exception:
            log.exception("ChangeConfiguration %s could not be stored", key)
            return call_result.ChangeConfiguration(status="Rejected")
        return call_result.ChangeConfiguration(status="RebootRequired" if reboot else "Accepted")

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> Any:
        """GetLocalListVersion."""
        return call_result.GetLocalListVersion(list_version=self.station.local_list_version())

    @on(Action.send_local_list)
    def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> Any:
        """SendLocalList: full or differential; an entry without idTagInfo is removed (differential)."""
        entries: dict[str, IdTagInfo | None] = {}
        for item in local_authorization_list or []:
            info = item.get("id_tag_info")
            entries[item["id_tag"]] = id_tag_info(info) if info else None
        full = update_type == "Full"
        if full:
            entries = {k: v for k, v in entries.items() if v is not None}
        result = self.station.update_local_list(list_version, full, entries)
        return call_result.SendLocalList(status=mapping.LOCAL_LIST[result])

    @on(Action.update_firmware)
    def on_update_firmware(
        self, location: str, retrieve_date: str, retries: int | None = None, retry_interval: int | None = None
    ) -> Any:
        """UpdateFirmware (OCPP 1.6 §5.19)."""
        return fw.update_firmware(self.station.firmware, location, retrieve_date, retries, retry_interval)

    @on(Action.signed_update_firmware)
    def on_signed_update_firmware(
        self,
        request_id: int,
        firmware: dict[str, Any],
        retries: int | None = None,
        retry_interval: int | None = None,
    ) -> Any:
        """SignedUpdateFirmware (Security whitepaper ed. 2 §4.4)."""
        return fw.signed_update_firmware(self.station.firmware, request_id, firmware, retries, retry_interval)

    @on(Action.get_diagnostics)
    def on_get_diagnostics(
        self,
        location: str,
        retries: int | None = None,
        retry_interval: int | None = None,
        start_time: str | None = None,
        stop_time: str | None = None,
    ) -> Any:
        """GetDiagnostics (OCPP 1.6 §5.9)."""
        return fw.get_diagnostics(
            self.station.diagnostics, location, retries, retry_interval, start_time, stop_time
        )

    @on(Action.get_log)
    def on_get_log(
        self,
        log: dict[str, Any],
        log_type: str,
        request_id: int,
        retries: int | None = None,
        retry_interval: int | None = None,
    ) -> Any:
        """GetLog (Security whitepaper ed. 2 §4.5)."""
        return fw.get_log(self.station.diagnostics, log_type, request_id, log, retries, retry_interval)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any) -> Any:
        """TriggerMessage (RemoteTrigger profile); the message follows the answer."""
        status = trigger_status(self.station.connectors, requested_message, connector_id, _TRIGGERABLE)
        return call_result.TriggerMessage(status=status)

    @after(Action.trigger_message)
    def after_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> None:
        """Send what TriggerMessage asked for (allowed even while boot is Pending), in a task kept by reference;
        nothing for a Rejected one (an unknown connector)."""
        if (
            trigger_status(self.station.connectors, requested_message, connector_id, _TRIGGERABLE)
            == "Accepted"
        ):
            self._spawn(self._send_triggered(requested_message, connector_id), f"trigger-{requested_message}")

    async def _send_triggered(self, what: str, connector_id: int | None) -> None:
        try:
            await self._triggered(what, connector_id)
        except (CsmsRejected, CsmsUnavailable, OrphanedTransaction) as exc:
            log.warning("triggered %s failed: %s", what, exc)

    async def _triggered(self, what: str, connector_id: int | None) -> None:
        if what == "BootNotification":
            answer = await self.request("BootNotification", self._boot_payload())
            self._boot_answer(answer)
        elif what == "Heartbeat":
            await self.send_heartbeat()
        elif what == "StatusNotification":
            targets = [connector_id] if connector_id is not None else [0, *self.station.connectors]
            for cid in targets:
                await self.send_status(cid, force=True)
        elif what == "MeterValues":
            targets = [connector_id] if connector_id else list(self.station.connectors)
            for cid in targets:
                sample, local_tx = self.station.sample_now(cid)
                if sample is None:
                    continue
                mv: dict[str, Any] = {"connectorId": cid, "meterValue": [meter_value(sample)]}
                if local_tx is not None:
                    mv["transactionId"] = self._transaction_id(local_tx)
                await self.request("MeterValues", mv)
        elif what in ("DiagnosticsStatusNotification", "FirmwareStatusNotification"):
            # OCPP 1.6 §5.17: the current status (Idle when nothing is in progress).
            await self.request(*fw.triggered(what, self.station.firmware, self.station.diagnostics))


# Checks of values the schemas cannot express, run before the ``ocpp`` package routes the CALL (a handler that
# raised would be answered by the package, with its spelling of the code and a logged traceback per frame).
_PRECHECKS = {"ReserveNow": reservation.check_reserve_now}

_TRIGGERABLE = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "MeterValues",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
    }
)
