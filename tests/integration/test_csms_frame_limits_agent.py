"""The bundled central system and the real agent (1.6 and 2.0.1, in this event loop, real SQLite) with small local
list limits: a long list arrives in parts within SendLocalListMaxLength / LocalAuthListCtrlr.ItemsPerMessage, the
versions rising to the asked one, and the agent's stored list ends equal to the asked one.

The agent's limits are read-only settings (it reports what it can take); the test lowers their defaults before the
agent starts, which is what a smaller charger would report."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from backend_stub.app import Csms
from backend_stub.ocpp.server import CentralSystem
from chargepoint.core import settings as agent_settings
from tests.integration.conftest import StartAgent
from tests.integration.test_csms_operations import ADMIN, started_csms

ITEMS = 7


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    async with started_csms(tmp_path / "csms.db", {"CP-1": None}) as app:
        yield app


@pytest.fixture
def cs(csms: Csms) -> CentralSystem:
    """The agent fixtures' central system: the bundled one's OCPP server."""
    return csms.server


@pytest.fixture(autouse=True)
def small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in (("send_local_list_max_length", ITEMS), ("send_local_list_max_bytes", 1200)):
        monkeypatch.setitem(
            agent_settings.SPECS, name, dataclasses.replace(agent_settings.SPECS[name], default=value)
        )
    monkeypatch.setattr(agent_settings, "_SHARED_BASES", {})  # no defaults cached from before


def sent(cs: CentralSystem, action: str) -> list[tuple[int, dict[str, Any]]]:
    """(UTF-8 size, payload) of each CALL of ``action`` the central system sent."""
    return [
        (
            len(
                json.dumps(
                    [2, f.unique_id, action, f.payload], separators=(",", ":"), ensure_ascii=False
                ).encode()
            ),
            f.payload,
        )
        for f in cs.log
        if f.direction == "out" and f.message_type == 2 and f.action == action
    ]


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_long_list_reaches_the_agent_in_parts_and_ends_as_asked(
    version: str, csms: Csms, start_agent: StartAgent
) -> None:
    agent = await start_agent(csms={"ocpp_versions": [version]})
    asked = [{"token": f"TAG{n:04d}", "status": "Blocked" if n % 5 == 0 else "Accepted"} for n in range(40)]
    body = {"version": 50, "entries": asked}
    async with (
        aiohttp.ClientSession(base_url=csms.http_url, headers=ADMIN) as http,
        http.post("/api/chargers/CP-1/operations/send-local-list", json=body) as response,
    ):
        got = await response.json()
        assert response.status == 200, got
    assert got["status"] == "Accepted" and got["fields"]["sent"] == got["fields"]["parts"] >= 40 // ITEMS
    parts = sent(csms.server, "SendLocalList")
    key = "localAuthorizationList"
    assert all(len(p[key]) <= ITEMS for _, p in parts)
    versions = [p["listVersion" if version == "1.6" else "versionNumber"] for _, p in parts]
    assert versions == list(range(51 - len(parts), 51))
    assert [p["updateType"] for _, p in parts] == ["Full"] + ["Differential"] * (len(parts) - 1)
    if version == "2.0.1":
        assert all(size <= 1200 for size, _ in parts)
    station = agent.station
    assert station.local_list_version() == 50
    for entry in asked:
        info = station.store.local_get(entry["token"])
        assert info is not None and info.status.value == entry["status"].lower(), (entry, info)
    assert station.store.local_list_size() == len(asked)
