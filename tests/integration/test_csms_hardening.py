"""Attacks on the bundled central system over real sockets (issue 10, findings 1, 2, 7, 8): real chargers
connect over WebSocket on 127.0.0.1 with their own passwords and send raw OCPP 1.6 frames; the store is a real
SQLite file and the REST API is called over HTTP."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect

from backend_stub.app import Csms
from backend_stub.store import CsmsStore, SecurityEventKind

ADMIN_TOKEN = "hardening-admin-token-0123456789"
ENERGY_TARIFF = {  # 100.00 EUR/kWh: 10 Wh cost 1.00 EUR
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 100, "step_size": 1}]}],
}
FLAT_TARIFF = {  # 0.30 EUR/kWh + 0.50 EUR per session
    "currency": "EUR",
    "elements": [
        {
            "price_components": [
                {"type": "ENERGY", "price": 0.30, "step_size": 1},
                {"type": "FLAT", "price": 0.50, "step_size": 1},
            ]
        }
    ],
}
BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}
T_START = "2026-11-22T10:00:00Z"
T_STOP = "2026-11-22T10:05:00Z"


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[Csms]:
    store = CsmsStore(tmp_path / "csms.db")
    app = Csms(store, heartbeat_interval_s=60, admin_token=ADMIN_TOKEN, admit_unknown=True)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()
        store.close()


class RawCharger:
    """A minimal OCPP 1.6 client speaking frames directly."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.n = 0

    async def send_text(self, text: str, unique_id: str) -> list[Any]:
        """Send one raw frame and return the answer to ``unique_id``."""
        await self.ws.send(text)
        while True:
            frame = json.loads(await self.ws.recv())
            if frame[0] in (3, 4) and frame[1] == unique_id:
                return list(frame)

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Send a CALL and return its CALLRESULT or CALLERROR frame."""
        self.n += 1
        return await self.send_text(json.dumps([2, f"m{self.n}", action, payload]), f"m{self.n}")


def _auth(cp_id: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{cp_id}:{password}".encode()).decode()}


def _connect(csms: Csms, cp_id: str, password: str | None = None) -> Any:
    headers = _auth(cp_id, password) if password is not None else None
    return connect(
        f"{csms.url}/{cp_id}",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers=headers,
    )


async def _api(csms: Csms, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.get(csms.http_url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


def _prepaid(
    store: CsmsStore, id_tag: str, amount_minor: int, tariff: dict[str, Any] = ENERGY_TARIFF
) -> None:
    store.put_tariff("T1", json.dumps(tariff))
    store.set_default_tariff_id("T1")
    user = store.add_user("Ada")
    store.add_card(id_tag, user_id=user.id, mode="prepaid")
    store.topup(id_tag, amount_minor, f"topup-{id_tag}")


# ------------------------------------------------------------------------------------- finding 1: ownership


async def test_a_charger_cannot_meter_stop_or_bill_another_chargers_session(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-A", "password-of-cp-a")
    store.add_charger("CP-B", "password-of-cp-b")
    _prepaid(store, "CARD-A", 2_000)
    async with (
        _connect(csms, "CP-A", "password-of-cp-a") as ws_a,
        _connect(csms, "CP-B", "password-of-cp-b") as ws_b,
    ):
        a, b = RawCharger(ws_a), RawCharger(ws_b)
        assert (await a.call("BootNotification", BOOT))[2]["status"] == "Accepted"
        assert (await b.call("BootNotification", BOOT))[2]["status"] == "Accepted"
        start = await a.call(
            "StartTransaction",
            {"connectorId": 1, "idTag": "CARD-A", "meterStart": 1000, "timestamp": T_START},
        )
        tx = start[2]["transactionId"]
        assert start[2]["idTagInfo"]["status"] == "Accepted"

        # CP-B, logged in as itself, reports on CP-A's session.
        meter = await b.call(
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": tx,
                "meterValue": [{"timestamp": "2026-11-22T10:01:00Z", "sampledValue": [{"value": "9000000"}]}],
            },
        )
        assert meter == [3, meter[1], {}]
        stop = await b.call(
            "StopTransaction",
            {"transactionId": tx, "meterStop": 10_000_000, "timestamp": T_STOP, "idTag": "CARD-A"},
        )
        assert stop[0] == 3 and stop[2] == {}  # a .conf, and no idTagInfo about CP-A's card

        assert store.balance("CARD-A") == 2_000
        assert store.transaction(tx).active
        assert store.meter_values(tx) == []
        events = store.security_events(cp_id="CP-B")
        assert [e.kind for e in events] == [SecurityEventKind.FOREIGN_TRANSACTION] * 2
        assert {e.transaction_id for e in events} == {tx}
        api_events = (await _api(csms, "/api/security-events?charger=CP-B"))["security_events"]
        assert [e["kind"] for e in api_events] == ["foreign_transaction", "foreign_transaction"]
        assert "StopTransaction" in api_events[0]["detail"] and "10000000" in api_events[0]["detail"]
        overview = await _dashboard_overview(csms)
        assert "foreign_transaction" in overview and "CP-B" in overview

        # CP-A's own stop is not a repeat: it is billed for what it delivered, once.
        stop_a = await a.call(
            "StopTransaction",
            {"transactionId": tx, "meterStop": 1010, "timestamp": T_STOP, "idTag": "CARD-A"},
        )
        assert stop_a[0] == 3 and stop_a[2]["idTagInfo"]["status"] == "Accepted"
    stopped = store.transaction(tx)
    assert not stopped.active and stopped.meter_stop_wh == 1010 and stopped.cost_minor == 100
    assert store.balance("CARD-A") == 1_900
    assert [e.amount_minor for e in store.entries("CARD-A") if e.kind == "charge"] == [-100]
    assert store.verify_balances() == []


async def _dashboard_overview(csms: Csms) -> str:
    """The dashboard's overview page after logging in with the admin token."""
    jar = aiohttp.CookieJar(unsafe=True)  # aiohttp keeps cookies from IP hosts only in an unsafe jar
    async with (
        aiohttp.ClientSession(base_url=csms.http_url, cookie_jar=jar) as http,
        http.post("/login", data={"token": ADMIN_TOKEN, "next": "/"}) as response,
    ):
        assert response.status == 200, await response.text()  # followed the 303 to the overview
        return await response.text()


async def test_a_pending_or_rejected_charger_gets_nothing_but_boot_answers(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-A", "password-of-cp-a")
    _prepaid(store, "VICTIM", 2_000)
    victim_tx = store.start_transaction("CP-A", 1, "VICTIM", 0, csms.central.clock())
    # --admit-unknown: a stranger without any password is admitted as pending.
    async with _connect(csms, "CP-STRANGER") as ws:
        cp = RawCharger(ws)
        assert (await cp.call("BootNotification", BOOT))[2]["status"] == "Pending"
        calls: list[tuple[str, dict[str, Any]]] = [
            ("Authorize", {"idTag": "VICTIM"}),
            (
                "StartTransaction",
                {"connectorId": 1, "idTag": "VICTIM", "meterStart": 0, "timestamp": T_START},
            ),
            (
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": victim_tx,
                    "meterValue": [{"timestamp": T_START, "sampledValue": [{"value": "5000000"}]}],
                },
            ),
            ("StopTransaction", {"transactionId": victim_tx, "meterStop": 5_000_000, "timestamp": T_STOP}),
            ("Heartbeat", {}),
            ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}),
            ("DataTransfer", {"vendorId": "X"}),
        ]
        for action, payload in calls:
            answer = await cp.call(action, payload)
            assert answer[0] == 4 and answer[2] == "SecurityError", (action, answer)
        # The link stays up and a BootNotification is still answered.
        assert (await cp.call("BootNotification", BOOT))[2]["status"] == "Pending"
        store.set_charger_status("CP-STRANGER", "rejected")
        assert (await cp.call("Authorize", {"idTag": "VICTIM"}))[2] == "SecurityError"
        assert (await cp.call("BootNotification", BOOT))[2]["status"] == "Rejected"
        # Accepted by the operator: from then on it is a charger like any other.
        store.set_charger_status("CP-STRANGER", "accepted")
        assert (await cp.call("Heartbeat", {}))[0] == 3
    assert [tx.id for tx in store.active_transactions()] == [victim_tx]
    assert store.transaction(victim_tx).last_meter_wh == 0 and store.balance("VICTIM") == 2_000
    assert store.security_events(cp_id="CP-STRANGER", kind=SecurityEventKind.NOT_ACCEPTED)


# ------------------------------------------------------------------------------- finding 2: unknown transaction


async def test_stop_of_an_unknown_transaction_is_answered_recorded_and_charges_nothing(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-A", "password-of-cp-a")
    _prepaid(store, "CARD-A", 2_000)
    async with _connect(csms, "CP-A", "password-of-cp-a") as ws:
        cp = RawCharger(ws)
        await cp.call("BootNotification", BOOT)
        stop = await cp.call(
            "StopTransaction",
            {"transactionId": 424242, "meterStop": 50_000, "timestamp": T_STOP, "idTag": "CARD-A"},
        )
        assert stop[0] == 3 and stop[2] == {}  # OCPP 1.6 §4.10: a .conf, never a CallError
    assert store.balance("CARD-A") == 2_000 and [e.kind for e in store.entries("CARD-A")] == ["topup"]
    events = (await _api(csms, "/api/security-events?kind=unknown_transaction"))["security_events"]
    assert len(events) == 1 and events[0]["charger"] == "CP-A" and events[0]["transaction_id"] == 424242


# ---------------------------------------------------------------------------------- finding 7: hostile values

BIG = 2**63
HOSTILE_CALLS: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "start: timestamp not a time",
        "StartTransaction",
        {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "not-a-time"},
        "TypeConstraintViolation",
    ),
    (
        "start: year 0",
        "StartTransaction",
        {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "0000-01-01T00:00:00Z"},
        "TypeConstraintViolation",
    ),
    (
        "start: far future",
        "StartTransaction",
        {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "9999-12-31T23:59:59Z"},
        "PropertyConstraintViolation",
    ),
    (
        "start: past year 9999 in UTC",
        "StartTransaction",
        {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "9999-12-31T23:59:59-05:00"},
        "PropertyConstraintViolation",
    ),
    (
        "start: connector -1",
        "StartTransaction",
        {"connectorId": -1, "idTag": "T", "meterStart": 0, "timestamp": T_START},
        "PropertyConstraintViolation",
    ),
    (
        "start: connector 2^63",
        "StartTransaction",
        {"connectorId": BIG, "idTag": "T", "meterStart": 0, "timestamp": T_START},
        "PropertyConstraintViolation",
    ),
    (
        "start: meterStart -5",
        "StartTransaction",
        {"connectorId": 1, "idTag": "T", "meterStart": -5, "timestamp": T_START},
        "PropertyConstraintViolation",
    ),
    (
        "start: meterStart 2^63",
        "StartTransaction",
        {"connectorId": 1, "idTag": "T", "meterStart": BIG, "timestamp": T_START},
        "PropertyConstraintViolation",
    ),
    (
        "stop: meterStop 2^63",
        "StopTransaction",
        {"transactionId": 1, "meterStop": BIG, "timestamp": T_STOP},
        "PropertyConstraintViolation",
    ),
    (
        "stop: meterStop -1",
        "StopTransaction",
        {"transactionId": 1, "meterStop": -1, "timestamp": T_STOP},
        "PropertyConstraintViolation",
    ),
    (
        "stop: transactionId 2^63",
        "StopTransaction",
        {"transactionId": BIG, "meterStop": 10, "timestamp": T_STOP},
        "PropertyConstraintViolation",
    ),
    (
        "stop: far future",
        "StopTransaction",
        {"transactionId": 1, "meterStop": 10, "timestamp": "9999-12-31T23:59:59Z"},
        "PropertyConstraintViolation",
    ),
    (
        "stop: timestamp not a time",
        "StopTransaction",
        {"transactionId": 1, "meterStop": 10, "timestamp": "yesterday"},
        "TypeConstraintViolation",
    ),
    (
        "status: connector -1",
        "StatusNotification",
        {"connectorId": -1, "errorCode": "NoError", "status": "Available"},
        "PropertyConstraintViolation",
    ),
    (
        "status: connector 2^63",
        "StatusNotification",
        {"connectorId": BIG, "errorCode": "NoError", "status": "Available"},
        "PropertyConstraintViolation",
    ),
    (
        "status: timestamp not a time",
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": "not-a-time"},
        "TypeConstraintViolation",
    ),
    (
        "status: far future",
        "StatusNotification",
        {
            "connectorId": 1,
            "errorCode": "NoError",
            "status": "Available",
            "timestamp": "9999-12-31T23:59:59Z",
        },
        "PropertyConstraintViolation",
    ),
    (
        "meter: connector 2^63",
        "MeterValues",
        {"connectorId": BIG, "meterValue": [{"timestamp": T_START, "sampledValue": [{"value": "1"}]}]},
        "PropertyConstraintViolation",
    ),
    (
        "meter: transactionId 2^63",
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": BIG,
            "meterValue": [{"timestamp": T_START, "sampledValue": [{"value": "1"}]}],
        },
        "PropertyConstraintViolation",
    ),
    (
        "meter: timestamp not a time",
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 1,
            "meterValue": [{"timestamp": "x", "sampledValue": [{"value": "1"}]}],
        },
        "TypeConstraintViolation",
    ),
    (
        "meter: far future",
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": 1,
            "meterValue": [{"timestamp": "9999-12-31T23:59:59Z", "sampledValue": [{"value": "1"}]}],
        },
        "PropertyConstraintViolation",
    ),
]


async def test_hostile_values_get_the_right_call_error_and_the_link_stays_up(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-A", "password-of-cp-a")
    async with _connect(csms, "CP-A", "password-of-cp-a") as ws:
        cp = RawCharger(ws)
        await cp.call("BootNotification", BOOT)
        tx = (
            await cp.call(
                "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": T_START}
            )
        )[2]["transactionId"]
        assert tx == 1  # the hostile calls below name it
        for name, action, payload, code in HOSTILE_CALLS:
            answer = await cp.call(action, payload)
            assert answer[0] == 4 and answer[2] == code, (name, answer)
            assert (await cp.call("Heartbeat", {}))[0] == 3, name
    assert csms.server.errors == []  # no handler raised
    assert store.transaction(tx).active and len(store.active_transactions()) == 1


async def test_non_finite_samples_are_skipped_alone_and_recorded(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-A", "password-of-cp-a")
    async with _connect(csms, "CP-A", "password-of-cp-a") as ws:
        cp = RawCharger(ws)
        await cp.call("BootNotification", BOOT)
        tx = (
            await cp.call(
                "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": T_START}
            )
        )[2]["transactionId"]
        bad = ["NaN", "Infinity", "-Infinity", "1e309", "nan", "1e300", "١٢", "12abc", ""]
        answer = await cp.call(
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": tx,
                "meterValue": [
                    {
                        "timestamp": "2026-11-22T10:01:00Z",
                        "sampledValue": [
                            {"value": "1500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                            *({"value": v, "measurand": "Power.Active.Import", "unit": "W"} for v in bad),
                            {
                                "value": "7200.5",
                                "measurand": "Power.Active.Import",
                                "unit": "W",
                                "phase": "L1",
                            },
                        ],
                    }
                ],
            },
        )
        assert answer == [3, answer[1], {}]
        stop = await cp.call(
            "StopTransaction",
            {
                "transactionId": tx,
                "meterStop": 2000,
                "timestamp": T_STOP,
                "transactionData": [
                    {
                        "timestamp": "2026-11-22T10:02:00Z",
                        "sampledValue": [{"value": "NaN"}, {"value": "1800"}],
                    },
                    {"timestamp": "not-a-time", "sampledValue": [{"value": "1900"}]},
                ],
            },
        )
        assert stop[0] == 3  # OCPP 1.6 §4.10: the stop is answered and kept; only the bad data is left out
    values = {(s.measurand, s.value) for s in store.meter_values(tx)}
    assert values == {
        ("Energy.Active.Import.Register", 1500.0),
        ("Power.Active.Import", 7200.5),
        ("Energy.Active.Import.Register", 1800.0),
    }
    stopped = store.transaction(tx)
    assert stopped.meter_stop_wh == 2000 and not stopped.active
    events = store.security_events(kind=SecurityEventKind.BAD_SAMPLE)
    assert len(events) == 2  # one per frame
    assert "9 sample(s) skipped" in events[1].detail and "'NaN'" in events[1].detail
    assert csms.server.errors == []


HEAD = '[2,"deep","Heartbeat",'


@pytest.mark.parametrize(
    "frame",
    [
        HEAD + "[" * 200 + "]" * 200 + "]",  # parses, but no OCPP message nests this deep
        HEAD + "[" * 30_000 + "]" * 30_000 + "]",  # json.loads raises RecursionError
        HEAD + "[" * 60_000,  # the attack as seen: unterminated, RecursionError before the end is reached
    ],
    ids=["200", "30000", "60000-open"],
)
async def test_deeply_nested_json_is_a_formation_violation_and_the_link_stays_up(
    csms: Csms, frame: str
) -> None:
    csms.store.add_charger("CP-A", "password-of-cp-a")
    async with _connect(csms, "CP-A", "password-of-cp-a") as ws:
        cp = RawCharger(ws)
        await cp.call("BootNotification", BOOT)
        assert len(frame) < csms.server.max_message_bytes  # the depth, not the size, is what is refused
        answer = await cp.send_text(frame, "deep")
        assert answer[0] == 4 and answer[2] == "FormationViolation" and "nests deeper" in answer[3]
        assert (await cp.call("Heartbeat", {}))[0] == 3
    assert csms.server.errors == []


# ----------------------------------------------------------------------------------- finding 8: meter fidelity


async def test_samples_keep_location_context_unit_and_the_spec_default_units(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-A", "password-of-cp-a")
    at = "2026-11-22T10:01:00Z"
    sampled = [
        {"value": "1500", "measurand": "Energy.Active.Import.Register", "location": "Outlet"},
        {"value": "42000", "measurand": "Energy.Active.Import.Register", "location": "EV"},
        {"value": "1500", "measurand": "Energy.Active.Import.Register", "context": "Sample.Clock"},
        {"value": "1.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh"},
        {"value": "50.01", "measurand": "Frequency"},
        {"value": "0.98", "measurand": "Power.Factor"},
        {"value": "1200", "measurand": "RPM"},
        {"value": "7200", "measurand": "Power.Active.Import"},
        {"value": "11000", "measurand": "Power.Offered"},
        {"value": "300", "measurand": "Power.Reactive.Import"},
        {"value": "16", "measurand": "Current.Import", "phase": "L1"},
        {"value": "230", "measurand": "Voltage", "phase": "L1-N"},
        {"value": "35", "measurand": "Temperature", "location": "Body"},
        {"value": "80", "measurand": "SoC", "location": "EV"},
        {"value": "12", "measurand": "Energy.Reactive.Import.Register"},
    ]
    async with _connect(csms, "CP-A", "password-of-cp-a") as ws:
        cp = RawCharger(ws)
        await cp.call("BootNotification", BOOT)
        tx = (
            await cp.call(
                "StartTransaction", {"connectorId": 1, "idTag": "T", "meterStart": 1000, "timestamp": T_START}
            )
        )[2]["transactionId"]
        payload = {
            "connectorId": 1,
            "transactionId": tx,
            "meterValue": [{"timestamp": at, "sampledValue": sampled}],
        }
        assert (await cp.call("MeterValues", payload))[0] == 3
        assert (await cp.call("MeterValues", payload))[0] == 3  # a resent frame adds nothing
    samples = store.meter_values(tx)
    assert len(samples) == len(sampled)  # none dropped as a "duplicate"
    units = {s.measurand: s.unit for s in samples if s.measurand != "Energy.Active.Import.Register"}
    assert units["Frequency"] is None and units["Power.Active.Import"] == "W" and units["SoC"] == "Percent"
    stored = {(s.measurand, s.value, s.unit, s.location, s.context, s.phase) for s in samples}
    assert stored == {
        ("Energy.Active.Import.Register", 1500.0, "Wh", "Outlet", None, None),
        ("Energy.Active.Import.Register", 42000.0, "Wh", "EV", None, None),
        ("Energy.Active.Import.Register", 1500.0, "Wh", None, "Sample.Clock", None),
        ("Energy.Active.Import.Register", 1.5, "kWh", None, None, None),
        ("Frequency", 50.01, None, None, None, None),
        ("Power.Factor", 0.98, None, None, None, None),
        ("RPM", 1200.0, None, None, None, None),
        ("Power.Active.Import", 7200.0, "W", None, None, None),
        ("Power.Offered", 11000.0, "W", None, None, None),
        ("Power.Reactive.Import", 300.0, "var", None, None, None),
        ("Current.Import", 16.0, "A", None, None, "L1"),
        ("Voltage", 230.0, "V", None, None, "L1-N"),
        ("Temperature", 35.0, "Celsius", "Body", None, None),
        ("SoC", 80.0, "Percent", "EV", None, None),
        ("Energy.Reactive.Import.Register", 12.0, "varh", None, None, None),
    }
    # The EV's own register is no billing reading: the charger's register (1.5 kWh) is.
    assert store.transaction(tx).last_meter_wh == 1500


async def test_a_refused_session_without_energy_costs_nothing(csms: Csms) -> None:
    store = csms.store
    store.add_charger("CP-A", "password-of-cp-a")
    _prepaid(store, "GOOD", 2_000, FLAT_TARIFF)
    store.add_card("BLOCKED", user_id=None, mode="personal")
    store.set_card_status("BLOCKED", "blocked")
    async with _connect(csms, "CP-A", "password-of-cp-a") as ws:
        cp = RawCharger(ws)
        await cp.call("BootNotification", BOOT)
        ids = {}
        for tag in ("BLOCKED", "NOBODY", "GOOD"):
            start = await cp.call(
                "StartTransaction", {"connectorId": 1, "idTag": tag, "meterStart": 500, "timestamp": T_START}
            )
            ids[tag] = start[2]["transactionId"]
            stop = {
                "transactionId": ids[tag],
                "meterStop": 500,
                "timestamp": T_STOP,
                "reason": "DeAuthorized",
            }
            assert (await cp.call("StopTransaction", stop))[0] == 3
    assert store.transaction(ids["BLOCKED"]).cost_minor == 0
    assert store.transaction(ids["NOBODY"]).cost_minor == 0
    assert store.transaction(ids["BLOCKED"]).id_tag_status == "Blocked"
    assert [e.amount_minor for e in store.entries("BLOCKED") if e.kind == "charge"] in ([], [0])
    # An accepted session pays its flat fee even without energy: the rule is for refused idTags only.
    assert store.transaction(ids["GOOD"]).cost_minor == 50


async def test_a_malformed_frame_with_a_huge_message_type_leaves_the_link_up(csms: Csms) -> None:
    csms.store.add_charger("CP-A", "password-of-cp-a")
    async with _connect(csms, "CP-A", "password-of-cp-a") as ws:
        cp = RawCharger(ws)
        await cp.call("BootNotification", BOOT)
        # Not JSON; the uniqueId sniffed from it once went through int() of 5,000 digits, which raises.
        await ws.send("[" + "9" * 5000 + ',"x",')
        assert (await cp.call("Heartbeat", {}))[0] == 3
    assert csms.server.errors == []
    assert any("not valid JSON" in message for _, _, message in csms.server.violations)


async def test_a_stop_stamped_before_its_start_still_pays_for_its_energy(csms: Csms) -> None:
    # A charger that stamps its stop at or before the start must not make the session free (an empty CDR).
    store = csms.store
    store.add_charger("CP-A", "password-of-cp-a")
    _prepaid(store, "CARD-A", 2_000)
    async with _connect(csms, "CP-A", "password-of-cp-a") as ws:
        cp = RawCharger(ws)
        await cp.call("BootNotification", BOOT)
        start = await cp.call(
            "StartTransaction", {"connectorId": 1, "idTag": "CARD-A", "meterStart": 1000, "timestamp": T_STOP}
        )
        tx_id = start[2]["transactionId"]
        stop = {"transactionId": tx_id, "meterStop": 1005, "timestamp": T_START, "idTag": "CARD-A"}
        answer = await cp.call("StopTransaction", stop)
        assert answer[0] == 3 and answer[2]["idTagInfo"]["status"] == "Accepted"
    assert store.transaction(tx_id).cost_minor == 50  # 5 Wh at 100.00 EUR/kWh
    assert store.balance("CARD-A") == 1_950
    events = store.security_events(cp_id="CP-A")
    assert [e.kind for e in events] == [SecurityEventKind.STOP_BEFORE_START]
