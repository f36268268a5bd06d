"""The bundled central system keeps to each charger's own message limits (2.0.1 DeviceDataCtrlr / LocalAuthListCtrlr
ItemsPerMessage and BytesPerMessage, 1.6 SendLocalListMaxLength / LocalAuthListMaxLength), over loopback to real
`ocpp` package clients that keep a real local list, refuse what is over their limits like a strict charger, and
measure every frame as it came off the socket."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ocpp.exceptions import OccurrenceConstraintViolationError
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
from backend_stub.domain.commands import VariableRef
from tests.integration.test_csms_operations import ADMIN, PASSWORD, basic, post, started_csms


class Recording:
    """A client connection that keeps every frame the central system sent, as text."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[str] = []

    async def recv(self) -> str:
        text = await self.ws.recv()
        assert isinstance(text, str)
        self.frames.append(text)
        return text

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    def calls(self, action: str) -> list[tuple[int, dict[str, Any]]]:
        """(UTF-8 size, payload) of each CALL of ``action``."""
        out = []
        for text in self.frames:
            frame = json.loads(text)
            if frame[0] == 2 and frame[2] == action:
                out.append((len(text.encode()), frame[3]))
        return out


class LocalList:
    """A charger's local list as OCPP keeps it: a Full update replaces it, a Differential one must raise the version."""

    def __init__(self) -> None:
        self.version = 0
        self.entries: dict[str, str] = {}

    def update(self, version: int, full: bool, items: list[tuple[str, str | None]]) -> str:
        if not full and version <= self.version:
            return "VersionMismatch"
        if full:
            self.entries = {}
        for token, status in items:
            if status is None:
                self.entries.pop(token, None)
            else:
                self.entries[token] = status
        self.version = version
        return "Accepted"


class Station201(V201ChargePoint):
    """A strict 2.0.1 station with small limits: more items than ItemsPerMessage is a CALLERROR, a SendLocalList
    over its limits is Failed (and a test failure: the central system should have split it)."""

    def __init__(
        self, cp_id: str, conn: Recording, variables: dict[tuple[str, str, str | None], str]
    ) -> None:
        super().__init__(cp_id, conn)
        self.conn = conn
        self.variables = variables
        self.local = LocalList()
        self.over_limit: list[str] = []

    def limit(self, component: str, variable: str, instance: str | None) -> int:
        return int(self.variables.get((component, variable, instance), "1000000"))

    @on(Action.get_variables)
    def on_get_variables(self, get_variable_data: list[dict[str, Any]]) -> Any:
        if len(get_variable_data) > self.limit("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"):
            self.over_limit.append(f"GetVariables of {len(get_variable_data)}")
            raise OccurrenceConstraintViolationError(details={"cause": "over ItemsPerMessageGetVariables"})
        results = []
        for data in get_variable_data:
            key = (data["component"]["name"], data["variable"]["name"], data["variable"].get("instance"))
            result = {"component": data["component"], "variable": data["variable"]}
            if key in self.variables:
                result.update(attribute_status="Accepted", attribute_value=self.variables[key])
            else:
                result["attribute_status"] = "UnknownVariable"
            results.append(result)
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.send_local_list)
    def on_send_local_list(
        self,
        version_number: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
    ) -> Any:
        items = local_authorization_list or []
        size = len(self.conn.frames[-1].encode())
        if len(items) > self.limit("LocalAuthListCtrlr", "ItemsPerMessage", None) or size > self.limit(
            "LocalAuthListCtrlr", "BytesPerMessage", None
        ):
            self.over_limit.append(f"SendLocalList of {len(items)} entries, {size} bytes")
            return call_result.SendLocalList(status="Failed")
        status = self.local.update(
            version_number,
            update_type == "Full",
            [(i["id_token"]["id_token"], i.get("id_token_info", {}).get("status")) for i in items],
        )
        return call_result.SendLocalList(status=status)


class Station16(V16ChargePoint):
    """A 1.6 charge point with SendLocalListMaxLength and LocalAuthListMaxLength that keeps a real local list."""

    def __init__(self, cp_id: str, conn: Recording, keys: dict[str, str]) -> None:
        super().__init__(cp_id, conn)
        self.conn = conn
        self.keys = keys
        self.local = LocalList()
        self.over_limit: list[str] = []

    @on(Action16.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None) -> Any:
        wanted = self.keys if key is None else {k: self.keys[k] for k in key if k in self.keys}
        return result16.GetConfiguration(
            configuration_key=[{"key": k, "readonly": True, "value": v} for k, v in wanted.items()],
            unknown_key=[k for k in key or [] if k not in self.keys] or None,
        )

    @on(Action16.send_local_list)
    def on_send_local_list(
        self,
        list_version: int,
        update_type: str,
        local_authorization_list: list[dict[str, Any]] | None = None,
    ) -> Any:
        items = local_authorization_list or []
        if len(items) > int(self.keys.get("SendLocalListMaxLength", "1000000")):
            self.over_limit.append(f"SendLocalList of {len(items)} entries")
            return result16.SendLocalList(status="Failed")
        status = self.local.update(
            list_version,
            update_type == "Full",
            [(i["id_tag"], i.get("id_tag_info", {}).get("status")) for i in items],
        )
        return result16.SendLocalList(status=status)


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    async with started_csms(tmp_path / "csms.db", {"CS-201": PASSWORD, "CP-16": PASSWORD}) as app:
        yield app


@pytest.fixture
async def http(csms: Csms) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as session:
        yield session


async def _open(csms: Csms, cp_id: str, subprotocol: str) -> Recording:
    ws = await connect(
        f"{csms.url}/{cp_id}",
        subprotocols=[subprotocol],  # type: ignore[list-item]
        additional_headers=basic(cp_id, PASSWORD),
    )
    return Recording(ws)


async def boot_201(station: Station201) -> None:
    boot = call.BootNotification(charging_station={"model": "M", "vendor_name": "V"}, reason="PowerUp")
    assert (await station.call(boot, suppress=False)).status == "Accepted"


async def boot_16(station: Station16) -> None:
    boot = call16.BootNotification(charge_point_vendor="V", charge_point_model="M")
    assert (await station.call(boot, suppress=False)).status == "Accepted"


@contextlib.asynccontextmanager
async def running(station: Any) -> AsyncIterator[None]:
    task = asyncio.create_task(station.start())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await station.conn.ws.close()


LIMITS_201 = {
    ("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables"): "4",
    ("DeviceDataCtrlr", "BytesPerMessage", "GetVariables"): "4000",
    ("LocalAuthListCtrlr", "ItemsPerMessage", None): "12",
    ("LocalAuthListCtrlr", "BytesPerMessage", None): "900",
    ("AuthCtrlr", "AuthorizeRemoteStart", None): "true",
}


def entries(count: int, status: str = "Accepted") -> list[dict[str, Any]]:
    return [{"token": f"04A1B2C3{n:06X}", "status": status} for n in range(count)]


async def test_201_a_long_full_list_arrives_in_fitting_parts_with_rising_versions(
    csms: Csms, http: aiohttp.ClientSession
) -> None:
    station = Station201("CS-201", await _open(csms, "CS-201", "ocpp2.0.1"), LIMITS_201)
    async with running(station):
        await boot_201(station)
        asked = [*entries(50), {"token": "DE-ABC-C12345678-X", "status": "Blocked"}]
        status, got = await post(http, "CS-201", "send-local-list", {"version": 30, "entries": asked})
        assert status == 200, got
        assert got["status"] == "Accepted" and got["fields"]["sent"] == got["fields"]["parts"]
        sends = station.conn.calls("SendLocalList")
        assert len(sends) >= 5  # 51 entries at most 12 a message, fewer by the 900-byte limit
        assert all(size <= 900 for size, _ in sends), [size for size, _ in sends]
        assert all(len(p.get("localAuthorizationList", [])) <= 12 for _, p in sends)
        versions = [p["versionNumber"] for _, p in sends]
        assert versions == list(range(30 - len(sends) + 1, 31))
        assert [p["updateType"] for _, p in sends] == ["Full"] + ["Differential"] * (len(sends) - 1)
        assert station.local.version == 30
        assert station.local.entries == {e["token"]: e["status"] for e in asked}
        assert station.over_limit == []
        # The limits were read once, with the Part 2 names; a second list asks nothing more.
        queries = station.conn.calls("GetVariables")
        assert len(queries) == 1
        assert {
            (d["component"]["name"], d["variable"]["name"]) for d in queries[0][1]["getVariableData"]
        } == {
            ("LocalAuthListCtrlr", "ItemsPerMessage"),
            ("LocalAuthListCtrlr", "BytesPerMessage"),
        }
        removed = [{"token": e["token"]} for e in asked[:20]]
        status, got = await post(
            http, "CS-201", "send-local-list", {"version": 40, "full": False, "entries": removed}
        )
        assert status == 200 and got["status"] == "Accepted", got
        assert len(station.conn.calls("GetVariables")) == 1
        assert station.local.version == 40
        assert station.local.entries == {e["token"]: e["status"] for e in asked[20:]}
        # A BootNotification forgets them (a reboot may change them): the next long list asks again.
        await boot_201(station)
        status, got = await post(http, "CS-201", "send-local-list", {"version": 41, "entries": entries(2)})
        assert status == 200 and got["status"] == "Accepted", got
        assert len(station.conn.calls("GetVariables")) == 2
        assert station.local.entries == {e["token"]: e["status"] for e in entries(2)}
        assert station.over_limit == []


async def test_201_get_variables_keeps_to_items_per_message(csms: Csms, http: aiohttp.ClientSession) -> None:
    """TC_B_08_CSMS in shape: five variables for a station that takes four at a time."""
    station = Station201("CS-201", await _open(csms, "CS-201", "ocpp2.0.1"), LIMITS_201)
    wanted = [
        {"component": "DeviceDataCtrlr", "variable": "ItemsPerMessage", "instance": "GetReport"},
        {"component": "DeviceDataCtrlr", "variable": "ItemsPerMessage", "instance": "GetVariables"},
        {"component": "DeviceDataCtrlr", "variable": "BytesPerMessage", "instance": "GetReport"},
        {"component": "DeviceDataCtrlr", "variable": "BytesPerMessage", "instance": "GetVariables"},
        {"component": "AuthCtrlr", "variable": "AuthorizeRemoteStart"},
    ]
    async with running(station):
        await boot_201(station)
        for _round in range(2):
            status, got = await post(http, "CS-201", "get-variables", {"variables": wanted})
            assert status == 200, got
            assert [(r["variable"], r["instance"], r["status"], r["value"]) for r in got["results"]] == [
                ("ItemsPerMessage", "GetReport", "UnknownVariable", None),
                ("ItemsPerMessage", "GetVariables", "Accepted", "4"),
                ("BytesPerMessage", "GetReport", "UnknownVariable", None),
                ("BytesPerMessage", "GetVariables", "Accepted", "4000"),
                ("AuthorizeRemoteStart", None, "Accepted", "true"),
            ]
    sizes = [len(p["getVariableData"]) for _, p in station.conn.calls("GetVariables")]
    # One query of the two limits, then 4 + 1; the second round knows them already.
    assert sizes == [2, 4, 1, 4, 1]
    assert station.over_limit == []


async def test_201_a_station_without_the_instances_and_one_item_at_a_time(
    csms: Csms, http: aiohttp.ClientSession
) -> None:
    """A station that names ItemsPerMessage without instances (one value for every message kind), and takes one
    item a message: the query falls back to one variable at a time, and every list entry goes alone."""
    variables = {
        ("DeviceDataCtrlr", "ItemsPerMessage", None): "1",
        ("LocalAuthListCtrlr", "ItemsPerMessage", None): "1",
        ("OCPPCommCtrlr", "HeartbeatInterval", None): "300",
        ("AuthCtrlr", "AuthorizeRemoteStart", None): "true",
    }

    class OneAtATime(Station201):
        def limit(self, component: str, variable: str, instance: str | None) -> int:
            return int(self.variables.get((component, variable, None), "1000000"))

    station = OneAtATime("CS-201", await _open(csms, "CS-201", "ocpp2.0.1"), variables)
    async with running(station):
        await boot_201(station)
        wanted = [
            {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"},
            {"component": "AuthCtrlr", "variable": "AuthorizeRemoteStart"},
        ]
        status, got = await post(http, "CS-201", "get-variables", {"variables": wanted})
        assert status == 200, got
        assert [r["value"] for r in got["results"]] == ["300", "true"]
        status, got = await post(http, "CS-201", "send-local-list", {"version": 3, "entries": entries(3)})
        assert status == 200 and got["status"] == "Accepted", got
    assert station.local.version == 3 and station.local.entries == {
        e["token"]: "Accepted" for e in entries(3)
    }
    # Only the first two-item query was over the limit (answered OccurrenceConstraintViolation, then one by one).
    assert station.over_limit == ["GetVariables of 2"]
    assert all(len(p["getVariableData"]) == 1 for _, p in station.conn.calls("GetVariables")[1:])
    assert [len(p["localAuthorizationList"]) for _, p in station.conn.calls("SendLocalList")] == [1, 1, 1]


async def test_201_what_cannot_fit_is_refused_before_sending(csms: Csms, http: aiohttp.ClientSession) -> None:
    """A version too low for the parts, and an entry over BytesPerMessage alone: 422 TooLarge, no SendLocalList."""
    small = {**LIMITS_201, ("LocalAuthListCtrlr", "BytesPerMessage", None): "100"}
    station = Station201("CS-201", await _open(csms, "CS-201", "ocpp2.0.1"), small)
    async with running(station):
        await boot_201(station)
        status, got = await post(http, "CS-201", "send-local-list", {"version": 2, "entries": entries(2)})
        assert status == 422 and got["code"] == "TooLarge", got
        station.variables = dict(LIMITS_201)  # the charger's limits only change with a reboot ...
        await boot_201(station)  # ... which makes the central system read them again
        status, got = await post(http, "CS-201", "send-local-list", {"version": 2, "entries": entries(30)})
        assert status == 422 and got["code"] == "TooLarge" and "version of at least" in got["error"], got
    assert station.conn.calls("SendLocalList") == []


async def test_16_a_long_list_goes_in_parts_of_send_local_list_max_length(
    csms: Csms, http: aiohttp.ClientSession
) -> None:
    keys = {"SendLocalListMaxLength": "5", "LocalAuthListMaxLength": "40", "HeartbeatInterval": "300"}
    station = Station16("CP-16", await _open(csms, "CP-16", "ocpp1.6"), keys)
    async with running(station):
        await boot_16(station)
        asked = entries(23)
        status, got = await post(http, "CP-16", "send-local-list", {"version": 10, "entries": asked})
        assert status == 200 and got["status"] == "Accepted", got
        sends = station.conn.calls("SendLocalList")
        assert [len(p["localAuthorizationList"]) for _, p in sends] == [5, 5, 5, 5, 3]
        assert [p["listVersion"] for _, p in sends] == [6, 7, 8, 9, 10]
        assert [p["updateType"] for _, p in sends] == ["Full"] + ["Differential"] * 4
        assert station.local.version == 10
        assert station.local.entries == {e["token"]: "Accepted" for e in asked}
        # More than LocalAuthListMaxLength in a Full list: refused before anything is sent.
        status, got = await post(http, "CP-16", "send-local-list", {"version": 20, "entries": entries(41)})
        assert status == 422 and got["code"] == "TooLarge" and "LocalAuthListMaxLength" in got["error"], got
        assert len(station.conn.calls("SendLocalList")) == 5
        # The keys were read once (GetConfiguration of both).
        configuration = [p for _, p in station.conn.calls("GetConfiguration")]
        assert configuration == [{"key": ["SendLocalListMaxLength", "LocalAuthListMaxLength"]}]
    assert station.over_limit == []


async def test_16_a_charger_without_the_keys_gets_the_list_whole(
    csms: Csms, http: aiohttp.ClientSession
) -> None:
    station = Station16("CP-16", await _open(csms, "CP-16", "ocpp1.6"), {})
    async with running(station):
        await boot_16(station)
        status, got = await post(http, "CP-16", "send-local-list", {"version": 4, "entries": entries(30)})
        assert status == 200 and got["status"] == "Accepted", got
    assert [len(p["localAuthorizationList"]) for _, p in station.conn.calls("SendLocalList")] == [30]


async def test_16_get_variables_keeps_to_get_configuration_max_keys(
    csms: Csms, http: aiohttp.ClientSession
) -> None:
    keys = {"GetConfigurationMaxKeys": "2", "HeartbeatInterval": "300", "MeterValueSampleInterval": "60"}
    station = Station16("CP-16", await _open(csms, "CP-16", "ocpp1.6"), keys)
    wanted = ["HeartbeatInterval", "Nope", "MeterValueSampleInterval", "GetConfigurationMaxKeys", "Other"]
    async with running(station):
        await boot_16(station)
        body = {"variables": [{"component": "OCPP16", "variable": v} for v in wanted]}
        status, got = await post(http, "CP-16", "get-variables", body)
        assert status == 200, got
        assert [(r["variable"], r["status"], r["value"]) for r in got["results"]] == [
            ("HeartbeatInterval", "Accepted", "300"),
            ("Nope", "UnknownVariable", None),
            ("MeterValueSampleInterval", "Accepted", "60"),
            ("GetConfigurationMaxKeys", "Accepted", "2"),
            ("Other", "UnknownVariable", None),
        ]
        # An instance is a 2.0.1 thing: 422, nothing sent.
        before = len(station.conn.calls("GetConfiguration"))
        body = {"variables": [{"component": "C", "variable": "V", "instance": "I"}]}
        status, got = await post(http, "CP-16", "get-variables", body)
        assert status == 422 and got["code"] == "NotInVersion", got
        assert len(station.conn.calls("GetConfiguration")) == before
    requests = [p["key"] for _, p in station.conn.calls("GetConfiguration")]
    assert requests == [["GetConfigurationMaxKeys"], wanted[:2], wanted[2:4], wanted[4:]]


async def test_201_concurrent_commands_read_the_limits_once(csms: Csms) -> None:
    """Commands through the port at the same time (REST, OCPI, the dashboard): one read of the limits."""
    station = Station201("CS-201", await _open(csms, "CS-201", "ocpp2.0.1"), LIMITS_201)
    wanted = [VariableRef("AuthCtrlr", "AuthorizeRemoteStart")] * 2
    async with running(station):
        await boot_201(station)
        answers = await asyncio.gather(
            *(csms.central.commands.get_variables("CS-201", wanted) for _ in range(3))
        )
        assert all(r.value == "true" for _, results in answers for r in results)
    queries = [
        p
        for _, p in station.conn.calls("GetVariables")
        if p["getVariableData"][0]["component"]["name"] == "DeviceDataCtrlr"
    ]
    assert len(queries) == 1
    assert len(station.conn.calls("GetVariables")) == 4
