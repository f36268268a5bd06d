"""The OCPP 2.0.1 version of the load-test charger: its frames and answers against the ocpp package's schemas."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from ocpp.messages import CallResult

from loadtests.protocol import (
    VERSIONS,
    ChargerView,
    ConfigChanged,
    Ocpp201,
    RemoteStart,
    RemoteStop,
    ResetRequested,
    StationInfo,
    StopReason,
    Trigger,
    answer_call,
    validate,
)

_ids = (f"tx-{n:032d}" for n in itertools.count())
V201 = Ocpp201(new_id=lambda: next(_ids))
TX = "0f9e8d7c-6b5a-4938-a7b6-c5d4e3f2a1b0"
IDLE = ChargerView(connector_ids=(1,), transaction_id=None, busy=False, config=V201.default_config())
CHARGING = ChargerView(connector_ids=(1,), transaction_id=TX, busy=True, config=V201.default_config())
STARTING = ChargerView(
    connector_ids=(1,), transaction_id=None, busy=True, config=V201.default_config(), session=True
)
HEARTBEAT = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}


def test_every_built_frame_is_schema_valid_and_every_stop_reason_is_mapped() -> None:
    tx_id = V201.new_transaction_id()
    assert tx_id == "tx-00000000000000000000000000000000"  # the injected generator, not a fixed id
    requests = [
        V201.boot_notification(StationInfo("CP-" + "x" * 40)),
        V201.heartbeat(),
        *(V201.status_notification(1, s) for s in ("Available", "Preparing", "Charging", "Unavailable")),
        V201.authorize("TAG"),
        V201.start_transaction(1, "TAG", 10, transaction_id=tx_id, seq_no=0),
        V201.meter_values(1, tx_id, 1234, 7400.0, seq_no=1),
        V201.meter_values(1, None, 1234, 0.0),
        *(V201.stop_transaction(tx_id, "TAG", 20, reason, seq_no=2) for reason in StopReason),
        V201.notification("FirmwareStatusNotification"),
    ]
    for request in requests:
        assert request is not None
        V201.validate_call(request.action, request.payload)
    assert VERSIONS["ocpp2.0.1"].schema_version == "2.0.1"
    assert V201.status_notification(0, "Available") is None  # 2.0.1 has no connector 0


def test_a_session_is_three_transaction_events_with_the_station_id_and_seq_no() -> None:
    started = V201.start_transaction(1, "TAG", 10, transaction_id=TX, seq_no=0).payload
    updated = V201.meter_values(1, TX, 1500, 7400.0, seq_no=1).payload
    ended = V201.stop_transaction(TX, "TAG", 2000, StopReason.REMOTE, seq_no=2).payload
    assert [p["eventType"] for p in (started, updated, ended)] == ["Started", "Updated", "Ended"]
    assert [p["seqNo"] for p in (started, updated, ended)] == [0, 1, 2]
    assert {p["transactionInfo"]["transactionId"] for p in (started, updated, ended)} == {TX}
    assert [p["triggerReason"] for p in (started, updated, ended)] == [
        "Authorized",
        "MeterValuePeriodic",
        "RemoteStop",
    ]
    assert started["idToken"] == {"idToken": "TAG", "type": "ISO14443"}
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"
    energy = [p["meterValue"][0]["sampledValue"][0] for p in (started, updated, ended)]
    assert [(e["value"], e["measurand"], e["unitOfMeasure"]["unit"]) for e in energy] == [
        (10, "Energy.Active.Import.Register", "Wh"),
        (1500, "Energy.Active.Import.Register", "Wh"),
        (2000, "Energy.Active.Import.Register", "Wh"),
    ]
    assert [e["context"] for e in energy] == ["Transaction.Begin", "Sample.Periodic", "Transaction.End"]
    assert V201.transaction_id({}, TX) == TX
    assert (
        V201.id_tag_status({}) == "Accepted"
        and V201.id_tag_status({"idTokenInfo": {"status": "Blocked"}}) == "Blocked"
    )


START = {"idToken": {"idToken": "R1", "type": "ISO14443"}, "remoteStartId": 7}
# (action, payload, view, expected answer payload or error code, expected intents)
CASES: list[tuple[str, dict[str, Any], ChargerView, Any, tuple[Any, ...]]] = [
    ("RequestStartTransaction", START, IDLE, {"status": "Accepted"}, (RemoteStart("R1", 1, 7, "ISO14443"),)),
    ("RequestStartTransaction", START, CHARGING, {"status": "Rejected"}, ()),
    ("RequestStartTransaction", {**START, "evseId": 2}, IDLE, {"status": "Rejected"}, ()),
    ("RequestStopTransaction", {"transactionId": TX}, CHARGING, {"status": "Accepted"}, (RemoteStop(TX),)),
    ("RequestStopTransaction", {"transactionId": "other"}, CHARGING, {"status": "Rejected"}, ()),
    ("RequestStopTransaction", {"transactionId": TX}, IDLE, {"status": "Rejected"}, ()),
    ("Reset", {"type": "Immediate"}, IDLE, {"status": "Accepted"}, (ResetRequested(hard=True),)),
    ("Reset", {"type": "OnIdle"}, IDLE, {"status": "Accepted"}, (ResetRequested(hard=False),)),
    # B12: OnIdle with a transaction running is Scheduled; the charger reboots once it has ended.
    (
        "Reset",
        {"type": "OnIdle"},
        CHARGING,
        {"status": "Scheduled"},
        (ResetRequested(hard=False, on_idle=True),),
    ),
    ("Reset", {"type": "Immediate"}, CHARGING, {"status": "Accepted"}, (ResetRequested(hard=True),)),
    # ... also while the session's start is not answered yet (a Reset right behind the Started on the wire).
    (
        "Reset",
        {"type": "OnIdle"},
        STARTING,
        {"status": "Scheduled"},
        (ResetRequested(hard=False, on_idle=True),),
    ),
    ("Reset", {"type": "OnIdle", "evseId": 1}, IDLE, {"status": "Rejected"}, ()),
    (
        "TriggerMessage",
        {"requestedMessage": "Heartbeat"},
        IDLE,
        {"status": "Accepted"},
        (Trigger("Heartbeat", None),),
    ),
    (
        "TriggerMessage",
        {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}},
        IDLE,
        {"status": "Accepted"},
        (Trigger("StatusNotification", 1),),
    ),
    (
        "TriggerMessage",
        {"requestedMessage": "StatusNotification", "evse": {"id": 2}},
        IDLE,
        {"status": "Rejected"},
        (),
    ),
    ("TriggerMessage", {"requestedMessage": "SignV2GCertificate"}, IDLE, {"status": "NotImplemented"}, ()),
    (
        "GetVariables",
        {
            "getVariableData": [
                HEARTBEAT,
                {**HEARTBEAT, "attributeType": "MaxSet"},
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "Nope"}},
                {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "Enabled"}},
            ]
        },
        IDLE,
        {
            "getVariableResult": [
                {**HEARTBEAT, "attributeStatus": "Accepted", "attributeValue": "300"},
                {**HEARTBEAT, "attributeStatus": "NotSupportedAttributeType"},
                {
                    "component": {"name": "OCPPCommCtrlr"},
                    "variable": {"name": "Nope"},
                    "attributeStatus": "UnknownVariable",
                },
                {
                    "component": {"name": "NoSuchCtrlr"},
                    "variable": {"name": "Enabled"},
                    "attributeStatus": "UnknownComponent",
                },
            ]
        },
        (),
    ),
    (
        "SetVariables",
        {
            "setVariableData": [
                {**HEARTBEAT, "attributeValue": "7"},
                {**HEARTBEAT, "attributeValue": "-1"},
                {**HEARTBEAT, "attributeValue": "9" * 40},
                {
                    "component": {"name": "AuthCtrlr"},
                    "variable": {"name": "AuthorizeRemoteStart"},
                    "attributeValue": "true",
                },
            ]
        },
        IDLE,
        {
            "setVariableResult": [
                {**HEARTBEAT, "attributeStatus": "Accepted"},
                {**HEARTBEAT, "attributeStatus": "Rejected"},
                {**HEARTBEAT, "attributeStatus": "Rejected"},
                {
                    "component": {"name": "AuthCtrlr"},
                    "variable": {"name": "AuthorizeRemoteStart"},
                    "attributeStatus": "Rejected",  # read-only
                },
            ]
        },
        (ConfigChanged("HeartbeatInterval", "7"),),
    ),
    ("GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"}, IDLE, "NotImplemented", ()),
    ("RemoteStartTransaction", {"idTag": "A"}, IDLE, "NotImplemented", ()),  # a 1.6 action
    ("Reset", {"type": "Hard"}, IDLE, "FormatViolation", ()),  # 1.6 spelling: an enum violation in 2.0.1
    ("Reset", {"type": "Immediate", "extra": 1}, IDLE, "FormatViolation", ()),
]


@pytest.mark.parametrize(("action", "payload", "view", "expected", "intents"), CASES)
def test_answers_to_central_system_calls(
    action: str, payload: dict[str, Any], view: ChargerView, expected: Any, intents: tuple[Any, ...]
) -> None:
    answer = answer_call(V201, action, payload, view)
    if isinstance(expected, str):
        assert answer.error_code == expected and answer.payload is None, answer
    else:
        assert answer.error_code is None and answer.payload == expected, answer
        validate(CallResult("1", answer.payload, action), "2.0.1")
    assert answer.intents == intents


def test_a_remote_start_says_remote_start_with_its_id_and_token_type_and_a_replay_is_offline() -> None:
    remote = RemoteStart("R1", 1, 42, "Central")
    started = V201.start_transaction(1, "R1", 10, transaction_id=TX, seq_no=0, remote=remote)
    V201.validate_call(started.action, started.payload)
    assert started.payload["triggerReason"] == "RemoteStart"
    assert started.payload["transactionInfo"]["remoteStartId"] == 42
    assert started.payload["idToken"] == {"idToken": "R1", "type": "Central"}
    updated = V201.meter_values(1, TX, 1500, 7400.0, seq_no=1)
    replayed = V201.replayed(updated)
    V201.validate_call(replayed.action, replayed.payload)
    assert replayed.payload["offline"] is True and "offline" not in updated.payload  # the original is intact
    heartbeat = V201.heartbeat()
    assert V201.replayed(heartbeat) == heartbeat  # only transaction messages are flagged
    assert V201.QUEUES_OFFLINE and not VERSIONS["ocpp1.6"].QUEUES_OFFLINE
