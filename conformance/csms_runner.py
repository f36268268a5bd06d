"""The CSMS runner: we play the charger over raw OCPP-J frames, and judge the central system's answers.

Every answer is schema-checked with the ``ocpp`` package's validation; a CALLERROR, a timeout, a closed socket or
an unparseable frame fails the step with the reason. Each case opens its own connection(s), so a central system
that misbehaves in one case does not spoil the next.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import itertools
import json
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.exceptions import NotImplementedError as SchemaMissingError
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallResult, validate_payload
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from conformance.drivers import ProfileError, Trigger, TriggerFailed, TriggerUnavailable
from conformance.engine import BaseContext
from conformance.model import Case, Fail, Inconclusive, SetupError, TraceEntry
from conformance.versions import OcppVersion, by_schema

__all__ = ["CallError", "CsmsContext", "CsmsSetup", "HandshakeRefused", "RawCharger", "ocpp_time"]

CALL, CALLRESULT, CALLERROR = 2, 3, 4


def ocpp_time(when: datetime | None = None) -> str:
    """An OCPP dateTime in UTC with a Z suffix."""
    return (when or datetime.now(UTC)).isoformat(timespec="seconds").replace("+00:00", "Z")


# The simulated 2.0.1 station's own message limits (Part 2 appendix: DeviceDataCtrlr and LocalAuthListCtrlr), as it
# answers a central system that reads them before splitting a request (B06.FR.05, D01). Large enough that no case's
# request needs splitting; TC_B_08_CSMS answers its own, smaller ones.
STATION_LIMITS: dict[tuple[str, str, str | None], str] = {
    ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"): "20",
    ("DeviceDataCtrlr", "BytesPerMessage", "GetVariables"): "65000",
    ("DeviceDataCtrlr", "ItemsPerMessage", "SetVariables"): "20",
    ("DeviceDataCtrlr", "BytesPerMessage", "SetVariables"): "65000",
    ("LocalAuthListCtrlr", "ItemsPerMessage", None): "100",
    ("LocalAuthListCtrlr", "BytesPerMessage", None): "65000",
}


def variable_key(data: Any) -> tuple[Any, Any, Any]:
    """(component, variable, variable instance) of a GetVariableDataType / GetVariableResultType."""
    component = data.get("component") if isinstance(data, dict) else None
    variable = data.get("variable") if isinstance(data, dict) else None
    return (
        component.get("name") if isinstance(component, dict) else None,
        variable.get("name") if isinstance(variable, dict) else None,
        variable.get("instance") if isinstance(variable, dict) else None,
    )


def is_limit_query(payload: dict[str, Any], limits: dict[tuple[str, str, str | None], str]) -> bool:
    """Whether a GetVariablesRequest asks for nothing but message limits in ``limits``."""
    data = payload.get("getVariableData")
    return isinstance(data, list) and bool(data) and all(variable_key(d) in limits for d in data)


def get_variables_answer(
    payload: dict[str, Any], values: dict[tuple[str, str, str | None], str]
) -> dict[str, Any]:
    """A GetVariablesResponse from ``values``: Accepted with the value, UnknownVariable for anything else."""
    results = []
    for data in payload.get("getVariableData") or []:
        if not isinstance(data, dict):
            continue
        result = {"component": data.get("component"), "variable": data.get("variable")}
        value = values.get(variable_key(data))
        result.update(
            {"attributeStatus": "Accepted", "attributeValue": value}
            if value is not None
            else {"attributeStatus": "UnknownVariable"}
        )
        results.append(result)
    return {"getVariableResult": results}


def asked_matches(asked: Any, got: Any) -> bool:
    """Whether a field the central system sent carries what the trigger asked for.

    Equal, except the ``type`` of an OCPP 2.0.1 IdTokenType: the token is the central system's, and so is its kind
    (a card UID is ISO14443, an account Central, IdTokenEnumType); the suite cannot know which its store keeps,
    so the idToken value is compared and the schema check keeps the type an IdTokenEnumType.
    """
    if isinstance(asked, dict) and isinstance(got, dict):
        keys = asked.keys() | got.keys()
        if {"idToken", "type"} <= asked.keys():
            keys -= {"type"}
        return all(k in asked and k in got and asked_matches(asked[k], got[k]) for k in keys)
    if isinstance(asked, list) and isinstance(got, list):
        return len(asked) == len(got) and all(asked_matches(a, g) for a, g in zip(asked, got, strict=True))
    return bool(asked == got)


def parse_time(text: str) -> datetime:
    """An OCPP dateTime as an aware datetime."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class HandshakeRefused(Exception):
    """The central system answered the WebSocket handshake with an HTTP status instead of 101."""

    def __init__(self, status: int) -> None:
        """Keep the HTTP status."""
        super().__init__(f"HTTP {status}")
        self.status = status


class CallError(Exception):
    """The central system answered a CALL with a CALLERROR."""

    def __init__(self, code: str, description: str) -> None:
        """Keep code and description."""
        super().__init__(f"CALLERROR {code}: {description}")
        self.code = code
        self.description = description


@dataclass
class CsmsSetup:
    """Everything the CSMS runner knows about the central system under test."""

    url: str
    charger_id: str
    password: str | None = None
    ssl_context: ssl.SSLContext | None = None
    schema_version: str = "1.6"
    subprotocol: str = "ocpp1.6"
    id_tags: dict[str, str] = field(default_factory=dict)  # accepted, blocked, expired, invalid -> idTag
    second_charger_id: str | None = None
    second_password: str | None = None
    pending_charger_id: str | None = None
    pending_password: str | None = None
    # A charger only the security profile upgrade cases use (TC_083_CSMS, TC_A_19_CSMS): they leave it at
    # profile 3 for good (a central system must then refuse it at profile 2), so it cannot be the main one.
    upgrade_charger_id: str | None = None
    upgrade_password: str | None = None  # its HTTP Basic password (profiles 1 and 2)
    upgrade_url: str | None = None  # the endpoint of the higher profile (default: url)
    upgrade_tls: dict[int, ssl.SSLContext] = field(
        default_factory=dict
    )  # client TLS: 2 no certificate, 3 its own
    trigger: Trigger | None = None
    call_timeout_s: float = 10.0
    trigger_wait_s: float = 30.0  # how long to wait for the CALL a trigger asked for
    clock_skew_s: float = 300.0  # how far the central system's currentTime may be from ours
    heartbeat_wait_max_s: float = 0.0  # wait one heartbeat interval when it is at most this long (0: never)
    profiles: frozenset[str] | None = None  # feature profiles the central system offers (None: all)
    client_certificate: bool = False  # --tls-cert given (security profile 3)

    def needs_available(self) -> set[str]:
        """The setup needs this configuration meets."""
        have = {f"id_tag_{k}" for k, v in self.id_tags.items() if v}
        if self.password:
            have.add("password")
        if self.second_charger_id:
            have.add("second_charger")
        if self.pending_charger_id:
            have.add("pending_charger")
        if self.upgrade_charger_id and self.upgrade_password:
            higher = self.upgrade_profiles[1]
            url = self.upgrade_endpoint(higher)[0]
            if url.startswith("wss://") and 2 in self.upgrade_tls and (higher < 3 or 3 in self.upgrade_tls):
                have.add("upgrade_charger")
        if self.trigger is not None:
            have.add("trigger")
        if self.url.startswith("wss://"):
            have.add("tls")
        if self.client_certificate:
            have.add("client_certificate")
        return have

    @property
    def upgrade_profiles(self) -> tuple[int, int]:
        """The upgrade cases' lower and higher security profile: 1 to 2 from a ws:// URL, 2 to 3 from wss://."""
        lower = 2 if self.url.startswith("wss://") else 1
        return lower, lower + 1

    def upgrade_endpoint(self, profile: int) -> tuple[str, str | None, ssl.SSLContext | None]:
        """URL, password and client TLS of the upgrade charger at ``profile`` (the lower one on ``url``, the higher
        one on ``upgrade_url``; a password up to profile 2, its client certificate instead at 3)."""
        url = self.url if profile == self.upgrade_profiles[0] else (self.upgrade_url or self.url)
        password = self.upgrade_password if profile < 3 else None
        tls = self.upgrade_tls.get(3 if profile == 3 else 2) if url.startswith("wss://") else None
        return url, password, tls


NEED_OPTIONS = {
    "id_tag_accepted": "--id-tag-accepted TAG (a card the central system accepts)",
    "id_tag_blocked": "--id-tag-blocked TAG (a card it knows as blocked)",
    "id_tag_expired": "--id-tag-expired TAG (a card it knows as expired)",
    "id_tag_invalid": "--id-tag-invalid TAG (a card it does not know)",
    "password": "--password PW (the charger's HTTP Basic password)",
    "second_charger": "--second-charger-id ID --second-password PW (another registered charger)",
    "pending_charger": "--pending-charger-id ID (a charger the central system answers Pending)",
    "upgrade_charger": "--upgrade-charger-id ID --upgrade-password PW (a registered charger only the security "
    "profile upgrade cases use: they leave it at the higher profile), --upgrade-url wss://... for the higher "
    "profile's endpoint unless --url is wss:// and serves it, --tls-ca, and for profile 3 --upgrade-tls-cert PEM "
    "--upgrade-tls-key PEM",
    "trigger": "--trigger FILE or --interactive (to make the central system act)",
    "tls": "a wss:// --url with --tls-ca",
    "client_certificate": "--tls-cert PEM --tls-key PEM (the charger's client certificate, security profile 3)",
}


class RawCharger:
    """One simulated charger connection: raw frames, every frame traced, answers schema-checked."""

    def __init__(self, ws: ClientConnection, ctx: CsmsContext, cp_id: str) -> None:
        """Start reading frames from ``ws``."""
        self.ws = ws
        self.ctx = ctx
        self.cp_id = cp_id
        self._ids = itertools.count(1)
        self._pending: dict[str, tuple[str, asyncio.Future[list[Any]]]] = {}
        self._expected: dict[str, asyncio.Future[tuple[str, dict[str, Any]]]] = {}
        self._skip: dict[str, Callable[[dict[str, Any]], bool]] = {}
        self.answers: dict[str, dict[str, Any]] = {}  # action -> our answer to an expected CALL
        self.garbage: list[str] = []
        self.unexpected_calls: list[str] = []
        self.closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                text = message if isinstance(message, str) else message.decode(errors="replace")
                self.ctx.record("received", f"[{self.cp_id}] {text}")
                await self._dispatch(text)
        except (ConnectionClosed, Fail):  # Fail: our answer to one of its CALLs could not be sent any more
            pass
        finally:
            code = self.ws.close_code
            self.ctx.event(f"[{self.cp_id}] connection closed (code {code})")
            self.closed.set()
            for action, future in self._pending.values():
                if not future.done():
                    future.set_exception(
                        Fail(
                            f"the central system closed the connection (code {code}) before answering {action}"
                        )
                    )

    async def _dispatch(self, text: str) -> None:
        try:
            frame = json.loads(text)
            if not isinstance(frame, list) or not frame or frame[0] not in (CALL, CALLRESULT, CALLERROR):
                raise ValueError("not an OCPP-J frame")
            kind, unique_id = frame[0], frame[1]
            if not isinstance(unique_id, str):
                raise ValueError("UniqueId is not a string")
        except (ValueError, IndexError, TypeError) as exc:
            self.garbage.append(text[:200])
            self.ctx.event(f"[{self.cp_id}] unparseable frame ({exc}): OCPP-J 1.6 §4.1")
            return
        if kind in (CALLRESULT, CALLERROR):
            pending = self._pending.get(unique_id)
            if pending is None:
                self.ctx.event(f"[{self.cp_id}] answer to unknown uniqueId {unique_id!r}")
            elif not pending[1].done():
                pending[1].set_result(frame)
            return
        if len(frame) != 4 or not isinstance(frame[2], str) or not isinstance(frame[3], dict):
            self.garbage.append(text[:200])
            return
        action, payload = frame[2], frame[3]
        expected = self._expected.get(action)
        skip = self._skip.get(action)
        if expected is not None and not expected.done() and not (skip is not None and skip(payload)):
            expected.set_result((unique_id, payload))
            return
        # A CALL nobody waits for (e.g. the central system acting on its own): answered so it is not left hanging.
        self.unexpected_calls.append(action)
        if action == "GetVariables" and is_limit_query(payload, STATION_LIMITS):
            # The central system reads the station's message limits before a request it may have to split.
            self.ctx.event(f"[{self.cp_id}] the central system read the station's message limits")
            await self.send([CALLRESULT, unique_id, get_variables_answer(payload, STATION_LIMITS)])
            return
        defaults = DEFAULT_ANSWERS.get(self.ctx.setup.schema_version, {})
        await self.send([CALLRESULT, unique_id, defaults.get(action, {})])

    async def send(self, frame: list[Any]) -> None:
        """Send and trace one frame."""
        text = json.dumps(frame, separators=(",", ":"))
        self.ctx.record("sent", f"[{self.cp_id}] {text}")
        try:
            await self.ws.send(text)
        except ConnectionClosed as exc:
            raise Fail(
                f"the central system closed the connection ({exc.rcvd.code if exc.rcvd else 1006})"
            ) from None

    async def call_frame(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send a CALL and return the CALLRESULT or CALLERROR frame; Fail on timeout or close."""
        await validate_payload(Call("0", action, copy.deepcopy(payload)), self.ctx.setup.schema_version)
        unique_id = f"c{next(self._ids)}"
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[unique_id] = (action, future)
        try:
            if self.closed.is_set():
                raise Fail(f"the central system closed the connection before {action} could be sent")
            await self.send([CALL, unique_id, action, payload])
            timeout_s = self.ctx.scaled(self.ctx.setup.call_timeout_s)
            try:
                async with asyncio.timeout(timeout_s):
                    return await future
            except TimeoutError:
                extra = f"; it sent unparseable frames: {self.garbage[-1]!r}" if self.garbage else ""
                raise Fail(
                    f"no answer to {action} within {timeout_s:g} s (OCPP-J 1.6 §4.1.1){extra}"
                ) from None
        finally:
            self._pending.pop(unique_id, None)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL; return the schema-valid CALLRESULT payload, raise CallError on a CALLERROR."""
        frame = await self.call_frame(action, payload)
        if frame[0] == CALLERROR:
            code = frame[2] if len(frame) > 2 else "?"
            raise CallError(str(code), str(frame[3]) if len(frame) > 3 else "")
        if len(frame) != 3 or not isinstance(frame[2], dict):
            raise Fail(f"malformed CALLRESULT to {action}: {json.dumps(frame)[:200]} (OCPP-J 1.6 §4.2.2)")
        await self.ctx.check_schema(
            CallResult(frame[1], copy.deepcopy(frame[2]), action), self.ctx.version.response_name(action)
        )
        return dict(frame[2])

    def expect(
        self, action: str, skip: Callable[[dict[str, Any]], bool] | None = None
    ) -> asyncio.Future[tuple[str, dict[str, Any]]]:
        """Register that a CALL of ``action`` from the central system is awaited (before triggering it); one whose
        payload ``skip`` takes is answered like any CALL nobody waits for (e.g. a query of the station's limits)."""
        future: asyncio.Future[tuple[str, dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._expected[action] = future
        if skip is None:
            self._skip.pop(action, None)
        else:
            self._skip[action] = skip
        return future

    def forget(self, action: str) -> None:
        """Stop waiting for ``action``."""
        self._expected.pop(action, None)
        self._skip.pop(action, None)

    async def close(self, abrupt: bool = False) -> None:
        """Close the connection (abruptly: without a close frame, like a power cut)."""
        if abrupt:
            transport = self.ws.transport
            if transport is not None:
                transport.abort()
        else:
            with contextlib.suppress(Exception):
                await self.ws.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._reader


# Answers to CALLs of the central system that no step waits for, per schema version: each a simple valid answer
# (OCPP 1.6 §5; OCPP 2.0.1 Part 2 §1). An action not listed gets an empty object.
_V16_DEFAULT_ANSWERS: dict[str, dict[str, Any]] = {
    "ChangeAvailability": {"status": "Accepted"},
    "ChangeConfiguration": {"status": "Accepted"},
    "ClearCache": {"status": "Accepted"},
    "DataTransfer": {"status": "UnknownVendorId"},
    "GetConfiguration": {"configurationKey": []},
    "RemoteStartTransaction": {"status": "Rejected"},
    "RemoteStopTransaction": {"status": "Rejected"},
    "Reset": {"status": "Rejected"},
    "UnlockConnector": {"status": "NotSupported"},
    "TriggerMessage": {"status": "Rejected"},
    "GetLocalListVersion": {"listVersion": 0},
    "SendLocalList": {"status": "NotSupported"},
    "SetChargingProfile": {"status": "Rejected"},
    "ClearChargingProfile": {"status": "Unknown"},
    "GetCompositeSchedule": {"status": "Rejected"},
    "ReserveNow": {"status": "Rejected"},
    "CancelReservation": {"status": "Rejected"},
    "GetDiagnostics": {},
    "UpdateFirmware": {},
}
_V201_DEFAULT_ANSWERS: dict[str, dict[str, Any]] = {
    "ChangeAvailability": {"status": "Accepted"},
    "ClearCache": {"status": "Accepted"},
    "DataTransfer": {"status": "UnknownVendorId"},
    "GetVariables": {"getVariableResult": []},
    "SetVariables": {"setVariableResult": []},
    "GetBaseReport": {"status": "NotSupported"},
    "GetReport": {"status": "NotSupported"},
    "RequestStartTransaction": {"status": "Rejected"},
    "RequestStopTransaction": {"status": "Rejected"},
    "Reset": {"status": "Rejected"},
    "UnlockConnector": {"status": "UnknownConnector"},
    "TriggerMessage": {"status": "Rejected"},
    "GetTransactionStatus": {"messagesInQueue": False},
    "GetLocalListVersion": {"versionNumber": 0},
    "SendLocalList": {"status": "Failed"},
    "SetChargingProfile": {"status": "Rejected"},
    "ClearChargingProfile": {"status": "Unknown"},
    "GetChargingProfiles": {"status": "NoProfiles"},
    "GetCompositeSchedule": {"status": "Rejected"},
    "ReserveNow": {"status": "Rejected"},
    "CancelReservation": {"status": "Rejected"},
    "GetLog": {"status": "Rejected"},
    "UpdateFirmware": {"status": "Rejected"},
    "SetNetworkProfile": {"status": "Rejected"},
    "CertificateSigned": {"status": "Rejected"},
    "InstallCertificate": {"status": "Rejected"},
    "DeleteCertificate": {"status": "NotFound"},
    "GetInstalledCertificateIds": {"status": "NotFound"},
    "CustomerInformation": {"status": "Rejected"},
}
DEFAULT_ANSWERS: dict[str, dict[str, dict[str, Any]]] = {
    "1.6": _V16_DEFAULT_ANSWERS,
    "2.0.1": _V201_DEFAULT_ANSWERS,
}


@dataclass
class CsmsContext(BaseContext):
    """The CSMS runner's state during one case: its connections and what the central system told us."""

    setup: CsmsSetup = field(default_factory=lambda: CsmsSetup("ws://127.0.0.1:0/ocpp", "CP-1"))
    conns: list[RawCharger] = field(default_factory=list)
    conn: RawCharger | None = None
    issued_tx_ids: dict[int, tuple[str, str]] = field(default_factory=dict)  # txId -> (cp, key) this run
    heartbeat_interval_s: int = 0

    # ---- tracing and checks --------------------------------------------------------------------------------

    def record(self, direction: str, text: str) -> None:
        """Trace one frame."""
        self.trace.append(TraceEntry(datetime.now(UTC), direction, text))

    @property
    def version(self) -> OcppVersion:
        """The OCPP version under test (its message names for failure texts)."""
        return by_schema(self.setup.schema_version)

    async def check_schema(self, message: Call | CallResult, what: str) -> None:
        """Fail unless ``message`` is valid against the version's JSON schema (the ``ocpp`` package's public
        validation, which judges exactly like its routing does)."""
        try:
            await validate_payload(message, self.setup.schema_version)
        except SchemaMissingError:
            return
        except OCPPError as exc:
            cause = exc.details.get("cause") if isinstance(exc.details, dict) else None
            raise Fail(
                f"{what} violates the OCPP {self.setup.schema_version} schema: {cause or exc.description}"
            ) from None

    def check_current_time(self, text: str, what: str, clause: str) -> None:
        """Fail unless ``text`` (a currentTime) is within the allowed skew of our clock."""
        skew = abs((parse_time(text) - datetime.now(UTC)).total_seconds())
        if skew > self.setup.clock_skew_s:
            raise Fail(f"{what} currentTime {text} is {skew:.0f} s off ({clause})")

    async def begin_case(self, case: Case[Any]) -> None:
        """Nothing to prepare: each case opens its own connections."""

    async def end_case(self, case: Case[Any]) -> None:
        """Close every connection the case opened."""
        for conn in self.conns:
            await conn.close()
        self.conns.clear()
        self.conn = None

    # ---- connections ---------------------------------------------------------------------------------------

    def _ids(self, which: str) -> tuple[str, str | None]:
        s = self.setup
        if which == "main":
            return s.charger_id, s.password
        if which == "second":
            if s.second_charger_id is None:
                raise SetupError("needs --second-charger-id")
            return s.second_charger_id, s.second_password
        if which == "pending":
            if s.pending_charger_id is None:
                raise SetupError("needs --pending-charger-id")
            return s.pending_charger_id, s.pending_password
        if which == "upgrade":
            if s.upgrade_charger_id is None:
                raise SetupError("needs --upgrade-charger-id")
            return s.upgrade_charger_id, s.upgrade_password
        raise ValueError(which)

    async def handshake(
        self,
        cp_id: str,
        password: str | None,
        *,
        subprotocols: tuple[str, ...] | None = None,
        authorization: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        base_url: str | None = None,
    ) -> ClientConnection:
        """Open a WebSocket to ``{url}/{cp_id}``; HandshakeRefused on an HTTP answer, Fail when unreachable.

        ``ssl_context`` replaces the configured client TLS (another charger's client certificate, or none),
        ``base_url`` the configured URL."""
        headers: dict[str, str] = {}
        if authorization is not None:
            headers["Authorization"] = authorization
        elif password is not None:
            token = base64.b64encode(f"{cp_id}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        url = f"{(base_url or self.setup.url).rstrip('/')}/{cp_id}"
        offered = subprotocols or (self.setup.subprotocol,)
        self.event(f"connect {url} offering {', '.join(offered)}" + (" with Basic auth" if headers else ""))
        try:
            ws = await connect(
                url,
                subprotocols=list(offered),  # type: ignore[arg-type]
                additional_headers=headers or None,
                ssl=(ssl_context or self.setup.ssl_context) if url.startswith("wss://") else None,
                open_timeout=self.scaled(self.setup.call_timeout_s),
                compression=None,
                ping_interval=None,
            )
        except InvalidStatus as exc:
            self.event(f"handshake refused: HTTP {exc.response.status_code}")
            raise HandshakeRefused(exc.response.status_code) from None
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise Fail(f"cannot connect to {url}: {exc!r}") from None
        self.event(f"connected, subprotocol {ws.subprotocol!r}")
        return ws

    async def open(
        self,
        which: str = "main",
        *,
        password: str | None = None,
        profile: int | None = None,
    ) -> RawCharger:
        """Connect as the main (or second, pending, upgrade) charger; Fail unless the handshake succeeds.

        ``profile`` (the upgrade charger): its endpoint and credentials at that security profile
        (`CsmsSetup.upgrade_endpoint`). The upgrade charger's connection becomes the case's main one."""
        cp_id, default_password = self._ids(which)
        base_url, tls = None, None
        if profile is not None:
            base_url, default_password, tls = self.setup.upgrade_endpoint(profile)
        try:
            ws = await self.handshake(
                cp_id,
                password if password is not None else default_password,
                ssl_context=tls,
                base_url=base_url,
            )
        except HandshakeRefused as exc:
            raise Fail(f"the central system refused {cp_id} at the handshake: HTTP {exc.status}") from None
        if ws.subprotocol != self.setup.subprotocol:
            await ws.close()
            raise Fail(
                f"subprotocol {ws.subprotocol!r} selected, {self.setup.subprotocol} offered (OCPP-J 1.6 §3.1.2)"
            )
        conn = RawCharger(ws, self, cp_id)
        self.conns.append(conn)
        if which in ("main", "upgrade"):
            self.conn = conn
        return conn

    def main(self) -> RawCharger:
        """The main charger's connection (opened by an earlier step)."""
        if self.conn is None:
            raise Fail("no connection (an earlier step did not connect)")
        return self.conn

    # ---- what a charger sends ------------------------------------------------------------------------------

    async def call(
        self, action: str, payload: dict[str, Any], conn: RawCharger | None = None
    ) -> dict[str, Any]:
        """Send a CALL on ``conn`` (the main connection by default); a CALLERROR fails the step."""
        try:
            return await (conn or self.main()).call(action, payload)
        except CallError as exc:
            raise Fail(f"{action} was answered with {exc}") from None

    async def boot(self, conn: RawCharger | None = None, expect: str = "Accepted") -> dict[str, Any]:
        """BootNotification; Fail unless the status is ``expect``; checks currentTime and interval (§4.2)."""
        answer = await self.call(
            "BootNotification",
            {
                "chargePointVendor": "OpenChargeConf",
                "chargePointModel": "Virtual-1.6",
                "firmwareVersion": "1.0",
            },
            conn,
        )
        if answer["status"] != expect:
            raise Fail(f"BootNotification answered {answer['status']}, expected {expect}")
        self.check_current_time(answer["currentTime"], "BootNotification.conf", "OCPP 1.6 §4.2")
        if expect == "Accepted" and answer["interval"] <= 0:
            raise Fail(
                f"an Accepted BootNotification.conf has interval {answer['interval']}: heartbeat needs > 0"
            )
        if expect == "Accepted":
            self.heartbeat_interval_s = int(answer["interval"])
        return answer

    async def connect_and_boot(self, which: str = "main") -> RawCharger:
        """Connect, boot Accepted and report connector 0 and 1 Available."""
        conn = await self.open(which)
        await self.boot(conn)
        for connector in (0, 1):
            await self.status(connector, "Available", conn=conn)
        return conn

    async def status(
        self, connector: int, status: str, *, error_code: str = "NoError", conn: RawCharger | None = None
    ) -> None:
        """StatusNotification; the answer must be an empty object (§6.48)."""
        await self.call(
            "StatusNotification",
            {"connectorId": connector, "status": status, "errorCode": error_code, "timestamp": ocpp_time()},
            conn,
        )

    def tag(self, kind: str) -> str:
        """The idTag the setup gave for ``kind`` (accepted, blocked, expired, invalid)."""
        tag = self.setup.id_tags.get(kind)
        if not tag:
            raise SetupError(f"needs --id-tag-{kind}")
        return tag

    async def authorize(self, tag: str, conn: RawCharger | None = None) -> str:
        """Authorize; returns idTagInfo.status."""
        return str((await self.call("Authorize", {"idTag": tag}, conn))["idTagInfo"]["status"])

    async def start(
        self,
        tag: str,
        *,
        connector: int = 1,
        meter_start: int = 1000,
        when: datetime | None = None,
        reservation_id: int | None = None,
        conn: RawCharger | None = None,
    ) -> tuple[int, str]:
        """StartTransaction; returns (transactionId, idTagInfo.status); a transactionId reused is a fail."""
        conn = conn or self.main()
        payload: dict[str, Any] = {
            "connectorId": connector,
            "idTag": tag,
            "meterStart": meter_start,
            "timestamp": ocpp_time(when),
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        answer = await self.call("StartTransaction", payload, conn)
        tx_id = int(answer["transactionId"])
        key = f"{connector}/{tag}/{payload['timestamp']}/{meter_start}"
        seen = self.issued_tx_ids.get(tx_id)
        if seen is not None and seen != (conn.cp_id, key):
            raise Fail(
                f"transactionId {tx_id} was already given to another transaction (OCPP 1.6 §4.8: unique ids)"
            )
        self.issued_tx_ids[tx_id] = (conn.cp_id, key)
        return tx_id, str(answer["idTagInfo"]["status"])

    async def stop(
        self,
        tx_id: int,
        *,
        reason: str | None = None,
        tag: str | None = None,
        meter_stop: int = 5000,
        when: datetime | None = None,
        conn: RawCharger | None = None,
    ) -> dict[str, Any]:
        """StopTransaction with a closing meter value; returns the answer."""
        payload: dict[str, Any] = {
            "transactionId": tx_id,
            "meterStop": meter_stop,
            "timestamp": ocpp_time(when),
        }
        if reason is not None:
            payload["reason"] = reason
        if tag is not None:
            payload["idTag"] = tag
        payload["transactionData"] = [
            {
                "timestamp": payload["timestamp"],
                "sampledValue": [
                    {
                        "value": str(meter_stop),
                        "context": "Transaction.End",
                        "measurand": "Energy.Active.Import.Register",
                        "unit": "Wh",
                    }
                ],
            }
        ]
        answer = await self.call("StopTransaction", payload, conn)
        if (
            tag is not None
            and "idTagInfo" in answer
            and answer["idTagInfo"]["status"]
            not in (
                "Accepted",
                "Blocked",
                "Expired",
                "Invalid",
                "ConcurrentTx",
            )
        ):
            raise Fail(f"StopTransaction.conf idTagInfo {answer['idTagInfo']}")
        return answer

    async def meter_values(self, tx_id: int | None, wh: int, connector: int = 1) -> None:
        """MeterValues with one energy register sample; the answer must be an empty object."""
        payload: dict[str, Any] = {
            "connectorId": connector,
            "meterValue": [
                {
                    "timestamp": ocpp_time(),
                    "sampledValue": [
                        {
                            "value": str(wh),
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                            "context": "Sample.Periodic",
                        }
                    ],
                }
            ],
        }
        if tx_id is not None:
            payload["transactionId"] = tx_id
        await self.call("MeterValues", payload)

    async def session(self, tag: str | None = None) -> int:
        """A charging session up to Charging: Preparing, Authorize, StartTransaction (Accepted), Charging."""
        tag = tag or self.tag("accepted")
        await self.status(1, "Preparing")
        status = await self.authorize(tag)
        if status != "Accepted":
            raise Fail(f"Authorize of the accepted idTag {tag} answered {status}")
        tx_id, status = await self.start(tag)
        if status != "Accepted":
            raise Fail(f"StartTransaction of the accepted idTag {tag} answered {status}")
        await self.status(1, "Charging")
        return tx_id

    async def end_session(self, tx_id: int, reason: str = "Local", tag: str | None = None) -> None:
        """StopTransaction (Accepted idTagInfo if any), Finishing, Available."""
        answer = await self.stop(tx_id, reason=reason, tag=tag)
        info = answer.get("idTagInfo")
        if (
            tag is not None
            and tag == self.setup.id_tags.get("accepted")
            and info
            and info["status"] != "Accepted"
        ):
            raise Fail(f"StopTransaction.conf says the accepted idTag is {info['status']}")
        await self.status(1, "Finishing")
        await self.status(1, "Available")

    # ---- what the central system must send ------------------------------------------------------------------

    async def csms_sends(
        self,
        action: str,
        payload: dict[str, Any],
        answer: dict[str, Any],
        *,
        conn: RawCharger | None = None,
        judge: Callable[[CsmsContext, dict[str, Any]], None] | None = None,
        error: tuple[str, str] | None = None,
    ) -> dict[str, Any]:
        """Make the central system send ``action`` (trigger), check the CALL, answer it; returns its payload.

        Without a trigger the case is inconclusive (not failed). The CALL must be schema-valid, keep the business
        rules ``judge`` checks (it raises Fail citing the clause; run first, so a broken rule is named even when the
        field also differs from what was asked) and carry what was asked (each field of ``payload``). With
        ``error`` (code, description) the charger answers a CALLERROR instead of ``answer``.
        """
        conn = conn or self.main()
        trigger = self.setup.trigger
        if trigger is None or not trigger.available(action):
            raise Inconclusive(
                f"needs the central system to send {action}: give --trigger FILE or --interactive"
            )
        # A central system may read the station's message limits first (B06.FR.05): answered, then still awaited.
        limits_first = action == "GetVariables" and not is_limit_query(payload, STATION_LIMITS)
        expected = conn.expect(
            action, (lambda p: is_limit_query(p, STATION_LIMITS)) if limits_first else None
        )
        fired = asyncio.create_task(trigger.fire(action, payload, conn.cp_id))
        wait_s = self.scaled(self.setup.trigger_wait_s)
        try:
            try:
                async with asyncio.timeout(wait_s):
                    if trigger.interactive:
                        done, _ = await asyncio.wait({expected}, timeout=0)
                        remaining = wait_s
                        while not done and remaining > 0:
                            done, _ = await asyncio.wait({expected}, timeout=min(10, remaining))
                            remaining -= 10
                            if not done and remaining > 0:
                                print(f"    waiting for {action}: {remaining:.0f} s left", flush=True)
                    else:
                        await asyncio.wait([expected, fired], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
                        if fired.done() and not expected.done():
                            exc = fired.exception()
                            if isinstance(exc, TriggerUnavailable):
                                raise Inconclusive(str(exc))
                            if isinstance(exc, TriggerFailed):
                                raise Inconclusive(f"the trigger for {action} failed: {exc}")
                            if isinstance(exc, ProfileError):
                                # The profile cannot express this step (e.g. a parameter its template
                                # needs): the setup is wrong, not the central system.
                                raise SetupError(f"the trigger for {action}: {exc}")
                            if exc is None:
                                self.event(fired.result())
                    unique_id, received = await expected
            except TimeoutError:
                if conn.closed.is_set():
                    raise Fail(
                        f"the central system closed the connection while {action} was awaited"
                    ) from None
                if trigger.interactive:
                    # Nobody may have done what the prompt asked: that is no verdict on the central system.
                    raise Inconclusive(
                        f"the central system did not send {action} within {wait_s:g} s of the operator prompt "
                        "(was the action done?)"
                    ) from None
                raise Fail(
                    f"the central system did not send {action} within {wait_s:g} s of the trigger"
                ) from None
            await self.check_schema(
                Call(unique_id, action, copy.deepcopy(received)), self.version.request_name(action)
            )
            if judge is not None:
                judge(self, received)
            for key, value in payload.items():
                if not asked_matches(value, received.get(key)):
                    raise Fail(
                        f"{self.version.request_name(action)} has {key}={received.get(key)!r}, "
                        f"the trigger asked for {value!r}"
                    )
            if error is not None:
                await conn.send([CALLERROR, unique_id, error[0], error[1], {}])
            else:
                await conn.send([CALLRESULT, unique_id, answer])
        except BaseException:
            fired.cancel()
            await asyncio.gather(fired, return_exceptions=True)
            raise
        finally:
            conn.forget(action)
        # The trigger's own answer (e.g. the REST API's 200 once our answer arrived).
        try:
            async with asyncio.timeout(self.scaled(self.setup.call_timeout_s)):
                self.event(await fired)
        except (TriggerFailed, TriggerUnavailable, TimeoutError) as exc:
            self.event(f"trigger for {action} ended: {exc}")
        finally:
            fired.cancel()
            await asyncio.gather(fired, return_exceptions=True)
        return received

    async def handshake_status(self, password: str) -> int:
        """101 when the main charger connects with ``password``, else the HTTP status of the refusal."""
        try:
            ws = await self.handshake(self.setup.charger_id, password)
        except HandshakeRefused as exc:
            return exc.status
        await ws.close()
        return 101

    async def check_password_change(self, new: str, accepted: bool, clause: str) -> None:
        """After the charger accepted (or rejected) ``new`` as its password, only the right one is admitted."""
        await self.main().close()
        old = self.setup.password or ""
        good, bad = (new, old) if accepted else (old, new)
        what = (
            "the new password the charger accepted"
            if accepted
            else "the old password (the change was rejected)"
        )
        got = await self.handshake_status(good)
        if got != 101:
            raise Fail(f"{what} gets HTTP {got} ({clause})")
        got = await self.handshake_status(bad)
        if accepted and got != 401:
            raise Fail(
                f"the old password still gets HTTP {got} after the change was accepted (401 expected, {clause})"
            )
        if not accepted and got == 101:
            raise Fail(f"the password the charger rejected was admitted ({clause})")

    async def restore_password(
        self,
        boot: Callable[[CsmsContext, RawCharger], Awaitable[Any]],
        action: str,
        payload: dict[str, Any],
        answer: dict[str, Any],
    ) -> None:
        """Cleanup after a password change: connect with the new one and have the central system set the old one."""
        new = self.vars.get("new_password")
        if new is None or await self.handshake_status(str(new)) != 101:
            return
        conn = await self.open(password=str(new))
        await boot(self, conn)
        await self.csms_sends(action, payload, answer, conn=conn)

    async def expect_idle(self, seconds: float, conn: RawCharger | None = None) -> None:
        """Wait ``seconds`` and fail if the connection dropped meanwhile."""
        conn = conn or self.main()
        await asyncio.sleep(self.scaled(seconds))
        if conn.closed.is_set():
            raise Fail("the central system closed the connection of an idle, well-behaved charger")


def minutes_ago(n: float) -> datetime:
    """A time ``n`` minutes before now (for offline transactions)."""
    return datetime.now(UTC) - timedelta(minutes=n)


def check_status(got: str, want: str | tuple[str, ...], what: str, clause: str) -> None:
    """Fail unless ``got`` is ``want`` (or one of them)."""
    wants = (want,) if isinstance(want, str) else want
    if got not in wants:
        raise Fail(f"{what}: got {got}, expected {' or '.join(wants)} ({clause})")


def fields(mapping: Mapping[str, Any], *names: str) -> dict[str, Any]:
    """A sub-dict of ``mapping`` (for trace notes)."""
    return {n: mapping[n] for n in names if n in mapping}


async def preflight(ctx: CsmsContext) -> str:
    """Check before the run that the main charger can connect; returns a setup error message, or ''."""
    s = ctx.setup
    try:
        ws = await ctx.handshake(s.charger_id, s.password)
    except HandshakeRefused as exc:
        hint = {
            401: "the central system refused the password (check --password)",
            403: "the central system forbids this charger",
            404: f"the central system does not know charger {s.charger_id} (register it first)",
        }.get(exc.status, "the handshake was refused")
        return f"{s.url}/{s.charger_id}: HTTP {exc.status}: {hint}"
    except Fail as exc:
        return exc.reason
    await ws.close()
    ctx.trace.clear()
    return ""
