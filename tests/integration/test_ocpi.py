"""OCPI 2.2.1 CPO role of the bundled central system against a real second party (an aiohttp eMSP on loopback):
the credentials handshake both ways, locations and tariffs pulled and pushed, the durable push queue, bad input."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import connect

from backend_stub.app import Csms
from backend_stub.ocpi.config import OcpiConfig
from backend_stub.ocpi.service import Ocpi
from backend_stub.store import CsmsStore
from chargepoint.agent import Agent
from tests.integration.conftest import FAST_TIMING, agent_config, until
from tests.integration.ocpi_party import EmspParty, auth
from tests.integration.test_csms import TARIFF, RawCharger

ADMIN = "test-admin-token-ocpi"
T0 = "2026-11-22T10:00:00Z"


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    store = CsmsStore(tmp_path / "csms.db")
    store.put_tariff("T1", json.dumps({"id": "T1", **TARIFF}))
    store.set_default_tariff_id("T1")
    config = OcpiConfig(
        country_code="DE", party_id="OCS", retry_base_s=0.05, retry_max_s=0.2, page_limit_max=2
    )
    app = Csms(store, heartbeat_interval_s=60, admin_token=ADMIN, ocpi=config)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        store.close()


@pytest.fixture
async def emsp() -> AsyncIterator[EmspParty]:
    party = EmspParty()
    await party.start()
    try:
        yield party
    finally:
        await party.stop()


def ocpi(csms: Csms) -> Ocpi:
    assert csms.ocpi is not None
    return csms.ocpi


async def eventually(condition: Callable[[], Any], what: str, timeout_s: float = 10.0) -> None:
    """Wait until ``condition()`` holds (the push worker runs in the background)."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)
    assert condition(), what


async def registered(csms: Csms, emsp: EmspParty) -> int:
    """The eMSP registers with us by a token A created through the REST API; the partner id."""
    return (await registered_by(csms, emsp))[0]


async def registered_by(csms: Csms, emsp: EmspParty) -> tuple[int, str]:
    """The eMSP registers with us by a token A created through the REST API; the partner id and token A."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{csms.http_url}/api/ocpi/partners",
            json={"name": "Test eMSP"},
            headers={"Authorization": f"Bearer {ADMIN}"},
        ) as r,
    ):
        assert r.status == 201, await r.text()
        created = await r.json()
    body = await emsp.register_with(ocpi(csms).versions_url, created["token_a"])
    assert body["status_code"] == 1000, body
    return int(created["id"]), created["token_a"]


async def test_a_partner_registers_with_token_a_then_token_a_is_spent(csms: Csms, emsp: EmspParty) -> None:
    partner_id, token_a = await registered_by(csms, emsp)
    partner = csms.store.ocpi_partner(partner_id)
    assert partner.status == "registered"
    assert [(r.role, r.country_code, r.party_id) for r in partner.roles] == [("EMSP", "NL", "EMS")]
    assert partner.outgoing_token is not None and partner.outgoing_token.startswith("emsp-token-b-")
    assert partner.endpoint("locations", "RECEIVER") == f"{emsp.base}/ocpi/2.2.1/locations"
    # The token we handed back (token C) opens our modules; token A no longer opens anything.
    status, headers, body = await emsp.get(ocpi(csms).details_url, **{"X-Request-ID": "r-1"})
    assert (status, body["status_code"]) == (200, 1000)
    assert headers["X-Request-ID"] == "r-1"
    assert {e["identifier"] for e in body["data"]["endpoints"]} >= {"credentials", "locations", "tariffs"}
    # An unknown token: 401 with an OCPI envelope.
    status, _, body = await emsp.get(ocpi(csms).versions_url, "nonsense")
    assert (status, body["status_code"]) == (401, 2000)
    # The spent token A registers nothing again, and the registration is unchanged.
    again = await emsp.register_with(ocpi(csms).versions_url, token_a)
    assert again["status_code"] == 2000
    assert csms.store.ocpi_partner(partner_id).outgoing_token == partner.outgoing_token


async def test_we_register_with_a_partner_from_its_versions_url_and_token_a(
    csms: Csms, emsp: EmspParty
) -> None:
    partner = await ocpi(csms).register_with("eMSP", emsp.versions_url, emsp.token_a)
    assert partner.status == "registered" and partner.has_role("EMSP")
    # The partner checked our versions with the token we sent it, and gave us a new token: its token A is spent.
    assert emsp.token_for_cpo is not None and emsp.token_a not in emsp.accepted
    assert partner.outgoing_token in emsp.accepted
    status, _, body = await emsp.get(f"{ocpi(csms).details_url}/locations")
    assert (status, body["status_code"]) == (200, 1000)


async def test_registering_with_an_unusable_partner_fails_with_3001_and_leaves_no_live_token(
    csms: Csms, emsp: EmspParty
) -> None:
    from backend_stub.ocpi.protocol import OcpiError

    with pytest.raises(OcpiError) as refused:
        await ocpi(csms).register_with("eMSP", emsp.versions_url, "not-its-token-a")
    assert refused.value.status == 3001
    (partner,) = csms.store.ocpi_partners()
    assert partner.status == "unregistered" and partner.outgoing_token is None


async def test_rotation_and_unregistering_revoke_the_old_tokens(csms: Csms, emsp: EmspParty) -> None:
    partner_id = await registered(csms, emsp)
    old = emsp.token_for_cpo
    assert old is not None
    # PUT credentials: new tokens both ways (we check its API with its new one); our old token stops working.
    emsp.accepted.add("emsp-token-rotated")
    async with (
        aiohttp.ClientSession() as session,
        session.put(
            f"{ocpi(csms).details_url}/credentials",
            json=emsp.credentials("emsp-token-rotated"),
            headers=auth(old),
        ) as r,
    ):
        body = await r.json()
    assert body["status_code"] == 1000 and body["data"]["token"] != old
    new = body["data"]["token"]
    assert csms.store.ocpi_partner(partner_id).outgoing_token == "emsp-token-rotated"
    assert (await emsp.get(ocpi(csms).versions_url, old))[0] == 401
    assert (await emsp.get(ocpi(csms).versions_url, new))[0] == 200
    # A second POST by a registered party: 405, nothing changes.
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{ocpi(csms).details_url}/credentials", json=emsp.credentials("x"), headers=auth(new)
        ) as r:
            assert r.status == 405 and (await r.json())["status_code"] == 2000
        assert csms.store.ocpi_partner(partner_id).outgoing_token == "emsp-token-rotated"
        async with session.delete(f"{ocpi(csms).details_url}/credentials", headers=auth(new)) as r:
            assert (await r.json())["status_code"] == 1000
        # The token replayed after unregistering: 401 everywhere.
        for method in ("GET", "PUT", "DELETE"):
            async with session.request(
                method, f"{ocpi(csms).details_url}/credentials", headers=auth(new), json={}
            ) as r:
                assert r.status == 401
    partner = csms.store.ocpi_partner(partner_id)
    assert partner.status == "unregistered" and partner.roles == () and partner.outgoing_token is None


async def test_bad_input_gets_the_right_status_and_changes_nothing(csms: Csms, emsp: EmspParty) -> None:
    partner_id, token_a = ocpi(csms).create_token_a("eMSP")
    url = f"{ocpi(csms).details_url}/credentials"
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=b"{not json", headers=auth(token_a)) as r:
            assert (r.status, (await r.json())["status_code"]) == (400, 2001)
        bad_roles = emsp.credentials("t") | {
            "roles": [{"role": "KING", "party_id": "EMS", "country_code": "NL"}]
        }
        async with session.post(url, json=bad_roles, headers=auth(token_a)) as r:
            assert (await r.json())["status_code"] == 2001
        async with session.post(url, data=b"[" * 70_000, headers=auth(token_a)) as r:
            assert r.status == 413
        # A plain (not base64) token is not the 2.2.1 header: 401.
        async with session.get(ocpi(csms).versions_url, headers={"Authorization": f"Token {token_a}"}) as r:
            assert r.status == 401
        # Token A opens only registration.
        async with session.get(f"{ocpi(csms).details_url}/locations", headers=auth(token_a)) as r:
            assert r.status == 401
        async with session.get(f"{ocpi(csms).details_url}/nosuchmodule", headers=auth(token_a)) as r:
            assert (r.status, (await r.json())["status_code"]) == (404, 2000)
    assert csms.store.ocpi_partner(partner_id).status == "pending"
    # Still usable after all that.
    assert (await emsp.register_with(ocpi(csms).versions_url, token_a))["status_code"] == 1000


async def test_a_second_platform_cannot_take_a_registered_party(csms: Csms, emsp: EmspParty) -> None:
    await registered(csms, emsp)
    impostor = EmspParty()  # the same NL/EMS, another platform
    await impostor.start()
    try:
        _, token_a = ocpi(csms).create_token_a("impostor")
        body = await impostor.register_with(ocpi(csms).versions_url, token_a)
    finally:
        await impostor.stop()
    assert body["status_code"] == 2000
    partners = {p.name: p for p in csms.store.ocpi_partners()}
    assert partners["impostor"].status == "pending" and partners["impostor"].roles == ()


async def _charger_with_status(csms: Csms, cp_id: str, status: str, connector: int = 1) -> None:
    async with connect(f"{csms.url}/{cp_id}", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        charger = RawCharger(ws)
        await charger.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
        answer = await charger.call(
            "StatusNotification",
            {"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": T0},
        )
        assert answer[0] == 3


async def test_locations_are_paginated_with_links_totals_and_date_filters(
    csms: Csms, emsp: EmspParty
) -> None:
    for cp_id in ("CP-A", "CP-B", "CP-C"):
        csms.store.add_charger(cp_id)
    csms.store.add_charger("CP-PENDING", status="pending")
    await _charger_with_status(csms, "CP-B", "Charging")
    await registered(csms, emsp)
    url = f"{ocpi(csms).details_url}/locations"
    _status, headers, body = await emsp.get(url + "?limit=1000")  # over our maximum (2): capped, not refused
    assert body["status_code"] == 1000 and len(body["data"]) == 2
    assert (headers["X-Total-Count"], headers["X-Limit"]) == ("3", "2")
    ids = [loc["id"] for loc in body["data"]]
    assert 'rel="next"' in headers["Link"]
    next_url = headers["Link"].split(">")[0].lstrip("<")
    _, headers2, body2 = await emsp.get(next_url)
    assert len(body2["data"]) == 1 and "Link" not in headers2
    assert sorted([*ids, body2["data"][0]["id"]]) == [
        "CP-A",
        "CP-B",
        "CP-C",
    ]  # the pending charger is not published
    charging = next(loc for loc in body["data"] + body2["data"] if loc["id"] == "CP-B")
    assert [(e["uid"], e["status"]) for e in charging["evses"]] == [("CP-B*1", "CHARGING")]
    assert charging["evses"][0]["connectors"][0]["tariff_ids"] == ["T1"]
    # Edges: past the end, zero, a negative or non-numeric offset, dates with and without a zone.
    assert (await emsp.get(url + "?offset=3"))[2]["data"] == []
    assert (await emsp.get(url + "?offset=-1"))[2]["status_code"] == 2001
    assert (await emsp.get(url + "?limit=abc"))[2]["status_code"] == 2001
    assert (await emsp.get(url + "?date_from=yesterday"))[2]["status_code"] == 2001
    # OCPI 2.2.1 §16.5: no designator means UTC. CP-B's status time is T0; date_to is exclusive.
    _, _, later = await emsp.get(url + "?date_from=2026-11-22T10:00:00")
    assert later["status_code"] == 1000 and {loc["id"] for loc in later["data"]} >= {"CP-B"}
    _, _, before = await emsp.get(url + "?date_to=2026-11-22T10:00:00Z")
    assert "CP-B" not in {loc["id"] for loc in before["data"]}
    one = await emsp.get(f"{url}/CP-B/CP-B*1/1")
    assert one[2]["data"]["standard"] == "IEC_62196_T2"
    assert (await emsp.get(f"{url}/CP-PENDING"))[0:1] == (404,)
    assert (await emsp.get(f"{url}/CP-NONE"))[2]["status_code"] == 2003


async def test_status_changes_are_pushed_and_survive_a_partner_outage(csms: Csms, emsp: EmspParty) -> None:
    csms.store.add_charger("CP-1")
    await registered(csms, emsp)
    await eventually(lambda: "DE/OCS/CP-1" in emsp.locations, "the initial location push")
    await _charger_with_status(csms, "CP-1", "Charging")
    await eventually(lambda: emsp.patches, "the status PATCH")
    assert emsp.patches[-1] == ("DE/OCS/CP-1/CP-1*1", {"status": "CHARGING", "last_updated": T0})
    method, _path, headers = emsp.requests[-1]
    assert (method, headers["OCPI-from-party-id"], headers["OCPI-to-party-id"]) == ("PATCH", "OCS", "EMS")
    assert headers["X-Request-ID"] and headers["X-Correlation-ID"]
    # The partner goes down: the change waits in the store, retried, and arrives once it is back.
    emsp.down = True
    await _charger_with_status(csms, "CP-1", "Available")
    await eventually(lambda: any(p.attempts >= 2 for p in csms.store.ocpi_pushes(1)), "retries while down")
    assert emsp.patches[-1][1]["status"] == "CHARGING"
    emsp.down = False
    await eventually(lambda: emsp.patches[-1][1]["status"] == "AVAILABLE", "the push after the outage")
    await eventually(lambda: csms.store.ocpi_queued() == {}, "an empty queue")


async def test_queued_pushes_survive_a_restart(tmp_path: Path, emsp: EmspParty) -> None:
    config = OcpiConfig(retry_base_s=0.05, retry_max_s=0.2)
    store = CsmsStore(tmp_path / "csms.db")
    store.add_charger("CP-1")
    app = Csms(store, admin_token=ADMIN, ocpi=config)
    await app.start()
    emsp.down = True
    await ocpi(app).register_with("eMSP", emsp.versions_url, emsp.token_a)
    await app.stop()
    store.close()
    assert "DE/OCS/CP-1" not in emsp.locations
    store = CsmsStore(tmp_path / "csms.db")
    assert sum(store.ocpi_queued().values()) >= 1
    emsp.down = False
    app = Csms(store, admin_token=ADMIN, ocpi=config)
    await app.start()
    try:
        await eventually(lambda: "DE/OCS/CP-1" in emsp.locations, "the location after a restart")
    finally:
        await app.stop()
        store.close()


async def test_tariffs_are_pulled_and_pushed_on_change(csms: Csms, emsp: EmspParty) -> None:
    await registered(csms, emsp)
    await eventually(lambda: "DE/OCS/T1" in emsp.tariffs, "the initial tariff push")
    assert emsp.tariffs["DE/OCS/T1"]["elements"][0]["price_components"][0]["price"] == 100
    async with aiohttp.ClientSession() as session:
        changed = {
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 0.35, "step_size": 1}]}],
        }
        async with session.put(
            f"{csms.http_url}/api/tariffs/T1", json=changed, headers={"Authorization": f"Bearer {ADMIN}"}
        ) as r:
            assert r.status == 200
    await eventually(
        lambda: emsp.tariffs["DE/OCS/T1"]["elements"][0]["price_components"][0]["price"] == 0.35, "the change"
    )
    _, headers, body = await emsp.get(f"{ocpi(csms).details_url}/tariffs")
    assert headers["X-Total-Count"] == "1"
    (tariff,) = body["data"]
    assert (tariff["country_code"], tariff["party_id"], tariff["id"], tariff["currency"]) == (
        "DE",
        "OCS",
        "T1",
        "EUR",
    )
    assert datetime.fromisoformat(tariff["last_updated"]).tzinfo is not None
    assert datetime.fromisoformat(tariff["last_updated"]) <= datetime.now(UTC)


async def _charger(csms: Csms, cp_id: str) -> tuple[Any, RawCharger]:
    ws = await connect(f"{csms.url}/{cp_id}", subprotocols=["ocpp1.6"])  # type: ignore[list-item]
    charger = RawCharger(ws)
    await charger.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"})
    return ws, charger


async def test_partner_tokens_authorize_and_their_sessions_and_cdrs_are_pushed_through_an_outage(
    csms: Csms, emsp: EmspParty
) -> None:
    csms.store.add_charger("CP-1")
    await registered(csms, emsp)
    tokens_url = f"{ocpi(csms).details_url}/tokens/NL/EMS"
    assert (await emsp.send("PUT", f"{tokens_url}/EMSP-RFID-1", emsp.token("EMSP-RFID-1")))[1][
        "status_code"
    ] == 1000
    assert (await emsp.send("GET", f"{tokens_url}/EMSP-RFID-1?type=RFID", None))[1]["data"][
        "whitelist"
    ] == "ALWAYS"
    ws, charger = await _charger(csms, "CP-1")
    try:
        assert (await charger.call("Authorize", {"idTag": "EMSP-RFID-1"}))[2]["idTagInfo"][
            "status"
        ] == "Accepted"
        assert (await charger.call("Authorize", {"idTag": "NOBODY"}))[2]["idTagInfo"]["status"] == "Invalid"
        started = await charger.call(
            "StartTransaction", {"connectorId": 1, "idTag": "EMSP-RFID-1", "meterStart": 0, "timestamp": T0}
        )
        tx_id = started[2]["transactionId"]
        assert started[2]["idTagInfo"]["status"] == "Accepted"
        key = f"DE/OCS/{tx_id}"
        await eventually(lambda: key in emsp.sessions, "the session created")
        assert emsp.sessions[key]["status"] == "ACTIVE"
        assert (emsp.sessions[key]["cdr_token"]["party_id"], emsp.sessions[key]["cdr_token"]["uid"]) == (
            "EMS",
            "EMSP-RFID-1",
        )
        await charger.call(
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": tx_id,
                "meterValue": [
                    {
                        "timestamp": "2026-11-22T10:01:00Z",
                        "sampledValue": [
                            {"value": "1000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
                        ],
                    }
                ],
            },
        )
        await eventually(lambda: emsp.sessions[key]["kwh"] == 1.0, "the session updated with its energy")
        assert emsp.sessions[key]["total_cost"]["incl_vat"] == 100.0  # 1 kWh at 100 EUR/kWh so far
        # The partner is down when the session ends: the session and its CDR wait in the store, retried.
        emsp.down = True
        await charger.call(
            "StopTransaction",
            {"transactionId": tx_id, "meterStop": 2500, "timestamp": "2026-11-22T10:05:00Z"},
        )
        await eventually(
            lambda: any(p.attempts >= 2 for p in csms.store.ocpi_pushes(1)), "retries while down"
        )
        assert emsp.cdrs == []
        emsp.down = False
        await eventually(lambda: emsp.cdrs, "the CDR after the outage")
    finally:
        await ws.close()
    (cdr,) = emsp.cdrs
    tx = csms.store.transaction(tx_id)
    # The CDR's totals are the central system's own charge for the session, to the cent.
    assert tx.cost_minor == 25000
    assert Decimal(str(cdr["total_cost"]["incl_vat"])) * 100 == tx.cost_minor
    assert (cdr["total_energy"], cdr["session_id"], cdr["currency"]) == (2.5, str(tx_id), "EUR")
    assert cdr["cdr_location"]["evse_uid"] == "CP-1*1" and cdr["charging_periods"]
    assert cdr["auth_method"] == "WHITELIST"  # an ALWAYS token
    await eventually(lambda: emsp.sessions[key]["status"] == "COMPLETED", "the session completed")
    await eventually(lambda: csms.store.ocpi_queued() == {}, "an empty queue")
    # Pulled too: the partner sees its own sessions and CDRs, and none of anyone else's.
    csms.store.add_user("Ada")
    _, _, sessions = await emsp.get(f"{ocpi(csms).details_url}/sessions")
    _, _, cdrs = await emsp.get(f"{ocpi(csms).details_url}/cdrs")
    assert [s["id"] for s in sessions["data"]] == [str(tx_id)] and [c["id"] for c in cdrs["data"]] == [
        str(tx_id)
    ]
    assert cdrs["data"][0]["total_cost"] == cdr["total_cost"]


async def test_our_own_cards_sessions_are_not_sent_to_partners(csms: Csms, emsp: EmspParty) -> None:
    csms.store.add_charger("CP-1")
    user = csms.store.add_user("Ada")
    csms.store.add_card("OUR-CARD", user_id=user.id)
    await registered(csms, emsp)
    ws, charger = await _charger(csms, "CP-1")
    try:
        started = await charger.call(
            "StartTransaction", {"connectorId": 1, "idTag": "OUR-CARD", "meterStart": 0, "timestamp": T0}
        )
        await charger.call(
            "StopTransaction",
            {
                "transactionId": started[2]["transactionId"],
                "meterStop": 10,
                "timestamp": "2026-11-22T10:05:00Z",
            },
        )
        await _charger_with_status(csms, "CP-1", "Available")  # a later push proves the queue was drained
        await eventually(lambda: emsp.patches, "the status push")
    finally:
        await ws.close()
    assert emsp.sessions == {} and emsp.cdrs == []
    assert (await emsp.get(f"{ocpi(csms).details_url}/sessions"))[2]["data"] == []


async def test_real_time_authorization_allows_refuses_and_falls_back_to_the_whitelist(
    csms: Csms, emsp: EmspParty
) -> None:
    csms.store.add_charger("CP-1")
    await registered(csms, emsp)
    tokens_url = f"{ocpi(csms).details_url}/tokens/NL/EMS"
    for uid, whitelist in (
        ("RT-OK", "NEVER"),
        ("RT-NO", "NEVER"),
        ("RT-OFF", "ALLOWED_OFFLINE"),
        ("RT-UNKNOWN", "NEVER"),
    ):
        assert (await emsp.send("PUT", f"{tokens_url}/{uid}", emsp.token(uid, whitelist)))[0] == 200
    emsp.allowed = {"RT-OK": "ALLOWED", "RT-NO": "NOT_ALLOWED", "RT-OFF": "BLOCKED"}
    ws, charger = await _charger(csms, "CP-1")

    async def status(uid: str) -> str:
        return str((await charger.call("Authorize", {"idTag": uid}))[2]["idTagInfo"]["status"])

    try:
        assert await status("RT-OK") == "Accepted"
        assert await status("RT-NO") == "Invalid"
        assert await status("RT-OFF") == "Blocked"  # asked, and the partner's answer wins over the whitelist
        assert await status("RT-UNKNOWN") == "Invalid"  # 2004 from the partner
        assert [u for u, _ in emsp.authorize_requests] == ["RT-OK", "RT-NO", "RT-OFF", "RT-UNKNOWN"]
        assert emsp.authorize_requests[0][1] == {"location_id": "CP-1"}
        # The partner cannot be reached: ALLOWED_OFFLINE may be whitelisted, NEVER may not.
        emsp.down = True
        assert await status("RT-OFF") == "Accepted"
        assert await status("RT-OK") == "Invalid"
    finally:
        await ws.close()


async def test_token_bad_input_changes_nothing(csms: Csms, emsp: EmspParty) -> None:
    await registered(csms, emsp)
    base = f"{ocpi(csms).details_url}/tokens"
    token = emsp.token("T-1")
    assert (await emsp.send("PUT", f"{base}/DE/XXX/T-1", token | {"country_code": "DE", "party_id": "XXX"}))[
        0
    ] == 403
    assert (await emsp.send("PUT", f"{base}/NL/EMS/T-2", token))[1]["status_code"] == 2001  # uid differs
    assert (await emsp.send("PUT", f"{base}/NL/EMS/T-1", token | {"whitelist": "SOMETIMES"}))[1][
        "status_code"
    ] == 2001
    assert (await emsp.send("PUT", f"{base}/NL/EMS/T-1", token | {"last_updated": "soon"}))[1][
        "status_code"
    ] == 2001
    status, body = await emsp.send("PATCH", f"{base}/NL/EMS/T-1", {"valid": False, "last_updated": T0})
    assert (status, body["status_code"]) == (404, 2004)
    assert csms.store.ocpi_token_by_uid("T-1") is None
    # A time without a zone is UTC (OCPI 2.2.1 §16.5); a PATCH then changes only what it names.
    assert (await emsp.send("PUT", f"{base}/NL/EMS/T-1", token | {"last_updated": "2026-11-22T09:00:00"}))[
        0
    ] == 200
    assert (await emsp.send("PATCH", f"{base}/NL/EMS/T-1", {"valid": False, "last_updated": T0}))[0] == 200
    stored = csms.store.ocpi_token_by_uid("T-1")
    assert stored is not None and (stored.valid, stored.whitelist) == (False, "ALWAYS")


async def test_a_remote_start_session_charges_on_the_agent_and_the_cdr_comes_back(
    csms: Csms, emsp: EmspParty, tmp_path: Path
) -> None:
    csms.store.add_charger("CP-AGENT")
    csms.store.add_charger("CP-OFF")
    await registered(csms, emsp)
    agent = Agent(
        agent_config(
            csms.url, tmp_path / "agent.db", cp_id="CP-AGENT", settings={"meter_value_sample_interval_s": 1}
        ),
        timing=FAST_TIMING,
    )
    task = asyncio.create_task(agent.run())
    commands = f"{ocpi(csms).details_url}/commands"
    try:
        await until(lambda: agent.link is not None and agent.link.online, 10, "never booted")
        sim = agent.sims[1]
        assert sim.plug is not None
        sim.plug.ev_power_w = 22_000.0
        sim.plug.set_plugged(True)
        start = {
            "response_url": f"{emsp.base}/ocpi/2.2.1/results/start-1",
            "token": emsp.token("REMOTE-1", whitelist="NEVER"),
            "location_id": "CP-AGENT",
            "evse_uid": "CP-AGENT*1",
        }
        status, body = await emsp.send("POST", f"{commands}/START_SESSION", start)
        assert (status, body["data"]["result"]) == (200, "ACCEPTED")
        await eventually(lambda: emsp.results, "the CommandResult of START_SESSION")
        assert emsp.results[0] == ("start-1", {"result": "ACCEPTED"})
        started = await csms.server.wait_for_call("StartTransaction", timeout=10)
        assert started.payload["idTag"] == "REMOTE-1"
        await eventually(lambda: csms.store.active_transactions("CP-AGENT"), "the session on the agent")
        (tx,) = csms.store.active_transactions("CP-AGENT")
        assert tx.id_tag_status == "Accepted"
        await eventually(lambda: f"DE/OCS/{tx.id}" in emsp.sessions, "the session pushed")
        # Unknown sessions and commands the port lacks.
        assert (
            await emsp.send(
                "POST",
                f"{commands}/STOP_SESSION",
                {"response_url": start["response_url"], "session_id": "999999"},
            )
        )[1]["data"]["result"] == "UNKNOWN_SESSION"
        assert (await emsp.send("POST", f"{commands}/RESERVE_NOW", {"response_url": start["response_url"]}))[
            1
        ]["data"]["result"] == "NOT_SUPPORTED"
        assert (await emsp.send("POST", f"{commands}/FLY", {}))[0] == 404
        offline = start | {"location_id": "CP-OFF", "evse_uid": "CP-OFF*1"}
        assert (await emsp.send("POST", f"{commands}/START_SESSION", offline))[1]["data"][
            "result"
        ] == "REJECTED"
        unknown = start | {"location_id": "CP-NONE"}
        assert (await emsp.send("POST", f"{commands}/START_SESSION", unknown))[1]["status_code"] == 2003
        await asyncio.sleep(1.5)  # a little charging, so the CDR has energy
        stop = {"response_url": f"{emsp.base}/ocpi/2.2.1/results/stop-1", "session_id": str(tx.id)}
        emsp.down = True  # its result (and the CDR) wait in the store until the partner is back
        assert (await emsp.send("POST", f"{commands}/STOP_SESSION", stop))[1]["data"]["result"] == "ACCEPTED"
        partner_id = csms.store.ocpi_partners()[0].id
        await eventually(
            lambda: any(p.kind == "result" and p.attempts >= 1 for p in csms.store.ocpi_pushes(partner_id)),
            "the result retried while the partner is down",
            timeout_s=20,
        )
        emsp.down = False
        await eventually(lambda: emsp.cdrs, "the CDR", timeout_s=20)
        assert ("stop-1", {"result": "ACCEPTED"}) in emsp.results
    finally:
        agent.shutdown()
        await task
    (cdr,) = emsp.cdrs
    assert cdr["auth_method"] == "AUTH_REQUEST"  # a NEVER token, authorized by the eMSP's command
    ended = csms.store.transaction(tx.id)
    assert ended.energy_wh > 0 and ended.cost_minor is not None and ended.cost_minor > 0
    assert Decimal(str(cdr["total_cost"]["incl_vat"])) * 100 == ended.cost_minor
    assert Decimal(str(cdr["total_energy"])) * 1000 == ended.energy_wh


async def test_the_operator_sees_partners_in_the_api_openapi_and_dashboard(
    csms: Csms, emsp: EmspParty
) -> None:
    partner_id = await registered(csms, emsp)
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{csms.http_url}/api/ocpi/partners", headers=admin) as r:
            (listed,) = await r.json()
        async with session.get(f"{csms.http_url}/api/ocpi/partners") as r:
            assert r.status == 401  # the admin token is needed
        async with session.get(f"{csms.http_url}/api/openapi.json") as r:
            paths = (await r.json())["paths"]
        async with session.get(f"{csms.http_url}/partners", headers=admin) as r:
            page = await r.text()
        async with session.post(f"{csms.http_url}/api/ocpi/partners", json={"name": ""}, headers=admin) as r:
            assert r.status == 400
        async with session.delete(f"{csms.http_url}/api/ocpi/partners/{partner_id}", headers=admin) as r:
            assert r.status == 200
    assert (listed["id"], listed["status"], listed["roles"][0]["party_id"]) == (
        partner_id,
        "registered",
        "EMS",
    )
    assert listed["last_contact_at"] is not None and "queued_pushes" in listed and "token" not in str(listed)
    assert {"/api/ocpi/partners", "/api/ocpi/partners/register", "/api/ocpi/partners/{partner_id}"} <= set(
        paths
    )
    assert "Test eMSP" in page and "NL/EMS EMSP" in page
    # Unregistered by the operator: the partner was told (its token for us is gone), ours no longer works.
    assert emsp.accepted == set()
    assert (await emsp.get(ocpi(csms).versions_url))[0] == 401


async def test_a_partner_in_the_wrong_role_reads_and_commands_nothing(csms: Csms) -> None:
    cpo = EmspParty("FR", "CPX", role="CPO")  # another CPO: it may not read our sessions, CDRs or command us
    await cpo.start()
    try:
        await registered(csms, cpo)
        base = ocpi(csms).details_url
        for module in ("locations", "sessions", "cdrs"):
            status, _, body = await cpo.get(f"{base}/{module}")
            assert (status, body["status_code"]) == (403, 2000), module
        start = {"response_url": f"{cpo.base}/r", "token": cpo.token("X-1"), "location_id": "CP-1"}
        assert (await cpo.send("POST", f"{base}/commands/START_SESSION", start))[0] == 403
        # Routing headers naming a party that is not the caller's, or a receiver that is not us.
        spoofed = await cpo.get(base, **{"OCPI-from-country-code": "NL", "OCPI-from-party-id": "EMS"})
        assert spoofed[0] == 403
        status, headers, body = await cpo.get(
            base,
            **{
                "OCPI-from-country-code": "FR",
                "OCPI-from-party-id": "CPX",
                "OCPI-to-country-code": "DE",
                "OCPI-to-party-id": "OCS",
            },
        )
        assert body["status_code"] == 1000
        assert (headers["OCPI-to-party-id"], headers["OCPI-from-party-id"]) == (
            "CPX",
            "OCS",
        )  # echoed, swapped
        assert (await cpo.get(base, **{"OCPI-to-country-code": "DE", "OCPI-to-party-id": "XXX"}))[2][
            "status_code"
        ] == 2000
    finally:
        await cpo.stop()


async def test_a_201_station_session_reaches_the_partner_as_a_1_6_one_does(
    csms: Csms, emsp: EmspParty
) -> None:
    csms.store.add_charger("CP-201")
    await registered(csms, emsp)
    tokens_url = f"{ocpi(csms).details_url}/tokens/NL/EMS"
    assert (await emsp.send("PUT", f"{tokens_url}/EMSP-201", emsp.token("EMSP-201")))[0] == 200

    def event(kind: str, seq: int, at: str, wh: int) -> dict[str, Any]:
        return {
            "eventType": kind,
            "timestamp": at,
            "triggerReason": "Authorized" if kind == "Started" else "MeterValuePeriodic",
            "seqNo": seq,
            "transactionInfo": {"transactionId": "tx-201"},
            "evse": {"id": 1, "connectorId": 1},
            "idToken": {"idToken": "EMSP-201", "type": "ISO14443"},
            "meterValue": [
                {
                    "timestamp": at,
                    "sampledValue": [
                        {
                            "value": wh,
                            "measurand": "Energy.Active.Import.Register",
                            "unitOfMeasure": {"unit": "Wh"},
                        }
                    ],
                }
            ],
        }

    async with connect(f"{csms.url}/CP-201", subprotocols=["ocpp2.0.1"]) as ws:  # type: ignore[list-item]
        raw = RawCharger(ws)
        await raw.call(
            "BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}
        )
        started = await raw.call("TransactionEvent", event("Started", 0, T0, 0))
        assert started[2]["idTokenInfo"]["status"] == "Accepted"
        (tx,) = csms.store.active_transactions("CP-201")
        key = f"DE/OCS/{tx.id}"
        await eventually(lambda: key in emsp.sessions, "the 2.0.1 session created")
        await raw.call("TransactionEvent", event("Updated", 1, "2026-11-22T10:01:00Z", 500))
        await eventually(lambda: emsp.sessions[key]["kwh"] == 0.5, "the 2.0.1 session updated")
        await raw.call("TransactionEvent", event("Ended", 2, "2026-11-22T10:02:00Z", 1200))
        await eventually(lambda: emsp.cdrs, "the 2.0.1 CDR")
    ended = csms.store.transaction(tx.id)
    assert ended.cost_minor == 12000
    assert Decimal(str(emsp.cdrs[0]["total_cost"]["incl_vat"])) * 100 == ended.cost_minor
    assert emsp.cdrs[0]["total_energy"] == 1.2
