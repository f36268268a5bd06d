"""The CSMS runner's simulated station answers every CALL no step waits for with a schema-valid answer (or the
CALLERROR its schema check names): per action a central system may send a station, in both versions, and over
loopback against the bundled central system, where every CALLRESULT the station sent is checked afterwards."""

from __future__ import annotations

import copy
import json
from typing import Any

import aiohttp
import pytest
from ocpp.exceptions import OCPPError
from ocpp.messages import CallResult, validate_payload

from backend_stub.ocpp import v16, v201
from conformance.csms_runner import (
    CALL,
    CALLERROR,
    CALLRESULT,
    DEFAULT_ANSWERS,
    STATION_LIMITS,
    CsmsContext,
    CsmsSetup,
    default_answer,
    default_frame,
)
from tests.conformance.conftest import ADMIN_TOKEN, CP, CP_PASSWORD, Site

# The CALLs a central system sends a station (OCPP 1.6 §5 with the Security Whitepaper; 2.0.1 Part 2 §1): the
# bundled central system's tables of them.
CSMS_TO_STATION = {"1.6": sorted(v16.CSMS_ACTIONS), "2.0.1": sorted(v201.CSMS_ACTIONS)}


def _ref(component: str, variable: str, instance: str | None = None) -> dict[str, Any]:
    name: dict[str, Any] = {"name": variable}
    if instance is not None:
        name["instance"] = instance
    return {"component": {"name": component}, "variable": name}


LIMIT = _ref("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables")
UNKNOWN = _ref("TxCtrlr", "EVConnectionTimeOut")
# Requests whose answer carries an item per item asked (the rest answer the same whatever was asked).
REQUESTS: dict[str, list[dict[str, Any]]] = {
    "GetVariables": [
        {"getVariableData": [LIMIT]},  # the limit query
        {"getVariableData": [LIMIT, UNKNOWN]},  # a limit and a variable the station does not have
        {"getVariableData": [UNKNOWN]},
    ],
    "SetVariables": [
        {"setVariableData": [{**LIMIT, "attributeValue": "5"}, {**UNKNOWN, "attributeValue": "5"}]}
    ],
    "SetVariableMonitoring": [
        {"setMonitoringData": [{"value": 1.0, "type": "Delta", "severity": 5, **UNKNOWN}]},
    ],
    "ClearVariableMonitoring": [{"id": [3, 4]}],
}


async def _check(version: str, action: str, frame: list[Any]) -> None:
    assert frame[0] == CALLRESULT, frame
    await validate_payload(CallResult(frame[1], copy.deepcopy(frame[2]), action), version)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_every_default_answer_validates_against_the_schema(version: str) -> None:
    for action in CSMS_TO_STATION[version]:
        for request in REQUESTS.get(action, [{}]):
            # A fixed answer does not depend on the request (and {} is no valid request for most actions).
            built = action in REQUESTS
            frame = (
                await default_frame(version, "id-1", action, request)
                if built
                else [CALLRESULT, "id-1", default_answer(version, action, request)]
            )
            try:
                await _check(version, action, frame)
            except OCPPError as exc:
                raise AssertionError(
                    f"{version} {action}: {frame} violates the schema: {exc.details}"
                ) from None


async def test_answers_built_from_the_request_have_one_result_per_item() -> None:
    limit, unknown = (await default_frame("2.0.1", "a", "GetVariables", REQUESTS["GetVariables"][1]))[2][
        "getVariableResult"
    ]
    key = ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables")
    assert limit == {**LIMIT, "attributeStatus": "Accepted", "attributeValue": STATION_LIMITS[key]}
    assert unknown == {**UNKNOWN, "attributeStatus": "UnknownVariable"}
    results = (await default_frame("2.0.1", "b", "SetVariables", REQUESTS["SetVariables"][0]))[2]
    assert [r["attributeStatus"] for r in results["setVariableResult"]] == ["Rejected", "UnknownVariable"]
    cleared = (await default_frame("2.0.1", "c", "ClearVariableMonitoring", {"id": [3, 4]}))[2]
    assert cleared == {
        "clearMonitoringResult": [{"id": 3, "status": "NotFound"}, {"id": 4, "status": "NotFound"}]
    }


async def test_a_request_that_breaks_its_schema_gets_the_callerror_it_names() -> None:
    # An empty getVariableData (minItems 1) would otherwise get an empty, equally invalid, answer.
    assert (await default_frame("2.0.1", "x", "GetVariables", {"getVariableData": []}))[:3] == [
        CALLERROR,
        "x",
        "FormatViolation",
    ]
    assert (await default_frame("1.6", "y", "GetConfiguration", {"key": "HeartbeatInterval"}))[:3] == [
        CALLERROR,
        "y",
        "TypeConstraintViolation",
    ]
    assert (await default_frame("2.0.1", "z", "NoSuchAction", {}))[2] == "NotImplemented"
    assert set(DEFAULT_ANSWERS["2.0.1"]) <= set(CSMS_TO_STATION["2.0.1"])
    assert set(DEFAULT_ANSWERS["1.6"]) <= set(CSMS_TO_STATION["1.6"])


async def test_over_loopback_every_answer_the_simulated_station_sends_is_schema_valid(site: Site) -> None:
    ctx = CsmsContext(
        setup=CsmsSetup(
            site.csms.url, CP, password=CP_PASSWORD, schema_version="2.0.1", subprotocol="ocpp2.0.1"
        )
    )
    conn = await ctx.open("main")
    station = {"model": "Virtual-2.0.1", "vendorName": "OpenChargeConf"}
    boot = await ctx.call("BootNotification", {"reason": "PowerUp", "chargingStation": station}, conn)
    assert boot["status"] == "Accepted"
    try:
        server = site.csms.server
        for action, requests in REQUESTS.items():
            for request in requests:
                answer = await server.call(CP, action, request)
                assert answer, (action, request)
        assert (await server.call(CP, "GetDisplayMessages", {"requestId": 1}))["status"] == "Unknown"
        # The bundled central system's own operation: it reads the station's limits, then asks.
        body = {"variables": [{"component": "TxCtrlr", "variable": "EVConnectionTimeOut"}]}
        async with (
            aiohttp.ClientSession(
                base_url=site.csms.http_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            ) as http,
            http.post(f"/api/chargers/{CP}/operations/get-variables", json=body) as response,
        ):
            got = await response.json()
            assert response.status == 200, got
    finally:
        await conn.close()
    received = {}
    answered = []
    for entry in ctx.trace:
        text = entry.text.split("] ", 1)[-1]
        if not text.startswith("["):
            continue
        frame = json.loads(text)
        if entry.direction == "received" and frame[0] == CALL:
            received[frame[1]] = frame[2]
        elif entry.direction == "sent" and frame[0] == CALLRESULT and frame[1] in received:
            answered.append(received[frame[1]])
            await _check("2.0.1", received[frame[1]], frame)
    assert {"GetVariables", "SetVariables", "SetVariableMonitoring", "ClearVariableMonitoring"} <= set(
        answered
    )
    # Three asked here and the operation's (its limits learnt from the first answer, which carried one).
    assert answered.count("GetVariables") == 4, answered
