"""The connection to the central system: connect, pick the adapter by negotiated subprotocol, reconnect.

Reconnects use exponential backoff plus random jitter; liveness is WebSocket ping/pong (WebSocketPingInterval).
Security profiles (OCPP 1.6 Security whitepaper ed. 2, §2): 1 HTTP Basic over ws://, 2 Basic over wss:// with a
CA (configured, or CentralSystemRootCertificates installed by the CSMS), 3 a TLS client certificate (configured, or
the ChargePointCertificate the CSMS signed). A higher profile is tried on the next connections and kept after the
first success (``core/security.py``); the AuthorizationKey, once the CSMS set it, is the Basic-auth password.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import logging
import random
import re
import ssl
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from websockets.exceptions import (
    ConnectionClosed,
    ConnectionClosedOK,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from chargepoint.certificates import CertificateManager
from chargepoint.config import CsmsConfig, StationIdentity
from chargepoint.core.model import IdTagInfo
from chargepoint.core.network_profiles import NetworkProfiles
from chargepoint.core.scheduler import Scheduler, loop_scheduler
from chargepoint.core.security import TLS_FAILURE_EVENTS, SecurityEvents, SecurityEventType, SecurityProfiles
from chargepoint.core.settings import Settings
from chargepoint.core.station import Station
from chargepoint.csms.outbox import OutboxSender
from chargepoint.csms.session import CallObserver, Session, SessionDeps, SessionFactory
from chargepoint.csms.transport import WsClient, open_connection
from chargepoint.csms.v16.adapter import V16Session
from chargepoint.csms_url import station_url
from chargepoint.errors import CsmsUnavailable, StorageError
from chargepoint.ports import Clock, IdGenerator
from chargepoint.store import Store

log = logging.getLogger(__name__)


def _v201_session(deps: SessionDeps, connection: Any) -> Session:
    """The OCPP 2.0.1 adapter, imported on first use (``ocpp.v201`` is ~3 MB a 1.6-only process never needs)."""
    from chargepoint.csms.v201.adapter import V201Session

    return V201Session(deps, connection)


# The OCPP version is chosen once, here, from the negotiated subprotocol.
ADAPTERS: dict[str, SessionFactory] = {"ocpp1.6": V16Session, "ocpp2.0.1": _v201_session}
SUBPROTOCOL_BY_VERSION = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
CLOSE_TIMEOUT_S = 2.0
BOOT_RETRY_JITTER_MAX_S = 1.0
# A clock correction from the CSMS larger than this is a SettingSystemTime security event (smaller ones are drift).
TIME_JUMP_EVENT_S = 60.0
# OCPP-J §4.1.1 allows one outstanding CALL per direction; a central system that sends more without waiting for the
# answers gets this many queued, and a CallError "busy" for each one beyond.
MAX_QUEUED_CALLS = 16
# Frames that are not CALLs (answers, malformed frames) cannot be refused with "busy": past this many waiting for the
# adapter, the reader stops taking frames off the socket until one is handled (TCP backpressure), so a central
# system flooding them bounds the charger's memory without a frame being dropped.
MAX_QUEUED_OTHER_FRAMES = 16
BUSY_LOG_INTERVAL_S = 10.0
# The frame type and uniqueId at the start of an OCPP-J frame (an id with escapes is not matched: it is decoded by
# the adapter, which answers it itself).
_FRAME_HEAD = re.compile(r'^\s*\[\s*([234])\s*,\s*"([^"\\]{1,64})"')


class InboundCap:
    """The WebSocket connection as a session adapter sees it, with the central system's CALLs bounded.

    The connection hands every message over as it arrives (``frame_received``, from ``data_received``: no reader
    task), so pings, answers to the charger's own CALLs and the link itself stay alive under a flood: CALLs queue up
    to ``limit`` (counting the one being handled), and each one beyond gets CallError GenericError "busy" straight
    away (every frame is answered, OCPP-J §4.2.3), so memory and the event loop stay bounded. Any other frame takes
    room: with ``MAX_QUEUED_OTHER_FRAMES`` of them waiting the sink is ``full`` and the connection stops reading, so
    the socket pushes back on the sender and nothing is dropped. The adapter routes one frame at a time, in a task
    that runs only while frames wait (``listen``).

    An answer to a CALL goes out only once the store has committed what handling that CALL wrote (a setting, a
    profile, the local list): the commit is awaited, never waited for on the event loop. If it failed, the answer
    becomes CallError InternalError, since the change would not survive a restart.
    """

    __slots__ = (
        "_answered",
        "_busy_logged_at",
        "_busy_unlogged",
        "_consumer",
        "_ended",
        "_frames",
        "_handling",
        "_limit",
        "_mark",
        "_queued_calls",
        "_queued_other",
        "_router",
        "_store",
        "_ws",
        "busy_answers",
        "done",
        "peak_queued",
    )

    def __init__(self, ws: WsClient, store: Store, limit: int = MAX_QUEUED_CALLS) -> None:
        self._ws = ws
        self._store = store
        self._limit = limit
        # A list, not a deque (~0.75 KB each, for the connection's life): at most limit + MAX_QUEUED_OTHER_FRAMES
        # frames ever wait in it, so taking from its front is cheap.
        self._frames: list[str | bytes] = []
        self._queued_calls = 0  # CALLs waiting in the queue
        self._queued_other = 0  # other frames waiting in the queue
        self.peak_queued = 0  # the most frames ever waiting at once
        self._handling: str | None = None  # the uniqueId of the CALL being handled, until it is answered
        self._mark = 0  # the store's mark when its handling began
        self._ended: ConnectionClosed | None = None
        self.done = False  # the connection closed (frames may still wait)
        self.busy_answers = 0
        self._busy_logged_at = -BUSY_LOG_INTERVAL_S
        self._busy_unlogged = 0
        self._consumer: Callable[[], asyncio.Task[Any]] | None = None
        self._answered: Callable[[str | bytes], bool] | None = None
        # The adapter's router task while it runs (done() tells, not a flag it clears: a task cancelled before its
        # first step never runs its finally).
        self._router: asyncio.Task[Any] | None = None
        ws.attach(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)

    # FrameSink (called by the connection)
    @property
    def full(self) -> bool:
        """True while as many non-CALL frames wait as are allowed (the connection stops reading)."""
        return self._queued_other >= MAX_QUEUED_OTHER_FRAMES

    def frame_received(self, frame: str | bytes) -> None:
        """Queue a frame for the adapter; a CALL beyond the limit is answered "busy" at once, and an answer to the
        charger's own outstanding CALL is handed over at once, never queued behind the CALLs being handled."""
        head = _FRAME_HEAD.match(frame if isinstance(frame, str) else frame[:80].decode("utf-8", "replace"))
        if head is not None and head.group(1) != "2":
            # An Authorize answer must not wait until a CALL's handler has awaited the store: the answer's waiter
            # runs right away. What the adapter does not take (no CALL of ours waits on it, or it is malformed)
            # is queued and routed like any frame: logged, or answered with the CallError it deserves.
            answered = self._answered
            if answered is not None and answered(frame):
                return
        if head is not None and head.group(1) == "2":
            if self._queued_calls + (self._handling is not None) >= self._limit:
                self._busy(head.group(2))
                return
            self._queued_calls += 1
        else:
            self._queued_other += 1
        self._frames.append(frame)
        self.peak_queued = max(self.peak_queued, len(self._frames))
        self._wake()

    def connection_closed(self, exc: ConnectionClosed) -> None:
        """The connection closed: the adapter routes what waits, then ends (an error close is re-raised)."""
        # A normal close ends the frames quietly, as websockets' iterator did; an abnormal one is the session's end.
        self._ended = None if isinstance(exc, ConnectionClosedOK) else exc
        self.done = True
        self._wake()

    def _busy(self, unique_id: str) -> None:
        self.busy_answers += 1
        self._busy_unlogged += 1
        now = asyncio.get_running_loop().time()
        if now - self._busy_logged_at >= BUSY_LOG_INTERVAL_S:  # rate-limited: a flood must not flood the log
            log.warning(
                "CSMS sent CALLs without waiting for answers: %s answered 'busy' (%s queued)",
                self._busy_unlogged,
                self._limit,
            )
            self._busy_logged_at, self._busy_unlogged = now, 0
        error = [
            4,
            unique_id,
            "GenericError",
            f"busy: {self._limit} CALLs already waiting (OCPP-J: one at a time)",
            {},
        ]
        try:
            # Not awaited: while the write buffer is full the connection takes no more frames (see WsClient).
            self._ws.send_now(json.dumps(error, separators=(",", ":")))
        except ConnectionClosed:
            pass

    # the adapter's side
    def listen(
        self,
        consumer: Callable[[], asyncio.Task[Any]],
        answered: Callable[[str | bytes], bool] | None = None,
    ) -> None:
        """Call ``consumer`` whenever a frame (or the close) waits and no router runs: it returns the task that
        routes, taking frames with ``next_frame`` until None. ``answered`` is offered every CALLRESULT/CALLERROR
        as it arrives, without awaiting: True if it resolved the adapter's outstanding CALL (not queued then)."""
        self._consumer = consumer
        self._answered = answered
        self._wake()

    def _wake(self) -> None:
        router = self._router
        if (router is None or router.done()) and self._consumer is not None and (self._frames or self.done):
            self._router = self._consumer()

    def next_frame(self) -> str | bytes | None:
        """The next frame to route, or None (none waits; after the close, ConnectionClosed for an error close)."""
        # The adapter asks for the next frame once it has routed the last one: a CALL it chose not to answer
        # (OCPP 1.6 §4.2.1: boot Rejected) frees its place now.
        self._handling = None
        if not self._frames:
            if self.done and self._ended is not None:
                ended, self._ended = self._ended, None
                raise ended
            return None
        frame = self._frames.pop(0)
        head = _FRAME_HEAD.match(frame if isinstance(frame, str) else frame[:80].decode("utf-8", "replace"))
        if head is not None and head.group(1) == "2":
            self._queued_calls -= 1
            self._handling = head.group(2)
            self._mark = self._store.mark()
        else:
            self._queued_other -= 1
            self._ws.resume()
        return frame

    def routed(self) -> None:
        """The router ends (nothing waits): let go of its task (a done task kept is ~0.3 KB per connection)."""
        if self._router is asyncio.current_task():
            self._router = None

    async def send(self, message: str | bytes) -> None:
        """Send a frame; an answer to a CALL waits for the commit of what handling it wrote."""
        text = message if isinstance(message, str) else message[:80].decode("utf-8", "replace")
        head = _FRAME_HEAD.match(text)
        if head is not None and head.group(1) in "34" and head.group(2) == self._handling:
            self._handling = None
            try:
                await self._store.flush(since=self._mark)
            except StorageError as exc:
                log.error("answer to CSMS CALL %s withheld: %s", head.group(2), exc)
                error: list[Any] = [4, head.group(2), "InternalError", "the change could not be stored", {}]
                message = json.dumps(error, separators=(",", ":"))
        await self._ws.send(message)

    def close_reader(self) -> None:
        """Stop routing (the session ended)."""
        self._consumer = None
        self._answered = None


@functools.lru_cache(maxsize=16)
def _offer(versions: tuple[str, ...]) -> tuple[str, ...]:
    """The subprotocols of ``versions``: one tuple per set of versions, shared by every link that offers them (a
    list each, kept for the link's life, was ~0.2 KB per charger in a fleet)."""
    return tuple(SUBPROTOCOL_BY_VERSION[v] for v in versions)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class SettableClock(Clock, Protocol):
    """A clock the CSMS may correct."""

    def set_time(self, when: datetime) -> None:
        """Adopt ``when`` as now."""
        ...


class Link:
    """Keeps one session with the CSMS alive and implements the station's CsmsPort."""

    def __init__(
        self,
        identity: StationIdentity,
        csms_config: CsmsConfig,
        station: Station,
        store: Store,
        settings: Settings,
        clock: Clock,
        ids: IdGenerator,
        *,
        rng: random.Random | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.identity = identity
        self._scheduler = scheduler
        self.csms_config = csms_config
        self.store = store
        self.settings = settings
        self.clock = clock
        self.ids = ids
        self.rng = rng or random.Random()
        self.call_observer: CallObserver | None = None
        self.max_queued_calls = MAX_QUEUED_CALLS
        self.outbox = OutboxSender(store, settings, station.csms_answered)
        # What each session is given: the station's commands and the store as ports, never the link's way to them.
        self.session_deps = SessionDeps(self, station, store, settings, self)
        self.session: Session | None = None
        self.reconnects = 0  # reconnect attempts (after a refusal, an unreachable CSMS or a closed session)
        # Why connections failed, by kind ("HTTP 503", "ConnectionResetError", "TimeoutError", "closed"): a boot
        # storm must show 0 resets. Made on the first failure (most agents never have one).
        self.failure_kinds: dict[str, int] | None = None
        self.connections = 0  # WebSocket sessions that were opened (so connections - 1 successful reconnects)
        self.boot_accepted = False  # BootNotification accepted since this agent (re)started
        self.stopping = False
        self._last_activity = 0.0
        self._ws: WsClient | None = None
        self._connecting: asyncio.Task[WsClient] | None = None  # the connect under way, if any
        self._pausing: asyncio.Future[None] | None = None  # the backoff under way, if any
        # The station's security events: one bounded queue for the functional blocks and the link alike.
        self.security_events: SecurityEvents = station.ctx.security_events
        # Bound methods, each made once and shared by both: a lambda each is ~0.2 KB per charger in a fleet.
        active, promote = self._active_profile, self._promote
        self.profiles = SecurityProfiles(store, active=active, promote=promote)
        directory = Path(store.path).parent if store.path != ":memory:" else Path(".")
        self.certificates = CertificateManager(
            store,
            settings,
            clock,
            identity.id,
            directory / "certificates",
            self.security_events,
            configured_roots=csms_config.ca_file,
        )
        # OCPP 2.0.1 B09/B10: the configuration slots and which one the next connection uses (slot 0: the config).
        self.network = NetworkProfiles(
            store,
            settings,
            active=active,
            promote=promote,
        )
        self.changed_security = False  # a security key changed: reconnect once its answer is out
        self._failure_event: SecurityEventType | None = None  # the last connection failure reported

    # CsmsPort
    @property
    def online(self) -> bool:
        """Connected and boot accepted."""
        return self.session is not None and self.session.accepted.is_set()

    async def authorize(self, id_tag: str) -> IdTagInfo:
        """Online Authorize through the current session."""
        session = self.session
        if session is None or not session.accepted.is_set():
            raise CsmsUnavailable("not connected")
        return await session.authorize(id_tag)

    def status_changed(self, connector_id: int) -> None:
        """Forward to the session; when offline, the next boot reports every status anyway."""
        if self.session is not None and self.session.accepted.is_set():
            self.session.status_changed(connector_id)

    def outbox_changed(self) -> None:
        """Wake the outbox sender."""
        self.outbox.changed()

    @property
    def reports_charging_state(self) -> bool:
        """2.0.1 is among the offered versions: its TransactionEvent tells charging-state changes."""
        return "2.0.1" in self.csms_config.ocpp_versions

    @property
    def connection(self) -> WsClient | None:
        """The open WebSocket connection, or None (the simulator cuts it to simulate a network drop)."""
        return self._ws

    # activity and time, for the sessions
    @property
    def scheduler(self) -> Scheduler:
        """The scheduler of the sessions' periodic duties (the running loop's, unless one was injected)."""
        if self._scheduler is None:
            self._scheduler = loop_scheduler()
        return self._scheduler

    def touch(self) -> None:
        """Any traffic counts as activity for the heartbeat (OCPP 1.6 §4.6)."""
        self._last_activity = asyncio.get_running_loop().time()

    def idle_s(self) -> float:
        """Seconds since the last frame either way."""
        return asyncio.get_running_loop().time() - self._last_activity

    def boot_retry_jitter_s(self) -> float:
        """Up to a second (never more than the reconnect jitter): OCPP intervals are whole seconds, so every charger
        a central system deferred within one second would otherwise come back in the same millisecond."""
        return self.rng.uniform(0, min(BOOT_RETRY_JITTER_MAX_S, self.csms_config.reconnect_jitter_s))

    def set_time(self, when: datetime) -> None:
        """Adopt the CSMS's time if the clock allows it."""
        setter = getattr(self.clock, "set_time", None)
        if setter is not None:
            before = self.clock.now()
            setter(when)
            jump_s = (self.clock.now() - before).total_seconds()
            if abs(jump_s) > TIME_JUMP_EVENT_S:
                self.security_events.record(
                    SecurityEventType.SETTING_SYSTEM_TIME,
                    f"clock moved by {jump_s:+.0f} s to the CSMS's time",
                )

    # connection
    def connecting_profile(self) -> int:
        """The security profile of the next connection: its network profile's, or for the configured connection
        the active one (or a higher one being tried, whitepaper §2)."""
        profile = self.network.current_profile()
        return profile.security_profile if profile is not None else self.profiles.connecting()

    def message_timeout_s(self) -> float:
        """How long a session waits for an answer: the messageTimeout of the network profile in use (OCPP 2.0.1
        B09), else ``csms.response_timeout_s``."""
        profile = self.network.current_profile()
        return (
            float(profile.message_timeout_s) if profile is not None else self.csms_config.response_timeout_s
        )

    def url(self) -> str:
        """The WebSocket URL: the base (of the network profile in use, else the configured one) plus the charge
        point id, or its ``{station_id}`` template; wss:// from security profile 2 on (whitepaper §2, OCPP 2.0.1
        A00: profiles 2 and 3 use TLS)."""
        profile = self.network.current_profile()
        url = station_url(profile.url if profile is not None else self.csms_config.url, self.identity.id)
        if self.connecting_profile() >= 2 and url.startswith("ws://"):
            url = "wss://" + url.removeprefix("ws://")
        return url

    def password(self) -> str | None:
        """The Basic-auth password: the AuthorizationKey the CSMS set, else the configured one."""
        return self.settings.text("authorization_key") or self.csms_config.password

    def has_client_certificate(self) -> bool:
        """A client certificate for profile 3: the installed ChargePointCertificate or a configured one."""
        return self.certificates.client_files() is not None or bool(self.csms_config.client_cert)

    def state(self) -> dict[str, Any]:
        """Connection and registration at a glance (for ``ctl status``)."""
        session = self.session
        return {
            "url": self.url(),
            "connected": session is not None,
            "registration": session.boot_status if session is not None else None,
            "online": self.online,
            "connections": self.connections,
            "reconnect_attempts": self.reconnects,
            "outbox": self.store.outbox_size(),
        }

    def _headers(self) -> dict[str, str]:
        password = self.password()
        if password is None or self.connecting_profile() == 3:
            return {}
        token = base64.b64encode(f"{self.identity.id}:{password}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def _ssl(self) -> ssl.SSLContext | None:
        cfg = self.csms_config
        if not self.url().startswith("wss://"):
            return None
        # The configured CA and the CentralSystemRootCertificates the CSMS installed (whitepaper M05: used from
        # the next connection) verify the server; with neither, the system's trust store does.
        context = ssl.create_default_context(
            cafile=cfg.ca_file, cadata=self.certificates.csms_roots_pem() or None
        )
        if self.connecting_profile() == 3:
            # The ChargePointCertificate the CSMS signed (A02) wins over the configured one.
            files = self.certificates.client_files()
            if files is not None:
                context.load_cert_chain(*files)
            elif cfg.client_cert:
                context.load_cert_chain(cfg.client_cert, cfg.client_key)
        return context

    def _active_profile(self) -> int:
        return self.settings.get_int("security_profile")

    def _promote(self, profile: int) -> None:
        self.settings.set_text("security_profile", str(profile))

    def _connected(self) -> None:
        """A connection was opened: a new security profile is now the active one."""
        self._failure_event = None
        promoted = self.profiles.connected() if self.network.current_profile() is None else None
        promoted = self.network.connected() or promoted
        if promoted is not None:
            log.warning("security profile %s works: it is the active profile now", promoted)
            self.security_events.record(
                SecurityEventType.RECONFIGURATION_OF_SECURITY_PARAMETERS, f"SecurityProfile {promoted}"
            )

    def _connect_failed(self, event: SecurityEventType | None, info: str) -> None:
        """A connection failed: report a security failure once per outage; a new profile that fails for a security
        reason (refused credentials, TLS) is dropped after a few tries. An unreachable CSMS says nothing about the
        profile and counts for nothing; it counts against the network profile (B10: the next slot is tried after
        NetworkProfileConnectionAttempts)."""
        slot = self.network.connect_failed()
        if slot is not None:
            log.error("network profile failed to connect; trying configuration slot %s", slot)
        if event is None:
            return
        if event is not self._failure_event:
            self._failure_event = event
            self.security_events.record(event, info)
        dropped = self.profiles.connect_failed()
        if dropped is not None:
            log.error(
                "security profile %s failed to connect; falling back to profile %s",
                dropped,
                self.profiles.active,
            )

    async def reconnect(self) -> None:
        """Close the connection (the run loop opens a new one with the current profile and password)."""
        ws = self._ws
        if ws is not None:
            await ws.close()

    def backoff_s(self, failures: int) -> float:
        """Exponential backoff with random jitter, capped."""
        cfg = self.csms_config
        base: float = min(cfg.reconnect_max_s, cfg.reconnect_min_s * float(2 ** min(failures, 30)))
        return base + self.rng.uniform(0, cfg.reconnect_jitter_s)

    async def run(self) -> None:
        """Connect, serve, and reconnect until ``close()`` (runs in the caller's task: one task per connection).

        While connected, nothing here has a task of its own: frames are routed by a task that runs only while they
        wait, the outbox sender only while messages wait, pings and heartbeats are scheduler timers."""
        failures = 0
        while not self.stopping:
            offered = self.subprotocols()
            ping = self.settings.get_int("websocket_ping_interval_s") or None
            try:
                ws = await self._open(offered, ping)
                if ws is None:
                    break  # close() cut the connect short
            except InvalidStatus as exc:
                code = exc.response.status_code
                log.error(
                    "CSMS refused the connection with HTTP %s%s",
                    code,
                    " (check the charge point id and password)" if code in (401, 403, 404) else "",
                )
                failures += 1
                self._count_failure(f"HTTP {code}")
                refused = SecurityEventType.FAILED_TO_AUTHENTICATE_AT_CENTRAL_SYSTEM
                self._connect_failed(refused if code in (401, 403) else None, f"HTTP {code}")
            except (OSError, InvalidHandshake, InvalidURI, TimeoutError, ssl.SSLError) as exc:
                log.warning("cannot reach the CSMS at %s: %s", self.url(), exc)
                failures += 1
                self._count_failure(type(exc).__name__)
                reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
                self._connect_failed(TLS_FAILURE_EVENTS.get(str(reason)), str(exc)[:200])
            else:
                if self.stopping:  # close() came as the connect completed
                    await ws.close()
                    break
                self._connected()
                failures = await self._serve(ws, failures)
                del ws  # not kept through the backoff
                if not self.stopping:
                    self._count_failure("closed")
            if self.stopping:
                break
            self.reconnects += 1
            delay = self.backoff_s(max(0, failures - 1))
            log.info("reconnecting in %.1f s", delay)
            await self.pause(delay)

    async def _open(self, offered: Sequence[str], ping: int | None) -> WsClient | None:
        """Open a connection, in a task of its own only while the connect lasts (so that close() can cut it short:
        None then)."""
        connecting = self._connecting = asyncio.get_running_loop().create_task(
            open_connection(
                self.url(),
                self.scheduler,
                subprotocols=offered,
                headers=self._headers(),
                ssl=self._ssl(),
                ping_interval_s=ping,
                # A dead link (no pong) is not going to answer a close frame either: give up on it soon.
                close_timeout_s=CLOSE_TIMEOUT_S,
                max_size=self.csms_config.max_message_bytes,
                open_timeout_s=self.message_timeout_s(),
            ),
            name="csms-connect",
        )
        try:
            return await connecting
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if self.stopping and connecting.cancelled() and (task is None or not task.cancelling()):
                return None
            raise
        finally:
            self._connecting = None

    async def pause(self, delay_s: float) -> None:
        """Sleep ``delay_s``, or less if ``close()`` is called meanwhile."""
        if self.stopping:
            return
        loop = asyncio.get_running_loop()
        waiter = self._pausing = loop.create_future()
        handle = loop.call_later(delay_s, _resolve, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self._pausing = None

    def _count_failure(self, kind: str) -> None:
        kinds = self.failure_kinds
        if kinds is None:
            kinds = self.failure_kinds = {}
        kinds[kind] = kinds.get(kind, 0) + 1

    def subprotocols(self) -> tuple[str, ...]:
        """The subprotocols offered in the handshake, most preferred first: the network profile's version, else
        ``csms.ocpp_versions``."""
        profile = self.network.current_profile()
        if profile is not None:
            return _offer((profile.ocpp_version,))
        return _offer(self.csms_config.ocpp_versions)

    async def _serve(self, ws: WsClient, failures: int) -> int:
        # The adapter is chosen once per connection, from the subprotocol the CSMS picked among those offered
        # (OCPP-J 1.6 §3.1.2, OCPP-J 2.0.1 §3.2): a subprotocol we did not offer is no agreement.
        offered = self.subprotocols()
        adapter = ADAPTERS.get(ws.subprotocol or "") if ws.subprotocol in offered else None
        if adapter is None:
            log.error(
                "CSMS did not agree to a supported OCPP version (offered %s, got %r)",
                offered,
                ws.subprotocol,
            )
            await ws.close(1002, "no supported subprotocol")
            return failures + 1
        log.info("connected to %s (%s)", self.url(), ws.subprotocol)
        self.connections += 1
        self._ws = ws
        self.touch()
        inbound = InboundCap(ws, self.store, self.max_queued_calls)
        session = adapter(self.session_deps, inbound)
        self.session = session
        try:
            await session.run()
        except CsmsUnavailable as exc:
            log.info("session ended: %s", exc)
        except Exception:
            # A bug in a session must not end the link: log it, drop the connection and reconnect.
            log.exception("session failed; reconnecting")
        finally:
            inbound.close_reader()
            self.session = None
            self._ws = None
            await ws.close()
        if self.stopping:
            log.info("connection to the CSMS closed")
        else:
            log.warning("disconnected from the CSMS")
        return 0 if session.ever_accepted else failures + 1

    async def close(self) -> None:
        """Stop reconnecting and close the connection, if any, within a bounded time; ``run()`` then returns."""
        self.stopping = True
        if self._pausing is not None and not self._pausing.done():
            self._pausing.set_result(None)
        if self._connecting is not None:
            self._connecting.cancel()
        ws = self._ws
        if ws is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S + 1):
                await ws.close()
        except TimeoutError:
            log.warning("the CSMS connection did not close in time; dropping it")
            ws.abort()
        session = self.session
        if session is not None:
            session.connection_ended()  # even if a handler still holds its router: run() returns and cleans up

    async def drain(self, timeout_s: float) -> bool:
        """Wait until the outbox is empty (or ``timeout_s``); True if it emptied."""
        await self.store.flush()
        if self.store.outbox_size() == 0:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await self.outbox.idle.wait()
        except TimeoutError:
            return False
        return True
