"""OCTT OCPP 1.6 charge-point cases (Core and RemoteTrigger) run against the scripted central system."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from backend_stub.ocpp.server import NO_REPLY, CallErrorReply, utc_now_iso
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem
from chargepoint.core.model import ResetKind
from chargepoint.csms.v16.mapping import LEGAL_STATUS_TRANSITIONS
from tests.integration.conftest import StartAgent
from tests.integration.octt_support import (
    CP,
    answer_to,
    incoming_calls,
    index,
    mark,
    outbox_empty,
    parse_ts,
    quiet,
    start_session,
    statuses,
    wait_status,
)

# ----------------------------------------------------------------------------------------------------------------
# Boot
# ----------------------------------------------------------------------------------------------------------------


def _boot_answers(cs: CentralSystem, answers: list[Any]) -> list[float]:
    """Answer BootNotifications from ``answers`` in turn (the last one repeats); returns the arrival times."""
    seen: list[float] = []
    loop_time = asyncio.get_running_loop().time

    def boot(cp_id: str, payload: dict[str, Any]) -> Any:
        seen.append(loop_time())
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, CallErrorReply):
            raise answer
        if answer is NO_REPLY:
            return NO_REPLY
        status, interval = answer
        return {"status": status, "currentTime": utc_now_iso(), "interval": interval}

    cs.handlers["BootNotification"] = boot
    return seen


async def _accepted_boot(cs: CentralSystem, after: int = 0) -> int:
    """Index of the CALLRESULT that accepted a BootNotification."""
    frame = await cs.wait_for(
        lambda f: (
            f.direction == "out"
            and f.message_type == 3
            and f.action == "BootNotification"
            and f.payload.get("status") == "Accepted"
        ),
        after=after,
    )
    return index(cs, frame)


def _only_boots_before(cs: CentralSystem, accepted_at: int, allowed: frozenset[str] = frozenset()) -> None:
    """Nothing but BootNotification (and ``allowed`` triggered messages) was sent before boot was accepted."""
    sent = {f.action for f in incoming_calls(cs, 0, accepted_at)}
    assert sent <= {"BootNotification", *allowed}, sent


async def test_tc_001_cold_boot(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_001_CS Cold Boot Charge Point."""
    a = await start_agent(connectors=2)
    accepted = await _accepted_boot(cs)
    _only_boots_before(cs, accepted)
    boot = cs.calls("BootNotification")[0].payload
    assert boot["chargePointVendor"] and boot["chargePointModel"]
    for cid in (0, 1, 2):
        frame = await wait_status(cs, cid, "Available", after=accepted)
        assert frame.payload["errorCode"] == "NoError"
    assert a.agent.boots == 1


async def test_tc_002_boot_pending(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_002_CS Cold Boot Charge Point - Pending: retry after the interval, nothing else until Accepted."""
    seen = _boot_answers(cs, [("Pending", 1), ("Pending", 1), ("Accepted", 300)])
    a = await start_agent(boot=False)
    await a.wait_booted(timeout=6)
    accepted = await _accepted_boot(cs)
    _only_boots_before(cs, accepted)
    assert len(seen) == 3
    assert all(later - earlier >= 0.95 for earlier, later in itertools.pairwise(seen)), seen
    for cid in (0, 1):
        await wait_status(cs, cid, "Available", after=accepted)


async def test_tc_002_boot_pending_trigger_message(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_002_CS Cold Boot Charge Point - Pending: configuration and TriggerMessage are served while Pending."""
    accept = False

    def boot(cp_id: str, payload: dict[str, Any]) -> Any:
        return {"status": "Accepted" if accept else "Pending", "currentTime": utc_now_iso(), "interval": 1}

    cs.handlers["BootNotification"] = boot
    a = await start_agent(boot=False)
    first = await cs.wait_for_call("BootNotification")
    await answer_to(cs, first)
    keys, _ = await _config(cs, "HeartbeatInterval")
    assert "HeartbeatInterval" in keys
    answer = await cs.call(CP, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "30"})
    assert answer == {"status": "Accepted"}
    m = mark(cs)
    answer = await cs.call(CP, "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1})
    assert answer == {"status": "Accepted"}
    triggered = await cs.wait_for_call("StatusNotification", after=m, where=lambda p: p["connectorId"] == 1)
    assert triggered.payload["status"] == "Available"
    # Only the BootNotification retries and the triggered message went out while Pending.
    assert {f.action for f in incoming_calls(cs)} <= {"BootNotification", "StatusNotification"}
    assert len(cs.calls("StatusNotification")) == 1
    accept = True
    await a.wait_booted(timeout=4)


async def test_tc_002_boot_pending_statuses_after_accepted(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_002_CS Cold Boot Charge Point - Pending: once Accepted, every connector's status is reported."""
    accept = False

    def boot(cp_id: str, payload: dict[str, Any]) -> Any:
        return {"status": "Accepted" if accept else "Pending", "currentTime": utc_now_iso(), "interval": 1}

    cs.handlers["BootNotification"] = boot
    a = await start_agent(boot=False)
    await answer_to(cs, await cs.wait_for_call("BootNotification"))
    assert await cs.call(
        CP, "TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": 1}
    ) == {"status": "Accepted"}
    await cs.wait_for_call("StatusNotification")
    accept = True
    await a.wait_booted(timeout=4)
    accepted = await _accepted_boot(cs)
    for cid in (0, 1):
        await wait_status(cs, cid, "Available", after=accepted, timeout=1)


async def test_tc_002_boot_pending_interval_zero_uses_own_retry(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_002_CS Cold Boot Charge Point - Pending: interval 0 means the charger picks its own wait."""
    seen = _boot_answers(cs, [("Pending", 0), ("Pending", 0), ("Accepted", 300)])
    a = await start_agent(boot=False, csms={"boot_retry_s": 0.7})
    await a.wait_booted(timeout=6)
    _only_boots_before(cs, await _accepted_boot(cs))
    gaps = [later - earlier for earlier, later in itertools.pairwise(seen)]
    assert len(gaps) == 2 and all(0.65 <= g < 1.5 for g in gaps), gaps


async def test_tc_002_boot_call_error_is_retried(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_002_CS Cold Boot Charge Point - Pending: a CallError to BootNotification is retried."""
    seen = _boot_answers(
        cs, [CallErrorReply("InternalError", "busy"), CallErrorReply("GenericError"), ("Accepted", 300)]
    )
    a = await start_agent(boot=False)
    await a.wait_booted(timeout=6)
    _only_boots_before(cs, await _accepted_boot(cs))
    assert len(seen) == 3
    assert all(later - earlier >= 0.45 for earlier, later in itertools.pairwise(seen)), seen


async def test_tc_002_boot_no_reply_is_retried(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_002_CS Cold Boot Charge Point - Pending: an unanswered BootNotification is retried."""
    seen = _boot_answers(cs, [NO_REPLY, ("Accepted", 300)])
    a = await start_agent(boot=False, csms={"response_timeout_s": 0.5})
    await a.wait_booted(timeout=6)
    _only_boots_before(cs, await _accepted_boot(cs))
    assert len(seen) == 2
    assert seen[1] - seen[0] >= 0.9  # response timeout, then boot_retry_s


async def test_tc_002_boot_rejected(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_002_CS Cold Boot Charge Point - Rejected: silent until the interval expires, no answers to the CSMS."""
    accept = False

    def boot(cp_id: str, payload: dict[str, Any]) -> Any:
        return {"status": "Accepted" if accept else "Rejected", "currentTime": utc_now_iso(), "interval": 2}

    cs.handlers["BootNotification"] = boot
    a = await start_agent(boot=False)
    first = await cs.wait_for_call("BootNotification")
    await answer_to(cs, first)
    m = mark(cs)
    with pytest.raises(TimeoutError):
        await cs.call(CP, "GetConfiguration", {"key": ["HeartbeatInterval"]}, timeout=1)
    assert not [f for f in cs.log[m:] if f.direction == "in"], "the charger answered while Rejected"
    accept = True
    second = await cs.wait_for_call("BootNotification", after=m, timeout=4)
    assert (second.ts - first.ts).total_seconds() >= 1.95
    await a.wait_booted()
    _only_boots_before(cs, await _accepted_boot(cs))


# ----------------------------------------------------------------------------------------------------------------
# Local sessions
# ----------------------------------------------------------------------------------------------------------------


async def test_tc_003_regular_charging_session_plugin_first(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_003_CS Regular Charging Session - Plugin First."""
    a = await start_agent()
    await wait_status(cs, 1, "Available")
    m = mark(cs)
    a.plug()
    await wait_status(cs, 1, "Preparing", after=m)
    a.swipe("TAG1")
    auth = await cs.wait_for_call("Authorize", after=m)
    start = await cs.wait_for_call("StartTransaction", after=m)
    assert index(cs, auth) < index(cs, start)
    assert start.payload["idTag"] == "TAG1" and start.payload["connectorId"] == 1
    tx_id = (await answer_to(cs, start)).payload["transactionId"]
    await wait_status(cs, 1, "Charging", after=m)
    assert a.sim().relay.closed
    a.swipe("TAG1")
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["transactionId"] == tx_id
    assert stop.payload["reason"] == "Local" and stop.payload["idTag"] == "TAG1"
    assert stop.payload["meterStop"] >= start.payload["meterStart"]
    await wait_status(cs, 1, "Finishing", after=m)
    assert not a.sim().relay.closed
    a.unplug()
    await wait_status(cs, 1, "Available", after=index(cs, stop))
    assert statuses(cs, 1, m) == ["Preparing", "Charging", "Finishing", "Available"]


async def test_tc_004_1_regular_charging_session_identification_first(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_004_1_CS Regular Charging Session - Identification First."""
    a = await start_agent()
    await wait_status(cs, 1, "Available")
    m = mark(cs)
    a.swipe("TAG1")
    auth = await cs.wait_for_call("Authorize", after=m)
    await answer_to(cs, auth)
    await wait_status(cs, 1, "Preparing", after=m)
    assert not cs.calls("StartTransaction")
    a.plug()
    start = await cs.wait_for_call("StartTransaction", after=m)
    assert start.payload["idTag"] == "TAG1"
    await wait_status(cs, 1, "Charging", after=m)
    assert a.sim().relay.closed
    assert statuses(cs, 1, m) == ["Preparing", "Charging"]


async def test_tc_004_2_identification_first_connection_timeout(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_004_2_CS Regular Charging Session - Identification First - ConnectionTimeOut."""
    a = await start_agent(settings={"connection_timeout_s": 1})
    await wait_status(cs, 1, "Available")
    m = mark(cs)
    a.swipe("TAG1")
    await wait_status(cs, 1, "Preparing", after=m)
    preparing_at = cs.log[-1].ts
    back = await wait_status(cs, 1, "Available", after=m, timeout=3)
    assert (back.ts - preparing_at).total_seconds() >= 0.8
    a.plug()
    await a.wait_state("PREPARING")
    await quiet(0.3)
    assert not cs.calls("StartTransaction")
    assert not a.sim().relay.closed


async def test_tc_005_1_ev_side_disconnect(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_005_1_CS EV Side Disconnected - StopTransactionOnEVSideDisconnect = true - UnlockConnectorOnEVSideDisconnect = true."""
    a = await start_agent(
        settings={
            "stop_transaction_on_ev_side_disconnect": True,
            "unlock_connector_on_ev_side_disconnect": True,
        }
    )
    _, tx_id = await start_session(a, cs)
    m = mark(cs)
    a.unplug()
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["reason"] == "EVDisconnected" and stop.payload["transactionId"] == tx_id
    assert not a.sim().relay.closed
    # The simulated cable is tethered: with the EV gone the connector is free at once.
    await wait_status(cs, 1, "Available", after=m)


async def test_tc_005_2_ev_side_disconnect_no_unlock(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_005_2_CS EV Side Disconnected - StopTransactionOnEVSideDisconnect = true - UnlockConnectorOnEVSideDisconnect = false."""
    a = await start_agent(
        settings={
            "stop_transaction_on_ev_side_disconnect": True,
            "unlock_connector_on_ev_side_disconnect": False,
        }
    )
    _, tx_id = await start_session(a, cs)
    m = mark(cs)
    a.unplug()
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["reason"] == "EVDisconnected" and stop.payload["transactionId"] == tx_id
    assert await cs.call(CP, "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    await wait_status(cs, 1, "Available", after=m)
    assert len(cs.calls("StopTransaction")) == 1


async def test_tc_005_3_ev_side_disconnect_transaction_continues(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_005_3_CS EV Side Disconnected - StopTransactionOnEVSideDisconnect = false - UnlockConnectorOnEVSideDisconnect = false."""
    a = await start_agent(
        settings={
            "stop_transaction_on_ev_side_disconnect": False,
            "unlock_connector_on_ev_side_disconnect": False,
        }
    )
    _, tx_id = await start_session(a, cs)
    m = mark(cs)
    a.unplug()
    await wait_status(cs, 1, "SuspendedEV", after=m)
    assert not a.sim().relay.closed
    await quiet(0.3)
    assert not cs.calls("StopTransaction")
    assert a.station.connectors[1].transaction is not None
    assert await cs.call(CP, "RemoteStopTransaction", {"transactionId": tx_id}) == {"status": "Accepted"}
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["reason"] == "Remote" and stop.payload["transactionId"] == tx_id


async def test_tc_005_3_ev_plugged_back_in(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_005_3_CS EV Side Disconnected - StopTransactionOnEVSideDisconnect = false: the EV comes back, charging resumes."""
    a = await start_agent(settings={"stop_transaction_on_ev_side_disconnect": False})
    _, tx_id = await start_session(a, cs)
    m = mark(cs)
    a.unplug()
    suspended = await wait_status(cs, 1, "SuspendedEV", after=m)
    a.plug()
    await wait_status(cs, 1, "Charging", after=index(cs, suspended))
    assert a.sim().relay.closed
    a.swipe("TAG1")
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["transactionId"] == tx_id and stop.payload["reason"] == "Local"
    assert len(cs.calls("StartTransaction")) == 1


# ----------------------------------------------------------------------------------------------------------------
# Remote start / stop
# ----------------------------------------------------------------------------------------------------------------


async def test_tc_010_remote_start_cable_plugged_in_first(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_010_CS Remote Start Charging Session - Cable Plugged in First."""
    a = await start_agent()
    a.plug()
    await wait_status(cs, 1, "Preparing")
    m = mark(cs)
    answer = await cs.call(CP, "RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 1})
    assert answer == {"status": "Accepted"}
    start = await cs.wait_for_call("StartTransaction", after=m)
    assert start.payload["idTag"] == "REMOTE1" and start.payload["connectorId"] == 1
    await wait_status(cs, 1, "Charging", after=m)
    assert not cs.calls("Authorize"), "AuthorizeRemoteTxRequests is false: no Authorize"


async def test_tc_010_remote_start_authorize_remote_tx_requests(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_010_CS Remote Start Charging Session - Cable Plugged in First (AuthorizeRemoteTxRequests = true)."""
    a = await start_agent(settings={"authorize_remote_tx_requests": True})
    a.plug()
    await wait_status(cs, 1, "Preparing")
    m = mark(cs)
    assert await cs.call(CP, "RemoteStartTransaction", {"idTag": "REMOTE1"}) == {"status": "Accepted"}
    auth = await cs.wait_for_call("Authorize", after=m, where=lambda p: p["idTag"] == "REMOTE1")
    start = await cs.wait_for_call("StartTransaction", after=m)
    assert index(cs, auth) < index(cs, start)
    await a.wait_state("CHARGING")


async def test_tc_010_remote_start_authorize_remote_tx_requests_invalid(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_010_CS Remote Start Charging Session (AuthorizeRemoteTxRequests = true): an Invalid id does not start."""
    cs.id_tags["REMOTE1"] = "Invalid"
    a = await start_agent(settings={"authorize_remote_tx_requests": True})
    a.plug()
    await a.wait_state("PREPARING")
    m = mark(cs)
    assert await cs.call(CP, "RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 1}) == {
        "status": "Accepted"
    }
    await answer_to(cs, await cs.wait_for_call("Authorize", after=m))
    await quiet(0.3)
    assert not cs.calls("StartTransaction") and not a.sim().relay.closed


async def test_tc_011_1_remote_start_first(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_011_1_CS Remote Start Charging Session - Remote Start First."""
    a = await start_agent()
    await wait_status(cs, 1, "Available")
    m = mark(cs)
    assert await cs.call(CP, "RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 1}) == {
        "status": "Accepted"
    }
    await wait_status(cs, 1, "Preparing", after=m)
    assert not cs.calls("StartTransaction")
    a.plug()
    start = await cs.wait_for_call("StartTransaction", after=m)
    assert start.payload["idTag"] == "REMOTE1"
    await wait_status(cs, 1, "Charging", after=m)
    assert a.sim().relay.closed


async def test_tc_011_2_remote_start_time_out(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_011_2_CS Remote Start Charging Session - Time Out."""
    a = await start_agent(settings={"connection_timeout_s": 1})
    await wait_status(cs, 1, "Available")
    m = mark(cs)
    assert await cs.call(CP, "RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 1}) == {
        "status": "Accepted"
    }
    await wait_status(cs, 1, "Preparing", after=m)
    await wait_status(cs, 1, "Available", after=m, timeout=3)
    a.plug()
    await quiet(0.3)
    assert not cs.calls("StartTransaction")


async def test_tc_012_remote_stop_charging_session(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_012_CS Remote Stop Charging Session."""
    a = await start_agent()
    _, tx_id = await start_session(a, cs)
    m = mark(cs)
    assert await cs.call(CP, "RemoteStopTransaction", {"transactionId": tx_id}) == {"status": "Accepted"}
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["reason"] == "Remote" and stop.payload["transactionId"] == tx_id
    await wait_status(cs, 1, "Finishing", after=m)
    assert not a.sim().relay.closed


async def test_tc_012_remote_stop_right_after_start_confirmation(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_012_CS Remote Stop Charging Session - sent as soon as the CSMS has given the transactionId."""
    a = await start_agent()
    cs.handlers["StartTransaction"] = lambda cp_id, payload: NO_REPLY
    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("TAG1")
    start = await cs.wait_for_call("StartTransaction")
    conf = {"transactionId": 4242, "idTagInfo": {"status": "Accepted"}}
    # The CSMS knows the id once it has answered; its next CALL may follow on the wire at once.
    await cs.send_raw(CP, json.dumps([3, start.unique_id, conf]))
    answer = await cs.call(CP, "RemoteStopTransaction", {"transactionId": 4242})
    assert answer == {"status": "Accepted"}
    stop = await cs.wait_for_call("StopTransaction")
    assert stop.payload["transactionId"] == 4242 and stop.payload["reason"] == "Remote"


async def test_tc_026_remote_start_rejected(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_026_CS Remote Start Charging Session - Rejected."""
    a = await start_agent()
    await start_session(a, cs)
    busy = await cs.call(CP, "RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 1})
    assert busy == {"status": "Rejected"}
    unknown = await cs.call(CP, "RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 7})
    assert unknown == {"status": "Rejected"}
    anywhere = await cs.call(CP, "RemoteStartTransaction", {"idTag": "REMOTE1"})
    assert anywhere == {"status": "Rejected"}, "the only connector is busy"
    await quiet(0.2)
    assert len(cs.calls("StartTransaction")) == 1


async def test_tc_027_remote_start_connector_id_zero(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_027_CS Remote Start Transaction - connectorId shall not be 0."""
    a = await start_agent()
    a.plug()
    await a.wait_state("PREPARING")
    answer = await cs.call(CP, "RemoteStartTransaction", {"idTag": "REMOTE1", "connectorId": 0})
    assert answer == {"status": "Rejected"}
    await quiet(0.2)
    assert not cs.calls("StartTransaction")


async def test_tc_028_remote_stop_rejected(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_028_CS Remote Stop Transaction - Rejected."""
    a = await start_agent()
    _, tx_id = await start_session(a, cs)
    assert await cs.call(CP, "RemoteStopTransaction", {"transactionId": tx_id + 1000}) == {
        "status": "Rejected"
    }
    await quiet(0.2)
    assert not cs.calls("StopTransaction")
    assert a.state() == "CHARGING"


# ----------------------------------------------------------------------------------------------------------------
# Reset
# ----------------------------------------------------------------------------------------------------------------


async def _reset(cs: CentralSystem, kind: str) -> tuple[int, int]:
    """Send Reset; returns the log index of the request and of the charger's answer."""
    m = mark(cs)
    assert await cs.call(CP, "Reset", {"type": kind}) == {"status": "Accepted"}
    reply = next(
        i for i in range(m, len(cs.log)) if cs.log[i].direction == "in" and cs.log[i].message_type == 3
    )
    return m, reply


async def test_tc_013_hard_reset_without_transaction(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_013_CS Hard Reset Without Transaction."""
    a = await start_agent()
    await wait_status(cs, 1, "Available")
    m, reply = await _reset(cs, "Hard")
    boot = await cs.wait_for_call("BootNotification", after=m)
    assert index(cs, boot) > reply
    await a.wait_booted()
    await wait_status(cs, 1, "Available", after=index(cs, boot))
    assert a.agent.resets == [ResetKind.HARD]
    assert not cs.calls("StopTransaction")


async def test_tc_014_soft_reset_without_transaction(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_014_CS Soft Reset Without Transaction."""
    a = await start_agent()
    await wait_status(cs, 1, "Available")
    m, reply = await _reset(cs, "Soft")
    boot = await cs.wait_for_call("BootNotification", after=m)
    assert index(cs, boot) > reply
    await a.wait_booted()
    await wait_status(cs, 1, "Available", after=index(cs, boot))
    assert a.agent.resets == [ResetKind.SOFT]
    assert not cs.calls("StopTransaction")


@pytest.mark.parametrize("kind", ["Hard", "Soft"])
async def test_no_status_report_between_the_reset_answer_and_the_new_boot(
    cs: CentralSystem, start_agent: StartAgent, kind: str
) -> None:
    """A Reset right after a reconnect (here for a new AuthorizationKey), while the reconnect's status reports
    are still queued: once the reset is accepted the old session reports no status (it would be stale, and the
    OCTT trace expects Reset.conf then BootNotification); the statuses follow the new boot."""
    a = await start_agent()
    await wait_status(cs, 1, "Available")
    key = {"key": "AuthorizationKey", "value": "ab" * 16}
    assert await cs.call(CP, "ChangeConfiguration", key) == {"status": "Accepted"}
    await cs.wait_disconnected(CP)
    await cs.wait_connected(CP)
    m, reply = await _reset(cs, kind)
    boot = await cs.wait_for_call("BootNotification", after=m)
    between = [f.payload for f in cs.log[reply : index(cs, boot)] if f.action == "StatusNotification"]
    assert between == []
    await a.wait_booted()
    await wait_status(cs, 0, "Available", after=index(cs, boot))


async def _reset_with_transaction(cs: CentralSystem, start_agent: StartAgent, kind: str, reason: str) -> None:
    a = await start_agent()
    _, tx_id = await start_session(a, cs)
    m, reply = await _reset(cs, kind)
    stop = await cs.wait_for_call("StopTransaction", after=m)
    boot = await cs.wait_for_call("BootNotification", after=m)
    assert stop.payload["reason"] == reason and stop.payload["transactionId"] == tx_id
    assert reply < index(cs, stop), "Reset.conf must go out before the StopTransaction"
    await a.wait_booted()
    await outbox_empty(a)
    await quiet(0.3)
    stops = [f for f in cs.calls("StopTransaction") if f.payload["transactionId"] == tx_id]
    assert len(stops) == 1, f"transaction {tx_id} stopped {len(stops)} times"
    assert index(cs, boot) > reply
    if kind == "Soft":
        # OCPP 1.6 §5.14: a soft reset stops transactions gracefully first, then restarts. (After a hard reset
        # the StopTransaction may follow the new BootNotification.)
        assert index(cs, stop) < index(cs, boot)
    assert a.agent.resets == [ResetKind.HARD if kind == "Hard" else ResetKind.SOFT]


async def test_tc_015_hard_reset_with_transaction(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_015_CS Hard Reset With Transaction."""
    await _reset_with_transaction(cs, start_agent, "Hard", "HardReset")


async def test_tc_016_soft_reset_with_transaction(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_016_CS Soft Reset With Transaction."""
    await _reset_with_transaction(cs, start_agent, "Soft", "SoftReset")


# ----------------------------------------------------------------------------------------------------------------
# Unlock
# ----------------------------------------------------------------------------------------------------------------


async def test_tc_017_1_unlock_connector_no_charging_session(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_017_1_CS Unlock connector - no charging session running (Not fixed cable)."""
    await start_agent()
    assert await cs.call(CP, "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    assert not cs.calls("StopTransaction")


async def test_tc_018_1_unlock_connector_with_charging_session(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_018_1_CS Unlock Connector - With Charging Session (Not fixed cable)."""
    a = await start_agent()
    _, tx_id = await start_session(a, cs)
    m = mark(cs)
    assert await cs.call(CP, "UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    # The transaction was over (relay open) before the charger answered Unlocked.
    assert a.station.connectors[1].transaction is None
    assert not a.sim().relay.closed
    stop = await cs.wait_for_call("StopTransaction", after=m)
    assert stop.payload["reason"] == "UnlockCommand" and stop.payload["transactionId"] == tx_id


async def test_tc_031_unlock_connector_unknown_connector(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_031_CS Unlock Connector - Unknown Connector."""
    await start_agent()
    assert await cs.call(CP, "UnlockConnector", {"connectorId": 9}) == {"status": "NotSupported"}


# ----------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------


# OCPP 1.6 §9.1 (Core) and §9.2 (LocalAuthListManagement): the keys a charge point must report.
REQUIRED_KEYS = (
    "AuthorizeRemoteTxRequests",
    "ClockAlignedDataInterval",
    "ConnectionTimeOut",
    "ConnectorPhaseRotation",
    "GetConfigurationMaxKeys",
    "HeartbeatInterval",
    "LocalAuthorizeOffline",
    "LocalPreAuthorize",
    "MeterValuesAlignedData",
    "MeterValuesSampledData",
    "MeterValueSampleInterval",
    "NumberOfConnectors",
    "ResetRetries",
    "StopTransactionOnEVSideDisconnect",
    "StopTransactionOnInvalidId",
    "StopTxnAlignedData",
    "StopTxnSampledData",
    "SupportedFeatureProfiles",
    "TransactionMessageAttempts",
    "TransactionMessageRetryInterval",
    "UnlockConnectorOnEVSideDisconnect",
    "LocalAuthListEnabled",
    "LocalAuthListMaxLength",
    "SendLocalListMaxLength",
)


async def _config(cs: CentralSystem, *keys: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    payload: dict[str, Any] = {"key": list(keys)} if keys else {}
    answer = await cs.call(CP, "GetConfiguration", payload)
    return {k["key"]: k for k in answer.get("configurationKey", [])}, answer.get("unknownKey", [])


async def test_tc_019_retrieve_all_configuration_keys(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_019_CS Retrieve configuration: all keys."""
    await start_agent()
    keys, unknown = await _config(cs)
    assert unknown == []
    for entry in keys.values():
        if entry["key"] == "AuthorizationKey":
            # Security whitepaper: write-only; listed, its value never sent (KeyValue.value is optional, §7.23).
            assert entry == {"key": "AuthorizationKey", "readonly": False}
            continue
        assert isinstance(entry["readonly"], bool) and isinstance(entry.get("value"), str), entry
    for name in REQUIRED_KEYS:
        assert name in keys, f"required configuration key {name} missing"
    assert keys["NumberOfConnectors"] == {"key": "NumberOfConnectors", "readonly": True, "value": "1"}
    profiles = set(keys["SupportedFeatureProfiles"]["value"].split(","))
    assert {"Core", "LocalAuthListManagement", "RemoteTrigger"} <= profiles
    assert keys["SupportedFeatureProfiles"]["readonly"] is True
    assert keys["HeartbeatInterval"]["readonly"] is False
    assert keys["HeartbeatInterval"]["value"] == str(cs.heartbeat_interval)


async def test_tc_019_retrieve_specific_configuration_key(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_019_CS Retrieve configuration: a specific key."""
    await start_agent()
    keys, unknown = await _config(cs, "MeterValueSampleInterval", "NoSuchKey")
    assert list(keys) == ["MeterValueSampleInterval"]
    assert keys["MeterValueSampleInterval"]["readonly"] is False
    assert keys["MeterValueSampleInterval"]["value"] == "60"
    assert unknown == ["NoSuchKey"]


async def test_tc_021_change_set_configuration(
    cs: CentralSystem, start_agent: StartAgent, tmp_path: Path
) -> None:
    """TC_021_CS Change/set Configuration."""
    a = await start_agent()
    answer = await cs.call(CP, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "7"})
    assert answer == {"status": "Accepted"}
    keys, _ = await _config(cs, "MeterValueSampleInterval")
    assert keys["MeterValueSampleInterval"]["value"] == "7"
    await a.stop()
    await start_agent(db=tmp_path / "agent.db")
    keys, _ = await _config(cs, "MeterValueSampleInterval")
    assert keys["MeterValueSampleInterval"]["value"] == "7", "the change did not survive a restart"


async def test_tc_021_change_configuration_reboot_required(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """TC_021_CS Change/set Configuration - a key that takes effect after a reboot answers RebootRequired."""
    await start_agent()
    answer = await cs.call(CP, "ChangeConfiguration", {"key": "WebSocketPingInterval", "value": "30"})
    assert answer == {"status": "RebootRequired"}
    keys, _ = await _config(cs, "WebSocketPingInterval")
    assert keys["WebSocketPingInterval"]["value"] == "30"


async def test_tc_021_minimum_status_duration(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_021_CS Change/set Configuration - MinimumStatusDuration: a status shorter than that is not reported."""
    a = await start_agent()
    await wait_status(cs, 1, "Available")
    answer = await cs.call(CP, "ChangeConfiguration", {"key": "MinimumStatusDuration", "value": "1"})
    assert answer == {"status": "Accepted"}
    m = mark(cs)
    a.plug()
    await a.wait_state("PREPARING")
    await quiet(0.2)
    a.unplug()
    await a.wait_state("AVAILABLE")
    await quiet(1.2)
    assert statuses(cs, 1, m) == [], "a 0.2 s Preparing was reported despite MinimumStatusDuration = 1"


async def test_tc_040_1_configuration_keys_not_supported(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_040_1_CS Configuration Keys - NotSupported."""
    await start_agent()
    answer = await cs.call(CP, "ChangeConfiguration", {"key": "NoSuchKey", "value": "1"})
    assert answer == {"status": "NotSupported"}


async def test_tc_040_2_configuration_keys_invalid_value(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_040_2_CS Configuration Keys - Invalid value."""
    await start_agent()
    for value in ("abc", "-5", "1.5", ""):
        answer = await cs.call(CP, "ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": value})
        assert answer == {"status": "Rejected"}, value
    answer = await cs.call(CP, "ChangeConfiguration", {"key": "LocalPreAuthorize", "value": "maybe"})
    assert answer == {"status": "Rejected"}
    keys, _ = await _config(cs, "MeterValueSampleInterval", "LocalPreAuthorize")
    assert keys["MeterValueSampleInterval"]["value"] == "60"
    assert keys["LocalPreAuthorize"]["value"] == "false"


async def test_tc_040_2_configuration_keys_read_only(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_040_2_CS Configuration Keys - Invalid value: a read-only key is Rejected."""
    await start_agent()
    answer = await cs.call(CP, "ChangeConfiguration", {"key": "NumberOfConnectors", "value": "4"})
    assert answer == {"status": "Rejected"}
    keys, _ = await _config(cs, "NumberOfConnectors")
    assert keys["NumberOfConnectors"]["value"] == "1"


# ----------------------------------------------------------------------------------------------------------------
# Data transfer
# ----------------------------------------------------------------------------------------------------------------


async def test_tc_062_data_transfer_to_a_charge_point(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_062_CS Data Transfer to a Charge Point."""
    await start_agent()
    answer = await cs.call(CP, "DataTransfer", {"vendorId": "com.example.unknown"})
    assert answer["status"] == "UnknownVendorId"
    answer = await cs.call(
        CP, "DataTransfer", {"vendorId": "com.example.unknown", "messageId": "x", "data": "{}"}
    )
    assert answer["status"] == "UnknownVendorId"


@pytest.mark.skip(reason="the agent has no vendor extension that sends DataTransfer to the central system")
async def test_tc_064_data_transfer_to_a_central_system() -> None:
    """TC_064_CS Data Transfer to a Central System."""


# ----------------------------------------------------------------------------------------------------------------
# Trigger message (RemoteTrigger)
# ----------------------------------------------------------------------------------------------------------------


async def _trigger(cs: CentralSystem, what: str, connector_id: int | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"requestedMessage": what}
    if connector_id is not None:
        payload["connectorId"] = connector_id
    return await cs.call(CP, "TriggerMessage", payload)


async def test_tc_054_trigger_message_meter_values(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_054_CS Trigger Message - MeterValues."""
    a = await start_agent()
    m = mark(cs)
    assert await _trigger(cs, "MeterValues", 1) == {"status": "Accepted"}
    idle = await cs.wait_for_call("MeterValues", after=m)
    assert idle.payload["connectorId"] == 1 and "transactionId" not in idle.payload
    assert idle.payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    _, tx_id = await start_session(a, cs)
    m = mark(cs)
    assert await _trigger(cs, "MeterValues", 1) == {"status": "Accepted"}
    during = await cs.wait_for_call("MeterValues", after=m, where=lambda p: "transactionId" in p)
    assert during.payload["transactionId"] == tx_id
    assert during.payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"


async def test_tc_054_trigger_message_status_notification(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_054_CS Trigger Message - StatusNotification."""
    await start_agent(connectors=2)
    await wait_status(cs, 2, "Available")
    m = mark(cs)
    assert await _trigger(cs, "StatusNotification", 2) == {"status": "Accepted"}
    frame = await wait_status(cs, 2, "Available", after=m)
    assert index(cs, frame) > m
    await quiet(0.2)
    assert [f.payload["connectorId"] for f in cs.calls("StatusNotification")[-1:]] == [2]
    assert len([f for f in incoming_calls(cs, m) if f.action == "StatusNotification"]) == 1


async def test_tc_054_trigger_message_heartbeat(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_054_CS Trigger Message - Heartbeat."""
    await start_agent()
    m = mark(cs)
    assert await _trigger(cs, "Heartbeat") == {"status": "Accepted"}
    await cs.wait_for_call("Heartbeat", after=m)


async def test_tc_054_trigger_message_boot_notification(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_054_CS Trigger Message - BootNotification."""
    a = await start_agent()
    m = mark(cs)
    assert await _trigger(cs, "BootNotification") == {"status": "Accepted"}
    await cs.wait_for_call("BootNotification", after=m)
    await quiet(0.2)
    assert a.agent.link is not None and a.agent.link.online
    assert a.agent.boots == 1, "a triggered BootNotification is not a reboot"


async def test_tc_055_trigger_message_rejected(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_055_CS Trigger Message - Rejected."""
    await start_agent()
    await wait_status(cs, 1, "Available")  # the boot-time reports are out of the way
    m = mark(cs)
    assert await _trigger(cs, "StatusNotification", 5) == {"status": "Rejected"}
    assert await _trigger(cs, "MeterValues", 5) == {"status": "Rejected"}
    await quiet(0.2)
    assert not [f for f in incoming_calls(cs, m) if f.action in ("StatusNotification", "MeterValues")]


async def test_tc_055_trigger_message_unknown_message(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_055_CS Trigger Message - a message outside the 1.6 enumeration is refused, the link stays up.

    All six MessageTrigger values are implemented, so NotImplemented cannot be answered to a valid request;
    a value outside the enumeration fails the schema and gets a CallError.
    """
    await start_agent()
    with pytest.raises(CallErrorReply) as refused:
        await _trigger(cs, "FooBarNotification")
    assert refused.value.code in ("FormationViolation", "PropertyConstraintViolation")
    m = mark(cs)
    assert await _trigger(cs, "Heartbeat") == {"status": "Accepted"}
    await cs.wait_for_call("Heartbeat", after=m)


# ----------------------------------------------------------------------------------------------------------------
# Meter values
# ----------------------------------------------------------------------------------------------------------------

ENERGY = "Energy.Active.Import.Register"


async def test_tc_070_sampled_meter_values(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_070_CS Sampled Meter Values."""
    a = await start_agent(
        settings={"meter_value_sample_interval_s": 1, "stop_txn_sampled_data": ENERGY},
    )
    start, tx_id = await start_session(a, cs)
    started = parse_ts(start.payload["timestamp"])
    m = index(cs, start)
    for _ in range(2):
        frame = await cs.wait_for_call(
            "MeterValues", after=m, where=lambda p: p.get("transactionId") == tx_id
        )
        m = index(cs, frame) + 1
    samples = [mv for f in cs.calls("MeterValues") for mv in f.payload["meterValue"]]
    offsets = [(parse_ts(s["timestamp"]) - started).total_seconds() for s in samples]
    assert len(samples) >= 2
    for s, offset in zip(samples, offsets, strict=True):
        assert abs(offset - round(offset)) < 0.002 and round(offset) >= 1, (offset, s)
        value = s["sampledValue"][0]
        assert (
            value["context"] == "Sample.Periodic" and value["measurand"] == ENERGY and value["unit"] == "Wh"
        )
    assert [round(o) for o in offsets] == sorted({round(o) for o in offsets})
    energies = [float(s["sampledValue"][0]["value"]) for s in samples]
    assert energies == sorted(energies) and energies[-1] > energies[0]
    m = mark(cs)
    a.swipe("TAG1")
    stop = await cs.wait_for_call("StopTransaction", after=m)
    data = stop.payload["transactionData"]
    contexts = [mv["sampledValue"][0]["context"] for mv in data]
    assert "Sample.Periodic" in contexts and contexts[-1] == "Transaction.End", contexts
    assert all(mv["sampledValue"][0]["measurand"] == ENERGY for mv in data)


async def test_tc_071_clock_aligned_meter_values(cs: CentralSystem, start_agent: StartAgent) -> None:
    """TC_071_CS Clock-aligned Meter Values."""
    a = await start_agent(settings={"clock_aligned_data_interval_s": 2})
    idle = await cs.wait_for_call("MeterValues", timeout=4)
    assert "transactionId" not in idle.payload and idle.payload["connectorId"] == 1
    _, tx_id = await start_session(a, cs)
    during = await cs.wait_for_call("MeterValues", where=lambda p: p.get("transactionId") == tx_id, timeout=4)
    for frame in (idle, during):
        mv = frame.payload["meterValue"][0]
        when = parse_ts(mv["timestamp"])
        since_midnight = (when - when.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds()
        assert since_midnight % 2 == 0, mv["timestamp"]
        assert mv["sampledValue"][0]["context"] == "Sample.Clock"
        assert mv["sampledValue"][0]["measurand"] == ENERGY


# ----------------------------------------------------------------------------------------------------------------
# Availability
# ----------------------------------------------------------------------------------------------------------------


async def test_change_availability_inoperative_while_idle(cs: CentralSystem, start_agent: StartAgent) -> None:
    """ChangeAvailability Inoperative on an idle connector: Accepted, Unavailable; Operative brings it back."""
    a = await start_agent()
    await wait_status(cs, 1, "Available")
    m = mark(cs)
    answer = await cs.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert answer == {"status": "Accepted"}
    await wait_status(cs, 1, "Unavailable", after=m)
    a.plug()
    a.swipe("TAG1")
    await quiet(0.3)
    assert not cs.calls("StartTransaction") and a.state() == "UNAVAILABLE"
    answer = await cs.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Operative"})
    assert answer == {"status": "Accepted"}
    await wait_status(cs, 1, "Preparing", after=m)  # the EV is still plugged in


async def test_change_availability_inoperative_while_preparing(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """ChangeAvailability Inoperative with a cable plugged in (Preparing): only legal transitions (OCPP 1.6 §4.9)."""
    a = await start_agent()
    a.plug()
    await wait_status(cs, 1, "Preparing")
    m = mark(cs)
    answer = await cs.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert answer == {"status": "Accepted"}
    await wait_status(cs, 1, "Unavailable", after=m)
    reported = ["Preparing", *statuses(cs, 1, m)]
    for before, after in itertools.pairwise(reported):
        assert after in LEGAL_STATUS_TRANSITIONS[before], f"{before} -> {after} is not a legal transition"


async def test_change_availability_scheduled_during_transaction(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """ChangeAvailability Inoperative during a transaction: Scheduled, applied when the transaction ends."""
    a = await start_agent()
    await start_session(a, cs)
    m = mark(cs)
    answer = await cs.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"})
    assert answer == {"status": "Scheduled"}
    await quiet(0.2)
    assert a.state() == "CHARGING" and a.sim().relay.closed
    assert "Unavailable" not in statuses(cs, 1, m)
    a.swipe("TAG1")
    await cs.wait_for_call("StopTransaction", after=m)
    await wait_status(cs, 1, "Unavailable", after=m)
    a.unplug()
    await quiet(0.2)
    assert a.state() == "UNAVAILABLE"


async def test_change_availability_connector_zero(cs: CentralSystem, start_agent: StartAgent) -> None:
    """ChangeAvailability on connector 0 makes the whole charge point (every connector) Unavailable."""
    await start_agent(connectors=2)
    await wait_status(cs, 2, "Available")
    m = mark(cs)
    answer = await cs.call(CP, "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
    assert answer == {"status": "Accepted"}
    for cid in (0, 1, 2):
        await wait_status(cs, cid, "Unavailable", after=m)
    assert await cs.call(CP, "RemoteStartTransaction", {"idTag": "REMOTE1"}) == {"status": "Rejected"}
    m = mark(cs)
    answer = await cs.call(CP, "ChangeAvailability", {"connectorId": 0, "type": "Operative"})
    assert answer == {"status": "Accepted"}
    for cid in (0, 1, 2):
        await wait_status(cs, cid, "Available", after=m)


async def test_change_availability_persists_across_restart(
    cs: CentralSystem, start_agent: StartAgent, tmp_path: Path
) -> None:
    """ChangeAvailability Inoperative survives a restart of the charge point."""
    a = await start_agent()
    assert await cs.call(CP, "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}) == {
        "status": "Accepted"
    }
    await a.stop()
    m = mark(cs)
    b = await start_agent(db=tmp_path / "agent.db")
    await wait_status(cs, 1, "Unavailable", after=m)
    assert b.state() == "UNAVAILABLE"
    assert "Available" not in statuses(cs, 1, m)


async def test_change_availability_unknown_connector(cs: CentralSystem, start_agent: StartAgent) -> None:
    """ChangeAvailability for a connector that does not exist is Rejected."""
    await start_agent()
    answer = await cs.call(CP, "ChangeAvailability", {"connectorId": 4, "type": "Inoperative"})
    assert answer == {"status": "Rejected"}


# ----------------------------------------------------------------------------------------------------------------
# Heartbeat
# ----------------------------------------------------------------------------------------------------------------


async def test_heartbeat_interval_from_boot(cs: CentralSystem, start_agent: StartAgent) -> None:
    """Heartbeat: the interval from BootNotification.conf is adopted; with no other traffic, Heartbeats flow."""
    cs.heartbeat_interval = 1
    await start_agent()
    first = await cs.wait_for_call("Heartbeat", timeout=3)
    second = await cs.wait_for_call("Heartbeat", after=index(cs, first) + 1, timeout=3)
    gap = (second.ts - first.ts).total_seconds()
    assert 0.9 <= gap <= 1.6, gap
    keys, _ = await _config(cs, "HeartbeatInterval")
    assert keys["HeartbeatInterval"]["value"] == "1"


async def test_heartbeat_not_needed_while_other_traffic_flows(
    cs: CentralSystem, start_agent: StartAgent
) -> None:
    """Heartbeat: other PDUs sent within the interval make a Heartbeat unnecessary (OCPP 1.6 §4.6)."""
    cs.heartbeat_interval = 2
    a = await start_agent(settings={"meter_value_sample_interval_s": 1})
    await start_session(a, cs)
    m = mark(cs)
    await quiet(2.6)
    sent = [f.action for f in incoming_calls(cs, m)]
    assert sent.count("MeterValues") >= 2
    assert "Heartbeat" not in sent


async def test_heartbeat_change_configuration(cs: CentralSystem, start_agent: StartAgent) -> None:
    """Heartbeat: a HeartbeatInterval changed by ChangeConfiguration applies at once."""
    await start_agent()
    m = mark(cs)
    assert await cs.call(CP, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "1"}) == {
        "status": "Accepted"
    }
    await cs.wait_for_call("Heartbeat", after=m, timeout=2)
