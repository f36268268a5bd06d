"""The REST API against a real central system on 127.0.0.1 over real HTTP, with a real agent (simulated hardware)
connected over OCPP for the commands endpoint: every endpoint's happy path, CSV exports, and the OpenAPI
description matching the registered routes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from backend_stub.app import Csms
from backend_stub.web import api, apidocs
from tests.integration.conftest import until
from tests.web.conftest import CP_ID, TARIFF, TARIFF_ID, StartSiteAgent

Json = Any


async def call(
    http: aiohttp.ClientSession,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> tuple[int, Json]:
    """One request; returns (status, parsed JSON body or text)."""
    async with http.request(method, path, headers=headers, **kwargs) as response:
        text = await response.text()
        if response.content_type == "application/json":
            return response.status, json.loads(text)
        return response.status, text


@contextlib.asynccontextmanager
async def raw_charger(site: Csms, cp_id: str, password: str) -> AsyncIterator[Any]:
    """A raw OCPP 1.6 WebSocket client with HTTP Basic credentials."""
    auth = "Basic " + base64.b64encode(f"{cp_id}:{password}".encode()).decode()
    async with connect(
        f"{site.url}/{cp_id}",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers={"Authorization": auth},
    ) as ws:
        await site.server.wait_connected(cp_id)
        yield ws


async def raw_call(ws: Any, action: str, payload: dict[str, Any]) -> list[Any]:
    """Send a CALL and wait for its CALLRESULT/CALLERROR."""
    unique_id = f"m-{action}-{id(payload)}"
    await ws.send(json.dumps([2, unique_id, action, payload]))
    while True:
        frame = json.loads(await ws.recv())
        if frame[0] in (3, 4) and frame[1] == unique_id:
            return list(frame)


def seg(value: str) -> str:
    """A value as one URL path segment."""
    return quote(value, safe="")


def url(path: str) -> Any:
    """A path whose percent-escapes are kept as they are (so %2F, %27 reach the server verbatim)."""
    from yarl import URL

    return URL(path, encoded=True)


async def test_users_create_list_get(http: aiohttp.ClientSession, admin_headers: dict[str, str]) -> None:
    status, user = await call(
        http,
        "POST",
        "/api/users",
        admin_headers,
        json={"name": "Ada Lovelace", "phone": "+44 20 7946 0000", "email": "ada@example.org"},
    )
    assert status == 201, user
    assert user["name"] == "Ada Lovelace" and user["phone"] == "+44 20 7946 0000"
    assert user["email"] == "ada@example.org" and user["created_at"].endswith("Z")
    status, minimal = await call(http, "POST", "/api/users", admin_headers, json={"name": "Bob"})
    assert status == 201 and minimal["phone"] is None and minimal["email"] is None
    status, listing = await call(http, "GET", "/api/users", admin_headers)
    assert status == 200
    assert [u["id"] for u in listing["users"]] == [user["id"], minimal["id"]]
    status, got = await call(http, "GET", f"/api/users/{user['id']}", admin_headers)
    assert status == 200 and got == {**user, "cards": []}


async def test_cards_issue_block_expiry_topup_and_ledger(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    _, user = await call(http, "POST", "/api/users", admin_headers, json={"name": "Carol"})
    status, card = await call(
        http,
        "POST",
        "/api/cards",
        admin_headers,
        json={"idTag": "04A2B3C4", "user_id": user["id"], "mode": "prepaid"},
    )
    assert status == 201, card
    assert card == {
        "idTag": "04A2B3C4",
        "user_id": user["id"],
        "mode": "prepaid",
        "status": "active",
        "expiry": None,
        "balance_minor": 0,
        "currency": "EUR",
        "created_at": card["created_at"],
    }
    status, personal = await call(
        http,
        "POST",
        "/api/cards",
        admin_headers,
        json={"idTag": "PERSONAL1", "expiry": "2031-06-01T12:00:00+02:00", "status": "blocked"},
    )
    assert status == 201 and personal["expiry"] == "2031-06-01T10:00:00Z" and personal["user_id"] is None
    assert personal["mode"] == "personal" and personal["status"] == "blocked"

    status, listing = await call(http, "GET", "/api/cards", admin_headers)
    assert status == 200 and [c["idTag"] for c in listing["cards"]] == ["04A2B3C4", "PERSONAL1"]
    status, mine = await call(http, "GET", f"/api/cards?user={user['id']}", admin_headers)
    assert status == 200 and [c["idTag"] for c in mine["cards"]] == ["04A2B3C4"]
    # idTags are case-insensitive (OCPP CiString)
    status, same = await call(http, "GET", "/api/cards/04a2b3c4", admin_headers)
    assert status == 200 and same["idTag"] == "04A2B3C4"

    # block, unblock, set and clear the expiry
    status, blocked = await call(
        http, "PATCH", "/api/cards/04A2B3C4", admin_headers, json={"status": "blocked"}
    )
    assert status == 200 and blocked["status"] == "blocked"
    assert site.central.authorization.decide("04A2B3C4", datetime.now(UTC)).status == "Blocked"
    status, active = await call(
        http,
        "PATCH",
        "/api/cards/04A2B3C4",
        admin_headers,
        json={"status": "active", "expiry": "2030-01-01T00:00:00Z"},
    )
    assert status == 200 and active["status"] == "active" and active["expiry"] == "2030-01-01T00:00:00Z"
    status, cleared = await call(http, "PATCH", "/api/cards/04A2B3C4", admin_headers, json={"expiry": None})
    assert status == 200 and cleared["expiry"] is None

    # top-ups: new -> 201, replay of the same key -> 200 with the same entry, key from header or body
    status, first = await call(
        http,
        "POST",
        "/api/cards/04A2B3C4/topup",
        {**admin_headers, "Idempotency-Key": "order-1"},
        json={"amount_minor": 2500, "note": "cash at the desk"},
    )
    assert status == 201, first
    assert first["replayed"] is False and first["balance_minor"] == 2500
    assert first["entry"]["kind"] == "topup" and first["entry"]["amount_minor"] == 2500
    status, again = await call(
        http,
        "POST",
        "/api/cards/04A2B3C4/topup",
        admin_headers,
        json={"amount_minor": 2500, "key": "order-1", "note": "cash at the desk"},
    )
    assert status == 200 and again["replayed"] is True and again["entry"] == first["entry"]
    assert again["balance_minor"] == 2500
    status, second = await call(
        http, "POST", "/api/cards/04A2B3C4/topup", admin_headers, json={"amount_minor": 1, "key": "order-2"}
    )
    assert status == 201 and second["balance_minor"] == 2501

    status, ledger = await call(http, "GET", "/api/cards/04A2B3C4/ledger", admin_headers)
    assert status == 200
    assert ledger["balance_minor"] == 2501 and ledger["currency"] == "EUR"
    assert [(e["kind"], e["amount_minor"], e["note"]) for e in ledger["entries"]] == [
        ("topup", 2500, "cash at the desk"),
        ("topup", 1, ""),
    ]
    status, card_now = await call(http, "GET", "/api/cards/04A2B3C4", admin_headers)
    assert card_now["balance_minor"] == 2501
    status, user_now = await call(http, "GET", f"/api/users/{user['id']}", admin_headers)
    assert [c["idTag"] for c in user_now["cards"]] == ["04A2B3C4"]
    assert site.store.verify_balances() == []


async def test_tariffs_create_list_get_replace_and_default(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    night = {
        "id": "night",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [{"type": "ENERGY", "price": 0.2, "vat": 19, "step_size": 1}],
                "restrictions": {"start_time": "22:00", "end_time": "06:00"},
            },
            {"price_components": [{"type": "ENERGY", "price": 0.35, "vat": 19, "step_size": 1}]},
        ],
    }
    status, created = await call(http, "POST", "/api/tariffs", admin_headers, json=night)
    assert status == 201, created
    assert created == {"id": "night", "default": False, "tariff": night}
    status, listing = await call(http, "GET", "/api/tariffs", admin_headers)
    assert status == 200
    assert [(t["id"], t["default"]) for t in listing["tariffs"]] == [("night", False), (TARIFF_ID, True)]
    assert listing["tariffs"][1]["tariff"] == TARIFF
    status, got = await call(http, "GET", "/api/tariffs/night", admin_headers)
    assert status == 200 and got == created

    cheaper = {**night, "elements": night["elements"][1:]}
    status, replaced = await call(http, "PUT", "/api/tariffs/night", admin_headers, json=cheaper)
    assert status == 200 and replaced["tariff"] == cheaper
    status, new = await call(
        http,
        "PUT",
        "/api/tariffs/flat",
        admin_headers,
        json={"currency": "EUR", "elements": night["elements"][1:]},
    )
    assert status == 201 and new["tariff"]["id"] == "flat"
    assert site.central.pricing.tariff_for(CP_ID) is not None

    status, settings = await call(http, "GET", "/api/settings", admin_headers)
    assert status == 200 and settings == {
        "currency": "EUR",
        "min_balance_minor": 0,
        "default_tariff_id": TARIFF_ID,
    }
    status, settings = await call(
        http,
        "PATCH",
        "/api/settings",
        admin_headers,
        json={"default_tariff_id": "night", "min_balance_minor": 100},
    )
    assert status == 200 and settings["default_tariff_id"] == "night" and settings["min_balance_minor"] == 100
    assert site.store.default_tariff_id() == "night" and site.store.min_balance_minor() == 100


async def test_chargers_register_accept_password_tariff_and_live_status(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    status, registered = await call(
        http,
        "POST",
        "/api/chargers",
        admin_headers,
        json={"id": "CP-NEW", "password": "first-password-1234", "status": "pending"},
    )
    assert status == 201, registered
    assert registered["status"] == "pending" and registered["has_password"] is True
    assert registered["connected"] is False and registered["effective_tariff_id"] == TARIFF_ID
    assert "password" not in json.dumps(registered).replace("has_password", "")

    # A pending charger boots as Pending; the operator accepts it through the API, and the next boot is Accepted.
    boot = {"chargePointVendor": "V", "chargePointModel": "M"}
    async with raw_charger(site, "CP-NEW", "first-password-1234") as ws:
        assert (await raw_call(ws, "BootNotification", boot))[2]["status"] == "Pending"
        status, pending = await call(http, "GET", "/api/chargers/CP-NEW", admin_headers)
        assert status == 200 and pending["connected"] is True and pending["status"] == "pending"
        assert pending["vendor"] == "V" and pending["model"] == "M"
        status, accepted = await call(
            http,
            "PATCH",
            "/api/chargers/CP-NEW",
            admin_headers,
            json={"status": "accepted", "tariff_id": TARIFF_ID, "password": "second-password-5678"},
        )
        assert status == 200 and accepted["status"] == "accepted" and accepted["tariff_id"] == TARIFF_ID
        assert (await raw_call(ws, "BootNotification", boot))[2]["status"] == "Accepted"
    assert site.store.verify_password("CP-NEW", "second-password-5678")
    assert not site.store.verify_password("CP-NEW", "first-password-1234")
    with pytest.raises(InvalidStatus) as refused:  # the old password no longer opens the door
        async with raw_charger(site, "CP-NEW", "first-password-1234"):
            pass
    assert refused.value.response.status_code == 401

    # The connected CP-1 reports live connector status, its boot data and heartbeat/firmware fields.
    await site_agent()
    # Connector 0's status comes first at boot; wait for connector 1's as well.
    await until(
        lambda: any(c.connector_id == 1 for c in site.store.connectors(CP_ID)), 5, "no StatusNotification"
    )
    status, live = await call(http, "GET", f"/api/chargers/{CP_ID}", admin_headers)
    assert status == 200, live
    assert live["connected"] is True and live["status"] == "accepted" and live["vendor"]
    assert live["last_boot"] is not None
    assert {c["connector_id"] for c in live["connectors"]} >= {1}
    assert {"last_heartbeat", "firmware_status", "diagnostics_status", "firmware"} <= set(live)
    assert live["active_sessions"] == []
    status, listing = await call(http, "GET", "/api/chargers", admin_headers)
    assert status == 200
    assert {c["id"]: c["connected"] for c in listing["chargers"]} == {CP_ID: True, "CP-NEW": False}


async def test_commands_sessions_stats_and_consumption_with_a_real_agent(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    # A card whose idTag looks like a spreadsheet formula: it must come out of the CSV export neutralised.
    tag = "=SUM(1+1)"
    _, user = await call(http, "POST", "/api/users", admin_headers, json={"name": "Dora"})
    status, _ = await call(
        http, "POST", "/api/cards", admin_headers, json={"idTag": tag, "user_id": user["id"]}
    )
    assert status == 201
    agent = await site_agent()
    agent.plug()
    await agent.wait_state("PREPARING")

    status, started = await call(
        http,
        "POST",
        f"/api/chargers/{CP_ID}/commands/RemoteStartTransaction",
        admin_headers,
        json={"connectorId": 1, "idTag": tag},
    )
    assert status == 200, started
    assert started == {"charger": CP_ID, "action": "RemoteStartTransaction", "reply": {"status": "Accepted"}}
    await until(lambda: bool(site.store.active_transactions(CP_ID)), 5, "no transaction started")
    (tx,) = site.store.active_transactions(CP_ID)
    status, running = await call(http, "GET", f"/api/sessions/{tx.id}", admin_headers)
    assert status == 200 and running["active"] is True and running["cost_minor"] is None
    status, live = await call(http, "GET", f"/api/chargers/{CP_ID}", admin_headers)
    assert [s["id"] for s in live["active_sessions"]] == [tx.id]

    await asyncio.sleep(1.0)  # let the simulated EV draw some energy
    status, config = await call(
        http,
        "POST",
        f"/api/chargers/{CP_ID}/commands/GetConfiguration",
        admin_headers,
        json={"key": ["HeartbeatInterval", "NoSuchKey"]},
    )
    assert status == 200, config
    assert [k["key"] for k in config["reply"]["configurationKey"]] == ["HeartbeatInterval"]
    assert config["reply"]["unknownKey"] == ["NoSuchKey"]

    status, stopped = await call(
        http,
        "POST",
        f"/api/chargers/{CP_ID}/commands/RemoteStopTransaction",
        admin_headers,
        json={"transactionId": tx.id},
    )
    assert status == 200 and stopped["reply"] == {"status": "Accepted"}
    await until(lambda: not site.store.active_transactions(CP_ID), 5, "transaction never stopped")

    status, sessions = await call(http, "GET", f"/api/sessions?charger={CP_ID}", admin_headers)
    assert status == 200
    (session,) = sessions["sessions"]
    assert session["id"] == tx.id and session["active"] is False and session["idTag"] == tag
    assert session["user_id"] == user["id"] and session["stop_reason"] == "Remote"
    assert (
        session["energy_wh"] > 0
        and session["energy_wh"] == session["meter_stop_wh"] - session["meter_start_wh"]
    )
    # 0.50 EUR flat + 0.30 EUR/kWh, 19% VAT: at least 60 cents
    assert isinstance(session["cost_minor"], int) and session["cost_minor"] >= 60
    cdr = session["cdr"]
    assert cdr["currency"] == "EUR" and cdr["total_cost_minor"]["incl_vat"] == session["cost_minor"]
    assert cdr["charging_periods"] and cdr["charging_periods"][0]["dimensions"]
    status, detail = await call(http, "GET", f"/api/sessions/{tx.id}", admin_headers)
    assert status == 200 and detail == session
    for query in (f"user={user['id']}", f"idTag={seg(tag)}", "limit=1"):
        status, found = await call(http, "GET", f"/api/sessions?{query}", admin_headers)
        assert status == 200 and [s["id"] for s in found["sessions"]] == [tx.id], query
    status, none = await call(http, "GET", "/api/sessions?charger=CP-OTHER", admin_headers)
    assert status == 200 and none["sessions"] == []

    # the charge is on the card's ledger
    status, ledger = await call(http, "GET", f"/api/cards/{seg(tag)}/ledger", admin_headers)
    assert status == 200
    assert [(e["kind"], e["amount_minor"], e["transaction_id"]) for e in ledger["entries"]] == [
        ("charge", -session["cost_minor"], tx.id)
    ]
    assert ledger["balance_minor"] == -session["cost_minor"]

    # per-user consumption, JSON and CSV (formula-looking cells are prefixed with ')
    status, consumption = await call(http, "GET", f"/api/users/{user['id']}/consumption", admin_headers)
    assert status == 200
    assert (
        consumption["energy_wh"] == session["energy_wh"]
        and consumption["cost_minor"] == session["cost_minor"]
    )
    assert [s["transaction_id"] for s in consumption["sessions"]] == [tx.id]
    async with http.get(f"/api/users/{user['id']}/consumption?format=csv", headers=admin_headers) as response:
        assert response.status == 200 and response.content_type == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0][:4] == ["transaction_id", "cp_id", "connector_id", "id_tag"]
    assert rows[1][0] == str(tx.id) and rows[1][1] == CP_ID and rows[1][3] == "'" + tag
    assert rows[1][-2] == str(session["cost_minor"]) and rows[1][-1] == "EUR"
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows[1:] for cell in row[3:4])

    # per-charger daily statistics, JSON and CSV
    today = datetime.now(UTC).date()
    frm = (today - timedelta(days=2)).isoformat()
    status, stats = await call(
        http, "GET", f"/api/chargers/{CP_ID}/stats?from={frm}&to={today.isoformat()}", admin_headers
    )
    assert status == 200, stats
    assert [d["date"] for d in stats["days"]][-1] == today.isoformat() and len(stats["days"]) == 3
    day = stats["days"][-1]
    assert day["sessions"] == 1 and day["energy_wh"] == session["energy_wh"]
    assert day["fees_minor"] == session["cost_minor"] and day["working_hours"] > 0
    assert all(d["sessions"] == 0 for d in stats["days"][:-1])
    async with http.get(
        f"/api/chargers/{CP_ID}/stats?from={frm}&to={today.isoformat()}&format=csv", headers=admin_headers
    ) as response:
        assert response.status == 200 and response.content_type == "text/csv"
        rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == ["date", "working_hours", "energy_kwh", "sessions", "fees_minor", "currency"]
    assert rows[-1][0] == today.isoformat() and rows[-1][3] == "1"
    assert rows[-1][4] == str(session["cost_minor"]) and rows[-1][5] == "EUR"
    status, default_range = await call(http, "GET", f"/api/chargers/{CP_ID}/stats", admin_headers)
    assert status == 200 and len(default_range["days"]) == 7 and default_range["to"] == today.isoformat()
    assert site.store.verify_balances() == []


async def test_commands_errors_from_real_chargers(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    await site_agent()
    base = f"/api/chargers/{CP_ID}/commands"
    # A ReserveNow the 1.6 schema lets through but the agent refuses (connector ids are never negative): its
    # CALLERROR comes back as 502 with the code.
    reserve = {"connectorId": -1, "expiryDate": "2030-01-01T00:00:00Z", "idTag": "TAG", "reservationId": 1}
    status, body = await call(http, "POST", f"{base}/ReserveNow", admin_headers, json=reserve)
    assert status == 502 and body["code"] == "PropertyConstraintViolation", body
    # A body-less command (ClearCache has an empty payload) and others the agent accepts.
    status, body = await call(http, "POST", f"{base}/ClearCache", admin_headers)
    assert status == 200 and body["reply"]["status"] in ("Accepted", "Rejected")
    status, body = await call(
        http, "POST", f"{base}/TriggerMessage", admin_headers, json={"requestedMessage": "Heartbeat"}
    )
    assert status == 200 and body["reply"] == {"status": "Accepted"}
    status, body = await call(
        http,
        "POST",
        f"{base}/ChangeConfiguration",
        admin_headers,
        json={"key": "HeartbeatInterval", "value": "120"},
    )
    assert status == 200 and body["reply"]["status"] in ("Accepted", "RebootRequired")
    status, body = await call(
        http,
        "POST",
        f"{base}/ChangeAvailability",
        admin_headers,
        json={"connectorId": 1, "type": "Operative"},
    )
    assert status == 200 and body["reply"]["status"] == "Accepted"
    status, body = await call(http, "POST", f"{base}/DataTransfer", admin_headers, json={"vendorId": "acme"})
    assert status == 200 and body["reply"]["status"] == "UnknownVendorId"
    status, body = await call(http, "POST", f"{base}/UnlockConnector", admin_headers, json={"connectorId": 1})
    assert status == 200 and "status" in body["reply"]

    # A registered charger that is not connected: 409, and nothing is sent.
    status, _ = await call(
        http, "POST", "/api/chargers", admin_headers, json={"id": "CP-OFF", "password": "p" * 20}
    )
    sent_before = len(site.server.log)
    status, body = await call(
        http, "POST", "/api/chargers/CP-OFF/commands/Reset", admin_headers, json={"type": "Soft"}
    )
    assert status == 409 and "not connected" in body["error"]
    assert not [f for f in site.server.log[sent_before:] if f.direction == "out"]


async def test_command_timeout_and_callerror_from_a_raw_charger(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    """A raw OCPP client: one that never answers (504) and one that answers with a CALLERROR (502)."""
    site.store.add_charger("CP-RAW", "raw-password-12345")
    async with raw_charger(site, "CP-RAW", "raw-password-12345") as ws:
        status, body = await call(
            http,
            "POST",
            "/api/chargers/CP-RAW/commands/Reset?timeout_s=0.3",
            admin_headers,
            json={"type": "Hard"},
        )
        assert status == 504 and "did not answer" in body["error"]
        json.loads(await ws.recv())  # the Reset that was never answered

        async def answer_with_error() -> None:
            frame = json.loads(await ws.recv())
            await ws.send(json.dumps([4, frame[1], "InternalError", "relay stuck", {"relay": 1}]))

        responder = asyncio.create_task(answer_with_error())
        status, body = await call(
            http,
            "POST",
            "/api/chargers/CP-RAW/commands/UnlockConnector",
            admin_headers,
            json={"connectorId": 1},
        )
        await responder
        assert status == 502
        assert body["code"] == "InternalError" and body["description"] == "relay stuck"
        assert body["details"] == {"relay": 1}


async def test_openapi_describes_exactly_the_registered_routes(
    site: Csms, http: aiohttp.ClientSession
) -> None:
    status, doc = await call(http, "GET", "/api/openapi.json")  # public: no token
    assert status == 200
    assert doc["openapi"].startswith("3.1")
    documented = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    registered = set()
    for route in site.server.app.router.routes():
        info = route.resource.canonical if route.resource is not None else ""
        is_api = (info == "/api" or info.startswith("/api/")) and not apidocs.is_docs_path(info)
        if is_api and route.method != "HEAD":
            registered.add((route.method, info))
    assert registered == documented
    assert {(m, p) for m, p, _ in api.ROUTES} == registered
    # every $ref resolves
    schemas = doc["components"]["schemas"]
    refs = {part.split("/")[-1] for part in _refs(doc)}
    assert refs <= set(schemas), refs - set(schemas)
    # every path parameter of a route is declared
    for path, ops in doc["paths"].items():
        names = {seg.strip("{}") for seg in path.split("/") if seg.startswith("{")}
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, (path, declared, names)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        out = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return out + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@pytest.mark.parametrize("cookie_write_content_type", ["application/json", "text/plain"])
async def test_dashboard_cookie_reads_but_writes_only_as_json(
    site: Csms, http: aiohttp.ClientSession, cookie_write_content_type: str
) -> None:
    """The dashboard's session cookie is accepted; a cookie-only write must be JSON (no cross-site forms)."""
    from backend_stub.web import common as webapp

    cookie = webapp.session_value(site.server.app[webapp.TOKEN_DIGEST])
    headers = {"Cookie": f"{webapp.SESSION_COOKIE}={cookie}"}
    status, _ = await call(http, "GET", "/api/users", headers)
    assert status == 200
    status, body = await call(
        http,
        "POST",
        "/api/users",
        {**headers, "Content-Type": cookie_write_content_type},
        data=json.dumps({"name": "via cookie"}),
    )
    if cookie_write_content_type == "application/json":
        assert status == 201
    else:
        assert status == 403 and "Content-Type" in body["error"]
        assert site.store.users() == []
