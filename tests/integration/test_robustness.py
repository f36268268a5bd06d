"""Hardware and storage misbehaving at the worst moment: the relay stays safe and nothing is lost."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from backend_stub.ocpp.server import CallErrorReply, utc_now_iso
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.agent import Agent
from chargepoint.core.blocks.sessions import REREAD_GRACE_S
from chargepoint.core.events import MeterReadings, OutboxKind, SecurityEvent
from chargepoint.core.model import ErrorCode, Measurand, ReadingContext, Sample, SampledValue
from chargepoint.core.station import StationTiming
from chargepoint.store import Store
from hardware.sim import SimMeter, SimRelay
from tests.integration.conftest import RunningAgent, StartAgent, agent_config, until
from tests.integration.octt_support import quiet, start_session
from tests.integration.test_bad_input import _fill, small_disk  # noqa: F401  (fixture)


def _relay(a: RunningAgent) -> SimRelay:
    relay = a.sim().relay
    assert relay is not None
    return relay


def _meter(a: RunningAgent) -> SimMeter:
    meter = a.sim().meter
    assert meter is not None
    return meter


async def test_fault_during_a_slow_relay_close_leaves_the_relay_open(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await start_agent()
    _relay(a).close_delay_s = 0.3
    a.swipe("SLOWRELAY")
    await a.wait_state("PREPARING")
    a.plug()
    await until(lambda: bool(cs.calls("StartTransaction")) or a.station.connectors[1].transaction is not None)
    await a.station.raise_fault(1, ErrorCode.GROUND_FAILURE, "test")
    await asyncio.sleep(0.5)  # the close completes after the fault
    assert a.state() == "FAULTED"
    assert not _relay(a).closed
    a.unplug()
    stop = await cs.wait_for_call("StopTransaction")
    assert stop.payload["reason"] == "EVDisconnected"
    assert not _relay(a).closed


async def test_unplug_during_a_slow_meter_read_never_closes_the_relay(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await start_agent()
    a.plug()
    await a.wait_state("PREPARING")
    _meter(a).read_delay_s = 0.5
    a.swipe("SLOWMETER")
    await asyncio.sleep(0.2)  # the start is reading the meter now
    a.unplug()
    closes = _relay(a).switch_count
    await asyncio.sleep(0.8)
    assert _relay(a).switch_count == closes and not _relay(a).closed
    await a.wait_state("AVAILABLE")
    assert not cs.calls("StartTransaction")


async def test_meter_driver_errors_and_garbage_are_meter_failures_not_crashes(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await start_agent()
    a.plug()
    a.swipe("METERBUG")
    await a.wait_state("CHARGING")
    for knob in ("driver_bug", "garbage"):
        m = len(cs.log)
        setattr(_meter(a), knob, True)
        await cs.wait_for_call(
            "StatusNotification", after=m, where=lambda p: p["errorCode"] == "PowerMeterFailure"
        )
        assert not _relay(a).closed
        setattr(_meter(a), knob, False)
        await a.wait_state("CHARGING")  # the meter loop survived and cleared the fault
        assert _relay(a).closed
    sent = [json.dumps(f.payload) for f in cs.calls("MeterValues")]
    assert not any("nan" in s.lower() for s in sent)


async def test_a_message_that_cannot_be_encoded_does_not_block_the_queue(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """A poison message (here: an over-long idTag left by an older version) goes to the dead letters."""

    def poison(agent: Agent) -> None:
        assert agent.config.storage.path
        from chargepoint.store import Store

        store = Store(agent.config.storage.path)
        payload = {"connector_id": 1, "id_tag": "X" * 30, "meter_start_wh": 0, "timestamp": utc_now_iso()}
        # Writes go through the store's writer thread (a private helper here: no public API queues bad data).
        store._submit(lambda db: store._enqueue(db, OutboxKind.START, None, json.dumps(payload))).result()
        store.close()

    a = await start_agent(before_run=poison)
    a.plug()
    a.swipe("AFTERPOISON")
    start = await cs.wait_for_call("StartTransaction")
    assert start.payload["idTag"] == "AFTERPOISON"
    store = a.agent.store
    assert store is not None
    assert [d["kind"] for d in store.dead_letters()] == ["start"]
    assert "not encodable" in store.dead_letters()[0]["reason"]


async def test_queued_events_reach_the_csms_as_16_frames_in_order(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """Typed outbox events queued while the agent was down: the 1.6 adapter sends each as its frame, in order."""
    at = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)

    def queue(agent: Agent) -> None:
        assert agent.config.storage.path
        from chargepoint.store import Store

        store = Store(agent.config.storage.path)
        store.queue(SecurityEvent("FirmwareUpdated", at, "test"))
        value = SampledValue(Measurand.ENERGY_ACTIVE_IMPORT_REGISTER, 1234.0)
        store.queue(MeterReadings(1, (Sample(at, ReadingContext.SAMPLE_CLOCK, (value,)),)))
        store.close()

    a = await start_agent(before_run=queue)
    security = await cs.wait_for_call("SecurityEventNotification")
    assert security.payload == {
        "type": "FirmwareUpdated",
        "timestamp": "2024-05-01T10:00:00.000Z",
        "techInfo": "test",
    }
    meter = await cs.wait_for_call("MeterValues")
    assert meter.payload["connectorId"] == 1 and "transactionId" not in meter.payload
    assert float(meter.payload["meterValue"][0]["sampledValue"][0]["value"]) == 1234.0
    assert cs.log.index(security) < cs.log.index(meter)
    store = a.agent.store
    assert store is not None and store.dead_letters() == []


async def test_an_out_of_range_boot_interval_is_clamped_not_fatal(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    def boot(cp_id: str, payload: dict[str, Any]) -> Any:
        return {"status": "Accepted", "currentTime": utc_now_iso(), "interval": 10_000_000}

    cs.handlers["BootNotification"] = boot
    a = await start_agent()
    assert a.station.settings.get_int("heartbeat_interval_s") == 86400
    assert not a.task.done()


async def test_a_long_station_id_keeps_unique_ids_within_36_characters(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    await start_agent(cp_id="C" * 48)
    await cs.wait_for_call("StatusNotification")
    assert all(len(f.unique_id or "") <= 36 for f in cs.log)


async def test_a_stop_on_a_full_disk_is_kept_and_delivered_when_space_returns(
    cs: CentralSystem,
    start_agent: StartAgent,
    small_disk: Path,  # noqa: F811
) -> None:
    a = await start_agent(db=small_disk / "agent.db")
    a.plug()
    a.swipe("FULLSTOP")
    await a.wait_state("CHARGING")
    await cs.wait_for_call("StartTransaction")
    _fill(small_disk / "filler")
    a.swipe("FULLSTOP")
    faulted = await cs.wait_for_call("StatusNotification", where=lambda p: p["status"] == "Faulted")
    assert faulted.payload["errorCode"] == "InternalError"
    assert not _relay(a).closed
    a.swipe("FULLSTOP")  # no new session over an unrecorded end
    await asyncio.sleep(0.3)
    assert len(cs.calls("StartTransaction")) == 1
    (small_disk / "filler").unlink()
    stop = await cs.wait_for_call("StopTransaction", timeout=10)
    assert stop.payload["reason"] == "Local"
    await a.wait_state("FINISHING")
    await a.stop()


async def test_messages_of_a_transaction_the_csms_refused_to_start_are_not_sent_with_made_up_ids(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    from backend_stub.ocpp.server import CallErrorReply

    def refuse(cp_id: str, payload: dict[str, Any]) -> Any:
        raise CallErrorReply("InternalError", "no")

    cs.handlers["StartTransaction"] = refuse
    a = await start_agent(
        settings={
            "transaction_message_attempts": 2,
            "transaction_message_retry_interval_s": 1,
            "meter_value_sample_interval_s": 1,
        }
    )
    a.plug()
    a.swipe("REFUSED")
    await a.wait_state("CHARGING")
    # Issue 10, finding 13: once its StartTransaction is a dead letter the session stops by itself (it used to
    # charge on until the driver stopped it); its MeterValues and StopTransaction follow it into the dead letters.
    await a.wait_state("FINISHING", timeout=10)
    store = a.agent.store
    assert store is not None
    await until(lambda: store.outbox_size() == 0, 5, "the outbox never emptied")
    kinds = [d["kind"] for d in store.dead_letters()]
    assert kinds[0] == "start" and "stop" in kinds
    assert not cs.calls("StopTransaction")
    assert all(f.payload.get("transactionId", 0) >= 0 for f in cs.calls("MeterValues"))


async def test_a_local_list_beyond_its_maximum_length_is_refused_whole(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await start_agent()
    limit = a.station.settings.get_int("local_auth_list_max_length")
    batch = a.station.settings.get_int("send_local_list_max_length")
    version = 1
    for start in range(0, limit, batch):
        entries = [{"idTag": f"T{start + i}", "idTagInfo": {"status": "Accepted"}} for i in range(batch)]
        answer = await cs.call(
            "CP-1",
            "SendLocalList",
            {"listVersion": version, "updateType": "Differential", "localAuthorizationList": entries},
        )
        assert answer["status"] == "Accepted"
        version += 1
    answer = await cs.call(
        "CP-1",
        "SendLocalList",
        {
            "listVersion": version,
            "updateType": "Differential",
            "localAuthorizationList": [{"idTag": "ONE-TOO-MANY", "idTagInfo": {"status": "Accepted"}}],
        },
    )
    assert answer["status"] == "Failed"
    assert await cs.call("CP-1", "GetLocalListVersion", {}) == {"listVersion": version - 1}


async def test_a_card_left_on_the_reader_is_not_a_stop_when_the_reader_comes_back(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await start_agent()
    a.plug()
    a.swipe("RESTING")
    await a.wait_state("CHARGING")
    reader = a.sim().reader
    assert reader is not None
    reader.fail()
    await cs.wait_for_call("StatusNotification", where=lambda p: p["errorCode"] == "ReaderFailure")
    reader.fail(False)
    await cs.wait_for_call("StatusNotification", where=lambda p: p["errorCode"] == "NoError")
    reader.swipe("RESTING")  # the reader reports the card that never left it
    await asyncio.sleep(0.3)
    assert a.state() == "CHARGING" and not cs.calls("StopTransaction")
    await asyncio.sleep(REREAD_GRACE_S)
    reader.swipe("RESTING")  # a real presentation later still ends the session
    stop = await cs.wait_for_call("StopTransaction")
    assert stop.payload["reason"] == "Local"


async def test_a_contactor_that_closes_by_itself_while_idle_is_a_power_switch_failure(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    a = await start_agent()
    _relay(a).contact = True  # welded, or a stuck relay board: closed although commanded open
    status = await cs.wait_for_call(
        "StatusNotification", where=lambda p: p["errorCode"] == "PowerSwitchFailure"
    )
    assert status.payload["status"] == "Faulted"
    a.plug()
    a.swipe("NOTNOW")
    await asyncio.sleep(0.3)
    assert not cs.calls("StartTransaction")  # no session on a contactor that is not under control


class _GatedStore(Store):
    """A real store whose writer thread can be held back right after a periodic sample's record (the slow fsync
    of a loaded machine, made deterministic): while ``gate`` is closed, the sampler waits for its commit."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.gate = threading.Event()
        self.gate.set()
        self.sampler_waiting = threading.Event()

    def record_meter(self, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().record_meter(*args, **kwargs)
        task = asyncio.current_task()
        if not self.gate.is_set() and task is not None and task.get_name() == "sampler-1":
            self._submit(lambda db: self.gate.wait(10))  # the writer thread stalls here until the gate opens
            self.sampler_waiting.set()
        return future


async def test_a_card_stop_survives_the_sampler_cancelled_mid_commit(
    cs: CentralSystem, tmp_path: Path
) -> None:
    """The driver's card stops a session while the periodic sampler waits for its commit: stopping the sampler
    cancels its wait, and that once cancelled the commit's future under the stop too, so the stop died silently
    (no StopTransaction, transaction left open; the TC_032_2 resume flake under load)."""
    db = tmp_path / "agent.db"
    store = _GatedStore(db)
    config = agent_config(cs.url, db, settings={"meter_value_sample_interval_s": 1})
    # The meter loop persists only at the start, so the sampler's record is the last write the stop waits for.
    timing = StationTiming(meter_poll_s=0.05, persist_meter_s=3600)
    agent = Agent(config, timing=timing, store_factory=lambda: store)
    a = RunningAgent(agent, asyncio.create_task(agent.run()), cs)
    try:
        await until(lambda: agent.started.is_set(), 5, "agent did not start")
        await a.wait_booted()
        _, tx_id = await start_session(a, cs)
        store.gate.clear()
        await until(store.sampler_waiting.is_set, 5, "the sampler never recorded a sample")
        a.swipe("TAG1")
        await until(lambda: not _relay(a).closed, 5, "the card did not open the relay")
        await quiet(0.3)  # the sampler's cancellation reaches the commit's future meanwhile (before the fix)
        store.gate.set()
        stop = await cs.wait_for_call("StopTransaction", timeout=5)
        assert stop.payload["transactionId"] == tx_id and stop.payload["reason"] == "Local"
        await until(lambda: a.station.connectors[1].transaction is None, 5, "transaction left open")
    finally:
        store.gate.set()
        await a.stop()
    assert cs.violations == []


async def test_an_answer_over_bytes_per_message_is_an_internal_error_not_a_dropped_link(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """The last guard on every answer: a CALLRESULT over BytesPerMessage (here a station built with a 2,000-byte
    limit, which the full GetConfiguration exceeds) is never sent; the CSMS gets an InternalError and the link
    stays up, so the next request is answered on the same connection."""
    a = await start_agent()
    a.station.settings._values["bytes_per_message"] = 2_000  # read-only to the CSMS: a station built smaller
    with pytest.raises(CallErrorReply) as err:
        await cs.call("CP-1", "GetConfiguration", {})
    assert err.value.code == "InternalError"
    answer = await cs.call("CP-1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert [k["key"] for k in answer["configurationKey"]] == ["HeartbeatInterval"]
    link = a.agent.link
    assert link is not None and link.connections == 1


async def test_frequency_in_1_6_has_no_unit(cs: CentralSystem, start_agent: StartAgent) -> None:
    """OCPP 1.6 §7.31: UnitOfMeasure has no Hertz; a Frequency value carries no unit (it is Hertz)."""
    a = await start_agent()
    for key, value in (
        ("MeterValuesSampledData", "Energy.Active.Import.Register,Frequency"),
        ("MeterValueSampleInterval", "1"),
    ):
        assert await cs.call("CP-1", "ChangeConfiguration", {"key": key, "value": value}) == {
            "status": "Accepted"
        }
    await start_session(a, cs)
    frame = await cs.wait_for_call(
        "MeterValues",
        where=lambda p: any(
            v.get("measurand") == "Frequency" for mv in p["meterValue"] for v in mv["sampledValue"]
        ),
    )
    [freq] = [
        v
        for mv in frame.payload["meterValue"]
        for v in mv["sampledValue"]
        if v.get("measurand") == "Frequency"
    ]
    assert "unit" not in freq


def _phase_sample(at: datetime) -> Sample:
    """A stop-data sample of every measurand on every phase (what StopTxnSampledData may ask for)."""
    values = [SampledValue(Measurand.ENERGY_ACTIVE_IMPORT_REGISTER, 12345.0)]
    for phase in ("L1", "L2", "L3"):
        values += [
            SampledValue(Measurand.POWER_ACTIVE_IMPORT, 2300.0, phase),
            SampledValue(Measurand.CURRENT_IMPORT, 10.0, phase),
            SampledValue(Measurand.VOLTAGE, 230.0, phase),
        ]
    values += [SampledValue(Measurand.FREQUENCY, 50.0), SampledValue(Measurand.SOC, 55.0)]
    return Sample(at, ReadingContext.SAMPLE_PERIODIC, tuple(values))


def keep_stop_data(a: RunningAgent, samples: int = 100) -> None:
    """Give connector 1's running transaction ``samples`` stop-data samples, one a minute from 2026-01-01."""
    tx = a.station.connectors[1].transaction
    store = a.agent.store
    assert tx is not None and store is not None
    first = datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(samples):
        at = first + timedelta(minutes=n)
        store.record_meter(tx.local_id, 1000 + n, at, stop_data=_phase_sample(at))


async def test_a_stop_transaction_with_much_stop_data_fits_the_frame_limit(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """A long session with StopTxnSampledData on every measurand and phase keeps 100 samples (~150 KB of
    transactionData): StopTransaction keeps the newest that fit in BytesPerMessage, so the CSMS (64 KiB frames)
    takes it instead of dropping the link, and the outbox is not stuck resending it."""
    a = await start_agent()
    _, tx_id = await start_session(a, cs)
    keep_stop_data(a)  # 100 samples, one a minute from 2026-01-01T00:00Z
    a.unplug()
    stop = await cs.wait_for_call("StopTransaction", where=lambda p: p["transactionId"] == tx_id)
    assert len(stop.raw) <= 65_000
    data = stop.payload["transactionData"]
    assert 0 < len(data) < 100
    # The newest kept, the oldest dropped.
    assert data[-1]["timestamp"] == "2026-01-01T01:39:00.000Z"
    assert data[0]["timestamp"] > "2026-01-01T00:00:00.000Z"
    link = a.agent.link
    assert link is not None and link.connections == 1
