"""E. Transactions over OCPP 2.0.1: TxStartPoint and TxStopPoint, chargingState and triggerReason, the
invalid-id rules, and a remote start's remoteStartId and token type across a restart. The agent runs against the
bundled central system's 2.0.1 side; tests are named after the OCA OCPP 2.0.1 charging-station test cases
(TC_E_nn_CS) and the CSMS checks every frame of the charger against the 2.0.1 schemas."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from backend_stub.app import Csms
from backend_stub.store import CsmsStore
from chargepoint.agent import Agent
from tests.integration.conftest import FAST_TIMING, RunningAgent, agent_config, until
from tests.integration.test_csms import TARIFF
from tests.integration.test_robustness import keep_stop_data
from tests.integration.v201_support import (
    BOTH,
    CP,
    StartAgent,
    answer_to,
    calls,
    csms,
    events_of,
    mark,
    start_agent,
    start_session,
    still_connected,
    wait_call,
)

__all__ = ["csms", "start_agent"]


def _tx_event(kind: str, trigger: str | None = None, state: str | None = None) -> Any:
    """A TransactionEvent filter: eventType, and triggerReason/chargingState when given."""

    def match(p: dict[str, Any]) -> bool:
        return (
            p["eventType"] == kind
            and (trigger is None or p["triggerReason"] == trigger)
            and (state is None or p["transactionInfo"].get("chargingState") == state)
        )

    return match


async def _set(csms: Csms, variable: str, value: str, component: str = "TxCtrlr") -> str:
    data = {"component": {"name": component}, "variable": {"name": variable}, "attributeValue": value}
    answer = await csms.server.call(CP, "SetVariables", {"setVariableData": [data]})
    status: str = answer["setVariableResult"][0]["attributeStatus"]
    return status


def _relay_closed(a: RunningAgent, cid: int = 1) -> bool:
    return bool(a.agent.sims[cid].relay.closed)


def _check_sequence(events: list[dict[str, Any]]) -> None:
    assert [e["seqNo"] for e in events] == list(range(len(events))), "seqNo counts 0, 1, 2, ... without a gap"
    assert events[0]["eventType"] == "Started" and events[-1]["eventType"] == "Ended"
    assert all(e["eventType"] == "Updated" for e in events[1:-1])


def _card(csms: Csms, tag: str) -> None:
    csms.store.add_card(tag, user_id=csms.store.add_user(f"user-{tag}").id, mode="personal")


async def test_tc_e_01_cs_start_point_power_path_closed_reports_the_charging_states(
    csms: Csms, start_agent: StartAgent
) -> None:
    _card(csms, "CARD1")
    a = await start_agent()
    after = mark(csms)
    started = await start_session(a, csms, "CARD1")
    assert started["triggerReason"] == "Authorized"
    assert started["transactionInfo"]["chargingState"] == "EVConnected"
    assert started["numberOfPhasesUsed"] == 3
    await wait_call(
        csms, "TransactionEvent", after=after, where=_tx_event("Updated", "ChargingStateChanged", "Charging")
    )
    a.swipe("CARD1")
    await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Ended", "StopAuthorized"))
    tx = started["transactionInfo"]["transactionId"]
    _check_sequence(await events_of(csms, tx, after))


async def test_tc_e_09_cs_start_point_ev_connected_the_cable_starts_and_a_card_authorizes(
    csms: Csms, start_agent: StartAgent
) -> None:
    _card(csms, "CARD1")
    a = await start_agent()
    assert await _set(csms, "TxStartPoint", "EVConnected") == "Accepted"
    after = mark(csms)
    a.plug()
    started = (await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Started"))).payload
    assert started["triggerReason"] == "CablePluggedIn"
    assert started["transactionInfo"]["chargingState"] == "EVConnected"
    assert "idToken" not in started
    assert not _relay_closed(a), "nobody authorized: no power"
    a.swipe("CARD1")
    authorized = await wait_call(
        csms, "TransactionEvent", after=after, where=_tx_event("Updated", "Authorized")
    )
    assert authorized.payload["idToken"] == {"idToken": "CARD1", "type": "ISO14443"}
    await wait_call(
        csms, "TransactionEvent", after=after, where=_tx_event("Updated", "ChargingStateChanged", "Charging")
    )
    await until(lambda: _relay_closed(a), 5, "the relay never closed after the authorization")
    a.swipe("CARD1")
    ended = await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Ended"))
    assert ended.payload["transactionInfo"]["stoppedReason"] == "Local"
    tx = started["transactionInfo"]["transactionId"]
    _check_sequence(await events_of(csms, tx, after))
    # The central system billed the session to the card that authorized it later.
    await until(lambda: csms.store.recent_transactions(cp_id=CP)[0].id_tag == "CARD1", 5, "not attributed")
    # A cable nobody authorizes starts a transaction the unplug ends.
    a.unplug()
    await a.wait_state("AVAILABLE")
    after = mark(csms)
    a.plug()
    second = (await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Started"))).payload
    a.unplug()
    ended = await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Ended"))
    assert ended.payload["transactionInfo"]["transactionId"] == second["transactionInfo"]["transactionId"]
    assert ended.payload["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    assert "idToken" not in ended.payload


async def test_tc_e_10_cs_start_point_authorized_local_then_the_cable(
    csms: Csms, start_agent: StartAgent
) -> None:
    _card(csms, "CARD1")
    a = await start_agent()
    assert await _set(csms, "TxStartPoint", "Authorized") == "Accepted"
    after = mark(csms)
    a.swipe("CARD1")
    started = (await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Started"))).payload
    assert started["triggerReason"] == "Authorized"
    assert started["transactionInfo"]["chargingState"] == "Idle"  # no EV yet
    assert started["idToken"] == {"idToken": "CARD1", "type": "ISO14443"}
    assert not _relay_closed(a)
    a.plug()
    plugged = await wait_call(
        csms, "TransactionEvent", after=after, where=_tx_event("Updated", "CablePluggedIn")
    )
    assert plugged.payload["transactionInfo"]["chargingState"] == "EVConnected"
    await wait_call(
        csms, "TransactionEvent", after=after, where=_tx_event("Updated", "ChargingStateChanged", "Charging")
    )
    await a.wait_state("CHARGING")
    a.unplug()
    ended = await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Ended"))
    assert ended.payload["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    _check_sequence(await events_of(csms, started["transactionInfo"]["transactionId"], after))


async def test_start_point_authorized_connector_is_occupied_only_once_the_cable_is_in(
    csms: Csms, start_agent: StartAgent
) -> None:
    """ConnectorStatusEnumType (Part 2; E03 IdToken first): Occupied is the connector's state, reported when the
    cable is plugged in; an authorization (even one that started the transaction) leaves it Available."""
    _card(csms, "CARD1")
    a = await start_agent()
    assert await _set(csms, "TxStartPoint", "Authorized") == "Accepted"
    after = mark(csms)
    a.swipe("CARD1")
    await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Started"))
    trigger = {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}}
    assert await csms.server.call(CP, "TriggerMessage", trigger) == {"status": "Accepted"}
    now = await wait_call(csms, "StatusNotification", after=after, where=lambda p: p["connectorStatus"] != "")
    assert now.payload["connectorStatus"] == "Available"
    assert [p["connectorStatus"] for p in calls(csms, "StatusNotification", after)] == ["Available"]
    plugged_at = mark(csms)
    a.plug()
    await wait_call(
        csms, "StatusNotification", after=plugged_at, where=lambda p: p["connectorStatus"] == "Occupied"
    )
    await a.wait_state("CHARGING")


async def test_tc_e_05_cs_authorization_first_cable_plugin_timeout_ends_the_transaction(
    csms: Csms, start_agent: StartAgent
) -> None:
    _card(csms, "CARD1")
    a = await start_agent()
    assert await _set(csms, "TxStartPoint", "Authorized") == "Accepted"
    assert await _set(csms, "EVConnectionTimeOut", "1") == "Accepted"
    after = mark(csms)
    a.swipe("CARD1")
    await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Started"))
    ended = await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Ended"), timeout=10)
    assert ended.payload["triggerReason"] == "EVConnectTimeout"
    assert ended.payload["transactionInfo"]["stoppedReason"] == "Timeout"
    await a.wait_state("AVAILABLE")


async def test_tc_e_13_cs_start_point_authorized_remote_start_before_the_cable(
    csms: Csms, start_agent: StartAgent
) -> None:
    _card(csms, "REMOTE1")
    a = await start_agent()
    assert await _set(csms, "TxStartPoint", "Authorized") == "Accepted"
    after = mark(csms)
    request = {"idToken": {"idToken": "REMOTE1", "type": "Central"}, "remoteStartId": 5, "evseId": 1}
    assert await csms.server.call(CP, "RequestStartTransaction", request) == {"status": "Accepted"}
    started = (await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Started"))).payload
    assert started["triggerReason"] == "RemoteStart"
    assert started["transactionInfo"]["remoteStartId"] == 5
    assert started["transactionInfo"]["chargingState"] == "Idle"
    assert started["idToken"] == {"idToken": "REMOTE1", "type": "Central"}
    a.plug()
    await a.wait_state("CHARGING")
    tx = started["transactionInfo"]["transactionId"]
    assert await csms.server.call(CP, "RequestStopTransaction", {"transactionId": tx}) == {
        "status": "Accepted"
    }
    ended = await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Ended", "RemoteStop"))
    assert ended.payload["transactionInfo"]["stoppedReason"] == "Remote"


async def test_tc_e_14_cs_stop_point_ev_connected_deauthorizing_waits_for_the_cable(
    csms: Csms, start_agent: StartAgent
) -> None:
    _card(csms, "CARD1")
    a = await start_agent()
    assert await _set(csms, "TxStopPoint", "EVConnected") == "Accepted"
    after = mark(csms)
    started = await start_session(a, csms, "CARD1")
    tx = started["transactionInfo"]["transactionId"]
    a.swipe("CARD1")
    stop = await wait_call(
        csms, "TransactionEvent", after=after, where=_tx_event("Updated", "StopAuthorized")
    )
    assert stop.payload["idToken"]["idToken"] == "CARD1"
    await wait_call(
        csms,
        "TransactionEvent",
        after=after,
        where=_tx_event("Updated", "ChargingStateChanged", "SuspendedEVSE"),
    )
    await until(lambda: not _relay_closed(a), 5, "the relay stayed closed after the authorization ended")
    assert not [e for e in await events_of(csms, tx, after) if e["eventType"] == "Ended"]
    a.unplug()
    ended = await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Ended"))
    assert ended.payload["transactionInfo"]["stoppedReason"] == "EVDisconnected"
    _check_sequence(await events_of(csms, tx, after))
    # The same for RequestStopTransaction: the CSMS ends the authorization, the cable the transaction.
    await a.wait_state("AVAILABLE")
    after = mark(csms)
    started = await start_session(a, csms, "CARD1")
    tx = started["transactionInfo"]["transactionId"]
    assert await csms.server.call(CP, "RequestStopTransaction", {"transactionId": tx}) == {
        "status": "Accepted"
    }
    await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Updated", "RemoteStop"))
    await a.wait_state("SUSPENDED_EVSE")
    a.unplug()
    await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Ended"))


async def test_tc_e_16_cs_deauthorized_with_stop_tx_on_invalid_id_false_suspends_without_energy(
    csms: Csms, start_agent: StartAgent
) -> None:
    """StopTxOnInvalidId false and MaxEnergyOnInvalidId 0: an idToken the CSMS now blocks opens the relay; the
    transaction goes on (SuspendedEVSE) until the driver ends it."""
    _card(csms, "CARD1")
    a = await start_agent(settings={"local_pre_authorize": True})
    await start_session(a, csms, "CARD1")  # authorized online, so cached as Accepted
    a.swipe("CARD1")
    await wait_call(csms, "TransactionEvent", where=_tx_event("Ended"))
    a.unplug()
    await a.wait_state("AVAILABLE")
    assert await _set(csms, "StopTxOnInvalidId", "false") == "Accepted"
    csms.store.set_card_status("CARD1", "blocked")
    after = mark(csms)
    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("CARD1")  # pre-authorized from the cache
    started = await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Started"))
    assert (await answer_to(csms, started)).payload["idTokenInfo"]["status"] == "Blocked"
    await wait_call(
        csms,
        "TransactionEvent",
        after=after,
        where=_tx_event("Updated", "ChargingStateChanged", "SuspendedEVSE"),
    )
    assert not _relay_closed(a)
    assert not calls(csms, "TransactionEvent", after) or not [
        p for p in calls(csms, "TransactionEvent", after) if p["eventType"] == "Ended"
    ]
    a.unplug()
    ended = await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Ended"))
    assert ended.payload["transactionInfo"]["stoppedReason"] == "EVDisconnected"


async def test_tx_start_and_stop_points_refuse_unsupported_values_and_persist(
    csms: Csms, start_agent: StartAgent, tmp_path: Path
) -> None:
    a = await start_agent(db=tmp_path / "points.db")
    for variable, value in (
        ("TxStartPoint", "EnergyTransfer"),
        ("TxStartPoint", "DataSigned"),
        ("TxStartPoint", "ParkingBayOccupancy"),
        ("TxStopPoint", "EnergyTransfer"),
        ("TxStartPoint", "Plugged"),
        ("TxStartPoint", ""),
        ("TxStopPoint", "Authorized,Authorized"),
    ):
        assert await _set(csms, variable, value) == "Rejected", (variable, value)
    assert await _set(csms, "TxStartPoint", "Authorized,EVConnected") == "Accepted"
    assert await _set(csms, "TxStopPoint", "EVConnected") == "Accepted"
    await a.stop()
    await start_agent(db=tmp_path / "points.db")
    answer = await csms.server.call(
        CP,
        "GetVariables",
        {
            "getVariableData": [
                {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStartPoint"}},
                {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStopPoint"}},
            ]
        },
    )
    assert [r["attributeValue"] for r in answer["getVariableResult"]] == [
        "Authorized,EVConnected",
        "EVConnected",
    ]


async def test_remote_start_id_and_token_type_survive_a_restart_while_offline(tmp_path: Path) -> None:
    """F01 with the Started event queued offline: the agent restarts before it can tell the CSMS; the replayed
    Started still says RemoteStart, its remoteStartId and the token's type, and that it happened offline."""
    store = CsmsStore(tmp_path / "csms.db")
    store.put_tariff("T1", json.dumps(TARIFF))
    store.set_default_tariff_id("T1")
    store.add_charger(CP)
    store.add_card("REMOTE1", user_id=store.add_user("Ada").id, mode="personal")
    first = Csms(store, heartbeat_interval_s=60, admin_token="test-admin-token-v201-restart")
    await first.start()
    port = int(first.url.rsplit(":", 1)[1].split("/")[0])
    config = agent_config(first.url, tmp_path / "agent.db", csms=BOTH)
    agent = Agent(config, timing=FAST_TIMING)
    a = RunningAgent(agent, asyncio.create_task(agent.run()), first.server)  # type: ignore[arg-type]
    second: Csms | None = None
    try:
        await a.wait_booted()
        request = {"idToken": {"idToken": "REMOTE1", "type": "Central"}, "remoteStartId": 4242, "evseId": 1}
        assert await first.server.call(CP, "RequestStartTransaction", request) == {"status": "Accepted"}
        await first.stop()  # the central system goes away before the cable comes
        await until(
            lambda: agent.link is not None and not agent.link.online, 5, "the agent never went offline"
        )
        a.plug()
        await a.wait_state("CHARGING")
        await a.stop()  # restart: the Started (and the Ended of the shutdown) wait in the outbox
        second = Csms(store, heartbeat_interval_s=60, admin_token="test-admin-token-v201-restart", port=port)
        await second.start()
        agent = Agent(config, timing=FAST_TIMING)
        a = RunningAgent(agent, asyncio.create_task(agent.run()), second.server)  # type: ignore[arg-type]
        started = await second.server.wait_for_call(
            "TransactionEvent", CP, 10, where=lambda p: p["eventType"] == "Started"
        )
        payload = started.payload
        assert payload["triggerReason"] == "RemoteStart"
        assert payload["transactionInfo"]["remoteStartId"] == 4242
        assert payload["idToken"] == {"idToken": "REMOTE1", "type": "Central"}
        assert payload["offline"] is True
        await a.stop()
        assert second.server.violations == []
    finally:
        await a.stop()
        if second is not None:
            await second.stop()
        store.close()


async def test_tc_c_15_cs_stop_tx_on_invalid_id_false_max_energy_on_invalid_id_then_suspended(
    csms: Csms, start_agent: StartAgent
) -> None:
    """StopTxOnInvalidId false, MaxEnergyOnInvalidId 20 Wh: a transaction whose idToken the CSMS blocks charges on
    until it has delivered 20 Wh, then the relay opens (Updated ChargingStateChanged SuspendedEVSE)."""
    _card(csms, "CARD1")
    a = await start_agent(settings={"local_pre_authorize": True})
    await start_session(a, csms, "CARD1")  # authorized online, so cached as Accepted
    a.swipe("CARD1")
    await wait_call(csms, "TransactionEvent", where=_tx_event("Ended"))
    a.unplug()
    await a.wait_state("AVAILABLE")
    assert await _set(csms, "StopTxOnInvalidId", "false") == "Accepted"
    assert await _set(csms, "MaxEnergyOnInvalidId", "20") == "Accepted"
    csms.store.set_card_status("CARD1", "blocked")
    after = mark(csms)
    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("CARD1")
    started = await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Started"))
    assert (await answer_to(csms, started)).payload["idTokenInfo"]["status"] == "Blocked"
    station = a.agent.station
    assert station is not None
    tx = station.connectors[1].transaction
    assert tx is not None
    await wait_call(
        csms,
        "TransactionEvent",
        after=after,
        where=_tx_event("Updated", "ChargingStateChanged", "SuspendedEVSE"),
        timeout=20,
    )
    delivered = station.sessions.metering.current_energy_wh(1)
    assert delivered - tx.meter_start_wh >= 20  # it charged up to the limit first
    assert not _relay_closed(a)


async def test_an_ended_event_with_much_stop_data_fits_the_frame_limit(
    csms: Csms, start_agent: StartAgent
) -> None:
    """The 2.0.1 twin of the 1.6 StopTransaction case: the Ended event keeps its end register and the newest
    samples that fit in BytesPerMessage, so the CSMS (64 KiB frames) takes it and the link stays up."""
    _card(csms, "CARD1")
    a = await start_agent()
    started = await start_session(a, csms, "CARD1")
    keep_stop_data(a)
    after = mark(csms)
    a.unplug()
    ended = await wait_call(csms, "TransactionEvent", after=after, where=_tx_event("Ended"))
    assert ended.payload["transactionInfo"]["transactionId"] == started["transactionInfo"]["transactionId"]
    assert len(ended.raw) <= 65_000
    values = ended.payload["meterValue"]
    assert values[0]["sampledValue"][0]["context"] == "Transaction.End"  # the billed end register stays first
    assert 1 < len(values) < 101 and values[-1]["timestamp"] == "2026-01-01T01:39:00.000Z"
    still_connected(a)
