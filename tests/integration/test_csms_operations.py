"""Operator commands through the version-neutral port, from the REST API, to real 1.6 and 2.0.1 clients (the `ocpp`
package) on 127.0.0.1. The clients validate every request against their version's schemas, so a malformed
payload from the central system would come back as a CallError and fail these tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ocpp.routing import on
from ocpp.v16 import ChargePoint as V16ChargePoint
from ocpp.v16 import call as call16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as V201ChargePoint
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action
from websockets.asyncio.client import ClientConnection, connect

from backend_stub.app import Csms
from backend_stub.ocpp.admission import admitted
from backend_stub.ocpp.framing import CallErrorReply
from backend_stub.store import CsmsStore, InvalidInput

ADMIN_TOKEN = "operations-admin-token-0123"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PASSWORD = "old-password-0123456789"
FUTURE = "2099-01-01T00:00:00Z"
# A reservation ends within MAX_RESERVATION (24 h) of now.
SOON = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")


def basic(cp_id: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{cp_id}:{password}".encode()).decode()}


class Station201(V201ChargePoint):
    """A 2.0.1 station that records every command (action, request) and accepts it."""

    set_variable_status = "Accepted"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.got: list[tuple[str, dict[str, Any]]] = []

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]]) -> Any:
        self.got.append(("GetVariables", {"get_variable_data": get_variable_data}))
        results = []
        for data in get_variable_data:
            known = data["variable"]["name"] == "HeartbeatInterval"
            result = {
                "attribute_status": "Accepted" if known else "UnknownVariable",
                "component": data["component"],
                "variable": data["variable"],
            }
            if known:
                result["attribute_value"] = "300"
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    def on_set_variables(self, set_variable_data: list[dict[str, Any]]) -> Any:
        self.got.append(("SetVariables", {"set_variable_data": set_variable_data}))
        return call_result.SetVariables(
            set_variable_result=[
                {
                    "attribute_status": self.set_variable_status,
                    "component": d["component"],
                    "variable": d["variable"],
                }
                for d in set_variable_data
            ]
        )

    @on(Action.get_base_report)
    def on_get_base_report(self, request_id: int, report_base: str) -> Any:
        self.got.append(("GetBaseReport", {"report_base": report_base}))
        return call_result.GetBaseReport(status="Accepted")

    def _accept(name: str, result: Any) -> Any:  # type: ignore[misc]
        def handler(self: Station201, **kw: Any) -> Any:
            self.got.append((name, kw))
            return result

        handler.__name__ = f"on_{name}"  # the ocpp package finds handlers by their function's name
        return handler

    on_ChangeAvailability = on(Action.change_availability)(
        _accept("ChangeAvailability", call_result.ChangeAvailability(status="Accepted"))
    )
    on_TriggerMessage = on(Action.trigger_message)(
        _accept("TriggerMessage", call_result.TriggerMessage(status="Accepted"))
    )
    on_SetChargingProfile = on(Action.set_charging_profile)(
        _accept("SetChargingProfile", call_result.SetChargingProfile(status="Accepted"))
    )
    on_ClearChargingProfile = on(Action.clear_charging_profile)(
        _accept("ClearChargingProfile", call_result.ClearChargingProfile(status="Unknown"))
    )
    on_GetCompositeSchedule = on(Action.get_composite_schedule)(
        _accept("GetCompositeSchedule", call_result.GetCompositeSchedule(status="Rejected"))
    )
    on_UpdateFirmware = on(Action.update_firmware)(
        _accept("UpdateFirmware", call_result.UpdateFirmware(status="Accepted"))
    )
    on_GetLog = on(Action.get_log)(_accept("GetLog", call_result.GetLog(status="Accepted")))
    on_SendLocalList = on(Action.send_local_list)(
        _accept("SendLocalList", call_result.SendLocalList(status="Accepted"))
    )
    on_ReserveNow = on(Action.reserve_now)(_accept("ReserveNow", call_result.ReserveNow(status="Accepted")))
    on_CancelReservation = on(Action.cancel_reservation)(
        _accept("CancelReservation", call_result.CancelReservation(status="Accepted"))
    )


class Station16(V16ChargePoint):
    """A 1.6 charge point with a few configuration keys that records every command."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.got: list[tuple[str, dict[str, Any]]] = []

    @on(Action16.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> Any:
        self.got.append(("GetConfiguration", {"key": key}))
        keys = {"HeartbeatInterval": "300", "MeterValueSampleInterval": "60"}
        wanted = keys if key is None else {k: keys[k] for k in key if k in keys}
        return result16.GetConfiguration(
            configuration_key=[{"key": k, "readonly": False, "value": v} for k, v in wanted.items()],
            unknown_key=[k for k in key or [] if k not in keys] or None,
        )

    @on(Action16.change_configuration)
    def on_change_configuration(self, key: str, value: str) -> Any:
        self.got.append(("ChangeConfiguration", {"key": key, "value": value}))
        return result16.ChangeConfiguration(status="Accepted")

    @on(Action16.reserve_now)
    def on_reserve_now(self, **kw: Any) -> Any:
        self.got.append(("ReserveNow", kw))
        return result16.ReserveNow(status="Accepted")

    @on(Action16.send_local_list)
    def on_send_local_list(self, **kw: Any) -> Any:
        self.got.append(("SendLocalList", kw))
        return result16.SendLocalList(status="Accepted")

    @on(Action16.set_charging_profile)
    def on_set_charging_profile(self, **kw: Any) -> Any:
        self.got.append(("SetChargingProfile", kw))
        return result16.SetChargingProfile(status="Accepted")

    @on(Action16.clear_charging_profile)
    def on_clear_charging_profile(self, **kw: Any) -> Any:
        self.got.append(("ClearChargingProfile", kw))
        return result16.ClearChargingProfile(status="Accepted")


@contextlib.asynccontextmanager
async def started_csms(db: Path, chargers: dict[str, str | None]) -> AsyncIterator[Csms]:
    """The bundled central system on 127.0.0.1 with ``chargers`` (id -> password, None for none) registered."""
    with CsmsStore(db) as store:
        for cp_id, password in chargers.items():
            store.add_charger(cp_id, password)
        app = Csms(store, admin_token=ADMIN_TOKEN)
        await app.start()
        try:
            yield app
        finally:
            await app.stop()


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    async with started_csms(tmp_path / "csms.db", {"CS-201": PASSWORD, "CP-16": PASSWORD}) as app:
        yield app


async def run(cp: Any) -> asyncio.Task[None]:
    return asyncio.create_task(cp.start())


async def connect_201(
    csms: Csms, password: str = PASSWORD
) -> tuple[Station201, asyncio.Task[None], ClientConnection]:
    ws = await connect(
        f"{csms.url}/CS-201",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=basic("CS-201", password),
    )
    station = Station201("CS-201", ws)
    task = await run(station)
    boot = call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
    assert (await station.call(boot, suppress=False)).status == "Accepted"
    return station, task, ws


async def connect_16(csms: Csms) -> tuple[Station16, asyncio.Task[None], ClientConnection]:
    ws = await connect(
        f"{csms.url}/CP-16",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=basic("CP-16", PASSWORD),
    )
    station = Station16("CP-16", ws)
    task = await run(station)
    boot = call16.BootNotification(charge_point_vendor="V", charge_point_model="M")
    assert (await station.call(boot, suppress=False)).status == "Accepted"
    return station, task, ws


async def close(task: asyncio.Task[None], ws: ClientConnection) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await ws.close()


async def post(http: aiohttp.ClientSession, cp_id: str, name: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(f"/api/chargers/{cp_id}/operations/{name}", json=body) as resp:
        return resp.status, await resp.json()


async def test_every_operation_reaches_a_201_station_in_201_shapes(csms: Csms) -> None:
    station, task, ws = await connect_201(csms)
    try:
        async with aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http:
            status, got = await post(
                http,
                "CS-201",
                "get-variables",
                {
                    "variables": [
                        {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"},
                        {"component": "TxCtrlr", "variable": "Nope", "evse": 1},
                    ]
                },
            )
            assert status == 200, got
            assert [(r["variable"], r["status"], r["value"]) for r in got["results"]] == [
                ("HeartbeatInterval", "Accepted", "300"),
                ("Nope", "UnknownVariable", None),
            ]
            requests = [
                (
                    "set-variable",
                    {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval", "value": "60"},
                ),
                ("base-report", {"kind": "ConfigurationInventory"}),
                ("change-availability", {"evse": 2, "kind": "Inoperative"}),
                ("trigger-message", {"message": "StatusNotification", "evse": 1}),
                (
                    "set-charging-profile",
                    {
                        "evse": 1,
                        "profile_id": 7,
                        "stack_level": 1,
                        "purpose": "TxDefaultProfile",
                        "unit": "A",
                        "periods": [{"start_s": 0, "limit": 16}, {"start_s": 3600, "limit": 10.5}],
                    },
                ),
                ("clear-charging-profile", {"profile_id": 7}),
                ("composite-schedule", {"evse": 1, "duration_s": 3600, "unit": "W"}),
                ("update-firmware", {"location": "https://fw.example/fw.bin", "retrieve_at": FUTURE}),
                ("get-log", {"location": "ftp://logs.example/up"}),
                (
                    "send-local-list",
                    {
                        "version": 3,
                        "entries": [
                            {"token": "04A1B2C3D4E5F6", "status": "Accepted"},
                            {
                                "token": "DE-ABC-C12345678-X",
                                "status": "Blocked",
                            },  # an eMAID: longer than 1.6 takes
                        ],
                    },
                ),
                (
                    "reserve-now",
                    {"reservation_id": 5, "evse": 1, "token": "04A1B2C3D4E5F6", "expires_at": SOON},
                ),
                ("cancel-reservation", {"reservation_id": 5}),
            ]
            statuses = []
            for name, body in requests:
                status, got = await post(http, "CS-201", name, body)
                assert status == 200, (name, got)
                statuses.append(got["status"])
    finally:
        await close(task, ws)
    assert statuses == ["Accepted"] * 5 + ["Unknown", "Rejected"] + ["Accepted"] * 5
    got_by_action = dict(station.got)
    assert got_by_action["SetVariables"]["set_variable_data"] == [
        {
            "attribute_value": "60",
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval"},
        }
    ]
    assert got_by_action["GetBaseReport"] == {"report_base": "ConfigurationInventory"}
    assert got_by_action["ChangeAvailability"] == {"operational_status": "Inoperative", "evse": {"id": 2}}
    profile = got_by_action["SetChargingProfile"]["charging_profile"]
    assert profile["charging_profile_purpose"] == "TxDefaultProfile"
    assert profile["charging_schedule"][0]["charging_schedule_period"] == [
        {"start_period": 0, "limit": 16},
        {"start_period": 3600, "limit": 10.5},
    ]
    assert got_by_action["ClearChargingProfile"] == {"charging_profile_id": 7}
    assert got_by_action["UpdateFirmware"]["firmware"] == {
        "location": "https://fw.example/fw.bin",
        "retrieve_date_time": "2099-01-01T00:00:00Z",
    }
    assert got_by_action["GetLog"]["log"] == {"remote_location": "ftp://logs.example/up"}
    assert [e["id_token"] for e in got_by_action["SendLocalList"]["local_authorization_list"]] == [
        {"id_token": "04A1B2C3D4E5F6", "type": "ISO14443"},
        {"id_token": "DE-ABC-C12345678-X", "type": "Central"},
    ]
    assert got_by_action["ReserveNow"]["evse_id"] == 1
    assert got_by_action["CancelReservation"] == {"reservation_id": 5}


async def test_201_reservation_by_connector_type_and_group_tx_profile_and_clear_by_stack_level(
    csms: Csms,
) -> None:
    """The 2.0.1-only fields of the operations (H01 connectorType and groupIdToken, K01 a TxProfile for the
    station's own transactionId, K10 stackLevel) reach the station; 1.6 refuses them with 422, sending nothing."""
    station, task, ws = await connect_201(csms)
    try:
        async with aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http:
            for name, body in [
                (
                    "reserve-now",
                    {
                        "reservation_id": 6,
                        "token": "TAG-1",
                        "expires_at": SOON,
                        "connector_type": "cType2",
                        "group_token": "GROUP-1",
                    },
                ),
                (
                    "set-charging-profile",
                    {
                        "evse": 1,
                        "profile_id": 8,
                        "stack_level": 0,
                        "purpose": "TxProfile",
                        "unit": "A",
                        "charger_transaction": "station-tx-42",
                        "periods": [{"start_s": 0, "limit": 6}],
                    },
                ),
                ("clear-charging-profile", {"evse": 1, "purpose": "TxDefaultProfile", "stack_level": 2}),
            ]:
                status, got = await post(http, "CS-201", name, body)
                assert status == 200, (name, got)
            for name, body in [
                (
                    "reserve-now",
                    {"reservation_id": 1, "token": "T", "expires_at": SOON, "connector_type": "x"},
                ),
                (  # a transaction only on a TxProfile, and one kind of transaction id
                    "set-charging-profile",
                    {
                        "evse": 1,
                        "profile_id": 9,
                        "stack_level": 0,
                        "purpose": "TxDefaultProfile",
                        "unit": "A",
                        "charger_transaction": "station-tx-42",
                        "periods": [{"start_s": 0, "limit": 6}],
                    },
                ),
                (
                    "set-charging-profile",
                    {
                        "evse": 1,
                        "profile_id": 9,
                        "stack_level": 0,
                        "purpose": "TxProfile",
                        "unit": "A",
                        "transaction": 1,
                        "charger_transaction": "station-tx-42",
                        "periods": [{"start_s": 0, "limit": 6}],
                    },
                ),
            ]:
                status, got = await post(http, "CS-201", name, body)
                assert status == 400, (name, got)
    finally:
        await close(task, ws)
    got_by_action = dict(station.got)
    reserve = got_by_action["ReserveNow"]
    assert (reserve["connector_type"], reserve["group_id_token"], reserve.get("evse_id")) == (
        "cType2",
        {"id_token": "GROUP-1", "type": "Central"},
        None,
    )
    assert got_by_action["SetChargingProfile"]["charging_profile"]["transaction_id"] == "station-tx-42"
    assert got_by_action["ClearChargingProfile"]["charging_profile_criteria"] == {
        "evse_id": 1,
        "charging_profile_purpose": "TxDefaultProfile",
        "stack_level": 2,
    }
    assert [a for a, _ in station.got] == ["ReserveNow", "SetChargingProfile", "ClearChargingProfile"]

    station16, task16, ws16 = await connect_16(csms)
    try:
        async with aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http:
            reserve_body = {
                "reservation_id": 7,
                "token": "T",
                "expires_at": SOON,
                "connector_type": "cType2",
            }
            status, got = await post(http, "CP-16", "reserve-now", reserve_body)
            assert (status, got["code"]) == (422, "NotInVersion")
            status, got = await post(
                http,
                "CP-16",
                "set-charging-profile",
                {
                    "evse": 1,
                    "profile_id": 8,
                    "stack_level": 0,
                    "purpose": "TxProfile",
                    "unit": "A",
                    "charger_transaction": "station-tx-42",
                    "periods": [{"start_s": 0, "limit": 6}],
                },
            )
            assert (status, got["code"]) == (422, "NotInVersion")
            status, got = await post(http, "CP-16", "clear-charging-profile", {"stack_level": 1})
            assert status == 200, got
    finally:
        await close(task16, ws16)
    assert station16.got == [("ClearChargingProfile", {"stack_level": 1})]


async def test_201_device_model_report_is_shown_on_the_charger_page(csms: Csms) -> None:
    station, task, ws = await connect_201(csms)
    try:
        async with aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http:
            status, got = await post(http, "CS-201", "base-report", {})
            assert (status, got["status"]) == (200, "Accepted")
            report = call.NotifyReport(
                request_id=1,
                generated_at="2026-11-22T10:00:00Z",
                seq_no=0,
                report_data=[
                    {
                        "component": {"name": "OCPPCommCtrlr"},
                        "variable": {"name": "HeartbeatInterval"},
                        "variable_attribute": [{"type": "Actual", "value": "<b>300</b>"}],
                    }
                ],
            )
            await station.call(report, suppress=False)
            async with http.get("/chargers/CS-201") as resp:
                page = await resp.text()
    finally:
        await close(task, ws)
    assert "OCPPCommCtrlr" in page and "HeartbeatInterval" in page
    assert "&lt;b&gt;300&lt;/b&gt;" in page  # the charger's text is escaped, not markup


async def test_16_operations_map_to_16_commands_or_say_what_16_lacks(csms: Csms) -> None:
    station, task, ws = await connect_16(csms)
    try:
        async with aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http:
            status, got = await post(
                http,
                "CP-16",
                "get-variables",
                {
                    "variables": [
                        {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"},
                        {"component": "X", "variable": "Unknown"},
                    ]
                },
            )
            assert status == 200, got
            assert [(r["status"], r["value"]) for r in got["results"]] == [
                ("Accepted", "300"),
                ("UnknownVariable", None),
            ]
            status, got = await post(http, "CP-16", "base-report", {})
            assert (status, got["fields"]) == (200, {"configurationKeys": 2})
            variables = {(v.component, v.variable): v.value for v in csms.store.device_model("CP-16")}
            assert variables == {
                ("OCPP16", "HeartbeatInterval"): "300",
                ("OCPP16", "MeterValueSampleInterval"): "60",
            }
            # 1.6 idTags are CiString20: an eMAID does not fit, and the API says so without sending anything.
            status, got = await post(
                http,
                "CP-16",
                "send-local-list",
                {"version": 1, "entries": [{"token": "DE-ABC-C12345678-X-LONG", "status": "Accepted"}]},
            )
            assert (status, got["code"]) == (422, "NotInVersion")
            status, got = await post(http, "CP-16", "trigger-message", {"message": "LogStatusNotification"})
            assert (status, got["code"]) == (422, "NotInVersion")
            status, got = await post(
                http, "CP-16", "reserve-now", {"reservation_id": 9, "token": "CARD1", "expires_at": SOON}
            )
            assert (status, got["status"]) == (200, "Accepted")
            status, got = await post(
                http,
                "CP-16",
                "set-charging-profile",
                {
                    "evse": 0,
                    "profile_id": 1,
                    "stack_level": 0,
                    "purpose": "ChargingStationMaxProfile",
                    "unit": "W",
                    "periods": [{"start_s": 0, "limit": 11000}],
                },
            )
            assert (status, got["status"]) == (200, "Accepted")
            # Bad requests are refused before anything is sent.
            for name, body in [
                ("set-charging-profile", {"evse": 1}),
                ("reserve-now", {"reservation_id": 1, "token": "X", "expires_at": "tomorrow"}),
                ("update-firmware", {"location": "file:///etc/passwd", "retrieve_at": FUTURE}),
                ("get-variables", {"variables": [{"component": "A", "variable": "B", "extra": 1}]}),
                ("change-availability", {"kind": "Broken"}),
            ]:
                status, got = await post(http, "CP-16", name, body)
                assert status == 400, (name, got)
            assert (await post(http, "CP-16", "no-such-operation", {}))[0] == 404
            assert (await post(http, "CS-201", "reset", {"kind": "Soft"}))[0] == 409  # not connected
    finally:
        await close(task, ws)
    actions = [a for a, _ in station.got]
    # The first read of two keys reads GetConfigurationMaxKeys first (once per boot): it may not take two at once.
    assert actions == ["GetConfiguration"] * 3 + ["ReserveNow", "SetChargingProfile"]
    assert station.got[0] == ("GetConfiguration", {"key": ["GetConfigurationMaxKeys"]})
    reserve = dict(station.got)["ReserveNow"]
    assert (reserve["connector_id"], reserve["id_tag"], reserve["expiry_date"]) == (
        0,
        "CARD1",
        SOON,
    )
    profile = dict(station.got)["SetChargingProfile"]["cs_charging_profiles"]
    assert profile["charging_profile_purpose"] == "ChargePointMaxProfile"


async def test_rotating_a_201_password_changes_it_only_once_accepted(csms: Csms) -> None:
    station, task, ws = await connect_201(csms)
    try:
        async with aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http:
            station.set_variable_status = "Rejected"
            assert (await post(http, "CS-201", "rotate-password", {}))[1]["status"] == "Rejected"
            assert csms.store.verify_password("CS-201", PASSWORD)
            station.set_variable_status = "Accepted"
            assert (await post(http, "CS-201", "rotate-password", {}))[1]["status"] == "Accepted"
    finally:
        await close(task, ws)
    sent = [d for a, d in station.got if a == "SetVariables"]
    new_password = sent[-1]["set_variable_data"][0]["attribute_value"]
    assert sent[-1]["set_variable_data"][0]["component"] == {"name": "SecurityCtrlr"}
    assert sent[-1]["set_variable_data"][0]["variable"] == {"name": "BasicAuthPassword"}
    assert new_password != sent[0]["set_variable_data"][0]["attribute_value"]
    assert 16 <= len(new_password) <= 40
    assert csms.store.verify_password("CS-201", new_password)
    assert not csms.store.verify_password("CS-201", PASSWORD)
    # The station reconnects with its new password; the old one is refused.
    _station, task, ws = await connect_201(csms, new_password)
    await close(task, ws)
    with pytest.raises(Exception, match="401"):
        await connect(
            f"{csms.url}/CS-201", subprotocols=["ocpp2.0.1"], additional_headers=basic("CS-201", PASSWORD)
        )  # type: ignore[list-item]


async def test_rotating_a_16_password_uses_authorization_key(csms: Csms) -> None:
    station, task, ws = await connect_16(csms)
    try:
        async with aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http:
            assert (await post(http, "CP-16", "rotate-password", {}))[1]["status"] == "Accepted"
    finally:
        await close(task, ws)
    ((action, change),) = station.got
    assert (action, change["key"]) == ("ChangeConfiguration", "AuthorizationKey")
    assert csms.store.verify_password("CP-16", change["value"])


HOSTILE_SET_VARIABLES_ANSWERS = [
    {"setVariableResult": "x" * 60_000},  # under the 64 KiB frame limit (bigger frames drop the link)
    {"setVariableResult": [1, 2, 3]},
    {"setVariableResult": [{"attributeStatus": {"nested": ["Accepted"]}}]},
    {"setVariableResult": [{"attributeStatus": "Accepted" * 1000}]},
    {"setVariableResult": [{"attributeStatus": 1e308}]},
    {"setVariableResult": []},
    {},
    # Accepted, but component/variable not objects: the password observer must skip it, not raise.
    {"setVariableResult": [{"attributeStatus": "Accepted", "component": "SecurityCtrlr", "variable": 7}]},
]


@pytest.mark.parametrize(
    "answer", HOSTILE_SET_VARIABLES_ANSWERS, ids=range(len(HOSTILE_SET_VARIABLES_ANSWERS))
)
async def test_hostile_set_variables_answers_are_parsed_defensively(
    csms: Csms, answer: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A 2.0.1 charger answering SetVariables with junk: no status, the old password kept, the link up."""
    caplog.set_level(logging.ERROR, logger="backend_stub")
    ws = await connect(
        f"{csms.url}/CS-201",
        subprotocols=["ocpp2.0.1"],
        additional_headers=basic("CS-201", PASSWORD),  # type: ignore[list-item]
    )
    boot = {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}
    await ws.send(json.dumps([2, "b", "BootNotification", boot]))
    assert json.loads(await ws.recv())[2]["status"] == "Accepted"
    rotation = asyncio.create_task(csms.central.operations.rotate_password("CS-201"))
    frame = json.loads(await ws.recv())
    assert frame[2] == "SetVariables"
    await ws.send(json.dumps([3, frame[1], answer]))
    reply = await rotation
    assert not reply.accepted and len(reply.status) <= 32
    assert csms.store.verify_password("CS-201", PASSWORD)
    await ws.send(json.dumps([2, "h", "Heartbeat", {}]))
    assert json.loads(await ws.recv())[0] == 3
    await ws.close()
    assert not [r for r in caplog.records if r.name.startswith("backend_stub")], (
        "junk raised inside the server"
    )


HOSTILE_GET_VARIABLES_ANSWERS = [
    {"getVariableResult": "x" * 60_000},
    {"getVariableResult": [None, 7, "x"]},
    {"getVariableResult": [{"component": "OCPPCommCtrlr", "variable": ["HeartbeatInterval"]}]},
    {
        "getVariableResult": [
            {
                "attributeStatus": "Accepted",
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "attributeValue": "9" * 5000,  # longer than 2.0.1's 2500
            }
        ]
        * 10  # under the 64 KiB frame limit
    },
]


@pytest.mark.parametrize(
    "answer", HOSTILE_GET_VARIABLES_ANSWERS, ids=range(len(HOSTILE_GET_VARIABLES_ANSWERS))
)
async def test_hostile_get_variables_answers_are_parsed_defensively(
    csms: Csms, answer: dict[str, Any]
) -> None:
    """Malformed GetVariables answers: the asked variable comes back Missing or without a value, the link stays up."""
    ws = await connect(
        f"{csms.url}/CS-201",
        subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
        additional_headers=basic("CS-201", PASSWORD),
    )
    boot = {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}
    await ws.send(json.dumps([2, "b", "BootNotification", boot]))
    assert json.loads(await ws.recv())[2]["status"] == "Accepted"
    async with aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http:
        request = asyncio.create_task(
            post(
                http,
                "CS-201",
                "get-variables",
                {"variables": [{"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]},
            )
        )
        frame = json.loads(await ws.recv())
        assert frame[2] == "GetVariables"
        await ws.send(json.dumps([3, frame[1], answer]))
        status, got = await request
    assert status == 200, got
    (result,) = got["results"]
    assert result["value"] is None and len(result["status"]) <= 32
    await ws.send(json.dumps([2, "h", "Heartbeat", {}]))
    assert json.loads(await ws.recv())[0] == 3
    await ws.close()


@pytest.mark.parametrize("is_async", [False, True], ids=["plain", "coroutine"])
async def test_a_store_refusal_in_any_handler_is_a_property_constraint_call_error(
    csms: Csms, is_async: bool
) -> None:
    """Both versions' admission: InvalidInput from a handler, plain or coroutine, becomes the same CallError."""

    def plain(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise InvalidInput("meter value out of range")

    async def coroutine(cp_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        raise InvalidInput("meter value out of range")

    guarded = admitted(csms.central, "BootNotification", coroutine if is_async else plain)
    with pytest.raises(CallErrorReply) as refused:
        result = guarded("CS-201", {})
        if inspect.isawaitable(result):
            await result
    assert refused.value.code == "PropertyConstraintViolation"
    assert "out of range" in refused.value.description
