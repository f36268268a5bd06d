"""The 2.0.1 agent's own message limits as the device model tells them (Part 2 appendix, DeviceDataCtrlr
ItemsPerMessage and BytesPerMessage with instances GetReport, GetVariables and SetVariables) and as it enforces
them, against the bundled central system over loopback (real SQLite, real agent): the values it reports are the
ones it applies, more items than ItemsPerMessage[GetVariables]/[SetVariables] is OccurrenceConstraintViolation
(B06/B05), and one SendLocalList is measured as the whole frame, the way the central system cuts a long list.

The limits are read-only settings; a test lowers their defaults before the agent starts (a smaller charger), or
configures BytesPerMessage (``csms.bytes_per_message``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import aiohttp
import pytest

from backend_stub.app import Csms
from backend_stub.ocpp.limits import frame_bytes
from chargepoint.core import settings as agent_settings
from tests.integration.v201_support import (
    CP,
    StartAgent,
    call_error,
    calls,
    csms,
    mark,
    start_agent,
    var,
    wait_call,
)

__all__ = ["csms", "start_agent"]  # fixtures

INSTANCES = ("GetReport", "GetVariables", "SetVariables")


def lower(monkeypatch: pytest.MonkeyPatch, **defaults: int) -> None:
    """The agent started next reports (and applies) these read-only limits."""
    for name, value in defaults.items():
        monkeypatch.setitem(
            agent_settings.SPECS, name, dataclasses.replace(agent_settings.SPECS[name], default=value)
        )
    monkeypatch.setattr(agent_settings, "_SHARED_BASES", {})  # no defaults cached from before


def limit(variable: str, instance: str | None, **extra: Any) -> dict[str, Any]:
    """A Get/SetVariableData of DeviceDataCtrlr.``variable`` (with ``instance``)."""
    data = var("DeviceDataCtrlr", variable, **extra)
    if instance is not None:
        data["variable"]["instance"] = instance
    return data


async def read(csms: Csms, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
    answer = await csms.server.call(CP, "GetVariables", {"getVariableData": data})
    results: list[dict[str, Any]] = answer["getVariableResult"]
    return results


async def test_items_and_bytes_per_message_have_the_appendix_instances_read_only(
    csms: Csms, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    lower(monkeypatch, get_configuration_max_keys=9)
    await start_agent(csms={"bytes_per_message": 7000})  # the station's BytesPerMessage is configured
    asked = [limit(v, i) for v in ("ItemsPerMessage", "BytesPerMessage") for i in INSTANCES]
    results = await read(csms, asked)
    assert [(r["variable"], r["attributeStatus"], r.get("attributeValue")) for r in results] == [
        ({"name": v, "instance": i}, "Accepted", value)
        for v, value in (("ItemsPerMessage", "9"), ("BytesPerMessage", "7000"))
        for i in INSTANCES
    ]
    # The uninstanced names still answer (the same limit), an instance the appendix does not name does not.
    results = await read(
        csms,
        [limit("ItemsPerMessage", None), limit("BytesPerMessage", None), limit("ItemsPerMessage", "Other")],
    )
    assert [(r["attributeStatus"], r.get("attributeValue")) for r in results] == [
        ("Accepted", "9"),
        ("Accepted", "7000"),
        ("UnknownVariable", None),
    ]
    answer = await csms.server.call(
        CP,
        "SetVariables",
        {"setVariableData": [limit("ItemsPerMessage", "GetVariables", attributeValue="500")]},
    )
    assert answer["setVariableResult"][0]["attributeStatus"] == "Rejected"
    assert (await read(csms, [limit("ItemsPerMessage", "GetVariables")]))[0]["attributeValue"] == "9"


async def _report(csms: Csms, request_id: int, wanted: dict[str, Any]) -> list[dict[str, Any]]:
    after = mark(csms)
    answer = await csms.server.call(CP, "GetReport", {"requestId": request_id, "componentVariable": [wanted]})
    assert answer == {"status": "Accepted"}
    await wait_call(
        csms, "NotifyReport", after=after, where=lambda p: p["requestId"] == request_id and not p["tbc"]
    )
    return [d for p in calls(csms, "NotifyReport", after) for d in p["reportData"]]


async def test_tc_b_54_tc_b_55_cs_a_custom_report_names_each_instance(
    csms: Csms, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    lower(monkeypatch, get_configuration_max_keys=5)
    await start_agent()
    # TC_B_54: the variable without an instance reports every instance it has.
    data = await _report(
        csms, 41, {"component": {"name": "DeviceDataCtrlr"}, "variable": {"name": "ItemsPerMessage"}}
    )
    assert [(d["variable"], d["variableAttribute"][0]["value"]) for d in data] == [
        ({"name": "ItemsPerMessage", "instance": i}, "5") for i in INSTANCES
    ]
    assert all(d["variableAttribute"][0]["mutability"] == "ReadOnly" for d in data)
    # TC_B_55: with an instance, that one only.
    wanted = {
        "component": {"name": "DeviceDataCtrlr"},
        "variable": {"name": "BytesPerMessage", "instance": "GetReport"},
    }
    data = await _report(csms, 42, wanted)
    assert [d["variable"] for d in data] == [{"name": "BytesPerMessage", "instance": "GetReport"}]


async def test_full_inventory_reports_the_instanced_limits_only(csms: Csms, start_agent: StartAgent) -> None:
    await start_agent()
    after = mark(csms)
    answer = await csms.server.call(CP, "GetBaseReport", {"requestId": 43, "reportBase": "FullInventory"})
    assert answer == {"status": "Accepted"}
    await wait_call(csms, "NotifyReport", after=after, where=lambda p: not p["tbc"])
    names = [
        (d["variable"]["name"], d["variable"].get("instance"))
        for p in calls(csms, "NotifyReport", after)
        for d in p["reportData"]
        if d["component"]["name"] == "DeviceDataCtrlr"
    ]
    assert sorted(names) == sorted((v, i) for v in ("BytesPerMessage", "ItemsPerMessage") for i in INSTANCES)


@pytest.mark.parametrize("action", ["GetVariables", "SetVariables", "GetReport"])
async def test_more_items_than_the_reported_items_per_message_is_an_occurrence_constraint_violation(
    action: str, csms: Csms, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    lower(monkeypatch, get_configuration_max_keys=3)
    await start_agent()
    items = int((await read(csms, [limit("ItemsPerMessage", action)]))[0]["attributeValue"])
    one = var("OCPPCommCtrlr", "HeartbeatInterval")
    if action == "GetReport":
        key, item, extra = "componentVariable", {"component": {"name": "OCPPCommCtrlr"}}, {"requestId": 44}
    else:
        key = "getVariableData" if action == "GetVariables" else "setVariableData"
        item = one if action == "GetVariables" else {**one, "attributeValue": "60"}
        extra = {}
    answer = await csms.server.call(CP, action, {key: [item] * items, **extra})
    assert answer  # as many as the station said: answered
    assert (
        await call_error(csms, action, {key: [item] * (items + 1), **extra})
        == "OccurrenceConstraintViolation"
    )


def _list(tags: list[str]) -> dict[str, Any]:
    return {
        "versionNumber": 3,
        "updateType": "Full",
        "localAuthorizationList": [
            {"idToken": {"idToken": t, "type": "ISO14443"}, "idTokenInfo": {"status": "Accepted"}}
            for t in tags
        ],
    }


async def test_send_local_list_is_measured_as_the_whole_frame(
    csms: Csms, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    # LocalAuthListCtrlr.BytesPerMessage exactly the frame of this list, as the central system measures it.
    tags = [f"TAG{n:03d}" for n in range(8)]
    size = frame_bytes("SendLocalList", _list(tags))
    lower(monkeypatch, send_local_list_max_bytes=size)
    await start_agent()
    # One byte more (its list alone is far below the limit): Failed, TooLarge.
    answer = await csms.server.call(CP, "SendLocalList", _list([*tags[:-1], tags[-1] + "X"]))
    assert answer["status"] == "Failed" and answer["statusInfo"]["reasonCode"] == "TooLarge"
    assert await csms.server.call(CP, "SendLocalList", _list(tags)) == {"status": "Accepted"}


async def test_the_central_system_cuts_a_list_to_the_agents_bytes_and_every_part_is_taken(
    csms: Csms, start_agent: StartAgent, monkeypatch: pytest.MonkeyPatch
) -> None:
    lower(monkeypatch, send_local_list_max_bytes=700)
    a = await start_agent()
    asked = [{"token": f"TAG{n:04d}-{'x' * (n % 9)}", "status": "Accepted"} for n in range(30)]
    async with (
        aiohttp.ClientSession(
            base_url=csms.http_url, headers={"Authorization": "Bearer test-admin-token-v201-agent"}
        ) as http,
        http.post(
            f"/api/chargers/{CP}/operations/send-local-list", json={"version": 40, "entries": asked}
        ) as response,
    ):
        got = await response.json()
        assert response.status == 200, got
    assert got["status"] == "Accepted" and got["fields"]["parts"] > 1, got
    store = a.agent.store
    assert store is not None and store.local_list_size() == len(asked)
    assert a.station.local_list_version() == 40
