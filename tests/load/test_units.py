"""Pure parts of the load tests: answers to central-system calls, credentials, shapes and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ocpp.messages import CallResult, _validate_payload

from loadtests.credentials import CredentialsError, generate, partition, read_credentials, write_credentials
from loadtests.metrics import ChargerMetrics, MetricsAggregate
from loadtests.profiles import PROFILES, shape_tick
from loadtests.protocol import (
    VERSIONS,
    Availability,
    ChargerView,
    ConfigChanged,
    Ocpp16,
    RemoteStart,
    RemoteStop,
    ResetRequested,
    StationInfo,
    StopReason,
    Trigger,
    Unlock,
    answer_call,
)

V16 = Ocpp16()
IDLE = ChargerView(connector_ids=(1,), transaction_id=None, busy=False, config=V16.default_config())
CHARGING = ChargerView(connector_ids=(1,), transaction_id=42, busy=True, config=V16.default_config())

# (action, payload, view, expected answer payload or error code, expected intents)
CASES: list[tuple[str, dict[str, Any], ChargerView, Any, tuple[Any, ...]]] = [
    ("RemoteStartTransaction", {"idTag": "A"}, IDLE, {"status": "Accepted"}, (RemoteStart("A", 1),)),
    ("RemoteStartTransaction", {"idTag": "A"}, CHARGING, {"status": "Rejected"}, ()),
    ("RemoteStartTransaction", {"idTag": "A", "connectorId": 2}, IDLE, {"status": "Rejected"}, ()),
    ("RemoteStopTransaction", {"transactionId": 42}, CHARGING, {"status": "Accepted"}, (RemoteStop(42),)),
    ("RemoteStopTransaction", {"transactionId": 7}, CHARGING, {"status": "Rejected"}, ()),
    ("Reset", {"type": "Hard"}, IDLE, {"status": "Accepted"}, (ResetRequested(hard=True),)),
    (
        "ChangeConfiguration",
        {"key": "HeartbeatInterval", "value": "5"},
        IDLE,
        {"status": "Accepted"},
        (ConfigChanged("HeartbeatInterval", "5"),),
    ),
    ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "-5"}, IDLE, {"status": "Rejected"}, ()),
    ("ChangeConfiguration", {"key": "Nope", "value": "1"}, IDLE, {"status": "NotSupported"}, ()),
    (
        "TriggerMessage",
        {"requestedMessage": "MeterValues"},
        IDLE,
        {"status": "Accepted"},
        (Trigger("MeterValues", None),),
    ),
    ("TriggerMessage", {"requestedMessage": "Heartbeat", "connectorId": 3}, IDLE, {"status": "Rejected"}, ()),
    ("UnlockConnector", {"connectorId": 1}, CHARGING, {"status": "Unlocked"}, (Unlock(1),)),
    (
        "ChangeAvailability",
        {"connectorId": 0, "type": "Inoperative"},
        CHARGING,
        {"status": "Scheduled"},
        (Availability(1, False),),
    ),
    (
        "ChangeAvailability",
        {"connectorId": 1, "type": "Operative"},
        IDLE,
        {"status": "Accepted"},
        (Availability(1, True),),
    ),
    ("ClearCache", {}, IDLE, {"status": "Accepted"}, ()),
    ("DataTransfer", {"vendorId": "x"}, IDLE, {"status": "UnknownVendorId"}, ()),
    ("GetDiagnostics", {"location": "ftp://x"}, IDLE, "NotSupported", ()),
    ("SomethingNew", {}, IDLE, "NotImplemented", ()),
    ("../../etc", {}, IDLE, "NotImplemented", ()),
    ("Reset", {"type": 5}, IDLE, "TypeConstraintViolation", ()),
    ("Reset", {"type": "Soft", "extra": 1}, IDLE, "FormationViolation", ()),
]


@pytest.mark.parametrize(("action", "payload", "view", "expected", "intents"), CASES)
def test_answers_to_central_system_calls(
    action: str, payload: dict[str, Any], view: ChargerView, expected: Any, intents: tuple[Any, ...]
) -> None:
    answer = answer_call(V16, action, payload, view)
    if isinstance(expected, str):
        assert answer.error_code == expected and answer.payload is None
    else:
        assert answer.error_code is None and answer.payload == expected
        _validate_payload(CallResult("1", answer.payload, action), "1.6")
    assert answer.intents == intents


def test_get_configuration_reports_known_and_unknown_keys() -> None:
    answer = answer_call(V16, "GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]}, IDLE)
    assert answer.payload == {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
        "unknownKey": ["Nope"],
    }


def test_every_built_message_is_schema_valid_and_every_stop_reason_is_mapped() -> None:
    requests = [
        V16.boot_notification(StationInfo("CP-" + "x" * 40)),
        V16.heartbeat(),
        V16.status_notification(1, "Charging"),
        V16.authorize("TAG"),
        V16.start_transaction(1, "TAG", 10),
        V16.meter_values(1, 5, 1234, 7400.0),
        V16.meter_values(1, None, 1234, 0.0),
        *(V16.stop_transaction(5, "TAG", 20, reason) for reason in StopReason),
    ]
    for request in requests:
        V16.validate_call(request.action, request.payload)
    assert VERSIONS["ocpp1.6"].schema_version == "1.6"


def test_credentials_round_trip_and_partition(tmp_path: Path) -> None:
    rows = generate(5, 7, passwords=True)
    assert [len(r.id_tags) for r in rows] == [2, 2, 1, 1, 1]
    assert len({r.password for r in rows}) == 5
    write_credentials(tmp_path / "c.csv", rows)
    assert read_credentials(tmp_path / "c.csv") == rows
    assert [r.cp_id for r in partition(rows, 1, 2)] == [rows[1].cp_id, rows[3].cp_id]
    assert generate(3, 1, passwords=False)[2].id_tags == ("LT00000000",)


def test_bad_credentials_files_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("charge_point_id,password,id_tags\nCP1,pw,\n")
    with pytest.raises(CredentialsError, match=r"bad\.csv:2: CP1 has no id_tags"):
        read_credentials(path)
    path.write_text("id,pw\n")
    with pytest.raises(CredentialsError, match="header"):
        read_credentials(path)


def test_shapes() -> None:
    assert shape_tick(PROFILES["boot-storm"], 500, 5, 60, 1) == (500, 500.0)
    assert shape_tick(PROFILES["steady"], 500, 5, 60, 1) == (500, 5)
    assert shape_tick(PROFILES["soak"], 600, 5, 3600, 1) == (600, 600 / 360)
    assert shape_tick(PROFILES["transaction-heavy"], 10, 2, 60, 60) is None
    assert set(PROFILES) == {"boot-storm", "steady", "transaction-heavy", "soak"}


def test_metrics_aggregate_over_processes() -> None:
    a, b = ChargerMetrics(), ChargerMetrics()
    for _ in range(3):
        a.connected(reconnect=False)
    b.connected(reconnect=False)
    b.disconnected()
    b.connected(reconnect=True)
    agg = MetricsAggregate()
    agg.update("w1", a.snapshot())
    agg.update("w2", b.snapshot())
    a.disconnected()
    agg.update("w1", a.snapshot())
    summary = agg.summary()
    assert summary["connections_held"] == 3 and summary["connections_held_max"] == 4
    assert summary["connects"] == 5 and summary["reconnects"] == 1 and summary["processes"] == 2
