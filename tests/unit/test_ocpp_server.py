"""Tests of the scripted OCPP 1.6J central system with a plain websockets client."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import signal
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import ocpp.messages
import pytest
from jsonschema import Draft4Validator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus
from websockets.typing import Subprotocol

from backend_stub.ocpp.server import NO_REPLY, CallErrorReply, Frame, prime_schema_validators
from backend_stub.testing.server import ScriptedCentralSystem as CentralSystem

BOOT = {"chargePointVendor": "OpenCharge", "chargePointModel": "Test"}
STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
OCPP16 = [Subprotocol("ocpp1.6")]
QUIET_S = 0.2  # how long to listen to be sure that nothing arrives


@pytest.fixture
async def cs() -> AsyncIterator[CentralSystem]:
    """A running central system on a free port."""
    async with CentralSystem() as server:
        yield server


def charger(cs: CentralSystem, cp_id: str = "CP1", **kwargs: Any) -> Any:
    """Connect a raw OCPP 1.6 client to the central system."""
    return connect(f"{cs.url}/{cp_id}", subprotocols=OCPP16, open_timeout=2, **kwargs)


async def receive(ws: ClientConnection) -> list[Any]:
    """Receive and parse one frame."""
    msg: list[Any] = json.loads(await asyncio.wait_for(ws.recv(), 2))
    return msg


async def rpc(ws: ClientConnection, action: str, payload: Any, uid: str = "id-1") -> list[Any]:
    """Send a CALL and return the answer frame."""
    await ws.send(json.dumps([2, uid, action, payload]))
    reply = await receive(ws)
    assert reply[1] == uid
    return reply


async def assert_silent(ws: ClientConnection) -> None:
    """Assert that the server sends nothing for a while."""
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(ws.recv(), QUIET_S)


def basic(user: str, password: str) -> dict[str, str]:
    """An HTTP Basic Authorization header."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def test_boot_authorize_start_stop_round_trip(cs: CentralSystem) -> None:
    cs.id_tags["BLOCKED"] = "Blocked"
    cs.heartbeat_interval = 42
    async with charger(cs) as ws:
        assert ws.subprotocol == "ocpp1.6"
        await cs.wait_connected("CP1")
        assert cs.connected == {"CP1"}

        boot = await rpc(ws, "BootNotification", BOOT, "b1")
        assert boot[0] == 3
        assert boot[2]["status"] == "Accepted"
        assert boot[2]["interval"] == 42
        assert boot[2]["currentTime"].endswith("Z")
        assert datetime.fromisoformat(boot[2]["currentTime"]).utcoffset() is not None

        assert "currentTime" in (await rpc(ws, "Heartbeat", {}))[2]
        assert (await rpc(ws, "StatusNotification", STATUS))[2] == {}
        assert (await rpc(ws, "Authorize", {"idTag": "ABC"}))[2] == {"idTagInfo": {"status": "Accepted"}}
        assert (await rpc(ws, "Authorize", {"idTag": "BLOCKED"}))[2] == {"idTagInfo": {"status": "Blocked"}}

        start = {"connectorId": 1, "idTag": "ABC", "meterStart": 0, "timestamp": "2025-01-01T00:00:00Z"}
        first = await rpc(ws, "StartTransaction", start)
        second = await rpc(ws, "StartTransaction", {**start, "idTag": "BLOCKED"})
        assert first[2] == {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}
        assert second[2] == {"transactionId": 2, "idTagInfo": {"status": "Blocked"}}

        stop = {"transactionId": 1, "meterStop": 1500, "timestamp": "2025-01-01T01:00:00Z"}
        assert (await rpc(ws, "StopTransaction", {**stop, "idTag": "ABC"}))[2] == {
            "idTagInfo": {"status": "Accepted"}
        }
        assert (await rpc(ws, "StopTransaction", stop))[2] == {}
        assert (await rpc(ws, "DataTransfer", {"vendorId": "x"}))[2] == {"status": "UnknownVendorId"}
        meter = {
            "connectorId": 1,
            "meterValue": [{"timestamp": "2025-01-01T00:30:00Z", "sampledValue": [{"value": "7"}]}],
        }
        assert (await rpc(ws, "MeterValues", meter))[2] == {}

    assert cs.violations == []
    assert cs.errors == []
    assert len(cs.calls("StartTransaction")) == 2
    assert cs.calls("StartTransaction", "CP2") == []
    answer = next(f for f in cs.log if f.direction == "out" and f.unique_id == "b1")
    assert (answer.message_type, answer.action, answer.cp_id) == (3, "BootNotification", "CP1")
    assert all(f.ts.utcoffset() is not None for f in cs.log)
    await cs.wait_disconnected("CP1")
    assert cs.connected == set()


@pytest.mark.parametrize(
    ("action", "payload", "code"),
    [
        ("StatusNotification", {**STATUS, "status": "Bogus"}, "FormationViolation"),
        ("Heartbeat", {"unexpected": 1}, "FormationViolation"),
        ("BootNotification", {"chargePointVendor": "x"}, "ProtocolError"),
        ("StatusNotification", {**STATUS, "connectorId": "one"}, "TypeConstraintViolation"),
    ],
)
async def test_schema_violation_gets_ocpp16_error_code(
    cs: CentralSystem, action: str, payload: dict[str, Any], code: str
) -> None:
    async with charger(cs) as ws:
        reply = await rpc(ws, action, payload, "bad-1")
    assert reply[:3] == [4, "bad-1", code]
    assert [(cp, a) for cp, a, _ in cs.violations] == [("CP1", action)]
    assert code in cs.violations[0][2]


async def test_non_json_frame_with_readable_id_gets_callerror(cs: CentralSystem) -> None:
    async with charger(cs) as ws:
        await ws.send('[2, "abc-1", "Heartbeat", {')
        reply = await receive(ws)
        assert reply[:3] == [4, "abc-1", "FormationViolation"]
        await ws.send("{not json at all")
        await assert_silent(ws)
    assert len(cs.violations) == 2
    assert all("not valid JSON" in message for _, _, message in cs.violations)
    assert cs.log[0].raw == '[2, "abc-1", "Heartbeat", {'
    assert (cs.log[0].message_type, cs.log[0].unique_id) == (2, "abc-1")


async def test_wrong_element_count_is_a_violation(cs: CentralSystem) -> None:
    async with charger(cs) as ws:
        await ws.send('[2, "short-1", "Heartbeat"]')
        assert (await receive(ws))[:3] == [4, "short-1", "FormationViolation"]
        await ws.send('[3, "nobody-asked"]')  # a malformed CALLRESULT is not answered
        await ws.send('{"not": "a list"}')
        await assert_silent(ws)
    assert len(cs.violations) == 3


async def test_unknown_action_and_missing_handler_get_not_implemented(cs: CentralSystem) -> None:
    del cs.handlers["Heartbeat"]
    async with charger(cs) as ws:
        assert (await rpc(ws, "Heartbeat", {}))[2] == "NotImplemented"
        assert cs.violations == []
        assert (await rpc(ws, "MakeCoffee", {}))[2] == "NotImplemented"
    assert [(cp, a) for cp, a, _ in cs.violations] == [("CP1", "MakeCoffee")]


@pytest.mark.parametrize("path", ["/other/CP1", "/ocpp/", "/ocpp"])
async def test_wrong_path_is_refused_with_404(cs: CentralSystem, path: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{cs.port}{path}", subprotocols=OCPP16):
            pass
    assert refused.value.response.status_code == 404


async def test_charger_id_is_last_path_segment(cs: CentralSystem) -> None:
    async with connect(f"ws://127.0.0.1:{cs.port}/ocpp/site-a/CP%207", subprotocols=OCPP16):
        await cs.wait_connected("CP 7")


@pytest.mark.parametrize(
    "headers", [{}, basic("CP1", "wrong"), basic("CP2", "secret"), {"Authorization": "Bearer secret"}]
)
async def test_wrong_credentials_get_401(cs: CentralSystem, headers: dict[str, str]) -> None:
    cs.passwords["CP1"] = "secret"
    with pytest.raises(InvalidStatus) as refused:
        async with charger(cs, additional_headers=headers):
            pass
    assert refused.value.response.status_code == 401
    assert cs.connected == set()


async def test_right_credentials_are_accepted(cs: CentralSystem) -> None:
    cs.passwords["CP1"] = "secret"
    async with charger(cs, additional_headers=basic("CP1", "secret")) as ws:
        assert (await rpc(ws, "Heartbeat", {}))[0] == 3
    async with charger(cs, "CP9") as ws:  # chargers without a password entry are admitted
        assert (await rpc(ws, "Heartbeat", {}))[0] == 3


async def test_refuse_connections_answers_503(cs: CentralSystem) -> None:
    cs.refuse_connections = True
    with pytest.raises(InvalidStatus) as refused:
        async with charger(cs):
            pass
    assert refused.value.response.status_code == 503
    cs.refuse_connections = False
    async with charger(cs):
        await cs.wait_connected("CP1")


async def test_missing_subprotocol_is_refused_and_recorded(cs: CentralSystem) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{cs.url}/CP1"):
            pass
    assert refused.value.response.status_code == 400
    assert [(cp, a) for cp, a, _ in cs.violations] == [("CP1", "")]


async def test_server_call_round_trip_and_callerror() -> None:
    ids = itertools.count(1)
    async with CentralSystem(unique_ids=lambda: f"srv-{next(ids)}") as cs, charger(cs) as ws:
        await cs.wait_connected("CP1")

        async def answer() -> list[Any]:
            request = await receive(ws)
            await ws.send(json.dumps([3, request[1], {"status": "Accepted"}]))
            return request

        request, result = await asyncio.gather(answer(), cs.call("CP1", "Reset", {"type": "Soft"}))
        assert request == [2, "srv-1", "Reset", {"type": "Soft"}]
        assert result == {"status": "Accepted"}
        reply = cs.log[-1]
        assert (reply.direction, reply.message_type, reply.action) == ("in", 3, "Reset")

        async def refuse() -> None:
            request = await receive(ws)
            await ws.send(json.dumps([4, request[1], "NotSupported", "no resets here", {"why": "test"}]))

        with pytest.raises(CallErrorReply) as error:
            await asyncio.gather(refuse(), cs.call("CP1", "Reset", {"type": "Hard"}))
        assert (error.value.code, error.value.description, error.value.details) == (
            "NotSupported",
            "no resets here",
            {"why": "test"},
        )
        assert cs.log[-1].action == "Reset"
        assert cs.violations == []


async def test_server_call_timeout_missing_charger_and_invalid_result(cs: CentralSystem) -> None:
    with pytest.raises(KeyError):
        await cs.call("nobody", "Reset", {"type": "Soft"})
    async with charger(cs) as ws:
        await cs.wait_connected("CP1")
        with pytest.raises(TimeoutError):
            await cs.call("CP1", "ClearCache", {}, timeout=QUIET_S)
        late = await receive(ws)
        await ws.send(json.dumps([3, late[1], {"status": "Accepted"}]))
        frame = await cs.wait_for(lambda f: f.direction == "in" and f.unique_id == late[1])
        assert frame.action == "ClearCache"
        assert cs.violations == []

        async def answer_badly() -> None:
            request = await receive(ws)
            await ws.send(json.dumps([3, request[1], {"status": "Maybe"}]))

        _, result = await asyncio.gather(answer_badly(), cs.call("CP1", "Reset", {"type": "Soft"}))
        assert result == {"status": "Maybe"}
        assert [(cp, a) for cp, a, _ in cs.violations] == [("CP1", "Reset")]


async def test_no_reply_leaves_call_unanswered(cs: CentralSystem) -> None:
    cs.handlers["Heartbeat"] = lambda cp_id, payload: NO_REPLY
    async with charger(cs) as ws:
        await ws.send(json.dumps([2, "hb-1", "Heartbeat", {}]))
        await assert_silent(ws)
    assert [(f.direction, f.action) for f in cs.log] == [("in", "Heartbeat")]


async def test_handler_variants(cs: CentralSystem) -> None:
    async def slow_boot(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"status": "Pending", "currentTime": "2025-01-01T00:00:00Z", "interval": 10}

    def refuse(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise CallErrorReply("SecurityError", "go away")

    def crash(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug in test handler")

    cs.handlers.update(
        BootNotification=slow_boot,
        Authorize=refuse,
        Heartbeat=crash,
        DataTransfer=lambda cp_id, payload: {"status": "NotAStatus"},
    )
    async with charger(cs) as ws:
        assert (await rpc(ws, "BootNotification", BOOT))[2]["status"] == "Pending"
        assert (await rpc(ws, "Authorize", {"idTag": "A"}))[2:4] == ["SecurityError", "go away"]
        assert (await rpc(ws, "Heartbeat", {}))[2] == "InternalError"
        assert (await rpc(ws, "DataTransfer", {"vendorId": "v"}))[2] == "InternalError"
    assert [a for _, a, _ in cs.errors] == ["Heartbeat", "DataTransfer"]
    assert cs.violations == []


async def test_jsonl_log_file(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "frames.jsonl"
    async with CentralSystem(log_path=path) as cs:
        async with charger(cs) as ws:
            await rpc(ws, "BootNotification", BOOT, "boot-1")
        await cs.wait_disconnected("CP1")
        lines = [json.loads(line) for line in path.read_text().splitlines()]  # flushed while running
    assert [line["event"] for line in lines] == ["connected", "frame", "frame", "disconnected"]
    assert all(line["cp_id"] == "CP1" for line in lines)
    request, answer = lines[1], lines[2]
    assert (request["direction"], request["message_type"], request["action"]) == ("in", 2, "BootNotification")
    assert request["payload"] == BOOT
    assert json.loads(request["raw"]) == [2, "boot-1", "BootNotification", BOOT]
    assert (answer["direction"], answer["message_type"], answer["unique_id"]) == ("out", 3, "boot-1")
    assert answer["action"] == "BootNotification"
    assert datetime.fromisoformat(answer["ts"]).utcoffset() is not None


async def test_second_connection_replaces_first(cs: CentralSystem) -> None:
    async with charger(cs) as first, charger(cs) as second:
        await asyncio.wait_for(first.wait_closed(), 2)
        assert cs.connected == {"CP1"}

        async def answer() -> None:
            request = await receive(second)
            await second.send(json.dumps([3, request[1], {"status": "Accepted"}]))

        _, result = await asyncio.gather(answer(), cs.call("CP1", "ClearCache", {}))
        assert result == {"status": "Accepted"}


async def test_disconnect_drops_the_socket(cs: CentralSystem) -> None:
    async with charger(cs) as ws:
        await cs.wait_connected("CP1")
        await cs.disconnect("CP1")
        assert "CP1" not in cs.connected
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(ws.recv(), 2)
        assert ws.close_code == 1006  # no close frame: like a network drop
    async with charger(cs) as ws:
        await cs.wait_connected("CP1")
        await cs.disconnect("CP1", abrupt=False)
        with pytest.raises(ConnectionClosedOK):
            await asyncio.wait_for(ws.recv(), 2)


async def test_wait_for_call_waits_for_new_frames(cs: CentralSystem) -> None:
    async with charger(cs) as ws:
        await rpc(ws, "StatusNotification", STATUS)
        mark = len(cs.log)

        async def later() -> None:
            await asyncio.sleep(0.05)
            await rpc(ws, "StatusNotification", {**STATUS, "connectorId": 2}, "s2")
            await rpc(ws, "StatusNotification", {**STATUS, "status": "Charging"}, "s3")

        sender = asyncio.create_task(later())
        charging = await cs.wait_for_call(
            "StatusNotification", "CP1", after=mark, where=lambda p: p["status"] == "Charging"
        )
        await sender
        assert charging.unique_id == "s3"
        first: Frame = await cs.wait_for_call("StatusNotification", after=mark)
        assert first.unique_id == "s2"
        with pytest.raises(TimeoutError):
            await cs.wait_for_call("Heartbeat", timeout=QUIET_S)


async def test_send_raw_is_logged(cs: CentralSystem) -> None:
    async with charger(cs) as ws:
        await cs.wait_connected("CP1")
        await cs.send_raw("CP1", "garbage")
        assert await asyncio.wait_for(ws.recv(), 2) == "garbage"
    assert (cs.log[0].direction, cs.log[0].raw, cs.log[0].message_type) == ("out", "garbage", None)


async def test_command_line_serves_until_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "cs.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "backend_stub", "serve", "--port", "0", "--log", str(log)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()
        assert url.startswith("ws://127.0.0.1:") and url.endswith("/ocpp")
        async with connect(f"{url}/CP1", subprotocols=OCPP16) as ws:
            assert (await rpc(ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert '"BootNotification"' in log.read_text()


async def test_the_record_of_server_errors_is_bounded() -> None:
    # A charger that keeps triggering the same handler bug must not grow the server's memory forever.
    from backend_stub.ocpp.server import MAX_RECORDED_PROBLEMS, CentralSystem

    cs = CentralSystem()
    for n in range(MAX_RECORDED_PROBLEMS * 3):
        cs._error("CP-1", "Heartbeat", f"handler raised {n}")
    assert len(cs.errors) <= MAX_RECORDED_PROBLEMS
    assert cs.errors[-1][2] == f"handler raised {MAX_RECORDED_PROBLEMS * 3 - 1}"


def test_certificate_hashes_from_a_charger_answer_skip_what_is_not_one() -> None:
    # GetInstalledCertificateIds answers come from a peer: a malformed entry is left out, never a KeyError (500).
    from backend_stub.domain.commands import CertificateHash
    from backend_stub.ocpp.commands import hash_data, hash_from

    good = CertificateHash("SHA256", "a1", "b2", "c3")
    assert hash_from(hash_data(good)) == good
    for bad in (None, "x", [], {}, {**hash_data(good), "serialNumber": 7}, {"hashAlgorithm": "SHA256"}):
        assert hash_from(bad) is None


@pytest.mark.parametrize(
    ("schema", "payload"),
    [
        ("TransactionEventRequest", {"eventType": "Updated"}),
        (
            "TransactionEventRequest",
            {
                "eventType": "Updated",
                "timestamp": "2026-11-22T10:00:00Z",
                "triggerReason": "MeterValuePeriodic",
                "seqNo": 1,
                "transactionInfo": {"transactionId": "t"},
                "meterValue": [{"timestamp": "2026-11-22T10:00:00Z", "sampledValue": [{"value": 1}]}],
            },
        ),
        (
            "TransactionEventRequest",
            {
                "eventType": "Updated",
                "timestamp": "2026-11-22T10:00:00Z",
                "triggerReason": "MeterValuePeriodic",
                "seqNo": 1,
                "transactionInfo": {"transactionId": "t" * 37},
                "meterValue": [{"timestamp": "x", "sampledValue": [{"value": "1", "measurand": "Nope"}]}],
            },
        ),
        ("SetVariablesResponse", {"setVariableResult": [{"attributeStatus": "Maybe"}]}),
        ("NotifyReportRequest", {"requestId": 1, "generatedAt": "t", "seqNo": 0, "reportData": [{}]}),
    ],
)
def test_primed_201_validators_give_the_packages_verdicts(schema: str, payload: dict[str, Any]) -> None:
    """The inlined schemas (no $ref lookups) accept and refuse exactly what the package's own schemas do."""
    prime_schema_validators("2.0.1")
    original = Draft4Validator(
        json.loads(
            (Path(ocpp.messages.__file__).parent / "v201" / "schemas" / f"{schema}.json").read_text(
                encoding="utf-8-sig"
            )
        )
    )
    primed = ocpp.messages._validators[f"{schema}_2.0.1"]
    assert "$ref" not in json.dumps(primed.schema)
    assert sorted(e.message for e in primed.iter_errors(payload)) == sorted(
        e.message for e in original.iter_errors(payload)
    )
