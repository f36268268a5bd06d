"""The agent: store, settings, station and CSMS link wired together, restarted in-process on Reset."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import uuid
from collections.abc import Callable
from typing import Any

from chargepoint.config import AgentConfig, firmware_config
from chargepoint.core.firmware import running_version
from chargepoint.core.model import BootReason, ResetKind, StopReason
from chargepoint.core.scheduler import Flag, Scheduler, loop_scheduler
from chargepoint.core.security import SecurityEventType
from chargepoint.core.settings import SPECS, Settings
from chargepoint.core.station import Station, StationTiming
from chargepoint.core.storage import CertificateUse
from chargepoint.csms.link import Link
from chargepoint.csms.session import CallObserver
from chargepoint.files import FileTransfers, redact_mapping
from chargepoint.ports import Clock, ConnectorPorts, CounterIds, IdGenerator, SystemClock
from chargepoint.store import Store
from chargepoint.watchdog import keep_alive, notify, watchdog_interval_s
from hardware.factory import SimConnector, build_ports

log = logging.getLogger(__name__)

SOFT_RESET_DRAIN_S = 10.0
SHUTDOWN_DRAIN_S = 3.0


def new_transaction_id() -> str:
    """A transaction id unique across restarts without a persisted counter: a UUID4 (36 chars, 2.0.1's maximum)."""
    # One module-level function shared by every agent of a fleet rather than a closure per agent.
    return str(uuid.uuid4())


def _read_text(path: str) -> str:
    """A file's text for a diagnostics archive (called in an executor); a note if it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(1 << 20)
    except OSError as exc:
        return f"# configuration {path} not readable: {exc.strerror}\n"


def store_summary(store: Store) -> dict[str, Any]:
    """What a diagnostics archive tells of the store: sizes, running transactions, settings (secrets redacted)."""
    return {
        "outbox_size": store.outbox_size(),
        "dead_letters": len(store.dead_letters()),
        "active_transactions": [
            {"connector_id": t.connector_id, "started_at": t.started_at.isoformat(), "local_id": t.local_id}
            for t in store.active_transactions()
        ],
        "settings": redact_mapping(store.settings()),
        # the state only: a location may carry FTP credentials
        "firmware_job_state": (store.file_job("firmware") or {}).get("state"),
    }


def _restart_info(kind: ResetKind, station: Station) -> str:
    """The techInfo of the ResetOrReboot event of an in-process restart: why it happened (stored before it)."""
    reason = station.boot_reason
    if reason is BootReason.FIRMWARE_UPDATE:
        return "reboot into the installed firmware"
    if reason is BootReason.SCHEDULED_RESET:
        return f"{kind.name.lower()} reset by the central system, once idle"
    return f"{kind.name.lower()} reset by the central system"


class Agent:
    """One charge point: runs until ``shutdown()``; a Reset restarts everything but the hardware."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        ports: dict[int, ConnectorPorts] | None = None,
        clock: Clock | None = None,
        ids: IdGenerator | None = None,
        transaction_ids: IdGenerator | None = None,
        rng: random.Random | None = None,
        timing: StationTiming | None = None,
        store_factory: Callable[[], Store] | None = None,
        call_observer: CallObserver | None = None,
        scheduler: Scheduler | None = None,
    ) -> None:
        self.config = config
        # A fleet of agents in one process shares one SQLite file (chargepoint.store.StoreFile), one key each.
        self._store_factory = store_factory
        self.call_observer = call_observer  # told of every CALL's answer and latency (fleet metrics)
        self.sims: dict[int, SimConnector] = {}
        if ports is None:
            ports = {}
            for index, cfg in enumerate(config.connectors):
                ports[cfg.id], self.sims[cfg.id] = build_ports(index, cfg)
        self.ports = ports
        self.clock = clock or SystemClock()
        # OCPP-J limits a uniqueId to 36 characters: a random prefix per run plus a counter stays far below.
        self.ids = ids or CounterIds(prefix=f"{random.getrandbits(32):08x}-")
        self.transaction_ids = transaction_ids or new_transaction_id
        self.rng = rng or random.Random()
        self.timing = timing or StationTiming(meter_poll_s=config.meter_poll_s)
        if scheduler is not None:
            self.timing = dataclasses.replace(self.timing, scheduler=scheduler)
        self.station: Station | None = None
        self.link: Link | None = None
        self.store: Store | None = None
        self.boots = 0
        self.resets: list[ResetKind] = []
        # Flags, not asyncio.Events (~0.8 KB each for the agent's life); shutdown() also resolves the future the
        # running agent waits on, so no task per agent waits for it.
        self._shutdown = Flag()
        self._shutdown_waiter: asyncio.Future[None] | None = None
        self.started = Flag()

    def _settings(self, store: Store) -> Settings:
        """Settings: stored values (set by the CSMS) win over the config file's, which win over defaults."""
        stored = store.settings()
        for name, text in self.config.settings.items():
            if name in stored and stored[name] != text:
                log.info(
                    "setting %s is %s as the CSMS set it; the config file's %s no longer applies",
                    name,
                    stored[name],
                    text,
                )
        overrides: dict[str, Any] = {
            name: SPECS[name].parse(text) for name, text in self.config.settings.items()
        }
        overrides["number_of_connectors"] = len(self.ports)
        # Read-only to the CSMS (DeviceDataCtrlr.BytesPerMessage), the station's own to choose.
        overrides["bytes_per_message"] = self.config.csms.bytes_per_message
        # The configured profile until the CSMS moves the charger to a higher one (stored, whitepaper §2).
        overrides["security_profile"] = self.config.csms.security_profile

        def persist(name: str, text: str) -> None:
            store.put_setting(name, text)  # queued; an answer to the CSMS waits for its commit (csms/link.py)

        return Settings(stored, overrides=overrides, on_change=persist)

    def _files(self, store: Store) -> FileTransfers:
        """The FilePort of the firmware and diagnostics blocks."""
        cfg = self.config
        return FileTransfers(
            firmware_config(cfg),
            simulated_hardware=all(c.relay.driver == "sim" for c in cfg.connectors),
            config_text=lambda: _read_text(cfg.source),
            store_summary=lambda: store_summary(store),
            # Signed firmware is checked against the ManufacturerRootCertificates installed by the CSMS
            # (InstallCertificate) and those of the config file (firmware.manufacturer_roots).
            manufacturer_roots=lambda: [
                c.pem for c in store.installed_certificates(CertificateUse.MANUFACTURER_ROOT)
            ],
        )

    async def run(self) -> None:
        """Run until shutdown, restarting in-process after each Reset (with the systemd watchdog fed)."""
        interval = watchdog_interval_s()
        keeper = None
        if interval is not None:
            keeper = asyncio.create_task(
                keep_alive(lambda: self.station is None or self.station.loops_alive(), interval),
                name="watchdog",
            )
        try:
            while not self._shutdown.is_set():
                kind = await self._run_once()
                if kind is None:
                    return
                self.resets.append(kind)
                log.warning("%s reset: restarting the agent", kind.name.lower())
        finally:
            notify("STOPPING=1")
            if keeper is not None:
                keeper.cancel()

    async def _run_once(self) -> ResetKind | None:
        cfg = self.config
        if self._store_factory is not None:
            store = self._store_factory()
        else:
            store = Store(
                cfg.storage.path, durable=cfg.storage.durable, outbox_limit=cfg.storage.outbox_limit
            )
        self.store = store
        settings = self._settings(store)
        # BootNotification reports the firmware last installed by UpdateFirmware (OCPP 1.6 §4.5).
        identity = dataclasses.replace(
            cfg.station, firmware_version=running_version(cfg.station.firmware_version, store)
        )
        scheduler = self.timing.scheduler or loop_scheduler()
        station = Station(
            self.ports,
            store,
            settings,
            self.clock,
            transaction_ids=self.transaction_ids,
            timing=self.timing,
            unlock_supported=cfg.unlock_supported,
            files=self._files(store),
            station_id=cfg.station.id,
            firmware_version=cfg.station.firmware_version,
        )
        link = Link(
            identity,
            cfg.csms,
            station,
            store,
            settings,
            self.clock,
            self.ids,
            rng=self.rng,
            scheduler=scheduler,
        )
        link.call_observer = self.call_observer
        station.attach(link)
        # Security whitepaper critical events: the first start of this process, then every restart after a Reset.
        if self.resets:
            link.security_events.record(
                SecurityEventType.RESET_OR_REBOOT, _restart_info(self.resets[-1], station)
            )
        elif self.boots == 0:
            link.security_events.record(SecurityEventType.STARTUP_OF_THE_DEVICE)
        self.station, self.link = station, link
        try:
            await station.start()
        except BaseException:
            await station.stop()  # a resumed transaction may have closed a relay before start failed
            store.close()
            raise
        self.boots += 1
        notify("READY=1")
        loop = asyncio.get_running_loop()
        shutdown_task = self._shutdown_waiter = loop.create_future()
        if self._shutdown.is_set():
            shutdown_task.set_result(None)
        assert station.reset_requested is not None
        reset_requested = station.reset_requested
        # The link runs in this task (one task per connection). A Reset or a shutdown starts the stop sequence in
        # a task of its own, only then: the link keeps serving (and reconnecting) while queued messages drain, and
        # the sequence ends by closing the link, which returns here.
        stopping: list[asyncio.Task[ResetKind | None]] = []

        def begin_stop(_: object = None) -> None:
            if not stopping:
                stopping.append(loop.create_task(self._stop_sequence(station, link), name="agent-stop"))

        reset_requested.add_done_callback(begin_stop)
        shutdown_task.add_done_callback(begin_stop)
        if reset_requested.done() or shutdown_task.done():
            begin_stop()
        self.started.set()
        try:
            while not link.stopping:
                try:
                    await link.run()
                except asyncio.CancelledError:
                    current = asyncio.current_task()
                    if current is None or current.cancelling():
                        raise  # this task is being cancelled: the agent ends
                    # A bug cancelled something the link awaited (this task was not cancelled): keep the charger
                    # working and reconnect, as for a crash.
                    log.error("CSMS link cancelled; restarting it")
                    await link.pause(cfg.csms.reconnect_min_s)
                except Exception:
                    # The link never ends by itself; if it crashed anyway, the charger keeps working and reconnects.
                    log.exception("CSMS link crashed; restarting it")
                    await link.pause(cfg.csms.reconnect_min_s)
            return await stopping[0] if stopping else None
        finally:
            self.started.clear()
            self._shutdown_waiter = None
            reset_requested.remove_done_callback(begin_stop)
            shutdown_task.remove_done_callback(begin_stop)
            shutdown_task.cancel()
            for task in stopping:
                task.cancel()
            await link.close()
            await station.stop()
            await store.flush()  # the last commits, awaited off the event loop before the file is closed
            store.close()

    async def _stop_sequence(self, station: Station, link: Link) -> ResetKind | None:
        """After a Reset or a shutdown: end the transactions, let the queue drain, then close the link."""
        try:
            reset = station.reset_requested
            kind = reset.result() if reset is not None and reset.done() else None
            reason = {
                ResetKind.SOFT: StopReason.SOFT_RESET,
                ResetKind.HARD: StopReason.HARD_RESET,
                None: StopReason.REBOOT,
            }[kind]
            await station.stop(reason)
            # Soft reset and shutdown give queued messages a moment to go out; hard reset does not wait for the
            # queue, only for the answer to a message already in flight.
            if kind is not ResetKind.HARD:
                await link.drain(SOFT_RESET_DRAIN_S if kind else SHUTDOWN_DRAIN_S)
            await link.outbox.quiesce(self.config.csms.response_timeout_s)
            return kind
        finally:
            await link.close()

    def shutdown(self) -> None:
        """Stop the agent: transactions end (reason Reboot), relays open."""
        self._shutdown.set()
        waiter = self._shutdown_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
