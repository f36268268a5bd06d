"""The operator dashboard over HTTP: login and CSRF, every page with seeded data, OCPP command buttons against a
real agent, CSV downloads and HTML escaping."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from backend_stub.app import Csms
from backend_stub.domain.tariffs import Tariff
from backend_stub.store import CardMode, CsmsStore
from backend_stub.web import common as webapp
from backend_stub.web import dashboard
from tests.integration.conftest import until
from tests.web.conftest import ADMIN_TOKEN, CP_ID, TARIFF, StartSiteAgent

CARD = "04A2B3C4"
PREPAID = "PRE-0001"
EVIL = "<script>alert(1)</script>"

GET_PAGES = [
    "/",
    f"/chargers/{CP_ID}",
    f"/chargers/{CP_ID}/stats.csv",
    "/sessions",
    "/sessions.csv",
    "/users",
    "/users.csv",
    "/cards.csv",
    "/users/1",
    "/users/1/consumption.csv",
    "/cards",
    f"/cards/{CARD}",
    "/tariffs",
    "/sessions/1",
]


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def flash_of(html: str) -> str:
    """The flash message text shown on a page ('' if none)."""
    match = re.search(r'<p class="flash flash-(ok|error)"[^>]*id="flash">(.*?)</p>', html, re.S)
    return f"{match.group(1)}: {match.group(2)}" if match else ""


class Admin:
    """A logged-in browser-like client: cookie jar (IP hosts allowed), CSRF token scraped from a page."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.csrf = ""

    async def get(self, path: str, status: int = 200) -> str:
        async with self.session.get(path) as response:
            text = await response.text()
            assert response.status == status, f"GET {path}: {response.status} {text[:500]}"
            return text

    async def post(self, path: str, data: dict[str, Any], *, status: int = 200, csrf: bool = True) -> str:
        """POST a form (with the CSRF token), follow the redirect, return the landing page."""
        form = {**data, **({"csrf_token": self.csrf} if csrf else {})}
        async with self.session.post(path, data=form) as response:
            text = await response.text()
            assert response.status == status, f"POST {path}: {response.status} {text[:500]}"
            return text


async def log_in(session: aiohttp.ClientSession) -> Admin:
    async with session.post("/login", data={"token": ADMIN_TOKEN, "next": "/"}) as response:
        assert response.status == 200  # followed the 303 to the overview
        admin = Admin(session)
        admin.csrf = csrf_of(await response.text())
        return admin


@pytest.fixture
async def client(site: Csms) -> AsyncIterator[aiohttp.ClientSession]:
    """A cookie-keeping client (aiohttp refuses cookies from IP hosts unless the jar is 'unsafe')."""
    async with aiohttp.ClientSession(
        base_url=site.http_url, cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        yield session


@pytest.fixture
async def admin(client: aiohttp.ClientSession) -> Admin:
    return await log_in(client)


def seed(store: CsmsStore, site: Csms, *, name: str = "Ada Lovelace") -> int:
    """A user with a personal and a prepaid card, a top-up and one finished, priced session on CP-1."""
    user = store.add_user(name, phone="+49 30 1234567", email="ada@example.org")
    store.add_card(CARD, user_id=user.id)
    store.add_card(PREPAID, user_id=user.id, mode=CardMode.PREPAID)
    store.topup(PREPAID, 2000, "seed-topup", note="opening balance")
    start = datetime.now(UTC) - timedelta(minutes=30)
    tx_id = store.start_transaction(CP_ID, 1, CARD, 1000, start)
    store.stop_transaction(
        CP_ID, tx_id, 8400, start + timedelta(minutes=20), "EVDisconnected", site.central.pricing.price
    )
    return user.id


# ---------------------------------------------------------------------------------------------- login


async def test_every_page_requires_login(site: Csms, client: aiohttp.ClientSession) -> None:
    seed(site.store, site)
    for path in GET_PAGES:
        async with client.get(path, allow_redirects=False) as response:
            assert response.status == 303, path
            assert response.headers["Location"].startswith("/login?next="), path
    async with client.get("/dash/status.json") as response:
        assert response.status == 401
    async with client.post("/users", data={"name": "Mallory"}) as response:
        assert response.status == 403
    async with client.post(f"/chargers/{CP_ID}/commands/Reset", data={"type": "Hard"}) as response:
        assert response.status == 403
    assert [u.name for u in site.store.users()] == ["Ada Lovelace"]
    # The login page itself and the static files are public.
    async with client.get("/login") as response:
        assert response.status == 200
        assert 'name="token"' in await response.text()
    async with client.get("/static/style.css") as response:
        assert response.status == 200


async def test_wrong_token_is_refused(client: aiohttp.ClientSession) -> None:
    async with client.post("/login", data={"token": "not-the-token"}, allow_redirects=False) as response:
        assert response.status == 401
        assert webapp.SESSION_COOKIE not in response.cookies
        assert "Wrong admin token" in await response.text()
    async with client.get("/", allow_redirects=False) as response:
        assert response.status == 303


async def test_login_sets_a_strict_httponly_session_and_logout_drops_it(
    site: Csms, client: aiohttp.ClientSession
) -> None:
    async with client.post(
        "/login", data={"token": ADMIN_TOKEN, "next": "/tariffs"}, allow_redirects=False
    ) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/tariffs"
        cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(
        f"{webapp.SESSION_COOKIE}={webapp.session_value(webapp.token_digest(ADMIN_TOKEN))}"
    )
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    admin = Admin(client)
    page = await admin.get("/")
    admin.csrf = csrf_of(page)
    assert admin.csrf == dashboard.csrf_token(site.server.app)
    await admin.post("/logout", {})
    async with client.get("/", allow_redirects=False) as response:
        assert response.status == 303


async def test_login_redirect_stays_on_this_site(client: aiohttp.ClientSession) -> None:
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        async with client.post(
            "/login", data={"token": ADMIN_TOKEN, "next": evil}, allow_redirects=False
        ) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/"


async def test_bearer_token_also_opens_the_pages(http: aiohttp.ClientSession) -> None:
    async with http.get("/", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as response:
        assert response.status == 200
    async with http.get("/", headers={"Authorization": "Bearer wrong"}, allow_redirects=False) as response:
        assert response.status == 303


async def test_posts_without_a_valid_csrf_token_are_refused(site: Csms, admin: Admin) -> None:
    await admin.post("/users", {"name": "No Token"}, csrf=False, status=403)
    await admin.post("/users", {"name": "Bad Token", "csrf_token": "0" * 64}, csrf=False, status=403)
    await admin.post(f"/chargers/{CP_ID}/commands/Reset", {"type": "Hard"}, csrf=False, status=403)
    await admin.post("/logout", {}, csrf=False, status=403)
    # The right token but from another site's page (Origin header) is refused too.
    async with admin.session.post(
        "/users",
        data={"name": "Cross Site", "csrf_token": admin.csrf},
        headers={"Origin": "https://evil.example"},
    ) as response:
        assert response.status == 403
    assert site.store.users() == []
    page = await admin.post("/users", {"name": "With Token", "back": "/users"})
    assert "User With Token added" in flash_of(page)
    assert [u.name for u in site.store.users()] == ["With Token"]


async def test_pages_send_security_headers(admin: Admin) -> None:
    async with admin.session.get("/") as response:
        csp = response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
        html = await response.text()
    # No inline scripts or styles: everything is a local file (no CDN).
    assert "<script>" not in html
    assert "style=" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html)


# ---------------------------------------------------------------------------------------------- pages


async def test_each_page_renders_seeded_data(site: Csms, admin: Admin) -> None:
    user_id = seed(site.store, site)
    tx = site.store.recent_transactions(cp_id=CP_ID)[0]
    assert tx.cost_minor is not None and tx.cost_minor > 0
    cost = dashboard.format_money(tx.cost_minor, "EUR")

    overview = await admin.get("/")
    assert f'href="/chargers/{CP_ID}"' in overview
    assert 'data-live="connected"' in overview
    assert "offline" in overview  # no agent connected in this test

    charger = await admin.get(f"/chargers/{CP_ID}")
    for text in (
        "Remote start",
        "Reset",
        "Get diagnostics",
        "standard",
        "0.30 EUR per kWh",
        "7.400 kWh",
        cost,
    ):
        assert text in charger, text
    assert "<svg" in charger and 'class="bar bar-energy"' in charger
    assert "Download CSV" in charger

    sessions = await admin.get("/sessions")
    assert f'href="/sessions/{tx.id}"' in sessions
    assert "7.400 kWh" in sessions and cost in sessions and "Ada Lovelace" in sessions
    filtered = await admin.get(f"/sessions?charger={CP_ID}&user={user_id}")
    assert f'href="/sessions/{tx.id}"' in filtered
    empty = await admin.get(f"/sessions?user={user_id + 99}")
    assert "No sessions match" in empty

    detail = await admin.get(f"/sessions/{tx.id}")
    assert "Charge detail record" in detail and "incl. VAT" in detail and "EVDisconnected" in detail
    assert "ENERGY" in detail  # CDR charging period dimensions

    users = await admin.get("/users")
    assert "Ada Lovelace" in users and "+49 30 1234567" in users
    user = await admin.get(f"/users/{user_id}")
    for text in (CARD, PREPAID, "prepaid", "20.00 EUR", "opening balance", "topup", "Download CSV", cost):
        assert text in user, text

    cards = await admin.get("/cards")
    assert CARD in cards and PREPAID in cards and "20.00 EUR" in cards
    assert cards.count('action="/cards/PRE-0001/topup"') == 1  # only the prepaid card takes top-ups
    card = await admin.get(f"/cards/{PREPAID}")
    assert "opening balance" in card and "20.00 EUR" in card

    tariffs = await admin.get("/tariffs")
    assert "0.30 EUR per kWh, plus 19% VAT" in tariffs
    assert "0.50 EUR per session" in tariffs
    assert "default" in tariffs and CP_ID in tariffs

    await admin.get("/chargers/NOPE", status=404)
    await admin.get("/users/999", status=404)
    await admin.get("/sessions/999", status=404)
    await admin.get("/cards/NOPE", status=404)
    await admin.get(f"/chargers/{CP_ID}?from=2024-02-30", status=400)
    await admin.get(f"/chargers/{CP_ID}?from=2024-03-02&to=2024-03-01", status=400)


async def test_status_json_reports_live_connector_status(
    site: Csms, admin: Admin, site_agent: StartSiteAgent
) -> None:
    await site_agent()
    # Connector 0's status comes first at boot; wait for connector 1's as well.
    await until(
        lambda: any(c.connector_id == 1 for c in site.store.connectors(CP_ID)), 5, "no StatusNotification"
    )
    async with admin.session.get("/dash/status.json") as response:
        data = await response.json()
    (cp,) = data["chargers"]
    assert cp["id"] == CP_ID and cp["connected"] is True and cp["registration"] == "accepted"
    statuses = {c["id"]: c["status"] for c in cp["connectors"]}
    assert statuses[1] == "Available"
    overview = await admin.get("/")
    assert f'data-cp="{CP_ID}" data-connector="1">Available<' in overview
    assert "online" in overview


async def test_html_is_escaped_everywhere(site: Csms, admin: Admin) -> None:
    user_id = seed(site.store, site, name=EVIL)
    site.store.add_card("<i>x</i>", user_id=user_id, mode=CardMode.PREPAID)
    site.store.add_user("Bobby", phone="+1 555", email="a@b.co")
    page = await admin.post("/users", {"name": '"><img src=x onerror=alert(2)>', "back": "/users"})
    assert "<img src=x" not in page
    for path in ("/", "/users", f"/users/{user_id}", "/cards", "/sessions", "/cards/%3Ci%3Ex%3C%2Fi%3E"):
        html = await admin.get(path)
        assert "<script>alert(1)" not in html, path
        assert "<i>x</i>" not in html, path
        assert "<img src=x" not in html, path
    users = await admin.get("/users")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in users
    cards = await admin.get("/cards")
    assert "&lt;i&gt;x&lt;/i&gt;" in cards
    # A flash message that repeats user input is escaped too.
    page = await admin.post("/cards", {"id_tag": "<b>x</b>", "mode": "<b>y</b>"})
    assert "<b>" not in page and "got &#39;&lt;b&gt;y&lt;/b&gt;&#39;" in flash_of(page)


# ---------------------------------------------------------------------------------------------- forms


async def test_forms_add_users_cards_chargers_top_up_and_block(site: Csms, admin: Admin) -> None:
    store = site.store
    page = await admin.post(
        "/users", {"name": "Grace", "phone": "+44 20 7946 0000", "email": "", "back": "/users"}
    )
    assert "ok: User Grace added" in flash_of(page)
    (grace,) = store.users()
    assert grace.phone == "+44 20 7946 0000" and grace.email is None

    page = await admin.post("/users", {"name": "X", "email": "not-an-email", "back": "/users"})
    assert flash_of(page).startswith("error: email")

    page = await admin.post("/cards", {"id_tag": "CARD-1", "user_id": str(grace.id), "mode": "prepaid"})
    assert "ok: Card CARD-1 (prepaid) added" in flash_of(page)
    page = await admin.post("/cards", {"id_tag": "card-1", "user_id": "", "mode": "personal"})
    assert flash_of(page).startswith("error:") and "exists" in flash_of(page)
    page = await admin.post(
        "/cards", {"id_tag": "CARD-2", "user_id": "", "mode": "personal", "expiry": "2031-12-31"}
    )
    card2 = store.card("CARD-2")
    assert card2 is not None and card2.expiry == datetime(2032, 1, 1, tzinfo=UTC) and card2.user_id is None

    # Top-up: the form's nonce is the idempotency key, so a resubmitted form credits once.
    cards = await admin.get("/cards")
    nonce = re.search(r'name="nonce" value="([0-9a-f]+)"', cards)
    assert nonce
    form = {"amount": "12.50", "nonce": nonce.group(1), "back": "/cards"}
    page = await admin.post("/cards/CARD-1/topup", form)
    assert "topped up by 12.50 EUR; balance 12.50 EUR" in flash_of(page)
    await admin.post("/cards/CARD-1/topup", form)
    assert store.balance("CARD-1") == 1250
    page = await admin.post("/cards/CARD-1/topup", {**form, "nonce": "ab" * 8, "amount": "0.001"})
    assert "decimal places" in flash_of(page)
    page = await admin.post("/cards/CARD-2/topup", {**form, "nonce": "cd" * 8})
    assert "only prepaid cards" in flash_of(page)
    assert store.balance("CARD-2") == 0

    page = await admin.post("/cards/CARD-1/status", {"status": "blocked", "back": "/cards"})
    assert "Card CARD-1 is now blocked" in flash_of(page)
    assert site.central.authorization.decide("CARD-1", datetime.now(UTC)).status == "Blocked"
    await admin.post("/cards/CARD-1/status", {"status": "active"})
    assert site.central.authorization.decide("CARD-1", datetime.now(UTC)).status == "Accepted"

    page = await admin.post("/chargers", {"cp_id": "CP-2", "password": "long-enough-pw", "tariff_id": ""})
    assert "ok: Charger CP-2 added" in flash_of(page)
    assert store.verify_password("CP-2", "long-enough-pw")
    page = await admin.post("/chargers", {"cp_id": "CP-3", "password": "short"})
    assert "at least 8" in flash_of(page) and store.charger("CP-3") is None

    store.admit_unknown("CP-NEW")
    overview = await admin.get("/")
    assert 'action="/chargers/CP-NEW/registration"' in overview
    await admin.post("/chargers/CP-NEW/registration", {"status": "accepted", "back": "/"})
    new = store.charger("CP-NEW")
    assert new is not None and new.status == "accepted"

    store.put_tariff("night", json.dumps({**TARIFF, "id": "night"}))
    page = await admin.post(f"/chargers/{CP_ID}/tariff", {"tariff_id": "night", "back": f"/chargers/{CP_ID}"})
    assert "now uses tariff night" in flash_of(page)
    assert store.tariff_for(CP_ID) == "night"


# ---------------------------------------------------------------------------------------------- commands


async def test_command_buttons_reach_a_real_agent_and_show_its_reply(
    site: Csms, admin: Admin, site_agent: StartSiteAgent
) -> None:
    seed(site.store, site)
    agent = await site_agent()
    back = f"/chargers/{CP_ID}"

    page = await admin.post(
        f"/chargers/{CP_ID}/commands/RemoteStartTransaction",
        {"connectorId": "1", "idTag": CARD, "back": back},
    )
    assert "ok: CP-1 answered RemoteStartTransaction: Accepted" in flash_of(page)
    sent = [f for f in site.server.log if f.direction == "out" and f.action == "RemoteStartTransaction"]
    assert sent[-1].payload == {"connectorId": 1, "idTag": CARD}
    agent.plug()
    await agent.wait_state("CHARGING")
    await until(lambda: bool(site.store.active_transactions(CP_ID)), 5, "no StartTransaction")
    (tx,) = site.store.active_transactions(CP_ID)

    charger = await admin.get(back)
    assert f'name="transactionId" value="{tx.id}"' in charger
    page = await admin.post(
        f"/chargers/{CP_ID}/commands/RemoteStopTransaction", {"transactionId": str(tx.id), "back": back}
    )
    assert "ok: CP-1 answered RemoteStopTransaction: Accepted" in flash_of(page)
    await until(lambda: not site.store.active_transactions(CP_ID), 5, "session did not stop")

    page = await admin.post(f"/chargers/{CP_ID}/commands/UnlockConnector", {"connectorId": "1", "back": back})
    assert "CP-1 answered UnlockConnector: Unlocked" in flash_of(page)

    page = await admin.post(
        f"/chargers/{CP_ID}/commands/GetDiagnostics", {"location": "ftp://127.0.0.1/diag", "back": back}
    )
    assert "CP-1 answered GetDiagnostics" in flash_of(page)  # this agent answers with a CallError

    page = await admin.post(f"/chargers/{CP_ID}/commands/GetDiagnostics", {"location": "javascript:x"})
    assert "error: GetDiagnostics: location" in flash_of(page)
    page = await admin.post(f"/chargers/{CP_ID}/commands/Reset", {"type": "Sideways", "back": back})
    assert "reset type must be Soft or Hard" in flash_of(page)

    page = await admin.post(f"/chargers/{CP_ID}/commands/Reset", {"type": "Soft", "back": back})
    assert "ok: CP-1 answered Reset: Accepted" in flash_of(page)

    site.store.add_charger("CP-OFF", "offline-password")
    page = await admin.post("/chargers/CP-OFF/commands/Reset", {"type": "Hard", "back": "/chargers/CP-OFF"})
    assert "error: CP-OFF is not connected; Reset not sent." in flash_of(page)
    await admin.post("/chargers/CP-404/commands/Reset", {"type": "Hard"}, status=404)


# ---------------------------------------------------------------------------------------------- CSV


async def test_csv_downloads(site: Csms, admin: Admin) -> None:
    user_id = seed(site.store, site)
    today = datetime.now(UTC).date()
    frm = today - timedelta(days=2)
    async with admin.session.get(f"/chargers/{CP_ID}/stats.csv?from={frm}&to={today}") as response:
        assert response.status == 200
        assert response.content_type == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        assert f"CP-1-daily-{frm}-{today}.csv" in response.headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0] == ["date", "working_hours", "energy_kwh", "sessions", "fees_minor", "currency"]
    assert [r[0] for r in rows[1:]] == [str(frm + timedelta(days=n)) for n in range(3)]
    total_sessions = sum(int(r[3]) for r in rows[1:])
    assert total_sessions == 1
    assert sum(float(r[2]) for r in rows[1:]) == pytest.approx(7.4)

    charger = await admin.get(f"/chargers/{CP_ID}?from={frm}&to={today}")
    assert f'href="/chargers/{CP_ID}/stats.csv?from={frm}&amp;to={today}"' in charger

    async with admin.session.get(f"/users/{user_id}/consumption.csv") as response:
        assert response.status == 200
        assert response.content_type == "text/csv"
        rows = list(csv.reader(io.StringIO(await response.text())))
    assert rows[0][:4] == ["transaction_id", "cp_id", "connector_id", "id_tag"]
    assert rows[1][1:4] == [CP_ID, "1", CARD] and rows[1][6] == "7.400"


# ---------------------------------------------------------------------------------------------- units


def test_money_and_amounts() -> None:
    assert dashboard.format_money(123456, "EUR") == "1,234.56 EUR"
    assert dashboard.format_money(-50, "EUR") == "-0.50 EUR"
    assert dashboard.format_money(500, "JPY") == "500 JPY"
    assert dashboard.format_money(1, "KWD") == "0.001 KWD"
    assert dashboard.parse_amount("12.5", "EUR") == 1250
    assert dashboard.parse_amount("12,50", "EUR") == 1250
    assert dashboard.parse_amount("7", "JPY") == 7
    for bad in ("0", "-1", "abc", "1.001", "NaN", "Infinity", "1e30"):
        with pytest.raises(dashboard.FormError):
            dashboard.parse_amount(bad, "EUR")


def test_safe_path_keeps_redirects_local() -> None:
    assert dashboard.safe_path("/cards?x=1") == "/cards?x=1"
    for bad in (None, "", "cards", "//evil", "/\\evil", "https://evil/", "/\nx"):
        assert dashboard.safe_path(bad) == "/"


def test_tariff_elements_in_words() -> None:
    tariff = Tariff.from_ocpi(
        {
            "currency": "EUR",
            "elements": [
                {
                    "price_components": [
                        {"type": "TIME", "price": 2.0, "step_size": 300, "vat": 10},
                        {"type": "PARKING_TIME", "price": 5, "step_size": 60},
                    ],
                    "restrictions": {
                        "start_time": "22:00",
                        "end_time": "06:00",
                        "day_of_week": ["SATURDAY", "SUNDAY"],
                        "min_kwh": 5,
                        "max_duration": 7200,
                    },
                }
            ],
        }
    )
    (element,) = tariff.elements
    words = [dashboard.describe_component(c, "EUR") for c in element.price_components]
    assert words == [
        "2.00 EUR per hour of charging, billed in steps of 5 min 00 s, plus 10% VAT",
        "5.00 EUR per hour of parking (plugged in, not charging), billed in steps of 1 min 00 s, VAT not stated",
    ]
    assert dashboard.describe_restrictions(element.restrictions) == [
        "between 22:00 and 06:00 local time (past midnight)",
        "on Saturday, Sunday",
        "at least 5 kWh",
        "session shorter than 2 h 00 min",
    ]


def test_chart_layout_scales_bars_to_the_busiest_day() -> None:
    from backend_stub.store import DailyStats

    days = [date(2024, 1, 1) + timedelta(days=n) for n in range(3)]
    stats = [
        DailyStats(days[0], 0, 0, 0, 0),
        DailyStats(days[1], 3600, 10_000, 2, 500),
        DailyStats(days[2], 1800, 5_000, 1, 1000),
    ]
    chart = dashboard.daily_chart(stats, "EUR")
    energy, revenue = chart.panels
    assert [b.height for b in energy.bars] == [0, energy.height, energy.height / 2]
    assert [b.height for b in revenue.bars] == [0, revenue.height / 2, revenue.height]
    assert energy.max_label == "10.000 kWh" and revenue.max_label == "10.00 EUR"
    assert energy.bars[1].title == "2024-01-02: 10.000 kWh"


# ---------------------------------------------------------------------------------------------- sessions (item 8)


def seed_days(site: Csms, days: int = 25) -> list[int]:
    """One finished session per day from 2026-01-01 at 12:00 UTC; the 5th day's card is hostile text."""
    store = site.store
    user = store.add_user("=cmd|' /C calc'!A0", email="evil@example.org")  # CSV injection attempt
    store.add_card("=1+2", user_id=user.id)
    ids = []
    for day in range(days):
        start = datetime(2026, 1, 1 + day, 12, tzinfo=UTC)
        tag = "=1+2" if day == 4 else f"TAG{day:02d}"
        tx_id = store.start_transaction(CP_ID, 1, tag, 1000 * day, start)
        store.stop_transaction(
            CP_ID,
            tx_id,
            1000 * day + 500 + day,
            start + timedelta(minutes=30),
            "Local",
            site.central.pricing.price,
        )
        ids.append(tx_id)
    return ids


def session_ids(html: str) -> list[int]:
    return [int(m) for m in re.findall(r'<td[^>]*><a href="/sessions/([0-9]+)">', html)]


def href(html: str, element_id: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)" id="{element_id}"', html)
    return match[1].replace("&amp;", "&") if match else None


async def test_sessions_page_pages_filters_by_date_and_exports_csv(site: Csms, admin: Admin) -> None:
    ids = seed_days(site)
    newest_first = ids[::-1]

    first = await admin.get("/sessions?limit=10")
    assert session_ids(first) == newest_first[:10]
    assert href(first, "prev-page") is None
    second_url = href(first, "next-page")
    assert second_url is not None
    second = await admin.get(second_url)
    assert session_ids(second) == newest_first[10:20]
    assert "Sessions 11\u201320" in second
    last_url = href(second, "next-page")
    assert last_url is not None
    last = await admin.get(last_url)
    assert session_ids(last) == newest_first[20:] and href(last, "next-page") is None
    prev_url = href(last, "prev-page")
    assert prev_url is not None
    assert session_ids(await admin.get(prev_url)) == newest_first[10:20]

    # Dates are the site's local days, inclusive; the paging links and the export keep the filter.
    window = await admin.get(f"/sessions?charger={CP_ID}&from=2026-01-04&to=2026-01-06&limit=2")
    assert session_ids(window) == [ids[5], ids[4]]
    assert 'value="2026-01-04"' in window and 'value="2026-01-06"' in window
    rest_url = href(window, "next-page")
    assert rest_url is not None and "from=2026-01-04" in rest_url
    assert session_ids(await admin.get(rest_url)) == [ids[3]]
    csv_url = href(window, "sessions-csv")
    assert csv_url is not None and "limit" not in csv_url and "offset" not in csv_url
    async with admin.session.get(csv_url) as r:
        assert r.status == 200 and r.content_type == "text/csv"
        assert "attachment" in r.headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(await r.text())))
    assert rows[0][:3] == ["transaction_id", "cp_id", "connector_id"] and "energy_wh" in rows[0]
    assert [int(r[0]) for r in rows[1:]] == [ids[5], ids[4], ids[3]]
    assert rows[1][rows[0].index("energy_wh")] == "505"
    assert rows[2][rows[0].index("id_tag")] == "'=1+2"  # a formula is neutralised

    for bad in (
        "from=2026-02-30",
        "from=2026-01-06&to=2026-01-04",
        "from=06.01.2026",
        "offset=-1",
        "limit=0",
        "limit=1000000",
        "offset=1e3",
    ):
        await admin.get(f"/sessions?{bad}", status=400)
        await admin.get(f"/sessions.csv?{bad}", status=400)
    assert session_ids(await admin.get("/sessions?user=%C2%B2")) == newest_first[:25]  # '²' is no user id
    assert "No sessions match" in await admin.get("/sessions?from=2030-01-01")


async def test_users_and_cards_csv(site: Csms, admin: Admin, client: aiohttp.ClientSession) -> None:
    user_id = seed(site.store, site)
    seed_days(site, 1)
    users_page = await admin.get("/users")
    assert href(users_page, "users-csv") == "/users.csv"
    assert href(await admin.get("/cards"), "cards-csv") == "/cards.csv"
    users = list(csv.DictReader(io.StringIO(await admin.get("/users.csv"))))
    ada = next(u for u in users if u["user_id"] == str(user_id))
    balance = site.store.balance(CARD) + site.store.balance(PREPAID)  # the session is billed to CARD
    assert ada["name"] == "Ada Lovelace" and ada["cards"] == "2" and ada["balance_minor"] == str(balance)
    assert ada["currency"] == "EUR"
    assert any(u["name"].startswith("'=cmd") for u in users)
    cards = {c["id_tag"]: c for c in csv.DictReader(io.StringIO(await admin.get("/cards.csv")))}
    assert cards[PREPAID]["mode"] == "prepaid" and cards[PREPAID]["balance_minor"] == "2000"
    assert cards[CARD]["user_id"] == str(user_id) and cards[CARD]["status"] == "active"
    assert "'=1+2" in cards
    # Exports need the admin session like every page.
    async with aiohttp.ClientSession(base_url=str(client._base_url)) as stranger:
        for path in ("/users.csv", "/cards.csv", "/sessions.csv"):
            async with stranger.get(path, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"].startswith("/login")


# ---------------------------------------------------------------------------------------------- tariffs (item 7)


TARIFF_FORM = {
    "tariff_id": "night",
    "energy_price": "0.25",
    "time_price": "1.20",
    "flat_fee": "0,50",
    "parking_price": "",
    "vat": "19",
    "start_time": "22:00",
    "end_time": "06:00",
}


async def test_tariff_form_creates_and_edits_as_the_api_validates(
    site: Csms, admin: Admin, client: aiohttp.ClientSession
) -> None:
    page = await admin.post("/tariffs", TARIFF_FORM)
    assert flash_of(page) == "ok: Tariff night added.", flash_of(page)
    stored = json.loads(site.store.tariff_json("night") or "{}")
    assert stored == {
        "id": "night",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [
                    {"type": "ENERGY", "price": 0.25, "step_size": 1, "vat": 19.0},
                    {"type": "TIME", "price": 1.2, "step_size": 1, "vat": 19.0},
                    {"type": "FLAT", "price": 0.5, "step_size": 1, "vat": 19.0},
                ],
                "restrictions": {"start_time": "22:00", "end_time": "06:00"},
            }
        ],
    }
    assert "between 22:00 and 06:00 local time (past midnight)" in page
    assert 'value="0.25"' in page  # the edit form is prefilled

    page = await admin.post("/tariffs/night", {**TARIFF_FORM, "energy_price": "0.3575", "start_time": ""})
    assert "needs both a start and an end time" in flash_of(page)
    page = await admin.post("/tariffs/night", {**TARIFF_FORM, "energy_price": "0.3575"})
    assert flash_of(page) == "ok: Tariff night saved."
    tariff = Tariff.from_ocpi(json.loads(site.store.tariff_json("night") or "{}"))
    assert str(tariff.elements[0].price_components[0].price) == "0.3575"

    # Refused by the form exactly as by the API: the same domain check, the same message.
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for changes in ({"start_time": "25:00", "end_time": "06:00"}, {"tariff_id": "x" * 37}):
        form = {**TARIFF_FORM, "tariff_id": "other", **changes}
        body = dashboard.tariff_from_form(_multidict(form), form["tariff_id"], "EUR")
        async with client.post("/api/tariffs", json=body, headers=headers) as r:
            assert r.status == 400
            api_error = (await r.json())["error"]
        page = await admin.post("/tariffs", form)
        assert html.unescape(flash_of(page)) == f"error: {api_error}", (api_error, flash_of(page))
    for bad, message in (
        ({"energy_price": "-1"}, "energy_price: expected a number"),
        ({"energy_price": "0.12345"}, "at most 4 decimals"),
        ({"energy_price": "NaN"}, "expected a number"),
        ({"vat": "101"}, "vat: must be at most 100"),
        ({"energy_price": "", "time_price": "", "flat_fee": ""}, "at least one price"),
        ({"tariff_id": "night"}, "exists"),
    ):
        page = await admin.post("/tariffs", {**TARIFF_FORM, "tariff_id": "t2", **bad})
        assert message in flash_of(page), (bad, flash_of(page))
    assert site.store.tariff_ids() == sorted(["night", "standard"])
    await admin.post("/tariffs", TARIFF_FORM | {"tariff_id": "t3"}, csrf=False, status=403)
    await admin.post("/tariffs/nope", TARIFF_FORM, status=404)


def _multidict(form: dict[str, str]) -> Any:
    from multidict import MultiDict, MultiDictProxy

    return MultiDictProxy(MultiDict(form))
