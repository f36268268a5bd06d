"""Pure parts of the load tests: answers to central-system calls, credentials, shapes and metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ocpp.messages import CallResult

from loadtests.credentials import CredentialsError, generate, partition, read_credentials, write_credentials
from loadtests.metrics import ChargerMetrics, MetricsAggregate
from loadtests.profiles import PROFILES, shape_tick
from loadtests.protocol import (
    VERSIONS,
    Availability,
    ChargerView,
    ConfigChanged,
    Ocpp16,
    Ocpp201,
    RemoteStart,
    RemoteStop,
    ResetRequested,
    StationInfo,
    StopReason,
    Trigger,
    Unlock,
    answer_call,
    validate,
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
        validate(CallResult("1", answer.payload, action), "1.6")
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


# -- the charger and the connection, driven without a network (fakes for the socket and the connection)
from collections.abc import Iterator  # noqa: E402

from loadtests.charger import Charger, ChargerSettings, Phase  # noqa: E402
from loadtests.connection import (  # noqa: E402
    CallErrorResponse,
    CallOutcome,
    NotConnected,
    OcppConnection,
)
from loadtests.credentials import Credential  # noqa: E402
from loadtests.protocol import Answer, Request  # noqa: E402


class FakeConn:
    """Answers each CALL with the next scripted payload (or raises the scripted exception)."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.sent: list[Request] = []
        self.is_open = True

    def call(self, request: Request, timeout_s: float) -> CallOutcome:
        self.sent.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return CallOutcome(answer, 2.5, 40)

    def close(self) -> None:
        self.is_open = False


def make_charger(answers: list[Any]) -> tuple[Charger, FakeConn, list[tuple[str, str, float, int, Any]]]:
    reports: list[tuple[str, str, float, int, Any]] = []
    charger = Charger(
        Credential("CP1", None, ("TAG1",)),
        PROFILES["steady"],
        V16,
        ChargerSettings(url="ws://127.0.0.1:1/ocpp"),
        lambda *args: reports.append(args),
        ChargerMetrics(),
    )
    conn = FakeConn(answers)
    charger.conn = conn  # type: ignore[assignment]
    return charger, conn, reports


def test_refused_start_is_one_failed_request_then_a_deauthorized_stop() -> None:
    charger, conn, reports = make_charger(
        [
            {"idTagInfo": {"status": "Accepted"}},  # Authorize
            {},  # StatusNotification Preparing
            {"transactionId": 9, "idTagInfo": {"status": "Blocked"}},  # StartTransaction
            {},  # StopTransaction
            {},  # StatusNotification Available
        ]
    )
    charger._start_session()
    assert [r.action for r in conn.sent] == [
        "Authorize",
        "StatusNotification",
        "StartTransaction",
        "StopTransaction",
        "StatusNotification",
    ]
    starts = [r for r in reports if r[1] == "StartTransaction"]
    assert len(starts) == 1 and starts[0][2] == 2.5 and "Blocked" in str(starts[0][4])
    stop = conn.sent[3].payload
    assert stop["transactionId"] == 9 and stop["reason"] == "DeAuthorized"
    assert charger.phase is Phase.IDLE and charger.transaction_id is None


def test_calls_after_the_connection_ended_are_not_requests() -> None:
    charger, _conn, reports = make_charger(
        [CallErrorResponse("InternalError", "down", 3.0, 50), NotConnected("not connected")]
    )
    charger._heartbeat()
    charger._heartbeat()
    assert [(r[1], type(r[4]).__name__) for r in reports] == [("Heartbeat", "CallErrorResponse")]
    assert charger.metrics.counters["calls_not_sent"] == 1


def test_operative_cancels_a_scheduled_inoperative() -> None:
    charger, _conn, _reports = make_charger([])
    charger.phase, charger.transaction_id = Phase.CHARGING, 5
    charger._availability(operative=False)
    assert charger.inoperative_after_session
    charger._availability(operative=True)
    assert not charger.inoperative_after_session and charger.operative


def test_boot_pending_retries_after_the_answers_interval() -> None:
    charger, _conn, _reports = make_charger([])
    assert charger._boot_retry_s({"status": "Pending", "interval": 42, "currentTime": "x"}) == 42
    assert charger._boot_retry_s({"status": "Rejected", "interval": 0, "currentTime": "x"}) == 10
    assert charger._boot_retry_s(None) == 10


class FakeSocket:
    """websocket-client's WebSocket as the receive loop sees it: frames to return, then the end."""

    def __init__(self, frames: list[str]) -> None:
        self.frames: Iterator[str] = iter(frames)
        self.sent: list[str] = []
        self.connected = True
        self.shut = False

    def recv(self) -> str:
        try:
            return next(self.frames)
        except StopIteration:
            raise OSError("closed") from None

    def send(self, frame: str) -> None:
        self.sent.append(frame)

    def shutdown(self) -> None:
        self.shut = True


def test_a_failing_answer_is_an_internal_error_and_the_loop_goes_on() -> None:
    def on_call(action: str, payload: Any) -> Answer:
        if action == "Reset":
            raise RuntimeError("bug")
        return Answer({"status": "Accepted"})

    closed: list[bool] = []
    conn = OcppConnection(V16, on_call, on_closed=lambda: closed.append(True))
    ws = FakeSocket(['[2,"a","Reset",{"type":"Soft"}]', '[2,"b","ClearCache",{}]'])
    conn._receive(ws, conn._closed)  # type: ignore[arg-type]
    assert ws.sent[0].startswith('[4,"a","InternalError"')
    assert ws.sent[1] == '[3,"b",{"status":"Accepted"}]'
    assert ws.shut and closed == [True]  # the socket is released when the loop ends


def _charging_201(answers: list[Any]) -> tuple[Charger, FakeConn]:
    """A 2.0.1 charger in a running session (its Started answered) on a scripted connection."""
    charger = Charger(
        Credential("CP1", None, ("TAG1",)),
        PROFILES["steady"],
        Ocpp201(),
        ChargerSettings(url="ws://127.0.0.1:1/ocpp"),
        lambda *args: None,
        ChargerMetrics(),
    )
    # StatusNotification, TransactionEvent Started, StatusNotification, then the test's answers
    conn = FakeConn([{}, {}, {}, *answers])
    charger.conn = conn  # type: ignore[assignment]
    charger.booted = True
    charger._start_session(RemoteStart("R1", 1, 5, "Central"))
    assert charger.transaction_id is not None
    return charger, conn


def test_a_201_session_offline_queues_its_events_and_replays_them_flagged_in_order() -> None:
    charger, conn = _charging_201([{}, {}, {}])
    started = conn.sent[1].payload
    assert started["triggerReason"] == "RemoteStart" and started["transactionInfo"]["remoteStartId"] == 5
    conn.is_open = False  # the link dropped
    charger._meter_values()
    charger._stop_session(StopReason.LOCAL)
    assert len(conn.sent) == 3  # nothing sent while offline
    assert [r.payload["eventType"] for r in charger.offline_queue] == ["Updated", "Ended"]
    conn.is_open = True
    charger._replay_offline()
    replayed = [r.payload for r in conn.sent[3:]]
    assert [(p["eventType"], p["seqNo"], p["offline"]) for p in replayed] == [
        ("Updated", 1, True),
        ("Ended", 2, True),
    ]
    assert not charger.offline_queue
    assert charger.metrics.counters["offline_replayed"] == 2


def test_the_offline_queue_is_bounded_and_drops_readings_before_a_start_or_an_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("loadtests.charger.MAX_OFFLINE_QUEUE", 3)
    charger, conn = _charging_201([])
    conn.is_open = False
    for _ in range(5):
        charger._meter_values()
    charger._stop_session(StopReason.LOCAL)
    queue = [r.payload for r in charger.offline_queue]
    assert len(queue) == 3 and queue[-1]["eventType"] == "Ended"
    assert [p["seqNo"] for p in queue] == [4, 5, 6]  # the newest readings kept, the oldest dropped
    assert charger.metrics.counters["offline_dropped"] == 3


def test_reset_on_idle_during_a_201_session_waits_for_its_end() -> None:
    charger, conn = _charging_201([{}, {}])
    answer = charger._on_server_call("Reset", {"type": "OnIdle"})
    assert answer.payload == {"status": "Scheduled"}
    charger._handle(charger.inbox.get_nowait())
    assert charger.reset_after_session and charger.booted  # still charging, not rebooted
    charger._stop_session(StopReason.REMOTE)
    assert not charger.booted and charger.metrics.counters["resets"] == 1  # rebooting once idle
    assert not conn.is_open  # the connection closed for the reboot
    assert conn.sent[-2].payload["eventType"] == "Ended"
