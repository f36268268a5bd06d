"""Bad input over HTTP against the REST API of a real central system on 127.0.0.1: missing or wrong tokens on
every endpoint, malformed and non-object bodies, wrong types, out-of-range money, naive times, SQL
metacharacters in every string field, oversized bodies, top-up replays and unknown ids. Each gets a precise
4xx JSON error, never a 500; nothing in the database changes unless the request was valid; and afterwards the
server still serves OCPP to a real agent."""

from __future__ import annotations

import asyncio
import gzip
import json
import sqlite3
from typing import Any

import aiohttp
import pytest

from backend_stub.app import Csms
from backend_stub.web.api import MAX_BODY_BYTES, ROUTES
from tests.integration.conftest import until
from tests.web.conftest import ADMIN_TOKEN, CP_ID, TARIFF, TARIFF_ID, StartSiteAgent
from tests.web.test_api import call, seg, url

SQL_INJECTIONS = [
    "'; DROP TABLE users; --",
    '"; DELETE FROM ledger; --',
    "1' OR '1'='1",
    "x'); UPDATE cards SET balance_minor = 1000000; --",
    "Robert'); DROP TABLE cards;--",
    "%' AND 1=1 --",
    "\\'; SELECT * FROM settings; --",
    "' UNION SELECT value FROM settings --",
]
# idTags are at most 20 characters (OCPP CiString20)
SQL_ID_TAGS = ["';DROP TABLE cards;--", "x' OR '1'='1", '";DELETE FROM l;--', "1;SELECT 1--", "a'--"]
SQL_ID_TAGS = [t[:20] for t in SQL_ID_TAGS]


def snapshot(site: Csms) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, read through a second SQLite connection (so only committed data counts)."""
    db = sqlite3.connect(site.store.path)
    try:
        tables = [
            r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        return {t: sorted(db.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}
    finally:
        db.close()


def schema(site: Csms) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(site.store.path)
    try:
        return db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall()
    finally:
        db.close()


async def seed(http: aiohttp.ClientSession, headers: dict[str, str]) -> dict[str, Any]:
    """A user with a prepaid card holding 1000 minor units."""
    status, user = await call(
        http, "POST", "/api/users", headers, json={"name": "Eve", "email": "eve@example.org"}
    )
    assert status == 201
    status, _ = await call(
        http,
        "POST",
        "/api/cards",
        headers,
        json={"idTag": "CARD-1", "user_id": user["id"], "mode": "prepaid"},
    )
    assert status == 201
    status, _ = await call(
        http, "POST", "/api/cards/CARD-1/topup", headers, json={"amount_minor": 1000, "key": "seed"}
    )
    assert status == 201
    return {"user_id": user["id"]}


def concrete(path: str, user_id: int) -> str:
    return (
        path.replace("{user_id}", str(user_id))
        .replace("{id_tag}", "CARD-1")
        .replace("{tariff_id}", TARIFF_ID)
        .replace("{cp_id}", CP_ID)
        .replace("{action}", "Reset")
        .replace("{session_id}", "1")
    )


VALID_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/users"): {"name": "Mallory"},
    ("POST", "/api/cards"): {"idTag": "NEWCARD"},
    ("PATCH", "/api/cards/{id_tag}"): {"status": "blocked"},
    ("POST", "/api/cards/{id_tag}/topup"): {"amount_minor": 999_999, "key": "steal"},
    ("POST", "/api/tariffs"): {**TARIFF, "id": "evil"},
    ("PUT", "/api/tariffs/{tariff_id}"): {
        **TARIFF,
        "elements": [{"price_components": [{"type": "FLAT", "price": 0, "step_size": 1}]}],
    },
    ("PATCH", "/api/settings"): {"min_balance_minor": -1_000_000},
    ("POST", "/api/chargers"): {"id": "CP-EVIL", "password": "whatever-1234567"},
    ("PATCH", "/api/chargers/{cp_id}"): {"password": "taken-over-123456", "status": "rejected"},
    ("POST", "/api/chargers/{cp_id}/commands/{action}"): {"type": "Hard"},
}
WRITES = sorted(VALID_BODIES)


@pytest.mark.parametrize(
    "auth",
    [
        None,
        "Bearer wrong-token",
        "Bearer ",
        f"Bearer {ADMIN_TOKEN}x",
        f"bearer{ADMIN_TOKEN}",
        f"Basic {ADMIN_TOKEN}",
        f"Token {ADMIN_TOKEN}",
        f"Bearer {ADMIN_TOKEN[:-1]}",
    ],
)
async def test_every_endpoint_refuses_a_missing_or_wrong_token_and_changes_nothing(
    site: Csms,
    site_agent: StartSiteAgent,
    http: aiohttp.ClientSession,
    admin_headers: dict[str, str],
    auth: str | None,
) -> None:
    ids = await seed(http, admin_headers)
    agent = await site_agent()
    # the agent's own StatusNotifications after boot must be in before the snapshot is taken
    await until(lambda: len(site.store.connectors(CP_ID)) >= 2, 5, "no StatusNotifications")
    await asyncio.sleep(0.2)
    before = snapshot(site)
    frames_before = len(site.server.log)
    headers = {} if auth is None else {"Authorization": auth}
    checked = 0
    for method, path, _ in ROUTES:
        if path == "/api/openapi.json":
            continue
        body = VALID_BODIES.get((method, path))
        status, answer = await call(http, method, concrete(path, ids["user_id"]), headers, json=body)
        assert status == 401, (method, path, status, answer)
        assert answer == {"error": "missing or invalid admin token"}
        checked += 1
    # also unknown /api paths and wrong methods: 401 first, revealing nothing
    for method, path in (("GET", "/api/nope"), ("DELETE", "/api/users"), ("GET", "/api")):
        status, _ = await call(http, method, path, headers)
        assert status == 401, (method, path)
    assert checked == len(ROUTES) - 1
    assert snapshot(site) == before
    # the Reset command never reached the charger
    assert not [f for f in site.server.log[frames_before:] if f.direction == "out" and f.action == "Reset"]
    assert agent.agent.link is not None and agent.agent.link.online


@pytest.mark.parametrize("method_path", WRITES, ids=lambda mp: f"{mp[0]} {mp[1]}")
@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        (b'{"name": ', "application/json", "malformed JSON"),
        (b"{'name': 'single quotes'}", "application/json", "malformed JSON"),
        (b'{"a": 1,}', "application/json", "malformed JSON"),
        (b"[]", "application/json", "must be a JSON object, not an array"),
        (b'[{"name": "x"}]', "application/json", "must be a JSON object, not an array"),
        (b'"just a string"', "application/json", "must be a JSON object, not a string"),
        (b"42", "application/json", "must be a JSON object, not a number"),
        (b"null", "application/json", "must be a JSON object, not null"),
        (b"true", "application/json", "must be a JSON object, not a boolean"),
        (b'{"amount_minor": NaN}', "application/json", "malformed JSON"),
        (b'{"amount_minor": Infinity}', "application/json", "malformed JSON"),
        (b"\xff\xfe{}", "application/json", "not UTF-8"),
        (b"[" * 50_000 + b"]" * 50_000, "application/json", "malformed JSON"),
        (b'{"x": ' + b"9" * 5000 + b"}", "application/json", "malformed JSON"),
        (b"name=x&amount_minor=5", "application/x-www-form-urlencoded", "malformed JSON"),
    ],
    ids=[
        "truncated",
        "single-quotes",
        "trailing-comma",
        "empty-array",
        "array",
        "string",
        "number",
        "null",
        "bool",
        "nan",
        "infinity",
        "not-utf8",
        "deep-nesting",
        "huge-int",
        "form",
    ],
)
async def test_malformed_and_non_object_bodies_are_400_and_change_nothing(
    site: Csms,
    http: aiohttp.ClientSession,
    admin_headers: dict[str, str],
    method_path: tuple[str, str],
    raw: bytes,
    content_type: str,
    expected: str,
) -> None:
    ids = await seed(http, admin_headers)
    before = snapshot(site)
    method, path = method_path
    status, answer = await call(
        http,
        method,
        concrete(path, ids["user_id"]),
        {**admin_headers, "Content-Type": content_type},
        data=raw,
    )
    assert status == 400, answer
    assert expected in answer["error"], answer
    assert snapshot(site) == before
    assert site.server.errors == []


@pytest.mark.parametrize("method_path", WRITES, ids=lambda mp: f"{mp[0]} {mp[1]}")
@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, 2 * 1024 * 1024])
async def test_oversized_bodies_are_413_and_change_nothing(
    site: Csms,
    http: aiohttp.ClientSession,
    admin_headers: dict[str, str],
    method_path: tuple[str, str],
    size: int,
) -> None:
    ids = await seed(http, admin_headers)
    before = snapshot(site)
    method, path = method_path
    body = b'{"name": "' + b"x" * (size - 12) + b'"}'
    status, answer = await call(
        http,
        method,
        concrete(path, ids["user_id"]),
        {**admin_headers, "Content-Type": "application/json"},
        data=body,
    )
    assert status == 413, answer
    assert "larger than" in answer["error"]
    assert snapshot(site) == before


async def test_an_oversized_chunked_body_without_length_is_413(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    async def chunks() -> Any:
        for _ in range(64):
            yield b" " * 8192  # JSON whitespace: only the size can make this fail

    before = snapshot(site)
    status, answer = await call(
        http, "POST", "/api/users", {**admin_headers, "Content-Type": "application/json"}, data=chunks()
    )
    assert status == 413, answer
    assert snapshot(site) == before


# (method, path, body, field named in the error)
WRONG_FIELDS: list[tuple[str, str, dict[str, Any], str]] = [
    ("POST", "/api/users", {}, "name"),
    ("POST", "/api/users", {"name": None}, "name"),
    ("POST", "/api/users", {"name": 5}, "name"),
    ("POST", "/api/users", {"name": ""}, "name"),
    ("POST", "/api/users", {"name": ["a"]}, "name"),
    ("POST", "/api/users", {"name": "x" * 256}, "name"),
    ("POST", "/api/users", {"name": "nul\x00byte"}, "name"),
    ("POST", "/api/users", {"name": "ok", "phone": 491234}, "phone"),
    ("POST", "/api/users", {"name": "ok", "phone": "1" * 33}, "phone"),
    ("POST", "/api/users", {"name": "ok", "email": "not-an-address"}, None),  # store's check
    ("POST", "/api/users", {"name": "ok", "email": {"a": 1}}, "email"),
    ("POST", "/api/users", {"name": "ok", "balance": 5}, "balance"),
    ("POST", "/api/cards", {}, "idTag"),
    ("POST", "/api/cards", {"idTag": 1234}, "idTag"),
    ("POST", "/api/cards", {"idTag": "x" * 37}, "idTag"),
    ("POST", "/api/cards", {"idTag": ""}, "idTag"),
    ("POST", "/api/cards", {"idTag": "N1", "user_id": "1"}, "user_id"),
    ("POST", "/api/cards", {"idTag": "N1", "user_id": 1.0}, "user_id"),
    ("POST", "/api/cards", {"idTag": "N1", "user_id": True}, "user_id"),
    ("POST", "/api/cards", {"idTag": "N1", "user_id": 424242}, "user_id"),
    ("POST", "/api/cards", {"idTag": "N1", "user_id": -1}, "user_id"),
    ("POST", "/api/cards", {"idTag": "N1", "user_id": 2**70}, "user_id"),
    ("POST", "/api/cards", {"idTag": "N1", "mode": "gold"}, "mode"),
    ("POST", "/api/cards", {"idTag": "N1", "mode": 1}, "mode"),
    ("POST", "/api/cards", {"idTag": "N1", "status": "ACTIVE"}, "status"),
    ("POST", "/api/cards", {"idTag": "N1", "expiry": "2030-01-01T00:00:00"}, "expiry"),  # naive
    ("POST", "/api/cards", {"idTag": "N1", "expiry": "2030-01-01"}, "expiry"),  # naive date
    ("POST", "/api/cards", {"idTag": "N1", "expiry": "tomorrow"}, "expiry"),
    ("POST", "/api/cards", {"idTag": "N1", "expiry": 1893456000}, "expiry"),
    ("POST", "/api/cards", {"idTag": "N1", "expiry": "0001-01-01T00:00:00+14:00"}, "expiry"),
    ("POST", "/api/cards", {"idTag": "N1", "balance_minor": 100}, "balance_minor"),
    ("PATCH", "/api/cards/CARD-1", {}, None),
    ("PATCH", "/api/cards/CARD-1", {"status": "deleted"}, "status"),
    ("PATCH", "/api/cards/CARD-1", {"status": None}, "status"),
    ("PATCH", "/api/cards/CARD-1", {"status": "blocked", "expiry": "2030-01-01T00:00"}, "expiry"),
    ("PATCH", "/api/cards/CARD-1", {"balance_minor": 10**9}, "balance_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": None, "key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 12.5, "key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 100.0, "key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": "100", "key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": True, "key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 0, "key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": -500, "key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 10**12 + 1, "key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 2**64, "key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 1e20, "key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": [100], "key": "k"}, "amount_minor"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 100}, "key"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 100, "key": ""}, "key"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 100, "key": 7}, "key"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 100, "key": "k" * 201}, "key"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 100, "key": "k", "note": 5}, "note"),
    ("POST", "/api/cards/CARD-1/topup", {"amount_minor": 100, "key": "k", "kind": "refund"}, "kind"),
    ("POST", "/api/tariffs", {"currency": "EUR", "elements": []}, "id"),
    ("POST", "/api/tariffs", {"id": "t", "currency": "EUR", "elements": []}, None),
    ("POST", "/api/tariffs", {"id": "t", "currency": "EUR"}, None),
    ("POST", "/api/tariffs", {"id": "t", "currency": "USD", "elements": TARIFF["elements"]}, "currency"),
    ("POST", "/api/tariffs", {"id": "t", "currency": "euro", "elements": TARIFF["elements"]}, None),
    ("POST", "/api/tariffs", {"id": "x" * 37, "currency": "EUR", "elements": TARIFF["elements"]}, "id"),
    ("POST", "/api/tariffs", {"id": 5, "currency": "EUR", "elements": TARIFF["elements"]}, "id"),
    (
        "POST",
        "/api/tariffs",
        {
            "id": "t",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": -1, "step_size": 1}]}],
        },
        None,
    ),
    (
        "POST",
        "/api/tariffs",
        {
            "id": "t",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "KWH", "price": 1, "step_size": 1}]}],
        },
        None,
    ),
    (
        "POST",
        "/api/tariffs",
        {
            "id": "t",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": "1", "step_size": 1}]}],
        },
        None,
    ),
    (
        "POST",
        "/api/tariffs",
        {
            "id": "t",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 1e300, "step_size": 1}]}],
        },
        "elements",
    ),
    ("POST", "/api/tariffs", {"id": "t", "currency": "EUR", "elements": "all of them"}, None),
    ("PUT", f"/api/tariffs/{TARIFF_ID}", {**TARIFF, "id": "other"}, "id"),
    ("PUT", f"/api/tariffs/{TARIFF_ID}", {**TARIFF, "elements": [{}]}, None),
    ("PATCH", "/api/settings", {"currency": "USD"}, None),  # the ledger already has entries: 409 below
    ("PATCH", "/api/settings", {"min_balance_minor": "5"}, "min_balance_minor"),
    ("PATCH", "/api/settings", {"min_balance_minor": 0.5}, "min_balance_minor"),
    ("PATCH", "/api/settings", {"default_tariff_id": "missing"}, "default_tariff_id"),
    ("PATCH", "/api/settings", {"admin_token": "mine"}, "admin_token"),
    ("POST", "/api/chargers", {}, "id"),
    ("POST", "/api/chargers", {"id": 7}, "id"),
    ("POST", "/api/chargers", {"id": ""}, "id"),
    ("POST", "/api/chargers", {"id": "a/b"}, "id"),
    ("POST", "/api/chargers", {"id": "tab\there"}, "id"),
    ("POST", "/api/chargers", {"id": "x" * 256}, "id"),
    ("POST", "/api/chargers", {"id": "CP-9", "password": ""}, "password"),
    ("POST", "/api/chargers", {"id": "CP-9", "password": 12345678}, "password"),
    ("POST", "/api/chargers", {"id": "CP-9", "password": "pw-12345678", "status": "online"}, "status"),
    ("POST", "/api/chargers", {"id": "CP-9", "password": "pw-12345678", "tariff_id": "missing"}, "tariff_id"),
    ("POST", "/api/chargers", {"id": "x" * 49, "password": "pw-12345678"}, "id"),
    ("POST", "/api/chargers", {"id": "CP-9"}, "password"),
    ("POST", "/api/chargers", {"id": "CP-9", "password": None}, "password"),
    (
        "POST",
        "/api/chargers",
        {"id": "CP-9", "password": None, "allow_no_password": "yes"},
        "allow_no_password",
    ),
    (
        "POST",
        "/api/chargers",
        {"id": "CP-9", "password": "pw-12345678", "allow_no_password": True},
        "allow_no_password",
    ),
    ("PATCH", f"/api/chargers/{CP_ID}", {}, None),
    ("PATCH", f"/api/chargers/{CP_ID}", {"password": None}, "password"),
    ("PATCH", f"/api/chargers/{CP_ID}", {"status": "Accepted"}, "status"),
    ("PATCH", f"/api/chargers/{CP_ID}", {"password": ""}, "password"),
    ("PATCH", f"/api/chargers/{CP_ID}", {"tariff_id": 3}, "tariff_id"),
    ("PATCH", f"/api/chargers/{CP_ID}", {"vendor": "spoofed"}, "vendor"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), WRONG_FIELDS)
async def test_wrong_types_missing_fields_and_out_of_range_values_are_4xx(
    site: Csms,
    http: aiohttp.ClientSession,
    admin_headers: dict[str, str],
    method: str,
    path: str,
    body: dict[str, Any],
    field: str | None,
) -> None:
    await seed(http, admin_headers)
    before = snapshot(site)
    status, answer = await call(http, method, path, admin_headers, json=body)
    expected = 409 if body == {"currency": "USD"} else 400
    assert status == expected, answer
    assert isinstance(answer["error"], str) and answer["error"]
    if field is not None:
        assert answer.get("field") == field, answer
    assert snapshot(site) == before
    assert site.server.errors == []


async def test_sql_metacharacters_round_trip_verbatim_in_every_string_field(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    tables_before = schema(site)
    h = admin_headers
    for i, text in enumerate(SQL_INJECTIONS):
        email = f"{text.replace(' ', '')}@example.org"
        status, user = await call(
            http, "POST", "/api/users", h, json={"name": text, "phone": text[:32], "email": email}
        )
        assert status == 201, user
        status, got = await call(http, "GET", f"/api/users/{user['id']}", h)
        assert (got["name"], got["phone"], got["email"]) == (text, text[:32], email)

        tag = SQL_ID_TAGS[i % len(SQL_ID_TAGS)] if i < len(SQL_ID_TAGS) else None
        if tag is not None:
            status, card = await call(
                http, "POST", "/api/cards", h, json={"idTag": tag, "user_id": user["id"], "mode": "prepaid"}
            )
            assert status == 201, card
            assert card["idTag"] == tag
            status, topped = await call(
                http,
                "POST",
                url(f"/api/cards/{seg(tag)}/topup"),
                {**h, "Idempotency-Key": text},
                json={"amount_minor": 100 + i, "note": text},
            )
            assert status == 201, topped
            assert topped["entry"]["note"] == text and topped["entry"]["idempotency_key"].endswith(text)
            status, ledger = await call(http, "GET", url(f"/api/cards/{seg(tag)}/ledger"), h)
            assert status == 200 and ledger["idTag"] == tag and ledger["balance_minor"] == 100 + i
            status, patched = await call(
                http, "PATCH", url(f"/api/cards/{seg(tag)}"), h, json={"status": "blocked"}
            )
            assert status == 200 and patched["idTag"] == tag

        cp_id = f"CP {text}"[:48]  # the OCPP endpoint's longest charger id
        status, charger = await call(
            http, "POST", "/api/chargers", h, json={"id": cp_id, "password": text, "status": "pending"}
        )
        assert status == 201, charger
        status, got = await call(http, "GET", url(f"/api/chargers/{seg(cp_id)}"), h)
        assert status == 200 and got["id"] == cp_id
        assert site.store.verify_password(cp_id, text)
        status, stats = await call(http, "GET", url(f"/api/chargers/{seg(cp_id)}/stats"), h)
        assert status == 200 and stats["charger"] == cp_id

        tariff_id = text[:36]
        tariff = {**TARIFF, "id": tariff_id}
        status, created = await call(http, "POST", "/api/tariffs", h, json=tariff)
        assert status == 201, created
        status, got = await call(http, "GET", url(f"/api/tariffs/{seg(tariff_id)}"), h)
        assert status == 200 and got["tariff"]["id"] == tariff_id
        status, _ = await call(
            http, "PATCH", url(f"/api/chargers/{seg(cp_id)}"), h, json={"tariff_id": tariff_id}
        )
        assert status == 200

        # as query parameters
        for query in (f"charger={seg(text)}", f"idTag={seg(text[:20])}"):
            status, sessions = await call(http, "GET", url(f"/api/sessions?{query}"), h)
            assert status == 200 and sessions["sessions"] == []
        for query in (f"user={seg(text)}", f"limit={seg(text)}"):
            status, answer = await call(http, "GET", url(f"/api/sessions?{query}"), h)
            assert status == 400, answer
        status, answer = await call(http, "GET", url(f"/api/cards?user={seg(text)}"), h)
        assert status == 400
        status, answer = await call(http, "GET", url(f"/api/users/{seg(text)}"), h)
        assert status == 404

    assert schema(site) == tables_before
    assert site.store.verify_balances() == []
    assert len(site.store.users()) == len(SQL_INJECTIONS)
    assert len(site.store.cards()) == len(SQL_ID_TAGS)
    assert sorted(u.name for u in site.store.users()) == sorted(SQL_INJECTIONS)
    assert sum(e.amount_minor for e in site.store.entries()) == sum(100 + i for i in range(len(SQL_ID_TAGS)))
    assert site.store.currency() == "EUR" and site.store.default_tariff_id() == TARIFF_ID
    assert site.server.errors == []


async def test_topup_replays_and_key_reuse(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    await seed(http, admin_headers)
    h = {**admin_headers, "Idempotency-Key": "pay-42"}
    status, first = await call(http, "POST", "/api/cards/CARD-1/topup", h, json={"amount_minor": 500})
    assert status == 201 and first["balance_minor"] == 1500
    for _ in range(5):  # replays return the first entry and credit nothing
        status, again = await call(http, "POST", "/api/cards/CARD-1/topup", h, json={"amount_minor": 500})
        assert status == 200 and again["replayed"] is True and again["entry"]["id"] == first["entry"]["id"]
    # the same key from the body is the same key
    status, again = await call(
        http, "POST", "/api/cards/card-1/topup", admin_headers, json={"amount_minor": 500, "key": "pay-42"}
    )
    assert status == 200 and again["entry"]["id"] == first["entry"]["id"]
    before = snapshot(site)
    # reusing the key for another amount or another card is a conflict, and changes nothing
    status, answer = await call(http, "POST", "/api/cards/CARD-1/topup", h, json={"amount_minor": 501})
    assert status == 409 and "idempotency key" in answer["error"]
    status, _ = await call(http, "POST", "/api/cards", admin_headers, json={"idTag": "CARD-2"})
    before = snapshot(site)
    status, answer = await call(http, "POST", "/api/cards/CARD-2/topup", h, json={"amount_minor": 500})
    assert status == 409
    # header and body keys that disagree are refused
    status, answer = await call(
        http, "POST", "/api/cards/CARD-1/topup", h, json={"amount_minor": 500, "key": "other"}
    )
    assert status == 400 and answer["field"] == "key"
    status, answer = await call(
        http,
        "POST",
        "/api/cards/CARD-1/topup",
        {**admin_headers, "Idempotency-Key": ""},
        json={"amount_minor": 5},
    )
    assert status == 400
    assert snapshot(site) == before
    # an API key cannot collide with the keys the server uses for session charges
    status, charge_like = await call(
        http, "POST", "/api/cards/CARD-1/topup", admin_headers, json={"amount_minor": 1, "key": "charge:1"}
    )
    assert status == 201 and charge_like["entry"]["idempotency_key"] != "charge:1"
    assert site.store.balance("CARD-1") == 1501
    assert site.store.verify_balances() == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/users/424242", 404),
        ("GET", "/api/users/0", 404),
        ("GET", "/api/users/-1", 404),
        ("GET", "/api/users/abc", 404),
        ("GET", "/api/users/1.5", 404),
        ("GET", "/api/users/99999999999999999999999999", 404),
        ("GET", "/api/users/424242/consumption", 404),
        ("GET", "/api/users/424242/consumption?format=csv", 404),
        ("GET", "/api/cards/NOPE", 404),
        ("PATCH", "/api/cards/NOPE", 404),
        ("POST", "/api/cards/NOPE/topup", 404),
        ("GET", "/api/cards/NOPE/ledger", 404),
        ("GET", "/api/tariffs/nope", 404),
        ("GET", "/api/chargers/CP-NOPE", 404),
        ("PATCH", "/api/chargers/CP-NOPE", 404),
        ("GET", "/api/chargers/CP-NOPE/stats", 404),
        ("POST", "/api/chargers/CP-NOPE/commands/Reset", 404),
        ("POST", f"/api/chargers/{CP_ID}/commands/NoSuchAction", 404),
        ("POST", f"/api/chargers/{CP_ID}/commands/BootNotification", 404),  # charger-initiated, not ours
        ("POST", f"/api/chargers/{CP_ID}/commands/reset", 404),  # actions are case-sensitive
        ("GET", "/api/sessions/424242", 404),
        ("GET", "/api/sessions/x", 404),
        ("GET", "/api/nothing-here", 404),
        ("GET", "/api", 404),
        ("GET", "/api/users/1/cards/2", 404),
        ("DELETE", "/api/users", 405),
        ("PUT", "/api/users", 405),
        ("DELETE", "/api/cards/CARD-1", 405),
        ("POST", "/api/sessions", 405),
        ("GET", f"/api/chargers/{CP_ID}/commands/Reset", 405),
        ("POST", "/api/openapi.json", 405),
    ],
)
async def test_unknown_ids_paths_and_methods(
    site: Csms,
    http: aiohttp.ClientSession,
    admin_headers: dict[str, str],
    method: str,
    path: str,
    status: int,
) -> None:
    await seed(http, admin_headers)
    before = snapshot(site)
    body = {"amount_minor": 5, "key": "k", "status": "blocked", "type": "Soft"} if method != "GET" else None
    if path.endswith("/topup"):
        body = {"amount_minor": 5, "key": "k"}
    elif "/commands/" in path:
        body = {"type": "Soft"}
    elif method == "PATCH":
        body = {"status": "blocked"}
    got, answer = await call(http, method, path, admin_headers, json=body)
    assert got == status, answer
    assert isinstance(answer, dict) and answer["error"], answer
    if status == 405:
        assert answer["allowed"]
    assert snapshot(site) == before


async def test_duplicates_are_409(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    await seed(http, admin_headers)
    before = snapshot(site)
    for path, body in (
        ("/api/cards", {"idTag": "CARD-1"}),
        ("/api/cards", {"idTag": "card-1"}),  # idTags are case-insensitive
        ("/api/chargers", {"id": CP_ID, "password": "another-password-1"}),
        ("/api/tariffs", TARIFF),
    ):
        status, answer = await call(http, "POST", path, admin_headers, json=body)
        assert status == 409, (path, answer)
        assert "exists" in answer["error"]
    assert snapshot(site) == before


@pytest.mark.parametrize(
    "query",
    [
        "from=2024-13-01&to=2024-12-31",
        "from=20240101&to=2024-01-31",
        "from=2024-W01-1",
        "from=2024-02-30",
        "from=2024-01-10&to=2024-01-01",
        "from=2020-01-01&to=2024-01-01",
        "from=9999-12-01&to=9999-12-31",
        "from=0001-01-01&to=0001-01-02",
        "from=2024-01-01&from=2024-01-02",
        "format=xml",
        "from=%27;DROP%20TABLE%20chargers;--",
        "since=2024-01-01",
    ],
)
async def test_stats_query_errors_are_400(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str], query: str
) -> None:
    status, answer = await call(http, "GET", url(f"/api/chargers/{CP_ID}/stats?{query}"), admin_headers)
    assert status == 400, answer
    assert answer["error"]


@pytest.mark.parametrize(
    ("action", "payload", "words"),
    [
        ("RemoteStartTransaction", {}, "idTag"),
        ("RemoteStartTransaction", {"idTag": 5}, "not of type"),
        ("RemoteStartTransaction", {"idTag": "x" * 21}, "too long"),
        ("RemoteStartTransaction", {"idTag": "A", "connectorId": "1"}, "not of type"),
        ("RemoteStartTransaction", {"idTag": "A", "extra": 1}, "Additional properties"),
        ("RemoteStopTransaction", {"transactionId": 1.5}, "not of type"),
        ("Reset", {"type": "Medium"}, "Medium"),
        ("ChangeConfiguration", {"key": "HeartbeatInterval"}, "value"),
        ("TriggerMessage", {"requestedMessage": "'; DROP TABLE x; --"}, "DROP"),
        ("GetConfiguration", {"key": "HeartbeatInterval"}, "not of type"),
    ],
)
async def test_command_payloads_are_validated_against_the_ocpp_schema_before_sending(
    site: Csms,
    site_agent: StartSiteAgent,
    http: aiohttp.ClientSession,
    admin_headers: dict[str, str],
    action: str,
    payload: dict[str, Any],
    words: str,
) -> None:
    await site_agent()
    frames_before = len(site.server.log)
    status, answer = await call(
        http, "POST", f"/api/chargers/{CP_ID}/commands/{action}", admin_headers, json=payload
    )
    assert status == 400, answer
    assert words in answer["error"], answer
    assert not [f for f in site.server.log[frames_before:] if f.direction == "out" and f.action == action]


@pytest.mark.parametrize(
    "query", ["timeout_s=0", "timeout_s=-1", "timeout_s=abc", "timeout_s=1000", "timeout_s=nan", "wait=1"]
)
async def test_command_query_errors_are_400(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str], query: str
) -> None:
    status, answer = await call(
        http, "POST", f"/api/chargers/{CP_ID}/commands/Reset?{query}", admin_headers, json={"type": "Soft"}
    )
    assert status == 400, answer


async def test_the_server_keeps_serving_ocpp_and_http_after_a_barrage_of_bad_input(
    site: Csms, site_agent: StartSiteAgent, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    await seed(http, admin_headers)
    bad_bodies = [b"{", b"[]", b"\xff", b"[" * 100_000, b"x" * (MAX_BODY_BYTES + 10), b'{"name": 1}']
    for method, path, _ in ROUTES:
        if method == "GET":
            continue
        for raw in bad_bodies:
            status, _ = await call(
                http,
                method,
                concrete(path, 1),
                {**admin_headers, "Content-Type": "application/json"},
                data=raw,
            )
            assert 400 <= status < 500, (method, path, raw[:20], status)
    assert site.server.errors == []
    agent = await site_agent()  # a real agent still connects, boots and takes commands
    status, answer = await call(
        http, "POST", f"/api/chargers/{CP_ID}/commands/GetConfiguration", admin_headers, json={}
    )
    assert status == 200 and answer["reply"]["configurationKey"]
    agent.plug()
    await agent.wait_state("PREPARING")
    status, answer = await call(http, "GET", f"/api/chargers/{CP_ID}", admin_headers)
    assert status == 200 and answer["connected"] is True
    assert site.store.verify_balances() == []


async def test_compressed_bombs_and_undecodable_bodies(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    """The size limit counts decoded bytes (a 20 MB gzip bomb of a few KB is 413); broken gzip is 400."""
    before = snapshot(site)
    headers = {**admin_headers, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    bomb = gzip.compress(b'{"name": "' + b"a" * 20_000_000 + b'"}')
    assert len(bomb) < 100_000
    status, answer = await call(http, "POST", "/api/users", headers, data=bomb)
    assert status == 413, answer
    async with aiohttp.ClientSession(
        base_url=http._base_url
    ) as fresh:  # the server may close that connection
        status, answer = await call(fresh, "POST", "/api/users", headers, data=b"not gzip at all")
    assert status == 400, answer
    status, answer = await call(
        http, "POST", "/api/users", headers, data=gzip.compress(json.dumps({"name": "zipped"}).encode())
    )
    assert status == 201 and answer["name"] == "zipped"
    assert [u.name for u in site.store.users()] == ["zipped"]
    created = {"users", "sqlite_sequence"}
    assert {k: v for k, v in snapshot(site).items() if k not in created} == {
        k: v for k, v in before.items() if k not in created
    }


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/api/users", b'{"name": "\\ud800"}'),
        ("/api/users", b'{"name": "ok", "email": "a\\udfff@example.org"}'),
        ("/api/cards", b'{"idTag": "\\udc80"}'),
        ("/api/chargers", b'{"id": "CP-\\ud83d", "password": "x"}'),
        ("/api/tariffs", b'{"id": "\\ud800", "currency": "EUR", "elements": []}'),
        ("/api/cards/CARD-1/topup", b'{"amount_minor": 5, "key": "\\ud800"}'),
        ("/api/users", b'{"\\ud800": 1}'),
    ],
)
async def test_lone_surrogate_escapes_are_400(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str], path: str, raw: bytes
) -> None:
    await seed(http, admin_headers)
    before = snapshot(site)
    status, answer = await call(
        http, "POST", path, {**admin_headers, "Content-Type": "application/json"}, data=raw
    )
    assert status == 400, answer
    assert snapshot(site) == before
    assert site.server.errors == []


async def raw_http(site: Csms, request: bytes) -> tuple[int, bytes]:
    """One raw HTTP/1.1 exchange (bytes a client library would refuse to send)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", site.server.port)
    try:
        writer.write(request)
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.mark.parametrize("key", [b"\xff\xfe", b"\xed\xa0\x80", b"x" * 201])
async def test_undecodable_idempotency_key_headers_are_400(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str], key: bytes
) -> None:
    await seed(http, admin_headers)
    before = snapshot(site)
    body = b'{"amount_minor": 5}'
    status, answer = await raw_http(
        site,
        b"POST /api/cards/CARD-1/topup HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + f"Authorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\n".encode()
        + b"Idempotency-Key: "
        + key
        + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body,
    )
    assert status == 400, answer
    assert json.loads(answer)["field"] == "Idempotency-Key"
    assert snapshot(site) == before


async def test_head_and_undecodable_paths(
    site: Csms, http: aiohttp.ClientSession, admin_headers: dict[str, str]
) -> None:
    async with http.head("/api/users", headers=admin_headers) as response:
        assert response.status == 200
    async with http.head("/api/users") as response:
        assert response.status == 401
    for path in ("/api/chargers/%ed%a0%80", "/api/cards/%ff%fe/ledger", "/api/tariffs/%C0%AF"):
        status, answer = await call(http, "GET", url(path), admin_headers)
        assert status == 404, (path, answer)
    status, answer = await call(http, "GET", url("/api/sessions?charger=%ed%a0%80&idTag=%ff"), admin_headers)
    assert status == 200 and answer == {"sessions": []}
