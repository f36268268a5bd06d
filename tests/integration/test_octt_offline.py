"""OCTT OCPP 1.6 charge-point cases about trouble: power loss, offline operation, faults, malformed frames."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from backend_stub.ocpp.server import NO_REPLY, CallErrorReply, utc_now_iso
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.agent import Agent
from chargepoint.core.blocks.sessions import REREAD_GRACE_S
from tests.integration.conftest import RunningAgent, StartAgent, until
from tests.integration.octt_support import (
    CALLERROR,
    CP,
    drop_violations,
    go_offline,
    go_online,
    incoming_calls,
    index,
    mark,
    outbox_empty,
    quiet,
    reply_from_charger,
    start_session,
    statuses,
    wait_status,
)

# ----------------------------------------------------------------------------------------------------------------
# Power loss
# ----------------------------------------------------------------------------------------------------------------


async def _power_cut(a: RunningAgent) -> None:
    """Stop an agent without any shutdown logic of its own (its task is cancelled, like a power cut)."""
    a.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await a.task


def _active_rows(db: Path) -> list[sqlite3.Row]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM transactions WHERE active = 1").fetchall()


async def test_tc_032_2_power_failure_stops_transaction(
    cs: CentralSystem, start_agent: StartAgent, tmp_path: Path
) -> None:
    """TC_032_2_CS Power failure boot charging point-configured to stop transaction(s)."""
    a = await start_agent(settings={"meter_value_sample_interval_s": 1})
    _, tx_id = await start_session(a, cs)
    await cs.wait_for_call("MeterValues", where=lambda p: p.get("transactionId") == tx_id, timeout=3)
    await quiet(0.3)  # some charging after the last sample, persisted by the meter loop
    await _power_cut(a)
    rows = _active_rows(tmp_path / "agent.db")
    assert len(rows) == 1 and rows[0]["csms_id"] == tx_id
    last_meter = rows[0]["last_meter_wh"]
    m = mark(cs)
    await start_agent()
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["reason"] == "PowerLoss" and stop.payload["transactionId"] == tx_id
    assert stop.payload["meterStop"] == last_meter
    boot = cs.calls("BootNotification")[-1]
    assert index(cs, boot) < index(cs, stop), "nothing is sent before the BootNotification"
    await quiet(0.5)
    assert len(cs.calls("StopTransaction")) == 1
    assert _active_rows(tmp_path / "agent.db") == []


async def test_tc_032_2_power_failure_resumes_transaction(
    cs: CentralSystem, start_agent: StartAgent, tmp_path: Path
) -> None:
    """TC_032_2_CS Power failure boot charging point - ResumeTransactionsAfterPowerLoss, EV still plugged in: the session goes on."""
    settings = {"meter_value_sample_interval_s": 1, "resume_transactions_after_power_loss": True}
    a = await start_agent(settings=settings)
    _, tx_id = await start_session(a, cs)
    await cs.wait_for_call("MeterValues", where=lambda p: p.get("transactionId") == tx_id, timeout=3)
    await _power_cut(a)
    last_meter = _active_rows(tmp_path / "agent.db")[0]["last_meter_wh"]

    def ev_still_plugged(agent: Agent) -> None:
        sim = agent.sims[1]
        assert sim.plug is not None and sim.meter is not None
        sim.plug.set_plugged(True)
        sim.meter.energy_wh = last_meter  # a real meter keeps its register through a power cut

    m = mark(cs)
    b = await start_agent(settings=settings, before_run=ev_still_plugged)
    await b.wait_state("CHARGING")
    assert b.sim().relay.closed
    mv = await cs.wait_for_call("MeterValues", after=m, where=lambda p: "transactionId" in p, timeout=3)
    assert mv.payload["transactionId"] == tx_id
    assert not cs.calls("StopTransaction") and len(cs.calls("StartTransaction")) == 1
    # A card seen within REREAD_GRACE_S of the reader coming up is taken as the resting card re-read.
    await asyncio.sleep(REREAD_GRACE_S)
    b.swipe("TAG1")
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["transactionId"] == tx_id and stop.payload["reason"] == "Local"
    assert stop.payload["meterStop"] >= last_meter


async def test_tc_032_2_power_failure_resume_without_ev(
    cs: CentralSystem, start_agent: StartAgent, tmp_path: Path
) -> None:
    """TC_032_2_CS Power failure boot charging point - ResumeTransactionsAfterPowerLoss, but the EV is gone: PowerLoss stop."""
    settings = {"meter_value_sample_interval_s": 1, "resume_transactions_after_power_loss": True}
    a = await start_agent(settings=settings)
    _, tx_id = await start_session(a, cs)
    await _power_cut(a)
    m = mark(cs)
    b = await start_agent(settings=settings)
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["reason"] == "PowerLoss" and stop.payload["transactionId"] == tx_id
    await wait_status(cs, 1, "Available", after=m)
    assert b.station.connectors[1].transaction is None


async def test_tc_032_2_power_failure_during_offline_transaction(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_032_2_CS Power failure boot charging point - a transaction started offline and cut by the power failure."""
    a = await start_agent(settings={"allow_offline_tx_for_unknown_id": True})
    await go_offline(a, cs)
    a.plug()
    a.swipe("NEWCARD")
    await a.wait_state("CHARGING")
    await quiet(0.3)
    await _power_cut(a)
    m = mark(cs)
    cs.refuse_connections = False
    await start_agent()
    start = await cs.wait_for_call("StartTransaction", after=m)
    stop = await cs.wait_for_call("StopTransaction", after=m)
    tx_id = next(f for f in cs.log if f.direction == "out" and f.unique_id == start.unique_id).payload[
        "transactionId"
    ]
    assert stop.payload["transactionId"] == tx_id and stop.payload["reason"] == "PowerLoss"
    assert stop.payload["meterStop"] >= start.payload["meterStart"]


async def test_tc_034_power_failure_with_unavailable_status(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_034_CS Power Failure with Unavailable Status."""
    a = await start_agent()
    assert await cs.call(CP, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"}) == {
        "status": "Accepted"
    }
    for cid in (0, 1):
        await wait_status(cs, cid, "Unavailable")
    await _power_cut(a)
    m = mark(cs)
    await start_agent()
    boot = await cs.wait_for_call("BootNotification", after=m)
    for cid in (0, 1):
        await wait_status(cs, cid, "Unavailable", after=index(cs, boot))
    assert not [s for s in statuses(cs, 1, m) if s != "Unavailable"]


# ----------------------------------------------------------------------------------------------------------------
# Offline behaviour
# ----------------------------------------------------------------------------------------------------------------


async def test_tc_039_queued_messages_wait_for_boot_accepted(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_039_CS Offline Transaction - messages queued offline wait until the BootNotification is Accepted.

    The agent restarts while offline (a reconnect alone sends no BootNotification once this run was accepted,
    OCPP 1.6 §4.2), so the queue it left behind must wait for the new registration.
    """
    a = await start_agent(settings={"allow_offline_tx_for_unknown_id": True})
    await go_offline(a, cs)
    a.plug()
    a.swipe("NEWCARD")
    await a.wait_state("CHARGING")
    await a.stop()
    await start_agent(boot=False, settings={"allow_offline_tx_for_unknown_id": True})
    accept = False

    def boot(cp_id: str, payload: dict[str, Any]) -> Any:
        return {"status": "Accepted" if accept else "Pending", "currentTime": utc_now_iso(), "interval": 1}

    cs.handlers["BootNotification"] = boot
    m = mark(cs)
    cs.refuse_connections = False
    await cs.wait_for_call("BootNotification", after=m)
    await quiet(0.5)
    assert {f.action for f in incoming_calls(cs, m)} == {"BootNotification"}
    accept = True
    start = await cs.wait_for_call("StartTransaction", after=m, timeout=3)
    accepted = next(
        i
        for i, f in enumerate(cs.log)
        if f.direction == "out" and f.action == "BootNotification" and f.payload.get("status") == "Accepted"
    )
    assert accepted < index(cs, start)


def _tx_messages(cs: CentralSystem, after: int = 0) -> list[Any]:
    return [
        f
        for f in incoming_calls(cs, after)
        if f.action in ("StartTransaction", "MeterValues", "StopTransaction")
    ]


async def test_tc_036_connection_loss_during_transaction(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_036_CS Connection Loss During Transaction."""
    a = await start_agent(settings={"meter_value_sample_interval_s": 1})
    _, tx_id = await start_session(a, cs)
    await go_offline(a, cs)
    await quiet(1.5)  # samples are taken (and queued) while offline
    assert a.state() == "CHARGING" and a.sim().relay.closed, "charging goes on while offline"
    m = mark(cs)
    await go_online(a, cs)
    await outbox_empty(a)
    queued = [f for f in incoming_calls(cs, m) if f.action == "MeterValues"]
    assert queued, "the values sampled offline were not delivered"
    assert all(f.payload["transactionId"] == tx_id for f in queued)
    stamps = [mv["timestamp"] for f in queued for mv in f.payload["meterValue"]]
    assert stamps == sorted(stamps)


async def test_tc_037_1_offline_start_transaction(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_037_1_CS Offline Start Transaction (AllowOfflineTxForUnknownId)."""
    a = await start_agent(
        settings={"allow_offline_tx_for_unknown_id": True, "meter_value_sample_interval_s": 1},
    )
    await go_offline(a, cs)
    a.plug()
    a.swipe("NEWCARD")
    await a.wait_state("CHARGING")
    await quiet(1.2)
    m = mark(cs)
    await go_online(a, cs)
    start = await cs.wait_for_call("StartTransaction", after=m)
    assert start.payload["idTag"] == "NEWCARD"
    await outbox_empty(a)
    start_reply = next(f for f in cs.log if f.direction == "out" and f.unique_id == start.unique_id)
    tx_id = start_reply.payload["transactionId"]
    a.swipe("NEWCARD")
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["transactionId"] == tx_id
    for f in _tx_messages(cs, m):
        if f.action != "StartTransaction":
            assert f.payload["transactionId"] == tx_id, f.payload


async def test_tc_038_offline_stop_transaction(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_038_CS Offline Stop Transaction."""
    a = await start_agent(settings={"meter_value_sample_interval_s": 1})
    _, tx_id = await start_session(a, cs)
    await go_offline(a, cs)
    await quiet(1.2)
    a.swipe("TAG1")
    await a.wait_state("FINISHING")
    assert not a.sim().relay.closed
    m = mark(cs)
    await go_online(a, cs)
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["transactionId"] == tx_id and stop.payload["reason"] == "Local"
    sent = _tx_messages(cs, m)
    assert sent[-1] is stop, [f.action for f in sent]
    assert {f.action for f in sent[:-1]} <= {"MeterValues"}


async def test_tc_039_offline_transaction(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_039_CS Offline Transaction: queued messages go out strictly in order with the CSMS's transactionId."""
    a = await start_agent(
        settings={"allow_offline_tx_for_unknown_id": True, "meter_value_sample_interval_s": 1},
    )
    await go_offline(a, cs)
    a.plug()
    a.swipe("NEWCARD")
    await a.wait_state("CHARGING")
    await quiet(2.2)
    a.swipe("NEWCARD")
    await a.wait_state("FINISHING")
    m = mark(cs)
    await go_online(a, cs)
    await cs.wait_for_call("StopTransaction", after=m)
    await outbox_empty(a)
    sent = _tx_messages(cs, m)
    actions = [f.action for f in sent]
    assert actions[0] == "StartTransaction" and actions[-1] == "StopTransaction", actions
    assert actions.count("MeterValues") >= 2 and len(actions) == actions.count("MeterValues") + 2, actions
    tx_id = next(f for f in cs.log if f.direction == "out" and f.unique_id == sent[0].unique_id).payload[
        "transactionId"
    ]
    for f in sent[1:]:
        assert f.payload["transactionId"] == tx_id, f.payload
    # One message at a time: each CALL went out only after the previous one was answered.
    for earlier, later in itertools.pairwise(sent):
        answer = next(
            i for i, f in enumerate(cs.log) if f.direction == "out" and f.unique_id == earlier.unique_id
        )
        assert answer < index(cs, later)
    stamps = [mv["timestamp"] for f in sent[1:-1] for mv in f.payload["meterValue"]]
    assert stamps == sorted(stamps)


async def test_tc_037_cached_id_with_local_authorize_offline(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_037_CS Offline Start Transaction - a cached id starts offline (LocalAuthorizeOffline)."""
    a = await start_agent(settings={"local_authorize_offline": True, "authorization_cache_enabled": True})
    await start_session(a, cs, "CACHED1")
    a.swipe("CACHED1")
    await a.wait_state("FINISHING")
    a.unplug()
    await outbox_empty(a)
    await go_offline(a, cs)
    a.plug()
    a.swipe("UNKNOWN1")
    await quiet(0.3)
    assert a.state() == "PREPARING", "an unknown id does not start offline without AllowOfflineTxForUnknownId"
    a.swipe("CACHED1")
    await a.wait_state("CHARGING")
    m = mark(cs)
    await go_online(a, cs)
    start = await cs.wait_for_call("StartTransaction", after=m)
    assert start.payload["idTag"] == "CACHED1"


async def test_transaction_message_call_error_retried_then_dropped(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TransactionMessageAttempts: a StopTransaction the CSMS keeps refusing is tried that often, then not resent."""

    def refuse(cp_id: str, payload: dict[str, Any]) -> Any:
        raise CallErrorReply("InternalError", "cannot process")

    a = await start_agent(settings={"transaction_message_attempts": 3})
    await start_session(a, cs)
    cs.handlers["StopTransaction"] = refuse
    a.swipe("TAG1")
    await until(lambda: len(cs.calls("StopTransaction")) >= 3, 5, "StopTransaction not retried")
    await outbox_empty(a)
    await quiet(0.5)
    assert len(cs.calls("StopTransaction")) == 3
    store = a.agent.store
    assert store is not None and [d["kind"] for d in store.dead_letters()] == ["stop"]
    # The queue is not blocked behind the dead letter.
    a.unplug()
    await a.wait_state("AVAILABLE")
    await start_session(a, cs)


# ----------------------------------------------------------------------------------------------------------------
# Faults
# ----------------------------------------------------------------------------------------------------------------


async def test_tc_041_fault_behaviour_meter(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_041_CS Fault Behavior - power meter failure during a transaction, then recovery."""
    a = await start_agent()
    _, tx_id = await start_session(a, cs)
    meter = a.sim().meter
    assert meter is not None
    m = mark(cs)
    meter.failing = True
    faulted = await wait_status(cs, 1, "Faulted", after=m, error_code="PowerMeterFailure")
    assert not a.sim().relay.closed
    assert a.station.connectors[1].transaction is not None, "a fault does not end the transaction by itself"
    meter.failing = False
    await wait_status(cs, 1, "Charging", after=index(cs, faulted))
    assert a.sim().relay.closed
    assert not cs.calls("StopTransaction")
    a.swipe("TAG1")
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["transactionId"] == tx_id


async def test_tc_041_fault_behaviour_meter_idle(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_041_CS Fault Behavior - power meter failure while idle: Faulted, then Available again."""
    a = await start_agent()
    await wait_status(cs, 1, "Available")
    meter = a.sim().meter
    assert meter is not None
    m = mark(cs)
    meter.failing = True
    faulted = await wait_status(cs, 1, "Faulted", after=m, error_code="PowerMeterFailure")
    a.plug()
    a.swipe("TAG1")
    await quiet(0.3)
    assert not cs.calls("StartTransaction"), "no session starts on a faulted connector"
    meter.failing = False
    back = await cs.wait_for_call("StatusNotification", after=index(cs, faulted) + 1)
    assert back.payload["errorCode"] == "NoError" and back.payload["status"] in ("Available", "Preparing")


async def test_tc_041_fault_behaviour_reader(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_041_CS Fault Behavior - the card reader fails: ReaderFailure, reported as a warning.

    A broken reader leaves the connector usable (remote start still works), so it is reported with the current
    status, not Faulted (OCPP 1.6 §4.9), and a running session keeps charging.
    """
    a = await start_agent()
    await wait_status(cs, 1, "Available")
    reader = a.sim().reader
    assert reader is not None
    a.plug()
    a.swipe("READERTAG")
    await a.wait_state("CHARGING")
    m = mark(cs)
    reader.fail()
    frame = await wait_status(cs, 1, "Charging", after=m, error_code="ReaderFailure")
    assert frame.payload["connectorId"] == 1
    assert a.sim().relay.closed  # type: ignore[union-attr]
    assert a.state() == "CHARGING"


# ----------------------------------------------------------------------------------------------------------------
# Errors and malformed frames (OCPP-J 1.6 §4.2.3)
# ----------------------------------------------------------------------------------------------------------------


async def _still_connected(cs: CentralSystem) -> None:
    m = mark(cs)
    assert await cs.call(CP, "TriggerMessage", {"requestedMessage": "Heartbeat"}) == {"status": "Accepted"}
    await cs.wait_for_call("Heartbeat", after=m)


async def test_call_error_not_implemented_for_unknown_action(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """An unknown action gets CallError NotImplemented; the connection stays up."""
    await start_agent()
    with pytest.raises(CallErrorReply) as error:
        await cs.call(CP, "FooBar", {})
    assert error.value.code == "NotImplemented"
    await _still_connected(cs)


async def test_call_error_not_supported_for_unsupported_action(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """A known OCPP 1.6 action the charger does not take (StartTransaction, a charger's own CALL) gets CallError
    NotSupported (ReserveNow was the example until the charger supported reservations)."""
    await start_agent()
    with pytest.raises(CallErrorReply) as error:
        await cs.call(
            CP,
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG1", "meterStart": 0, "timestamp": "2030-01-01T00:00:00Z"},
        )
    assert error.value.code == "NotSupported"
    await _still_connected(cs)


async def test_call_error_formation_violation_for_invalid_payload(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """A payload that breaks the schema gets FormationViolation (the OCPP 1.6 spelling, not FormatViolation)."""
    await start_agent()
    with pytest.raises(CallErrorReply) as error:
        await cs.call(CP, "ClearCache", {"unexpected": True})
    assert error.value.code == "FormationViolation"
    with pytest.raises(CallErrorReply) as error:
        await cs.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Sideways"})
    assert error.value.code in ("FormationViolation", "PropertyConstraintViolation")
    with pytest.raises(CallErrorReply) as error:
        await cs.call(CP, "ChangeAvailability", {"connectorId": "one", "type": "Operative"})
    assert error.value.code == "TypeConstraintViolation"
    with pytest.raises(CallErrorReply) as error:
        await cs.call(CP, "ChangeAvailability", {"connectorId": 1})
    assert error.value.code in ("ProtocolError", "OccurenceConstraintViolation")
    await _still_connected(cs)


@pytest.mark.parametrize(
    ("raw", "unique_id"),
    [
        ('[2,"bad-json","Heartbeat",{', "bad-json"),
        ('[2,"bad-action",42,{}]', "bad-action"),
        ('[2,"bad-payload","ClearCache","not an object"]', "bad-payload"),
    ],
)
async def test_call_error_for_malformed_frame(
    cs: CentralSystem, start_agent: StartAgent, raw: str, unique_id: str
) -> None:
    """A malformed CALL whose uniqueId can be read is answered with a CallError; the connection stays up."""
    await start_agent()
    m = mark(cs)
    await cs.send_raw(CP, raw)
    reply = await reply_from_charger(cs, unique_id, after=m)
    assert reply.message_type == CALLERROR
    assert reply.payload["errorCode"] in ("FormationViolation", "ProtocolError", "TypeConstraintViolation")
    await _still_connected(cs)
    # The stub CSMS flags an answer to a uniqueId it never sent through call(); that is expected here.
    drop_violations(cs, "CALLERROR for unknown uniqueId")


async def test_tc_041_fault_behaviour_reader_recovers(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_041_CS Fault Behavior - the card reader comes back: the fault clears without waiting for a card."""
    a = await start_agent()
    reader = a.sim().reader
    assert reader is not None
    m = mark(cs)
    reader.fail()
    faulted = await wait_status(cs, 1, "Available", after=m, error_code="ReaderFailure")
    reader.fail(False)
    back = await wait_status(cs, 1, "Available", after=index(cs, faulted) + 1, timeout=1)
    assert back.payload["errorCode"] == "NoError"


# ----------------------------------------------------------------------------------------------------------------
# A central system that does not answer
# ----------------------------------------------------------------------------------------------------------------


def _unanswered_once(cs: CentralSystem, action: str, answer: dict[str, Any]) -> list[int]:
    """Leave the first ``action`` CALL unanswered, answer the later ones with ``answer``."""
    seen: list[int] = []

    def handler(cp_id: str, payload: dict[str, Any]) -> Any:
        seen.append(1)
        return NO_REPLY if len(seen) == 1 else answer

    cs.handlers[action] = handler
    return seen


async def test_heartbeat_survives_an_unanswered_heartbeat(cs: CentralSystem, start_agent: StartAgent) -> None:
    """Heartbeat: one Heartbeat.req left unanswered (timeout) does not end heartbeating on the connection."""
    cs.heartbeat_interval = 1
    _unanswered_once(cs, "Heartbeat", {"currentTime": utc_now_iso()})
    await start_agent(csms={"response_timeout_s": 0.5})
    first = await cs.wait_for_call("Heartbeat", timeout=3)
    await cs.wait_for_call("Heartbeat", after=index(cs, first) + 1, timeout=2.5)


async def test_status_notification_survives_an_unanswered_one(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """StatusNotification: one left unanswered (timeout) does not stop later status reports on the connection."""
    _unanswered_once(cs, "StatusNotification", {})
    a = await start_agent(csms={"response_timeout_s": 0.5})
    await cs.wait_for_call("StatusNotification")
    await quiet(0.7)  # the first one has timed out
    m = mark(cs)
    a.plug()
    await wait_status(cs, 1, "Preparing", after=m, timeout=1.5)
