"""One virtual charger for Locust: connects, boots, heartbeats, runs sessions and answers the central system.

The charger is driven from one greenlet (the Locust user's): it waits on its inbox until the next due action
(heartbeat, session start, MeterValues, session end, power cut, link drop) or until a central-system call asks
for something (RemoteStart, Reset, TriggerMessage, ...). Calls are answered at once on the receive greenlet; what
they ask for happens here, so the charger's state has one writer. Every CALL is reported through `report`.
"""

from __future__ import annotations

import enum
import logging
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent  # type: ignore[import-untyped]  # gevent ships no type information
from gevent.queue import Empty, Queue  # type: ignore[import-untyped]

from loadtests.connection import (
    CallFailed,
    ConnectFailed,
    ConnectionLost,
    InvalidResponse,
    NotConnected,
    OcppConnection,
)
from loadtests.credentials import Credential
from loadtests.metrics import ChargerMetrics
from loadtests.profiles import Profile
from loadtests.protocol import (
    Answer,
    Availability,
    ChargerView,
    Intent,
    OcppVersion,
    RemoteStart,
    RemoteStop,
    Request,
    ResetRequested,
    StationInfo,
    StopReason,
    Trigger,
    Unlock,
    answer_call,
    apply_config,
)

__all__ = ["Charger", "ChargerSettings", "Report"]

log = logging.getLogger(__name__)

CONNECTOR_ID = 1
# Session messages kept while offline (versions that queue them, 2.0.1): beyond this the oldest meter reading
# goes first; a start or an end is never dropped for a reading.
MAX_OFFLINE_QUEUE = 1000
Report = Callable[[str, str, float, int, Exception | None], None]
"""report(request_type, name, response_time_ms, response_length, exception) -> None"""


@dataclass(frozen=True, slots=True)
class ChargerSettings:
    """Run-wide settings of every charger."""

    url: str  # the central system's base URL (a charger connects to {url}/{cp_id}) or a {station_id} template
    speed: float = 1.0  # divides every behaviour time (heartbeat, sessions, meter interval, cuts)
    response_timeout_s: float = 30.0
    connect_timeout_s: float = 30.0
    validate: bool = True
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0


class Phase(enum.Enum):
    """Where the charger's single connector is."""

    IDLE = "idle"
    CHARGING = "charging"


class _Disconnected:
    """Inbox marker: the connection ended (wakes the loop to reconnect)."""


_DISCONNECTED = _Disconnected()


class Charger:
    """A virtual OCPP charger with one connector."""

    def __init__(
        self,
        credential: Credential,
        profile: Profile,
        version: OcppVersion,
        settings: ChargerSettings,
        report: Report,
        metrics: ChargerMetrics,
        rng: random.Random | None = None,
    ) -> None:
        self.credential = credential
        self.profile = profile
        self.version = version
        self.settings = settings
        self.report = report
        self.metrics = metrics
        self.rng = rng or random.Random(credential.cp_id)
        self.config = version.default_config()
        self.config["MeterValueSampleInterval"] = str(profile.meter_interval_s)
        if profile.heartbeat_s is not None:
            self.config["HeartbeatInterval"] = str(profile.heartbeat_s)
        self.inbox: Any = Queue()
        self.conn: OcppConnection | None = None
        self.ever_connected = False
        self.booted = False
        self.phase = Phase.IDLE
        self.operative = True
        self.inoperative_after_session = False
        self.remote_start_pending = False
        self.starting = False  # between the decision to start a session and its StartTransaction answer
        self.transaction_id: int | str | None = None
        self.seq_no = 0  # the running transaction's next message number (OCPP 2.0.1 E01 seqNo)
        self.offline_queue: deque[Request] = deque()  # session messages not sent while offline, oldest first
        self.reset_after_session = False  # Reset OnIdle answered Scheduled: reboot when the session ends
        self.id_tag = credential.id_tags[0]
        self.energy_wh = self.rng.randint(0, 10_000_000)
        self.energy_at = time.monotonic()
        self.interrupted: tuple[int | str, str] | None = None  # a session a power cut ended, stopped at boot
        now = time.monotonic()
        self.next_heartbeat = math.inf
        self.next_session = now + self._scaled(self.rng.expovariate(1 / profile.idle_mean_s))
        self.next_meter = math.inf
        self.session_end = math.inf
        self.next_power_cut = self._next_power_cut()
        self.next_link_drop = self._next_link_drop(now)

    # -- timing helpers
    def _scaled(self, seconds: float) -> float:
        return seconds / self.settings.speed

    def _next_power_cut(self) -> float:
        """The next site-wide power cut, aligned on the wall clock so every charger (and worker) shares it."""
        if self.profile.power_cut_every_s is None:
            return math.inf
        period = self._scaled(self.profile.power_cut_every_s)
        wall = time.time()
        return time.monotonic() + (math.floor(wall / period) + 1) * period - wall

    def _next_link_drop(self, now: float) -> float:
        if self.profile.link_drop_mean_s is None:
            return math.inf
        return now + self._scaled(self.rng.expovariate(1 / self.profile.link_drop_mean_s))

    def _interval(self, key: str) -> float:
        return max(self._scaled(float(self.config[key])), 0.001)

    # -- the loop
    def run(self) -> None:
        """Run until the greenlet is killed (Locust stops the user)."""
        while True:
            if self.conn is None or not self.conn.is_open:
                self._bring_online()
                continue
            due_at, action = self._next_action()
            try:
                intent = self.inbox.get(timeout=max(0.0, due_at - time.monotonic()))
            except Empty:
                action()
            else:
                if not isinstance(intent, _Disconnected):
                    self._handle(intent)

    def shutdown(self) -> None:
        """End a running session (one StopTransaction, a short timeout) and close the connection."""
        conn = self.conn
        if (
            conn is not None
            and conn.is_open
            and self.phase is Phase.CHARGING
            and self.transaction_id is not None
        ):
            self._advance_energy()
            request = self.version.stop_transaction(
                self.transaction_id, self.id_tag, self.energy_wh, StopReason.LOCAL, seq_no=self._next_seq()
            )
            self.phase = Phase.IDLE
            self.transaction_id = None
            self.metrics.count("sessions_completed")
            self._call(request, timeout_s=min(5.0, self.settings.response_timeout_s))
        if conn is not None:
            conn.close()
        self.conn = None

    def _next_action(self) -> tuple[float, Callable[[], None]]:
        candidates: list[tuple[float, Callable[[], None]]] = [
            (self.next_heartbeat, self._heartbeat),
            (self.next_power_cut, self._power_cut),
            (self.next_link_drop, self._link_drop),
        ]
        if self.phase is Phase.CHARGING:
            candidates += [(self.next_meter, self._meter_values), (self.session_end, self._end_session)]
        elif self.operative and not self.remote_start_pending:
            candidates.append((self.next_session, self._start_session))
        return min(candidates, key=lambda c: c[0])

    # -- calls
    def _call(
        self,
        request: Request,
        refused: Callable[[dict[str, Any]], str | None] | None = None,
        timeout_s: float | None = None,
        *,
        session: bool = False,
    ) -> Any:
        """Send a CALL and report it; the answer's payload, or None if it failed (or `refused` said why). A
        ``session`` message that cannot be sent is queued for later if the version queues them."""
        queue = session and self.version.QUEUES_OFFLINE
        if queue and (self.offline_queue or not self._online()):
            self._queue_offline(request)  # behind what waits already: the order of a session's messages holds
            return None
        payload, was_refused = self._exchange(request, refused, timeout_s, requeue=queue)
        return None if was_refused else payload

    def _online(self) -> bool:
        return self.conn is not None and self.conn.is_open

    def _exchange(
        self,
        request: Request,
        refused: Callable[[dict[str, Any]], str | None] | None = None,
        timeout_s: float | None = None,
        *,
        requeue: bool = False,
    ) -> tuple[Any, bool]:
        """Send a CALL and report it exactly once (a refusal is that one report's failure); returns the answer's
        payload (None if the call itself failed) and whether `refused` objected to it. With ``requeue``, a CALL
        the connection lost is queued to be sent again once online (at least once: it may have arrived)."""
        conn = self.conn
        if conn is None:
            if requeue:
                self._queue_offline(request)
            return None, False
        try:
            outcome = conn.call(request, timeout_s or self.settings.response_timeout_s)
        except NotConnected:  # never sent: counted, but no request (a 0 ms failure would skew the times)
            self.metrics.count("calls_not_sent")
            if requeue:
                self._queue_offline(request)
            return None, False
        except CallFailed as exc:
            self.report("OCPP", request.action, exc.response_time_ms, exc.response_length, exc)
            if requeue and isinstance(exc, ConnectionLost):
                self._queue_offline(request)
            return None, False
        failure: Exception | None = None
        if refused is not None:
            try:
                reason = refused(outcome.payload)
            except (KeyError, TypeError, ValueError) as exc:  # only reachable with validation off
                reason = f"unreadable answer: {exc!r}"
            if reason is not None:
                failure = InvalidResponse(reason, outcome.response_time_ms, outcome.response_length)
        self.report("OCPP", request.action, outcome.response_time_ms, outcome.response_length, failure)
        return outcome.payload, failure is not None

    def _id_tag_refused(self, payload: dict[str, Any]) -> str | None:
        status = self.version.id_tag_status(payload)
        return None if status == "Accepted" else f"idTagInfo.status {status}"

    def _status(self, status: str, connector_id: int = CONNECTOR_ID) -> None:
        request = self.version.status_notification(connector_id, status)
        if request is not None:
            self._call(request)

    def _idle_status(self) -> str:
        return "Available" if self.operative else "Unavailable"

    # -- connection and boot
    def _bring_online(self) -> None:
        """Connect (with backoff) and boot if the charger (re)started; returns once online."""
        self._drain_inbox()
        delay = 0.0
        while True:
            if delay:
                self._wait_offline(delay * (0.5 + self.rng.random()))
            delay = min(max(delay * 2, self.settings.reconnect_min_s), self.settings.reconnect_max_s)
            conn = OcppConnection(
                self.version,
                self._on_server_call,
                validate=self.settings.validate,
                on_protocol_error=self.metrics.count,
                on_closed=self._on_closed,
            )
            started = time.perf_counter()
            try:
                elapsed_ms = conn.connect(
                    self.settings.url,
                    self.credential.cp_id,
                    self.credential.password,
                    self.settings.connect_timeout_s,
                )
            except ConnectFailed as exc:
                self.metrics.count("connect_failures")
                self.report("WebSocket", "connect", (time.perf_counter() - started) * 1000, 0, exc)
                continue
            self.report("WebSocket", "connect", elapsed_ms, 0, None)
            self.metrics.connected(reconnect=self.ever_connected)
            self.ever_connected = True
            self.conn = conn
            if self.booted or self._boot():
                self._replay_offline()
                return
            if conn.is_open:  # not accepted: the boot answer's interval has passed, boot again
                delay = 0.0
                conn.close()

    def _wait_offline(self, seconds: float) -> None:
        """Wait before the next connection attempt; a session goes on meanwhile (its messages queued) when the
        version queues them, as a station does offline (OCPP 2.0.1 E04)."""
        deadline = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if not (self.version.QUEUES_OFFLINE and self.phase is Phase.CHARGING):
                gevent.sleep(max(0.0, deadline - now))
                return
            due_at, action = min(
                ((self.next_meter, self._meter_values), (self.session_end, self._end_session)),
                key=lambda c: c[0],
            )
            if due_at >= deadline:
                gevent.sleep(max(0.0, deadline - now))
                return
            gevent.sleep(max(0.0, due_at - now))
            action()

    def _queue_offline(self, request: Request) -> None:
        """Keep a session message that could not be sent (bounded: the oldest reading goes first)."""
        if len(self.offline_queue) >= MAX_OFFLINE_QUEUE:
            reading = next((r for r in self.offline_queue if r.payload.get("eventType") == "Updated"), None)
            if reading is None:
                self.metrics.count("offline_dropped")
                return
            self.offline_queue.remove(reading)
            self.metrics.count("offline_dropped")
        self.offline_queue.append(request)
        self.metrics.count("offline_queued")

    def _replay_offline(self) -> None:
        """Send the queued session messages in order, flagged as sent after an offline period; one lost with the
        connection is sent again on the next (at least once, like the agent's outbox)."""
        while self.offline_queue:
            conn = self.conn
            if conn is None or not conn.is_open:
                return
            request = self.offline_queue.popleft()
            payload, _ = self._exchange(self.version.replayed(request))
            if payload is None and not conn.is_open:
                self.offline_queue.appendleft(request)
                return
            self.metrics.count("offline_replayed")

    def _on_closed(self) -> None:
        self.metrics.disconnected()
        self.inbox.put(_DISCONNECTED)

    def _drain_inbox(self) -> None:
        while True:
            try:
                self.inbox.get_nowait()
            except Empty:
                return

    def _boot(self) -> bool:
        """BootNotification until Accepted, then the connector status and a clock-sync Heartbeat."""
        while self.conn is not None and self.conn.is_open:
            answer, refused = self._exchange(
                self.version.boot_notification(StationInfo(self.credential.cp_id)),
                lambda p: None if self.version.boot_result(p)[0] == "Accepted" else f"status {p['status']}",
            )
            if answer is None or refused:
                gevent.sleep(self._scaled(self._boot_retry_s(answer)) + self.rng.random())
                continue
            self.booted = True
            self.metrics.count("boots")
            if self.profile.heartbeat_s is None:
                self.config["HeartbeatInterval"] = str(self.version.boot_result(answer)[1])
            if (
                self.interrupted is not None
            ):  # the session a power cut ended (OCPP 1.6 §4.8, reason PowerLoss)
                tx_id, tag = self.interrupted
                self.interrupted = None
                # It ended when the power went: nobody could be told then (2.0.1: offline).
                self._call(
                    self.version.replayed(
                        self.version.stop_transaction(
                            tx_id, tag, self.energy_wh, StopReason.POWER_LOSS, seq_no=self._next_seq()
                        )
                    )
                )
                self.next_session = time.monotonic()  # the EV is still plugged in: charging starts again
            self._status(self._idle_status(), 0)
            self._status(self._idle_status())
            self._heartbeat()
            return True
        return False

    def _boot_retry_s(self, answer: Any) -> float:
        """Seconds until the next BootNotification: a Pending/Rejected answer's interval (OCPP 1.6 §4.2), else 10."""
        try:
            interval = self.version.boot_result(answer)[1] if answer is not None else 0
        except (KeyError, TypeError, ValueError):  # only reachable with validation off
            interval = 0
        return float(interval) if interval > 0 else 10.0

    def _heartbeat(self) -> None:
        self.next_heartbeat = time.monotonic() + self._interval("HeartbeatInterval")
        self._call(self.version.heartbeat())

    # -- sessions
    def _advance_energy(self) -> None:
        now = time.monotonic()
        if self.phase is Phase.CHARGING:
            hours = (now - self.energy_at) * self.settings.speed / 3600
            self.energy_wh += round(self.profile.power_w * hours)
        self.energy_at = now

    def _schedule_next_session(self) -> None:
        gap = self.rng.expovariate(1 / self.profile.idle_mean_s)
        self.next_session = time.monotonic() + self._scaled(gap)

    def _start_session(self, remote: RemoteStart | None = None) -> None:
        """Authorize (unless remote), Preparing, StartTransaction, Charging."""
        self.starting = True
        try:
            self._try_start_session(remote)
        finally:
            self.starting = False

    def _try_start_session(self, remote: RemoteStart | None) -> None:
        tag = remote.id_tag if remote is not None else self.rng.choice(self.credential.id_tags)
        if remote is None and self._call(self.version.authorize(tag), self._id_tag_refused) is None:
            self._schedule_next_session()
            return
        self._status("Preparing")
        self._advance_energy()
        proposed = self.version.new_transaction_id()
        self.seq_no = 0
        start = self.version.start_transaction(
            CONNECTOR_ID, tag, self.energy_wh, transaction_id=proposed, seq_no=self._next_seq(), remote=remote
        )
        answer, refused = self._exchange(start, self._id_tag_refused)
        transaction_id = self._read_transaction_id(answer, proposed)
        if transaction_id is None:
            self._status(self._idle_status())
            self._schedule_next_session()
            return
        self.transaction_id = transaction_id
        self.id_tag = tag
        self.phase = Phase.CHARGING
        self.metrics.count("sessions_started")
        if refused:  # OCPP 1.6 §5.12: the central system refused the idTag (reported above), end it at once
            self._stop_session(StopReason.DE_AUTHORIZED)
            return
        self._status("Charging")
        now = time.monotonic()
        self.next_meter = now + self._interval("MeterValueSampleInterval")
        self.session_end = now + self._scaled(self.rng.uniform(*self.profile.session_s))

    def _next_seq(self) -> int:
        """The running transaction's next seqNo (0, 1, 2, ...)."""
        self.seq_no += 1
        return self.seq_no - 1

    def _read_transaction_id(self, answer: Any, proposed: str | None) -> int | str | None:
        if answer is None:
            return None
        try:
            return self.version.transaction_id(answer, proposed)
        except (KeyError, TypeError, ValueError):  # only reachable with validation off
            return None

    def _meter_values(self) -> None:
        self.next_meter = time.monotonic() + self._interval("MeterValueSampleInterval")
        self._advance_energy()
        power = self.profile.power_w if self.phase is Phase.CHARGING else 0.0
        seq_no = self._next_seq() if self.transaction_id is not None else 0
        self._call(
            self.version.meter_values(
                CONNECTOR_ID, self.transaction_id, self.energy_wh, power, seq_no=seq_no
            ),
            session=self.transaction_id is not None,
        )

    def _end_session(self) -> None:
        self._stop_session(StopReason.LOCAL)

    def _stop_session(self, reason: StopReason) -> None:
        """StopTransaction and back to idle (the session ends whatever the central system answers)."""
        if self.phase is not Phase.CHARGING or self.transaction_id is None:
            return
        self._advance_energy()
        request = self.version.stop_transaction(
            self.transaction_id, self.id_tag, self.energy_wh, reason, seq_no=self._next_seq()
        )
        self.phase = Phase.IDLE
        self.transaction_id = None
        self.next_meter = self.session_end = math.inf
        self.metrics.count("sessions_completed")
        self._call(request, session=True)
        if self.inoperative_after_session:
            self.inoperative_after_session = False
            self.operative = False
        ends_here = (StopReason.LOCAL, StopReason.REMOTE, StopReason.UNLOCK, StopReason.DE_AUTHORIZED)
        if reason in ends_here and self._online():
            self._status(self._idle_status())
        self._schedule_next_session()
        if self.reset_after_session:  # Reset OnIdle was Scheduled: the station is idle now
            self.reset_after_session = False
            self._reset(hard=False)

    # -- failures the profile injects
    def _power_cut(self) -> None:
        """Site power cut: drop the connection without a word; the charger reboots when power returns."""
        self.metrics.count("power_cuts")
        self.next_power_cut = self._next_power_cut()
        if self.phase is Phase.CHARGING and self.transaction_id is not None:
            self._advance_energy()
            self.interrupted = (self.transaction_id, self.id_tag)
        self.phase = Phase.IDLE
        self.transaction_id = None
        self.next_meter = self.session_end = math.inf
        self.booted = False
        self.remote_start_pending = False
        if self.conn is not None:
            self.conn.abort()

    def _link_drop(self) -> None:
        """The link drops (mobile network): reconnect without rebooting; a session goes on."""
        self.metrics.count("link_drops")
        self.next_link_drop = self._next_link_drop(time.monotonic())
        if self.conn is not None:
            self.conn.abort()

    # -- central-system calls
    def _on_server_call(self, action: str, payload: Any) -> Answer:
        """Answer a central-system CALL (on the receive greenlet); what it asks for is queued for the loop."""
        self.metrics.server_call(action)
        if action in ("RemoteStopTransaction", "RequestStopTransaction"):
            # A RemoteStop right behind our StartTransaction's answer on the wire must see that transaction: give
            # the charger's loop a moment to apply the answer it has already received (it needs no other frame).
            deadline = time.monotonic() + 0.5
            while self.starting and self.transaction_id is None and time.monotonic() < deadline:
                gevent.sleep(0.001)
        view = ChargerView(
            connector_ids=(CONNECTOR_ID,),
            transaction_id=self.transaction_id,
            busy=self.phase is Phase.CHARGING
            or self.starting
            or self.remote_start_pending
            or not self.operative,
            config=self.config,
            session=self.phase is Phase.CHARGING or self.starting or self.remote_start_pending,
        )
        answer = answer_call(self.version, action, payload, view)
        for intent in apply_config(self.config, answer.intents):
            if isinstance(intent, RemoteStart):
                self.remote_start_pending = True
            self.inbox.put(intent)
        return answer

    def _handle(self, intent: Intent) -> None:
        if isinstance(intent, RemoteStart):
            try:
                if self.phase is Phase.IDLE:
                    self._start_session(intent)
            finally:
                self.remote_start_pending = False
        elif isinstance(intent, RemoteStop):
            self._stop_session(StopReason.REMOTE)
        elif isinstance(intent, Unlock):
            self._stop_session(StopReason.UNLOCK)
        elif isinstance(intent, ResetRequested):
            if intent.on_idle and self.phase is Phase.CHARGING:
                self.reset_after_session = True  # answered Scheduled; _stop_session carries it out
            else:
                self._reset(intent.hard)
        elif isinstance(intent, Trigger):
            self._trigger(intent)
        elif isinstance(intent, Availability):
            self._availability(intent.operative)

    def _reset(self, hard: bool) -> None:
        """End the session (SoftReset/HardReset), close, and boot again on a new connection."""
        self.metrics.count("resets")
        self._stop_session(StopReason.HARD_RESET if hard else StopReason.SOFT_RESET)
        self.booted = False
        if self.conn is not None:
            self.conn.close()

    def _trigger(self, trigger: Trigger) -> None:
        message = trigger.message
        if message == "BootNotification":
            self._call(self.version.boot_notification(StationInfo(self.credential.cp_id)))
        elif message == "Heartbeat":
            self._heartbeat()
        elif message == "StatusNotification":
            status = "Charging" if self.phase is Phase.CHARGING else self._idle_status()
            self._status(status, trigger.connector_id if trigger.connector_id is not None else CONNECTOR_ID)
        elif message == "MeterValues":
            self._meter_values()
        else:
            request = self.version.notification(message)
            if request is not None:
                self._call(request)

    def _availability(self, operative: bool) -> None:
        if not operative and self.phase is Phase.CHARGING:
            self.inoperative_after_session = True  # answered Scheduled
            return
        self.inoperative_after_session = False  # a later Operative cancels a scheduled Inoperative
        if operative != self.operative:
            self.operative = operative
            self._status(self._idle_status())
