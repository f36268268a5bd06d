"""B. Provisioning, the reports, and the NotifyEvent of a state change: the agent over OCPP 2.0.1 against the
bundled central system's 2.0.1 side, named after the OCA OCPP 2.0.1 charging-station test cases (TC_B_nn_CS).
The CSMS checks every frame of the charger against the 2.0.1 schemas (no violation may be recorded)."""

from __future__ import annotations

import json
from typing import Any

from backend_stub.app import Csms
from backend_stub.ocpp.server import CallErrorReply
from chargepoint.core.device_model import VARIABLES
from chargepoint.core.model import ErrorCode
from tests.integration.v201_support import (
    CP,
    StartAgent,
    calls,
    csms,
    mark,
    set_value,
    start_agent,
    still_connected,
    var,
    wait_call,
)

__all__ = ["csms", "start_agent"]


async def _report(csms: Csms, action: str, payload: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The answer to a GetReport/GetBaseReport and, if Accepted, every NotifyReport part of it."""
    after = mark(csms)
    answer = await csms.server.call(CP, action, payload)
    if answer["status"] != "Accepted":
        return answer, []
    await wait_call(
        csms,
        "NotifyReport",
        after=after,
        where=lambda p: p["requestId"] == payload["requestId"] and not p.get("tbc"),
    )
    parts = [p for p in calls(csms, "NotifyReport", after) if p["requestId"] == payload["requestId"]]
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert [p.get("tbc", False) for p in parts] == [True] * (len(parts) - 1) + [False]
    return answer, [d for p in parts for d in p["reportData"]]


def _names(data: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(d["component"]["name"], d["variable"]["name"]) for d in data}


async def test_tc_b_14_cs_summary_inventory_reports_the_availability_of_station_evses_and_connectors(
    csms: Csms, start_agent: StartAgent
) -> None:
    a = await start_agent(connectors=2)
    answer, data = await _report(csms, "GetBaseReport", {"requestId": 14, "reportBase": "SummaryInventory"})
    assert answer == {"status": "Accepted"}
    states = {
        (d["component"]["name"], d["component"].get("evse", {}).get("id"), d["variable"]["name"]): d[
            "variableAttribute"
        ][0]["value"]
        for d in data
    }
    assert states[("Connector", 1, "AvailabilityState")] == "Available"
    assert states[("Connector", 2, "Problem")] == "false"
    assert states[("ChargingStation", None, "Available")] == "true"
    # A fault is in the next summary (the station has a problem; the connector is Faulted, not Available).
    await a.agent.station.raise_fault(2, ErrorCode.GROUND_FAILURE, "test")  # type: ignore[union-attr]
    _, data = await _report(csms, "GetBaseReport", {"requestId": 15, "reportBase": "SummaryInventory"})
    by = {
        (d["component"]["name"], d["component"].get("evse", {}).get("id"), d["variable"]["name"]): d[
            "variableAttribute"
        ][0]["value"]
        for d in data
    }
    assert by[("Connector", 2, "AvailabilityState")] == "Faulted"
    assert by[("Connector", 2, "Problem")] == "true" and by[("ChargingStation", None, "Problem")] == "true"
    assert by[("Connector", 1, "AvailabilityState")] == "Available"


async def test_tc_b_16_cs_custom_report_with_component_criteria(csms: Csms, start_agent: StartAgent) -> None:
    await start_agent()
    answer, data = await _report(csms, "GetReport", {"requestId": 16, "componentCriteria": ["Enabled"]})
    assert answer == {"status": "Accepted"}
    # Only components with an Enabled variable that is true (every one by default), with all their variables.
    enabled = {r.component for r in VARIABLES if r.variable == "Enabled"}
    assert {"AuthCacheCtrlr", "LocalAuthListCtrlr"} <= enabled
    assert {d["component"]["name"] for d in data} == enabled
    assert _names(data) == {(r.component, r.variable) for r in VARIABLES if r.component in enabled}
    # One disabled drops out.
    set_cache = {
        "component": {"name": "AuthCacheCtrlr"},
        "variable": {"name": "Enabled"},
        "attributeValue": "false",
    }
    await csms.server.call(CP, "SetVariables", {"setVariableData": [set_cache]})
    _, data = await _report(csms, "GetReport", {"requestId": 161, "componentCriteria": ["Enabled"]})
    assert {d["component"]["name"] for d in data} == enabled - {"AuthCacheCtrlr"}
    answer, data = await _report(csms, "GetReport", {"requestId": 17, "componentCriteria": ["Available"]})
    assert answer == {"status": "Accepted"}
    assert {d["component"]["name"] for d in data} == {"ChargingStation", "EVSE", "Connector"}


async def test_tc_b_17_cs_custom_report_with_component_variable(csms: Csms, start_agent: StartAgent) -> None:
    await start_agent()
    request = {
        "requestId": 18,
        "componentVariable": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
            {"component": {"name": "TxCtrlr"}},  # every variable of the component
        ],
    }
    answer, data = await _report(csms, "GetReport", request)
    assert answer == {"status": "Accepted"}
    assert _names(data) == {("OCPPCommCtrlr", "HeartbeatInterval")} | {
        (r.component, r.variable) for r in VARIABLES if r.component == "TxCtrlr"
    }
    start_point = next(d for d in data if d["variable"]["name"] == "TxStartPoint")
    assert start_point["variableAttribute"][0]["value"] == "PowerPathClosed"
    assert start_point["variableCharacteristics"] == {
        "dataType": "MemberList",
        "supportsMonitoring": False,
        "valuesList": "EVConnected,Authorized,PowerPathClosed",
    }


async def test_tc_b_18_cs_custom_report_with_criteria_and_component_variable(
    csms: Csms, start_agent: StartAgent
) -> None:
    await start_agent()
    request = {
        "requestId": 19,
        "componentCriteria": ["Enabled"],
        "componentVariable": [{"component": {"name": "AuthCacheCtrlr"}}, {"component": {"name": "TxCtrlr"}}],
    }
    answer, data = await _report(csms, "GetReport", request)
    assert answer == {"status": "Accepted"}
    assert {d["component"]["name"] for d in data} == {"AuthCacheCtrlr"}  # TxCtrlr has no Enabled variable


async def test_tc_b_19_cs_custom_report_nothing_matches_is_an_empty_result_set(
    csms: Csms, start_agent: StartAgent
) -> None:
    await start_agent()
    after = mark(csms)
    for request in (
        {"requestId": 20, "componentCriteria": ["Active"]},  # no component has an Active variable
        {"requestId": 21, "componentVariable": [{"component": {"name": "NoSuchCtrlr"}}]},
        {"requestId": 22, "componentVariable": [{"component": {"name": "TxCtrlr", "instance": "x"}}]},
        {"requestId": 23, "componentVariable": [{"component": {"name": "EVSE", "evse": {"id": 9}}}]},
        {
            "requestId": 24,
            "componentVariable": [{"component": {"name": "TxCtrlr"}, "variable": {"name": "Nope"}}],
        },
    ):
        assert await csms.server.call(CP, "GetReport", request) == {"status": "EmptyResultSet"}, request
    assert calls(csms, "NotifyReport", after) == []


async def test_tc_b_56_cs_custom_report_component_without_evse_id_reports_every_evse(
    csms: Csms, start_agent: StartAgent
) -> None:
    await start_agent(connectors=2)
    request = {
        "requestId": 25,
        "componentVariable": [{"component": {"name": "EVSE"}, "variable": {"name": "AvailabilityState"}}],
    }
    answer, data = await _report(csms, "GetReport", request)
    assert answer == {"status": "Accepted"}
    assert sorted(d["component"]["evse"]["id"] for d in data) == [1, 2]
    one = {
        "requestId": 26,
        "componentVariable": [
            {
                "component": {"name": "Connector", "evse": {"id": 2, "connectorId": 1}},
                "variable": {"name": "Problem"},
            }
        ],
    }
    _, data = await _report(csms, "GetReport", one)
    assert [(d["component"]["evse"], d["variableAttribute"][0]["value"]) for d in data] == [
        ({"id": 2, "connectorId": 1}, "false")
    ]


async def test_get_report_longer_than_items_per_message_is_an_occurrence_constraint_violation(
    csms: Csms, start_agent: StartAgent
) -> None:
    await start_agent()
    too_many = [{"component": {"name": "TxCtrlr"}}] * 65  # ItemsPerMessage is 64
    try:
        await csms.server.call(CP, "GetReport", {"requestId": 27, "componentVariable": too_many})
    except CallErrorReply as exc:
        assert exc.code == "OccurrenceConstraintViolation"
    else:
        raise AssertionError("a GetReport over ItemsPerMessage was accepted")
    assert await csms.server.call(CP, "GetReport", {"requestId": 28, "componentCriteria": ["Enabled"]}) == {
        "status": "Accepted"
    }


async def test_report_parts_are_bounded_by_bytes_per_message(csms: Csms, start_agent: StartAgent) -> None:
    a = await start_agent()
    session = a.agent.link.session  # type: ignore[union-attr]
    report = session.base_report("FullInventory")
    limit = 1_500
    session.settings._values["bytes_per_message"] = limit  # read-only to the CSMS; a station built smaller
    parts = session.report_parts(report)
    assert [d for p in parts for d in p] == report  # nothing lost, nothing reordered
    assert len(parts) > 1
    assert all(len(json.dumps(p, separators=(",", ":"))) <= limit - 200 for p in parts)
    assert all(len(p) <= 16 for p in parts)


async def test_a_fault_and_its_recovery_are_notify_events(csms: Csms, start_agent: StartAgent) -> None:
    a = await start_agent()
    station = a.agent.station
    assert station is not None
    after = mark(csms)
    a.plug()  # Occupied: StatusNotification's alone, no event
    await wait_call(
        csms, "StatusNotification", after=after, where=lambda p: p["connectorStatus"] == "Occupied"
    )
    a.unplug()
    await wait_call(
        csms, "StatusNotification", after=after, where=lambda p: p["connectorStatus"] == "Available"
    )
    assert calls(csms, "NotifyEvent", after) == []
    after = mark(csms)
    await station.raise_fault(1, ErrorCode.GROUND_FAILURE, "test")
    event = await wait_call(
        csms,
        "NotifyEvent",
        after=after,
        where=lambda p: any(
            e["variable"]["name"] == "AvailabilityState" and e["actualValue"] == "Faulted"
            for e in p["eventData"]
        ),
    )
    data = {(e["component"]["name"], e["variable"]["name"]): e for e in event.payload["eventData"]}
    connector = data[("Connector", "AvailabilityState")]
    assert connector["component"]["evse"] == {"id": 1, "connectorId": 1}
    assert connector["trigger"] == "Delta" and connector["eventNotificationType"] == "HardWiredNotification"
    assert data[("Connector", "Problem")]["actualValue"] == "true"
    after = mark(csms)
    await station.clear_fault(1, ErrorCode.GROUND_FAILURE)
    await wait_call(
        csms,
        "NotifyEvent",
        after=after,
        where=lambda p: any(e["actualValue"] == "Available" for e in p["eventData"]),
    )
    ids = [e["eventId"] for p in calls(csms, "NotifyEvent") for e in p["eventData"]]
    assert len(ids) == len(set(ids))  # each event its own id


async def test_get_variables_answer_never_exceeds_bytes_per_message(
    csms: Csms, start_agent: StartAgent
) -> None:
    """64 requests for a 1,000-character value would make a ~70 KB answer, over the CSMS's 64 KiB frame limit:
    the station answers what fits, the rest Rejected (TooLargeElement), and the link stays up."""
    a = await start_agent()
    long_name = "N" * 1000  # SetVariables attributeValue: string[0..1000]
    assert (await set_value(csms, "SecurityCtrlr", "OrganizationName", long_name))[
        "attributeStatus"
    ] == "Accepted"
    wanted = [var("SecurityCtrlr", "OrganizationName")] * 64  # ItemsPerMessage
    answer = await csms.server.call(CP, "GetVariables", {"getVariableData": wanted})
    results = answer["getVariableResult"]
    assert len(results) == 64  # B06.FR.01: one result per requested item, in order
    assert len(json.dumps(answer, separators=(",", ":"))) <= 65_000
    accepted = [r for r in results if r["attributeStatus"] == "Accepted"]
    assert accepted and all(r["attributeValue"] == long_name for r in accepted)
    refused = results[len(accepted) :]
    assert refused and all(
        r["attributeStatus"] == "Rejected"
        and r["attributeStatusInfo"]["reasonCode"] == "TooLargeElement"
        and "attributeValue" not in r
        for r in refused
    )
    still_connected(a)
