"""Metering block: polling each meter, the durable register of running transactions, periodic samples counted from
the transaction start, clock-aligned samples, triggered samples, and MaxEnergyOnInvalidId."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from chargepoint.core.blocks.context import STORAGE_FAULT, FunctionalBlock, StationContext
from chargepoint.core.blocks.faults import Faults
from chargepoint.core.connector import ActiveTransaction, Connector
from chargepoint.core.events import MeterReadings, TransactionUpdated
from chargepoint.core.metering import finite, next_aligned, next_periodic, sample
from chargepoint.core.model import ConnectorState, ErrorCode, Measurand, ReadingContext, Sample
from chargepoint.core.scheduler import Duty
from chargepoint.errors import MeterError, StorageError
from chargepoint.ports import Instant, MeterReading

log = logging.getLogger(__name__)

S = ConnectorState


class Metering(FunctionalBlock):
    """Meter reads and what is recorded and sent of them."""

    __slots__ = (
        "_aligned",
        "_aligned_last",
        "_last_persist",
        "_persisted_wh",
        "_polls",
        "_samplers",
        "ctx",
        "faults",
    )

    def __init__(self, ctx: StationContext, faults: Faults) -> None:
        self.ctx = ctx
        self.faults = faults
        # Periodic and clock-aligned samples are duties on the process's scheduler: a task only while one is taken.
        self._samplers: dict[int, Duty[datetime]] = {}
        self._aligned: Duty[datetime] | None = None
        self._polls: list[Duty[int]] = []
        self._aligned_last: datetime | None = None
        self._last_persist: dict[int, float] = {}
        # The last register committed for each connector's transaction.
        self._persisted_wh: dict[int, int] = {}

    async def start(self) -> None:
        """Poll every meter, and take clock-aligned samples."""
        for cid in self.ctx.connectors:
            # A duty per meter (a task only while a poll runs), read first at once: a sleeping loop per
            # connector costs a task and its frames for the whole life of the station.
            # Twins whose reads never need a task (``Instant``) are polled inline: no task per poll unless it waits.
            ports = self.ctx.ports[cid]
            inline = all(isinstance(p, Instant) and p.instant for p in (ports.meter, ports.relay))
            poll = self.ctx.duty(self._meter_plan(cid), self._poll_meter, f"meter-{cid}", inline=inline)
            self._polls.append(poll)
            self.ctx.supervised_duties.append(poll)
            poll.start(at_once=True)
        self._aligned = self.ctx.duty(self._aligned_plan, self._clock_aligned, "clock-aligned")
        self.ctx.settings.listeners.append(self._setting_changed)
        self._aligned.start()

    def halt(self) -> list[asyncio.Task[Any]]:
        """No more samples: the duties stop; the samples being taken are returned to be cancelled."""
        with contextlib.suppress(ValueError):
            self.ctx.settings.listeners.remove(self._setting_changed)
        duties: list[Duty[Any]] = [
            *self._polls,
            *self._samplers.values(),
            *([self._aligned] if self._aligned is not None else []),
        ]
        return [task for duty in duties if (task := duty.stop()) is not None]

    def _setting_changed(self, name: str) -> None:
        """An interval changed: the duties that depend on it plan their next sample again."""
        if name == "meter_value_sample_interval_s":
            for duty in self._samplers.values():
                duty.reschedule()
        elif name == "clock_aligned_data_interval_s" and self._aligned is not None:
            self._aligned.reschedule()

    def _meter_plan(self, cid: int) -> Callable[[], tuple[float, int]]:
        """The plan of connector ``cid``'s meter poll: every ``meter_poll_s`` after the last one ended."""
        poll_s = self.ctx.timing.meter_poll_s
        return lambda: (poll_s, cid)

    async def _poll_meter(self, cid: int) -> None:
        """One poll cycle: the meter, the relay's mirror contact, the store's space. A crash (a bug, an unexpected
        driver error) faults the connector, which opens its relay; the next poll follows as planned. A poll
        cancelled by a bug is skipped (the next follows: the meter stays watched). A ``BaseException`` (a driver's
        ``SystemExit``, ``KeyboardInterrupt``, a library's own) faults the connector, then ends the polls for good
        (the duty is dead: ``loops_alive()`` turns false and the systemd watchdog restarts the agent)."""
        try:
            await self.read_meter(cid)
            await self.faults.check_relay(cid)
            if self.ctx.storage_faulted(
                self.ctx.connectors[cid]
            ):  # probe_storage's own test, without a coroutine
                await self.faults.probe_storage(cid)
        except Exception as exc:
            log.exception("connector %s: meter poll crashed", cid)
            await self.ctx.raise_fault(cid, ErrorCode.INTERNAL_ERROR, f"meter: {type(exc).__name__}"[:50])
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            await self.ctx.loop_ended(cid, "meter", exc)
            raise

    async def read_meter(self, cid: int) -> MeterReading | None:
        """Read one connector's meter, tracking failures; None if it failed."""
        ctx = self.ctx
        conn = ctx.connectors[cid]
        try:
            reading = await ctx.ports[cid].meter.read()
            if not math.isfinite(reading.energy_wh) or reading.energy_wh < 0:
                raise MeterError(f"implausible energy register {reading.energy_wh!r}")
            reading = finite(reading)
        except Exception as exc:  # the driver boundary: any failure to read counts as a failed cycle
            conn.meter_failures += 1
            if (
                conn.meter_failures >= ctx.timing.meter_failures_for_fault
                and ErrorCode.POWER_METER_FAILURE not in conn.faults
            ):
                log.error("meter %s failed %s read cycles: %s", cid, conn.meter_failures, exc)
                await ctx.raise_fault(cid, ErrorCode.POWER_METER_FAILURE, str(exc)[:50])
            return None
        previous = ctx.last_reading.get(cid)
        if previous is not None and reading.energy_wh < previous.energy_wh and conn.transaction is not None:
            # The register never goes backwards within a session: keep the larger value.
            reading = MeterReading(
                previous.energy_wh,
                reading.power_w,
                reading.voltage_v,
                reading.current_a,
                reading.frequency_hz,
                reading.soc_percent,
            )
        ctx.last_reading[cid] = reading
        conn.meter_failures = 0
        if ErrorCode.POWER_METER_FAILURE in conn.faults:
            await self.faults.clear_fault(cid, ErrorCode.POWER_METER_FAILURE)
        self._track_ev_draw(conn, reading)
        if conn.transaction is not None:  # (both do nothing without one: no coroutine per idle poll)
            await self._persist_meter(conn, reading)
            await self._check_invalid_energy(conn, reading)
        return reading

    def _track_ev_draw(self, conn: Connector, reading: MeterReading) -> None:
        # No power through an open relay says nothing about the EV.
        if reading.power_w is None or not self.ctx.ports[conn.id].relay.closed:
            return
        drawing = reading.power_w > self.ctx.timing.ev_suspend_threshold_w
        if conn.state is S.CHARGING and not drawing:
            conn.ev_suspend()
        elif conn.state is S.SUSPENDED_EV and drawing:
            conn.ev_resume()

    def _loop_time(self) -> float:
        return asyncio.get_running_loop().time()

    async def _persist_meter(self, conn: Connector, reading: MeterReading) -> None:
        tx = conn.transaction
        if tx is None:
            return
        if self.ctx.store.low_space and not self.ctx.storage_faulted(conn):
            # Another write found the disk full: this session stops too, at once rather than at its next record.
            await self._stop_charging_unrecorded(conn)
            return
        loop_now = self._loop_time()
        if loop_now - self._last_persist.get(conn.id, 0.0) < self.ctx.timing.persist_meter_s:
            return
        energy_wh = round(reading.energy_wh)
        if self.ctx.storage_faulted(conn) and energy_wh <= self._persisted_wh.get(conn.id, -1):
            return  # relay open for a full disk: nothing new to record, keep the reserve
        self._last_persist[conn.id] = loop_now
        await self._record_meter(conn, tx, energy_wh, self.ctx.now())

    def transaction_recorded(self, cid: int, meter_start_wh: int) -> None:
        """A transaction's start is on disk with register ``meter_start_wh``: the next persist counts from now."""
        self._persisted_wh[cid] = meter_start_wh
        self._last_persist[cid] = self._loop_time()

    async def _record_meter(
        self,
        conn: Connector,
        tx: ActiveTransaction,
        energy_wh: int,
        at: datetime,
        *,
        message: TransactionUpdated | None = None,
        stop_data: Sample | None = None,
    ) -> bool:
        """Persist a running transaction's register (and a sample), awaiting the commit off the event loop.

        A session never charges unrecorded: if the store cannot take the record, or took it only on its reserve
        because the disk is full, the connector faults (InternalError, relay open) until space returns; the
        register after the open is written on the reserve, so even a crash then ends the transaction with a
        meterStop no lower than the energy delivered. Returns True if the record was committed.
        """
        store = self.ctx.store
        mark = store.mark()
        store.record_meter(tx.local_id, energy_wh, at, message=message, stop_data=stop_data)
        committed = True
        try:
            await store.flush(since=mark)
            self._persisted_wh[conn.id] = max(energy_wh, self._persisted_wh.get(conn.id, 0))
        except StorageError:
            log.exception("could not record the meter of transaction %s", tx.local_id)
            committed = False
        if (not committed or store.low_space) and not self.ctx.storage_faulted(conn):
            await self._stop_charging_unrecorded(conn)
        return committed

    async def _stop_charging_unrecorded(self, conn: Connector) -> None:
        """The disk is full under a running session: open the relay (fault InternalError, cleared by itself when
        space returns, which resumes charging) and persist the register as it stands after the open."""
        log.error(
            "connector %s: the store cannot record this session; relay opened until space returns", conn.id
        )
        await self.ctx.raise_fault(conn.id, ErrorCode.INTERNAL_ERROR, STORAGE_FAULT)
        tx = conn.transaction
        if tx is None:
            return
        await self.read_meter(conn.id)
        energy_wh = self.current_energy_wh(conn.id)
        if energy_wh > self._persisted_wh.get(conn.id, -1):
            store = self.ctx.store
            mark = store.mark()
            store.record_meter(tx.local_id, energy_wh, self.ctx.now())
            try:
                await store.flush(since=mark)
                self._persisted_wh[conn.id] = energy_wh
            except StorageError:
                log.error(
                    "transaction %s: register %s Wh could not be written either", tx.local_id, energy_wh
                )

    async def _check_invalid_energy(self, conn: Connector, reading: MeterReading) -> None:
        tx = conn.transaction
        if tx is None or tx.authorized or conn.state is S.SUSPENDED_EVSE:
            return
        # MaxEnergyOnInvalidId: an id found invalid after start may charge up to this much, then is suspended.
        limit = self.ctx.settings.get_int("max_energy_on_invalid_id_wh")
        if reading.energy_wh - tx.meter_start_wh >= limit and conn.can("evse_suspend"):
            await self.ctx.open_relay(conn.id)
            conn.evse_suspend()

    def current_energy_wh(self, cid: int) -> int:
        """The last good meter register of a connector, in Wh."""
        reading = self.ctx.last_reading.get(cid)
        return round(reading.energy_wh) if reading else 0

    def end_values(self, cid: int, now: datetime) -> Sample | None:
        """The transaction-end sample of StopTxnSampledData, if any is configured."""
        measurands = self.ctx.settings.measurands("stop_txn_sampled_data")
        reading = self.ctx.last_reading.get(cid)
        if not measurands or reading is None:
            return None
        return sample(reading, measurands, ReadingContext.TRANSACTION_END, now)

    # samples
    def start_sampling(self, conn: Connector) -> None:
        """Sample ``conn``'s running transaction every MeterValueSampleInterval."""
        tx = conn.transaction
        assert tx is not None
        last: list[datetime] = []  # the instant of the last sample, so a timer fired early never repeats it

        def plan() -> tuple[float, datetime] | None:
            """MeterValueSampleInterval counts from the transaction start (OCPP 1.6 §3.16.1)."""
            interval = self.ctx.settings.get_int("meter_value_sample_interval_s")
            if conn.transaction is not tx or interval <= 0:
                return None
            now = self.ctx.now()
            due = next_periodic(tx.started_at, now if not last or now > last[0] else last[0], interval)
            return (due - now).total_seconds(), due

        def work(due: datetime) -> Coroutine[Any, Any, None] | None:
            last[:] = [due]
            if conn.transaction is not tx:
                return None
            reading = self.ctx.last_reading.get(conn.id)
            if reading is None or conn.meter_failures >= self.ctx.timing.meter_failures_for_fault:
                return None  # no stale values while the meter is failing
            return self._record_sample(
                conn,
                tx,
                reading,
                due,
                ReadingContext.SAMPLE_PERIODIC,
                "meter_values_sampled_data",
                "stop_txn_sampled_data",
            )

        self.stop_sampling(conn.id)
        duty = self._samplers[conn.id] = self.ctx.duty(plan, work, f"sampler-{conn.id}")
        duty.start()

    def stop_sampling(self, cid: int) -> None:
        """The transaction on ``cid`` ends: no more periodic samples."""
        sampler = self._samplers.pop(cid, None)
        if sampler is not None:
            task = sampler.stop()
            if task is not None:
                task.cancel()

    async def _record_sample(
        self,
        conn: Connector,
        tx: ActiveTransaction,
        reading: MeterReading,
        at: datetime,
        context: ReadingContext,
        sampled_key: str,
        stop_key: str,
    ) -> None:
        measurands = self.ctx.settings.measurands(sampled_key)
        stop_measurands = self.ctx.settings.measurands(stop_key)
        message = None
        if measurands:
            message = TransactionUpdated(
                tx.transaction_id,
                conn.id,
                (sample(reading, measurands, context, at),),
                offline=not self.ctx.csms.online,
            )
        stop_data = sample(reading, stop_measurands, context, at) if stop_measurands else None
        if self.ctx.storage_faulted(conn):
            # The disk is full and the relay open, so no energy flows: the register at the open is on disk (on the
            # store's reserve), and samples wait for space rather than use that reserve up.
            log.info(
                "connector %s: sample at %s not recorded while the disk is full", conn.id, at.isoformat()
            )
            return
        if not await self._record_meter(
            conn, tx, round(reading.energy_wh), at, message=message, stop_data=stop_data
        ):
            return
        self._last_persist[conn.id] = self._loop_time()
        if message is not None:
            self.ctx.csms.outbox_changed()

    def _aligned_plan(self) -> tuple[float, datetime] | None:
        """The next boundary counted from midnight (none while ClockAlignedDataInterval is 0)."""
        interval = self.ctx.settings.get_int("clock_aligned_data_interval_s")
        if interval <= 0:
            return None
        now = self.ctx.now()
        last = self._aligned_last
        due = next_aligned(now if last is None or now > last else last, interval)
        return (due - now).total_seconds(), due

    def _clock_aligned(self, due: datetime) -> Coroutine[Any, Any, None]:
        self._aligned_last = due
        return self._take_aligned(due)

    async def _take_aligned(self, due: datetime) -> None:
        """Clock-aligned samples at a boundary counted from midnight, stamped exactly on the boundary."""
        ctx = self.ctx
        for cid, conn in ctx.connectors.items():
            reading = ctx.last_reading.get(cid)
            if reading is None or conn.meter_failures >= ctx.timing.meter_failures_for_fault:
                continue
            tx = conn.transaction
            if tx is not None:
                await self._record_sample(
                    conn,
                    tx,
                    reading,
                    due,
                    ReadingContext.SAMPLE_CLOCK,
                    "meter_values_aligned_data",
                    "stop_txn_aligned_data",
                )
                continue
            measurands = ctx.settings.measurands("meter_values_aligned_data")
            if not measurands:
                continue
            try:
                ctx.store.queue(
                    MeterReadings(cid, (sample(reading, measurands, ReadingContext.SAMPLE_CLOCK, due),))
                )
            except StorageError:
                log.exception("could not queue clock-aligned values of connector %s", cid)
                continue
            ctx.csms.outbox_changed()

    async def trigger_update(self, cid: int) -> bool:
        """TriggerMessage TransactionEvent (2.0.1 F06): the running transaction's sampled values now, queued as an
        Updated event with context Trigger, so it takes its place (and its seqNo) in the transaction's sequence like
        every other event. False when no transaction runs there or nothing was read yet."""
        conn = self.ctx.connectors[cid]
        tx = conn.transaction
        reading = self.ctx.last_reading.get(cid)
        if tx is None or reading is None or self.ctx.storage_faulted(conn):
            return False
        measurands = self.ctx.settings.measurands("meter_values_sampled_data") or (
            Measurand.ENERGY_ACTIVE_IMPORT_REGISTER,  # the event's meterValue needs a value: the register
        )
        at = self.ctx.now()
        message = TransactionUpdated(
            tx.transaction_id,
            cid,
            (sample(reading, measurands, ReadingContext.TRIGGER, at),),
            offline=not self.ctx.csms.online,
        )
        if not await self._record_meter(conn, tx, round(reading.energy_wh), at, message=message):
            return False
        self.ctx.csms.outbox_changed()
        return True

    def sample_now(self, cid: int) -> tuple[Sample | None, int | None]:
        """A triggered sample of a connector's sampled measurands and its transaction's local id."""
        reading = self.ctx.last_reading.get(cid)
        if reading is None:
            return None, None
        measurands = self.ctx.settings.measurands("meter_values_sampled_data")
        tx = self.ctx.connectors[cid].transaction
        return sample(reading, measurands, ReadingContext.TRIGGER, self.ctx.now()), (
            tx.local_id if tx else None
        )
