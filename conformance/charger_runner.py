"""The charger runner: we play the central system (backend_stub's raw-frame CentralSystem, which validates and
records every frame), drive the charger with CSMS calls and with actuation for physical steps, and judge it."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ocpp.exceptions import NotImplementedError as SchemaMissingError
from ocpp.exceptions import OCPPError
from ocpp.messages import CallResult, validate_payload

from backend_stub.ocpp_server import CallErrorReply, CentralSystem, Frame, HandlerResult, utc_now_iso
from conformance.drivers import POWER_STEPS, Actuator, ProfileError
from conformance.engine import BaseContext, Progress, run_cases
from conformance.model import Case, Fail, Inconclusive, NotApplicable, SetupError, TraceEntry
from conformance.report import Report
from conformance.v16.spec import CONNECTOR_ZERO_STATES, LEGAL_STATUS_TRANSITIONS
from conformance.versions import VERSIONS, by_schema

__all__ = ["ChargerContext", "ChargerSetup", "TlsCentralSystem", "run_charger_suite", "stops"]

CALL = 2
BOOT_STATUS_WAIT_S = 10.0  # how long the first case waits for the connector's status after the boot


@dataclass
class ChargerSetup:
    """What the charger runner knows about the charger under test and how to drive it."""

    host: str = "127.0.0.1"
    port: int = 9000
    charger_id: str | None = None
    schema_version: str = "1.6"
    subprotocol: str = "ocpp1.6"
    actuator: Actuator | None = None
    connector: int = 1
    id_tag: str = "CONFTAG01"
    connect_timeout_s: float = 60.0
    call_timeout_s: float = 10.0
    heartbeat_interval_s: int = 300
    backup_power: bool = False  # the charger stops its transactions before going down (OCTT TC_032_1)
    tls: ssl.SSLContext | None = None  # serve wss:// (security profiles 2 and 3; OCTT TC_086-088, TC_A_*)
    tls_client_ca: bool = False  # ``tls`` verifies client certificates (security profile 3 cases)
    tls_files: tuple[str, str] | None = (
        None  # the server certificate and key of ``tls`` (put back after a swap)
    )

    def needs_available(self) -> set[str]:
        """The physical steps the actuator can do."""
        steps = {s for s in PHYSICAL_STEPS if self.actuator is not None and self.actuator.available(s)}
        return steps


PHYSICAL_STEPS = ("plug", "unplug", "swipe", "meter_fault_on", "meter_fault_off", *POWER_STEPS)
NEED_OPTIONS = {
    step: f"actuation '{step}' (--actuate FILE with a '{step}' command or a [process], or --interactive)"
    for step in PHYSICAL_STEPS
}


class TlsCentralSystem(CentralSystem):
    """The central system we play: the scripted one, with the security profile 3 checks left to the cases.

    A missing client certificate is not refused at the handshake: the security profile 3 case then fails with
    the reason, instead of the whole suite ending in "the charger never connected". A certificate that is
    presented but not signed by the configured CA still fails the TLS handshake (`tls_context`). Every handshake
    is recorded (`handshakes`, as `HandshakeRecord`: the password by its length and character set only), and a
    charger whose verified client certificate names it needs no password (profile 3), also after TC_073 set one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Take the server's arguments."""
        super().__init__(*args, **kwargs)
        self.certificate_replaces_password = True

    @property
    def client_certificates_required(self) -> bool:
        """Never at the handshake: the cases judge the certificate (see the class docstring)."""
        return False


@dataclass
class ChargerContext(BaseContext):
    """The charger runner's state: the central system we play, the charger id, and what we saw so far."""

    setup: ChargerSetup = field(default_factory=ChargerSetup)
    cs: TlsCentralSystem = field(default_factory=TlsCentralSystem)
    cp_id: str = ""
    mark: int = 0  # where the running case's part of cs.log starts
    auth_status: str = "Accepted"  # what Authorize / StartTransaction answer for any idTag
    sign_status: str = "Accepted"  # what SignCertificate answers (A02: the CSMS then sends CertificateSigned)
    boot_answers: list[tuple[str, int]] = field(
        default_factory=list
    )  # scripted (status, interval), then Accepted
    profiles: list[str] | None = None
    last_status: dict[int, str] = field(default_factory=dict)
    scanned: int = 0
    bad_transitions: list[str] = field(default_factory=list)
    violations_seen: int = 0
    restore: dict[str, str] = field(default_factory=dict)  # configuration keys to set back after the case

    # ---- hooks -----------------------------------------------------------------------------------------------

    async def begin_case(self, case: Case[Any]) -> None:
        """Make sure the charger is connected and booted; note where this case's frames start."""
        self.scan_statuses()
        self.auth_status = "Accepted"
        self.boot_answers = []
        self.mark = len(self.cs.log)
        if self.cp_id not in self.cs.connected:
            self.event(f"waiting for {self.cp_id} to reconnect")
            try:
                await self.cs.wait_connected(self.cp_id, timeout=self.scaled(self.setup.connect_timeout_s))
            except TimeoutError:
                raise SetupError(f"charger {self.cp_id} is not connected") from None

    async def end_case(self, case: Case[Any]) -> None:
        """Set changed configuration keys back and put this case's frames into its trace."""
        await self.restore_settings()
        self.restore.clear()
        # Violations of a case that ended before its frame check (or in its cleanup) stay with it, not with the
        # next case.
        self.scan_statuses()
        for problem in self.new_violations() + self.bad_transitions:
            self.event(f"protocol violation: {problem}")
        self.bad_transitions = []
        frames = [
            TraceEntry(f.ts, "sent" if f.direction == "out" else "received", f.raw)
            for f in self.cs.log[self.mark :]
            if f.cp_id == self.cp_id
        ]
        self.trace = sorted(self.trace + frames, key=lambda t: t.ts)

    def trust_signing_ca(self, pem: str) -> None:
        """A CA that signed the charger's certificate (CertificateSigned, A02) is one of ours: on wss:// with
        client certificates the charger may then connect with that certificate (the OCTT is CSMS and CA)."""
        if self.setup.tls is not None and self.setup.tls_client_ca:
            self.setup.tls.load_verify_locations(cadata=pem)

    async def restore_settings(self) -> None:
        """Set the configuration keys a case changed back (best effort)."""
        for key, value in list(self.restore.items()):
            with contextlib.suppress(Exception):
                await self.cs.call(self.cp_id, "ChangeConfiguration", {"key": key, "value": value}, timeout=5)

    def install_handlers(self) -> None:
        """Install the answers of the central system we play (OCPP 1.6)."""
        _handlers(self)

    # ---- checks ----------------------------------------------------------------------------------------------

    def scan_statuses(self) -> None:
        """Judge every new CALL of the charger once (status transitions, and what a version adds)."""
        for frame in self.cs.log[self.scanned :]:
            if frame.cp_id != self.cp_id or frame.direction != "in" or frame.message_type != CALL:
                continue
            self.judge_call(frame)
        self.scanned = len(self.cs.log)

    def judge_call(self, frame: Frame) -> None:
        """Follow every StatusNotification; a transition OCPP 1.6 §4.9 forbids is remembered for the verdict."""
        if frame.action == "BootNotification":
            self.last_status.clear()  # after a reboot the charger reports its states afresh
        elif frame.action == "StatusNotification" and isinstance(frame.payload, dict):
            connector, status = frame.payload.get("connectorId"), frame.payload.get("status")
            if not isinstance(connector, int) or not isinstance(status, str):
                return
            before = self.last_status.get(connector)
            if connector == 0 and status not in CONNECTOR_ZERO_STATES:
                self.bad_transitions.append(
                    f"connector 0 reported {status} (OCPP 1.6 §4.9: only Available, Unavailable, Faulted)"
                )
            elif (
                before is not None
                and before != status
                and status not in LEGAL_STATUS_TRANSITIONS.get(before, ())
            ):
                self.bad_transitions.append(
                    f"connector {connector}: {before} -> {status} at {frame.ts:%H:%M:%S.%f} is not a transition OCPP 1.6 §4.9 allows"
                )
            self.last_status[connector] = status

    def new_violations(self) -> list[str]:
        """The charger's protocol violations (bad JSON, schema) not yet judged; they are judged now."""
        mine = [v for v in self.cs.violations[self.violations_seen :] if v[0] == self.cp_id]
        self.violations_seen = len(self.cs.violations)
        return [f"{action or '-'}: {message}" for _, action, message in mine]

    async def check_frames(self) -> None:
        """Fail on schema violations by the charger or forbidden status transitions since the case began."""
        self.scan_statuses()
        problems = self.new_violations() + self.bad_transitions
        self.bad_transitions = []
        if problems:
            raise Fail("; ".join(problems)[:600])

    # ---- talking to the charger ------------------------------------------------------------------------------

    async def call(
        self, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """Send a CALL; return the schema-valid CALLRESULT. A CALLERROR, timeout or disconnect fails the step."""
        try:
            answer = await self.cs.call(
                self.cp_id, action, payload, timeout=self.scaled(timeout_s or self.setup.call_timeout_s)
            )
        except CallErrorReply as exc:
            declared = self.vars.get("declared")
            if declared and exc.code in ("NotSupported", "NotImplemented"):
                # A profile declared in SupportedFeatureProfiles (OCPP 1.6 §9.1.21) must be implemented.
                raise Fail(
                    f"the charger declares {declared} but answers {action} with CALLERROR {exc.code}"
                ) from None
            raise Fail(f"{action} answered with CALLERROR {exc.code}: {exc.description}") from None
        except TimeoutError:
            bad = "; ".join(self.new_violations())
            raise Fail(
                f"no answer to {action} within {self.scaled(timeout_s or self.setup.call_timeout_s):g} s"
                + (f"; meanwhile the charger sent: {bad}" if bad else "")
            ) from None
        except (KeyError, ConnectionError) as exc:
            raise Fail(f"cannot send {action}: {exc}") from None
        try:
            await validate_payload(CallResult("0", copy.deepcopy(answer), action), self.setup.schema_version)
        except SchemaMissingError:
            pass
        except OCPPError as exc:
            cause = exc.details.get("cause") if isinstance(exc.details, dict) else None
            raise Fail(
                f"{self.answer_name(action)} violates the schema: {cause or exc.description}"
            ) from None
        return answer

    async def expect_answer(
        self, action: str, payload: dict[str, Any], field_name: str, *allowed: str
    ) -> dict[str, Any]:
        """Send a CALL and fail unless ``answer[field_name]`` is one of ``allowed``."""
        answer = await self.call(action, payload)
        if answer.get(field_name) not in allowed:
            raise Fail(
                f"{self.answer_name(action)} {field_name} is {answer.get(field_name)!r}, "
                f"expected {' or '.join(allowed)}"
            )
        return answer

    def answer_name(self, action: str) -> str:
        """How this version names the answer to ``action`` in failure texts (``Reset.conf``, ``ResetResponse``)."""
        return by_schema(self.setup.schema_version).response_name(action)

    def at(self) -> int:
        """The current end of the frame log (to wait for frames after this point)."""
        return len(self.cs.log)

    async def wait_call(
        self,
        action: str,
        after: int,
        where: Callable[[dict[str, Any]], bool] | None = None,
        timeout_s: float = 10.0,
        what: str = "",
    ) -> Frame:
        """Wait for a CALL of ``action`` from the charger after log index ``after``."""
        try:
            return await self.cs.wait_for_call(
                action, self.cp_id, timeout=self.scaled(timeout_s), after=after, where=where
            )
        except TimeoutError:
            # A forbidden transition seen meanwhile is often why the awaited frame never came: say so.
            self.scan_statuses()
            extra = f"; meanwhile: {'; '.join(self.bad_transitions)}" if self.bad_transitions else ""
            raise Fail(
                f"the charger sent no {what or action} within {self.scaled(timeout_s):g} s{extra}"
            ) from None

    async def wait_status(
        self, status: str, after: int, timeout_s: float = 10.0, connector: int | None = None
    ) -> Frame:
        """Wait for a StatusNotification of ``status`` for the connector under test."""
        cid = self.setup.connector if connector is None else connector
        return await self.wait_call(
            "StatusNotification",
            after,
            lambda p: self.is_status_of(p, cid) and self.status_in(p) == status,
            timeout_s,
            self.status_text(status, cid),
        )

    def status_text(self, status: str, connector: int) -> str:
        """How a failure names an awaited status report (OCPP 1.6: per connector)."""
        return f"StatusNotification {status} for connector {connector}"

    def is_status_of(self, payload: Any, connector: int) -> bool:
        """Whether a StatusNotification payload is about ``connector`` (OCPP 1.6: connectorId)."""
        return isinstance(payload, dict) and payload.get("connectorId") == connector

    def status_in(self, payload: dict[str, Any]) -> Any:
        """The status a StatusNotification payload reports (OCPP 1.6: status)."""
        return payload.get("status")

    def calls_since(self, action: str, after: int) -> list[Frame]:
        """The charger's CALLs of ``action`` since ``after``."""
        return [
            f
            for f in self.cs.log[after:]
            if f.cp_id == self.cp_id and f.direction == "in" and f.message_type == CALL and f.action == action
        ]

    def index_of(self, frame: Frame) -> int:
        """Position of ``frame`` in the log."""
        return next(i for i in range(len(self.cs.log) - 1, -1, -1) if self.cs.log[i] is frame)

    async def quiet(self, seconds: float) -> None:
        """Let time pass to show that something does not happen."""
        await asyncio.sleep(self.scaled(seconds))

    async def act(self, step: str, **params: Any) -> None:
        """A physical step through the actuator; inconclusive without one, a setup error if it fails."""
        actuator = self.setup.actuator
        if actuator is None or not actuator.available(step):
            raise Inconclusive(f"needs actuation '{step}': give --actuate FILE or --interactive")
        values = {"connector": str(self.setup.connector), "id_tag": self.setup.id_tag, "cp": self.cp_id}
        values.update({k: str(v) for k, v in params.items()})
        try:
            note = await actuator.do(step, **values)
        except ProfileError as exc:
            raise SetupError(str(exc)) from None
        self.event(note)
        if step == "plug":
            self.vars["plugged"] = True
        elif step == "unplug":
            self.vars["plugged"] = False

    @contextlib.asynccontextmanager
    async def offline(self) -> AsyncIterator[None]:
        """OCTT "remove connectivity": close the charger's connection and refuse its reconnects until the end."""
        self.cs.refuse_connections = True
        try:
            with contextlib.suppress(KeyError, ConnectionError):
                await self.cs.disconnect(self.cp_id)
            self.event("offline: connection dropped, reconnects refused")
            yield
        finally:
            self.cs.refuse_connections = False
            self.event("online: reconnects accepted again")

    async def reconnected(self, timeout_s: float = 30.0) -> None:
        """Wait for the charger to connect again (after ``offline`` or a power cut)."""
        try:
            await self.cs.wait_connected(self.cp_id, timeout=self.scaled(timeout_s))
        except TimeoutError:
            raise Fail(f"the charger did not reconnect within {self.scaled(timeout_s):g} s") from None

    async def configuration(self, *keys: str) -> dict[str, str | None]:
        """GetConfiguration of ``keys`` (all without): key -> value."""
        answer = await self.call("GetConfiguration", {"key": list(keys)} if keys else {})
        return {k["key"]: k.get("value") for k in answer.get("configurationKey", [])}

    async def try_config(self, key: str, value: str) -> bool:
        """ChangeConfiguration of an optional key: True if Accepted (set back after the case), False if not."""
        old = (await self.configuration(key)).get(key)
        answer = await self.call("ChangeConfiguration", {"key": key, "value": value})
        if answer.get("status") != "Accepted":
            return False
        if old is not None and key not in self.restore:
            self.restore[key] = old
        return True

    async def set_config(self, key: str, value: str) -> None:
        """ChangeConfiguration that must be Accepted; the old value is set back after the case."""
        old = (await self.configuration(key)).get(key)
        await self.expect_answer("ChangeConfiguration", {"key": key, "value": value}, "status", "Accepted")
        if old is not None and key not in self.restore:
            self.restore[key] = old

    async def require_profile(self, profile: str) -> None:
        """Not applicable unless the charger declares ``profile`` in SupportedFeatureProfiles (OCPP 1.6 §9.1)."""
        if self.profiles is None:
            value = (await self.configuration("SupportedFeatureProfiles")).get(
                "SupportedFeatureProfiles"
            ) or ""
            self.profiles = [p.strip() for p in value.split(",") if p.strip()]
        if profile not in self.profiles:
            raise NotApplicable(
                f"the charger does not declare {profile} in SupportedFeatureProfiles ({','.join(self.profiles)})"
            )
        self.vars["declared"] = profile

    def open_transactions(self) -> list[int]:
        """Transactions the charger started (and we answered) and has not stopped, by our log."""
        started: list[int] = []
        for f in self.cs.log:
            if f.cp_id != self.cp_id or f.direction != "out" or f.message_type != 3:
                continue
            if (
                f.action == "StartTransaction"
                and isinstance(f.payload, dict)
                and "transactionId" in f.payload
            ):
                started.append(int(f.payload["transactionId"]))
        stopped = {
            int(f.payload["transactionId"])
            for f in self.cs.log
            if f.cp_id == self.cp_id
            and f.direction == "in"
            and f.action == "StopTransaction"
            and f.message_type == CALL
            and isinstance(f.payload, dict)
            and isinstance(f.payload.get("transactionId"), int)
        }
        return [t for t in started if t not in stopped]

    async def to_idle(self) -> None:
        """Best effort back to idle: stop what runs, unplug, wait for Available."""
        after = self.at()
        busy = False
        for tx_id in self.open_transactions():
            busy = True
            with contextlib.suppress(Exception):
                await self.cs.call(self.cp_id, "RemoteStopTransaction", {"transactionId": tx_id}, timeout=5)
                await self.wait_call("StopTransaction", after, stops(tx_id), 10)
        if self.vars.get("plugged"):
            busy = True
            await self.act("unplug")
        if busy:
            with contextlib.suppress(Fail):
                await self.wait_status("Available", after, 10)

    async def answer_to(self, call: Frame, timeout_s: float = 10.0) -> Frame:
        """Our answer to a CALL of the charger (it is sent just after the CALL is logged)."""
        start = self.index_of(call)
        try:
            return await self.cs.wait_for(
                lambda f: f.direction == "out" and f.unique_id == call.unique_id and f.cp_id == self.cp_id,
                timeout=self.scaled(timeout_s),
                after=start,
            )
        except TimeoutError:
            raise Fail(f"no answer to the charger's {call.action} was sent") from None


def stops(tx_id: int) -> Callable[[dict[str, Any]], bool]:
    """A StopTransaction payload filter for ``tx_id``."""
    return lambda payload: payload.get("transactionId") == tx_id


def _handlers(ctx: ChargerContext) -> None:
    """The answers the central system we play gives; cases steer them through ``ctx`` fields."""
    cs = ctx.cs

    def boot(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        status, interval = (
            ctx.boot_answers.pop(0) if ctx.boot_answers else ("Accepted", ctx.setup.heartbeat_interval_s)
        )
        return {"status": status, "currentTime": utc_now_iso(), "interval": interval}

    def authorize(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"idTagInfo": {"status": ctx.auth_status}}

    def start(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"transactionId": cs.next_transaction_id(), "idTagInfo": {"status": ctx.auth_status}}

    def sign_certificate(cp_id: str, payload: dict[str, Any]) -> HandlerResult:
        return {"status": ctx.sign_status}

    cs.handlers["SignCertificate"] = sign_certificate
    cs.handlers["BootNotification"] = boot
    cs.handlers["Authorize"] = authorize
    cs.handlers["StartTransaction"] = start


async def run_charger_suite(
    setup: ChargerSetup,
    cases: list[Case[Any]] | Any,
    report: Report,
    *,
    timeout_scale: float = 1.0,
    quiet: bool = False,
    context: type[ChargerContext] | None = None,
) -> Report:
    """Listen, wait for the charger (a setup error if it never comes), run the cases, stop listening."""
    cs = TlsCentralSystem(
        setup.host, setup.port, response_timeout_s=setup.call_timeout_s, ssl_context=setup.tls
    )
    if context is None:
        version = next(v for v in VERSIONS.values() if v.subprotocol == setup.subprotocol)
        context = version.charger_context()
    ctx = context(timeout_scale=timeout_scale, setup=setup, cs=cs)
    ctx.install_handlers()
    await cs.start()
    try:
        if setup.actuator is not None:
            note = await setup.actuator.start()
            if note and not quiet:
                print(note, flush=True)
        report.target = f"ws://{setup.host}:{cs.port}/ocpp/{setup.charger_id or '<id>'}"
        if not quiet:
            print(f"listening on {cs.url}/<chargePointId>; waiting for the charger ...", flush=True)
        try:
            async with asyncio.timeout(setup.connect_timeout_s * timeout_scale):
                while True:
                    wanted = [c for c in cs.connected if setup.charger_id in (None, c)]
                    if wanted:
                        ctx.cp_id = wanted[0]
                        break
                    await cs.wait_for(lambda f: True, timeout=setup.connect_timeout_s * timeout_scale)
                await cs.wait_for_call(
                    "BootNotification", ctx.cp_id, timeout=setup.connect_timeout_s * timeout_scale
                )
        except TimeoutError:
            who = setup.charger_id or "any charger"
            report.setup_error = (
                f"{who} did not connect and boot within {setup.connect_timeout_s * timeout_scale:g} s"
            )
            report.finished = datetime.now(UTC)
            return report
        negotiated = cs.subprotocol(ctx.cp_id)
        if negotiated is not None and negotiated != setup.subprotocol:
            # A dual-stack charger picks the subprotocol; cases of one version on a link of another judge nothing.
            report.setup_error = (
                f"{ctx.cp_id} negotiated {negotiated}, but the suite tests {setup.subprotocol}: make the charger "
                f"offer {setup.subprotocol} (or run --version for the one it speaks)"
            )
            report.finished = datetime.now(UTC)
            return report
        # Let the boot's StatusNotifications (OCPP 1.6 §4.9) arrive before the first case marks its start,
        # so they are not counted as that case's transitions; a charger that sends none is judged by TC_001.
        with contextlib.suppress(TimeoutError):
            await cs.wait_for_call(
                "StatusNotification",
                ctx.cp_id,
                timeout=BOOT_STATUS_WAIT_S * timeout_scale,
                where=lambda p: ctx.is_status_of(p, setup.connector),
            )
        report.target = f"{cs.url}/{ctx.cp_id}"
        unmet = {n: t for n, t in NEED_OPTIONS.items() if n not in setup.needs_available()}
        await run_cases(ctx, list(cases), report, unmet=unmet, progress=Progress(len(cases), quiet=quiet))
    finally:
        if setup.actuator is not None:
            await setup.actuator.close()
        await cs.stop()
    return report
