"""The agent over OCPP 2.0.1 against the bundled central system's real 2.0.1 side (its store, authorization and
billing), named after the OCA OCPP 2.0.1 Part 6 charging-station test cases (TC_<block>_<nn>_CS) each covers;
the CSMS checks every frame and answer of the charger against the 2.0.1 schemas (no violation may be recorded)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from backend_stub.app import Csms
from backend_stub.ocpp.server import CallErrorReply
from backend_stub.store import SecurityEventKind
from chargepoint.core.device_model import VARIABLES, Mutability
from chargepoint.core.model import ResetKind
from chargepoint.csms.v201 import mapping as mapping201
from tests.integration.conftest import until
from tests.integration.v201_support import (
    CP,
    StartAgent,
    answer_to,
    calls,
    csms,
    events_of,
    get_value,
    mark,
    set_value,
    start_agent,
    start_session,
    still_connected,
    var,
    wait_call,
)

__all__ = ["csms", "start_agent"]


# B. Provisioning ------------------------------------------------------------------------------------------------


async def test_tc_b_01_cs_cold_boot_accepted(csms: Csms, start_agent: StartAgent) -> None:
    await start_agent()
    assert csms.server.subprotocol(CP) == "ocpp2.0.1"
    boot = calls(csms, "BootNotification")[0]
    assert boot["reason"] == "PowerUp"
    assert boot["chargingStation"] == {
        "model": "PiCharger",
        "vendorName": "OpenChargeStack",
        "firmwareVersion": "0.1.0",
        "serialNumber": "SN-1",
    }
    status = await wait_call(csms, "StatusNotification")
    assert {k: status.payload[k] for k in ("evseId", "connectorId", "connectorStatus")} == {
        "evseId": 1,
        "connectorId": 1,
        "connectorStatus": "Available",
    }
    assert not any(
        p["evseId"] == 0 for p in calls(csms, "StatusNotification")
    )  # no station-wide status in 2.0.1


@pytest.mark.parametrize(
    ("versions", "negotiated"),
    [
        (["2.0.1", "1.6"], "ocpp2.0.1"),
        (["1.6", "2.0.1"], "ocpp1.6"),
        (["2.0.1"], "ocpp2.0.1"),
        (["1.6"], "ocpp1.6"),
    ],
)
async def test_the_first_offered_version_the_csms_speaks_is_used(
    csms: Csms, start_agent: StartAgent, versions: list[str], negotiated: str
) -> None:
    a = await start_agent(csms={"ocpp_versions": versions})
    assert csms.server.subprotocol(CP) == negotiated
    link = a.agent.link
    assert link is not None and type(link.session).subprotocol == negotiated  # type: ignore[attr-defined]


async def test_tc_b_06_cs_get_variables_single_and_multiple_values(
    csms: Csms, start_agent: StartAgent
) -> None:
    await start_agent(settings={"heartbeat_interval_s": 77})
    assert await get_value(csms, "OCPPCommCtrlr", "HeartbeatInterval") == {
        "attributeStatus": "Accepted",
        "attributeType": "Actual",
        "attributeValue": "60",  # the CSMS's BootNotification interval was adopted
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "HeartbeatInterval"},
    }
    answer = await csms.server.call(
        CP,
        "GetVariables",
        {
            "getVariableData": [
                var("ChargingStation", "NumberOfConnectors"),
                var("AuthCacheCtrlr", "Enabled"),
                var("NoSuchCtrlr", "Enabled"),
                var("TxCtrlr", "NoSuchVariable"),
                var("TxCtrlr", "EVConnectionTimeOut", attributeType="MaxSet"),
                {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}},
            ]
        },
    )
    statuses = [(r["attributeStatus"], r.get("attributeValue")) for r in answer["getVariableResult"]]
    assert statuses == [
        ("Accepted", "1"),
        ("Accepted", "true"),
        ("UnknownComponent", None),
        ("UnknownVariable", None),
        ("NotSupportedAttributeType", None),
        ("UnknownComponent", None),
    ]


async def test_tc_b_09_cs_set_variables_single_value_is_applied_and_persisted(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent()
    assert (await set_value(csms, "TxCtrlr", "EVConnectionTimeOut", "45"))["attributeStatus"] == "Accepted"
    assert a.station.settings.get_int("connection_timeout_s") == 45
    assert (await get_value(csms, "TxCtrlr", "EVConnectionTimeOut"))["attributeValue"] == "45"
    # Stored before the answer went out (the store's committed value, read back).
    store = a.agent.store
    assert store is not None and store.settings()["connection_timeout_s"] == "45"
    reboot = await set_value(csms, "OCPPCommCtrlr", "WebSocketPingInterval", "30")
    assert reboot["attributeStatus"] == "RebootRequired"


@pytest.mark.parametrize(
    ("component", "variable", "value", "status"),
    [
        ("NoSuchCtrlr", "HeartbeatInterval", "10", "UnknownComponent"),
        ("OCPPCommCtrlr", "NoSuchVariable", "10", "UnknownVariable"),
        ("ChargingStation", "NumberOfConnectors", "4", "Rejected"),  # read-only
        ("OCPPCommCtrlr", "HeartbeatInterval", "-1", "Rejected"),  # below its minimum
        ("OCPPCommCtrlr", "HeartbeatInterval", "86401", "Rejected"),  # above its maximum
        ("OCPPCommCtrlr", "HeartbeatInterval", "9" * 400, "Rejected"),  # huge
        ("OCPPCommCtrlr", "HeartbeatInterval", "NaN", "Rejected"),
        ("OCPPCommCtrlr", "HeartbeatInterval", "1e308", "Rejected"),
        ("OCPPCommCtrlr", "HeartbeatInterval", "12.5", "Rejected"),
        ("AuthCacheCtrlr", "Enabled", "maybe", "Rejected"),
        ("SampledDataCtrlr", "TxUpdatedMeasurands", "Energy.Active.Import.Register,Bogus", "Rejected"),
    ],
)
async def test_set_variables_bad_input_is_answered_and_changes_nothing(
    csms: Csms, start_agent: StartAgent, component: str, variable: str, value: str, status: str
) -> None:
    a = await start_agent()
    settings = a.station.settings
    before = {name: settings.text(name) for name in settings.names()}
    result = await set_value(csms, component, variable, value)
    assert result["attributeStatus"] == status
    assert {name: settings.text(name) for name in settings.names()} == before
    still_connected(a)


async def test_set_variables_of_an_unsupported_attribute_type(csms: Csms, start_agent: StartAgent) -> None:
    await start_agent()
    result = await set_value(csms, "OCPPCommCtrlr", "HeartbeatInterval", "10", attributeType="Target")
    assert result["attributeStatus"] == "NotSupportedAttributeType"


async def test_tc_b_53_cs_full_inventory_base_report_in_numbered_parts(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent()
    after = mark(csms)
    assert await csms.server.call(CP, "GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"}) == {
        "status": "Accepted"
    }
    await wait_call(csms, "NotifyReport", after=after, where=lambda p: not p.get("tbc"))
    parts = calls(csms, "NotifyReport", after)
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert [p.get("tbc", False) for p in parts] == [True] * (len(parts) - 1) + [False]
    assert {p["requestId"] for p in parts} == {7}
    reported = {
        (d["component"]["name"], d["variable"]["name"]): d
        for p in parts
        for d in p["reportData"]
        if "evse" not in d["component"]
    }
    availability = {("ChargingStation", v) for v in ("AvailabilityState", "Available", "Problem")}
    assert set(reported) == {(r.component, r.variable) for r in VARIABLES} | availability
    evse_parts = [d for p in parts for d in p["reportData"] if "evse" in d["component"]]
    assert {(d["component"]["name"], d["variable"]["name"]) for d in evse_parts} == {
        (c, v) for c in ("EVSE", "Connector") for v in ("AvailabilityState", "Available", "Problem")
    }
    heartbeat = reported[("OCPPCommCtrlr", "HeartbeatInterval")]
    assert heartbeat["variableAttribute"] == [
        {"type": "Actual", "value": "60", "mutability": "ReadWrite", "persistent": True, "constant": False}
    ]
    assert heartbeat["variableCharacteristics"]["dataType"] == "integer"
    assert heartbeat["variableCharacteristics"]["maxLimit"] == 86400
    # The central system kept the report as the charger's device model.
    model = {(v.component, v.variable): v.value for v in csms.store.device_model(CP)}
    assert model[("OCPPCommCtrlr", "HeartbeatInterval")] == "60"
    still_connected(a)


async def test_tc_b_12_cs_configuration_inventory_lists_only_writable_variables(
    csms: Csms, start_agent: StartAgent
) -> None:
    await start_agent()
    after = mark(csms)
    answer = await csms.server.call(
        CP, "GetBaseReport", {"requestId": 8, "reportBase": "ConfigurationInventory"}
    )
    assert answer == {"status": "Accepted"}
    await wait_call(csms, "NotifyReport", after=after, where=lambda p: not p.get("tbc"))
    reported = {
        (d["component"]["name"], d["variable"]["name"])
        for p in calls(csms, "NotifyReport", after)
        for d in p["reportData"]
    }
    # SecurityProfile is read-only in 2.0.1 (raised by a network profile, A05), whatever 1.6 allows.
    writable = {
        r
        for r, v in VARIABLES.items()
        if mapping201.MUTABILITY_OVERRIDE.get(v.setting, v.mutability) is not Mutability.READ_ONLY
    }
    assert reported == {(r.component, r.variable) for r in writable}


async def test_tc_b_20_cs_reset_without_transaction(csms: Csms, start_agent: StartAgent) -> None:
    a = await start_agent()
    after = mark(csms)
    assert await csms.server.call(CP, "Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    boot = await wait_call(csms, "BootNotification", after=after)
    assert boot.payload["reason"] == "RemoteReset"  # stored before the restart (B01)
    await a.wait_booted()
    assert a.agent.resets == [ResetKind.HARD]
    # An EVSE the station does not have (B11.FR.?): Rejected, nothing restarts.
    assert await csms.server.call(CP, "Reset", {"type": "OnIdle", "evseId": 99}) == {"status": "Rejected"}


async def test_tc_b_21_cs_reset_on_idle_waits_for_the_transaction_to_end(
    csms: Csms, start_agent: StartAgent
) -> None:
    csms.store.add_card("CARD1", user_id=csms.store.add_user("Ada").id, mode="personal")
    a = await start_agent()
    started = await start_session(a, csms, "CARD1")
    tx = started["transactionInfo"]["transactionId"]
    assert await csms.server.call(CP, "Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}
    assert a.agent.resets == []  # not while the transaction runs
    a.swipe("CARD1")
    ended = await wait_call(csms, "TransactionEvent", where=lambda p: p["eventType"] == "Ended")
    assert ended.payload["transactionInfo"]["transactionId"] == tx
    assert ended.payload["transactionInfo"]["stoppedReason"] == "Local"  # ended by the driver, not the reset
    await until(lambda: a.agent.resets == [ResetKind.SOFT], 5, "no reset after the transaction ended")


# C. Authorization -----------------------------------------------------------------------------------------------


async def test_authorize_with_id_token_type_and_a_blocked_card_starts_nothing(
    csms: Csms, start_agent: StartAgent
) -> None:
    user = csms.store.add_user("Ada")
    csms.store.add_card("BLOCKED1", user_id=user.id, mode="personal", status="blocked")
    a = await start_agent()
    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("BLOCKED1")
    authorize = await wait_call(csms, "Authorize")
    assert authorize.payload == {"idToken": {"idToken": "BLOCKED1", "type": "ISO14443"}}
    assert (await answer_to(csms, authorize)).payload["idTokenInfo"]["status"] == "Blocked"
    await until(lambda: a.station.connectors[1].pending_id_tag is None, 2, "a blocked card was taken")
    assert not calls(csms, "TransactionEvent")
    assert await csms.server.call(CP, "ClearCache", {}) == {"status": "Accepted"}
    # C11.FR.04: with the cache disabled (AuthCacheCtrlr.Enabled false) ClearCache is Rejected.
    cache_enabled = {"component": {"name": "AuthCacheCtrlr"}, "variable": {"name": "Enabled"}}
    answer = await csms.server.call(
        CP, "SetVariables", {"setVariableData": [{**cache_enabled, "attributeValue": "false"}]}
    )
    assert answer["setVariableResult"][0]["attributeStatus"] == "Accepted"
    assert await csms.server.call(CP, "ClearCache", {}) == {"status": "Rejected"}


# E. Transactions ------------------------------------------------------------------------------------------------


def _check_sequence(events: list[dict[str, Any]]) -> None:
    assert [e["seqNo"] for e in events] == list(range(len(events))), (
        "seqNo must count 0, 1, 2, ... without a gap"
    )
    assert [e["eventType"] for e in events if e["eventType"] != "Updated"] == ["Started", "Ended"]
    assert events[0]["eventType"] == "Started" and events[-1]["eventType"] == "Ended"


async def test_tc_e_06_cs_local_stop_and_the_prepaid_session_is_billed(
    csms: Csms, start_agent: StartAgent
) -> None:
    store = csms.store
    user = store.add_user("Ada")
    store.add_card("PREPAID1", user_id=user.id, mode="prepaid")
    store.topup("PREPAID1", 50_000, "topup-1")
    a = await start_agent(settings={"meter_value_sample_interval_s": 1})
    started = await start_session(a, csms, "PREPAID1")
    tx = started["transactionInfo"]["transactionId"]
    assert len(tx) <= 36
    assert started["triggerReason"] == "Authorized" and started["seqNo"] == 0
    assert started["evse"] == {"id": 1, "connectorId": 1}
    assert started["idToken"] == {"idToken": "PREPAID1", "type": "ISO14443"}
    begin = started["meterValue"][0]["sampledValue"][0]
    assert begin["context"] == "Transaction.Begin" and begin["measurand"] == "Energy.Active.Import.Register"
    assert "offline" not in started
    assert started["transactionInfo"]["chargingState"] == "EVConnected" and started["numberOfPhasesUsed"] == 3
    await wait_call(  # the relay closed: charging
        csms,
        "TransactionEvent",
        where=lambda p: (
            p["triggerReason"] == "ChargingStateChanged"
            and p["transactionInfo"]["chargingState"] == "Charging"
        ),
    )
    await wait_call(  # 1 s sampling
        csms, "TransactionEvent", where=lambda p: p["triggerReason"] == "MeterValuePeriodic"
    )
    a.swipe("PREPAID1")
    ended = await wait_call(csms, "TransactionEvent", where=lambda p: p["eventType"] == "Ended")
    assert ended.payload["triggerReason"] == "StopAuthorized"
    assert ended.payload["transactionInfo"]["stoppedReason"] == "Local"
    events = await events_of(csms, tx)
    _check_sequence(events)
    end_wh = ended.payload["meterValue"][0]["sampledValue"][0]["value"]
    assert end_wh > begin["value"]
    # The money: the bundled CSMS billed the session at 100.00 EUR/kWh to the prepaid card.
    await until(lambda: store.recent_transactions(cp_id=CP)[0].cost_minor is not None, 5, "not billed")
    billed = store.recent_transactions(cp_id=CP)[0]
    assert billed.station_tx_id == tx and billed.id_tag == "PREPAID1"
    assert billed.energy_wh == end_wh - begin["value"]
    assert billed.cost_minor == billed.energy_wh * 10  # 100.00 EUR/kWh = 10 cents per Wh, step 1 Wh
    assert store.balance("PREPAID1") == 50_000 - billed.cost_minor
    assert store.verify_balances() == []
    assert store.security_events(kind=SecurityEventKind.SEQUENCE_GAP) == []


async def test_tc_e_14_cs_ev_disconnected_ends_the_transaction(csms: Csms, start_agent: StartAgent) -> None:
    csms.store.add_card("CARD1", user_id=csms.store.add_user("Ada").id, mode="personal")
    a = await start_agent()
    started = await start_session(a, csms, "CARD1")
    a.unplug()
    ended = await wait_call(csms, "TransactionEvent", where=lambda p: p["eventType"] == "Ended")
    assert ended.payload["transactionInfo"] == {
        "transactionId": started["transactionInfo"]["transactionId"],
        "stoppedReason": "EVDisconnected",
    }
    assert ended.payload["triggerReason"] == "EVCommunicationLost"
    await wait_call(csms, "StatusNotification", where=lambda p: p["connectorStatus"] == "Available")


async def test_get_transaction_status_of_a_running_an_ended_and_an_unknown_transaction(
    csms: Csms, start_agent: StartAgent
) -> None:
    csms.store.add_card("CARD1", user_id=csms.store.add_user("Ada").id, mode="personal")
    a = await start_agent()
    started = await start_session(a, csms, "CARD1")
    tx = started["transactionInfo"]["transactionId"]
    running = await csms.server.call(CP, "GetTransactionStatus", {"transactionId": tx})
    assert running["ongoingIndicator"] is True
    unknown = await csms.server.call(CP, "GetTransactionStatus", {"transactionId": "no-such-transaction"})
    assert unknown == {"messagesInQueue": False, "ongoingIndicator": False}
    a.swipe("CARD1")
    await wait_call(csms, "TransactionEvent", where=lambda p: p["eventType"] == "Ended")
    store = a.agent.store
    assert store is not None
    await until(lambda: store.outbox_size() == 0, 5, "outbox not drained")
    assert await csms.server.call(CP, "GetTransactionStatus", {"transactionId": tx}) == {
        "messagesInQueue": False,
        "ongoingIndicator": False,
    }
    assert await csms.server.call(CP, "GetTransactionStatus", {}) == {"messagesInQueue": False}


# F. Remote control ----------------------------------------------------------------------------------------------


async def test_tc_f_01_cs_remote_start_cable_plugin_first_then_remote_stop(
    csms: Csms, start_agent: StartAgent
) -> None:
    csms.store.add_card("REMOTE1", user_id=csms.store.add_user("Ada").id, mode="personal")
    a = await start_agent()
    a.plug()
    await a.wait_state("PREPARING")
    after = mark(csms)
    answer = await csms.server.call(
        CP,
        "RequestStartTransaction",
        {"idToken": {"idToken": "REMOTE1", "type": "Central"}, "remoteStartId": 42, "evseId": 1},
    )
    assert answer == {"status": "Accepted"}
    started = await wait_call(
        csms, "TransactionEvent", after=after, where=lambda p: p["eventType"] == "Started"
    )
    assert started.payload["triggerReason"] == "RemoteStart"
    assert started.payload["transactionInfo"]["remoteStartId"] == 42
    assert started.payload["idToken"] == {"idToken": "REMOTE1", "type": "Central"}
    await a.wait_state("CHARGING")
    tx = started.payload["transactionInfo"]["transactionId"]
    assert await csms.server.call(CP, "RequestStopTransaction", {"transactionId": "not-" + tx[:30]}) == {
        "status": "Rejected"
    }
    assert await csms.server.call(CP, "RequestStopTransaction", {"transactionId": tx}) == {
        "status": "Accepted"
    }
    ended = await wait_call(csms, "TransactionEvent", where=lambda p: p["eventType"] == "Ended")
    assert ended.payload["triggerReason"] == "RemoteStop"
    assert ended.payload["transactionInfo"]["stoppedReason"] == "Remote"
    _check_sequence(await events_of(csms, tx))


async def test_request_start_on_an_unknown_evse_is_rejected(csms: Csms, start_agent: StartAgent) -> None:
    await start_agent()
    answer = await csms.server.call(
        CP,
        "RequestStartTransaction",
        {"idToken": {"idToken": "X", "type": "Central"}, "remoteStartId": 1, "evseId": 9},
    )
    assert answer == {"status": "Rejected"}


async def test_unlock_connector_unknown_during_a_transaction_and_idle(
    csms: Csms, start_agent: StartAgent
) -> None:
    csms.store.add_card("CARD1", user_id=csms.store.add_user("Ada").id, mode="personal")
    a = await start_agent()
    unknown = await csms.server.call(CP, "UnlockConnector", {"evseId": 3, "connectorId": 1})
    assert unknown == {"status": "UnknownConnector"}
    await start_session(a, csms, "CARD1")
    busy = await csms.server.call(CP, "UnlockConnector", {"evseId": 1, "connectorId": 1})
    assert busy == {"status": "OngoingAuthorizedTransaction"}  # F05.FR.02: the transaction goes on
    assert a.station.connectors[1].transaction is not None
    a.swipe("CARD1")
    await wait_call(csms, "TransactionEvent", where=lambda p: p["eventType"] == "Ended")
    assert await csms.server.call(CP, "UnlockConnector", {"evseId": 1, "connectorId": 1}) == {
        "status": "Unlocked"
    }


async def test_trigger_message(csms: Csms, start_agent: StartAgent) -> None:
    await start_agent()
    after = mark(csms)
    answer = await csms.server.call(
        CP, "TriggerMessage", {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}}
    )
    assert answer == {"status": "Accepted"}
    await wait_call(csms, "StatusNotification", after=after)
    assert await csms.server.call(CP, "TriggerMessage", {"requestedMessage": "Heartbeat"}) == {
        "status": "Accepted"
    }
    await wait_call(csms, "Heartbeat", after=after)
    assert await csms.server.call(CP, "TriggerMessage", {"requestedMessage": "MeterValues"}) == {
        "status": "Accepted"
    }
    meter = await wait_call(csms, "MeterValues", after=after)
    assert meter.payload["evseId"] == 1
    assert meter.payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    # F06.FR.17: the boot is Accepted, so a triggered BootNotification is Rejected.
    boot = await csms.server.call(CP, "TriggerMessage", {"requestedMessage": "BootNotification"})
    assert boot == {"status": "Rejected"}
    # PublishFirmwareStatusNotification (a Local Controller's) is not one this station sends.
    publish = await csms.server.call(
        CP, "TriggerMessage", {"requestedMessage": "PublishFirmwareStatusNotification"}
    )
    assert publish == {"status": "NotImplemented"}
    unknown_evse = await csms.server.call(
        CP, "TriggerMessage", {"requestedMessage": "Heartbeat", "evse": {"id": 5}}
    )
    assert unknown_evse == {"status": "Rejected"}


async def test_tc_f_13_cs_trigger_message_transaction_event_of_the_running_transaction(
    csms: Csms, start_agent: StartAgent
) -> None:
    """F06: TriggerMessage TransactionEvent is Accepted for an EVSE with a transaction and Rejected for one without;
    the triggered Updated event (triggerReason Trigger, meter values with context Trigger) goes through the outbox,
    so its seqNo follows the transaction's other events with no gap."""
    csms.store.add_card("CARD1", user_id=csms.store.add_user("Ada").id, mode="personal")
    a = await start_agent()
    idle = await csms.server.call(
        CP, "TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": 1}}
    )
    assert idle == {"status": "Rejected"}
    started = await start_session(a, csms, "CARD1")
    tx = started["transactionInfo"]["transactionId"]
    after = mark(csms)
    answer = await csms.server.call(
        CP, "TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": 1}}
    )
    assert answer == {"status": "Accepted"}
    triggered = await wait_call(
        csms, "TransactionEvent", after=after, where=lambda p: p["triggerReason"] == "Trigger"
    )
    assert triggered.payload["eventType"] == "Updated"
    assert triggered.payload["transactionInfo"]["transactionId"] == tx
    assert triggered.payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    a.unplug()
    await wait_call(csms, "TransactionEvent", where=lambda p: p["eventType"] == "Ended")
    _check_sequence(await events_of(csms, tx))


# G. Availability ------------------------------------------------------------------------------------------------


async def test_change_availability_of_the_station_an_evse_and_a_connector(
    csms: Csms, start_agent: StartAgent
) -> None:
    csms.store.add_card("CARD1", user_id=csms.store.add_user("Ada").id, mode="personal")
    a = await start_agent()
    after = mark(csms)
    assert await csms.server.call(CP, "ChangeAvailability", {"operationalStatus": "Inoperative"}) == {
        "status": "Accepted"
    }
    await wait_call(
        csms, "StatusNotification", after=after, where=lambda p: p["connectorStatus"] == "Unavailable"
    )
    after = mark(csms)
    answer = await csms.server.call(CP, "ChangeAvailability", {"operationalStatus": "Operative"})
    assert answer == {"status": "Accepted"}
    await wait_call(
        csms, "StatusNotification", after=after, where=lambda p: p["connectorStatus"] == "Available"
    )
    unknown = await csms.server.call(
        CP, "ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 2}}
    )
    assert unknown == {"status": "Rejected"}
    await start_session(a, csms, "CARD1")
    scheduled = await csms.server.call(
        CP, "ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1, "connectorId": 1}}
    )
    assert scheduled == {"status": "Scheduled"}
    a.swipe("CARD1")
    await wait_call(
        csms,
        "StatusNotification",
        where=lambda p: p["connectorStatus"] == "Unavailable",
        after=mark(csms) - 1,
    )


# P. DataTransfer and errors -------------------------------------------------------------------------------------


async def test_data_transfer_is_unknown_vendor(csms: Csms, start_agent: StartAgent) -> None:
    await start_agent()
    answer = await csms.server.call(CP, "DataTransfer", {"vendorId": "com.example"})
    assert answer == {"status": "UnknownVendorId"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('[2,"bad-1","Reset",{"type":NaN}]', "FormatViolation"),
        ('[2,"bad-2","Reset",{"type":"Sideways"}]', None),  # a schema violation: some CallError
        ('[2,"bad-3","GetTransactionStatus",{"transactionId":"x","n":1e999}]', "PropertyConstraintViolation"),
        ('[2,"bad-4","NoSuchAction",{}]', "NotImplemented"),
        ('[2,"bad-5","SetDisplayMessage",{}]', "NotSupported"),
        ('[2,"bad-6"]', "RpcFrameworkError"),
        ('[7,"bad-7","Reset",{}]', "MessageTypeNotSupported"),
        (
            '[2,"bad-8","ChangeAvailability",{"operationalStatus":"Operative","evse":{"id":-1}}]',
            "PropertyConstraintViolation",
        ),
        (
            '[2,"bad-9","GetVariables",{"getVariableData":['
            + ",".join(['{"component":{"name":"A"},"variable":{"name":"B"}}'] * 65)
            + "]}]",
            "OccurrenceConstraintViolation",
        ),
    ],
)
async def test_malformed_frames_get_a_2_0_1_call_error_and_the_link_stays_up(
    csms: Csms, start_agent: StartAgent, frame: str, code: str | None
) -> None:
    a = await start_agent()
    unique_id = json.loads(frame.replace("NaN", "0").replace("1e999", "1"))[1]
    after = mark(csms)
    await csms.server.send_raw(CP, frame)
    reply = await csms.server.wait_for(
        lambda f: f.direction == "in" and f.unique_id == unique_id and f.message_type in (3, 4),
        5,
        after=after,
    )
    assert reply.message_type == 4
    if code is not None:
        assert json.loads(reply.raw)[2] == code
    # The link is up and the station still answers.
    assert await csms.server.call(CP, "DataTransfer", {"vendorId": "x"}) == {"status": "UnknownVendorId"}
    still_connected(a)
    csms.server.violations.clear()  # raw frames: the server does not know the uniqueIds answered


async def test_a_call_error_from_the_station_is_raised_to_the_csms(
    csms: Csms, start_agent: StartAgent
) -> None:
    await start_agent()
    with pytest.raises(CallErrorReply) as err:
        await csms.server.call(CP, "SetChargingProfile", {"evseId": 1, "chargingProfile": {}})
    # A profile without its required fields: ProtocolError is what the ocpp package answers (OCPP-J 2.0.1 §4.2.3).
    assert err.value.code in ("ProtocolError", "FormatViolation", "OccurrenceConstraintViolation")


async def test_a_started_event_answered_blocked_ends_the_transaction_stop_tx_on_invalid_id(
    csms: Csms, start_agent: StartAgent
) -> None:
    """E05/C10: a card started from the authorization cache that the CSMS now blocks is deauthorized
    (TxCtrlr.StopTxOnInvalidId true)."""
    csms.store.add_card("CARD1", user_id=csms.store.add_user("Ada").id, mode="personal")
    a = await start_agent(settings={"local_pre_authorize": True})
    await start_session(a, csms, "CARD1")  # authorized online, so cached as Accepted
    a.swipe("CARD1")
    await wait_call(csms, "TransactionEvent", where=lambda p: p["eventType"] == "Ended")
    a.unplug()
    await a.wait_state("AVAILABLE")
    csms.store.set_card_status("CARD1", "blocked")
    after = mark(csms)
    a.plug()
    await a.wait_state("PREPARING")
    a.swipe("CARD1")  # pre-authorized from the cache: no Authorize
    started = await wait_call(
        csms, "TransactionEvent", after=after, where=lambda p: p["eventType"] == "Started"
    )
    assert (await answer_to(csms, started)).payload["idTokenInfo"]["status"] == "Blocked"
    ended = await wait_call(csms, "TransactionEvent", after=after, where=lambda p: p["eventType"] == "Ended")
    assert ended.payload["transactionInfo"]["stoppedReason"] == "DeAuthorized"
    assert ended.payload["triggerReason"] == "Deauthorized"
    assert not calls(csms, "Authorize", after)


async def test_tc_b_02_cs_cold_boot_pending_then_accepted(csms: Csms, start_agent: StartAgent) -> None:
    csms.store.set_charger_status(CP, "pending")
    csms.central.heartbeat_interval_s = 1  # the retry interval the Pending answer gives
    a = await start_agent(boot=False)
    boot = await wait_call(csms, "BootNotification")
    assert (await answer_to(csms, boot)).payload["status"] == "Pending"
    # B02.FR.?: while Pending the CSMS may read the device model; the station answers.
    assert (await get_value(csms, "OCPPCommCtrlr", "HeartbeatInterval"))["attributeStatus"] == "Accepted"
    after = mark(csms)
    await wait_call(csms, "BootNotification", after=after, timeout=5)  # retried after the interval
    assert {f.action for f in csms.server.log if f.direction == "in" and f.message_type == 2} == {
        "BootNotification"
    }
    csms.store.set_charger_status(CP, "accepted")
    await a.wait_booted(timeout=10)
    await wait_call(csms, "StatusNotification", after=after)


# J. Meter values ------------------------------------------------------------------------------------------------


async def test_clock_aligned_meter_values_outside_a_transaction(csms: Csms, start_agent: StartAgent) -> None:
    """J01: MeterValues of an idle EVSE at each AlignedDataCtrlr.Interval, set over SetVariables."""
    await start_agent()
    after = mark(csms)
    assert (await set_value(csms, "AlignedDataCtrlr", "Interval", "1"))["attributeStatus"] == "Accepted"
    meter = await wait_call(csms, "MeterValues", after=after, timeout=5)
    assert meter.payload["evseId"] == 1
    value = meter.payload["meterValue"][0]["sampledValue"][0]
    assert value["context"] == "Sample.Clock" and value["measurand"] == "Energy.Active.Import.Register"
    assert value["unitOfMeasure"] == {"unit": "Wh"} and value["value"] >= 1000


async def test_a_burst_of_get_base_report_is_bounded_and_every_accepted_report_is_sent_whole(
    csms: Csms, start_agent: StartAgent
) -> None:
    """A CSMS asking for report after report faster than they go out gets Rejected beyond a few in flight
    (B07: Rejected), instead of the station piling up tasks; each Accepted report arrives complete."""
    a = await start_agent()
    table = csms.server.handlers_by_subprotocol["ocpp2.0.1"]
    plain = table["NotifyReport"]

    async def slow(cp_id: str, payload: dict[str, Any]) -> Any:
        await asyncio.sleep(0.3)  # a slow central system: the reports queue up at the station
        return plain(cp_id, payload)

    table["NotifyReport"] = slow
    after = mark(csms)
    for n in range(12):
        await csms.server.send_raw(
            CP, json.dumps([2, f"rep-{n}", "GetBaseReport", {"requestId": n, "reportBase": "FullInventory"}])
        )
    answers = [
        await csms.server.wait_for(
            lambda f, n=n: f.direction == "in" and f.unique_id == f"rep-{n}", 5, after=after
        )
        for n in range(12)
    ]
    statuses = [json.loads(f.raw)[2]["status"] for f in answers]
    accepted = [n for n, s in enumerate(statuses) if s == "Accepted"]
    assert set(statuses) == {"Accepted", "Rejected"} and 1 <= len(accepted) <= 4, statuses
    for n in accepted:
        await wait_call(
            csms,
            "NotifyReport",
            after=after,
            where=lambda p, n=n: p["requestId"] == n and not p.get("tbc"),
            timeout=30,
        )
    reported = {p["requestId"] for p in calls(csms, "NotifyReport", after)}
    assert reported == set(accepted)
    still_connected(a)
    csms.server.violations.clear()  # raw frames: the server does not know the uniqueIds answered
