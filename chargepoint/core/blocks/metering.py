"""Metering block: polling each meter, the durable register of running transactions, periodic samples counted from
the transaction start, clock-aligned samples, triggered samples, and MaxEnergyOnInvalidId."""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import datetime
from typing import Any

from chargepoint.core.blocks.context import STORAGE_FAULT, FunctionalBlock, StationContext, log_crash
from chargepoint.core.blocks.faults import Faults
from chargepoint.core.connector import ActiveTransaction, Connector
from chargepoint.core.events import MeterReadings, TransactionUpdated
from chargepoint.core.metering import finite, next_aligned, next_periodic, sample
from chargepoint.core.model import ConnectorState, ErrorCode, ReadingContext, Sample
from chargepoint.errors import MeterError, StorageError
from chargepoint.ports import MeterReading

log = logging.getLogger(__name__)

S = ConnectorState


class Metering(FunctionalBlock):
    """Meter reads and what is recorded and sent of them."""

    def __init__(self, ctx: StationContext, faults: Faults) -> None:
        self.ctx = ctx
        self.faults = faults
        self._samplers: dict[int, asyncio.Task[Any]] = {}
        self._last_persist: dict[int, float] = {}
        # The last register committed for each connector's transaction.
        self._persisted_wh: dict[int, int] = {}

    async def start(self) -> None:
        """Poll every meter, and take clock-aligned samples."""
        for cid in self.ctx.connectors:
            self.ctx.supervise(self._poll_meter, cid, "meter")
        self.ctx.spawn(self._clock_aligned(), "clock-aligned")

    def halt(self) -> list[asyncio.Task[Any]]:
        """The transactions' samplers."""
        return list(self._samplers.values())

    async def _poll_meter(self, cid: int) -> None:
        while True:
            await self.read_meter(cid)
            await self.faults.check_relay(cid)
            await self.faults.probe_storage(cid)
            await asyncio.sleep(self.ctx.timing.meter_poll_s)

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
            ctx.meter_failures[cid] += 1
            if (
                ctx.meter_failures[cid] >= ctx.timing.meter_failures_for_fault
                and ErrorCode.POWER_METER_FAILURE not in conn.faults
            ):
                log.error("meter %s failed %s read cycles: %s", cid, ctx.meter_failures[cid], exc)
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
        ctx.meter_failures[cid] = 0
        if ErrorCode.POWER_METER_FAILURE in conn.faults:
            await self.faults.clear_fault(cid, ErrorCode.POWER_METER_FAILURE)
        self._track_ev_draw(conn, reading)
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
        task = asyncio.get_running_loop().create_task(
            self._sample_periodically(conn, tx), name=f"sampler-{conn.id}"
        )
        task.add_done_callback(log_crash)
        self._samplers[conn.id] = task

    def stop_sampling(self, cid: int) -> None:
        """The transaction on ``cid`` ends: no more periodic samples."""
        sampler = self._samplers.pop(cid, None)
        if sampler is not None:
            sampler.cancel()

    async def _sample_periodically(self, conn: Connector, tx: ActiveTransaction) -> None:
        """MeterValueSampleInterval counts from the transaction start (OCPP 1.6 §3.16.1)."""
        ctx = self.ctx
        while conn.transaction is tx:
            interval = ctx.settings.get_int("meter_value_sample_interval_s")
            due = next_periodic(tx.started_at, ctx.now(), interval) if interval > 0 else None
            if not await self._wait_until(due, "meter_value_sample_interval_s") or due is None:
                continue
            if conn.transaction is not tx:
                return
            reading = ctx.last_reading.get(conn.id)
            if reading is None or ctx.meter_failures[conn.id] >= ctx.timing.meter_failures_for_fault:
                continue  # no stale values while the meter is failing
            await self._record_sample(
                conn,
                tx,
                reading,
                due,
                ReadingContext.SAMPLE_PERIODIC,
                "meter_values_sampled_data",
                "stop_txn_sampled_data",
            )

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

    async def _clock_aligned(self) -> None:
        """Clock-aligned samples at boundaries counted from midnight, stamped exactly on the boundary."""
        ctx = self.ctx
        while True:
            interval = ctx.settings.get_int("clock_aligned_data_interval_s")
            due = next_aligned(ctx.now(), interval) if interval > 0 else None
            if not await self._wait_until(due, "clock_aligned_data_interval_s") or due is None:
                continue
            for cid, conn in ctx.connectors.items():
                reading = ctx.last_reading.get(cid)
                if reading is None or ctx.meter_failures[cid] >= ctx.timing.meter_failures_for_fault:
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

    async def _wait_until(self, due: datetime | None, setting: str) -> bool:
        """Sleep until ``due`` (forever if None); False if ``setting`` changed first, so the caller recomputes."""
        # A future, not an Event (~0.8 KB each, and every agent has one waiting).
        changed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def listener(name: str) -> None:
            if name == setting and not changed.done():
                changed.set_result(None)

        self.ctx.settings.listeners.append(listener)
        try:
            delay = None if due is None else max(0.0, (due - self.ctx.now()).total_seconds())
            async with asyncio.timeout(delay):
                await changed
            return False
        except TimeoutError:
            return True
        finally:
            self.ctx.settings.listeners.remove(listener)

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
