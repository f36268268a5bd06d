"""N real agents with simulated hardware and EVs in one event loop, driven by a scenario.

Every charger is a real ``chargepoint.agent.Agent`` (core, OCPP 1.6 adapter, outbox) built from objects, with
simulated relay, reader and plug and an EV-driven meter. The outboxes of the whole fleet live in one SQLite file
(one station key per agent) or in memory when the scenario says ``durable = false``.

One ticker drives the fleet: every ``tick_s`` real seconds virtual time advances by ``tick_s * time_scale``, the
EVs draw energy through closed relays, and drivers act. Drivers and EVs decide everything from per-connector
random streams seeded by (seed, charger id, connector), at tick boundaries, so two runs of a scenario plan the
same visits and deliver the same energy.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import gc
import json
import logging
import math
import random
import resource
import socket
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from backend_stub.process import start_csms_process
from chargepoint import csms_url
from chargepoint.agent import Agent
from chargepoint.config import (
    BOOT_FIELD_MAX_CHARS,
    AgentConfig,
    ConnectorConfig,
    CsmsConfig,
    DriverConfig,
    StationIdentity,
    StorageConfig,
)
from chargepoint.core.events import OutboxKind
from chargepoint.core.scheduler import Scheduler
from chargepoint.core.station import StationTiming
from chargepoint.ports import ConnectorPorts
from chargepoint.store import StoreFile
from hardware.sim import SimPlug, SimReader, SimRelay
from simulator.ev import Ev, EvMeter
from simulator.metrics import Metrics
from simulator.scenario import EvModel, Scenario

log = logging.getLogger(__name__)

CHARGER: contextvars.ContextVar[str] = contextvars.ContextVar("charger", default="-")
"""The id of the charger whose agent runs in the current task (the tasks an agent starts inherit it)."""


class ChargerLogFilter(logging.Filter):
    """Adds ``%(charger)s`` to every log record: the charger whose agent logged it, ``-`` outside any agent."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Tag the record; never drops it."""
        record.charger = CHARGER.get()
        return True


_SIM = DriverConfig("sim")
_RAMP_TIMEOUT_S = 120.0


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


_FREEZE_EVERY_S = 1.0


def _freeze_survivors() -> None:
    """Move every object alive now out of the cyclic collector's reach (``gc.freeze()``); called about once a second.

    A fleet keeps ~1 GB of long-lived objects per 19,500 agents and keeps making more (timers, futures, duties'
    entries). Unfrozen, each full collection scanned them all: 0.65-0.9 s stalls every ~11 s in the steady state
    and up to 3.4 s during the ramp, and after each stall every timer that fell due fired in one loop turn (bursts of
    500 CALLs; heartbeats phase-locked by the stall for good). Frozen, the collector only sees the last second's
    objects (CALL->CALLRESULT p99 at 19,500: 367 ms -> 16 ms, docs/benchmarks.md). The price: a reference cycle
    that became garbage after being frozen is not collected until ``gc.unfreeze()`` (``Fleet.close()``).
    """
    gc.freeze()


class Ramp:
    """When each charger of a ramp starts: the n-th (0-based) due ``n * gap_s`` after the first.

    A ramp that slept ``gap_s`` between two starts got at most one start per turn of the event loop: once earlier
    chargers kept the loop busy (Heartbeats of 15,000 agents per fleet process on a saturated machine), a turn
    took 100-750 ms and the ramp fell from its 100/s to a few per second (the 100,000 run never started its last
    7,300 chargers). But chargers started in the same turn boot in the same instant and, as an agent plans its
    Heartbeat HeartbeatInterval after its last frame, send their Heartbeats together for good (starting everyone
    due in each turn raised the Heartbeat p50 from 0.6 to 6-15 ms at 2,000 chargers), and a second's worth of
    handshakes in one turn overran a loaded central system's handshake timeout (3,425 failed of 20,000). So: one
    start per turn while that keeps the ramp within ``SLACK_S`` of its schedule, as before; further behind, each
    turn starts what is due beyond the slack, at most ``MAX_BATCH_S`` worth (25 at 100/s: with turns of 750 ms,
    33/s instead of 1.3/s)."""

    SLACK_S = 10.0
    MAX_BATCH_S = 0.25

    __slots__ = ("gap_s", "largest", "max_batch", "slack", "started", "total")

    def __init__(self, total: int, rate_per_s: float) -> None:
        self.total = total
        self.gap_s = 1.0 / rate_per_s
        self.slack = math.ceil(rate_per_s * self.SLACK_S)
        self.max_batch = max(1, math.ceil(rate_per_s * self.MAX_BATCH_S))
        self.started = 0
        self.largest = 0  # the most chargers started in one turn

    def due(self, elapsed_s: float) -> int:
        """How many chargers to start now, ``elapsed_s`` after the ramp began (and count them as started)."""
        if self.started >= self.total:
            return 0
        if self.gap_s * self.total <= 1e-3:
            batch = self.total - self.started  # a ramp shorter than a millisecond is a storm: everyone now
        else:
            # The n-th is due at n * gap_s; the epsilon keeps a start planned for exactly now from slipping a turn.
            due = min(self.total, math.floor(max(0.0, elapsed_s) / self.gap_s + 1e-9) + 1)
            behind = due - self.started
            batch = 0 if behind <= 0 else min(self.max_batch, max(1, behind - self.slack))
        self.started += batch
        self.largest = max(self.largest, batch)
        return batch

    def wait_s(self, elapsed_s: float) -> float:
        """Seconds from ``elapsed_s`` until the next charger is due (0 if one is due already or all started)."""
        if self.started >= self.total:
            return 0.0
        return max(0.0, self.started * self.gap_s - elapsed_s)


def shard_range(count: int, shard: int, shards: int) -> range:
    """Charger indexes (0-based) of one of ``shards`` processes: contiguous blocks."""
    return range(shard * count // shards, (shard + 1) * count // shards)


@dataclass
class Visit:
    """One driver's visit to a connector, as planned and as it went."""

    number: int
    id_tag: str
    known: bool
    plug_first: bool
    ev: Ev
    arrived_v: float
    end_v: float | None
    target_wh: float | None
    actions: list[tuple[float, str]] = field(default_factory=list)
    decide_v: float = 0.0
    local_tx_id: int | None = None
    leaving: bool = False
    outcome: str | None = None


class SimConnectorState:
    """One connector's simulated hardware and the driver process that uses it."""

    __slots__ = (
        "cid",
        "draws",
        "manual",
        "meter",
        "next_arrival_v",
        "plug",
        "reader",
        "relay",
        "seed",
        "visit",
        "visits",
    )

    def __init__(self, cid: int, seed: str, voltage_v: float, phases: int = 3) -> None:
        self.cid = cid
        self.relay = SimRelay()
        self.plug = SimPlug()
        self.reader = SimReader()
        self.meter = EvMeter(self.relay, self.plug, voltage_v=voltage_v, phases=phases)
        # A random stream per connector, as short-lived generators seeded by (seed, draw number): as
        # reproducible as one long-lived Random per connector, without its 2.5 KB of state each.
        self.seed = seed
        self.draws = 0
        self.next_arrival_v = math.inf
        self.visit: Visit | None = None
        self.visits: list[Visit] = []
        self.manual = False  # driven from outside (ctl / fixture): the driver model leaves it alone

    def rng(self) -> random.Random:
        """The next generator of this connector's stream."""
        self.draws += 1
        return random.Random(f"{self.seed}:{self.draws}")


class SimCharger:
    """One virtual charger: a real agent plus its simulated connectors."""

    __slots__ = ("agent", "connectors", "id", "index", "task")

    def __init__(
        self, index: int, cp_id: str, agent: Agent, connectors: dict[int, SimConnectorState]
    ) -> None:
        self.index = index
        self.id = cp_id
        self.agent = agent
        self.connectors = connectors
        self.task: asyncio.Task[None] | None = None

    @property
    def booted(self) -> bool:
        """BootNotification accepted since the agent started."""
        link = self.agent.link
        return link is not None and link.boot_accepted

    def snapshot(self) -> dict[str, Any]:
        """State of every connector, as the control interface shows it."""
        station = self.agent.station
        link = self.agent.link
        out: dict[str, Any] = {
            "id": self.id,
            "online": bool(link is not None and link.online),
            "connectors": station.snapshot() if station is not None else {},
        }
        for cid, sc in self.connectors.items():
            entry = out["connectors"].setdefault(str(cid), {})
            entry["ev_soc"] = round(sc.meter.ev.soc, 3) if sc.meter.ev is not None else None
            entry["manual"] = sc.manual
        return out


class CsmsProcess:
    """The bundled central system run by the simulator when no URL is given (its test mode)."""

    def __init__(
        self, db: Path | None = None, *, heartbeat_interval_s: int = 60, extra_args: tuple[str, ...] = ()
    ) -> None:
        self.db = db
        self.heartbeat_interval_s = heartbeat_interval_s
        self.extra_args = extra_args  # more `serve` options (boot-storm gate, workers, ...)
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.port = 0

    async def start(self) -> str:
        """Start it (on the same port as before, after a restart); returns its URL."""
        self.proc, url = await start_csms_process(
            db=self.db,
            port=self.port,
            extra_args=["--heartbeat-interval", str(self.heartbeat_interval_s), *self.extra_args],
        )
        self.url = url.rstrip("/")
        self.port = int(url.split(":")[2].split("/")[0])
        return self.url

    async def kill(self) -> None:
        """SIGKILL it (a crash, not a clean stop)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    async def stop(self) -> None:
        """Stop it cleanly."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                await self.kill()


def _dead_port() -> tuple[socket.socket, int]:
    """A bound, never-listening socket: connecting to its port is refused at once (a network drop)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


class Fleet:
    """A fleet of agents (or one shard of it) running one scenario."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        work_dir: Path,
        shard: int = 0,
        shards: int = 1,
        csms_url: str | None = None,
        scheduler_per_agent: bool = False,
    ) -> None:
        self.scenario = scenario
        # Every agent of the process shares the loop's scheduler of periodic duties (chargepoint/core/scheduler.py),
        # as a lone agent on a charger has it to itself; one per agent only to show both behave the same (tests).
        self._scheduler_per_agent = scheduler_per_agent
        f = scenario.fleet
        self._timing = StationTiming(meter_poll_s=f.meter_poll_s, persist_meter_s=max(15.0, f.meter_poll_s))
        # What every agent's configuration has alike, built once and shared (frozen, or a mapping nobody writes):
        # a copy per agent was ~0.5 KB per charger.
        self._connector_configs = tuple(
            ConnectorConfig(cid, _SIM, _SIM, _SIM, _SIM, f.max_current_a, f.phases, f.voltage_v)
            for cid in range(1, f.connectors + 1)
        )
        self._agent_settings: Mapping[str, str] = MappingProxyType(
            {
                "heartbeat_interval_s": str(f.heartbeat_interval_s),
                "meter_value_sample_interval_s": str(f.meter_value_sample_interval_s),
                "transaction_message_retry_interval_s": "2",
            }
        )
        self._storage_config: StorageConfig | None = None
        self.work_dir = work_dir
        self.shard, self.shards = shard, shards
        self.metrics = Metrics()
        self.chargers: dict[str, SimCharger] = {}
        # Every (charger, connector) pair, flat, for the ticker; rebuilt when the fleet has grown since.
        self._connectors: list[tuple[SimCharger, SimConnectorState]] = []
        self._connectors_of = 0
        self.ramp: Ramp | None = None
        self.csms_process: CsmsProcess | None = None
        self._csms_override = csms_url
        self.urls: tuple[str, ...] = scenario.fleet.csms_urls
        self.store_file: StoreFile | None = None
        self._first_local_id = 0
        self.tick = 0
        self.virtual_s = 0.0
        self.started_wall = 0.0
        self.started_at: datetime | None = None
        self.ended = asyncio.Event()
        self.phase = "created"
        self._tasks: set[asyncio.Task[Any]] = set()
        self._dead: tuple[socket.socket, int] | None = None
        self._dropped: dict[str, CsmsConfig] = {}
        self._slow: dict[str, float] = {}
        self._fault_rng = random.Random(f"{scenario.seed}:faults")
        self._ev_weights = [ev.weight for ev in scenario.evs]
        self.reconnects = 0
        self.reconnect_attempts = 0
        self._link_rng = random.Random(f"{scenario.seed}:links:{shard}")

    # construction
    def _url_for(self, index: int) -> str:
        urls = self.urls
        if len(urls) == 1:
            return urls[0]
        if self.scenario.fleet.distribution == "random":
            return random.Random(f"{self.scenario.seed}:url:{index}").choice(urls)
        return urls[index % len(urls)]

    def _storage(self) -> StorageConfig:
        """The agents' storage configuration (the fleet's store file), one shared by all."""
        path = self.store_file.path if self.store_file else ":memory:"
        if self._storage_config is None or self._storage_config.path != path:
            self._storage_config = StorageConfig(path=path)
        return self._storage_config

    def _build(self, index: int) -> SimCharger:
        sc, f = self.scenario, self.scenario.fleet
        cp_id = f.charger_id(index)
        password = sc.credentials.password(cp_id, f.first + index)
        url = self._url_for(index)
        config = AgentConfig(
            station=StationIdentity(
                id=cp_id,
                vendor=f.vendor,
                model=f.model,
                # CiString25 in BootNotification: a long charger id must not make the serial number too long.
                serial_number=f"SN-{cp_id}"[: BOOT_FIELD_MAX_CHARS["serial_number"]],
                firmware_version="0.1.0",
            ),
            csms=CsmsConfig(
                url=url,
                ocpp_versions=(f.version_of(index),),
                security_profile=1 if password else 0,
                password=password,
                response_timeout_s=f.response_timeout_s,
                boot_retry_s=min(30.0, f.reconnect_max_s),
                reconnect_min_s=f.reconnect_min_s,
                reconnect_max_s=f.reconnect_max_s,
                reconnect_jitter_s=f.reconnect_jitter_s,
            ),
            storage=self._storage(),
            connectors=self._connector_configs,
            settings=self._agent_settings,
            meter_poll_s=f.meter_poll_s,
            source=sc.source,
        )
        connectors: dict[int, SimConnectorState] = {}
        ports: dict[int, ConnectorPorts] = {}
        for cid in range(1, f.connectors + 1):
            state = SimConnectorState(cid, f"{sc.seed}:{cp_id}:{cid}", f.voltage_v, f.phases)
            state.next_arrival_v = self._next_arrival(state, 0.0)
            connectors[cid] = state
            ports[cid] = ConnectorPorts(
                state.relay, state.meter, state.plug, state.reader, f.max_current_a, f.voltage_v, f.phases
            )
        store_file = self.store_file
        assert store_file is not None
        agent = Agent(
            config,
            ports=ports,
            rng=self._link_rng,  # the agents' own reconnect jitter (one seeded generator for the fleet)
            timing=self._timing,  # frozen: one for every agent of the scenario
            store_factory=lambda: store_file.store(
                cp_id
            ),  # (a partial is larger: its args tuple and kw dict)
            call_observer=self.metrics.observe,
            scheduler=Scheduler(asyncio.get_running_loop()) if self._scheduler_per_agent else None,
        )
        return SimCharger(index, cp_id, agent, connectors)

    # driver behaviour (virtual time, per-connector random streams)
    def _rate_per_s(self, virtual_s: float) -> float:
        hour = int((self.scenario.start_hour + virtual_s / 3600.0) % 24)
        return self.scenario.drivers.arrivals_per_hour[hour] / 3600.0

    def _next_arrival(self, sc: SimConnectorState, after_v: float) -> float:
        """The next arrival of a Poisson process whose rate depends on the hour (thinning)."""
        peak = max(self.scenario.drivers.arrivals_per_hour) / 3600.0
        if peak <= 0:
            return math.inf
        t = after_v
        rng = sc.rng()
        for _ in range(10_000):
            t += rng.expovariate(peak)
            if rng.random() * peak <= self._rate_per_s(t):
                return t
        return math.inf

    def _plan_visit(self, sc: SimConnectorState, now_v: float) -> Visit:
        d = self.scenario.drivers
        rng = sc.rng()
        known = rng.random() >= d.unknown_share
        tag = rng.choice(d.id_tags) if known else f"UNKNOWN{rng.randrange(10**8):08d}"
        model: EvModel = rng.choices(self.scenario.evs, weights=self._ev_weights)[0]
        ev = Ev(model, rng.uniform(*model.start_soc))
        plug_first = rng.random() < d.plug_first_share
        end_v = now_v + d.act_delay_s + rng.uniform(*d.session_minutes) * 60 if d.session_minutes else None
        target = rng.uniform(*d.target_energy_wh) if d.target_energy_wh else None
        first, second = ("plug", "swipe") if plug_first else ("swipe", "plug")
        visit = Visit(len(sc.visits) + 1, tag, known, plug_first, ev, now_v, end_v, target)
        visit.actions = [(now_v, first), (now_v + d.act_delay_s, second)]
        visit.decide_v = now_v + d.act_delay_s + d.patience_s
        return visit

    def _do(self, charger: SimCharger, sc: SimConnectorState, action: str, visit: Visit | None) -> None:
        if action == "plug":
            if visit is not None:
                sc.meter.ev = visit.ev
            sc.plug.set_plugged(True)
        elif action == "unplug":
            sc.plug.set_plugged(False)
            sc.meter.ev = None
        elif action == "swipe" and visit is not None:
            sc.reader.swipe(visit.id_tag)

    def _drive(self, charger: SimCharger, sc: SimConnectorState, now_v: float) -> None:
        visit = sc.visit
        if visit is None:
            if sc.manual or now_v < sc.next_arrival_v or self.phase != "running":
                return
            visit = sc.visit = self._plan_visit(sc, now_v)
            sc.visits.append(visit)
        if visit.actions:
            # One action per tick: a card swiped to stop must reach the station before the cable goes, or the
            # agent rightly takes it as a new identification on an Available connector.
            if visit.actions[0][0] <= now_v:
                _, action = visit.actions.pop(0)
                self._do(charger, sc, action, visit)
            return
        if visit.leaving:
            # Gone: the next driver comes after a random gap (lost arrivals while busy are not replayed).
            sc.visit = None
            sc.next_arrival_v = self._next_arrival(sc, now_v)
            return
        station = charger.agent.station
        conn = station.connectors.get(sc.cid) if station is not None else None
        tx = conn.transaction if conn is not None else None
        if tx is not None and visit.local_tx_id is None and tx.id_tag == visit.id_tag.upper():
            visit.local_tx_id = tx.local_id
        if visit.local_tx_id is None:
            if now_v >= visit.decide_v:
                visit.outcome = "rejected" if not visit.known else "not_started"
                self._leave(sc, visit, now_v, swipe=False)
            return
        ended = tx is None or tx.local_id != visit.local_tx_id
        done = (visit.end_v is not None and now_v >= visit.end_v) or (
            visit.target_wh is not None and visit.ev.taken_wh >= visit.target_wh
        )
        if ended or done:
            self._leave(sc, visit, now_v, swipe=not ended and self.scenario.drivers.end == "swipe")

    def _leave(self, sc: SimConnectorState, visit: Visit, now_v: float, *, swipe: bool) -> None:
        visit.leaving = True
        if swipe:
            visit.actions = [(now_v, "swipe"), (now_v + self.scenario.drivers.act_delay_s, "unplug")]
        else:
            visit.actions = [(now_v, "unplug")]

    # the ticker
    def _tick(self) -> None:
        _freeze_survivors()
        dt_v = self.scenario.tick_s * self.scenario.time_scale
        self.tick += 1
        self.virtual_s = now_v = self.virtual_s + dt_v
        if self._connectors_of != len(self.chargers):  # chargers are only ever added (built at start)
            self._connectors = [
                (charger, sc) for charger in self.chargers.values() for sc in charger.connectors.values()
            ]
            self._connectors_of = len(self.chargers)
        for charger, sc in self._connectors:
            if sc.meter.ev is not None:
                sc.meter.tick(dt_v)
            # An idle connector (no visit, no driver due yet, or driven from outside) is passed over here rather
            # than in _drive: a fleet of 19,500 mostly idle chargers pays this loop every tick.
            if sc.visit is None and (sc.manual or now_v < sc.next_arrival_v):
                continue
            self._drive(charger, sc, now_v)

    async def _ticker(self, ticks: int) -> None:
        start = asyncio.get_running_loop().time()
        first = self.tick
        for k in range(1, ticks + 1):
            due = start + k * self.scenario.tick_s
            delay = due - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            self._tick()
            self._apply_faults(self.tick - first)

    # faults
    def _chosen(self, share: float, salt: str) -> list[SimCharger]:
        rng = random.Random(f"{self.scenario.seed}:{salt}")
        everyone = sorted(self.chargers.values(), key=lambda c: c.index)
        return [c for c in everyone if rng.random() < share]

    def _apply_faults(self, k: int) -> None:
        tick_s = self.scenario.tick_s
        for i, fault in enumerate(self.scenario.faults):
            start = round(fault.at_s / tick_s)
            end = start + max(1, round(fault.duration_s / tick_s))
            if k not in (start, end):
                continue
            begin = k == start
            chosen = self._chosen(fault.share, f"fault{i}")
            log.info("fault %s %s (%s chargers)", fault.kind, "begins" if begin else "ends", len(chosen))
            if fault.kind == "network_drop":
                for c in chosen:
                    self._drop(c) if begin else self._restore(c)
            elif fault.kind == "meter_failure":
                for c in chosen:
                    for sc in c.connectors.values():
                        sc.meter.failing = begin
            elif fault.kind == "reader_failure":
                for c in chosen:
                    for sc in c.connectors.values():
                        sc.reader.fail(begin)
            elif fault.kind == "slow_responses":
                for c in chosen:
                    if begin:
                        self._slow[c.id] = fault.delay_s
                    else:
                        self._slow.pop(c.id, None)
            elif fault.kind == "csms_restart" and begin:
                self._spawn(self._restart_csms(fault.duration_s), "csms-restart")

    def _drop(self, charger: SimCharger) -> None:
        """Cut the charger's connection and refuse reconnects until restored."""
        link = charger.agent.link
        if link is None:
            return
        if self._dead is None:
            self._dead = _dead_port()
        self._dropped[charger.id] = link.csms_config
        link.csms_config = dataclasses.replace(link.csms_config, url=f"ws://127.0.0.1:{self._dead[1]}/ocpp")
        ws = link.connection
        if ws is not None:
            ws.abort()

    def _restore(self, charger: SimCharger) -> None:
        link = charger.agent.link
        config = self._dropped.pop(charger.id, None)
        if link is not None and config is not None:
            link.csms_config = config

    def _slow_down(self) -> None:
        """Delay every frame a slowed charger sends (a slow uplink), on each new connection, while the fault lasts."""
        slow = self._slow
        for cp_id in slow:
            link = self.chargers[cp_id].agent.link
            ws = link.connection if link is not None else None
            if ws is None or getattr(ws, "_sim_slow", False):
                continue
            send = ws.send

            # The delay is looked up per frame: when the fault ends (or the fleet winds down) the connection
            # patched here is fast again, not slow until it happens to reconnect.
            async def slow_send(message: Any, *args: Any, _send: Any = send, _id: str = cp_id) -> None:
                delay = slow.get(_id)
                if delay:
                    await asyncio.sleep(delay)
                await _send(message, *args)

            ws.send = slow_send  # type: ignore[method-assign]
            ws._sim_slow = True  # type: ignore[attr-defined]

    async def _restart_csms(self, down_s: float) -> None:
        proc = self.csms_process
        if proc is None:
            return
        await proc.kill()
        await asyncio.sleep(down_s)
        await proc.start()
        log.info("central system restarted on port %s", proc.port)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # life cycle
    async def start(self) -> None:
        """Open the store, (start the central system,) build and boot the chargers, staggered.

        If starting fails (or is cancelled), what was started is stopped and closed again: no orphaned central
        system process, no open store.
        """
        try:
            await self._start()
        except BaseException:
            with contextlib.suppress(Exception):
                await self.stop()
            with contextlib.suppress(Exception):
                await self.close()
            raise

    async def _start(self) -> None:
        sc = self.scenario
        raise_fd_limit()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if self._csms_override:
            self.urls = (csms_url.normalize(self._csms_override),)
        elif sc.spawn_csms:
            self.csms_process = CsmsProcess(heartbeat_interval_s=sc.fleet.heartbeat_interval_s)
            self.urls = (await self.csms_process.start(),)
        if sc.fleet.durable:
            name = sc.fleet.store_path or ("fleet.db" if self.shards == 1 else f"fleet-{self.shard}.db")
            path = Path(name) if Path(name).is_absolute() else self.work_dir / name
            # SQLite WAL with synchronous=OFF: a commit survives the simulator being killed (the OS has it),
            # which is the power loss a virtual charger can have; fsync per message would cap the fleet.
            self.store_file = StoreFile(path, durable=False)
        else:
            self.store_file = StoreFile(":memory:", durable=False)
        row = self.store_file.db.execute("SELECT COALESCE(MAX(local_id), 0) FROM transactions").fetchone()
        self._first_local_id = int(row[0])
        indexes = shard_range(sc.fleet.count, self.shard, self.shards)
        for index in indexes:
            charger = self._build(index)
            self.chargers[charger.id] = charger
        self.started_wall = time.monotonic()
        self.started_at = datetime.now(UTC)
        self.phase = "ramping"
        await self._ramp(list(self.chargers.values()), sc.fleet.connect_rate_per_s / self.shards)
        # Waiting for boots never outlasts the run itself: a fleet that cannot connect (refused, 404, 401) with
        # --duration 10 stops after about 10 s, not after the ramp timeout.
        ramp_timeout_s = min(_RAMP_TIMEOUT_S, sc.duration_s)
        deadline = time.monotonic() + ramp_timeout_s
        # Polled: boots are many and cheap to count, and no agent event says "the whole fleet is up".
        while True:
            if time.monotonic() >= deadline or all(c.booted for c in self.chargers.values()):
                break
            _freeze_survivors()
            await asyncio.sleep(0.1)
        booted = sum(c.booted for c in self.chargers.values())
        if booted < len(self.chargers):
            log.warning("%s of %s chargers booted within %s s", booted, len(self.chargers), ramp_timeout_s)
        else:
            log.info("all %s chargers booted", booted)
        # Everything allocated so far lives as long as the fleet: keep it out of the collector's generations.
        gc.collect()
        gc.freeze()
        self.phase = "running"

    async def _ramp(self, chargers: list[SimCharger], rate_per_s: float) -> None:
        """Start the agents at ``rate_per_s`` (``Ramp``: every charger due by each turn of the loop, not one per
        sleep), freezing the survivors about once a second."""
        loop = asyncio.get_running_loop()
        ramp = self.ramp = Ramp(len(chargers), rate_per_s)
        t0 = frozen_at = loop.time()
        while ramp.started < ramp.total:
            first = ramp.started
            for charger in chargers[first : first + ramp.due(loop.time() - t0)]:
                self._start_agent(charger)
            if loop.time() - frozen_at >= _FREEZE_EVERY_S:
                _freeze_survivors()
                frozen_at = loop.time()
            if ramp.started < ramp.total:
                await asyncio.sleep(ramp.wait_s(loop.time() - t0))

    def _start_agent(self, charger: SimCharger) -> None:
        # The task copies the context with the charger's id in it, so every log line of this agent names it.
        token = CHARGER.set(charger.id)
        try:
            charger.task = asyncio.get_running_loop().create_task(
                charger.agent.run(), name=f"agent-{charger.id}"
            )
        finally:
            CHARGER.reset(token)
        charger.task.add_done_callback(self._agent_done)

    def _agent_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("agent %s crashed", task.get_name(), exc_info=task.exception())

    async def run(self, duration_s: float | None = None) -> None:
        """Drive the fleet for ``duration_s`` real seconds (the scenario's by default)."""
        duration = self.scenario.duration_s if duration_s is None else duration_s
        ticks = max(1, round(duration / self.scenario.tick_s))
        slow = (
            self._spawn(self._slow_loop(), "slow-responses")
            if self._slow or self._has("slow_responses")
            else None
        )
        try:
            await self._ticker(ticks)
        finally:
            if slow is not None:
                slow.cancel()

    def _has(self, kind: str) -> bool:
        return any(f.kind == kind for f in self.scenario.faults)

    async def _slow_loop(self) -> None:
        while True:
            self._slow_down()
            await asyncio.sleep(0.05)

    async def wind_down(self) -> None:
        """Every driver leaves (unplug), faults end, and the outboxes drain (up to ``drain_s``)."""
        self.phase = "draining"
        for charger in self.chargers.values():
            self._restore(charger)
            for sc in charger.connectors.values():
                sc.meter.failing = False
                if not sc.reader.present:
                    sc.reader.fail(False)
                if sc.plug.plugged:
                    self._do(charger, sc, "unplug", None)
                    if sc.visit is not None:
                        sc.visit.leaving = True
                        sc.visit.actions = []
        self._slow.clear()
        proc = self.csms_process
        if proc is not None and proc.proc is not None and proc.proc.returncode is not None:
            await proc.start()  # a restart fault still in progress
        # Let the unplugs reach the stations, then wait for every queued message to be acknowledged.
        await asyncio.sleep(self.scenario.tick_s)
        # A fleet none of whose chargers ever booted has no central system to drain to: waiting drain_s would
        # only delay the "no charger booted" failure a QA pipeline is waiting for.
        drain_s = self.scenario.drain_s if any(c.booted for c in self.chargers.values()) else 0.0
        deadline = time.monotonic() + drain_s
        while True:
            if time.monotonic() >= deadline or self.outbox_total() == 0:
                break
            await asyncio.sleep(0.2)
        if self.outbox_total():
            log.warning("%s messages still queued after %s s", self.outbox_total(), drain_s)

    def outbox_total(self) -> int:
        """Messages still queued across the fleet."""
        if self.store_file is None:
            return 0
        return int(self.store_file.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    async def stop(self) -> None:
        """Shut every agent down and close the store (and the central system the fleet started)."""
        self.phase = "stopping"
        self.reconnects, self.reconnect_attempts = (
            self._count_reconnects()
        )  # before shutdown closes every link
        for task in list(self._tasks):
            task.cancel()
        for charger in self.chargers.values():
            charger.agent.shutdown()
        tasks = [c.task for c in self.chargers.values() if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=30)
        for t in tasks:
            if not t.done():
                t.cancel()
        if self._dead is not None:
            self._dead[0].close()
        self.ended.set()
        self.phase = "stopped"

    async def close(self) -> None:
        """Release the store and the central system process."""
        gc.unfreeze()
        if self.csms_process is not None:
            await self.csms_process.stop()
        if self.store_file is not None:
            self.store_file.close()
            self.store_file = None

    # control (the ctl commands and the pytest fixture)
    def charger(self, cp_id: str) -> SimCharger:
        """A charger by id; KeyError names it."""
        try:
            return self.chargers[cp_id]
        except KeyError:
            raise KeyError(f"no charger {cp_id!r} in this fleet") from None

    def _manual(self, cp_id: str, cid: int) -> SimConnectorState:
        charger = self.charger(cp_id)
        if cid not in charger.connectors:
            raise KeyError(f"{cp_id} has no connector {cid}")
        sc = charger.connectors[cid]
        sc.manual = True
        if sc.visit is not None:
            sc.visit.outcome = sc.visit.outcome or "taken_over"
            sc.visit = None
        return sc

    def plug(self, cp_id: str, cid: int = 1, *, soc: float = 0.3) -> None:
        """Plug an EV (the first EV model of the scenario) into a connector; the driver model lets go of it."""
        sc = self._manual(cp_id, cid)
        if not sc.plug.plugged:
            sc.meter.ev = Ev(self.scenario.evs[0], soc)
            sc.plug.set_plugged(True)

    def unplug(self, cp_id: str, cid: int = 1) -> None:
        """Unplug a connector's EV."""
        sc = self._manual(cp_id, cid)
        sc.plug.set_plugged(False)
        sc.meter.ev = None

    def swipe(self, cp_id: str, id_tag: str, cid: int | None = None) -> int:
        """Present a card at a connector's reader (by default the first plugged one, else 1); returns it."""
        charger = self.charger(cp_id)
        if cid is None:
            plugged = [c for c, sc in sorted(charger.connectors.items()) if sc.plug.plugged]
            cid = plugged[0] if plugged else 1
        sc = self._manual(cp_id, cid)
        sc.reader.swipe(id_tag)
        return cid

    def status(self, cp_id: str | None = None) -> dict[str, Any]:
        """One charger's snapshot, or the fleet's summary."""
        if cp_id is not None:
            return self.charger(cp_id).snapshot()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Counts for the live view and ``ctl status``."""
        states: Counter[str] = Counter()
        for charger in self.chargers.values():
            station = charger.agent.station
            if station is None:
                states["(starting)"] += len(charger.connectors)
                continue
            for conn in station.connectors.values():
                states[conn.state.name] += 1
        finished = sum(
            1 for c in self.chargers.values() for sc in c.connectors.values() for v in sc.visits if v.leaving
        )
        active = sum(
            1 for c in self.chargers.values() for sc in c.connectors.values() if sc.visit is not None
        )
        rate, latency = self.metrics.live()
        return {
            "phase": self.phase,
            "chargers": len(self.chargers),
            "online": sum(
                1 for c in self.chargers.values() if c.agent.link is not None and c.agent.link.online
            ),
            "booted": sum(c.booted for c in self.chargers.values()),
            "versions": dict(sorted(Counter(self.version_of(cp) for cp in self.chargers).items())),
            "states": dict(sorted(states.items())),
            "visits_active": active,
            "visits_finished": finished,
            "virtual_s": round(self.virtual_s, 1),
            "messages_per_s": round(rate, 1),
            "latency_ms": latency,
            "calls": sum(self.metrics.calls.values()),
            "outbox": self.outbox_total(),
        }

    # the report
    def _visits_by_tx(self) -> dict[tuple[str, int], tuple[int, Visit]]:
        out: dict[tuple[str, int], tuple[int, Visit]] = {}
        for c in self.chargers.values():
            for sc in c.connectors.values():
                for v in sc.visits:
                    if v.local_tx_id is not None:
                        out[(c.id, v.local_tx_id)] = (sc.cid, v)
        return out

    def sessions(self) -> list[dict[str, Any]]:
        """Every transaction of this run, from the agents' own store, plus visits that never started one."""
        assert self.store_file is not None
        db = self.store_file.db
        queued = {
            (r["station"], r["local_tx_id"], r["kind"])
            for r in db.execute("SELECT station, local_tx_id, kind FROM outbox WHERE local_tx_id IS NOT NULL")
        }
        dead = {
            (r["station"], r["local_tx_id"])
            for r in db.execute("SELECT station, local_tx_id FROM dead_letters WHERE local_tx_id IS NOT NULL")
        }
        visits = self._visits_by_tx()
        rows = db.execute(
            "SELECT * FROM transactions WHERE local_id > ? ORDER BY station, local_id",
            (self._first_local_id,),
        ).fetchall()
        out: list[dict[str, Any]] = []
        for r in rows:
            if r["station"] not in self.chargers:
                continue
            key = (r["station"], r["local_id"])
            _, visit = visits.get(key, (None, None))
            if r["active"]:
                outcome = "active"
                energy = r["last_meter_wh"] - r["meter_start_wh"]
            else:
                energy = r["meter_stop_wh"] - r["meter_start_wh"]
                if key in dead:
                    outcome = "dead_letter"
                elif (r["station"], r["local_id"], OutboxKind.STOP) in queued:
                    outcome = "stop_queued"
                else:
                    outcome = "completed"
            out.append(
                {
                    "charger": r["station"],
                    "ocpp_version": self.version_of(r["station"]),
                    "connector": r["connector_id"],
                    "visit": visit.number if visit else 0,
                    "id_tag": r["id_tag"],
                    # The id the central system knows it by: 1.6 its own integer, 2.0.1 the station's.
                    "transaction_id": r["csms_id"] if r["csms_id"] is not None else self._station_tx_id(r),
                    "meter_start_wh": r["meter_start_wh"],
                    "meter_stop_wh": r["meter_stop_wh"],
                    "energy_wh": energy,
                    "outcome": outcome,
                    "stop_reason": r["stop_reason"],
                }
            )
        for c in self.chargers.values():
            for sc in c.connectors.values():
                for v in sc.visits:
                    if v.local_tx_id is None and v.outcome is not None:
                        out.append(
                            {
                                "charger": c.id,
                                "ocpp_version": self.version_of(c.id),
                                "connector": sc.cid,
                                "visit": v.number,
                                "id_tag": v.id_tag,
                                "transaction_id": None,
                                "meter_start_wh": None,
                                "meter_stop_wh": None,
                                "energy_wh": None,
                                "outcome": v.outcome,
                                "stop_reason": None,
                            }
                        )
        out.sort(key=lambda s: (s["charger"], s["connector"], s["visit"], s["meter_start_wh"] or 0))
        return out

    def version_of(self, cp_id: str) -> str:
        """The OCPP version a charger of this fleet speaks."""
        return self.scenario.fleet.version_of(self.chargers[cp_id].index)

    def _station_tx_id(self, row: Any) -> str | None:
        """A transaction's own id where the central system knows it by that (OCPP 2.0.1), else None."""
        if self.version_of(row["station"]) == "1.6":
            return None
        return str(row["tx_id"]) if row["tx_id"] is not None else None

    def report(self) -> dict[str, Any]:
        """The end report (JSON-ready)."""
        sessions = self.sessions()
        outcomes = Counter(s["outcome"] for s in sessions)
        summary = self.summary()
        reconnects, attempts = (
            (self.reconnects, self.reconnect_attempts)
            if self.phase == "stopped"
            else self._count_reconnects()
        )
        return {
            "scenario": self.scenario.name,
            "seed": self.scenario.seed,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "wall_s": round(time.monotonic() - self.started_wall, 2),
            "chargers": len(self.chargers),
            "chargers_booted": summary["booted"],
            "chargers_by_state": summary["states"],
            "messages": sum(self.metrics.calls.values()),
            **self.metrics.to_json(),
            "reconnects": reconnects,
            "reconnect_attempts": attempts,
            "energy_wh": sum(s["energy_wh"] or 0 for s in sessions),
            "sessions_by_outcome": dict(sorted(outcomes.items())),
            "chargers_by_version": summary["versions"],
            "sessions_by_version": {
                version: dict(
                    sorted(Counter(s["outcome"] for s in sessions if s["ocpp_version"] == version).items())
                )
                for version in summary["versions"]
            },
            "sessions": sessions,
        }

    def _count_reconnects(self) -> tuple[int, int]:
        """Successful reconnections (sessions after the first, per charger) and reconnect attempts."""
        links = [c.agent.link for c in self.chargers.values() if c.agent.link is not None]
        return sum(max(0, link.connections - 1) for link in links), sum(link.reconnects for link in links)

    def latency_samples(self) -> dict[str, list[float]]:
        """Raw latencies (s) by action, for merging shards."""
        return {action: [round(x, 6) for x in values] for action, values in self.metrics.latency.items()}


async def run_fleet(
    scenario: Scenario,
    work_dir: Path,
    *,
    shard: int = 0,
    shards: int = 1,
    on_started: Callable[[Fleet], Any] | None = None,
) -> Fleet:
    """Start, run, wind down and stop a fleet; returns it (report not yet written)."""
    fleet = Fleet(scenario, work_dir=work_dir, shard=shard, shards=shards)
    try:
        await fleet.start()
        if on_started is not None:
            result = on_started(fleet)
            if asyncio.iscoroutine(result):
                await result
        await fleet.run()
        await fleet.wind_down()
    finally:
        await fleet.stop()
    return fleet


def dump_samples(fleet: Fleet, path: Path) -> None:
    """Write the raw latency samples next to a shard's report."""
    path.write_text(json.dumps(fleet.latency_samples()))
